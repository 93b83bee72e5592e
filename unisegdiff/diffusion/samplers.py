"""Ancestral DDPM and deterministic DDIM samplers over any descending subset of timesteps.

The model's output kind may change with t (``prediction`` is a string or ``t -> kind``), which
is what staged plans need. One generalized step (DDIM with ``eta``) serves both samplers.
"""

from __future__ import annotations

from typing import Callable

import torch

from unisegdiff.diffusion.parameterization import to_x0_eps
from unisegdiff.diffusion.schedules import NoiseSchedule

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Prediction = str | Callable[[int], str]
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


def sample(
    model: ModelFn,
    x_T: torch.Tensor,
    schedule: NoiseSchedule,
    timesteps: list[int],
    prediction: Prediction,
    eta: float = 0.0,
    generator: Generators = None,
    clip_x0: tuple[float, float] | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the reverse process from ``x_T`` through the descending ``timesteps`` and return x0.

    ``model(x_t, t_batch)`` returns a prediction whose kind is ``prediction`` (or ``prediction(t)``).
    ``callback(t, x0_estimate)`` is called after every step (progress bars, diagnostics).
    """
    if not timesteps:
        raise ValueError("timesteps is empty: give at least one timestep to sample")
    if any(a <= b for a, b in zip(timesteps, timesteps[1:])):
        raise ValueError(f"timesteps must be strictly descending, got {timesteps}")
    if timesteps[0] >= schedule.num_timesteps or timesteps[-1] < 0:
        raise ValueError(f"timesteps must lie in [0, {schedule.num_timesteps}), got {timesteps[0]}..{timesteps[-1]}")
    kind_of = prediction if callable(prediction) else (lambda _t: prediction)
    x = x_T
    for t, t_prev in zip(timesteps, timesteps[1:] + [-1]):
        t_batch = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        pred = model(x, t_batch)
        noise = None
        if eta > 0 and t_prev >= 0:
            noise = randn_rows(tuple(x.shape), generator, device=x.device, dtype=x.dtype)
        x, x0 = sampling_step(schedule, pred, kind_of(t), x, t, t_prev, eta=eta, noise=noise, clip_x0=clip_x0)
        if callback is not None:
            callback(t, x0)
    return x


def ddim_sample(model: ModelFn, x_T: torch.Tensor, schedule: NoiseSchedule, num_steps: int | list[int], prediction: Prediction, **kw) -> torch.Tensor:
    """Deterministic DDIM over ``num_steps`` evenly spaced timesteps (or an explicit descending list)."""
    steps = spaced_timesteps(schedule.num_timesteps, num_steps) if isinstance(num_steps, int) else list(num_steps)
    return sample(model, x_T, schedule, steps, prediction, eta=0.0, **kw)


def ddpm_sample(model: ModelFn, x_T: torch.Tensor, schedule: NoiseSchedule, num_steps: int | list[int] | None = None, prediction: Prediction = "eps", **kw) -> torch.Tensor:
    """Ancestral DDPM (posterior sampling); all T steps by default, or any descending subset."""
    if num_steps is None:
        num_steps = schedule.num_timesteps
    steps = spaced_timesteps(schedule.num_timesteps, num_steps) if isinstance(num_steps, int) else list(num_steps)
    return sample(model, x_T, schedule, steps, prediction, eta=1.0, **kw)
