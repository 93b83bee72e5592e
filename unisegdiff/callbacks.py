"""Lightning callbacks: timestep profile and example overlays at validation end, and a run record
(seed, git commit, package versions) next to the logs. W&B gets tables and images; other loggers
get the same as files in the log directory.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from unisegdiff.io import write_json_atomic
from unisegdiff.plots import plot_overlays, plot_timestep_profiles
from unisegdiff.secrets import redact
from unisegdiff.timestep_profile import profile_timesteps, timestep_profile

PACKAGES = ("torch", "lightning", "monai", "torchio", "wandb", "jsonargparse", "numpy", "scipy", "SimpleITK", "unisegdiff")


def log_dir_of(trainer: L.Trainer) -> Path:
    base = trainer.log_dir or trainer.default_root_dir
    return Path(base)


def run_record(seed: int | None = None) -> dict:
    """Seed, git commit (and whether the tree is dirty), Python and package versions."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            return None

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    dirty = git("status", "--porcelain")
    return {
        "seed": seed if seed is not None else os.environ.get("PL_GLOBAL_SEED"),
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(dirty),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }


class StageCheckpoint(L.pytorch.callbacks.ModelCheckpoint):
    """ModelCheckpoint writing into the trainer's ``default_root_dir`` unless ``dirpath`` is given, so one
    callback list serves every stage config (configs/trainer/fit_defaults.yaml); no version counter: a rerun
    replaces ``last.ckpt``, which the next phase loads, instead of leaving it stale beside ``last-v1.ckpt``."""

    def __init__(self, *args, enable_version_counter: bool = False, **kwargs):
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = trainer.default_root_dir
        super().setup(trainer, pl_module, stage)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        """Also writes ``last.ckpt`` on the batch that reaches ``max_steps``: Lightning would save it at the epoch's end,
        with the loop state of a finished epoch, and a resume would then skip the rest of the epoch it stopped in."""
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.save_last and 0 < trainer.max_steps <= trainer.global_step and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class RunRecordCallback(L.Callback):
    """Writes ``run_record.json`` (seed, commit, versions) into the log directory at fit start, and
    ``test_run_record.json`` at test start: a test of a trained run never overwrites the fit's record."""

    @rank_zero_only
    def _write(self, trainer: L.Trainer, name: str = "run_record.json") -> None:
        record = redact(run_record())
        write_json_atomic(record, log_dir_of(trainer) / name)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update({"run_record": record}, allow_val_change=True)

    def on_fit_start(self, trainer, pl_module):
        self._write(trainer)

    def on_test_start(self, trainer, pl_module):
        self._write(trainer, "test_run_record.json")


class ValidationFiguresCallback(L.Callback):
    """At the end of validation: timestep profile (diffusion models) and overlays of validation images, the first
    ``max_images`` of every dataset (a unified model's figures cover each modality, not only the first batch's)."""

    def __init__(self, every_n_epochs: int = 1, profile_points: int = 20, max_images: int = 4):
        self.every_n_epochs, self.profile_points, self.max_images = every_n_epochs, profile_points, max_images
        self._batch: dict | None = None
        self._taken: dict[str, int] = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0:
            self._batch, self._taken = None, {}
        names = list(batch.get("dataset", ["all"] * batch["image"].shape[0]))
        keep = []
        for i, name in enumerate(names):
            if self._taken.get(name, 0) < self.max_images:
                self._taken[name] = self._taken.get(name, 0) + 1
                keep.append(i)
        if not keep:
            return
        part = {k: (v[keep] if torch.is_tensor(v) else [list(v)[i] for i in keep]) for k, v in batch.items() if k in ("image", "mask", "dataset", "stem")}
        if self._batch is None:
            self._batch = part
        else:
            self._batch = {k: (torch.cat([self._batch[k], v]) if torch.is_tensor(v) else self._batch[k] + v) for k, v in part.items()}

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module):
        if self._batch is None or trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        out_dir = log_dir_of(trainer) / "figures"
        image, mask = self._batch["image"].to(pl_module.device), self._batch["mask"].to(pl_module.device)
        epoch = trainer.current_epoch
        fused = pl_module.predict_fused(image, generator=torch.Generator(device=image.device).manual_seed(0))
        titles = [f"{d}/{s}" for d, s in zip(self._batch.get("dataset", []), self._batch.get("stem", []))] or None
        overlay = plot_overlays(image.cpu().numpy(), mask.cpu().numpy(), fused.mask.cpu().numpy(), fused.uncertainty.cpu().numpy(), out_dir / f"overlay_epoch{epoch:03d}.png", titles)
        images = {"val/overlay": overlay}
        rows = None
        if hasattr(pl_module, "one_step_x0"):
            ts = profile_timesteps(pl_module.plan.num_timesteps, self.profile_points)
            rows = timestep_profile(pl_module, image, mask, ts)
            images["val/timestep_profile"] = plot_timestep_profiles({type(pl_module).__name__: rows}, out_dir / f"timestep_profile_epoch{epoch:03d}.png")
            with open(out_dir / f"timestep_profile_epoch{epoch:03d}.csv", "w", newline="") as fh:
                csv.writer(fh).writerows([("t", "dice"), *rows])
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                for key, path in images.items():
                    logger.log_image(key=key, images=[str(path)], step=trainer.global_step)
                if rows is not None:
                    logger.log_table(key="val/timestep_profile_table", columns=["t", "dice"], data=[list(r) for r in rows], step=trainer.global_step)
        self._batch = None
