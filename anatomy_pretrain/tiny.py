"""Tiny settings for tests and smoke runs: coarse-spacing phantom data and small networks, plus a helper that
writes a Lightning-style checkpoint of an untrained module (state_dict + hyper_parameters).
"""

from __future__ import annotations

import io
from pathlib import Path

import lightning as L
import torch

from anatomy_pretrain.volume_data import VolumeDataModule
from unisegdiff.io import write_bytes_atomic

TINY_FEATURES = (4, 4, 8, 16, 32, 4)


def tiny_datamodule(phantoms: int = 3, patch: int = 32, **kwargs) -> VolumeDataModule:
    """Phantoms resampled to 10 mm voxels (~36 x 28 x 36, padded to the patch), patches of ``patch``^3, a 3-fold split."""
    args = dict(
        phantoms=phantoms, spacing=(10.0, 10.0, 10.0), window=(-300.0, 400.0), patch_size=(patch,) * 3,
        samples_per_volume=2, queue_length=4, batch_size=2, num_folds=3,
    )
    args.update(kwargs)
    return VolumeDataModule(**args)


def save_module_checkpoint(module: L.LightningModule, path: str | Path, global_step: int | None = None) -> Path:
    """A checkpoint readable by ``torch.load(weights_only=True)`` like the ones Lightning writes (``global_step``: the
    optimizer steps it was trained for, read back by ``read_checkpoint``; None: not recorded)."""
    buffer = io.BytesIO()
    blob = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    if global_step is not None:
        blob["global_step"] = int(global_step)
    torch.save(blob, buffer)
    # atomic: an interrupted run never leaves a truncated checkpoint for --reuse to pick up
    return write_bytes_atomic(buffer.getvalue(), path, overwrite=True)


def quiet_trainer(**kwargs) -> L.Trainer:
    """CPU trainer without logger, checkpoints or progress bar."""
    args = dict(accelerator="auto", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    args.update(kwargs)
    return L.Trainer(**args)
