"""Feature diagnostics for pretrained encoders: the effective rank of each pyramid level over voxels of a batch
(Roy & Vetterli's exp-entropy of normalized singular values), and the channel-decorrelation penalty against collapse.
"""

from __future__ import annotations

import torch


def effective_rank(features: torch.Tensor) -> float:
    """Effective rank of (B, C, *spatial) features seen as B * prod(spatial) samples of C channels (1 <= rank <= C)."""
    if features.ndim < 3:
        raise ValueError(f"effective_rank expects (B, C, *spatial) features, got shape {tuple(features.shape)}")
    x = features.detach().double().transpose(0, 1).flatten(1).T
    x = x - x.mean(dim=0)
    energy = torch.linalg.svdvals(x) ** 2
    if float(energy.sum()) == 0.0:
        return 0.0
    p = energy / energy.sum()
    return float(torch.exp(-(p * p.clamp_min(1e-300).log()).sum()))


@torch.no_grad()
def pyramid_effective_ranks(backbone, image: torch.Tensor, guide: torch.Tensor | None = None) -> list[float]:
    """Effective rank of every encoder level of ``backbone.encode(image, guide)`` (backbone in eval mode)."""
    was_training = backbone.training
    backbone.eval()
    try:
        return [effective_rank(f) for f in backbone.encode(image, guide)]
    finally:
        backbone.train(was_training)


def channel_decorrelation(features: torch.Tensor, max_voxels: int = 4096) -> torch.Tensor:
    """Mean squared off-diagonal channel correlation over (up to ``max_voxels`` random) voxels of (B, C, *spatial)
    features: 0 for decorrelated channels, 1 when all channels are one direction. Differentiable (a training penalty)."""
    if features.ndim < 3 or features.shape[1] < 2:
        raise ValueError(f"channel_decorrelation expects (B, C>=2, *spatial) features, got shape {tuple(features.shape)}")
    x = features.transpose(0, 1).flatten(1)
    if x.shape[1] > max_voxels:
        x = x[:, torch.randint(0, x.shape[1], (max_voxels,), device=x.device)]
    x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-4)
    corr = x @ x.T / x.shape[1]
    c = corr.shape[0]
    return (corr.pow(2).sum() - corr.diagonal().pow(2).sum()) / (c * (c - 1))
