"""One training run and one evaluation pass of the benchmark: a model trained for a fixed number of
optimizer steps (or a wall time), then scored image by image with its pixel calibration.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from unisegdiff.benchmark.calibration import PixelCalibration
from unisegdiff.inference import inference_autocast
from unisegdiff.metrics import per_sample_metrics


class StepPrinter(L.Callback):
    """One line every ``every`` optimizer steps (step, loss, seconds per step): progress of a long run in a log file,
    where the progress bar shows nothing."""

    def __init__(self, every: int = 100):
        self.every, self.start = every, None

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step % self.every == 0 and step > 0:
            loss = trainer.callback_metrics.get("train/loss")
            rate = (time.perf_counter() - self.start) / step
            print(f"[train] {type(pl_module).__name__} step {step}/{trainer.max_steps} loss {float(loss) if loss is not None else float('nan'):.4f} "
                  f"{rate:.2f} s/step", flush=True)


def make_trainer(max_steps: int, ckpt_dir: Path, precision: str, deterministic: bool, max_time: float | None = None) -> L.Trainer:
    """A bare training run: no validation, no logger, ``ckpt_dir/last.ckpt`` at the end; a ``Timer`` measures the training
    loop (``on_train_start`` to ``on_train_end``), the same clock ``max_time`` stops by."""
    # no version counter: a stale last.ckpt must be replaced, never kept beside a new last-v1.ckpt
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0, enable_version_counter=False)
    # the Timer carries max_time itself: Lightning ignores Trainer(max_time=...) when the callbacks hold a Timer
    timer = L.pytorch.callbacks.Timer(duration=None if max_time is None else datetime.timedelta(seconds=max_time))
    return L.Trainer(accelerator="auto", devices=1, max_steps=max_steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                     logger=False, callbacks=[checkpoint, StepPrinter(), timer],
                     enable_model_summary=False, enable_progress_bar=False,
                     deterministic=deterministic, precision=precision)


def train(model: L.LightningModule, dm: L.LightningDataModule, steps: int, ckpt_dir: Path, seed: int, precision: str,
          deterministic: bool = False, max_time: float | None = None) -> dict[str, Any]:
    """Fit for ``steps`` optimizer steps (``-1`` with ``max_time``: until that many seconds passed).

    Returns the steps actually taken, the wall time around ``fit`` (``seconds``) and the training loop's time
    (``loop_seconds``, what ``max_time`` counts); ``ckpt_dir/last.ckpt`` is this run's final checkpoint.
    """
    (ckpt_dir / "last.ckpt").unlink(missing_ok=True)
    L.seed_everything(seed, workers=True)
    trainer = make_trainer(steps, ckpt_dir, precision, deterministic, max_time)
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    seconds = time.perf_counter() - start
    if not (ckpt_dir / "last.ckpt").is_file():
        raise RuntimeError(f"training wrote no {ckpt_dir / 'last.ckpt'}")
    if steps > 0 and trainer.global_step != steps:
        raise RuntimeError(f"training stopped at step {trainer.global_step} of {steps} ({ckpt_dir}); the run is not at the budget")
    model.to(trainer.strategy.root_device)  # Lightning's teardown moves the module to the CPU: evaluate where it trained
    timer = next(c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer))
    return {"steps": int(trainer.global_step), "seconds": seconds, "loop_seconds": timer.time_elapsed("train")}


def _synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer around a model call measures the work, not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _predict(model, image: torch.Tensor, batch: dict, precision: str, sampling: dict):
    with inference_autocast(precision, model.device.type):  # generators on the image's device, not the batch's
        return model.predict_fused(image, generator=model._eval_generator({**batch, "image": image}), **sampling)


@torch.inference_mode()
def evaluate_images(model, dataset: Dataset, batch_size: int, precision: str, scheduler=None, min_seconds: float = 0.0,
                    num_samples: int | None = None, guidance_scale: float | None = None,
                    condition_weight: float | None = None, pixel: dict[str, PixelCalibration] | None = None) -> dict[str, Any]:
    """Per-image Dice/IoU/HD95 and mean uncertainty, pixel calibration per dataset, and seconds per image.

    ``pixel``: accumulators to add this pass's pixels to (several models' folds pooled into one calibration); the
    returned calibration then covers everything they hold.

    A plain loop, not ``Trainer.test`` + a timing callback: the timed region must hold only the model call
    (no hooks, logging or metric reduction inside it), after an untimed warm-up, and repeatable.

    Timing covers model inference only, after an untimed warm-up at the batch shape (the first call of a
    shape pays for kernel selection). With ``min_seconds`` the pass is repeated, timed only, until that
    much inference time was measured: a short pass is noisy to time.
    """
    model.eval()
    # a diffusion model's sampler and sample count for this pass (the model's own settings stay untouched)
    sampling = {k: v for k, v in (("scheduler", scheduler), ("num_samples", num_samples), ("guidance_scale", guidance_scale),
                                  ("condition_weight", condition_weight)) if v is not None}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    rows: list[dict[str, Any]] = []
    pixel = {} if pixel is None else pixel
    first = next(iter(loader))
    with inference_autocast(precision, model.device.type):
        image = first["image"].to(model.device)
        model.warm_up(image) if not sampling.keys() - {"scheduler"} else model.predict_fused(image, **sampling)  # warm at the timed shape
    seconds, timed, passes = 0.0, 0, 0
    while passes == 0 or seconds < min_seconds:
        for batch in loader:
            image = batch["image"].to(model.device)
            _synchronize(image.device)
            start = time.perf_counter()
            fused = _predict(model, image, batch, precision, sampling)
            _synchronize(image.device)
            seconds += time.perf_counter() - start
            timed += image.shape[0]
            if passes:
                continue
            prob, mask, unc = fused.probability.float().cpu(), fused.mask.cpu(), fused.uncertainty.float().cpu()
            scores = per_sample_metrics(mask, batch["mask"])
            # a diffusion model's condition network alone: whether phase 2 improves on the segmentation it starts from
            condition = None
            if hasattr(model, "condition_probability"):  # under the same autocast as the model it is compared with
                with inference_autocast(precision, model.device.type):
                    condition = per_sample_metrics((model.condition_probability(image).cpu() > 0.5).float(), batch["mask"])[:, 0]
            for i, (name, stem) in enumerate(zip(batch["dataset"], batch["stem"])):
                hd95 = float(scores[i, 2])
                rows.append({"dataset": name, "stem": stem, "dice": float(scores[i, 0]), "iou": float(scores[i, 1]),
                             "hd95": None if hd95 != hd95 else hd95, "uncertainty": float(unc[i].mean())})
                if condition is not None:
                    rows[-1]["condition_dice"] = float(condition[i])
                pixel.setdefault(name, PixelCalibration()).update(prob[i:i + 1], batch["mask"][i:i + 1], unc[i:i + 1])
        passes += 1
    return {"images": rows, "pixel": {name: {**cal.compute(), "reliability": cal.reliability()} for name, cal in sorted(pixel.items())},
            "seconds_per_image": seconds / max(timed, 1), "count": len(rows)}


def per_dataset_subset(dataset, per_dataset: int) -> Subset:
    """The first ``per_dataset`` images of each dataset (a fixed subset for the slow side-by-side timing)."""
    taken: dict[str, int] = {}
    index = []
    for i, name in enumerate(dataset.dataset_of_sample):
        if taken.get(name, 0) < per_dataset:
            taken[name] = taken.get(name, 0) + 1
            index.append(i)
    return Subset(dataset, index)
