"""``unisegdiff predict``: a DataModule over user files/folders and a writer callback that saves
mask, probability and uncertainty maps in the input's geometry, atomically, never over an input.

2D images (PNG/JPEG/TIFF) get PNG outputs; NIfTI/MHA/NRRD/DICOM inputs get NIfTI outputs with the
input's spacing, origin and direction. 3D volumes given to a 2D model are segmented slice by slice.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from unisegdiff.data.preprocess import prepare_image
from unisegdiff.data.readers import PIL_EXTENSIONS, SITK_EXTENSIONS, Geometry, file_stem, file_suffix, read_image, write_image

OUTPUT_KINDS = ("mask", "prob", "uncertainty")
SUPPORTED = PIL_EXTENSIONS + SITK_EXTENSIONS


def _suffix(path: Path) -> str:
    return file_suffix(path) if path.is_file() else ""


def _stem(path: Path) -> str:
    return file_stem(path) if path.is_file() else path.name  # a DICOM series folder keeps its name


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (sorted, supported files inside; a folder of .dcm files is one DICOM series) or .txt lists."""
    if not inputs:
        raise ValueError("predict: no inputs given; pass --data.inputs with files, folders or a .txt file list")
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"predict: input {item!r} does not exist")
        if path.is_file() and path.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            found.extend(expand_inputs([str((path.parent / ln) if not Path(ln).is_absolute() else ln) for ln in lines]))
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file())
            if files and all(_suffix(p) == ".dcm" for p in files):
                found.append(path)  # one DICOM series
            else:
                usable = [p for p in files if _suffix(p) in SUPPORTED]
                if not usable:
                    raise ValueError(f"predict: folder {item!r} holds no supported image ({SUPPORTED})")
                found.extend(usable)
        elif _suffix(path) in SUPPORTED:
            found.append(path)
        else:
            raise ValueError(f"predict: input {item!r} has an unsupported extension; supported: {SUPPORTED}")
    return found


def output_paths(path: Path, output_dir: Path) -> dict[str, Path]:
    ext = ".png" if _suffix(path) in PIL_EXTENSIONS else ".nii.gz"
    return {kind: output_dir / f"{_stem(path)}_{kind}{ext}" for kind in OUTPUT_KINDS}


def plan_outputs(inputs: list[Path], output_dir: Path, overwrite: bool = False) -> dict[Path, dict[str, Path]]:
    """Output paths per input; refuses stem clashes, outputs landing on inputs, and existing files."""
    plan: dict[Path, dict[str, Path]] = {}
    owner: dict[Path, Path] = {}
    resolved_inputs = {p.resolve() for p in inputs}
    for path in inputs:
        outs = output_paths(path, output_dir)
        for out in outs.values():
            if out in owner:
                raise ValueError(f"predict: inputs {str(owner[out])!r} and {str(path)!r} share the stem {_stem(path)!r} and would write the same output {str(out)!r}; rename one or predict them into different --data.output_dir")
            if out.resolve() in resolved_inputs:
                raise ValueError(f"predict: output {str(out)!r} would overwrite an input; choose another --data.output_dir")
            if out.exists() and not overwrite:
                raise FileExistsError(f"predict: output {str(out)!r} already exists; remove it, choose another --data.output_dir or pass --data.overwrite true")
            owner[out] = path
        plan[path] = outs
    return plan


