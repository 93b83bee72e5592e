"""StagedScheduler: the staged diffusion process as one small immutable object, in the style of
diffusers/MONAI schedulers (``set_timesteps`` / ``step`` / ``add_noise``) built from a StagePlan.

It owns everything a model must not re-derive: which stage (and so which prediction kind) holds a
timestep, the x0-as-logits convention of x0 heads, the training target of each row, and the
DDIM / DDPM update. Sampler and step count are settings of a scheduler, so one checkpoint serves
the plan's few-step staged pass, a 50-step DDIM or a 1000-step DDPM without touching its hparams.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch

from unisegdiff.diffusion.parameterization import from_x0_eps, q_sample, to_x0_eps
from unisegdiff.diffusion.samplers import Generators, randn_rows, sampling_step, spaced_timesteps
from unisegdiff.diffusion.schedules import NoiseSchedule, make_schedule
from unisegdiff.diffusion.stage_plan import StagePlan

SAMPLERS = {"ddim": 0.0, "ddpm": 1.0}  # sampler name -> eta of the generalized step
StepSetting = int | Sequence[int] | None
# raw network output for (x_t, t per row, stage index per row)
DenoiseFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def x0_from_logits(raw: torch.Tensor) -> torch.Tensor:
    """x0 heads emit mask logits; x0 in (-1, 1) is ``2 * sigmoid(raw) - 1 = tanh(raw / 2)``."""
    return torch.tanh(raw / 2)


@dataclass(frozen=True)
class StagedScheduler:
    """A StagePlan on a noise schedule, with the inference timesteps and sampler chosen.

    Build it with :meth:`from_plan`; :meth:`set_timesteps` returns a new scheduler (the object is
    immutable, so a model's default scheduler is never changed by a benchmark or a predict run).
    """

    plan: StagePlan
    schedule: NoiseSchedule
    sampler: str = "ddim"
    steps: StepSetting = None
    timesteps: tuple[int, ...] = field(default=(), compare=False)

    @classmethod
    def from_plan(cls, plan: StagePlan, schedule: str | NoiseSchedule = "cosine", sampler: str = "ddim", steps: StepSetting = None) -> "StagedScheduler":
        if isinstance(schedule, str):
            schedule = make_schedule(schedule, plan.num_timesteps)
        if schedule.num_timesteps != plan.num_timesteps:
            raise ValueError(f"schedule has {schedule.num_timesteps} timesteps but the plan covers {plan.num_timesteps}")
        return cls(plan, schedule).set_timesteps(steps, sampler)

    def set_timesteps(self, steps: StepSetting = None, sampler: str | None = None) -> "StagedScheduler":
        """A scheduler sampling with ``steps``: None follows the plan's per-stage steps, an int spaces that
        many steps evenly over [0, T), a list gives the steps of each stage (ascending-t order)."""
        sampler = self.sampler if sampler is None else sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        if isinstance(steps, (str, bool)) or not (steps is None or isinstance(steps, int) or all(isinstance(n, int) and not isinstance(n, bool) for n in steps)):
            raise ValueError(f"sampling steps must be None, an int or one int per stage, got {steps!r}")
        if steps is None:
            timesteps = self.plan.inference_timesteps()
        elif isinstance(steps, int):
            timesteps = spaced_timesteps(self.plan.num_timesteps, steps)
        else:
            timesteps = self.plan.with_steps(list(steps)).inference_timesteps()
            steps = tuple(int(s) for s in steps)
        return replace(self, sampler=sampler, steps=steps, timesteps=tuple(timesteps))

    @property
    def network_calls(self) -> int:
        """Denoiser calls per sample with the current timesteps."""
        return len(self.timesteps)

    @property
    def num_stages(self) -> int:
        return len(self.plan.stages)

    # --- stages ---------------------------------------------------------------------------------
    def stage_index(self, t: torch.Tensor) -> torch.Tensor:
        """Stage index of every timestep in ``t``, computed on ``t``'s device."""
        return self.plan.stage_index(t)

    def is_x0(self, stage: torch.Tensor) -> torch.Tensor:
        """Boolean per row: does the row's stage predict x0 (whose head emits logits)?"""
        kinds = torch.tensor([s.target == "x0" for s in self.plan.stages], device=stage.device)
        return kinds[stage]

    def prediction(self, raw: torch.Tensor, kind: str) -> torch.Tensor:
        """The network's raw output read as a prediction of ``kind`` (x0 heads are logits)."""
        return x0_from_logits(raw) if kind == "x0" else raw

    # --- training -------------------------------------------------------------------------------
    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x0) for each row's timestep."""
        return q_sample(self.schedule, x0, t, noise)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, kind: str) -> torch.Tensor:
        """What a head of ``kind`` must output (after :meth:`prediction`) for rows at timesteps ``t``."""
        return from_x0_eps(x0, noise, kind, self.schedule.alpha_bar(t, x0))

    def x0_estimate(self, pred: torch.Tensor, kind: str, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The x0 implied by a prediction of ``kind`` at (x_t, t)."""
        return to_x0_eps(pred, kind, x_t, self.schedule.alpha_bar(t, x_t))[0]

    def x0_estimate_rows(self, raw: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, stage: torch.Tensor) -> torch.Tensor:
        """The x0 in [-1, 1] implied by each row's raw output, read by the row's own stage (mixed-stage batches)."""
        x0 = torch.empty_like(x_t)
        for k, spec in enumerate(self.plan.stages):
            sel = stage == k
            if bool(sel.any()):
                x0[sel] = self.x0_estimate(self.prediction(raw[sel], spec.target), spec.target, x_t[sel], t[sel]).to(x0.dtype)
        return x0.clamp(-1.0, 1.0)

    # --- sampling -------------------------------------------------------------------------------
    def step(self, raw: torch.Tensor, t: int, x_t: torch.Tensor, generator: Generators = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse move from ``t`` to the next of :attr:`timesteps`: returns (x_prev, x0_hat in [-1, 1])."""
        if t not in self.timesteps:
            raise ValueError(f"timestep {t} is not one of this scheduler's timesteps; call set_timesteps first")
        i = self.timesteps.index(t)
        t_prev = self.timesteps[i + 1] if i + 1 < len(self.timesteps) else -1
        kind = self.plan.target_at(t)
        eta = SAMPLERS[self.sampler]
        noise = randn_rows(tuple(x_t.shape), generator, device=x_t.device, dtype=x_t.dtype) if eta > 0 and t_prev >= 0 else None
        return sampling_step(self.schedule, self.prediction(raw, kind), kind, x_t, t, t_prev, eta=eta, noise=noise, clip_x0=(-1.0, 1.0))

    def sample(self, denoise: DenoiseFn, x_T: torch.Tensor, generator: Generators = None,
               callback: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
        """Run the reverse process from ``x_T`` through :attr:`timesteps`; returns x0 in [-1, 1].

        ``denoise(x_t, t, stage)`` gets one timestep and stage index per row; ``callback(t, x0_hat)``
        sees every step's x0 estimate.
        """
        x = x_T
        for t in self.timesteps:
            tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
            # float: under bf16/fp16 autocast the update arithmetic still runs in the input's precision
            raw = denoise(x, tt, self.stage_index(tt)).to(x.dtype)
            x, x0 = self.step(raw, t, x, generator)
            if callback is not None:
                callback(t, x0)
        return x
