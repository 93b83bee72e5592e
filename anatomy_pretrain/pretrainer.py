"""AnatomyGuidedDiffusionPretrainer: pretrains a 3D encoder-decoder on CT patches by denoising (diffusion pretext),
guided by the sin/cos embedding of the frozen coordinate model's map; switches give the unguided and restorative ablations.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F

from anatomy_pretrain.backbone import Guidance, GuidedUNet3D
from anatomy_pretrain.coordinate_embedding import embedding_channels, guide_from_batch
from anatomy_pretrain.corruptions import models_genesis_corrupt
from anatomy_pretrain.diagnostics import channel_decorrelation
from unisegdiff.diffusion import from_x0_eps, make_schedule, q_sample


# what a checkpoint meant when it lacks one of these (it was written before the hyper-parameter existed)
LEGACY_HPARAMS = {"target": "x0", "decorrelation": 0.0, "skip_dropout": 0.0, "max_timestep": None}


def stored_hparams(hparams: dict) -> dict:
    """A pretrainer checkpoint's hyper-parameters with the legacy meaning of the ones it lacks."""
    return {**LEGACY_HPARAMS, **hparams}


class AnatomyGuidedDiffusionPretrainer(L.LightningModule):
    """``pretext='diffusion'``: x_t = q_sample(x0, t, eps), the net predicts ``target`` (x0/eps/v) from x_t (noise-level
    blind: no timestep input, so the encoder stays a plain BasicUNet encoder). ``pretext='restorative'``: Models Genesis.
    ``guidance`` ('none'/'input'/'film') feeds the embedding of ``batch["coords"]``: the frozen coordinate model's map of
    the whole volume, cropped with the patch (``VolumeDataModule(coordinate_ckpt=...)`` adds it).
    ``skip_dropout``: during training each U-Net skip (levels 0-3, per sample) is zeroed with this probability, so the
    decoder cannot rebuild the patch from the shallow skips alone and the deep encoder levels must carry it.
    ``decorrelation``: weight of the mean squared channel correlation of every encoder level added to the pretext loss
    (against the low-rank, collapsed features a plain pretext leaves; see ``diagnostics.effective_rank``).
    ``guidance_dropout``: during training each sample's guide is zeroed with this probability (classifier-free-guidance
    style condition dropout, Ho & Salimans 2022), so the encoder cannot lean on the coordinates alone.
    ``film_levels``: the encoder levels the FiLM guidance modulates (default all five; see ``GuidedUNet3D``).

    Defaults are the recommended recipe (reports/bench/anatomy.md): ``target='eps'`` and ``decorrelation=1.0``. They
    used to be ``x0`` and ``0.0``: a checkpoint written before a hyper-parameter existed meant the old value
    (``LEGACY_HPARAMS``), and :meth:`load_from_checkpoint` / :func:`stored_hparams` read it that way."""

    def __init__(
        self,
        features: tuple[int, int, int, int, int, int] = (16, 16, 32, 64, 128, 16),
        pretext: Literal["diffusion", "restorative"] = "diffusion",
        guidance: Guidance = "film",
        num_frequencies: int = 3,
        schedule: str = "cosine",
        num_timesteps: int = 1000,
        max_timestep: int | None = None,
        target: Literal["x0", "eps", "v"] = "eps",
        skip_dropout: float = 0.0,
        decorrelation: float = 1.0,
        lr: float = 1e-3,
        guidance_dropout: float = 0.0,
        film_levels: tuple[int, ...] | None = None,
    ):
        super().__init__()
        if not 0.0 <= skip_dropout < 1.0:
            raise ValueError(f"skip_dropout must be in [0, 1), got {skip_dropout}")
        if not 0.0 <= guidance_dropout < 1.0:
            raise ValueError(f"guidance_dropout must be in [0, 1), got {guidance_dropout}")
        if decorrelation < 0:
            raise ValueError(f"decorrelation must be >= 0, got {decorrelation}")
        self.save_hyperparameters()
        guide_channels = embedding_channels(num_frequencies) if guidance != "none" else 0
        self.net = GuidedUNet3D(features=features, guidance=guidance, guide_channels=guide_channels,
                                film_levels=tuple(film_levels) if film_levels is not None else None)
        self.schedule = make_schedule(schedule, num_timesteps)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):
        """Lightning's loader, with the legacy meaning of hyper-parameters an old checkpoint lacks (not today's defaults)."""
        from unisegdiff.io import read_checkpoint

        saved = read_checkpoint(checkpoint_path)["hyper_parameters"]
        legacy = {k: v for k, v in LEGACY_HPARAMS.items() if k not in saved and k not in kwargs}
        return super().load_from_checkpoint(checkpoint_path, *args, **legacy, **kwargs)

    def guide(self, batch: dict) -> torch.Tensor | None:
        """Sin/cos embedding of the batch's coordinate map (None without guidance)."""
        return guide_from_batch(batch, self.hparams.guidance, self.hparams.num_frequencies)

    def reconstruct(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the net's output map, the decorrelation penalty of its encoder levels; 0 when ``decorrelation`` is 0), with
        the skips dropped at random while training (``skip_dropout``)."""
        feats = self.net.encode(x, guide)
        penalty = x.new_zeros(())
        if self.hparams.decorrelation > 0:
            penalty = self.hparams.decorrelation * sum(channel_decorrelation(f) for f in feats)
        p = self.hparams.skip_dropout
        if self.training and p > 0:
            keep = torch.rand(x.shape[0], len(feats) - 1, device=x.device) >= p
            feats = [f * keep[:, i].view(-1, 1, 1, 1, 1).to(f.dtype) for i, f in enumerate(feats[:-1])] + feats[-1:]
        return self.net.decode(feats), penalty

    def pretext_loss(self, x0: torch.Tensor, guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the pretext's reconstruction / denoising MSE, the decorrelation penalty); training minimises their sum."""
        hp = self.hparams
        if hp.pretext == "restorative":
            out, penalty = self.reconstruct(models_genesis_corrupt(x0), guide)
            return F.mse_loss(out, x0), penalty
        t_max = hp.max_timestep or hp.num_timesteps
        t = torch.randint(0, t_max, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = q_sample(self.schedule, x0, t, noise)
        target = from_x0_eps(x0, noise, hp.target, self.schedule.alpha_bar(t, x0))
        out, penalty = self.reconstruct(x_t, guide)
        return F.mse_loss(out, target), penalty

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        guide = self.guide(batch)
        p = self.hparams.get("guidance_dropout", 0.0)
        if guide is not None and p > 0:
            keep = torch.rand(guide.shape[0], device=guide.device) >= p
            guide = guide * keep.view(-1, *([1] * (guide.ndim - 1))).to(guide.dtype)
        pretext, penalty = self.pretext_loss(batch["image"], guide)
        n = batch["image"].shape[0]
        self.log("train/loss", pretext + penalty, prog_bar=True, batch_size=n)
        self.log("train/pretext", pretext, batch_size=n)
        if self.hparams.decorrelation > 0:
            self.log("train/decorrelation", penalty, batch_size=n)
        return pretext + penalty

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image = batch["image"]
        crop = tuple(min(s, 64) for s in image.shape[2:])
        crop = tuple(c - c % 16 for c in crop)
        g = torch.Generator(device="cpu").manual_seed(batch_idx)
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31, (), generator=g)))
            guide = self.guide(batch)
            cut = lambda x: None if x is None else x[..., : crop[0], : crop[1], : crop[2]]  # noqa: E731
            pretext, penalty = self.pretext_loss(cut(image), cut(guide))
        self.log("val/loss", pretext, batch_size=1)
        if self.hparams.decorrelation > 0:
            self.log("val/decorrelation", penalty, batch_size=1)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.net.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
