"""What SimpleITK does not check in a NIfTI file: data shorter than its header declares (read as zeros)
and NaN/Inf voxels (read as 0), both verified on the raw data with nibabel (installed with torchio).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from unisegdiff.io.errors import DataError
from unisegdiff.io.paths import file_suffix
from unisegdiff.io.values import check_finite

REEXPORT = "the file is truncated or damaged: re-export or re-download it"


def verify_nifti(path: str | os.PathLike) -> None:
    """``DataError`` naming ``path`` if its data is shorter than the header declares or holds NaN/Inf."""
    import nibabel

    path = Path(path)
    try:
        proxy = nibabel.load(str(path)).dataobj
    except Exception as error:  # nibabel raises several types for a bad header
        raise DataError(path, f"cannot read the NIfTI header ({_first_line(error)})", REEXPORT) from error
    expected = int(proxy.offset) + int(np.prod(proxy.shape)) * proxy.dtype.itemsize
    if file_suffix(path) == ".nii":
        size = path.stat().st_size
        if size < expected:
            raise DataError(path, f"NIfTI data is truncated: the header declares {expected:,} bytes "
                            f"({'x'.join(map(str, proxy.shape))} {proxy.dtype}), the file holds {size:,}", REEXPORT)
        if not np.issubdtype(proxy.dtype, np.inexact):
            return  # integers cannot hold NaN: the size check is all
    try:
        raw = np.asanyarray(proxy.get_unscaled())
    except (OSError, EOFError, ValueError, zlib.error) as error:  # a gzip stream or data block that ends early
        raise DataError(path, f"NIfTI data is truncated ({_first_line(error)})", REEXPORT) from error
    check_finite(raw, path)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
