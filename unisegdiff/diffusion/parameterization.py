"""Forward process and exact conversions between the eps, x0 and v parameterizations.

All functions take ``alpha_bar`` (broadcastable to x_t) explicitly: no hidden schedule state.
"""

from __future__ import annotations

import torch

from unisegdiff.diffusion.schedules import NoiseSchedule

TARGETS = ("x0", "eps", "v")


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Sample x_t ~ q(x_t | x0): ``sqrt(ab_t) * x0 + sqrt(1 - ab_t) * noise`` (computed in float32 or wider)."""
    if noise.shape != x0.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} differs from x0 shape {tuple(x0.shape)}")
    ab = schedule.alpha_bar(t, x0)
    return ab.sqrt() * x0 + (1.0 - ab).sqrt() * noise


def to_x0_eps(pred: torch.Tensor, kind: str, x_t: torch.Tensor, alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Given a prediction of ``kind`` (x0/eps/v) at x_t, return the implied (x0, eps) pair."""
    a, s = alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt()
    if kind == "x0":
        x0 = pred
        eps = (x_t - a * x0) / s
    elif kind == "eps":
        eps = pred
        x0 = (x_t - s * eps) / a
    elif kind == "v":
        x0 = a * x_t - s * pred
        eps = s * x_t + a * pred
    else:
        raise ValueError(f"unknown prediction kind {kind!r}; choose one of {TARGETS}")
    return x0, eps


def from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, kind: str, alpha_bar: torch.Tensor) -> torch.Tensor:
    """Express the (x0, eps) pair in the parameterization ``kind``."""
    if kind == "x0":
        return x0
    if kind == "eps":
        return eps
    if kind == "v":
        return alpha_bar.sqrt() * eps - (1.0 - alpha_bar).sqrt() * x0
    raise ValueError(f"unknown prediction kind {kind!r}; choose one of {TARGETS}")
