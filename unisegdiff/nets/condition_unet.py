"""Condition network: MONAI's BasicUNet that also returns its decoder features at every scale.

Phase 1 trains it as a deterministic segmenter; phase 2 feeds its multi-scale features
(and its probability map) to the denoiser. Works for 2D and 3D (``spatial_dims``).
"""

from __future__ import annotations

import torch
from monai.networks.nets import BasicUNet


class ConditionUNet(BasicUNet):
    """BasicUNet whose ``forward_features`` returns ``(logits, [u1, u2, u3, u4])`` (full res -> 1/8 res)."""

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        features: tuple[int, int, int, int, int, int] = (16, 32, 64, 128, 256, 16),
        dropout: float = 0.0,
        norm: str = "instance",
    ):
        super().__init__(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
            features=features, dropout=dropout, norm=(norm, {"affine": True}),
        )
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.features = tuple(features)

    @property
    def feature_channels(self) -> tuple[int, int, int, int]:
        """Channels of the decoder features returned by ``forward_features``, from full res down."""
        f = self.features
        return (f[5], f[1], f[2], f[3])

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ConditionUNet expects (B, {self.in_channels}, {'D, ' if self.spatial_dims == 3 else ''}H, W) "
                f"input, got {tuple(x.shape)}"
            )
        x0 = self.conv_0(x)
        x1 = self.down_1(x0)
        x2 = self.down_2(x1)
        x3 = self.down_3(x2)
        x4 = self.down_4(x3)
        u4 = self.upcat_4(x4, x3)
        u3 = self.upcat_3(u4, x2)
        u2 = self.upcat_2(u3, x1)
        u1 = self.upcat_1(u2, x0)
        return self.final_conv(u1), [u1, u2, u3, u4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
