"""Turn a decoded 2D image or mask into model input: per-modality normalization, a fixed channel
count and a square size. Shared by training (LesionDataModule) and ``unisegdiff predict``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from unisegdiff.data.errors import DataError
from unisegdiff.data.registry import NORMALIZATIONS, DatasetSpec, load_registry

# modality words accepted by prepare_image besides dataset names and normalization kinds
MODALITY_NORMALIZATION = {
    "dermoscopy": "rgb", "endoscopy": "rgb", "rgb": "rgb", "photo": "rgb",
    "ultrasound": "us", "us": "us", "ct": "ct_window", "mr": "mr_percentile", "mri": "mr_percentile",
    "mri_flair": "mr_percentile",
}
DEFAULT_CT_WINDOW = (-100.0, 200.0)
DEFAULT_PERCENTILES = (0.5, 99.5)


def _is_8bit_like(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 or array.dtype == bool


def _dtype_scale(array: np.ndarray) -> np.ndarray:
    """8-bit images divided by 255; other types min-max rescaled to [0, 1]."""
    if _is_8bit_like(array):
        return array.astype(np.float32) / (1.0 if array.dtype == bool else 255.0)
    return _minmax(array.astype(np.float32))


def _minmax(array: np.ndarray) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _per_channel(array: np.ndarray, function) -> np.ndarray:
    if array.ndim == 3:
        return np.stack([function(array[..., c]) for c in range(array.shape[2])], axis=-1)
    return function(array)


def _ct_window(array: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    if _is_8bit_like(array):  # already windowed (e.g. the LiTS importer's PNGs)
        return array.astype(np.float32) / 255.0
    low, high = float(window[0]), float(window[1])
    return (np.clip(array.astype(np.float32), low, high) - low) / (high - low)


def _mr_percentile(array: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    def one(channel: np.ndarray) -> np.ndarray:
        low, high = np.percentile(channel, percentiles)
        if high <= low:
            return np.zeros(channel.shape, np.float32)
        return (np.clip(channel.astype(np.float32), low, high) - low) / float(high - low)

    return _per_channel(array, one)


def guess_normalization(array: np.ndarray) -> str:
    """Normalization for an image of unknown origin: RGB -> rgb, 8-bit -> us (plain scaling),
    values below -200 (HU) -> ct_window, other wide-range data -> mr_percentile."""
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return "rgb"
    if _is_8bit_like(array):
        return "us"
    if float(array.min()) < -200:
        return "ct_window"
    return "mr_percentile"


def normalize_intensity(array: np.ndarray, normalization: str, params: dict[str, Any] | None = None) -> np.ndarray:
    """Intensities of an (H, W[, C]) array to float32 following ``normalization`` (see the registry)."""
    params = params or {}
    if normalization == "auto":
        normalization = guess_normalization(array)
    if normalization == "rgb":
        unit = _per_channel(array, _dtype_scale) if not _is_8bit_like(array) else array.astype(np.float32) / 255.0
    elif normalization == "ct_window":
        unit = _ct_window(array, tuple(params.get("window", DEFAULT_CT_WINDOW)))
    elif normalization == "mr_percentile":
        unit = _mr_percentile(array, tuple(params.get("percentiles", DEFAULT_PERCENTILES)))
    elif normalization in ("us", "scale"):
        unit = _dtype_scale(array)
    else:
        raise ValueError(f"unknown normalization {normalization!r}; use one of {NORMALIZATIONS}")
    return _apply_scale(unit.astype(np.float32), params.get("scale", "unit"))


def _apply_scale(unit: np.ndarray, scale: str) -> np.ndarray:
    if scale == "unit":
        return unit
    if scale == "symmetric":
        return unit * 2.0 - 1.0
    if scale == "zscore":
        def zscore(channel: np.ndarray) -> np.ndarray:
            return (channel - channel.mean()) / max(float(channel.std()), 1e-6)
        return _per_channel(unit, zscore)
    raise ValueError(f"unknown scale {scale!r}; use unit, symmetric or zscore")


def to_channels_first(array: np.ndarray, color: str, channels: int) -> np.ndarray:
    """(H, W[, C]) -> (channels, H, W): alpha dropped, gray replicated, RGB kept (or reduced to
    luminance when ``color`` is gray or one channel is asked for)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[2] == 4:
        array = array[..., :3]
    if array.shape[2] == 2:
        array = array[..., :1]
    if array.shape[2] == 3 and (color == "gray" or channels == 1):
        array = (array @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    present = array.shape[2]
    if present == channels:
        out = array
    elif present == 1:
        out = np.repeat(array, channels, axis=2)
    else:
        raise ValueError(f"cannot turn {present} channels into {channels}; use channels=1, 3 or {present}")
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) float -> (C, size, size), bilinear with antialiasing (plain resize, no padding)."""
    if image.shape[1:] == (size, size):
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """(H, W) {0, 1} -> (1, size, size) uint8 {0, 1}: area-weighted resize, re-binarized at 0.5."""
    if mask.shape == (size, size):
        return mask.astype(np.uint8)[None]
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    resized = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return (resized.numpy() >= 0.5).astype(np.uint8)


def check_finite_2d(array: np.ndarray, where: str) -> None:
    """Reject what a 2D image pipeline cannot use: non-2D shapes and NaN/Inf values."""
    if array.ndim == 3 and array.shape[2] > 4 or array.ndim not in (2, 3):
        raise DataError(where, f"array of shape {array.shape} is not a 2D image",
                        "3D volumes must be sliced first (e.g. `unisegdiff data import lits`) or use the 3D pipeline")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError(where, f"{int((~np.isfinite(array)).sum())} NaN/Inf intensities",
                        "fix or re-export the image; NaN/Inf cannot be normalized")


def resolve_spec(modality_or_dataset: str | DatasetSpec, registry: dict[str, DatasetSpec] | None = None) -> DatasetSpec:
    """A registry entry from a dataset name, a modality word or a normalization kind."""
    if isinstance(modality_or_dataset, DatasetSpec):
        return modality_or_dataset
    key = str(modality_or_dataset)
    registry = registry if registry is not None else load_registry()
    if key in registry:
        return registry[key]
    normalization = key if key in NORMALIZATIONS else MODALITY_NORMALIZATION.get(key.lower())
    if normalization is None:
        raise ValueError(f"unknown modality or dataset {key!r}; use a registry dataset ({', '.join(sorted(registry))}), "
                         f"a normalization ({', '.join(NORMALIZATIONS)}) or a modality ({', '.join(MODALITY_NORMALIZATION)})")
    return DatasetSpec(name=key, folder=key, normalization=normalization, color="rgb" if normalization == "rgb" else "auto")


def preprocess_image(array: np.ndarray, spec: DatasetSpec, image_size: int, channels: int, where: str = "image") -> np.ndarray:
    """(H, W[, C]) raw array -> float32 (channels, image_size, image_size) by the spec's rules.
    Resizing comes first (cheaper) and keeps the array's type, so 8-bit rules still apply after it."""
    check_finite_2d(array, where)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[..., : array.shape[2] - 1]  # drop alpha
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 3 and (spec.color == "gray" or channels == 1):
        array = _cast_like(array.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32), array.dtype)
    chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    resized = _cast_like(resize_image(chw.astype(np.float32), image_size), array.dtype)
    hwc = resized[0] if resized.shape[0] == 1 else resized.transpose(1, 2, 0)
    normalized = normalize_intensity(hwc, spec.normalization, spec.params)
    return to_channels_first(normalized, "rgb", channels).astype(np.float32)


