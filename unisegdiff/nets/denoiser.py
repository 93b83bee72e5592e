"""Conditional mask denoiser: a light U-Net on (x_t, condition probability) with FiLM timestep
embedding and the condition network's multi-scale features added at every scale.

Designed for cost: the image is encoded once by the condition network, so each sampling step
only runs this small network (no attention, few channels). 2D or 3D via ``spatial_dims``.
"""

from __future__ import annotations

import math

import torch
from monai.networks.layers import Conv
from monai.networks.nets.diffusion_model_unet import get_timestep_embedding
from torch import nn


class FiLMResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with a timestep FiLM (scale, shift) and a residual path."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, emb_dim: int):
        super().__init__()
        conv = Conv[Conv.CONV, dims]
        self.norm1 = nn.GroupNorm(math.gcd(8, in_ch), in_ch)
        self.conv1 = conv(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(math.gcd(8, out_ch), out_ch)
        self.conv2 = conv(out_ch, out_ch, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * out_ch)
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(emb).reshape(emb.shape[0], -1, *([1] * (x.ndim - 2))).chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(nn.functional.silu(h))
        return self.skip(x) + h


class ConditionalDenoiser(nn.Module):
    """Predicts the stage target from x_t (mask channels), t and the condition features.

    Args:
        spatial_dims: 2 or 3.
        mask_channels: channels of x_t (1 for a binary lesion mask).
        cond_channels: channels of the condition features at each of the 4 scales (full res first).
        channels: denoiser widths at the 4 scales.
        use_cond_prob: also take the condition network's probability map as an input channel.
        emb_dim: timestep embedding width.
        num_stages: stages of the StagePlan. With more than one, the stage index gets its own
            embedding (added to the timestep embedding) and its own output head, so the output
            may jump at a stage boundary where the target changes (e.g. v -> x0); a network
            smooth in t cannot, and its one-step estimate collapses near such boundaries.
        image_channels: channels of the image given to the stem beside x_t (0: the denoiser sees the
            image only through the condition features). With the image it can segment on its own,
            which condition dropout in training requires.
        self_condition: the stem also takes the previous x0 estimate (``mask_channels`` more inputs;
            zeros when there is none): self-conditioning, Chen et al. 2023 ("Analog Bits").
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        mask_channels: int = 1,
        cond_channels: tuple[int, ...] = (16, 32, 64, 128),
        channels: tuple[int, ...] = (16, 32, 64, 128),
        use_cond_prob: bool = True,
        emb_dim: int = 64,
        num_stages: int = 1,
        image_channels: int = 0,
        self_condition: bool = False,
    ):
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        if image_channels < 0:
            raise ValueError(f"image_channels must be >= 0, got {image_channels}")
        if len(cond_channels) != len(channels):
            raise ValueError(f"cond_channels {cond_channels} and channels {channels} must have the same length")
        conv = Conv[Conv.CONV, spatial_dims]
        self.spatial_dims, self.use_cond_prob, self.emb_dim, self.num_stages = spatial_dims, use_cond_prob, emb_dim, num_stages
        self.image_channels, self.self_condition = image_channels, bool(self_condition)
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim * 2), nn.SiLU(), nn.Linear(emb_dim * 2, emb_dim))
        self.stage_emb = nn.Embedding(num_stages, emb_dim) if num_stages > 1 else None
        stem_in = mask_channels * (2 if self_condition else 1) + int(use_cond_prob) + image_channels
        self.stem = conv(stem_in, channels[0], 3, padding=1)
        block_in = [channels[0]] + list(channels[:-1])  # width entering each encoder level
        self.cond_proj = nn.ModuleList(conv(c, w, 1) for c, w in zip(cond_channels, block_in))
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        for i, w in enumerate(channels):
            self.down.append(FiLMResBlock(spatial_dims, block_in[i], w, emb_dim))
            if i < len(channels) - 1:
                self.pool.append(conv(w, w, 3, stride=2, padding=1))
        self.mid = FiLMResBlock(spatial_dims, channels[-1], channels[-1], emb_dim)
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            self.up.append(FiLMResBlock(spatial_dims, channels[i + 1] + channels[i], channels[i], emb_dim))
        self.out_norm = nn.GroupNorm(math.gcd(8, channels[0]), channels[0])
        # one head per stage; zero-initialized so every head starts at 0 (x0 heads then start at the
        # condition network's logits when the caller adds them, v / eps heads at the prior mean)
        self.out = nn.ModuleList(conv(channels[0], mask_channels, 3, padding=1) for _ in range(num_stages))
        for head in self.out:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond_feats: list[torch.Tensor], cond_prob: torch.Tensor | None = None,
                stage: torch.Tensor | None = None, image: torch.Tensor | None = None,
                x0_prev: torch.Tensor | None = None) -> torch.Tensor:
        """Raw output for each row; ``stage`` (B,) selects the stage embedding and head (needed when num_stages > 1);
        ``image`` (B, image_channels, ...) is required when the denoiser was built with image channels; ``x0_prev``
        (shaped like x_t, in [-1, 1]) is the previous x0 estimate of a self-conditioned denoiser (None: zeros)."""
        if self.num_stages > 1 and stage is None:
            raise ValueError(f"ConditionalDenoiser has {self.num_stages} stages: pass the stage index of each row")
        if (image is None) != (self.image_channels == 0) or (image is not None and image.shape[1] != self.image_channels):
            raise ValueError(f"ConditionalDenoiser was built with image_channels={self.image_channels}: "
                             f"got image {None if image is None else tuple(image.shape)}")
        if x0_prev is not None and not self.self_condition:
            raise ValueError("ConditionalDenoiser was built without self_condition: it takes no x0_prev")
        if x0_prev is not None and x0_prev.shape != x_t.shape:
            raise ValueError(f"x0_prev must have x_t's shape {tuple(x_t.shape)}, got {tuple(x0_prev.shape)}")
        emb = self.time_mlp(get_timestep_embedding(t.float(), self.emb_dim))
        if self.stage_emb is not None:
            emb = emb + self.stage_emb(stage)
        h = torch.cat([x_t, cond_prob], dim=1) if self.use_cond_prob else x_t
        if self.self_condition:
            h = torch.cat([h, torch.zeros_like(x_t) if x0_prev is None else x0_prev.to(h.dtype)], dim=1)
        if image is not None:
            h = torch.cat([h, image.to(h.dtype)], dim=1)
        h = self.stem(h)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                h = self.pool[i - 1](h)
            h = block(h + self.cond_proj[i](cond_feats[i]), emb)
            skips.append(h)
        h = self.mid(h, emb)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = nn.functional.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        h = nn.functional.silu(self.out_norm(h))
        if self.num_stages == 1:
            return self.out[0](h)
        heads = torch.stack([head(h) for head in self.out], dim=1)  # (B, S, C, ...): heads are one cheap conv each
        pick = stage.long().reshape(-1, 1, *([1] * (heads.ndim - 2))).expand(-1, 1, *heads.shape[2:])
        return heads.gather(1, pick).squeeze(1)
