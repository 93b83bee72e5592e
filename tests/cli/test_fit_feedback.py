"""Progress bars with real totals (step k/max_steps when training by steps), validation Dice in the bar and in a
line at fit end, and the summary files a fit and a test leave for the demo summary."""

import json
from types import SimpleNamespace

import lightning as L
import pytest
from lightning.pytorch.callbacks import RichProgressBar

from unisegdiff.data import LesionDataModule
from unisegdiff.fit_feedback import FitFeedback, StepProgressBar
from unisegdiff.models import DeterministicSegmenter


def _described(max_epochs, max_steps, global_step=120, epoch=3):
    bar = StepProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps, global_step=global_step)
    return bar._get_train_description(epoch).strip()


@pytest.mark.parametrize("max_epochs", [-1, None])
def test_training_by_steps_shows_step_of_max_steps(max_epochs):
    assert _described(max_epochs, 300) == "Epoch 3 · step 120/300"


def test_training_by_epochs_keeps_epoch_of_total():
    assert _described(10, -1) == "Epoch 3/9"


def test_fit_swaps_the_default_bar_prints_val_dice_and_writes_summaries(tmp_path, capsys):
    dm = LesionDataModule(root=None, datasets=["phantom_ct", "phantom_mr"], image_size=32, batch_size=2, num_workers=0,
                          phantom_samples=6, augment=False)
    trainer = L.Trainer(max_steps=5, max_epochs=-1, logger=False, enable_checkpointing=False, enable_model_summary=False,
                        limit_val_batches=2, num_sanity_val_steps=0, accelerator="cpu", default_root_dir=tmp_path,
                        callbacks=[FitFeedback()])
    model = DeterministicSegmenter(features=[4, 8, 8, 16, 16, 4])
    assert type(trainer.progress_bar_callback) is RichProgressBar
    trainer.fit(model, datamodule=dm)
    bar = trainer.progress_bar_callback
    assert isinstance(bar, StepProgressBar)
    assert bar._get_train_description(trainer.current_epoch).strip().endswith("step 5/5")
    assert float(bar.get_metrics(trainer, model)["val dice"]) == pytest.approx(float(trainer.callback_metrics["val/macro/dice"]), abs=1e-3)
    out, per_epoch = capsys.readouterr().out, trainer.num_training_batches  # validation ran after the first epoch
    assert per_epoch < 5 and f"validation Dice at step {per_epoch} of 5: macro" in out and "phantom_ct" in out and "phantom_mr" in out
    fit = json.loads((tmp_path / "fit_summary.json").read_text())
    assert fit["model"] == "DeterministicSegmenter" and fit["steps"] == 5 and fit["val_step"] == per_epoch and fit["seconds"] > 0
    assert set(fit["val_dice"]) == {"macro", "phantom_ct", "phantom_mr"}
    trainer.test(model, datamodule=dm)
    test = json.loads((tmp_path / "test_summary.json").read_text())
    assert set(test["test_dice"]) == {"macro", "phantom_ct", "phantom_mr"}
    assert test["test_dice"]["macro"] == pytest.approx(float(trainer.callback_metrics["test/macro/dice"]), abs=1e-4)


def test_a_disabled_progress_bar_is_left_alone(tmp_path):
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, accelerator="cpu", default_root_dir=tmp_path,
                        callbacks=[FitFeedback()])
    dm = LesionDataModule(root=None, datasets=["phantom_ct"], image_size=32, batch_size=2, num_workers=0, phantom_samples=4)
    trainer.fit(DeterministicSegmenter(features=[4, 8, 8, 16, 16, 4]), datamodule=dm)
    assert trainer.progress_bar_callback is None and (tmp_path / "fit_summary.json").is_file()
