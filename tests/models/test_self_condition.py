"""Self-conditioning of the staged denoiser (Analog Bits): the previous x0 estimate as an input, fed
from a no-gradient first call in training and from the previous sampling call at inference."""

import pytest
import torch

from unisegdiff.models import StagedDiffusionSegmenter
from unisegdiff.nets import ConditionalDenoiser

SMALL = dict(condition_features=(4, 8, 8, 16, 16, 4), denoiser_channels=(4, 8, 8, 16))


def _feats(b=2, size=16):
    return [torch.randn(b, c, size // s, size // s) for c, s in zip((4, 8, 8, 16), (1, 2, 4, 8))]


def _randomize(model):
    with torch.no_grad():  # zero-initialized heads and residual convs would hide what the inputs do
        for head in model.denoiser.out:
            head.weight.normal_(0, 0.5)
        for block in list(model.denoiser.down) + [model.denoiser.mid] + list(model.denoiser.up):
            block.conv2.weight.normal_(0, 0.2)


def test_denoiser_reads_x0_prev_with_zeros_as_the_default_and_checks_it():
    net = ConditionalDenoiser(cond_channels=(4, 8, 8, 16), channels=(4, 8, 8, 16), self_condition=True)
    assert net.stem.in_channels == 3  # x_t, condition probability, previous x0
    with torch.no_grad():
        net.out[0].weight.normal_(0, 0.5)
    x, t, feats, prob = torch.randn(2, 1, 16, 16), torch.tensor([10, 900]), _feats(), torch.rand(2, 1, 16, 16)
    none = net(x, t, feats, prob)
    zeros = net(x, t, feats, prob, x0_prev=torch.zeros_like(x))
    ones = net(x, t, feats, prob, x0_prev=torch.ones_like(x))
    assert torch.equal(none, zeros) and not torch.allclose(zeros, ones)
    with pytest.raises(ValueError, match="x0_prev must have x_t's shape"):
        net(x, t, feats, prob, x0_prev=torch.zeros(2, 1, 8, 8))
    plain = ConditionalDenoiser(cond_channels=(4, 8, 8, 16), channels=(4, 8, 8, 16))
    assert plain.stem.in_channels == 2
    with pytest.raises(ValueError, match="built without self_condition"):
        plain(x, t, feats, prob, x0_prev=torch.zeros_like(x))


def test_self_condition_fraction_is_validated():
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match=r"self_condition must be a fraction in \[0, 1\]"):
            StagedDiffusionSegmenter(self_condition=bad, **SMALL)
    assert not StagedDiffusionSegmenter(**SMALL).denoiser.self_condition
    assert StagedDiffusionSegmenter(self_condition=0.5, **SMALL).denoiser.self_condition


def test_x0_estimate_rows_reads_each_row_by_its_stage():
    model = StagedDiffusionSegmenter(**SMALL)  # default plan: refine x0 [0, 200), model v [200, 600), segment x0
    sched = model.scheduler
    t = torch.tensor([50, 400, 900])
    stage = sched.stage_index(t)
    x_t, raw = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    rows = sched.x0_estimate_rows(raw, x_t, t, stage)
    assert torch.allclose(rows[0], torch.tanh(raw[0] / 2)) and torch.allclose(rows[2], torch.tanh(raw[2] / 2))
    v_row = sched.x0_estimate(raw[1:2], "v", x_t[1:2], t[1:2]).clamp(-1, 1)
    assert torch.allclose(rows[1:2], v_row)
    assert float(rows.abs().max()) <= 1.0


def test_training_feeds_the_detached_first_call_estimate_or_zeros():
    torch.manual_seed(0)
    model = StagedDiffusionSegmenter(self_condition=1.0, **SMALL)
    _randomize(model)
    seen = []
    forward = model.denoiser.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("x0_prev", args[6] if len(args) > 6 else None))
        return forward(*args, **kwargs)

    model.denoiser.forward = spy
    image, mask = torch.randn(4, 3, 32, 32), (torch.rand(4, 1, 32, 32) > 0.5).float()
    loss, _ = model.diffusion_loss(image, mask, t=torch.tensor([50, 300, 700, 950]))
    assert len(seen) == 2  # the no-gradient first call (zeros), then the trained call with its estimate
    assert torch.equal(seen[0], torch.zeros_like(seen[0]))
    assert not seen[1].requires_grad and float(seen[1].abs().sum()) > 0 and float(seen[1].abs().max()) <= 1
    loss.backward()
    assert model.denoiser.stem.weight.grad[:, 2].abs().sum() > 0  # the x0_prev input channel learns
    seen.clear()
    model.hparams.self_condition = 1e-9  # practically never: one call, zeros
    model.diffusion_loss(image, mask)
    assert len(seen) == 1 and torch.equal(seen[0], torch.zeros_like(seen[0]))


