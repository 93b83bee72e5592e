"""File names and existence: extensions (``.nii.gz`` kept whole), stems, and a check that tells a missing
file from a broken symlink or a symlink loop.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from unisegdiff.io.errors import DataError

PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SITK_EXTENSIONS = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")
READABLE_EXTENSIONS = PIL_EXTENSIONS + SITK_EXTENSIONS
WRITABLE_EXTENSIONS = (".png", ".nii", ".nii.gz", ".mha", ".nrrd")
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


def file_suffix(path: str | os.PathLike) -> str:
    """Lower-case extension, with ``.nii.gz`` kept whole."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def file_stem(path: str | os.PathLike) -> str:
    """File name without its extension (``.nii.gz`` counted as one extension)."""
    name = Path(path).name
    suffix = file_suffix(path)
    return name[: -len(suffix)] if suffix else name


def volume_stem(path: str | os.PathLike) -> str:
    """File name without its volume suffix (``case_01.nii.gz`` -> ``case_01``); DICOM folders keep their name."""
    return file_stem(path) if file_suffix(path) in VOLUME_SUFFIXES else Path(path).name


def is_volume_path(path: Path) -> bool:
    """A volume file by its suffix, or a folder (a DICOM series)."""
    return path.is_dir() or file_suffix(path) in VOLUME_SUFFIXES


def require_existing(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it exists; otherwise ``DataError`` saying whether it is missing, a broken symlink
    or a symlink loop."""
    path = Path(path)
    try:
        os.stat(path)
        return path
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise DataError(path, "symlink loop (the link points back to itself)", "point the link at a real file") from None
        if path.is_symlink():
            raise DataError(path, f"broken symlink to {os.readlink(path)!r}", "restore the target or fix the link") from None
        if error.errno == errno.ENOENT:
            raise DataError(path, "file does not exist", "check the path") from None
        raise DataError(path, f"cannot be accessed ({error.strerror})", "check the path and its permissions") from None
