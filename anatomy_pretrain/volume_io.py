"""Volumes of the 3D pipeline as TorchIO subjects, read through the io layer (``unisegdiff.io``), which checks
every file (unreadable, truncated, not 3D, NaN/Inf, label/image mismatch) and names it in a ``DataError``.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk
import torchio as tio

from unisegdiff.io import DataError, VOLUME_SUFFIXES, check_same_geometry, is_volume_path, read_volume, volume_stem

VolumeError = DataError  # the former name of the io layer's error type

__all__ = ["VOLUME_SUFFIXES", "VolumeError", "check_same_geometry", "is_volume_path", "read_subject", "read_volume", "volume_stem"]


def read_subject(image_path: str | Path, label_path: str | Path | None = None, name: str | None = None) -> tio.Subject:
    """A TorchIO subject (``image`` and optional ``label``) from checked files."""
    image = read_volume(image_path)
    items: dict = {"image": tio.ScalarImage.from_sitk(sitk.Cast(image, sitk.sitkFloat32)), "name": name or volume_stem(image_path)}
    if label_path is not None:
        label = read_volume(label_path)
        check_same_geometry(image, label, image_path, label_path)
        items["label"] = tio.LabelMap.from_sitk(sitk.Cast(label, sitk.sitkInt16))
    return tio.Subject(**items)
