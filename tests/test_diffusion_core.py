"""Tests of the diffusion core: schedules, q_sample, conversions, samplers with oracles."""

import pytest
import torch

from unisegdiff.diffusion import (
    StagePlan, convert, ddim_sample, ddpm_sample, make_schedule, q_sample, sample, spaced_timesteps,
)

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
    there = convert(truth[src], src, dst, xt, ab)
    torch.testing.assert_close(there, truth[dst], rtol=1e-6, atol=1e-6)
    back = convert(there, dst, src, xt, ab)
    torch.testing.assert_close(back, truth[src], rtol=1e-6, atol=1e-6)


def test_convert_rejects_unknown_kind():
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="unknown prediction kind 'score'"):
        convert(x, "score", "x0", x, torch.full((1, 1), 0.5))


def _oracle(schedule, x0, kind_of):
    """A model that knows x0 and answers in the parameterization the sampler asks for at t."""
    def model(xt, t):
        ab = schedule.alpha_bar(t, xt)
        eps = (xt - ab.sqrt() * x0) / (1 - ab).sqrt()
        return convert(x0, "x0", kind_of(int(t[0])), xt, ab) if kind_of(int(t[0])) != "eps" else eps
    return model


@pytest.mark.parametrize("kind", ["x0", "eps", "v"])
@pytest.mark.parametrize("steps", [1, 10, 50, 1000])
def test_ddim_with_oracle_recovers_x0(kind, steps):
    s = make_schedule("linear", T)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    xT = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    seen = []
    out = ddim_sample(_oracle(s, x0, lambda t: kind), xT, s, steps, kind, callback=lambda t, est: seen.append(est))
    assert len(seen) == steps
    torch.testing.assert_close(out, x0, rtol=1e-6, atol=1e-6)
    for est in seen:  # every intermediate x0 estimate is exact too
        torch.testing.assert_close(est, x0, rtol=1e-6, atol=1e-6)


def test_ddpm_with_oracle_recovers_x0_and_is_seeded():
    s = make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    xT = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    a = ddpm_sample(_oracle(s, x0, lambda t: "eps"), xT, s, generator=torch.Generator().manual_seed(7))
    b = ddpm_sample(_oracle(s, x0, lambda t: "eps"), xT, s, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, x0, rtol=1e-5, atol=1e-5)
    assert torch.equal(a, b)


def test_sampler_follows_a_kind_that_changes_with_t():
    s = make_schedule("cosine", T)
    plan = StagePlan([
        dict(name="segment", start=600, end=1000, target="x0", steps=1),
        dict(name="model", start=200, end=600, target="v", steps=4),
        dict(name="refine", start=0, end=200, target="eps", steps=5),
    ], T)
    asked = []
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)
    oracle = _oracle(s, x0, plan.target_at)

    def model(xt, t):
        asked.append(int(t[0]))
        return oracle(xt, t)

    out = sample(model, torch.randn(x0.shape, generator=g, dtype=torch.float64), s, plan.inference_timesteps(), plan.target_at)
    torch.testing.assert_close(out, x0, rtol=1e-6, atol=1e-6)
    assert asked == [999, 599, 499, 399, 299, 199, 159, 119, 79, 39]
    # a wrong kind at one stage breaks recovery: the sampler really uses the per-t kind
    wrong = sample(oracle, torch.randn(x0.shape, generator=g, dtype=torch.float64), s, plan.inference_timesteps(), "x0")
    assert not torch.allclose(wrong, x0, atol=1e-3)


def test_spaced_timesteps_and_sampler_argument_checks():
    assert spaced_timesteps(1000, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert spaced_timesteps(1000, 1000) == list(range(999, -1, -1))
    s = make_schedule("linear", 10)
    with pytest.raises(ValueError, match="strictly descending"):
        sample(lambda x, t: x, torch.zeros(1, 1), s, [3, 5], "eps")
    with pytest.raises(ValueError, match=r"lie in \[0, 10\)"):
        sample(lambda x, t: x, torch.zeros(1, 1), s, [10, 5], "eps")
    with pytest.raises(ValueError, match="num_steps must be in"):
        spaced_timesteps(10, 11)
