"""Tests of StagedScheduler: timesteps per setting, oracle recovery through every prediction kind
(x0 heads as logits), DDPM seeding, the per-t kind of staged plans, and immutability."""

import pytest
import torch

from unisegdiff.diffusion import StagedScheduler, StagePlan, from_x0_eps, make_schedule

T = 1000


def _plan(kinds=("x0", "v", "eps"), steps=(1, 4, 5)):
    """Three stages, listed high-t first: [600, 1000), [200, 600), [0, 200)."""
    edges = [(600, 1000), (200, 600), (0, 200)]
    return StagePlan([dict(name=f"s{i}", start=a, end=b, target=k, steps=n) for i, ((a, b), k, n) in enumerate(zip(edges, kinds, steps))], T)


def _oracle(scheduler, x0, asked=None):
    """A denoiser that knows x0 and answers in the raw form the scheduler expects at each row's stage."""
    def denoise(x_t, t, stage):
        if asked is not None:
            asked.append(int(t[0]))
        ab = scheduler.schedule.alpha_bar(t, x_t)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        kind = scheduler.plan.stages[int(stage[0])].target
        return 2 * torch.atanh(x0) if kind == "x0" else from_x0_eps(x0, eps, kind, ab)  # x0 heads emit logits
    return denoise


def _x0(seed=0, shape=(3, 1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(shape, generator=g, dtype=torch.float64)), torch.randn(shape, generator=g, dtype=torch.float64)


def test_timesteps_follow_the_setting():
    sched = StagedScheduler.from_plan(_plan())
    assert sched.timesteps == (999, 599, 499, 399, 299, 199, 159, 119, 79, 39) and sched.network_calls == 10
    assert sched.set_timesteps(50).timesteps[:3] == (999, 979, 959) and sched.set_timesteps(50).network_calls == 50
    per_stage = sched.set_timesteps([2, 1, 1])  # ascending t: [0,200) 2 steps, [200,600) 1, [600,1000) 1
    assert per_stage.timesteps == (999, 599, 199, 99) and per_stage.steps == (2, 1, 1)
    assert sched.timesteps[0] == 999 and sched.network_calls == 10  # the original is unchanged
    with pytest.raises(ValueError, match="sampler must be one of"):
        sched.set_timesteps(None, "euler")
    with pytest.raises(ValueError, match="num_steps must be in"):
        sched.set_timesteps(5000)
    with pytest.raises(ValueError, match="need 3 values"):
        sched.set_timesteps([1, 2])


@pytest.mark.parametrize("kind", ["x0", "eps", "v"])
@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_with_oracle_recovers_x0_for_every_kind(kind, steps):
    plan = StagePlan([dict(name="all", start=0, end=T, target=kind, steps=1)], T)
    sched = StagedScheduler.from_plan(plan, make_schedule("linear", T)).set_timesteps(steps)
    x0, x_T = _x0(2)
    seen = []
    out = sched.sample(_oracle(sched, x0), x_T, callback=lambda t, est: seen.append(est))
    assert len(seen) == steps
    torch.testing.assert_close(out, x0, rtol=1e-6, atol=1e-6)
    for est in seen:  # every intermediate x0 estimate is exact too
        torch.testing.assert_close(est, x0, rtol=1e-6, atol=1e-6)


def test_ddpm_with_oracle_recovers_x0_and_is_seeded():
    plan = StagePlan([dict(name="all", start=0, end=100, target="eps", steps=1)], 100)
    sched = StagedScheduler.from_plan(plan).set_timesteps(100, "ddpm")
    x0, x_T = _x0(3, (2, 1, 4, 4))
    a = sched.sample(_oracle(sched, x0), x_T, generator=torch.Generator().manual_seed(7))
    b = sched.sample(_oracle(sched, x0), x_T, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, x0, rtol=1e-5, atol=1e-5)
    assert torch.equal(a, b)
    # ancestral noise really enters: a wrong (constant) eps gives a different result per seed
    wrong = lambda x, t, s: torch.zeros_like(x)
    c = sched.sample(wrong, x_T, generator=torch.Generator().manual_seed(7))
    d = sched.sample(wrong, x_T, generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(c, d)


def test_staged_plan_uses_each_stage_kind():
    sched = StagedScheduler.from_plan(_plan())
    x0, x_T = _x0(4, (2, 1, 4, 4))
    asked = []
    out = sched.sample(_oracle(sched, x0, asked), x_T)
    torch.testing.assert_close(out, x0, rtol=1e-6, atol=1e-6)
    assert asked == list(sched.timesteps)
    # the same oracle read with one kind everywhere fails: the scheduler really switches kind per stage
    flat = StagedScheduler.from_plan(_plan(kinds=("x0", "x0", "x0")))
    wrong = flat.sample(_oracle(sched, x0), x_T)
    assert not torch.allclose(wrong, x0, atol=1e-3)


def test_step_outputs_clipped_x0_and_rejects_unknown_timesteps():
    sched = StagedScheduler.from_plan(_plan())
    x_t = torch.zeros(1, 1, 2, 2, dtype=torch.float64)
    _, x0_hat = sched.step(torch.full_like(x_t, 50.0), 999, x_t)  # an x0 head's logit of 50 -> x0 = 1
    torch.testing.assert_close(x0_hat, torch.ones_like(x_t))
    with pytest.raises(ValueError, match="not one of this scheduler's timesteps"):
        sched.step(x_t, 998, x_t)


def test_stage_index_on_the_rows_device_and_x0_mask():
    sched = StagedScheduler.from_plan(_plan())
    t = torch.tensor([0, 199, 200, 599, 600, 999])
    stage = sched.stage_index(t)
    assert stage.tolist() == [0, 0, 1, 1, 2, 2] and stage.device == t.device
    assert sched.is_x0(stage).tolist() == [False, False, False, False, True, True]  # ascending: eps, v, x0


def test_training_target_and_add_noise_agree_with_the_estimate():
    sched = StagedScheduler.from_plan(_plan())
    x0, noise = _x0(5)
    t = torch.tensor([10, 300, 900])
    x_t = sched.add_noise(x0, noise, t)
    for kind in ("x0", "eps", "v"):
        target = sched.training_target(x0, noise, t, kind)
        torch.testing.assert_close(sched.x0_estimate(target, kind, x_t, t), x0, rtol=1e-6, atol=1e-6)


def test_schedule_and_plan_must_agree():
    with pytest.raises(ValueError, match="schedule has 10 timesteps but the plan covers 1000"):
        StagedScheduler.from_plan(_plan(), make_schedule("cosine", 10))
