"""The staged model's issue-16 options: a denoiser that sees the image, condition dropout in training,
and self-correction (low-noise x0 stages trained on x_t of the condition network's own estimate)."""

import pytest
import torch

from unisegdiff.models import StagedDiffusionSegmenter
from unisegdiff.nets import ConditionalDenoiser

SMALL = dict(condition_features=(4, 8, 8, 16, 16, 4), denoiser_channels=(4, 8, 8, 16))


def _batch(b=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(b, 3, size, size, generator=g)
    mask = (torch.rand(b, 1, size, size, generator=g) > 0.7).float()
    return image, mask


def _randomize_heads(model):
    with torch.no_grad():  # zero-initialized heads would hide whatever the inputs do
        for head in model.denoiser.out:
            head.weight.normal_(0, 0.5)
        for block in list(model.denoiser.down) + [model.denoiser.mid] + list(model.denoiser.up):
            block.conv2.weight.normal_(0, 0.2)


def test_denoiser_image_channels_change_the_output_and_are_required():
    net = ConditionalDenoiser(cond_channels=(4, 8, 8, 16), channels=(4, 8, 8, 16), image_channels=3)
    with torch.no_grad():
        net.out[0].weight.normal_(0, 0.5)
    x = torch.randn(2, 1, 16, 16)
    feats = [torch.randn(2, c, 16 // s, 16 // s) for c, s in zip((4, 8, 8, 16), (1, 2, 4, 8))]
    t = torch.tensor([10, 900])
    a = net(x, t, feats, torch.rand(2, 1, 16, 16), image=torch.zeros(2, 3, 16, 16))
    b = net(x, t, feats, torch.rand(2, 1, 16, 16), image=torch.ones(2, 3, 16, 16))
    assert a.shape == (2, 1, 16, 16) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match="image_channels=3"):
        net(x, t, feats, torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="image_channels=0"):
        ConditionalDenoiser(cond_channels=(4, 8, 8, 16), channels=(4, 8, 8, 16))(x, t, feats, torch.rand(2, 1, 16, 16), image=x)


def test_invalid_correction_settings_are_refused():
    with pytest.raises(ValueError, match="condition_dropout needs denoiser_image"):
        StagedDiffusionSegmenter(condition_dropout=0.3, **SMALL)
    with pytest.raises(ValueError, match=r"self_correction must lie in \[0, 1\)"):
        StagedDiffusionSegmenter(self_correction=1.5, **SMALL)
    with pytest.raises(ValueError, match=r"condition_dropout must lie in \[0, 1\)"):
        StagedDiffusionSegmenter(condition_dropout=-0.1, denoiser_image=True, **SMALL)


def test_dropped_rows_ignore_the_condition_and_kept_rows_use_it():
    model = StagedDiffusionSegmenter(denoiser_image=True, condition_dropout=0.5, **SMALL).eval()
    _randomize_heads(model)
    image, _ = _batch()
    logits, feats = model.condition.forward_features(image)
    x_t, t = torch.randn(4, 1, 32, 32), torch.full((4,), 800)
    stage = model.scheduler.stage_index(t)
    keep = torch.tensor([True, False, True, False])
    other_logits, other_feats = logits + 3.0, [f + 1.0 for f in feats]
    with torch.no_grad():
        a = model.denoise(x_t, t, stage, feats, logits, image, keep)
        b = model.denoise(x_t, t, stage, other_feats, other_logits, image, keep)
    assert torch.allclose(a[~keep], b[~keep])  # dropped: nothing of the condition reaches the output
    assert not torch.allclose(a[keep], b[keep])
    with torch.no_grad():  # and the image does reach it
        c = model.denoise(x_t, t, stage, feats, logits, image + 1.0, keep)
    assert not torch.allclose(a[~keep], c[~keep])


def test_self_correction_noises_only_low_noise_x0_rows_from_the_estimate():
    model = StagedDiffusionSegmenter(self_correction=0.999, **SMALL)  # default plan: segment x0 / model v / refine x0
    x0 = torch.ones(6, 1, 8, 8)
    cond_logits = torch.zeros(6, 1, 8, 8)  # estimate 2 * sigmoid(0) - 1 = 0 everywhere
    t = torch.tensor([900, 650, 400, 250, 150, 10])
    torch.manual_seed(0)
    src = model.noising_source(x0, cond_logits, model.scheduler.stage_index(t))
    from_estimate = [bool((row == 0).all()) for row in src]
    assert from_estimate == [False, False, False, False, True, True]  # only the refine stage (x0, t < 200)
    assert torch.equal(StagedDiffusionSegmenter(**SMALL).noising_source(x0, cond_logits, model.scheduler.stage_index(t)), x0)


def test_self_correction_keeps_the_true_mask_as_target_and_trains():
    model = StagedDiffusionSegmenter(self_correction=0.5, denoiser_image=True, condition_dropout=0.2,
                                     freeze_condition=False, denoiser_trains_condition=False, **SMALL)
    image, mask = _batch()
    loss, logs = model.diffusion_loss(image, mask, t=torch.tensor([50, 100, 800, 900]))
    assert torch.isfinite(loss) and {"stage/refine", "stage/segment", "condition"} <= set(logs)
    loss.backward()
    assert all(head.weight.grad.abs().sum() > 0 for k, head in enumerate(model.denoiser.out) if k != 1)  # x0 heads learn
    # the estimate is detached: with the denoiser's path cut, the condition network gets no gradient through it
    cut = StagedDiffusionSegmenter(self_correction=0.999, freeze_condition=False, denoiser_trains_condition=False,
                                   condition_loss_weight=0.0, **SMALL)
    _randomize_heads(cut)
    loss, _ = cut.diffusion_loss(image, mask, t=torch.full((4,), 50))
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in cut.condition.parameters())
    assert cut.denoiser.stem.weight.grad.abs().sum() > 0


def test_image_seeing_model_samples_and_fits_a_tiny_problem():
    torch.manual_seed(0)
    model = StagedDiffusionSegmenter(denoiser_image=True, condition_dropout=0.5, self_correction=0.5, freeze_condition=False,
                                     denoiser_trains_condition=False, num_samples=2, **SMALL)
    image = torch.randn(4, 3, 32, 32)
    mask = (image[:, :1] > 0).float()  # the mask is readable from the image
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    first = None
    for step in range(60):
        loss, _ = model.diffusion_loss(image, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss) if first is None else first
    assert float(loss) < 0.6 * first
    model.eval()
    samples = model.sample_masks(image, 2)
    assert samples.shape == (4, 2, 1, 32, 32) and 0 <= float(samples.min()) and float(samples.max()) <= 1
    fused = model.predict_fused(image)
    dice = 2 * (fused.mask * mask).sum() / (fused.mask.sum() + mask.sum())
    assert dice > 0.7


def test_guidance_mixes_the_conditioned_and_the_condition_free_outputs():
    model = StagedDiffusionSegmenter(denoiser_image=True, condition_dropout=0.5, **SMALL).eval()
    _randomize_heads(model)
    image, _ = _batch()
    logits, feats = model.condition.forward_features(image)
    x_t, t = torch.randn(4, 1, 32, 32), torch.full((4,), 800)
    stage = model.scheduler.stage_index(t)
    with torch.no_grad():
        cond = model.denoise(x_t, t, stage, feats, logits, image)
        uncond = model.denoise(x_t, t, stage, feats, logits, image, torch.zeros(4, dtype=torch.bool))
        for s in (0.0, 0.5, 2.0):
            guided = model.guided_denoise(x_t, t, stage, feats, logits, image, s)
            # both branches run in one doubled batch: conv kernels may sum in another order than the two single calls
            assert torch.allclose(guided, uncond + s * (cond - uncond), atol=1e-4)
        assert torch.equal(model.guided_denoise(x_t, t, stage, feats, logits, image, 1.0), cond)
    half = model.predict_fused(image, num_samples=2, guidance_scale=0.5)
    assert half.probability.shape == (4, 1, 32, 32)
    assert StagedDiffusionSegmenter(denoiser_image=True, condition_dropout=0.5, guidance_scale=0.5, **SMALL).network_calls == 16


def test_guidance_needs_a_condition_dropout_model():
    with pytest.raises(ValueError, match="needs a model trained with condition_dropout"):
        StagedDiffusionSegmenter(guidance_scale=0.5, **SMALL)
    model = StagedDiffusionSegmenter(**SMALL)
    with pytest.raises(ValueError, match="needs a model trained with condition_dropout"):
        model.predict_fused(torch.randn(1, 3, 32, 32), guidance_scale=0.5)
    with pytest.raises(ValueError, match="guidance_scale must be a number"):
        StagedDiffusionSegmenter(denoiser_image=True, condition_dropout=0.5, guidance_scale="half", **SMALL)


def test_condition_weight_fuses_the_condition_networks_probability():
    model = StagedDiffusionSegmenter(**SMALL).eval()
    _randomize_heads(model)
    image, _ = _batch()
    gen = lambda: [torch.Generator().manual_seed(i) for i in range(4)]
    samples = model.sample_masks(image, 2, gen())
    condition = model.condition_probability(image)
    alone = model.predict_fused(image, gen(), num_samples=2)
    assert torch.allclose(alone.probability, samples.mean(1))
    mixed = model.predict_fused(image, gen(), num_samples=2, condition_weight=0.25)
    assert torch.allclose(mixed.probability, 0.25 * condition + 0.75 * samples.mean(1), atol=1e-6)
    only = model.predict_fused(image, gen(), num_samples=2, condition_weight=1.0)
    assert torch.allclose(only.probability, condition, atol=1e-6)
    default = StagedDiffusionSegmenter(condition_weight=0.25, **SMALL).eval()
    default.load_state_dict(model.state_dict())
    assert torch.allclose(default.predict_fused(image, gen(), num_samples=2).probability, mixed.probability)
    with pytest.raises(ValueError, match=r"condition_weight must be a number in \[0, 1\]"):
        StagedDiffusionSegmenter(condition_weight=2.0, **SMALL)
    with pytest.raises(ValueError, match=r"condition_weight must be a number in \[0, 1\]"):
        model.predict_fused(image, condition_weight=-0.1)
