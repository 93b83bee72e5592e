"""Tests of the diffusion math: schedules, q_sample, and exact conversions between x0, eps and v."""

import pytest
import torch

from unisegdiff.diffusion import from_x0_eps, make_schedule, q_sample, spaced_timesteps, to_x0_eps

T = 1000


@pytest.mark.parametrize("name", ["linear", "cosine", "scaled_linear"])
@pytest.mark.parametrize("num_timesteps", [1, 10, 1000])
def test_schedules_monotone_in_unit_interval(name, num_timesteps):
    s = make_schedule(name, num_timesteps)
    assert s.betas.shape == (num_timesteps,) and s.alphas_cumprod.dtype == torch.float64
    assert bool(((s.betas > 0) & (s.betas < 1)).all())
    assert bool(((s.alphas_cumprod > 0) & (s.alphas_cumprod < 1)).all())
    assert bool((s.alphas_cumprod[1:] < s.alphas_cumprod[:-1]).all())


def test_schedule_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown noise schedule 'sigmoidal'"):
        make_schedule("sigmoidal")


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_q_sample_mean_and_variance(name):
    s = make_schedule(name, T)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7, dtype=torch.float64)
    for t in (0, 250, 500, 999):
        noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = q_sample(s, x0, torch.full((x0.shape[0],), t), noise)
        ab = s.alphas_cumprod[t]
        assert xt.mean().item() == pytest.approx((ab.sqrt() * 0.7).item(), abs=0.03)
        assert xt.var().item() == pytest.approx((1 - ab).item(), abs=0.03)


@pytest.mark.parametrize("src", ["x0", "eps", "v"])
@pytest.mark.parametrize("dst", ["x0", "eps", "v"])
def test_conversions_round_trip_for_all_t(src, dst):
    s = make_schedule("cosine", T)
    g = torch.Generator().manual_seed(1)
    t = torch.arange(T)
    x0 = torch.randn(T, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(T, 1, 4, 4, generator=g, dtype=torch.float64)
    xt = q_sample(s, x0, t, eps)
    ab = s.alpha_bar(t, xt)
    truth = {"x0": x0, "eps": eps, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}
    there = from_x0_eps(*to_x0_eps(truth[src], src, xt, ab), dst, ab)
    torch.testing.assert_close(there, truth[dst], rtol=1e-6, atol=1e-6)
    back = from_x0_eps(*to_x0_eps(there, dst, xt, ab), src, ab)
    torch.testing.assert_close(back, truth[src], rtol=1e-6, atol=1e-6)


def test_conversions_reject_unknown_kind():
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="unknown prediction kind 'score'"):
        to_x0_eps(x, "score", x, torch.full((1, 1), 0.5))
    with pytest.raises(ValueError, match="unknown prediction kind 'score'"):
        from_x0_eps(x, x, "score", torch.full((1, 1), 0.5))


def test_spaced_timesteps():
    assert spaced_timesteps(1000, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert spaced_timesteps(1000, 1000) == list(range(999, -1, -1))
    with pytest.raises(ValueError, match="num_steps must be in"):
        spaced_timesteps(10, 11)
