"""Timestep profile: Dice of the one-step x0 estimate from x_t of the true mask, across t.

The measurable form of UniSegDiff's "attention across timesteps"; works for any diffusion model of
this framework (staged or single-target), so profiles can be compared side by side.
"""

from __future__ import annotations

import torch

from unisegdiff.metrics import per_sample_metrics


def profile_timesteps(num_timesteps: int, num_points: int = 20) -> list[int]:
    """``num_points`` timesteps evenly covering [0, T), including 0 and T - 1."""
    if num_points < 2:
        return [num_timesteps - 1]
    return sorted({round(i * (num_timesteps - 1) / (num_points - 1)) for i in range(num_points)})


@torch.inference_mode()
def timestep_profile(model, image: torch.Tensor, mask: torch.Tensor, timesteps: list[int], seed: int = 0) -> list[tuple[int, float]]:
    """[(t, mean Dice of the thresholded one-step x0 estimate)] for a diffusion model with ``one_step_x0``."""
    if not hasattr(model, "one_step_x0"):
        raise TypeError(f"{type(model).__name__} is not a diffusion model: it has no one_step_x0 to profile")
    rows = []
    for t in timesteps:
        g = torch.Generator(device=image.device).manual_seed(seed + int(t))
        prob = model.one_step_x0(image, mask, int(t), generator=g)
        dice = per_sample_metrics((prob > 0.5).float(), mask)[:, 0]
        rows.append((int(t), float(dice.mean())))
    return rows
