"""Writing NIfTI outputs of the 3D pipeline (a tensor with its RAS affine) through the io layer's atomic write:
a reader never sees a half-written map, even if the run is killed mid-write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchio as tio

from unisegdiff.io import write_atomic


def write_nifti_atomic(tensor: torch.Tensor, affine: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Write a (C, X, Y, Z) tensor with its RAS ``affine`` to ``path`` (.nii.gz) atomically; return the path."""
    image = tio.ScalarImage(tensor=tensor.detach().float().cpu(), affine=np.asarray(affine, dtype=np.float64))
    return write_atomic(path, image.save)