def test_sampling_gives_each_call_the_previous_calls_estimate():
    model = StagedDiffusionSegmenter(self_condition=0.5, **SMALL).eval()
    _randomize(model)
    calls = []
    denoise = model.denoise

    def spy(x_t, t, stage, feats, cond_logits, image=None, keep=None, x0_prev=None):
        raw = denoise(x_t, t, stage, feats, cond_logits, image, keep, x0_prev)
        calls.append((None if x0_prev is None else x0_prev.clone(), model.scheduler.x0_estimate_rows(raw.float(), x_t, t, stage)))
        return raw

    model.denoise = spy
    image = torch.randn(2, 3, 32, 32)
    samples = model.sample_masks(image, 2)
    assert samples.shape == (2, 2, 1, 32, 32) and len(calls) == model.network_calls > 1
    assert calls[0][0] is None  # the first call has no estimate (the denoiser reads zeros)
    for (_, before), (given, _) in zip(calls, calls[1:]):
        assert torch.allclose(given, before, atol=1e-5)  # every later call sees the estimate of the call before


def test_guided_sampling_conditions_each_branch_on_its_own_estimate():
    model = StagedDiffusionSegmenter(self_condition=0.5, denoiser_image=True, condition_dropout=0.5, guidance_scale=2.0,
                                     **SMALL).eval()
    _randomize(model)
    calls = []
    denoise = model.denoise

    def spy(x_t, t, stage, feats, cond_logits, image=None, keep=None, x0_prev=None):
        raw = denoise(x_t, t, stage, feats, cond_logits, image, keep, x0_prev)
        calls.append((keep.clone(), None if x0_prev is None else x0_prev.clone(),
                      model.scheduler.x0_estimate_rows(raw.float(), x_t, t, stage)))
        return raw

    model.denoise = spy
    model.sample_masks(torch.randn(2, 3, 32, 32), 2)  # 4 rows, 8 in the doubled batch
    assert calls[0][1] is None and len(calls) == model.scheduler.network_calls
    for (keep, _, before), (_, given, _) in zip(calls, calls[1:]):
        assert given.shape[0] == 8 and keep.tolist() == [True] * 4 + [False] * 4
        assert torch.allclose(given, before, atol=1e-5)  # the condition-dropped half gets its own estimate back
        assert not torch.allclose(given[:4], given[4:])  # and the two branches' estimates differ


def test_self_conditioned_model_fits_a_tiny_problem_and_checkpoints_round_trip(tmp_path):
    torch.manual_seed(0)
    model = StagedDiffusionSegmenter(self_condition=0.5, freeze_condition=False, denoiser_trains_condition=False,
                                     num_samples=2, **SMALL)
    image = torch.randn(4, 3, 32, 32)
    mask = (image[:, :1] > 0).float()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(60):
        loss, _ = model.diffusion_loss(image, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5
    model.eval()
    gen = lambda: [torch.Generator().manual_seed(i) for i in range(4)]
    fused = model.predict_fused(image, gen())
    dice = 2 * (fused.mask * mask).sum() / (fused.mask.sum() + mask.sum())
    assert dice > 0.7
    path = tmp_path / "sc.pt"
    torch.save({"state_dict": model.state_dict(), "hparams": dict(model.hparams)}, path)
    saved = torch.load(path, weights_only=False)
    again = StagedDiffusionSegmenter(**saved["hparams"]).eval()
    again.load_state_dict(saved["state_dict"])
    assert torch.allclose(again.predict_fused(image, gen()).probability, fused.probability)
