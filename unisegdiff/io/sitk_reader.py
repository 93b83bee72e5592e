"""Reading NIfTI, MHA/MHD, NRRD and DICOM (a file or a series folder) with SimpleITK, verified:
pixel limit from the header, NIfTI size and raw NaN/Inf, NaN/Inf in every format.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from unisegdiff.io.errors import DataError
from unisegdiff.io.limits import check_pixel_count
from unisegdiff.io.nifti import verify_nifti
from unisegdiff.io.paths import file_suffix, require_existing
from unisegdiff.io.values import check_finite


def read_sitk(path: str | Path, max_pixels: int | None = None) -> sitk.Image:
    """A checked ``sitk.Image`` from a file or a DICOM series folder; ``DataError`` naming ``path`` otherwise."""
    path = require_existing(path)
    image = _read_series(path, max_pixels) if path.is_dir() else _read_file(path, max_pixels)
    check_finite(sitk.GetArrayViewFromImage(image), path)
    return image


def _read_file(path: Path, max_pixels: int | None) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        check_pixel_count(path, reader.GetSize(), max_pixels)
        if file_suffix(path) in (".nii", ".nii.gz"):
            verify_nifti(path)
        return reader.Execute()
    except RuntimeError as error:
        raise DataError(path, f"SimpleITK cannot read the file ({_last_line(error)})",
                        "the file is truncated, compressed wrongly or not in the format its extension says") from error


def _read_series(folder: Path, max_pixels: int | None) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series_ids = reader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise DataError(folder, "folder holds no DICOM series", "give a folder of .dcm files of one series, or an image file")
    if len(series_ids) > 1:
        raise DataError(folder, f"folder holds {len(series_ids)} DICOM series ({', '.join(series_ids)})",
                        "move each series into its own folder")
    files = reader.GetGDCMSeriesFileNames(str(folder), series_ids[0])
    reader.SetFileNames(files)
    try:
        first = sitk.ImageFileReader()
        first.SetFileName(files[0])
        first.ReadImageInformation()
        check_pixel_count(folder, (*first.GetSize()[:2], len(files)), max_pixels)
        return reader.Execute()
    except RuntimeError as error:
        raise DataError(folder, f"cannot read the DICOM series ({_last_line(error)})", "check that every slice file is complete") from error


def _last_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else "unknown error"
