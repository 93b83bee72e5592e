"""The data layer's names for the io layer's image reading and writing (``unisegdiff.io``), kept so that
existing imports work; new code imports from ``unisegdiff.io``.
"""

from __future__ import annotations

from unisegdiff.io.atomic import write_bytes_atomic
from unisegdiff.io.geometry import Geometry, ImageRecord
from unisegdiff.io.image_writer import write_image
from unisegdiff.io.images import read_image, read_mask
from unisegdiff.io.paths import (PIL_EXTENSIONS, READABLE_EXTENSIONS, SITK_EXTENSIONS, WRITABLE_EXTENSIONS, file_stem,
                                 file_suffix)

__all__ = ["PIL_EXTENSIONS", "READABLE_EXTENSIONS", "SITK_EXTENSIONS", "WRITABLE_EXTENSIONS", "Geometry", "ImageRecord",
           "file_stem", "file_suffix", "read_image", "read_mask", "write_bytes_atomic", "write_image"]
