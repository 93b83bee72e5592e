"""Shared evaluation for every segmenter: per-dataset metrics in validate/test, predict outputs,
optimizer set-up. Subclasses implement ``training_step`` and ``predict_fused``.
"""

from __future__ import annotations

import zlib
from typing import Any

import lightning as L
import torch

from unisegdiff.inference import FusedPrediction
from unisegdiff.metrics import PerDatasetMetrics


class SegmentationModule(L.LightningModule):
    """Base LightningModule: batches are dicts with ``image``, ``mask`` (optional at predict), ``dataset``, ``stem``."""

    def __init__(self, lr: float = 1e-3, weight_decay: float = 1e-4, max_lr_epochs: int | None = None):
        super().__init__()
        self.lr, self.weight_decay, self.max_lr_epochs = lr, weight_decay, max_lr_epochs
        self.eval_metrics = {"val": PerDatasetMetrics([]), "test": PerDatasetMetrics([])}
        self.last_metrics: dict[str, dict[str, float]] = {}

    # --- to implement -------------------------------------------------------------------------
    def predict_fused(self, image: torch.Tensor, generator: torch.Generator | None = None) -> FusedPrediction:
        raise NotImplementedError

    # --- evaluation ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        names = list(getattr(getattr(self.trainer, "datamodule", None), "dataset_names", None) or [])
        for metrics in self.eval_metrics.values():
            for name in sorted(names):
                metrics.index(name)

    def _eval_step(self, batch: dict, split: str) -> FusedPrediction:
        if "mask" not in batch:
            raise ValueError(f"{split} batches need a 'mask' entry (ground truth) to compute metrics")
        fused = self.predict_fused(batch["image"], generator=self._eval_generator(batch))
        self.eval_metrics[split].update(fused.mask, batch["mask"], list(batch["dataset"]))
        return fused

    def _eval_generator(self, batch: dict) -> torch.Generator:
        # seeded from the batch's stems so that samples do not depend on batch order, rank or epoch
        key = "|".join(str(s) for s in batch.get("stem", [])) or str(tuple(batch["image"].shape))
        return torch.Generator(device=batch["image"].device).manual_seed(zlib.crc32(key.encode()))

    def _eval_epoch_end(self, split: str) -> None:
        metrics = self.eval_metrics[split]
        values = metrics.compute(reduce_sum=self._reduce_sum)
        metrics.reset()
        self.last_metrics[split] = values
        # values are already reduced over ranks; sync_dist=False avoids averaging them twice
        self.log_dict({f"{split}/{k}": v for k, v in values.items()}, sync_dist=False, rank_zero_only=False)

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.trainer is None or self.trainer.world_size == 1:
            return tensor
        reduced = self.trainer.strategy.reduce(tensor.to(self.device, torch.float64), reduce_op="sum")
        return reduced.cpu()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, Any]:
        fused = self.predict_fused(batch["image"], generator=self._eval_generator(batch))
        return {"probability": fused.probability, "mask": fused.mask, "uncertainty": fused.uncertainty, "meta": batch.get("meta")}

    # --- optimization -------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if not self.max_lr_epochs:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_lr_epochs)
        return {"optimizer": opt, "lr_scheduler": sched}
