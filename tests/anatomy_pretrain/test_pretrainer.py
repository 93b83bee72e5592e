"""Pretrainer: anatomical guidance reaches the denoiser (input channels and FiLM); diffusion, restorative and
unguided pretexts train; guidance without coordinate maps in the batch is a clear error."""

import pytest
import torch

from anatomy_pretrain.backbone import GuidedUNet3D
from anatomy_pretrain.coordinate_embedding import coordinate_embedding
from anatomy_pretrain.corruptions import models_genesis_corrupt
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
from anatomy_pretrain.tiny import TINY_FEATURES


def _batch(coords: bool = True) -> dict:
    batch = {"image": torch.rand(1, 1, 32, 32, 32) * 2 - 1}
    if coords:
        batch["coords"] = torch.randn(1, 3, 32, 32, 32)
    return batch


@pytest.mark.parametrize("guidance", ["input", "film"])
def test_guidance_changes_denoiser_output(guidance):
    torch.manual_seed(0)
    net = GuidedUNet3D(features=TINY_FEATURES, guidance=guidance, guide_channels=18)
    if guidance == "film":  # FiLM starts as identity; give it weights as after some training
        for conv in net.film.values():
            torch.nn.init.normal_(conv.weight, std=0.1)
    x = torch.randn(1, 1, 32, 32, 32)
    coords = torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        out_a = net(x, coordinate_embedding(coords))
        out_b = net(x, coordinate_embedding(coords + 0.5))
    assert (out_a - out_b).abs().max() > 1e-4


def test_guidance_gradient_reaches_film_from_coordinates():
    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film")
    batch = _batch()
    model.training_step(batch, 0).backward()
    assert any(conv.weight.grad.abs().sum() > 0 for conv in model.net.film.values())
    flipped = dict(batch, coords=batch["coords"].flip(-1))
    assert not torch.equal(model.guide(batch), model.guide(flipped))


@pytest.mark.parametrize("pretext,guidance", [("diffusion", "none"), ("diffusion", "input"), ("restorative", "none")])
def test_pretext_step_updates_backbone(pretext, guidance):
    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, pretext=pretext, guidance=guidance)
    before = model.net.conv_0.conv_0.conv.weight.detach().clone()
    opt = model.configure_optimizers()
    loss = model.training_step(_batch(coords=guidance != "none"), 0)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.net.conv_0.conv_0.conv.weight)


def test_guidance_without_coordinate_maps_is_an_error():
    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film")
    with pytest.raises(ValueError, match="coordinate_ckpt"):
        model.training_step(_batch(coords=False), 0)


def test_models_genesis_corruption_changes_and_keeps_range():
    x = torch.rand(2, 1, 16, 16, 16) * 2 - 1
    y = models_genesis_corrupt(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(x, y) and y.min() >= -1 and y.max() <= 1


def test_skip_dropout_drops_skips_only_in_training():
    torch.manual_seed(0)
    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="none", skip_dropout=0.5)
    x = torch.randn(8, 1, 32, 32, 32)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(model.reconstruct(x)[0], model.net(x))
        model.train()
        dropped = model.reconstruct(x)[0]
    assert not torch.allclose(dropped, model.net(x))
    with pytest.raises(ValueError, match="skip_dropout"):
        AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, skip_dropout=1.0)


def test_decorrelation_penalty_enters_the_pretext_loss():
    torch.manual_seed(0)
    plain = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="none", decorrelation=0.0)
    decor = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="none", decorrelation=1.0)
    decor.load_state_dict(plain.state_dict())
    x = torch.rand(2, 1, 32, 32, 32) * 2 - 1
    assert float(plain.reconstruct(x)[1]) == 0.0
    penalty = decor.reconstruct(x)[1]
    assert penalty > 0
    penalty.backward()
    assert decor.net.conv_0.conv_0.conv.weight.grad.abs().sum() > 0
    # the pretext term and the penalty come back apart (logged apart, so val/loss compares across weights)
    torch.manual_seed(1)
    plain_pretext, plain_penalty = plain.pretext_loss(x)
    torch.manual_seed(1)
    decor_pretext, decor_penalty = decor.pretext_loss(x)
    assert float(plain_penalty) == 0.0 and float(decor_penalty) > 0
    assert torch.allclose(plain_pretext, decor_pretext)
    with pytest.raises(ValueError, match="decorrelation"):
        AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, decorrelation=-1.0)


