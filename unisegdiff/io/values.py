"""Checks on decoded values, the same for every format: NaN and infinite intensities are refused,
naming the file and how many there are.
"""

from __future__ import annotations

import numpy as np

from unisegdiff.io.errors import DataError


def check_finite(array: np.ndarray, path: object) -> None:
    """``DataError`` naming ``path`` if a floating-point ``array`` holds NaN or +-Inf."""
    if not np.issubdtype(array.dtype, np.inexact) or np.isfinite(array).all():
        return
    bad = int(np.count_nonzero(~np.isfinite(array)))
    raise DataError(path, f"{bad} NaN/Inf intensities", "fix or re-export the image; NaN/Inf cannot be normalized")
