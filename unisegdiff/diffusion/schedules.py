"""Noise schedules: betas and cumulative alphas for any number of timesteps T.

Built on MONAI's ``NoiseSchedules`` registry; the products are recomputed in float64 so
that conversions stay exact near t = T (where alpha_bar is tiny).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.schedulers import NoiseSchedules

# our short names -> MONAI's registry names
SCHEDULE_NAMES = {"linear": "linear_beta", "scaled_linear": "scaled_linear_beta", "cosine": "cosine"}


@dataclass(frozen=True)
class NoiseSchedule:
    """A fixed schedule: ``betas[t]`` and ``alphas_cumprod[t]`` for t in [0, T), float64 on CPU."""

    name: str
    betas: torch.Tensor
    alphas_cumprod: torch.Tensor

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.numel())

    def alpha_bar(self, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """``alphas_cumprod[t]`` shaped to broadcast against ``like`` (B, ...), in ``like``'s dtype/device.

        ``t = -1`` means "before the first step" and gives alpha_bar = 1 (the clean sample).
        """
        t = torch.as_tensor(t, device=self.alphas_cumprod.device).long()
        if t.ndim == 0:
            t = t.expand(like.shape[0])
        if t.shape[0] != like.shape[0]:
            raise ValueError(f"t has {t.shape[0]} entries but the batch has {like.shape[0]} samples")
        if bool((t < -1).any()) or bool((t >= self.num_timesteps).any()):
            raise ValueError(f"timesteps must lie in [-1, {self.num_timesteps}), got {t.min().item()}..{t.max().item()}")
        padded = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])
        ab = padded[t + 1].to(device=like.device, dtype=like.dtype)
        return ab.reshape(-1, *([1] * (like.ndim - 1)))


def make_schedule(
    name: str = "cosine",
    num_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 2e-2,
) -> NoiseSchedule:
    """Build a schedule by name: ``linear``, ``scaled_linear`` (beta_start/beta_end apply) or ``cosine``."""
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULE_NAMES)}")
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    monai_name = SCHEDULE_NAMES[name]
    if name == "cosine":
        out = NoiseSchedules[monai_name](num_timesteps)
        betas = out[0]
    else:
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        betas = NoiseSchedules[monai_name](num_timesteps, beta_start=beta_start, beta_end=beta_end)
    betas = betas.to(torch.float64).clamp(1e-8, 0.999)
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return NoiseSchedule(name=name, betas=betas, alphas_cumprod=alphas_cumprod)
