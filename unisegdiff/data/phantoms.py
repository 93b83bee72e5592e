"""Seeded procedural 2D lesion phantoms in six modality styles: the embedded default data for demos
and tests. Lesions are irregular, intensities overlap the background, so thresholding does not solve them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter

from unisegdiff.data.readers import Geometry, write_image

PHANTOM_STYLES = ("phantom_dermoscopy", "phantom_endoscopy", "phantom_breast_us", "phantom_thyroid_us", "phantom_ct", "phantom_mr")


@dataclass
class PhantomSample:
    """One phantom: native-type image (uint8 RGB/gray, int16 HU for CT, float32 for MR) and a {0, 1} mask."""

    dataset: str
    stem: str
    image: np.ndarray
    mask: np.ndarray


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std random field with correlation length ~ sigma pixels."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (field - field.mean()) / max(field.std(), 1e-8)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float64)


def lesion_mask(rng: np.random.Generator, size: int, centre: tuple[float, float] | None = None, radius: float | None = None) -> np.ndarray:
    """Irregular blob: a polar radius perturbed by random harmonics, sometimes with a second lobe,
    smoothed; radius between ~5% and ~25% of the image."""
    yy, xx = _grid(size)
    cy, cx = centre if centre is not None else rng.uniform(0.28, 0.72, 2) * size
    r0 = radius if radius is not None else size * (rng.uniform(0.05, 0.10) if rng.random() < 0.25 else rng.uniform(0.10, 0.24))
    theta = np.arctan2(yy - cy, xx - cx)
    rho = np.hypot(yy - cy, xx - cx)
    radial = np.ones_like(theta)
    for k in range(2, 8):
        radial += rng.uniform(0.0, 0.32) / k ** 0.9 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    blob = (rho <= r0 * radial).astype(np.float64)
    if rng.random() < 0.35:  # a second lobe on the border
        angle = rng.uniform(0, 2 * np.pi)
        lobe_r = r0 * rng.uniform(0.35, 0.7)
        ly, lx = cy + 0.9 * r0 * np.sin(angle), cx + 0.9 * r0 * np.cos(angle)
        blob = np.maximum(blob, (np.hypot(yy - ly, xx - lx) <= lobe_r).astype(np.float64))
    blob = gaussian_filter(blob, max(size / 80.0, 0.6)) + 0.25 * gaussian_filter(rng.standard_normal((size, size)), size / 40.0) * (blob > 0)
    mask = blob > 0.5
    if not mask.any():  # keep every phantom with a lesion
        mask = rho <= max(r0, 2.0)
    return mask


def _soft(mask: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Alpha map with a blurred, partly ill-defined border."""
    return np.clip(gaussian_filter(mask.astype(np.float64), rng.uniform(0.5, 2.0) * size / 128.0), 0, 1)


