"""Reading this half's Lightning checkpoints across stages (weights_only=True): the frozen coordinate network for
guidance, and the pretrained backbone (with its own guidance set-up) for probing and the bridge.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from anatomy_pretrain.backbone import GuidedUNet3D
from anatomy_pretrain.coordinate_embedding import embedding_channels
from unisegdiff.nets import ConditionUNet


def read_checkpoint(path: str | Path) -> dict:
    """``{"state_dict", "hyper_parameters"}`` of a checkpoint, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train the previous stage first or fix the path")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ValueError(f"checkpoint {path} holds no state_dict")
    return {"state_dict": blob["state_dict"], "hyper_parameters": dict(blob.get("hyper_parameters", {}))}


def sub_state(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def frozen(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def load_coordinate_net(path: str | Path) -> ConditionUNet:
    """The frozen coordinate network of an AnatomicalCoordinateModel checkpoint."""
    ckpt = read_checkpoint(path)
    features = tuple(ckpt["hyper_parameters"].get("features", (16, 16, 32, 64, 128, 16)))
    net = ConditionUNet(spatial_dims=3, in_channels=1, out_channels=3, features=features)
    net.load_state_dict(sub_state(ckpt["state_dict"], "net."))
    return frozen(net)


def load_pretrained_backbone(path: str | Path) -> tuple[GuidedUNet3D, ConditionUNet | None, dict]:
    """(backbone, coordinate net or None, hyper-parameters) from an AnatomyGuidedDiffusionPretrainer checkpoint."""
    ckpt = read_checkpoint(path)
    hp, state = ckpt["hyper_parameters"], ckpt["state_dict"]
    guidance = hp.get("guidance", "none")
    backbone = GuidedUNet3D(
        features=tuple(hp["features"]), guidance=guidance,
        guide_channels=embedding_channels(hp.get("num_frequencies", 3)) if guidance != "none" else 0,
    )
    backbone.load_state_dict(sub_state(state, "net."))
    coordinate_net = None
    if guidance != "none":
        coordinate_net = ConditionUNet(spatial_dims=3, in_channels=1, out_channels=3, features=tuple(hp["coordinate_features"]))
        coordinate_net.load_state_dict(sub_state(state, "coordinate_net."))
        frozen(coordinate_net)
    return backbone, coordinate_net, hp