def _cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results back to an integer source type (rounded, clipped); float types stay float32."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(np.float32)


def prepare_image(array: np.ndarray, modality_or_dataset: str | DatasetSpec, image_size: int, channels: int = 3) -> torch.Tensor:
    """A raw user image (H, W) or (H, W, C) -> float32 tensor (channels, image_size, image_size),
    normalized as the named dataset or modality (``auto``: guessed from the array)."""
    array = np.asarray(array)
    spec = resolve_spec(modality_or_dataset)
    return torch.from_numpy(preprocess_image(array, spec, image_size, channels))


def binarize_mask(array: np.ndarray, where: str = "mask") -> np.ndarray:
    """A canonical mask (two levels at most: 0 and one positive value) -> (H, W) uint8 {0, 1}."""
    if array.ndim == 3 and array.shape[2] in (3, 4):
        color = array[..., :3]
        if not ((color == color[..., :1]).all()):
            raise DataError(where, "mask has colours (RGB channels differ)", "save masks as single-channel {0, 255} images")
        array = color[..., 0]
    if array.ndim != 2:
        raise DataError(where, f"mask of shape {array.shape} is not a 2D mask", "masks must be (H, W) images")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError(where, "mask has NaN/Inf values", "re-export the mask as a {0, 255} PNG")
    levels = np.unique(array)
    if len(levels) > 2 or (len(levels) == 2 and levels[0] != 0) or (len(levels) == 1 and levels[0] < 0):
        shown = ", ".join(str(v) for v in levels[:6]) + (", ..." if len(levels) > 6 else "")
        raise DataError(where, f"mask is not binary: values {{{shown}}} ({len(levels)} levels)",
                        "masks must hold 0 for background and one value (1 or 255) for lesion; "
                        "threshold JPEG-noisy masks (the importers do) or save a lossless {0, 255} PNG")
    return (array > 0).astype(np.uint8)
