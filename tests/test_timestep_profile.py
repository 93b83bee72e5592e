"""Tests of the timestep profile probe and the figures written from it."""

import pytest
import torch
from PIL import Image

from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter
from unisegdiff.plots import plot_overlays, plot_timestep_profiles
from unisegdiff.timestep_profile import profile_timesteps, timestep_profile

SMALL = dict(condition_features=(4, 8, 8, 16, 16, 4), denoiser_channels=(4, 8, 8, 16))


def _mask():
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 10:26] = 1
    return mask


def test_profile_timesteps_cover_range():
    ts = profile_timesteps(1000, 20)
    assert ts[0] == 0 and ts[-1] == 999 and len(ts) == 20 and ts == sorted(ts)


def test_profile_of_eps_model_is_exact_at_low_noise_and_poor_at_high_noise():
    # an (untrained) eps model: at t=0 the implied x0 is x_t itself (sqrt(1-ab) ~ 0), at t=T-1 it is noise
    stages = [dict(name="eps", start=0, end=1000, target="eps", loss={"mse": 1}, steps=10)]
    model = StagedDiffusionSegmenter(stages=stages, **SMALL).eval()
    rows = dict(timestep_profile(model, torch.randn(2, 3, 32, 32), _mask(), [0, 999]))
    assert rows[0] > 0.95
    assert rows[999] < 0.8


def test_profile_rejects_deterministic_model():
    with pytest.raises(TypeError, match="DeterministicSegmenter is not a diffusion model"):
        timestep_profile(DeterministicSegmenter(features=(4, 8, 8, 16, 16, 4)), torch.randn(1, 3, 32, 32), _mask()[:1], [0])


def test_plots_are_pngs(tmp_path):
    p = plot_timestep_profiles({"staged": [(0, 0.9), (500, 0.7), (999, 0.4)], "eps": [(0, 0.99), (999, 0.1)]}, tmp_path / "p.png")
    assert Image.open(p).size[0] > 100
    m = _mask().numpy()
    o = plot_overlays(torch.rand(2, 3, 32, 32).numpy(), m, m, torch.rand(2, 1, 32, 32).numpy(), tmp_path / "o.png", ["a", "b"])
    assert Image.open(o).size[1] > 100
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.png", "p.png"]  # no temp files left
