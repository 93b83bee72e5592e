"""The io layer of both halves: reading 2D/3D images with geometry, atomic writes, checkpoints, and the one
error type ``DataError``. Modules load on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DataError": "errors",
    "write_atomic": "atomic", "write_bytes_atomic": "atomic", "write_text_atomic": "atomic", "write_json_atomic": "atomic",
    "Geometry": "geometry", "ImageRecord": "geometry",
    "read_image": "images", "read_mask": "images", "sitk_record": "images",
    "write_image": "image_writer",
    "read_sitk": "sitk_reader", "read_volume": "volumes", "check_same_geometry": "volumes",
    "read_checkpoint": "checkpoints",
    "mask_plane": "masks", "check_finite": "values", "pixel_limit": "limits", "verify_nifti": "nifti",
    "PIL_EXTENSIONS": "paths", "SITK_EXTENSIONS": "paths", "READABLE_EXTENSIONS": "paths", "WRITABLE_EXTENSIONS": "paths",
    "VOLUME_SUFFIXES": "paths", "file_suffix": "paths", "file_stem": "paths", "volume_stem": "paths",
    "is_volume_path": "paths", "require_existing": "paths",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"unisegdiff.io.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'unisegdiff.io' has no attribute {name!r}")
