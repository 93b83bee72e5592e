"""Loading weights across pipeline stages from Lightning checkpoints, read by ``unisegdiff.io.read_checkpoint``
(weights_only=True). Cross-stage weights go through explicit init arguments (e.g. ``condition_ckpt``), never
through LightningCLI's ``ckpt_path``, which re-parses the hyperparameters of the checkpoint's own module.
"""

from __future__ import annotations

from torch import nn

from unisegdiff.io import DataError, read_checkpoint


def load_module_weights(module: nn.Module, ckpt_path: str, prefix: str = "", strict: bool = True) -> nn.Module:
    """Load ``state_dict`` entries starting with ``prefix`` from a Lightning (or plain) checkpoint into ``module``."""
    state = read_checkpoint(ckpt_path)["state_dict"]
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        found = sorted({k.split(".")[0] for k in state})
        raise DataError(ckpt_path, f"checkpoint has no weights under prefix {prefix!r}; top-level names: {found}",
                        "give the checkpoint of the stage this one builds on")
    try:
        module.load_state_dict(picked, strict=strict)
    except RuntimeError as exc:
        raise DataError(ckpt_path, f"checkpoint does not fit {type(module).__name__} (different architecture config?): {exc}",
                        "use the same network settings as the run that wrote it") from exc
    return module
