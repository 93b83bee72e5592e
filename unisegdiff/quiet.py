"""Known-harmless third-party messages hidden at the entry points (``unisegdiff`` and ``bench/*.py``): one narrow
list by message and module, each entry with the reason it is harmless; every other warning still shows.
"""

from __future__ import annotations

import logging
import os
import warnings

# (message regex, module regex, category): what Python's warnings filters match; each entry is harmless here because ...
WARNINGS = (
    # Lightning's own pytree helper calls a torch API that torch deprecated; nothing in this project uses LeafSpec
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree", Warning),
    # MONAI's HD95 (get_mask_edges) passes its own deprecated argument internally; our calls do not set it
    (r".*always_return_as_numpy", r"monai\.utils\.deprecate_utils", FutureWarning),
    # the staged model keeps its frozen phase-1 condition network in eval mode on purpose (freeze_condition)
    (r"Found \d+ module\(s\) in eval mode at the start of training", r"lightning\.pytorch\.loops\.fit_loop", Warning),
    # UniSegDiffCLI.parse_arguments hands LightningCLI the expanded sys.argv (short predict form) as ``args`` on purpose
    (r"LightningCLI's args parameter is intended to run from within Python", r"lightning\.pytorch\.cli", Warning),
)

# Lightning prints these advertisements through rank_zero_info (logging), not warnings
LIGHTNING_INFO_LOGGER = "lightning.pytorch.utilities.rank_zero"
LIGHTNING_TIPS = (
    "💡 Tip: For seamless cloud logging",  # litlogger: we log to W&B / CSV
    "💡 Tip: For seamless cloud uploads",  # litmodels: checkpoints stay local
)

# wandb prints this once per process (termwarn repeat=False) because Lightning's WandbLogger always passes
# ``anonymous``; the setting has no effect, so the message is marked as already printed
WANDB_ANONYMOUS = "The anonymous setting has no effect and will be removed in a future version."


class _DropTips(logging.Filter):
    """Drops the Lightning log records that start with one of ``LIGHTNING_TIPS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(LIGHTNING_TIPS)


_TIP_FILTER = _DropTips()


def install(wandb: bool = True) -> None:
    """Hide the listed messages in this process (idempotent). ``wandb``: also the W&B anonymous-setting warning
    (imports ``wandb.errors.term``, ~0.5 s; only worth it where a W&B logger may run)."""
    for message, module, category in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    tip_logger = logging.getLogger(LIGHTNING_INFO_LOGGER)
    if _TIP_FILTER not in tip_logger.filters:
        tip_logger.addFilter(_TIP_FILTER)
    if wandb and os.environ.get("WANDB_MODE") != "disabled":
        _mark_wandb_anonymous_printed()


def _mark_wandb_anonymous_printed() -> None:
    try:
        from wandb.errors import term
    except ImportError:  # wandb not installed: nothing to hide
        return
    printed = getattr(term, "_printed_messages", None)
    if isinstance(printed, set) and hasattr(term, "WARN_STRING"):  # a later wandb without them: the warning shows
        printed.add(f"{term.WARN_STRING} {WANDB_ANONYMOUS}")
