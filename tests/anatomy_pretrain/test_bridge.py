"""Bridge: the pretrained encoder exported weights-only initializes the 3D phase-1 segmenter (the staged model's
condition network) through its ``encoder_ckpt`` argument; the decoder is left as initialized."""

import pytest
import torch

from anatomy_pretrain.bridge import export_encoder
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer
from anatomy_pretrain.tiny import TINY_FEATURES, save_module_checkpoint
from unisegdiff.models import DeterministicSegmenter


@pytest.mark.parametrize("guidance", ["none", "input"])
def test_exported_encoder_loads_into_condition_unet(guidance, tmp_path):
    pre = AnatomyGuidedDiffusionPretrainer(features=TINY_FEATURES, guidance=guidance)
    ckpt = save_module_checkpoint(pre, tmp_path / "pre.ckpt")
    out = export_encoder(ckpt, tmp_path / "encoder.pt")
    blob = torch.load(out, weights_only=True)
    assert blob["state_dict"] and all(k.startswith(("net.conv_0.", "net.down_")) for k in blob["state_dict"])
    phase1 = DeterministicSegmenter(spatial_dims=3, in_channels=1, features=TINY_FEATURES, encoder_ckpt=str(out))
    target = phase1.net
    decoder_before = target.final_conv.weight.clone()
    phase1.load_encoder_weights()
    for name in ("down_2.convs.conv_0.conv.weight", "down_4.convs.conv_1.conv.weight"):
        assert torch.equal(target.state_dict()[name], pre.net.state_dict()[name])
    assert torch.equal(target.conv_0.conv_0.conv.weight, pre.net.conv_0.conv_0.conv.weight[:, :1])
    assert torch.equal(target.final_conv.weight, decoder_before)  # decoder untouched
