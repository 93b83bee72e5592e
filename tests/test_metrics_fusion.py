"""Tests of per-dataset metrics (values, macro average, empty-mask policy) and sample fusion."""

import math

import pytest
import torch

from unisegdiff.inference import fuse_samples
from unisegdiff.metrics import PerDatasetMetrics, per_sample_metrics


def _square(size=32, lo=8, hi=24):
    m = torch.zeros(1, 1, size, size)
    m[..., lo:hi, lo:hi] = 1
    return m


def test_per_sample_metrics_known_values():
    gt = _square()
    half = gt.clone()
    half[..., 16:24, :] = 0  # keeps 8x16 of the 16x16 square
    v = per_sample_metrics(torch.cat([gt, half]), torch.cat([gt, gt]))
    assert v[0, 0] == pytest.approx(1.0) and v[0, 1] == pytest.approx(1.0) and v[0, 2] == pytest.approx(0.0)
    assert v[1, 0] == pytest.approx(2 * 128 / (128 + 256)) and v[1, 1] == pytest.approx(0.5)
    assert v[1, 2] > 0


def test_empty_ground_truth_policy():
    empty = torch.zeros(1, 1, 32, 32)
    v = per_sample_metrics(torch.cat([empty, _square()]), torch.cat([empty, empty]))
    assert v[0, 0] == 1 and v[1, 0] == 0 and math.isnan(v[0, 2]) and math.isnan(v[1, 2])


def test_per_dataset_and_macro_average():
    m = PerDatasetMetrics(["a", "b"])
    gt = _square()
    empty_pred = torch.zeros_like(gt)
    m.update(torch.cat([gt, gt, empty_pred]), torch.cat([gt, gt, gt]), ["a", "a", "b"])
    out = m.compute()
    assert out["a/dice"] == pytest.approx(1.0) and out["b/dice"] == pytest.approx(0.0)
    assert out["macro/dice"] == pytest.approx(0.5)  # macro, not the sample mean (2/3)
    assert "b/hd95" not in out and out["macro/hd95"] == pytest.approx(0.0)
    doubled = m.compute(reduce_sum=lambda t: t * 2)  # what a 2-rank all-reduce of equal shards gives
    assert doubled["macro/dice"] == pytest.approx(0.5)
    m.reset()
    assert m.compute()["macro/dice"] != m.compute()["macro/dice"]  # NaN when nothing was seen


def test_fusion_mean_staple_and_uncertainty():
    base = _square()[0]
    samples = torch.stack([base, base, torch.zeros_like(base)])[None]  # (1, K=3, 1, H, W)
    mean = fuse_samples(samples, "mean", "variance")
    assert mean.probability[0, 0, 16, 16] == pytest.approx(2 / 3)
    assert mean.mask[0, 0, 16, 16] == 1 and mean.mask[0, 0, 0, 0] == 0
    assert mean.uncertainty[0, 0, 16, 16] == pytest.approx(2 / 9) and mean.uncertainty[0, 0, 0, 0] == 0
    ent = fuse_samples(samples, "mean", "entropy")
    assert ent.uncertainty[0, 0, 0, 0] == pytest.approx(0, abs=1e-4) and ent.uncertainty[0, 0, 16, 16] > 0.9
    staple = fuse_samples(samples, "staple")
    assert staple.mask[0, 0, 16, 16] == 1 and staple.mask[0, 0, 0, 0] == 0
    with pytest.raises(ValueError, match="unknown fusion 'vote'"):
        fuse_samples(samples, "vote")


def test_fusion_with_an_anchor_weighs_it_in():
    base = _square()[0]
    samples = torch.stack([base, torch.zeros_like(base)])[None]  # (1, K=2, 1, H, W): sample mean 0.5 inside the square
    anchor = base[None].clone()  # the anchor says 1 inside
    fused = fuse_samples(samples, "mean", "variance", anchor=anchor, anchor_weight=0.5)
    assert fused.probability[0, 0, 16, 16] == pytest.approx(0.75)  # 0.5 * 1 + 0.5 * 0.5
    # weighted variance: weights 0.25, 0.25, 0.5 at values 1, 0, 1 around 0.75
    assert fused.uncertainty[0, 0, 16, 16] == pytest.approx(0.25 * 0.0625 + 0.25 * 0.5625 + 0.5 * 0.0625)
    assert fused.uncertainty[0, 0, 0, 0] == 0 and fused.mask[0, 0, 16, 16] == 1
    assert torch.equal(fuse_samples(samples, anchor=anchor, anchor_weight=1.0).probability, anchor)
    assert torch.equal(fuse_samples(samples, anchor=anchor, anchor_weight=0.0).probability, samples.mean(1))
    assert torch.equal(anchor, base[None])  # inputs untouched
    with pytest.raises(ValueError, match=r"anchor_weight must be a number in \[0, 1\], got 1.5"):
        fuse_samples(samples, anchor=anchor, anchor_weight=1.5)
    with pytest.raises(ValueError, match="needs an anchor of shape"):
        fuse_samples(samples, anchor_weight=0.3)
