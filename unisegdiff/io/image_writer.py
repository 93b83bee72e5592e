"""Writing images atomically with their geometry: PNG through PIL, NIfTI/MHA/NRRD through SimpleITK
(compressed); an existing file is refused unless ``overwrite``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from unisegdiff.io.atomic import write_atomic
from unisegdiff.io.errors import DataError
from unisegdiff.io.geometry import Geometry
from unisegdiff.io.paths import WRITABLE_EXTENSIONS, file_suffix


def write_image(array: np.ndarray, geometry: Geometry | None, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``array`` to ``path`` (PNG, NIfTI, MHA, NRRD) atomically; NIfTI/MHA/NRRD keep ``geometry``."""
    path = Path(path)
    suffix = file_suffix(path)
    if suffix not in WRITABLE_EXTENSIONS:
        raise DataError(path, f"cannot write extension {suffix!r}", f"use one of {', '.join(WRITABLE_EXTENSIONS)}")
    array = np.asarray(array)
    if suffix == ".png":
        image = _png_image(array, path)
        return write_atomic(path, lambda temp: image.save(temp, format="PNG"), overwrite)
    volume = _sitk_image(array, geometry, path)
    return write_atomic(path, lambda temp: sitk.WriteImage(volume, str(temp), useCompression=True), overwrite)


def _png_image(array: np.ndarray, path: Path) -> Image.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2 and array.dtype in (np.uint8, np.uint16):
        return Image.fromarray(array)
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        return Image.fromarray(array)
    raise DataError(path, f"PNG needs uint8 (H, W), (H, W, 3|4) or uint16 (H, W); got {array.dtype} {array.shape}",
                    "convert the array (e.g. np.uint8) or write NIfTI/MHA for other types")


def _sitk_image(array: np.ndarray, geometry: Geometry | None, path: Path) -> sitk.Image:
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    spatial_ndim = geometry.ndim if geometry is not None else array.ndim
    is_vector = array.ndim == spatial_ndim + 1
    if geometry is not None and array.ndim == spatial_ndim - 1:
        array, is_vector = array[None], False  # a 2D slice placed in a 3D geometry
    if array.ndim - int(is_vector) != spatial_ndim:
        raise DataError(path, f"array shape {array.shape} does not fit a {spatial_ndim}D geometry",
                        "pass a geometry with one spacing value per array axis")
    image = sitk.GetImageFromArray(array, isVector=is_vector)
    if geometry is not None:
        image.SetSpacing(geometry.spacing)
        image.SetOrigin(geometry.origin)
        image.SetDirection(geometry.direction)
    return image
