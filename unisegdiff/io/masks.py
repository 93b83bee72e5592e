"""Reducing a multi-channel mask to one plane, explicitly: gray channels must agree, and alpha is used only
when it is the one channel that varies (a lesion drawn in alpha), never silently dropped.
"""

from __future__ import annotations

import numpy as np

from unisegdiff.io.errors import DataError

HAS_ALPHA = {2: True, 3: False, 4: True}  # channels -> last channel is alpha (LA, RGB, RGBA)


def mask_plane(array: np.ndarray, path: object) -> np.ndarray:
    """The one plane of an (..., C) mask; ``DataError`` naming ``path`` when colours or alpha make it ambiguous."""
    channels = array.shape[-1]
    if channels == 1:
        return array[..., 0]
    if channels not in HAS_ALPHA:
        raise DataError(path, f"mask has {channels} channels", "save masks as single-channel {0, 255} images")
    color = array[..., :-1] if HAS_ALPHA[channels] else array
    if not (color == color[..., :1]).all():
        raise DataError(path, "mask has colours (RGB channels differ)", "save masks as single-channel {0, 255} images")
    gray = color[..., 0]
    if not HAS_ALPHA[channels]:
        return gray
    alpha = array[..., -1]
    if _constant(alpha):
        return gray
    if _constant(gray):
        return alpha  # the lesion is drawn in the alpha channel only
    raise DataError(path, "mask varies in both its gray/RGB channels and its alpha channel, so which one holds the "
                    "lesion is ambiguous", "save masks as single-channel {0, 255} images (no transparency)")


def _constant(plane: np.ndarray) -> bool:
    return plane.size == 0 or bool((plane == plane.flat[0]).all())
