"""Where an image grid lies in space (spacing, origin, direction) and a decoded image with its geometry.

The geometry's dimension is the number of spatial axes; an array axis beyond those holds channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Physical placement of an image grid, in SimpleITK (x, y[, z]) order."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def identity(cls, ndim: int = 2) -> "Geometry":
        direction = tuple(float(v) for v in np.eye(ndim).ravel())
        return cls((1.0,) * ndim, (0.0,) * ndim, direction)

    @property
    def ndim(self) -> int:
        return len(self.spacing)


@dataclass
class ImageRecord:
    """A decoded image: array (H, W), (H, W, C), (D, H, W) or (D, H, W, C), its geometry and where it came from."""

    array: np.ndarray
    geometry: Geometry
    path: str

    @property
    def has_channels(self) -> bool:
        """Whether the last array axis holds channels (RGB, RGBA, vector pixels) rather than a spatial axis."""
        return self.array.ndim > self.geometry.ndim
