"""The writer callback of ``unisegdiff predict``: each case's outputs as one unit (mask written last, each file
atomic) and ``predict_record.json`` (checkpoint, counts, versions) inside the output folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.nn import functional as F

from unisegdiff.callbacks import run_record
from unisegdiff.data.errors import DataError
from unisegdiff.io import Geometry, write_image, write_json_atomic
from unisegdiff.predict_inputs import OUTPUT_KINDS, RECORD
from unisegdiff.secrets import redact


def _to_input_grid(maps: torch.Tensor, shape2d: tuple[int, int]) -> np.ndarray:
    """(N, 1, S, S) model-resolution maps -> (N, H, W) float arrays at the input's resolution."""
    return F.interpolate(maps.float().cpu(), size=shape2d, mode="bilinear", align_corners=False)[:, 0].numpy()


def output_arrays(prediction: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """Mask / probability / uncertainty at the input's grid: uint8 PNG scales for 2D files, else the volume's shape."""
    prob = _to_input_grid(prediction["probability"], meta["shape2d"])
    unc = _to_input_grid(prediction["uncertainty"], meta["shape2d"])
    mask = (prob > 0.5).astype(np.uint8)
    if meta["is_2d_file"]:
        return {"mask": mask[0] * 255, "prob": np.round(prob[0] * 255).astype(np.uint8),
                "uncertainty": np.round(np.clip(unc[0], 0, 1) * 255).astype(np.uint8)}
    shape = meta["shape"]
    return {"mask": mask.reshape(shape), "prob": prob.astype(np.float32).reshape(shape), "uncertainty": unc.astype(np.float32).reshape(shape)}


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class PredictionWriter(BasePredictionWriter):
    """Writes each input's uncertainty, probability and then mask as soon as it is predicted; a case whose mask
    exists is complete. Refuses to add to a folder predicted from another checkpoint (unless overwrite)."""

    def __init__(self, overwrite: bool = False):
        super().__init__(write_interval="batch")
        self.overwrite = overwrite
        self.written: list[str] = []
        self.record: dict[str, Any] = {}

    def _record_path(self, trainer) -> Path | None:
        output_dir = getattr(trainer.datamodule, "output_dir", None)
        return Path(output_dir) / RECORD if output_dir is not None else None

    def on_predict_start(self, trainer, pl_module) -> None:
        path = self._record_path(trainer)
        if path is None or not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        ckpt = trainer.ckpt_path
        sha = file_sha256(ckpt) if ckpt and Path(ckpt).is_file() else None
        earlier = json.loads(path.read_text()) if path.is_file() else {}
        overwrite = self.overwrite or bool(dm.hparams.get("overwrite", False))
        if getattr(dm, "done", None) and not overwrite and earlier.get("checkpoint_sha256") != sha:
            raise DataError(path.parent, f"holds {len(dm.done)} case(s) predicted from another checkpoint ({earlier.get('checkpoint')})",
                            "choose another --data.output_dir or pass --data.overwrite true")
        self.record = {"command": "predict", "status": "running", "checkpoint": str(ckpt) if ckpt else None, "checkpoint_sha256": sha,
                       "model": type(pl_module).__name__, "settings": {k: dm.hparams.get(k) for k in ("image_size", "channels", "modality")},
                       "cases": len(dm.cases), "already_complete": len(dm.done), "failed": len(dm.failures), **run_record()}
        write_json_atomic(redact(self.record), path)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        meta = batch["meta"]
        overwrite = self.overwrite or bool(meta.get("replace")) or bool(getattr(trainer.datamodule, "hparams", {}).get("overwrite", False))
        arrays = output_arrays(prediction, meta)
        geometry = Geometry(**{k: tuple(v) for k, v in meta["geometry"].items()})
        for kind in OUTPUT_KINDS:  # mask last: a mask on disk means the case is complete
            write_image(arrays[kind], geometry, meta["outputs"][kind], overwrite=overwrite)
            self.written.append(meta["outputs"][kind])

    def on_predict_end(self, trainer, pl_module) -> None:
        path = self._record_path(trainer)
        if path is not None and trainer.is_global_zero and self.record:
            write_json_atomic(redact({**self.record, "status": "complete", "written": len(self.written) // len(OUTPUT_KINDS)}), path)
