"""The generalized DDIM step (eta 0: DDIM, eta 1: ancestral DDPM), timestep spacing and per-row noise.

The loop over timesteps and the choice of prediction kind per step live in ``StagedScheduler``.
"""

from __future__ import annotations

import torch

from unisegdiff.diffusion.parameterization import to_x0_eps
from unisegdiff.diffusion.schedules import NoiseSchedule

Generators = torch.Generator | list[torch.Generator] | None


def randn_rows(shape: tuple[int, ...], generator: Generators, device=None, dtype=None) -> torch.Tensor:
    """Standard normal noise; with a list of generators, row i is drawn from ``generator[i]`` so that a
    sample's noise does not depend on which other samples share its batch (DDP, batch sizes)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {shape[0]} rows")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device, dtype=dtype) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def spaced_timesteps(num_timesteps: int, num_steps: int) -> list[int]:
    """``num_steps`` descending timesteps evenly spread over [0, T), starting at T - 1 ("trailing" spacing)."""
    if not 1 <= num_steps <= num_timesteps:
        raise ValueError(f"num_steps must be in [1, {num_timesteps}], got {num_steps}")
    return [num_timesteps - 1 - (i * num_timesteps) // num_steps for i in range(num_steps)]


def sampling_step(
    schedule: NoiseSchedule,
    pred: torch.Tensor,
    kind: str,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One move x_t -> x_{t_prev} (t_prev = -1 means the clean sample). Returns (x_prev, x0_estimate).

    eta = 0 is DDIM; eta = 1 samples the exact posterior q(x_prev | x_t, x0) (ancestral DDPM).
    """
    if not -1 <= t_prev < t:
        raise ValueError(f"t_prev must satisfy -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    ab_t = schedule.alpha_bar(t, x_t)
    ab_prev = schedule.alpha_bar(t_prev, x_t)
    x0, eps = to_x0_eps(pred, kind, x_t, ab_t)
    if clip_x0 is not None:
        x0 = x0.clamp(*clip_x0)
        eps = (x_t - ab_t.sqrt() * x0) / (1.0 - ab_t).sqrt()
    if t_prev < 0:
        return x0, x0
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).clamp(min=0).sqrt()
    x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if noise is None:
            noise = torch.randn_like(x_t)
        x_prev = x_prev + sigma * noise
    return x_prev, x0