class PredictionDataset(Dataset):
    """One item per input: slices (N, C, S, S) for the model (N = 1 for a 2D image) plus metadata."""

    def __init__(self, inputs: list[Path], outputs: dict[Path, dict[str, Path]], image_size: int, channels: int, modality: str):
        self.inputs, self.outputs = inputs, outputs
        self.image_size, self.channels, self.modality = image_size, channels, modality

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path = self.inputs[i]
        record = read_image(str(path))
        array = record.array
        is_2d_file = _suffix(path) in PIL_EXTENSIONS
        if is_2d_file or array.ndim == 2:
            slices = [array]
        elif array.ndim == 3 and array.shape[0] == 1:
            slices = [array[0]]
        elif array.ndim == 3:
            slices = list(array)  # (D, H, W): one 2D slice per z
        else:
            raise ValueError(f"predict: {path} has array shape {array.shape}; expected a 2D image or a 3D volume")
        image = torch.stack([prepare_image(s, self.modality, self.image_size, self.channels) for s in slices])
        shape2d = tuple(slices[0].shape[:2])
        meta = {"path": str(path), "stem": _stem(path), "shape": tuple(array.shape), "shape2d": shape2d,
                "geometry": dataclasses.asdict(record.geometry), "is_2d_file": is_2d_file, "outputs": {k: str(v) for k, v in self.outputs[path].items()}}
        return {"image": image, "stem": [meta["stem"]] * image.shape[0], "meta": meta}


def _collate_one(items: list[dict]) -> dict:
    if len(items) != 1:
        raise ValueError("prediction batches hold one input (all its slices); use batch_size=1")
    return items[0]


class PredictionDataModule(L.LightningDataModule):
    """Predict-only DataModule over files, folders (sorted) or .txt lists of images.

    Args:
        inputs: files, folders or .txt file lists.
        output_dir: where ``<stem>_mask``, ``<stem>_prob`` and ``<stem>_uncertainty`` are written.
        image_size / channels / modality: preprocessing as in training (modality: a registry dataset
            name such as ``breast_us_busi`` or a normalization kind such as ``ct_window``).
        overwrite: allow replacing earlier outputs (never inputs).
    """

    def __init__(self, inputs: list[str], output_dir: str = "predictions", image_size: int = 128, channels: int = 3, modality: str = "auto", overwrite: bool = False, num_workers: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.output_dir = Path(output_dir)
        self.inputs = expand_inputs(list(inputs))
        self.outputs = plan_outputs(self.inputs, self.output_dir, overwrite)

    def predict_dataloader(self) -> DataLoader:
        ds = PredictionDataset(self.inputs, self.outputs, self.hparams.image_size, self.hparams.channels, self.hparams.modality)
        return DataLoader(ds, batch_size=1, shuffle=False, num_workers=self.hparams.num_workers, collate_fn=_collate_one)


def _to_input_grid(maps: torch.Tensor, shape2d: tuple[int, int]) -> np.ndarray:
    """(N, 1, S, S) model-resolution maps -> (N, H, W) float arrays at the input's resolution."""
    return F.interpolate(maps.float().cpu(), size=shape2d, mode="bilinear", align_corners=False)[:, 0].numpy()


class PredictionWriter(BasePredictionWriter):
    """Writes each input's mask / probability / uncertainty as soon as it is predicted."""

    def __init__(self, overwrite: bool = False):
        super().__init__(write_interval="batch")
        self.overwrite = overwrite
        self.written: list[str] = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        meta = batch["meta"]
        overwrite = self.overwrite or bool(getattr(trainer.datamodule, "hparams", {}).get("overwrite", False))
        prob = _to_input_grid(prediction["probability"], meta["shape2d"])
        unc = _to_input_grid(prediction["uncertainty"], meta["shape2d"])
        mask = (prob > 0.5).astype(np.uint8)
        geometry = Geometry(**{k: tuple(v) for k, v in meta["geometry"].items()})
        outs = meta["outputs"]
        if meta["is_2d_file"]:
            arrays = {"mask": mask[0] * 255, "prob": np.round(prob[0] * 255).astype(np.uint8),
                      "uncertainty": np.round(np.clip(unc[0], 0, 1) * 255).astype(np.uint8)}
        else:
            shape = meta["shape"]
            arrays = {"mask": mask.reshape(shape), "prob": prob.astype(np.float32).reshape(shape), "uncertainty": unc.astype(np.float32).reshape(shape)}
        for kind in OUTPUT_KINDS:
            write_image(arrays[kind], geometry, outs[kind], overwrite=overwrite)
            self.written.append(outs[kind])
