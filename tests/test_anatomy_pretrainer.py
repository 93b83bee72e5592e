"""Pretrainer: anatomical guidance reaches the denoiser (input channels and FiLM); diffusion, restorative and
unguided pretexts train; guidance without a coordinate checkpoint is a clear error."""

import pytest
import torch

from anatomy_pretrain.backbone import GuidedUNet3D
from anatomy_pretrain.coordinate_embedding import coordinate_embedding
from anatomy_pretrain.coordinate_model import AnatomicalCoordinateModel
from anatomy_pretrain.corruptions import models_genesis_corrupt
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
from anatomy_pretrain.tiny import TINY_FEATURES, save_module_checkpoint


@pytest.fixture(scope="module")
def coordinate_ckpt(tmp_path_factory):
    return str(save_module_checkpoint(AnatomicalCoordinateModel(features=TINY_FEATURES), tmp_path_factory.mktemp("c") / "coords.ckpt"))


@pytest.mark.parametrize("guidance", ["input", "film"])
def test_guidance_changes_denoiser_output(guidance):
    torch.manual_seed(0)
    net = GuidedUNet3D(features=TINY_FEATURES, guidance=guidance, guide_channels=18)
    if guidance == "film":  # FiLM starts as identity; give it weights as after some training
        for conv in net.film:
            torch.nn.init.normal_(conv.weight, std=0.1)
    x = torch.randn(1, 1, 32, 32, 32)
    coords = torch.randn(1, 3, 32, 32, 32)
    with torch.no_grad():
        out_a = net(x, coordinate_embedding(coords))
        out_b = net(x, coordinate_embedding(coords + 0.5))
    assert (out_a - out_b).abs().max() > 1e-4


def test_guidance_gradient_reaches_film_from_coordinates(coordinate_ckpt):
    model = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film", coordinate_ckpt=coordinate_ckpt)
    x = torch.rand(1, 1, 32, 32, 32) * 2 - 1
    model.pretext_loss(x).backward()
    assert any(conv.weight.grad.abs().sum() > 0 for conv in model.net.film)
    assert all(p.grad is None for p in model.coordinate_net.parameters())
    with torch.no_grad():
        assert not torch.equal(model.guide(x), model.guide(x.flip(-1)))


@pytest.mark.parametrize("pretext,guidance", [("diffusion", "none"), ("diffusion", "input"), ("restorative", "none")])
def test_pretext_step_updates_backbone(pretext, guidance, coordinate_ckpt):
    model = AnatomyGuidedDiffusionPretrainer(
        features=TINY_FEATURES, pretext=pretext, guidance=guidance, coordinate_ckpt=coordinate_ckpt if guidance != "none" else None,
    )
    before = model.net.conv_0.conv_0.conv.weight.detach().clone()
    opt = model.configure_optimizers()
    loss = model.training_step({"image": torch.rand(1, 1, 32, 32, 32) * 2 - 1}, 0)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.net.conv_0.conv_0.conv.weight)


def test_guidance_without_coordinate_checkpoint_is_an_error():
    with pytest.raises(ValueError, match="coordinate_ckpt"):
        AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance="film")


def test_models_genesis_corruption_changes_and_keeps_range():
    x = torch.rand(2, 1, 16, 16, 16) * 2 - 1
    y = models_genesis_corrupt(x, generator=torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(x, y) and y.min() >= -1 and y.max() <= 1