def _contrast(rng: np.random.Generator) -> float:
    """Lesion contrast: often moderate, sometimes low."""
    return float(rng.uniform(0.08, 0.25) if rng.random() < 0.3 else rng.uniform(0.25, 0.6))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def _blobs(rng: np.random.Generator, size: int, count: int, radius: tuple[float, float]) -> np.ndarray:
    """Distractors: small soft blobs that look like lesions but are not labelled."""
    yy, xx = _grid(size)
    out = np.zeros((size, size))
    for _ in range(count):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(*radius) * size
        out = np.maximum(out, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    return out


def _dermoscopy(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    skin = np.array([0.86, 0.66, 0.56]) + rng.normal(0, 0.05, 3)
    brown = np.array([0.42, 0.27, 0.19]) + rng.normal(0, 0.05, 3)
    shade = 0.06 * _smooth_field(rng, size, size / 10) + 0.04 * _smooth_field(rng, size, size / 40)
    image = skin[None, None] * (1 + shade[..., None])
    freckles = 0.55 * _blobs(rng, size, int(rng.integers(2, 8)), (0.015, 0.05))
    image = image * (1 - freckles[..., None]) + brown[None, None] * freckles[..., None]
    alpha = _soft(mask, size, rng) * (_contrast(rng) + 0.3) * np.clip(1 + 0.5 * _smooth_field(rng, size, size / 25), 0.2, 1.6)
    alpha = np.clip(alpha, 0, 1)[..., None]
    image = image * (1 - alpha) + brown[None, None] * (1 + 0.15 * _smooth_field(rng, size, size / 30))[..., None] * alpha
    yy, xx = _grid(size)
    for _ in range(int(rng.integers(0, 6))):  # hairs
        a, b, phase = rng.uniform(-1, 1), rng.uniform(0, size), rng.uniform(0, 2 * np.pi)
        line = np.abs(yy - (a * xx + b + 3 * np.sin(xx / size * 6 + phase))) < max(size / 200, 0.6)
        image[line] *= 0.35
    vignette = 1 - 0.35 * np.clip(np.hypot(yy - size / 2, xx - size / 2) / (0.7 * size), 0, 1) ** 3
    image = image * vignette[..., None] + rng.normal(0, 0.02, image.shape)
    return _to_uint8(gaussian_filter(image, (0.6, 0.6, 0)))


def _endoscopy(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    mucosa = np.array([0.78, 0.38, 0.32]) + rng.normal(0, 0.04, 3)
    yy, xx = _grid(size)
    folds = 0.12 * np.sin((yy * np.cos(rng.uniform(0, np.pi)) + xx * np.sin(rng.uniform(0, np.pi))) / size * rng.uniform(8, 20) + _smooth_field(rng, size, size / 12) * 1.5)
    image = mucosa[None, None] * (1 + folds + 0.08 * _smooth_field(rng, size, size / 6))[..., None]
    alpha = _soft(mask, size, rng)[..., None]
    polyp = mucosa * np.array([1.0, 1.0 + rng.uniform(-0.4, 0.4), 1.0 + rng.uniform(-0.3, 0.4)])
    cy, cx = np.argwhere(mask).mean(0)
    dome = 1 + _contrast(rng) * np.clip(1 - np.hypot(yy - cy + size * 0.03, xx - cx) / (np.sqrt(mask.sum() / np.pi) + 1), -1, 1)
    image = image * (1 - alpha) + polyp[None, None] * dome[..., None] * (1 + 0.05 * _smooth_field(rng, size, size / 20))[..., None] * alpha
    highlights = _blobs(rng, size, int(rng.integers(3, 10)), (0.005, 0.015))
    image = np.maximum(image, highlights[..., None] * 1.2)
    vignette = 1 - 0.75 * np.clip(np.hypot(yy - size / 2, xx - size / 2) / (0.72 * size), 0, 1) ** 2
    image = image * vignette[..., None] + rng.normal(0, 0.025, image.shape)
    return _to_uint8(gaussian_filter(image, (0.7, 0.7, 0)))


def _speckle(rng: np.random.Generator, size: int, echo: np.ndarray) -> np.ndarray:
    """Multiplicative Rayleigh speckle with a short correlation length, then log-ish compression."""
    grain = gaussian_filter(rng.rayleigh(1.0, (size, size)), max(size / 180.0, 0.5))
    return np.clip(echo * grain / 1.25, 0, 1) ** 0.8


def _breast_us(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    yy, _ = _grid(size)
    layers = 0.45 + 0.12 * np.sin(yy / size * rng.uniform(6, 14) + 2 * _smooth_field(rng, size, size / 8))
    echo = layers + 0.1 * _smooth_field(rng, size, size / 12) - 0.3 * _blobs(rng, size, int(rng.integers(2, 6)), (0.03, 0.08))
    alpha = _soft(mask, size, rng)
    echo = echo * (1 - alpha * _contrast(rng) * 1.4)
    rows = np.argwhere(mask)
    bottom, (left, right) = rows[:, 0].max(), (rows[:, 1].min(), rows[:, 1].max())
    shadow = np.zeros((size, size))
    shadow[bottom:, left:right + 1] = rng.uniform(-0.25, 0.25)  # posterior shadowing or enhancement
    echo = echo * (1 + gaussian_filter(shadow, size / 30))
    depth = np.clip(1.1 - 0.5 * yy / size, 0.4, 1.1)
    return _to_uint8(_speckle(rng, size, np.clip(echo, 0.02, 1) * depth))


def _thyroid_us(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    yy, xx = _grid(size)
    gland = (((yy - size * 0.5) / (size * 0.38)) ** 2 + ((xx - size * 0.5) / (size * 0.42)) ** 2) < 1
    gland_alpha = gaussian_filter(gland.astype(float), size / 40)
    echo = 0.35 + 0.1 * _smooth_field(rng, size, size / 10) + 0.2 * gland_alpha
    trachea = np.hypot(yy - size * rng.uniform(0.3, 0.7), xx - size * rng.choice([0.08, 0.92])) < size * 0.12
    echo = np.where(trachea, 0.08, echo)
    alpha = _soft(mask, size, rng)
    sign = -1.0 if rng.random() < 0.7 else 0.8  # mostly hypoechoic nodules, some hyperechoic
    echo = echo * (1 + sign * alpha * _contrast(rng) * 1.3) + alpha * 0.08 * _smooth_field(rng, size, size / 30)
    return _to_uint8(_speckle(rng, size, np.clip(echo, 0.02, 1)))


def _ct(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    yy, xx = _grid(size)
    body = (((yy - size * 0.5) / (size * 0.46)) ** 2 + ((xx - size * 0.5) / (size * 0.49)) ** 2) < 1
    liver = (((yy - size * 0.45) / (size * 0.36)) ** 2 + ((xx - size * 0.42) / (size * 0.4)) ** 2) < 1
    hu = np.where(body, 30.0 + 15 * _smooth_field(rng, size, size / 8), -1000.0)
    hu = np.where(body & liver, rng.uniform(50, 70) + 8 * _smooth_field(rng, size, size / 15), hu)
    hu = hu + 120 * _blobs(rng, size, int(rng.integers(3, 9)), (0.008, 0.02)) * liver  # vessels
    hu = hu - 35 * _blobs(rng, size, int(rng.integers(1, 4)), (0.02, 0.05)) * liver  # cysts / fat
    spine = np.hypot(yy - size * 0.85, xx - size * 0.5) < size * 0.06
    hu = np.where(spine & body, 600.0, hu)
    alpha = _soft(mask, size, rng)
    hu = hu - alpha * _contrast(rng) * 110 * (1 + 0.3 * _smooth_field(rng, size, size / 25))
    hu = gaussian_filter(hu, 0.7) + rng.normal(0, rng.uniform(12, 28), (size, size)) * body
    return np.round(hu).astype(np.int16)


def _mr(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    yy, xx = _grid(size)
    brain = (((yy - size * 0.5) / (size * 0.42)) ** 2 + ((xx - size * 0.5) / (size * 0.36)) ** 2) < 1
    tissue = 0.45 + 0.08 * _smooth_field(rng, size, size / 20) + 0.04 * np.tanh(3 * _smooth_field(rng, size, size / 14))
    ventricles = (np.abs(xx - size * 0.5) > size * 0.03) & (((yy - size * 0.48) / (size * 0.14)) ** 2 + ((np.abs(xx - size * 0.5) - size * 0.08) / (size * 0.05)) ** 2 < 1)
    signal = np.where(brain, tissue, 0.02)
    signal = np.where(ventricles & brain, 0.12, signal)
    signal = signal + 0.18 * _blobs(rng, size, int(rng.integers(1, 5)), (0.01, 0.03)) * brain  # hyperintense spots
    alpha = _soft(mask, size, rng)
    signal = signal * (1 + alpha * _contrast(rng) * 1.8 * (1 + 0.3 * _smooth_field(rng, size, size / 20)))
    bias = np.exp(0.25 * _smooth_field(rng, size, size / 3))
    real = signal * bias + rng.normal(0, 0.04, (size, size))
    imaginary = rng.normal(0, 0.04, (size, size))
    return (np.hypot(real, imaginary) * 1000.0).astype(np.float32)  # Rician noise, arbitrary MR units


STYLE_RENDERERS: dict[str, Callable[[np.random.Generator, int, np.ndarray], np.ndarray]] = {
    "phantom_dermoscopy": _dermoscopy,
    "phantom_endoscopy": _endoscopy,
    "phantom_breast_us": _breast_us,
    "phantom_thyroid_us": _thyroid_us,
    "phantom_ct": _ct,
    "phantom_mr": _mr,
}


def make_phantom(style: str, index: int, size: int = 128, seed: int = 0) -> PhantomSample:
    """Phantom ``index`` of ``style``; the same (style, index, size, seed) always gives the same sample."""
    if style not in STYLE_RENDERERS:
        raise ValueError(f"unknown phantom style {style!r}; use one of {PHANTOM_STYLES}")
    rng = np.random.default_rng([seed, PHANTOM_STYLES.index(style), index, size])
    mask = lesion_mask(rng, size)
    image = STYLE_RENDERERS[style](rng, size, mask)
    return PhantomSample(style, f"{style.removeprefix('phantom_')}_{index:04d}", image, mask.astype(np.uint8))


def make_phantom_datasets(n_per_dataset: int = 48, size: int = 128, seed: int = 0, styles: list[str] | None = None) -> dict[str, list[PhantomSample]]:
    """In-memory phantom datasets: {style: [samples]}."""
    return {style: [make_phantom(style, i, size, seed) for i in range(n_per_dataset)] for style in (styles or PHANTOM_STYLES)}


def write_phantom_root(root: str | Path, n_per_dataset: int = 24, size: int = 128, seed: int = 0, overwrite: bool = False) -> Path:
    """Write phantoms in the canonical layout: ``<root>/<style>/images|masks/<stem>``; PNG for 8-bit
    styles, NIfTI for CT (int16 HU) and MR (float32); masks are {0, 255} PNG."""
    root = Path(root)
    for style, samples in make_phantom_datasets(n_per_dataset, size, seed).items():
        for sample in samples:
            ext = ".png" if sample.image.dtype == np.uint8 else ".nii.gz"
            write_image(sample.image, Geometry.identity(2), root / style / "images" / f"{sample.stem}{ext}", overwrite=overwrite)
            write_image(sample.mask * 255, Geometry.identity(2), root / style / "masks" / f"{sample.stem}.png", overwrite=overwrite)
    return root
