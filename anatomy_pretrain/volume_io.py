"""Reading 3D volumes (NIfTI, MHA, NRRD, DICOM series) with SimpleITK, checked for the problems that break training.

Every error is a :class:`VolumeError` that names the offending file: unreadable, not 3D, NaN/inf, label/image mismatch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torchio as tio

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


class VolumeError(ValueError):
    """A volume (or its label) cannot be used; the message names the file and the reason."""


def volume_stem(path: str | Path) -> str:
    """File name without its volume suffix (``case_01.nii.gz`` -> ``case_01``); DICOM folders keep their name."""
    name = Path(path).name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_volume_path(path: Path) -> bool:
    return path.is_dir() or path.name.lower().endswith(VOLUME_SUFFIXES)


def read_volume(path: str | Path) -> sitk.Image:
    """Read a file or a DICOM series folder; raise :class:`VolumeError` naming ``path`` if it is unusable."""
    path = Path(path)
    try:
        if path.is_dir():
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
            if not files:
                raise VolumeError(f"{path}: folder holds no DICOM series")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(files)
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(path))
    except VolumeError:
        raise
    except RuntimeError as exc:
        raise VolumeError(f"{path}: cannot be read as a medical volume ({str(exc).strip().splitlines()[-1]})") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(f"{path}: has {image.GetNumberOfComponentsPerPixel()} components per voxel, expected a scalar volume")
    size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise VolumeError(f"{path}: is not a 3D volume (size {size}); 2D images belong to the 2D data layer")
    array = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise VolumeError(f"{path}: contains NaN or infinite voxels")
    return image


def check_same_geometry(image: sitk.Image, label: sitk.Image, image_path: str | Path, label_path: str | Path, tol: float = 1e-3) -> None:
    """Raise :class:`VolumeError` naming both files if the label does not share the image's voxel grid."""
    problems = []
    if image.GetSize() != label.GetSize():
        problems.append(f"size {image.GetSize()} vs {label.GetSize()}")
    for what in ("Spacing", "Origin", "Direction"):
        a, b = np.asarray(getattr(image, f"Get{what}")()), np.asarray(getattr(label, f"Get{what}")())
        if not np.allclose(a, b, atol=tol * max(1.0, float(np.abs(a).max()))):
            problems.append(f"{what.lower()} {tuple(np.round(a, 4))} vs {tuple(np.round(b, 4))}")
    if problems:
        raise VolumeError(f"{label_path}: label geometry does not match image {image_path}: " + "; ".join(problems))


def read_subject(image_path: str | Path, label_path: str | Path | None = None, name: str | None = None) -> tio.Subject:
    """A TorchIO subject (``image`` and optional ``label``) from checked files."""
    image = read_volume(image_path)
    items: dict = {"image": tio.ScalarImage.from_sitk(sitk.Cast(image, sitk.sitkFloat32)), "name": name or volume_stem(image_path)}
    if label_path is not None:
        label = read_volume(label_path)
        check_same_geometry(image, label, image_path, label_path)
        items["label"] = tio.LabelMap.from_sitk(sitk.Cast(label, sitk.sitkInt16))
    return tio.Subject(**items)
