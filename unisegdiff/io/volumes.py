"""3D scalar volumes for the 3D pipeline, as ``sitk.Image``: read with every check of ``read_sitk`` plus
"scalar and 3D", and a label checked against its image's voxel grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from unisegdiff.io.errors import DataError
from unisegdiff.io.sitk_reader import read_sitk


def read_volume(path: str | Path, max_pixels: int | None = None) -> sitk.Image:
    """A scalar 3D volume from a file or a DICOM series folder; ``DataError`` naming ``path`` if it is unusable."""
    image = read_sitk(path, max_pixels)
    components = image.GetNumberOfComponentsPerPixel()
    if components != 1:
        raise DataError(path, f"has {components} components per voxel, expected a scalar volume", "save one channel per file")
    size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        raise DataError(path, f"is not a 3D volume (size {size})", "2D images belong to the 2D data layer")
    return image


def check_same_geometry(image: sitk.Image, label: sitk.Image, image_path: str | Path, label_path: str | Path,
                        tol: float = 1e-3) -> None:
    """``DataError`` naming both files if the label does not share the image's voxel grid."""
    problems = []
    if image.GetSize() != label.GetSize():
        problems.append(f"size {image.GetSize()} vs {label.GetSize()}")
    for what in ("Spacing", "Origin", "Direction"):
        a, b = np.asarray(getattr(image, f"Get{what}")()), np.asarray(getattr(label, f"Get{what}")())
        if not np.allclose(a, b, atol=tol * max(1.0, float(np.abs(a).max()))):
            problems.append(f"{what.lower()} {tuple(np.round(a, 4))} vs {tuple(np.round(b, 4))}")
    if problems:
        raise DataError(label_path, f"label geometry does not match image {image_path}: " + "; ".join(problems),
                        "resample the label onto its image's grid")
