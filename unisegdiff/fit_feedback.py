"""What a fit shows while and after it runs: a progress bar with real totals (step k/max_steps when training by
steps) and validation Dice, a one-line validation Dice summary at fit end, and small summary files for the demo.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only

from unisegdiff.io import write_json_atomic

VAL_DICE = "val/macro/dice"
FIT_SUMMARY, TEST_SUMMARY = "fit_summary.json", "test_summary.json"


def by_steps(trainer: L.Trainer) -> bool:
    """Whether the fit is bounded by ``max_steps`` alone (``max_epochs`` None or -1)."""
    return (trainer.max_epochs is None or trainer.max_epochs < 0) and trainer.max_steps > 0


def dice_per_dataset(metrics: dict[str, Any], split: str) -> dict[str, float]:
    """``{dataset: dice}`` from logged ``<split>/<dataset>/dice`` values (``macro`` included)."""
    prefix = f"{split}/"
    return {key[len(prefix):-len("/dice")]: round(float(value), 4) for key, value in sorted(metrics.items())
            if key.startswith(prefix) and key.endswith("/dice") and key.count("/") == 2}


class StepProgressBar(RichProgressBar):
    """Rich progress bar reading ``Epoch 3/9`` when training by epochs and ``Epoch 3 · step 120/300`` when
    training by ``max_steps`` (Lightning's own shows ``Epoch 3/-2``); shows the last validation Dice."""

    def _get_train_description(self, current_epoch: int) -> str:
        if not by_steps(self.trainer):
            return super()._get_train_description(current_epoch)
        return f"Epoch {current_epoch} · step {self.trainer.global_step}/{self.trainer.max_steps}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if by_steps(trainer) and self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, description=self._get_train_description(trainer.current_epoch))

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        dice = trainer.callback_metrics.get(VAL_DICE)
        if dice is not None and not trainer.sanity_checking:
            items["val dice"] = f"{float(dice):.3f}"
        return items


class FitFeedback(L.Callback):
    """Makes Lightning's default Rich progress bar a :class:`StepProgressBar` (a config entry of a progress bar
    itself would clash with ``--trainer.enable_progress_bar false``), prints the validation Dice per dataset at the
    end of a fit and writes ``fit_summary.json`` (model, steps, epochs, seconds, last validation Dice) and, after a
    test, ``test_summary.json`` (test Dice per dataset) into the trainer's ``default_root_dir`` (read by
    ``python -m unisegdiff.demo_summary``)."""

    def __init__(self) -> None:
        self._started: float | None = None
        self._val_step: int | None = None  # the step of the last validation (a fit by steps may stop after it)

    def setup(self, trainer, pl_module, stage: str) -> None:
        bar = trainer.progress_bar_callback
        if type(bar) is RichProgressBar:  # the default one; a progress bar chosen in a config is left alone
            bar.__class__ = StepProgressBar  # same state, only methods differ; runs before the bar's own hooks

    def on_fit_start(self, trainer, pl_module) -> None:
        self._started, self._val_step = time.perf_counter(), None

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._val_step = trainer.global_step

    @rank_zero_only
    def on_fit_end(self, trainer, pl_module) -> None:
        seconds = time.perf_counter() - self._started if self._started is not None else None
        dice = dice_per_dataset(trainer.callback_metrics, "val")
        summary = {"model": type(pl_module).__name__, "steps": trainer.global_step, "epochs": trainer.current_epoch,
                   "seconds": None if seconds is None else round(seconds, 1), "val_step": self._val_step, "val_dice": dice}
        write_json_atomic(summary, Path(trainer.default_root_dir) / FIT_SUMMARY)
        if dice:
            parts = [f"macro {dice['macro']:.3f}"] if "macro" in dice else []
            parts += [f"{name} {value:.3f}" for name, value in dice.items() if name != "macro"]
            print(f"validation Dice at step {self._val_step} of {trainer.global_step}: " + " | ".join(parts))
        else:
            print(f"fit ended after {trainer.global_step} steps without a validation Dice (no validation ran)")

    @rank_zero_only
    def on_test_end(self, trainer, pl_module) -> None:
        summary = {"model": type(pl_module).__name__, "test_dice": dice_per_dataset(trainer.callback_metrics, "test")}
        write_json_atomic(summary, Path(trainer.default_root_dir) / TEST_SUMMARY)