def test_module_checkpoint_is_written_atomically_and_reads_back(tmp_path):
    from anatomy_pretrain.checkpoints import read_checkpoint
    from anatomy_pretrain.tiny import save_module_checkpoint

    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="none", decorrelation=0.5)
    path = save_module_checkpoint(model, tmp_path / "sub" / "pre.ckpt")
    assert [p.name for p in path.parent.iterdir()] == ["pre.ckpt"]  # no temporary left beside it
    saved = read_checkpoint(path)
    assert saved["hyper_parameters"]["decorrelation"] == 0.5
    assert all(torch.equal(v, saved["state_dict"][k]) for k, v in model.state_dict().items())


def test_defaults_are_the_recipe_and_old_checkpoints_keep_their_meaning(tmp_path):
    """Defaults eps / decorrelation 1.0 (the measured recipe); a checkpoint lacking those hparams meant x0 / 0.0."""
    import io

    import lightning

    from anatomy_pretrain.pretrainer import stored_hparams
    from unisegdiff.io import read_checkpoint, write_bytes_atomic

    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="none")
    assert (model.hparams.target, model.hparams.decorrelation) == ("eps", 1.0)

    def write(hparams: dict, name: str):
        buffer = io.BytesIO()  # a Lightning-style checkpoint
        torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams, "pytorch-lightning_version": lightning.__version__}, buffer)
        return write_bytes_atomic(buffer.getvalue(), tmp_path / name)

    new = write(dict(model.hparams), "new.ckpt")
    old = write({k: v for k, v in model.hparams.items() if k not in ("target", "decorrelation")}, "old.ckpt")  # before they existed
    loaded = AnatomyGuidedDiffusionPretrainer.load_from_checkpoint(old)
    assert (loaded.hparams.target, loaded.hparams.decorrelation) == ("x0", 0.0)
    assert stored_hparams(read_checkpoint(old)["hyper_parameters"])["target"] == "x0"
    again = AnatomyGuidedDiffusionPretrainer.load_from_checkpoint(new)
    assert (again.hparams.target, again.hparams.decorrelation) == ("eps", 1.0)


def test_guidance_dropout_zeroes_whole_samples_guides_in_training_only():
    pre = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film", guidance_dropout=0.5)
    seen = []
    pre.pretext_loss = lambda x0, guide=None: (seen.append(guide) or x0.new_zeros(()), x0.new_zeros(()))
    pre.log = lambda *args, **kwargs: None
    batch = {k: v.repeat(32, *([1] * (v.ndim - 1))) for k, v in _batch().items()}
    torch.manual_seed(0)
    pre.training_step(batch, 0)
    guide, full = seen[-1], pre.guide(batch)
    per_sample = guide.flatten(1).abs().sum(1)
    dropped = per_sample == 0
    assert 0 < int(dropped.sum()) < 32  # some samples lose their guide, not all
    assert torch.equal(guide[~dropped], full[~dropped])  # the others keep it untouched
    with pytest.raises(ValueError, match="guidance_dropout"):
        AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance_dropout=1.0)


def test_film_levels_choose_where_the_guidance_enters(tmp_path):
    """FiLM on chosen encoder levels only: the other levels' features are those of the unguided net, the choice
    survives a checkpoint, and bad choices are refused. All five levels keep the former state-dict names."""
    from anatomy_pretrain.checkpoints import load_pretrained_backbone
    from anatomy_pretrain.tiny import save_module_checkpoint

    torch.manual_seed(0)
    deep = GuidedUNet3D(features=TINY_FEATURES, guidance="film", guide_channels=18, film_levels=(3, 4))
    assert sorted(deep.film) == ["3", "4"]
    assert sorted(k for k in GuidedUNet3D(features=TINY_FEATURES, guidance="film", guide_channels=18).state_dict()
                  if k.startswith("film.")) == [f"film.{i}.{p}" for i in range(5) for p in ("bias", "weight")]
    for conv in deep.film.values():
        torch.nn.init.normal_(conv.weight, std=0.1)
    x, coords = torch.randn(1, 1, 32, 32, 32), torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        a, b = deep.encode(x, coordinate_embedding(coords)), deep.encode(x, coordinate_embedding(coords + 0.5))
    assert all(torch.equal(a[i], b[i]) for i in (0, 1, 2)) and (a[3] - b[3]).abs().max() > 1e-4
    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film", film_levels=(0,))
    backbone, hp = load_pretrained_backbone(save_module_checkpoint(model, tmp_path / "pre.ckpt"))
    assert tuple(hp["film_levels"]) == (0,) and sorted(backbone.film) == ["0"]
    for bad in ((), (5,), (1, 1)):
        with pytest.raises(ValueError, match="distinct encoder levels in 0..4"):
            GuidedUNet3D(features=TINY_FEATURES, guidance="film", guide_channels=18, film_levels=bad)
    with pytest.raises(ValueError, match="applies to guidance='film'"):
        GuidedUNet3D(features=TINY_FEATURES, guidance="input", guide_channels=18, film_levels=(0,))
