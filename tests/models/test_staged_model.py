"""Unit tests of the staged diffusion segmenter: every stage's loss path, frozen/fine-tuned
condition network, cross-stage checkpoint loading, network-call counts of each sampler setting."""

import lightning as L
import pytest
import torch

from unisegdiff.io import DataError
from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter

SMALL = dict(condition_features=(4, 8, 8, 16, 16, 4), denoiser_channels=(4, 8, 8, 16))


def _batch(b=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(b, 3, size, size, generator=g)
    mask = (torch.rand(b, 1, size, size, generator=g) > 0.7).float()
    return image, mask


@pytest.mark.parametrize("t, stage, terms", [
    (800, "segment", {"dice", "bce"}),
    (400, "model", {"mse"}),
    (50, "refine", {"dice", "bce", "mse"}),
])
def test_each_stage_loss_path(t, stage, terms):
    model = StagedDiffusionSegmenter(**SMALL)
    image, mask = _batch()
    loss, logs = model.diffusion_loss(image, mask, t=torch.full((4,), t))
    assert set(k.split("/")[-1] for k in logs if k.startswith(f"stage/{stage}/")) == terms
    assert not any(k.startswith("stage/") and stage not in k for k in logs)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    own = [s.name for s in model.plan.stages].index(stage)
    for k, head in enumerate(model.denoiser.out):  # only the stage's own head learns from its samples
        assert (head.weight.grad.abs().sum() > 0) == (k == own)
    assert all(p.grad is None for p in model.condition.parameters())  # frozen by default


def test_eps_and_v_stages_with_dice_use_the_implied_x0():
    stages = [dict(name="all", start=0, end=1000, target="eps", loss={"mse": 1, "dice": 1, "bce": 1}, steps=10)]
    model = StagedDiffusionSegmenter(stages=stages, **SMALL)
    image, mask = _batch()
    loss, logs = model.diffusion_loss(image, mask, t=torch.full((4,), 100))
    assert {"stage/all/mse", "stage/all/dice", "stage/all/bce"} <= set(logs)
    # a perfect eps prediction gives zero mse and a (near) perfect implied x0
    x0 = mask * 2 - 1
    noise = torch.randn_like(x0)
    t = torch.full((4,), 100)
    x_t = model.scheduler.add_noise(x0, noise, t)
    total, terms = model.stage_loss(model.plan.stages[0], noise, x_t, t, x0, noise)
    assert terms["mse"] == 0 and terms["dice"] < 0.05


def test_x0_head_is_logit_parameterized():
    scheduler = StagedDiffusionSegmenter(**SMALL).scheduler
    raw = torch.tensor([-20.0, 0.0, 20.0])
    assert torch.allclose(scheduler.prediction(raw, "x0"), torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.equal(scheduler.prediction(raw, "v"), raw)


def _count_calls(model):
    calls = []
    model.denoiser.register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("kwargs, expected", [({}, 8), ({"sampling_steps": 50}, 50), ({"sampler": "ddpm", "sampling_steps": 20}, 20),
                                              ({"sampling_steps": [1, 2, 1]}, 4)])
def test_inference_network_calls_and_outputs(kwargs, expected):
    model = StagedDiffusionSegmenter(num_samples=3, **SMALL, **kwargs).eval()
    calls = _count_calls(model)
    image, _ = _batch(b=2)
    fused = model.predict_fused(image, generator=torch.Generator().manual_seed(0))
    assert len(calls) == expected == model.network_calls  # all K samples of both images in one batch per call
    assert fused.probability.shape == (2, 1, 32, 32)
    assert set(fused.mask.unique().tolist()) <= {0.0, 1.0}
    assert fused.uncertainty.min() >= 0 and fused.uncertainty.max() <= 1
    again = model.predict_fused(image, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fused.probability, again.probability)


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="sampler must be one of"):
        StagedDiffusionSegmenter(sampler="euler", **SMALL)
    with pytest.raises(ValueError, match="num_steps must be in"):
        StagedDiffusionSegmenter(sampling_steps=5000, **SMALL)
    with pytest.raises(ValueError, match="gap between stage"):
        StagedDiffusionSegmenter(stages=[dict(name="a", start=0, end=10, target="x0"), dict(name="b", start=20, end=1000, target="eps")], **SMALL)


def test_condition_checkpoint_loads_weights_only_and_freezes(tmp_path):
    phase1 = DeterministicSegmenter(features=SMALL["condition_features"])
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(phase1)
    ckpt = tmp_path / "phase1.ckpt"
    trainer.save_checkpoint(ckpt)
    model = StagedDiffusionSegmenter(condition_ckpt=str(ckpt), **SMALL)
    model.load_condition_weights()
    for a, b in zip(model.condition.state_dict().values(), phase1.net.state_dict().values()):
        assert torch.equal(a, b)
    model.train()
    assert not model.condition.training and model.denoiser.training
    assert not any(p.requires_grad for p in model.condition.parameters())
    tuned = StagedDiffusionSegmenter(condition_ckpt=str(ckpt), freeze_condition=False, **SMALL)
    tuned.load_condition_weights()
    loss, logs = tuned.diffusion_loss(*_batch())
    loss.backward()
    assert "condition" in logs and any(p.grad is not None for p in tuned.condition.parameters())


def test_condition_checkpoint_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.ckpt: checkpoint file does not exist"):
        StagedDiffusionSegmenter(condition_ckpt=str(tmp_path / "missing.ckpt"), **SMALL).load_condition_weights()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a weights-only torch checkpoint"):
        StagedDiffusionSegmenter(condition_ckpt=str(bad), **SMALL).load_condition_weights()
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.conv_0.weight": torch.zeros(1)}}, other)
    with pytest.raises(ValueError, match="does not fit ConditionUNet"):
        StagedDiffusionSegmenter(condition_ckpt=str(other), **SMALL).load_condition_weights()


def test_three_dimensional_model_trains_and_samples():
    model = StagedDiffusionSegmenter(spatial_dims=3, in_channels=1, num_samples=2, **SMALL)
    image = torch.randn(1, 1, 32, 32, 16)
    mask = (torch.rand(1, 1, 32, 32, 16) > 0.8).float()
    loss, _ = model.diffusion_loss(image, mask)
    loss.backward()
    fused = model.eval().predict_fused(image)
    assert fused.mask.shape == (1, 1, 32, 32, 16)


def test_per_image_generators_make_samples_independent_of_batch_company():
    model = StagedDiffusionSegmenter(num_samples=2, sampler="ddpm", sampling_steps=5, **SMALL).eval()
    image, _ = _batch(b=3)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]
    together = model.sample_masks(image, 2, gens([1, 2, 3]))
    alone = model.sample_masks(image[1:2], 2, gens([2]))
    torch.testing.assert_close(together[1:2], alone)
    assert not torch.equal(together[0], together[1])


