"""Diffusion core: schedules, forward process, parameterization conversions, samplers, StagePlan.

Stateless and shared by both halves; imports neither Lightning nor the data layer.
"""

from unisegdiff.diffusion.parameterization import TARGETS, convert, from_x0_eps, q_sample, to_x0_eps
from unisegdiff.diffusion.samplers import ddim_sample, ddpm_sample, randn_rows, sample, sampling_step, spaced_timesteps
from unisegdiff.diffusion.schedules import NoiseSchedule, make_schedule
from unisegdiff.diffusion.stage_plan import LOSS_TERMS, Stage, StagePlan

__all__ = [
    "TARGETS", "LOSS_TERMS", "NoiseSchedule", "Stage", "StagePlan", "convert", "ddim_sample", "ddpm_sample",
    "from_x0_eps", "make_schedule", "q_sample", "randn_rows", "sample", "sampling_step", "spaced_timesteps", "to_x0_eps",
]
