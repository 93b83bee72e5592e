"""The 3D backbone being pretrained: a ConditionUNet (MONAI BasicUNet names conv_0, down_1..down_4, so its encoder
bridges into the staged segmenter) with optional anatomical guidance as extra input channels or per-voxel FiLM.
"""

from __future__ import annotations

import numbers
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from unisegdiff.nets import ConditionUNet

Guidance = Literal["none", "input", "film"]


class GuidedUNet3D(ConditionUNet):
    """``encode(x, guide)`` -> encoder pyramid [x0..x4] (full res -> 1/16); ``forward(x, guide)`` -> output map.

    ``guidance='input'`` concatenates the guide to the image before ``conv_0``; ``'film'`` scales and shifts every
    encoder level by ``1 + gamma(guide)``, ``beta(guide)`` (1x1x1 convs, zero-initialized so training starts unguided).
    ``film_levels``: the encoder levels FiLM modulates (0 = full resolution .. 4 = 1/16; default all five), i.e. where
    the guidance enters the U-Net.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        features: tuple[int, int, int, int, int, int] = (16, 16, 32, 64, 128, 16),
        guidance: Guidance = "none",
        guide_channels: int = 0,
        film_levels: tuple[int, ...] | None = None,
    ):
        if guidance not in ("none", "input", "film"):
            raise ValueError(f"guidance must be 'none', 'input' or 'film', got {guidance!r}")
        if guidance != "none" and guide_channels < 1:
            raise ValueError(f"guidance={guidance!r} needs guide_channels >= 1")
        if film_levels is not None:
            if guidance != "film":
                raise ValueError(f"film_levels applies to guidance='film', not {guidance!r}; leave it None")
            levels = list(film_levels)
            if not levels or len(set(levels)) != len(levels) or any(
                    isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= v <= 4 for v in levels):
                raise ValueError(f"film_levels must be distinct encoder levels in 0..4, got {film_levels!r}")
        extra = guide_channels if guidance == "input" else 0
        super().__init__(spatial_dims=3, in_channels=in_channels + extra, out_channels=out_channels, features=features)
        self.image_channels, self.guidance, self.guide_channels = in_channels, guidance, guide_channels
        # keyed by level: with all five levels the state-dict names (film.0 .. film.4) are those of the former ModuleList
        self.film = nn.ModuleDict()
        if guidance == "film":
            for level, c in enumerate(self.encoder_channels):
                if film_levels is not None and level not in [int(v) for v in film_levels]:
                    continue
                conv = nn.Conv3d(guide_channels, 2 * c, kernel_size=1)
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
                self.film[str(level)] = conv

    @property
    def encoder_channels(self) -> tuple[int, ...]:
        return tuple(self.features[:5])

    def _modulate(self, level: int, x: torch.Tensor, guide: torch.Tensor | None) -> torch.Tensor:
        if str(level) not in self.film:
            return x
        g = F.interpolate(guide, size=x.shape[2:], mode="trilinear", align_corners=False)
        gamma, beta = self.film[str(level)](g).chunk(2, dim=1)
        return x * (1.0 + gamma) + beta

    def encode(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> list[torch.Tensor]:
        if x.ndim != 5 or x.shape[1] != self.image_channels:
            raise ValueError(f"GuidedUNet3D expects (B, {self.image_channels}, X, Y, Z) input, got {tuple(x.shape)}")
        if self.guidance != "none":
            if guide is None or guide.shape[1] != self.guide_channels:
                got = None if guide is None else tuple(guide.shape)
                raise ValueError(f"guidance={self.guidance!r} needs a guide with {self.guide_channels} channels, got {got}")
            if self.guidance == "input":
                x = torch.cat([x, guide.to(x.dtype)], dim=1)
        feats = []
        for level, block in enumerate((self.conv_0, self.down_1, self.down_2, self.down_3, self.down_4)):
            x = self._modulate(level, block(x), guide)
            feats.append(x)
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x0, x1, x2, x3, x4 = feats
        u = self.upcat_4(x4, x3)
        u = self.upcat_3(u, x2)
        u = self.upcat_2(u, x1)
        u = self.upcat_1(u, x0)
        return self.final_conv(u)

    def forward(self, x: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        return self.decode(self.encode(x, guide))
