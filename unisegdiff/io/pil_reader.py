"""Reading PNG, JPEG, TIFF and BMP with PIL: every frame, modes mapped to gray, RGB or RGBA, the pixel limit
checked from the header before decoding (in place of Pillow's fixed one), alpha kept on request.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from unisegdiff.io.errors import DataError
from unisegdiff.io.geometry import Geometry, ImageRecord
from unisegdiff.io.limits import check_pixel_count

ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_PIL_LIMIT_LOCK = threading.Lock()


def read_pil(path: Path, keep_alpha: bool = False, max_pixels: int | None = None) -> ImageRecord:
    """All frames of a PIL-readable file; (H, W[, C]) or (F, H, W[, C]) with identity geometry."""
    try:
        with _open_without_pillow_limit(path) as image:
            count = getattr(image, "n_frames", 1)
            check_pixel_count(path, (*image.size, count) if count > 1 else image.size, max_pixels)
            frames = []
            for index in range(count):
                image.seek(index)
                image.load()
                frames.append(_pil_to_array(image, keep_alpha))
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(path, f"cannot decode the image ({error})",
                        "the file is truncated or not an image: re-export or re-download it") from error
    array = frames[0] if len(frames) == 1 else np.stack(frames)
    return ImageRecord(array, Geometry.identity(3 if len(frames) > 1 else 2), str(path))


@contextmanager
def _open_without_pillow_limit(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` with Pillow's own bomb check off while the header is parsed: ``check_pixel_count`` replaces
    it with a configurable limit and a message naming the file."""
    with _PIL_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with image:
        yield image


def _pil_to_array(image: Image.Image, keep_alpha: bool) -> np.ndarray:
    if keep_alpha and (image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)):
        return np.array(image.convert("LA" if image.mode in ("LA", "La") else "RGBA"))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("1", "LA", "La"):
        image = image.convert("L")
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV", "PA"):
        image = image.convert("RGB")
    return np.array(image)
