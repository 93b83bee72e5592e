"""Staged conditional diffusion segmenter (UniSegDiff-style): the prediction target changes by
timestep stage, as given by a :class:`StagePlan`; the denoiser is conditioned on the features of
a condition network, pre-trained and frozen (the paper's two-phase plan) or trained with it (the shipped default).

Default plan (configs/unisegdiff/staged.yaml, our design): at high noise [600, 1000) x_t says
almost nothing about the mask, so an eps target is nearly unlearnable and the model learns to
ignore the image; predicting x0 there (Dice + BCE) makes every high-t step a segmentation step
and allows a one-call jump from noise. The middle stage [200, 600) predicts v (MSE), keeping a
proper probabilistic model for sample diversity and uncertainty. The low-noise stage [0, 200)
predicts x0 again with Dice + BCE + MSE to refine boundaries instead of copying its input.
Eps-only (MedSegDiff-style) and x0-only (Diff-UNet-style) are one-stage plans of this module.

Two choices keep the stages from fighting inside one network: each stage has its own embedding
and output head (``stage_heads``), because the target jumps at a boundary and a network smooth
in t blurs the two targets there; and x0 heads predict a correction to the condition network's
logits (``x0_residual``), so training starts from the phase-1 segmentation instead of from zero.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.losses import DiceLoss
from torch.nn import functional as F

from unisegdiff.diffusion import StagedScheduler, StagePlan, randn_rows
from unisegdiff.diffusion.samplers import Generators
from unisegdiff.inference import FusedPrediction, check_anchor_weight, fuse_samples
from unisegdiff.models.base import SegmentationModule
from unisegdiff.models.checkpoints import load_module_weights
from unisegdiff.nets import ConditionalDenoiser, ConditionUNet
from unisegdiff.recipes import model_init_args

# the recommended plan is read from this config, never copied into code
RECIPE = "unisegdiff/staged"


class StagedDiffusionSegmenter(SegmentationModule):
    """Phase 2: conditional diffusion on the lesion mask with a staged prediction target.

    Args:
        stages: the StagePlan as a list of stage dicts (name, start, end, target, loss, weight, steps).
            None reads the recommended plan from ``configs/unisegdiff/staged.yaml``; the resolved plan is
            stored in the hyperparameters, so a checkpoint never depends on the config file later.
        stage_boundaries: optional inner boundaries (ascending, one fewer than stages), e.g. [200, 600];
            a sweepable training knob.
        num_timesteps, schedule: the diffusion process.
        condition_ckpt: phase-1 checkpoint (DeterministicSegmenter) whose network conditions the denoiser;
            read only when a fit starts from scratch. A checkpoint of this module holds the phase-1
            weights itself, so test / predict / resume never need this file.
        freeze_condition: keep the condition network frozen (True) or fine-tune it with an auxiliary loss.
        condition_loss_weight: weight of the condition network's own Dice + BCE loss when fine-tuned.
        denoiser_trains_condition: when fine-tuned, also let the diffusion loss flow into the condition network;
            False trains it by its own loss only (the denoiser sees its features as fixed inputs), so it learns
            exactly as a U-Net would and the denoiser can only add to it.
        num_samples: K samples per image at inference, fused by ``fusion`` (mean / staple).
        sampler, sampling_steps: the default inference scheduler: ``ddim`` or ``ddpm``; None follows the
            plan's per-stage steps, an int spaces that many steps over [0, T), a list gives the steps per
            stage (ascending t). Any other setting can be passed as ``scheduler=`` at inference time.
        stage_heads: a stage embedding and one output head per stage (no effect on one-stage plans).
        x0_residual: x0 stages predict logits added to the condition network's logits.
        denoiser_image: the denoiser also takes the image itself at its stem (not only the condition features),
            so it can segment on its own and correct the condition network with information it did not use.
        condition_dropout: in training, the fraction of rows whose condition (features, probability and the x0
            residual's logits) is dropped, so the denoiser must segment from x_t and the image alone (needs
            ``denoiser_image``). Like classifier-free guidance's condition dropout (Ho & Salimans 2022): it
            stops the denoiser from merely trusting features that are near-perfect on the training images.
        self_correction: in training, the probability that a row of a low-noise x0 stage (every x0 stage but
            the highest-t one) is noised from the condition network's own estimate instead of the true mask,
            with the true mask kept as the target. At sampling those stages see x_t of the model's own estimate,
            never of the true mask; trained only on the latter they learn to copy x_t (measured: one-step Dice
            0.97-0.99 below t = 600, reports/benchmark/ablations.md). Exposure-bias correction in the spirit of
            Ning et al. 2023 ("Input perturbation reduces exposure bias in diffusion models") and of SegRefiner
            (Wang et al., NeurIPS 2023), which trains its refiner on coarse masks instead of the ground truth.
        guidance_scale: inference mixes the conditioned and the condition-dropped outputs as classifier-free guidance
            does, ``uncond + s * (cond - uncond)`` on the raw outputs (x0 rows: logits): 1 uses the condition alone
            (one call per step), 0.5 averages the two predictions' logits (an ensemble of the condition-guided and the
            image-only denoiser, two calls per step), above 1 amplifies the condition. Needs ``condition_dropout`` > 0.
        condition_weight: the condition network's own probability joins the K samples' fusion with this weight,
            ``w * condition + (1 - w) * fused samples`` (0: the samples alone, 1: the condition network alone). An
            ensemble of the deterministic segmenter and the diffusion samples, in the spirit of Diff-UNet's weighted
            fusion of its per-step predictions (Xing et al., "Diff-UNet", 2023) and of MedSegDiff's sample ensembles;
            it costs no extra network call (the condition network runs once per image anyway).
        self_condition: self-conditioning (Chen, Zhang & Hinton 2023, "Analog Bits", their section 3.2): the denoiser also
            takes the previous x0 estimate. In training, this fraction of the batches first runs the denoiser without it
            (zeros, no gradient) and feeds that estimate, detached, to the trained call; the other batches see zeros
            (Analog Bits use 0.5). At sampling every call sees the x0 estimate of the call before it (zeros at the
            first), so the calls of a plan refine an estimate instead of starting from x_t alone, as an alternative to
            averaging K independent samples. 0 builds no extra input.
    """

    def __init__(
        self,
        stages: list[dict[str, Any]] | None = None,
        stage_boundaries: list[int] | None = None,
        num_timesteps: int = 1000,
        schedule: str = "cosine",
        spatial_dims: int = 2,
        in_channels: int = 3,
        condition_features: tuple[int, int, int, int, int, int] = (16, 32, 64, 128, 256, 16),
        denoiser_channels: tuple[int, int, int, int] = (16, 32, 64, 128),
        use_condition_prob: bool = True,
        condition_ckpt: str | None = None,
        freeze_condition: bool = True,
        condition_loss_weight: float = 1.0,
        denoiser_trains_condition: bool = True,
        num_samples: int = 4,
        fusion: str = "mean",
        uncertainty: str = "entropy",
        sampler: str = "ddim",
        sampling_steps: int | list[int] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_lr_epochs: int | None = None,
        stage_heads: bool = True,
        x0_residual: bool = True,
        denoiser_image: bool = False,
        condition_dropout: float = 0.0,
        self_correction: float = 0.0,
        guidance_scale: float = 1.0,
        condition_weight: float = 0.0,
        self_condition: float = 0.0,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, max_lr_epochs=max_lr_epochs)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        for name, value in (("condition_dropout", condition_dropout), ("self_correction", self_correction)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {value}")
        if isinstance(self_condition, bool) or not isinstance(self_condition, (int, float)) or not 0.0 <= self_condition <= 1.0:
            raise ValueError(f"self_condition must be a fraction in [0, 1], got {self_condition!r}")
        self._check_guidance(guidance_scale, condition_dropout)
        check_anchor_weight(condition_weight, "condition_weight")
        if condition_dropout > 0 and not denoiser_image:
            raise ValueError("condition_dropout needs denoiser_image: true (without the condition the denoiser must see the image)")
        plan = self.stage_plan(stages, num_timesteps)
        self.save_hyperparameters()
        self.hparams["stages"] = plan.to_dict()  # checkpoints carry the plan they were trained with
        if stage_boundaries is not None:
            plan = plan.with_boundaries(stage_boundaries)
        self.scheduler = StagedScheduler.from_plan(plan, schedule, sampler, sampling_steps)
        self.condition = ConditionUNet(spatial_dims=spatial_dims, in_channels=in_channels, features=condition_features)
        self.freeze_condition = freeze_condition
        self.condition.requires_grad_(not freeze_condition)
        self.condition.train(not freeze_condition)
        self.denoiser = ConditionalDenoiser(
            spatial_dims=spatial_dims, cond_channels=self.condition.feature_channels,
            channels=denoiser_channels, use_cond_prob=use_condition_prob,
            num_stages=self.scheduler.num_stages if stage_heads else 1,
            image_channels=in_channels if denoiser_image else 0, self_condition=self_condition > 0,
        )
        self.dice = DiceLoss(sigmoid=False)

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):
        """Lightning's loader; a checkpoint from before ``sampling_steps`` took per-stage lists stored them as
        ``stage_steps``: they become ``sampling_steps`` (what that checkpoint was evaluated with)."""
        from unisegdiff.io import read_checkpoint

        saved = read_checkpoint(checkpoint_path)["hyper_parameters"]
        if "stage_steps" in saved and "sampling_steps" not in kwargs:
            kwargs["sampling_steps"] = saved.get("sampling_steps") or saved["stage_steps"]
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)

    @property
    def plan(self) -> StagePlan:
        return self.scheduler.plan

    # --- conditioning -------------------------------------------------------------------------
    def load_condition_weights(self) -> None:
        """Load the phase-1 network from ``condition_ckpt`` (weights only)."""
        if self.hparams.condition_ckpt:
            load_module_weights(self.condition, self.hparams.condition_ckpt, prefix="net.")

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # only a fit from scratch reads the phase-1 file; a checkpoint of this module (resume, test,
        # predict) already holds the phase-1 weights, so it works from any directory and machine
        if stage == "fit" and self.trainer is not None and self.trainer.ckpt_path is None:
            self.load_condition_weights()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_condition:
            self.condition.eval()  # frozen: no dropout / norm statistics updates
        return self

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Condition network once per image: (logits, multi-scale features)."""
        if self.freeze_condition:
            with torch.no_grad():
                return self.condition.forward_features(image)
        return self.condition.forward_features(image)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, stage: torch.Tensor, feats: list[torch.Tensor], cond_logits: torch.Tensor,
                image: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                x0_prev: torch.Tensor | None = None) -> torch.Tensor:
        """Raw denoiser output per row (x0 rows are logits, eps / v rows the target); ``stage`` per row.

        ``image`` goes to a denoiser built with ``denoiser_image``; ``keep`` (B,) bool drops the condition of the
        rows where it is False (zero features, probability 0.5, no residual logits): condition dropout; ``x0_prev``
        to a self-conditioned one (None: zeros; ignored by a denoiser without ``self_condition``).
        """
        if keep is not None:
            shape = (-1, *([1] * (cond_logits.ndim - 1)))
            k = keep.to(cond_logits.dtype).reshape(shape)
            cond_logits = cond_logits * k
            feats = [f * keep.to(f.dtype).reshape(shape) for f in feats]
        raw = self.denoiser(x_t, t, feats, torch.sigmoid(cond_logits), stage if self.denoiser.num_stages > 1 else None,
                            image if self.hparams.get("denoiser_image") else None,
                            x0_prev if self.denoiser.self_condition else None)
        if self.hparams.x0_residual:
            raw = raw + self.scheduler.is_x0(stage).reshape(-1, *([1] * (raw.ndim - 1))) * cond_logits
        return raw

    @staticmethod
    def stage_plan(stages: list[dict[str, Any]] | None = None, num_timesteps: int = 1000,
                   stage_boundaries: list[int] | None = None) -> StagePlan:
        """The plan a model built with these arguments samples with: ``stages`` (None: the shipped recipe's), moved to
        ``stage_boundaries`` when given. Code that checks settings before training (the benchmark) asks this too."""
        plan = StagePlan(stages if stages is not None else model_init_args(RECIPE)["stages"], num_timesteps)
        return plan.with_boundaries(stage_boundaries) if stage_boundaries is not None else plan

    @staticmethod
    def _check_guidance(scale: float, condition_dropout: float) -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale != scale:
            raise ValueError(f"guidance_scale must be a number, got {scale!r}")
        if scale != 1 and condition_dropout <= 0:
            raise ValueError(f"guidance_scale {scale} needs a model trained with condition_dropout > 0 "
                             "(its condition-free output is untrained otherwise); use guidance_scale 1")

    def guided_denoise(self, x_t, t, stage, feats, cond_logits, image, scale: float, x0_prev: torch.Tensor | None = None,
                       estimates: dict | None = None) -> torch.Tensor:
        """``denoise`` with classifier-free guidance: both branches in one batch, mixed as uncond + s (cond - uncond).

        Self-conditioning: ``x0_prev`` holds the previous x0 estimate of each branch (2B rows, the conditioned branch
        first; B rows without guidance), and ``estimates["x0"]`` receives this call's in the same layout, so each branch
        is conditioned on its own estimate, as in training (a condition-dropped row's estimate is made without it).
        """
        if scale == 1:
            raw = self.denoise(x_t, t, stage, feats, cond_logits, image, x0_prev=x0_prev)
            if estimates is not None:
                estimates["x0"] = self.scheduler.x0_estimate_rows(raw.to(x_t.dtype), x_t, t, stage)
            return raw
        n = x_t.shape[0]
        two = lambda v: None if v is None else torch.cat([v, v])
        keep = torch.arange(2 * n, device=x_t.device) < n
        raw = self.denoise(two(x_t), two(t), two(stage), [two(f) for f in feats], two(cond_logits), two(image), keep, x0_prev)
        if estimates is not None:
            estimates["x0"] = self.scheduler.x0_estimate_rows(raw.to(x_t.dtype), two(x_t), two(t), two(stage))
        cond, uncond = raw[:n], raw[n:]
        return uncond + scale * (cond - uncond)

    # --- training -----------------------------------------------------------------------------
    def stage_loss(self, stage, raw: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one stage on its rows: MSE on the stage target, Dice / BCE on the implied x0."""
        pred = self.scheduler.prediction(raw, stage.target)
        mask = (x0 + 1) / 2
        terms: dict[str, torch.Tensor] = {}
        if "mse" in stage.loss:
            terms["mse"] = F.mse_loss(pred, self.scheduler.training_target(x0, noise, t, stage.target))
        if "dice" in stage.loss or "bce" in stage.loss:
            if stage.target == "x0":  # logits: exact sigmoid / BCE-with-logits
                prob = torch.sigmoid(raw)
                bce = lambda: F.binary_cross_entropy_with_logits(raw, mask)
            else:
                prob = ((self.scheduler.x0_estimate(pred, stage.target, x_t, t) + 1) / 2).clamp(1e-4, 1 - 1e-4)
                bce = lambda: F.binary_cross_entropy(prob, mask)
            if "dice" in stage.loss:
                terms["dice"] = self.dice(prob, mask)
            if "bce" in stage.loss:
                terms["bce"] = bce()
        total = sum(stage.loss[k] * v for k, v in terms.items())
        return total, terms

    def diffusion_loss(self, image: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Expected staged loss over uniformly sampled t; each row is scored by its own stage."""
        cond_logits, cond_feats = self.encode(image)
        logits, feats = cond_logits, cond_feats
        if not self.freeze_condition and not self.hparams.denoiser_trains_condition:
            logits, feats = cond_logits.detach(), [f.detach() for f in cond_feats]
        x0 = mask * 2 - 1
        t = torch.randint(0, self.plan.num_timesteps, (x0.shape[0],), device=x0.device) if t is None else t.to(x0.device)
        noise = torch.randn_like(x0) if noise is None else noise
        stage_of = self.scheduler.stage_index(t)  # once per batch, on the batch's device
        x_t = self.scheduler.add_noise(self.noising_source(x0, cond_logits, stage_of), noise, t)
        keep = None
        if self.hparams.get("condition_dropout", 0.0) > 0:
            keep = torch.rand(x0.shape[0], device=x0.device) >= self.hparams.condition_dropout
        x0_prev = self.self_condition_estimate(x_t, t, stage_of, feats, logits, image, keep)
        raw = self.denoise(x_t, t, stage_of, feats, logits, image, keep, x0_prev)
        loss = x0.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        for k, stage in enumerate(self.plan.stages):
            sel = stage_of == k
            if not bool(sel.any()):
                continue
            value, terms = self.stage_loss(stage, raw[sel], x_t[sel], t[sel], x0[sel], noise[sel])
            loss = loss + stage.weight * sel.float().mean() * value
            logs[f"stage/{stage.name}"] = value.detach()
            logs.update({f"stage/{stage.name}/{n}": v.detach() for n, v in terms.items()})
        if not self.freeze_condition and self.hparams.condition_loss_weight > 0:
            cond = self.dice(torch.sigmoid(cond_logits), mask) + F.binary_cross_entropy_with_logits(cond_logits, mask)
            loss = loss + self.hparams.condition_loss_weight * cond
            logs["condition"] = cond.detach()
        return loss, logs

    def self_condition_estimate(self, x_t, t, stage_of, feats, logits, image, keep) -> torch.Tensor | None:
        """Self-conditioning in training: for a ``self_condition`` fraction of the batches, the denoiser's own x0
        estimate from a first call without one (no gradient, detached); zeros for the other batches. None when off."""
        p = self.hparams.get("self_condition", 0.0)
        if p <= 0:
            return None
        if float(torch.rand(())) >= p:  # one coin per batch, on the CPU generator (no device sync)
            return torch.zeros_like(x_t)
        with torch.no_grad():
            raw = self.denoise(x_t, t, stage_of, feats, logits, image, keep, torch.zeros_like(x_t))
            return self.scheduler.x0_estimate_rows(raw.to(x_t.dtype), x_t, t, stage_of).detach()

    def noising_source(self, x0: torch.Tensor, cond_logits: torch.Tensor, stage_of: torch.Tensor) -> torch.Tensor:
        """What each training row is noised from: the true mask, or (``self_correction``) for rows of the low-noise x0
        stages the condition network's estimate 2p - 1 (detached), so those stages learn to correct an estimate."""
        p = self.hparams.get("self_correction", 0.0)
        if p <= 0:
            return x0
        top = self.plan.num_timesteps - 1
        low_x0 = self.scheduler.is_x0(stage_of).bool() & (stage_of != self.scheduler.stage_index(torch.tensor([top], device=x0.device)))
        pick = low_x0 & (torch.rand(x0.shape[0], device=x0.device) < p)
        estimate = (2 * torch.sigmoid(cond_logits.detach().float()) - 1).to(x0.dtype)
        return torch.where(pick.reshape(-1, *([1] * (x0.ndim - 1))), estimate, x0)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logs = self.diffusion_loss(batch["image"], batch["mask"])
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=bs)
        return loss

    # --- inference ----------------------------------------------------------------------------
    @property
    def network_calls(self) -> int:
        """Denoiser calls per sample with the default scheduler and guidance (the condition network runs once per image on
        top); guidance runs two branches per step."""
        return self.scheduler.network_calls * (1 if self.hparams.get("guidance_scale", 1.0) == 1 else 2)

    def _conditioned(self, image: torch.Tensor, k: int):
        """Condition network once per image, its outputs (and the image) repeated for the image's K samples."""
        logits, feats = self.condition.forward_features(image)
        return logits.repeat_interleave(k, 0), [f.repeat_interleave(k, 0) for f in feats], image.repeat_interleave(k, 0)

    @torch.inference_mode()
    def sample_masks(self, image: torch.Tensor, num_samples: int, generator: Generators = None,
                     scheduler: StagedScheduler | None = None, guidance_scale: float | None = None) -> torch.Tensor:
        """(B, K, 1, ...) sample probabilities in [0, 1]; all K samples of all images run as one batch.

        ``generator`` may be one generator per image: each image's K samples then depend only on it.
        ``scheduler`` overrides the default sampler / steps (e.g. ``model.scheduler.set_timesteps(1000, "ddpm")``);
        ``guidance_scale`` the model's default guidance (see the class docstring).
        """
        return self._sample(image, num_samples, generator, scheduler, guidance_scale)[0]

    @torch.inference_mode()
    def _sample(self, image: torch.Tensor, num_samples: int, generator: Generators = None,
                scheduler: StagedScheduler | None = None, guidance_scale: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``sample_masks`` and the condition network's probability (B, 1, ...) from the same single pass."""
        scale = self.hparams.get("guidance_scale", 1.0) if guidance_scale is None else guidance_scale
        self._check_guidance(scale, self.hparams.get("condition_dropout", 0.0))
        scheduler = scheduler or self.scheduler
        if scheduler.plan.to_dict() != self.plan.to_dict() or scheduler.schedule.name != self.scheduler.schedule.name:
            raise ValueError(f"the scheduler's plan/schedule ({scheduler.plan}, {scheduler.schedule.name}) is not the model's "
                             f"({self.plan}, {self.scheduler.schedule.name}); build it with model.scheduler.set_timesteps(...)")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
        k = num_samples
        logits, feats, images = self._conditioned(image, k)
        if isinstance(generator, (list, tuple)):
            generator = [g for g in generator for _ in range(k)]
        x_T = randn_rows((image.shape[0] * k, 1, *image.shape[2:]), generator, device=image.device, dtype=image.dtype)
        previous = {} if self.denoiser.self_condition else None  # self-conditioning: each call sees the estimate of the last
        x0 = scheduler.sample(lambda x, t, stage: self.guided_denoise(x, t, stage, feats, logits, images, scale,
                                                                      (previous or {}).get("x0"), previous), x_T, generator)
        samples = ((x0 + 1) / 2).clamp(0, 1).reshape(image.shape[0], k, *x0.shape[1:])
        return samples, torch.sigmoid(logits[::k].float())

    @torch.inference_mode()
    def warm_up(self, image: torch.Tensor) -> None:
        """The condition network and one denoiser call per stage at the sampling batch shape (B * K rows)."""
        logits, feats, images = self._conditioned(image, self.hparams.num_samples)
        x = torch.zeros_like(logits, dtype=image.dtype)
        for stage in self.plan.stages:
            t = torch.full((x.shape[0],), stage.start, device=x.device, dtype=torch.long)
            self.denoise(x, t, self.scheduler.stage_index(t), feats, logits, images)

    def predict_fused(self, image: torch.Tensor, generator: Generators = None, scheduler: StagedScheduler | None = None,
                      num_samples: int | None = None, guidance_scale: float | None = None,
                      condition_weight: float | None = None) -> FusedPrediction:
        """K samples (``num_samples`` or the model's default) fused into probability, mask and uncertainty, with the
        condition network's probability joining at ``condition_weight`` (default: the model's, see the class docstring)."""
        w = self.hparams.get("condition_weight", 0.0) if condition_weight is None else condition_weight
        check_anchor_weight(w, "condition_weight")
        samples, condition = self._sample(image, self.hparams.num_samples if num_samples is None else num_samples, generator,
                                          scheduler, guidance_scale)
        return fuse_samples(samples, self.hparams.fusion, self.hparams.uncertainty, anchor=condition, anchor_weight=w)

    @torch.inference_mode()
    def condition_probability(self, image: torch.Tensor) -> torch.Tensor:
        """The condition network's own segmentation (phase 1 alone): does phase 2 improve on it?"""
        return torch.sigmoid(self.condition(image).float())

    @torch.inference_mode()
    def one_step_x0(self, image: torch.Tensor, mask: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The one-step x0 estimate (as a probability) from x_t of the true mask: the timestep-profile probe (a
        self-conditioned denoiser gets no previous estimate here: zeros, as at the first sampling call)."""
        logits, feats = self.condition.forward_features(image)
        x0 = mask * 2 - 1
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        tt = torch.full((x0.shape[0],), int(t), device=x0.device, dtype=torch.long)
        x_t = self.scheduler.add_noise(x0, noise, tt)
        kind = self.plan.target_at(int(t))
        raw = self.denoise(x_t, tt, self.scheduler.stage_index(tt), feats, logits, image).to(x_t.dtype)
        x0_hat = self.scheduler.x0_estimate(self.scheduler.prediction(raw, kind), kind, x_t, tt)
        return ((x0_hat + 1) / 2).clamp(0, 1)
