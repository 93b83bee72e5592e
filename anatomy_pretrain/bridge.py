"""Bridge to the staged segmenter: export the pretrained 3D encoder (conv_0, down_1..down_4) as a weights-only
checkpoint whose ``net.``-prefixed state_dict loads into ``ConditionUNet(spatial_dims=3, ...)`` with strict=False.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from unisegdiff.io import read_checkpoint, write_atomic

ENCODER_BLOCKS = ("conv_0.", "down_1.", "down_2.", "down_3.", "down_4.")
FIRST_CONV = "conv_0.conv_0.conv.weight"


def encoder_state(state: dict, in_channels: int = 1) -> dict[str, torch.Tensor]:
    """Encoder weights of a ``net.``-prefixed state_dict, re-prefixed ``net.``; the first conv keeps only the
    ``in_channels`` image channels (input-channel guidance adds channels the segmenter does not have)."""
    out = {}
    for key, value in state.items():
        if not key.startswith("net."):
            continue
        name = key[len("net."):]
        if name.startswith(ENCODER_BLOCKS):
            if name == FIRST_CONV:
                value = value[:, :in_channels]
            out[f"net.{name}"] = value.detach().clone()
    if not out:
        raise ValueError("no encoder weights (net.conv_0.*, net.down_*.*) in the checkpoint")
    return out


def export_encoder(ckpt_path: str | Path, out_path: str | Path, in_channels: int = 1) -> Path:
    """Write the encoder of a pretrainer / probe / coordinate checkpoint to ``out_path`` (atomically); return it."""
    ckpt = read_checkpoint(ckpt_path)
    state = encoder_state(ckpt["state_dict"], in_channels)
    hp = ckpt["hyper_parameters"]
    blob = {
        "state_dict": state,
        "bridge": {"source": str(ckpt_path), "features": list(hp.get("features", [])), "in_channels": in_channels, "spatial_dims": 3},
    }
    return write_atomic(out_path, lambda temp: torch.save(blob, temp))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", help="AnatomyGuidedDiffusionPretrainer (or probe / coordinate) checkpoint")
    parser.add_argument("out", help="weights-only encoder checkpoint to write")
    parser.add_argument("--in-channels", type=int, default=1)
    args = parser.parse_args(argv)
    print(export_encoder(args.ckpt, args.out, args.in_channels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