def test_stage_boundaries_and_per_stage_steps():
    model = StagedDiffusionSegmenter(stage_boundaries=[100, 500], sampling_steps=[2, 3, 1], **SMALL)
    assert [(s.name, s.start, s.end) for s in model.plan.stages] == [("refine", 0, 100), ("model", 100, 500), ("segment", 500, 1000)]
    assert model.network_calls == 6 and model.scheduler.timesteps[:2] == (999, 499)
    with pytest.raises(ValueError, match="stage_boundaries needs 2 values"):
        StagedDiffusionSegmenter(stage_boundaries=[100], **SMALL)
    with pytest.raises(ValueError, match=r"stage_boundaries must be strictly ascending inside \(0, 1000\), got \[600, 500\]"):
        StagedDiffusionSegmenter(stage_boundaries=[600, 500], **SMALL)


def test_x0_heads_start_at_the_condition_prediction():
    """Zero-initialized heads + x0_residual: before training, every x0 stage returns the phase-1 probability."""
    torch.manual_seed(0)
    model = StagedDiffusionSegmenter(**SMALL).eval()
    image, mask = _batch()
    cond = torch.sigmoid(model.condition(image))
    for t in (50, 800):  # refine and segment stages
        assert torch.allclose(model.one_step_x0(image, mask, t), cond, atol=1e-5)
    plain = StagedDiffusionSegmenter(**SMALL, x0_residual=False).eval()
    assert torch.allclose(plain.one_step_x0(image, mask, 50), torch.full_like(cond, 0.5))


def test_stage_heads_let_the_output_jump_at_a_boundary():
    torch.manual_seed(0)
    model = StagedDiffusionSegmenter(**SMALL, x0_residual=False)
    for head in model.denoiser.out:
        torch.nn.init.normal_(head.weight)
    image, mask = _batch()
    logits, feats = model.encode(image)
    x_t = torch.randn_like(mask)
    below, above = (model.denoise(x_t, torch.full((4,), t), model.scheduler.stage_index(torch.full((4,), t)), feats, logits) for t in (199, 200))
    assert (below - above).abs().mean() > 0.1  # different heads either side of the refine/model boundary
    with pytest.raises(ValueError, match="stage index"):
        model.denoiser(x_t, torch.full((4,), 5), feats, torch.sigmoid(logits))


def test_sampling_under_bf16_autocast_returns_float32_close_to_fp32():
    from unisegdiff.inference import inference_autocast
    torch.manual_seed(0)
    model = StagedDiffusionSegmenter(**SMALL, num_samples=2).eval()
    image, _ = _batch()
    ref = model.sample_masks(image, 2, [torch.Generator().manual_seed(i) for i in range(4)])
    with inference_autocast("bf16-mixed", "cpu"):
        low = model.sample_masks(image, 2, [torch.Generator().manual_seed(i) for i in range(4)])
    assert low.dtype == torch.float32 and low.shape == ref.shape
    assert (low - ref).abs().mean() < 0.02
    with pytest.raises(ValueError, match="precision"):
        inference_autocast("fp8", "cpu")


