"""Loading weights across pipeline stages from Lightning checkpoints, always with weights_only=True.

Cross-stage weights go through explicit init arguments (e.g. ``condition_ckpt``), never through
LightningCLI's ``ckpt_path``, which re-parses the hyperparameters of the checkpoint's own module.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def load_module_weights(module: nn.Module, ckpt_path: str, prefix: str = "", strict: bool = True) -> nn.Module:
    """Load ``state_dict`` entries starting with ``prefix`` from a Lightning (or plain) checkpoint into ``module``."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path!r} does not exist; train the previous stage first or fix the path")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a torch file
        raise ValueError(f"checkpoint {ckpt_path!r} cannot be read as a weights-only torch checkpoint: {exc}") from exc
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {ckpt_path!r} holds no state_dict")
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        found = sorted({k.split(".")[0] for k in state})
        raise ValueError(f"checkpoint {ckpt_path!r} has no weights under prefix {prefix!r}; top-level names: {found}")
    try:
        module.load_state_dict(picked, strict=strict)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {ckpt_path!r} does not fit {type(module).__name__} (different architecture config?): {exc}") from exc
    return module
