"""Intensity augmentations on [-1, 1] CT patches in torch (batch-wise, seeded by an optional generator).

Spatial augmentations are left out on purpose: they would change the physical coordinates the models learn.
"""

from __future__ import annotations

import torch


def intensity_augment(x: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random per-sample gamma, contrast, brightness and Gaussian noise; output clamped to [-1, 1]."""
    b = x.shape[0]
    shape = (b,) + (1,) * (x.ndim - 1)

    def rand(lo: float, hi: float) -> torch.Tensor:
        u = torch.rand(shape, generator=generator).to(x.device, x.dtype)
        return lo + (hi - lo) * u

    gamma = torch.exp(rand(-0.3, 0.3) * strength)
    y = ((x + 1.0) / 2.0).clamp_min(0.0) ** gamma * 2.0 - 1.0
    y = y * (1.0 + rand(-0.15, 0.15) * strength) + rand(-0.1, 0.1) * strength
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    y = y + noise * rand(0.0, 0.05) * strength
    return y.clamp(-1.0, 1.0)