def test_warm_up_calls_every_stage_head_once_at_the_sampling_batch_shape():
    model = StagedDiffusionSegmenter(**SMALL, num_samples=3).eval()
    seen = []
    model.denoiser.register_forward_hook(lambda mod, args, out: seen.append((out.shape[0], tuple(args[4].tolist()))))
    image, _ = _batch()
    model.warm_up(image)
    assert [rows for rows, _ in seen] == [12, 12, 12]
    assert sorted({stages[0] for _, stages in seen}) == [0, 1, 2]


def test_default_plan_is_read_from_the_recipe_and_stored_in_the_checkpoint_hparams():
    from unisegdiff.recipes import model_init_args
    model = StagedDiffusionSegmenter(**SMALL)
    recipe = model_init_args("unisegdiff/staged")["stages"]
    assert sorted(s["name"] for s in model.hparams.stages) == sorted(s["name"] for s in recipe)
    rebuilt = StagedDiffusionSegmenter(stages=model.hparams.stages, **SMALL)
    assert rebuilt.plan.to_dict() == model.plan.to_dict()


def test_scheduler_given_at_inference_leaves_the_model_default_untouched():
    model = StagedDiffusionSegmenter(num_samples=1, **SMALL).eval()
    calls = _count_calls(model)
    image, _ = _batch(b=1)
    model.predict_fused(image, scheduler=model.scheduler.set_timesteps(12, "ddpm"))
    assert len(calls) == 12 and model.network_calls == 8 and model.scheduler.sampler == "ddim"


def test_phase1_file_is_read_only_when_a_fit_starts_from_scratch(tmp_path):
    """A trained staged checkpoint predicts without its training-time condition_ckpt (moved or deleted)."""
    model = StagedDiffusionSegmenter(condition_ckpt=str(tmp_path / "gone" / "last.ckpt"), **SMALL)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=0)
    model.trainer = trainer
    for stage in ("validate", "test", "predict"):
        model.setup(stage)  # would raise FileNotFoundError if it reloaded the phase-1 file
    with pytest.raises(Exception, match="gone"):
        model.setup("fit")  # a fresh fit (no ckpt_path) needs it


def test_condition_trained_by_its_own_loss_only_when_the_denoiser_may_not_train_it():
    image, mask = _batch()
    for flows in (True, False):
        torch.manual_seed(0)
        model = StagedDiffusionSegmenter(freeze_condition=False, condition_loss_weight=0.0, denoiser_trains_condition=flows, **SMALL)
        for head in model.denoiser.out:  # non-zero heads, so the diffusion loss depends on the condition features
            torch.nn.init.normal_(head.weight)
        loss, logs = model.diffusion_loss(image, mask)
        loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.condition.parameters()) == flows
    own = StagedDiffusionSegmenter(freeze_condition=False, condition_loss_weight=1.0, denoiser_trains_condition=False, **SMALL)
    loss, logs = own.diffusion_loss(image, mask)
    loss.backward()
    assert "condition" in logs and any(p.grad is not None for p in own.condition.parameters())


def test_condition_probability_is_the_phase1_segmentation():
    model = StagedDiffusionSegmenter(**SMALL).eval()
    image, _ = _batch()
    torch.testing.assert_close(model.condition_probability(image), torch.sigmoid(model.condition(image)))


def test_old_checkpoint_stage_steps_become_sampling_steps_and_foreign_schedulers_are_refused(tmp_path):
    import io

    import lightning

    model = StagedDiffusionSegmenter(**SMALL)
    hparams = {k: v for k, v in model.hparams.items() if k != "sampling_steps"} | {"stage_steps": [1, 1, 1], "sampling_steps": None}
    buffer = io.BytesIO()
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": lightning.__version__}, buffer)
    (tmp_path / "old.ckpt").write_bytes(buffer.getvalue())
    old = StagedDiffusionSegmenter.load_from_checkpoint(tmp_path / "old.ckpt")
    assert old.network_calls == 3  # what that checkpoint was evaluated with, not the plan's 8
    image, _ = _batch(b=1)
    from unisegdiff.diffusion import StagedScheduler, StagePlan
    foreign = StagedScheduler.from_plan(StagePlan([dict(name="e", start=0, end=1000, target="eps", steps=2)]))
    with pytest.raises(ValueError, match="is not the model's"):
        model.predict_fused(image, scheduler=foreign)
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        model.predict_fused(image, num_samples=0)
    with pytest.raises(ValueError, match="sampling steps must be None, an int or one int per stage"):
        model.scheduler.set_timesteps("50")
