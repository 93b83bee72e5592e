"""Diffusion core: schedules, forward process, parameterization conversions, the DDIM/DDPM step,
StagePlan and the StagedScheduler built on them.

Stateless and shared by both halves; imports neither Lightning nor the data layer.
"""

from unisegdiff.diffusion.parameterization import TARGETS, from_x0_eps, q_sample, to_x0_eps
from unisegdiff.diffusion.samplers import randn_rows, sampling_step, spaced_timesteps
from unisegdiff.diffusion.scheduler import StagedScheduler, x0_from_logits
from unisegdiff.diffusion.schedules import NoiseSchedule, make_schedule
from unisegdiff.diffusion.stage_plan import LOSS_TERMS, Stage, StagePlan

__all__ = [
    "TARGETS", "LOSS_TERMS", "NoiseSchedule", "Stage", "StagePlan", "StagedScheduler", "from_x0_eps", "make_schedule",
    "q_sample", "randn_rows", "sampling_step", "spaced_timesteps", "to_x0_eps", "x0_from_logits",
]
