"""Reading a checkpoint (Lightning or plain ``{"state_dict": ...}``) with ``torch.load(weights_only=True)``:
nothing but tensors and plain containers is unpickled; a missing, unreadable or state-less file is a ``DataError``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from unisegdiff.io.errors import DataError
from unisegdiff.io.paths import require_existing


def read_checkpoint(path: str | os.PathLike) -> dict:
    """``{"state_dict", "hyper_parameters", "global_step"}`` of a checkpoint (a bare state_dict counts, with no
    hyper-parameters and step None)."""
    path = Path(path)
    try:
        require_existing(path)
    except DataError as error:
        raise DataError(path, f"checkpoint {error.problem}", "train the previous stage first or fix the path") from None
    if path.is_dir():
        raise DataError(path, "checkpoint path is a folder", "give the .ckpt file inside it")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(path, f"cannot be read as a weights-only torch checkpoint ({first})",
                        "the file is truncated, not a torch checkpoint, or holds objects other than weights; "
                        "re-save it or use the one written by training") from error
    state = blob.get("state_dict") if isinstance(blob, dict) and "state_dict" in blob else blob
    if not isinstance(state, dict) or not state or (state is blob and not _all_tensors(blob)):
        raise DataError(path, "checkpoint holds no state_dict", "give a Lightning checkpoint or a saved state_dict")
    step = blob.get("global_step") if state is not blob else None
    return {"state_dict": state, "hyper_parameters": dict(blob.get("hyper_parameters", {})), "global_step": step}


def _all_tensors(blob: dict) -> bool:
    return all(isinstance(value, torch.Tensor) for value in blob.values())
