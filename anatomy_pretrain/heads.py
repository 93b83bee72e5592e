"""Segmentation heads over a frozen or fine-tuned encoder pyramid [x0..x4]: linear (a 1x1x1 conv per level,
upsampled and summed) and non-linear (a small decoder at half resolution: project, concatenate, two conv layers).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def _upsample(x: torch.Tensor, size) -> torch.Tensor:
    return x if tuple(x.shape[2:]) == tuple(size) else F.interpolate(x, size=size, mode="trilinear", align_corners=False)


class LinearHead(nn.Module):
    """Sum over levels of upsampled 1x1x1-conv logits: a per-voxel linear classifier of the pyramid."""

    def __init__(self, in_channels: tuple[int, ...], num_classes: int):
        super().__init__()
        self.levels = nn.ModuleList(nn.Conv3d(c, num_classes, kernel_size=1) for c in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[2:]
        return sum(_upsample(conv(f), size) for conv, f in zip(self.levels, feats))


class NonLinearHead(nn.Module):
    """Small decoder: per-level 1x1x1 projection to ``width``, upsample to level ``fuse_level`` (1: half resolution),
    concatenate, conv-norm-act x2, classifier; the logits are upsampled to full resolution and a linear 1x1x1 map of
    the full-resolution level is added (sharp boundaries without full-resolution 3x3x3 convolutions, ~8x cheaper)."""

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, width: int = 16, fuse_level: int = 1):
        super().__init__()
        if not 0 <= fuse_level < len(in_channels):
            raise ValueError(f"fuse_level must index an encoder level (0..{len(in_channels) - 1}), got {fuse_level}")
        self.fuse_level = fuse_level
        self.project = nn.ModuleList(nn.Conv3d(c, width, kernel_size=1) for c in in_channels)
        hidden = 2 * width
        self.fuse = nn.Sequential(
            nn.Conv3d(width * len(in_channels), hidden, 3, padding=1), nn.InstanceNorm3d(hidden, affine=True), nn.LeakyReLU(0.1),
            nn.Conv3d(hidden, hidden, 3, padding=1), nn.InstanceNorm3d(hidden, affine=True), nn.LeakyReLU(0.1),
            nn.Conv3d(hidden, num_classes, 1),
        )
        self.skip = nn.Conv3d(in_channels[0], num_classes, kernel_size=1) if fuse_level > 0 else None

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[self.fuse_level].shape[2:]
        logits = self.fuse(torch.cat([_upsample(p(f), size) for p, f in zip(self.project, feats)], dim=1))
        if self.skip is None:
            return logits
        return _upsample(logits, feats[0].shape[2:]) + self.skip(feats[0])


def make_head(kind: Literal["linear", "nonlinear"], in_channels: tuple[int, ...], num_classes: int, width: int = 16,
              fuse_level: int = 1) -> nn.Module:
    if kind == "linear":
        return LinearHead(in_channels, num_classes)
    if kind == "nonlinear":
        return NonLinearHead(in_channels, num_classes, width, fuse_level)
    raise ValueError(f"head must be 'linear' or 'nonlinear', got {kind!r}")
