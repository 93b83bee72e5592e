"""Tiny checkpoints of every kind the project writes (fit for one step on phantoms with a Trainer), shared by the
CLI tests of this folder, and small image helpers."""

import lightning as L
import numpy as np
import pytest
from PIL import Image

from unisegdiff.data import LesionDataModule
from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter

FEATURES = [4, 8, 8, 16, 16, 4]
STAGED = dict(condition_features=FEATURES, denoiser_channels=[4, 8, 8, 16], num_samples=2)
PLANS = {
    "staged": None,  # the recommended plan (configs/unisegdiff/staged.yaml)
    "eps": [{"name": "eps", "start": 0, "end": 1000, "target": "eps", "loss": {"mse": 1.0}, "steps": 4}],
    "x0": [{"name": "x0", "start": 0, "end": 1000, "target": "x0", "loss": {"dice": 1.0, "bce": 1.0}, "steps": 2}],
}


def fit_one_step(model: L.LightningModule, path, image_size: int = 32) -> str:
    dm = LesionDataModule(root=None, datasets=["phantom_ct"], image_size=image_size, batch_size=2, num_workers=0,
                          phantom_samples=6, augment=False)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(path)
    return str(path)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """kind -> checkpoint: ``unet`` (DeterministicSegmenter), ``staged`` / ``eps`` / ``x0`` (StagedDiffusionSegmenter
    plans; ``staged`` was conditioned on the ``unet`` file, which is deleted afterwards, as on another machine)."""
    root = tmp_path_factory.mktemp("ckpts")
    phase1 = fit_one_step(DeterministicSegmenter(features=FEATURES), root / "phase1.ckpt")
    found = {"unet": fit_one_step(DeterministicSegmenter(features=FEATURES), root / "unet.ckpt")}
    for kind, stages in PLANS.items():
        condition = phase1 if kind == "staged" else None
        model = StagedDiffusionSegmenter(stages=stages, condition_ckpt=condition, **STAGED)
        found[kind] = fit_one_step(model, root / f"{kind}.ckpt")
    (root / "phase1.ckpt").unlink()  # predict must not need the phase-1 file
    return found


def _write_png(path, size=(50, 40), seed=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def write_png():
    """``write_png(path, size=(w, h), seed=1)``: a random RGB PNG (parent folders created)."""
    return _write_png
