"""Data layer: readers with geometry, dataset registry and importers, phantoms, LesionDataModule.

Heavy pieces (Lightning, MONAI) are imported on first use, so ``unisegdiff data check`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LesionDataModule": "unisegdiff.data.datamodule",
    "DataError": "unisegdiff.data.errors",
    "Problem": "unisegdiff.data.errors",
    "Geometry": "unisegdiff.data.readers",
    "ImageRecord": "unisegdiff.data.readers",
    "read_image": "unisegdiff.data.readers",
    "write_image": "unisegdiff.data.readers",
    "DatasetSpec": "unisegdiff.data.registry",
    "load_registry": "unisegdiff.data.registry",
    "prepare_image": "unisegdiff.data.preprocess",
    "check_root": "unisegdiff.data.checks",
    "write_phantom_root": "unisegdiff.data.phantoms",
    "make_phantom_datasets": "unisegdiff.data.phantoms",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unisegdiff.data' has no attribute {name!r}")
