"""A configurable limit on the pixels (2D) or voxels (3D) a reader decodes, checked from the header before
the data is read: a tiny compressed file can expand to gigabytes (a decompression bomb).
"""

from __future__ import annotations

import math
import os

from unisegdiff.io.errors import DataError

DEFAULT_MAX_PIXELS = 100_000_000  # 2D: a 10000 x 10000 image
DEFAULT_MAX_VOXELS = 1_000_000_000  # 3D: e.g. 1024 x 1024 x 950 voxels, 4 GB as float32
PIXELS_ENV, VOXELS_ENV = "UNISEGDIFF_MAX_PIXELS", "UNISEGDIFF_MAX_VOXELS"


def pixel_limit(ndim: int, max_pixels: int | None = None) -> int:
    """``max_pixels`` if given, else ``$UNISEGDIFF_MAX_PIXELS`` (2D) / ``$UNISEGDIFF_MAX_VOXELS`` (3D), else the default."""
    if max_pixels is not None:
        return int(max_pixels)
    env, default = (VOXELS_ENV, DEFAULT_MAX_VOXELS) if ndim >= 3 else (PIXELS_ENV, DEFAULT_MAX_PIXELS)
    value = os.environ.get(env, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise DataError(env, f"environment variable is {value!r}, not a whole number", f"set {env} to a pixel count or unset it") from None


def check_pixel_count(path: object, size: tuple[int, ...], max_pixels: int | None = None) -> None:
    """Refuse an image of ``size`` (x, y[, z]) above the limit, naming ``path`` and how to raise the limit."""
    count, limit = math.prod(size), pixel_limit(len(size), max_pixels)
    if count > limit:
        env = VOXELS_ENV if len(size) >= 3 else PIXELS_ENV
        raise DataError(path, f"image of {' x '.join(str(s) for s in size)} = {count:,} pixels exceeds the limit of "
                        f"{limit:,} (a decompression bomb or a wrongly sized file)",
                        f"if the image is genuine, raise the limit with {env}=<pixels> or max_pixels=<pixels>")
