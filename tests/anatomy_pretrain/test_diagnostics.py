"""Effective rank of encoder features: exact on constructed low-rank features, bounded by the channel count."""

import pytest
import torch

from anatomy_pretrain.backbone import GuidedUNet3D
from anatomy_pretrain.diagnostics import channel_decorrelation, effective_rank, pyramid_effective_ranks


def test_effective_rank_of_constructed_features():
    torch.manual_seed(0)
    isotropic = torch.randn(4, 8, 16, 16, 16)
    assert 7.5 < effective_rank(isotropic) <= 8.0
    rank_two = torch.einsum("bkxyz,kc->bcxyz", torch.randn(4, 2, 16, 16, 16), torch.randn(2, 8))
    assert effective_rank(rank_two) <= 2.0 + 1e-6
    one_direction = torch.randn(2, 1, 8, 8, 8) * torch.ones(1, 8, 1, 1, 1)
    assert effective_rank(one_direction) == pytest.approx(1.0, abs=1e-6)
    assert effective_rank(torch.zeros(1, 4, 4, 4, 4)) == 0.0
    with pytest.raises(ValueError, match="expects"):
        effective_rank(torch.zeros(4, 8))


def test_pyramid_ranks_leave_the_backbone_mode_alone():
    torch.manual_seed(0)
    net = GuidedUNet3D(features=(4, 4, 8, 16, 32, 4)).train()
    ranks = pyramid_effective_ranks(net, torch.randn(2, 1, 32, 32, 32))
    assert len(ranks) == 5 and all(0 < r <= c for r, c in zip(ranks, (4, 4, 8, 16, 32)))
    assert net.training


def test_channel_decorrelation_is_zero_for_independent_and_one_for_copied_channels():
    torch.manual_seed(0)
    assert float(channel_decorrelation(torch.randn(2, 4, 16, 16, 16))) < 0.01
    copied = torch.randn(2, 1, 16, 16, 16).repeat(1, 4, 1, 1, 1)
    assert float(channel_decorrelation(copied)) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="C>=2"):
        channel_decorrelation(torch.randn(2, 1, 8, 8, 8))
