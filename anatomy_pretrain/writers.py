"""Writing NIfTI outputs atomically: a temporary file in the target folder, then ``os.replace``.

A reader never sees a half-written map, even if the run is killed mid-write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchio as tio


def write_nifti_atomic(tensor: torch.Tensor, affine: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Write a (C, X, Y, Z) tensor with its RAS ``affine`` to ``path`` (.nii.gz) atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".nii.gz")
    os.close(fd)
    try:
        tio.ScalarImage(tensor=tensor.detach().float().cpu(), affine=np.asarray(affine, dtype=np.float64)).save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
