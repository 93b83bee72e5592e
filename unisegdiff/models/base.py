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

    # --- to implement -------------------------------------------------------------------------
    def predict_fused(self, image: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None) -> FusedPrediction:
        raise NotImplementedError

    # --- evaluation ---------------------------------------------------------------------------
    @torch.inference_mode()
    def warm_up(self, image: torch.Tensor) -> None:
        """Run each network once at the inference batch shape (kernel selection, caches) so timings
        of ``predict_fused`` measure steady-state cost; the default runs ``predict_fused`` itself."""
        self.predict_fused(image)

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

    def _eval_generator(self, batch: dict) -> list[torch.Generator]:
        """One generator per sample, seeded from its dataset and stem: a sample's prediction does not
        depend on batch size, order, rank or epoch."""
        n = batch["image"].shape[0]
        names = list(batch.get("dataset", [""] * n))
        stems = list(batch.get("stem", [str(i) for i in range(n)]))
        device = batch["image"].device
        return [torch.Generator(device=device).manual_seed(zlib.crc32(f"{d}/{s}".encode())) for d, s in zip(names, stems)]

    def _eval_epoch_end(self, split: str) -> None:
        metrics = self.eval_metrics[split]
        values = metrics.compute(reduce_sum=self._reduce_sum)
        metrics.reset()
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

    # --- exact resume -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # timesteps and noise come from the global RNG: keep its state so a resumed run continues
        # with the same draws as an uninterrupted one (Lightning does not store RNG states itself)
        checkpoint["rng_state"] = {"torch": torch.get_rng_state()}
        # lets `unisegdiff predict/test --ckpt_path` rebuild the right class even for checkpoints
        # written outside LightningCLI (benchmarks, notebooks)
        cls = type(self)
        checkpoint.setdefault("hyper_parameters", {}).setdefault("_class_path", f"{cls.__module__}.{cls.__qualname__}")
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rng_state")
        if state is not None:
            torch.set_rng_state(state["torch"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])

    # --- optimization -------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if not self.max_lr_epochs:
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_lr_epochs)
        return {"optimizer": opt, "lr_scheduler": sched}
