"""This half's Lightning checkpoints across stages, read by ``unisegdiff.io.read_checkpoint`` (weights_only): the
frozen coordinate network that maps volumes for guidance, and the pretrained backbone for probing and the bridge.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from anatomy_pretrain.backbone import GuidedUNet3D
from anatomy_pretrain.coordinate_embedding import embedding_channels
from anatomy_pretrain.coordinate_net import CoordinateNet
from unisegdiff.io import read_checkpoint

__all__ = ["frozen", "load_coordinate_net", "load_pretrained_backbone", "read_checkpoint", "sub_state"]


def sub_state(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def frozen(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def load_coordinate_net(path: str | Path) -> CoordinateNet:
    """The frozen coordinate network of an AnatomicalCoordinateModel checkpoint."""
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    net = CoordinateNet(features=tuple(hp.get("features", (16, 16, 32, 64, 128, 16))), scale_mm=hp.get("scale_mm", 100.0),
                        crop_size=hp.get("crop_size", 32))
    net.load_state_dict(sub_state(ckpt["state_dict"], "net."))
    return frozen(net)


def load_pretrained_backbone(path: str | Path) -> tuple[GuidedUNet3D, dict]:
    """(backbone, hyper-parameters) from an AnatomyGuidedDiffusionPretrainer checkpoint; a guided backbone
    (``hp["guidance"] != "none"``) needs the coordinate maps of the data (``VolumeDataModule(coordinate_ckpt=...)``)."""
    ckpt = read_checkpoint(path)
    hp, state = ckpt["hyper_parameters"], ckpt["state_dict"]
    guidance = hp.get("guidance", "none")
    backbone = GuidedUNet3D(
        features=tuple(hp["features"]), guidance=guidance,
        guide_channels=embedding_channels(hp.get("num_frequencies", 3)) if guidance != "none" else 0,
        film_levels=tuple(hp["film_levels"]) if hp.get("film_levels") is not None else None,
    )
    backbone.load_state_dict(sub_state(state, "net."))
    return backbone, hp
