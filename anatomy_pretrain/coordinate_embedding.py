"""Sin/cos (Fourier) embedding of predicted anatomical coordinates: the guide fed to the denoiser.

Coordinates are in units of ``scale_mm`` (100 mm by default); frequency k has period ``period / 2**k`` units.
"""

from __future__ import annotations

import math

import torch


def embedding_channels(num_frequencies: int, coord_dims: int = 3) -> int:
    return 2 * coord_dims * num_frequencies


def coordinate_embedding(coords: torch.Tensor, num_frequencies: int = 3, period: float = 8.0) -> torch.Tensor:
    """(B, 3, ...) coordinates -> (B, 6 * num_frequencies, ...) channels [sin(w_k c), cos(w_k c)] for k < num_frequencies."""
    if num_frequencies < 1:
        raise ValueError(f"num_frequencies must be >= 1, got {num_frequencies}")
    w = (2.0 * math.pi / period) * (2.0 ** torch.arange(num_frequencies, device=coords.device, dtype=coords.dtype))
    angles = coords.unsqueeze(2) * w.view(1, 1, -1, *([1] * (coords.ndim - 2)))  # (B, 3, F, ...)
    angles = angles.flatten(1, 2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def guide_from_batch(batch: dict, guidance: str, num_frequencies: int) -> torch.Tensor | None:
    """The guide of a batch for a backbone with ``guidance``: the embedding of ``batch["coords"]`` (None when unguided)."""
    if guidance == "none":
        return None
    if "coords" not in batch:
        raise ValueError(f"guidance={guidance!r} needs coordinate maps in the batch: set data.init_args.coordinate_ckpt "
                         "to the trained coordinate model checkpoint (VolumeDataModule(coordinate_ckpt=...))")
    return coordinate_embedding(batch["coords"], num_frequencies)
