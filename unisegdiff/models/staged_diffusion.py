"""Staged conditional diffusion segmenter (UniSegDiff-style): the prediction target changes by
timestep stage, as given by a :class:`StagePlan`; the denoiser is conditioned on the features of
a pre-trained condition network.

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

from unisegdiff.diffusion import StagePlan, from_x0_eps, make_schedule, q_sample, randn_rows, sample, spaced_timesteps, to_x0_eps
from unisegdiff.diffusion.samplers import Generators
from unisegdiff.inference import FusedPrediction, fuse_samples
from unisegdiff.models.base import SegmentationModule
from unisegdiff.models.checkpoints import load_module_weights
from unisegdiff.nets import ConditionalDenoiser, ConditionUNet

DEFAULT_STAGES: list[dict[str, Any]] = [
    {"name": "segment", "start": 600, "end": 1000, "target": "x0", "loss": {"dice": 1.0, "bce": 1.0}, "steps": 1},
    {"name": "model", "start": 200, "end": 600, "target": "v", "loss": {"mse": 1.0}, "steps": 4},
    {"name": "refine", "start": 0, "end": 200, "target": "x0", "loss": {"dice": 1.0, "bce": 1.0, "mse": 1.0}, "steps": 3},
]


def build_plan(stages: list[dict[str, Any]], num_timesteps: int, boundaries: list[int] | None = None, steps: list[int] | None = None) -> StagePlan:
    """A StagePlan from stage dicts, with optional boundary / step-count overrides (ascending-t order)."""
    plan = StagePlan(stages, num_timesteps)
    specs = plan.to_dict()
    if boundaries is not None:
        if len(boundaries) != len(specs) - 1:
            raise ValueError(f"stage_boundaries needs {len(specs) - 1} values for {len(specs)} stages, got {boundaries}")
        edges = [0, *boundaries, num_timesteps]
        if any(a >= b for a, b in zip(edges, edges[1:])):
            raise ValueError(f"stage_boundaries must be strictly ascending inside (0, {num_timesteps}), got {boundaries}")
        for spec, start, end in zip(specs, edges, edges[1:]):
            spec["start"], spec["end"] = start, end
    if steps is not None:
        if len(steps) != len(specs):
            raise ValueError(f"stage_steps needs {len(specs)} values (one per stage, ascending t), got {steps}")
        for spec, n in zip(specs, steps):
            spec["steps"] = n
    return StagePlan(specs, num_timesteps) if (boundaries or steps) else plan


class StagedDiffusionSegmenter(SegmentationModule):
    """Phase 2: conditional diffusion on the lesion mask with a staged prediction target.

    Args:
        stages: the StagePlan as a list of stage dicts (name, start, end, target, loss, weight, steps).
        stage_boundaries: optional override of the inner boundaries (ascending, one fewer than stages),
            e.g. [200, 600]; a sweepable knob.
        stage_steps: optional override of the inference steps per stage, in ascending-t stage order.
        num_timesteps, schedule: the diffusion process.
        condition_ckpt: phase-1 checkpoint (DeterministicSegmenter) whose network conditions the denoiser;
            loaded when a Trainer run starts without a checkpoint of this module (or by ``load_condition_weights``).
        freeze_condition: keep the condition network frozen (True) or fine-tune it with an auxiliary loss.
        condition_loss_weight: weight of the condition network's own Dice + BCE loss when fine-tuned.
        num_samples: K samples per image at inference, fused by ``fusion`` (mean / staple).
        sampler: ``ddim`` (eta 0) or ``ddpm`` (ancestral, eta 1).
        sampling_steps: None follows the plan's per-stage step counts; an int uses that many evenly
            spaced steps over [0, T) instead (e.g. 1000-step DDPM, 50-step DDIM baselines).
        stage_heads: a stage embedding and one output head per stage (no effect on one-stage plans).
        x0_residual: x0 stages predict logits added to the condition network's logits.
    """

    def __init__(
        self,
        stages: list[dict[str, Any]] | None = None,
        stage_boundaries: list[int] | None = None,
        stage_steps: list[int] | None = None,
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
        num_samples: int = 4,
        fusion: str = "mean",
        uncertainty: str = "entropy",
        sampler: str = "ddim",
        sampling_steps: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_lr_epochs: int | None = None,
        stage_heads: bool = True,
        x0_residual: bool = True,
    ):
        super().__init__(lr=lr, weight_decay=weight_decay, max_lr_epochs=max_lr_epochs)
        self.save_hyperparameters()
        if sampler not in ("ddim", "ddpm"):
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.plan = build_plan(stages if stages is not None else DEFAULT_STAGES, num_timesteps, stage_boundaries, stage_steps)
        self.schedule = make_schedule(schedule, num_timesteps)
        if sampling_steps is not None:
            spaced_timesteps(num_timesteps, sampling_steps)  # validates early
        self.condition = ConditionUNet(spatial_dims=spatial_dims, in_channels=in_channels, features=condition_features)
        self.freeze_condition = freeze_condition
        self.condition.requires_grad_(not freeze_condition)
        self.condition.train(not freeze_condition)
        self.denoiser = ConditionalDenoiser(
            spatial_dims=spatial_dims, cond_channels=self.condition.feature_channels,
            channels=denoiser_channels, use_cond_prob=use_condition_prob,
            num_stages=len(self.plan.stages) if stage_heads else 1,
        )
        self.register_buffer("_x0_stage", torch.tensor([s.target == "x0" for s in self.plan.stages]), persistent=False)
        self.dice = DiceLoss(sigmoid=False)

    # --- conditioning -------------------------------------------------------------------------
    def load_condition_weights(self) -> None:
        """Load the phase-1 network from ``condition_ckpt`` (weights only)."""
        if self.hparams.condition_ckpt:
            load_module_weights(self.condition, self.hparams.condition_ckpt, prefix="net.")

    def setup(self, stage: str) -> None:
        super().setup(stage)
        # phase-1 weights are loaded when a run starts from scratch; a run restored from its own
        # checkpoint (resume, test, predict) already holds them, so the phase-1 file is not needed then
        if self.trainer is not None and self.trainer.ckpt_path is None:
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

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, feats: list[torch.Tensor], cond_logits: torch.Tensor) -> torch.Tensor:
        """Raw denoiser output per row: x0 rows are logits, eps / v rows the target itself."""
        stage = self.plan.stage_index(t)
        raw = self.denoiser(x_t, t, feats, torch.sigmoid(cond_logits), stage if self.denoiser.num_stages > 1 else None)
        if self.hparams.x0_residual:
            is_x0 = self._x0_stage.to(raw.device)[stage].reshape(-1, *([1] * (raw.ndim - 1)))
            raw = raw + is_x0 * cond_logits
        return raw

    @staticmethod
    def as_prediction(raw: torch.Tensor, kind: str) -> torch.Tensor:
        """x0 heads are logits (x0 = tanh(raw / 2) lies in (-1, 1)); eps / v heads are used as they are."""
        return torch.tanh(raw / 2) if kind == "x0" else raw

    # --- training -----------------------------------------------------------------------------
    def stage_loss(self, stage, raw: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one stage on its samples: MSE on the stage target, Dice / BCE on the implied x0."""
        ab = self.schedule.alpha_bar(t, x_t)
        pred = self.as_prediction(raw, stage.target)
        mask = (x0 + 1) / 2
        terms: dict[str, torch.Tensor] = {}
        if "mse" in stage.loss:
            terms["mse"] = F.mse_loss(pred, from_x0_eps(x0, noise, stage.target, ab))
        if "dice" in stage.loss or "bce" in stage.loss:
            if stage.target == "x0":
                prob = torch.sigmoid(raw)
                bce = lambda: F.binary_cross_entropy_with_logits(raw, mask)
            else:
                prob = ((to_x0_eps(pred, stage.target, x_t, ab)[0] + 1) / 2).clamp(1e-4, 1 - 1e-4)
                bce = lambda: F.binary_cross_entropy(prob, mask)
            if "dice" in stage.loss:
                terms["dice"] = self.dice(prob, mask)
            if "bce" in stage.loss:
                terms["bce"] = bce()
        total = sum(stage.loss[k] * v for k, v in terms.items())
        return total, terms

    def diffusion_loss(self, image: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Expected staged loss over uniformly sampled t; each sample is scored by its own stage."""
        logits, feats = self.encode(image)
        x0 = mask * 2 - 1
        b = x0.shape[0]
        t = torch.randint(0, self.plan.num_timesteps, (b,), device=x0.device) if t is None else t
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = q_sample(self.schedule, x0, t, noise)
        raw = self.denoise(x_t, t, feats, logits)
        stage_of = self.plan.stage_index(t)
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
            cond = self.dice(torch.sigmoid(logits), mask) + F.binary_cross_entropy_with_logits(logits, mask)
            loss = loss + self.hparams.condition_loss_weight * cond
            logs["condition"] = cond.detach()
        return loss, logs

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, logs = self.diffusion_loss(batch["image"], batch["mask"])
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=bs)
        return loss

    # --- inference ----------------------------------------------------------------------------
    def inference_timesteps(self) -> list[int]:
        if self.hparams.sampling_steps is None:
            return self.plan.inference_timesteps()
        return spaced_timesteps(self.plan.num_timesteps, self.hparams.sampling_steps)

    @property
    def network_calls(self) -> int:
        """Denoiser calls per sample (the condition network runs once per image on top)."""
        return len(self.inference_timesteps())

    @torch.inference_mode()
    def sample_masks(self, image: torch.Tensor, num_samples: int, generator: Generators = None) -> torch.Tensor:
        """(B, K, 1, ...) sample probabilities in [0, 1]; all K samples of all images run as one batch.

        ``generator`` may be one generator per image: each image's K samples then depend only on it.
        """
        logits, feats = self.condition.forward_features(image)
        k = num_samples
        feats = [f.repeat_interleave(k, 0) for f in feats]
        logits = logits.repeat_interleave(k, 0)
        shape = (image.shape[0] * k, 1, *image.shape[2:])
        if isinstance(generator, (list, tuple)):
            generator = [g for g in generator for _ in range(k)]
        x_T = randn_rows(shape, generator, device=image.device, dtype=image.dtype)

        def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            # float: under bf16/fp16 autocast the sampler's arithmetic still runs in the input's precision
            return self.as_prediction(self.denoise(x_t, t, feats, logits).to(x_t.dtype), self.plan.target_at(int(t[0])))

        eta = 1.0 if self.hparams.sampler == "ddpm" else 0.0
        x0 = sample(model, x_T, self.schedule, self.inference_timesteps(), self.plan.target_at, eta=eta, generator=generator, clip_x0=(-1.0, 1.0))
        return ((x0 + 1) / 2).clamp(0, 1).reshape(image.shape[0], k, *x0.shape[1:])

    @torch.inference_mode()
    def warm_up(self, image: torch.Tensor) -> None:
        """The condition network and one denoiser call per stage at the sampling batch shape (B * K rows)."""
        logits, feats = self.condition.forward_features(image)
        k = self.hparams.num_samples
        feats, logits = [f.repeat_interleave(k, 0) for f in feats], logits.repeat_interleave(k, 0)
        x = torch.zeros_like(logits, dtype=image.dtype)
        for stage in self.plan.stages:
            self.denoise(x, torch.full((x.shape[0],), stage.start, device=x.device, dtype=torch.long), feats, logits)

    def predict_fused(self, image: torch.Tensor, generator: Generators = None) -> FusedPrediction:
        samples = self.sample_masks(image, self.hparams.num_samples, generator)
        return fuse_samples(samples, self.hparams.fusion, self.hparams.uncertainty)

    @torch.inference_mode()
    def one_step_x0(self, image: torch.Tensor, mask: torch.Tensor, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The one-step x0 estimate (as a probability) from x_t of the true mask: the timestep-profile probe."""
        logits, feats = self.condition.forward_features(image)
        x0 = mask * 2 - 1
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        tt = torch.full((x0.shape[0],), int(t), device=x0.device, dtype=torch.long)
        x_t = q_sample(self.schedule, x0, tt, noise)
        kind = self.plan.target_at(int(t))
        pred = self.as_prediction(self.denoise(x_t, tt, feats, logits).to(x_t.dtype), kind)
        x0_hat = to_x0_eps(pred, kind, x_t, self.schedule.alpha_bar(tt, x_t))[0]
        return ((x0_hat + 1) / 2).clamp(0, 1)
