"""Reading any supported 2D/3D image with its geometry: PIL for PNG/JPEG/TIFF/BMP, SimpleITK for NIfTI,
MHA/MHD, NRRD and DICOM (file or series folder). One entry point for both halves of the project.
"""

from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from unisegdiff.io.errors import DataError
from unisegdiff.io.geometry import Geometry, ImageRecord
from unisegdiff.io.masks import mask_plane
from unisegdiff.io.paths import PIL_EXTENSIONS, READABLE_EXTENSIONS, SITK_EXTENSIONS, file_suffix, require_existing
from unisegdiff.io.pil_reader import read_pil
from unisegdiff.io.sitk_reader import read_sitk
from unisegdiff.io.values import check_finite


def read_image(path: str | os.PathLike, keep_alpha: bool = False, max_pixels: int | None = None) -> ImageRecord:
    """Decode an image file or a DICOM series folder, verified (truncation, NaN/Inf, pixel limit: see
    ``unisegdiff.io.limits``); ``DataError`` naming the file otherwise. ``keep_alpha`` keeps PIL's alpha channel
    (gray+alpha becomes (H, W, 2)); without it, gray+alpha reads as gray."""
    path = require_existing(path)
    if path.is_dir():
        return sitk_record(read_sitk(path, max_pixels), path)
    suffix = file_suffix(path)
    if suffix in PIL_EXTENSIONS:
        record = read_pil(path, keep_alpha, max_pixels)
        check_finite(record.array, path)
        return record
    if suffix in SITK_EXTENSIONS:
        return sitk_record(read_sitk(path, max_pixels), path)
    raise DataError(path, f"unsupported extension {suffix!r}",
                    f"convert it to one of {', '.join(READABLE_EXTENSIONS)} or give a DICOM series folder")


def read_mask(path: str | os.PathLike, max_pixels: int | None = None) -> ImageRecord:
    """Like ``read_image`` with the channels reduced to one plane by ``mask_plane`` (alpha used only when it is
    the one varying channel; colours or an ambiguous alpha are refused)."""
    record = read_image(path, keep_alpha=True, max_pixels=max_pixels)
    if record.has_channels:
        record.array = mask_plane(record.array, record.path)
    return record


def sitk_record(image: sitk.Image, path: Path) -> ImageRecord:
    """The array (z, y, x[, c]) and geometry of a SimpleITK image."""
    geometry = Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))
    return ImageRecord(sitk.GetArrayFromImage(image), geometry, str(path))
