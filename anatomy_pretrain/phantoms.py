"""Seeded 3D synthetic CT phantoms: a torso with bones, lungs and the 13 BTCV abdominal organs, with labels.

Anatomy is placed consistently (liver right, spleen left, spine posterior...) but size, position, field of view,
intensity, noise and voxel spacing vary per seed. Arrays are (X, Y, Z) in RAS+ millimetres, HU for the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchio as tio
from scipy.ndimage import gaussian_filter

# BTCV's 13 organs, then lungs and bones
ORGAN_NAMES: tuple[str, ...] = (
    "spleen", "right_kidney", "left_kidney", "gallbladder", "esophagus", "liver", "stomach", "aorta",
    "inferior_vena_cava", "portal_splenic_vein", "pancreas", "right_adrenal", "left_adrenal", "lungs", "bones",
)
LABELS: dict[str, int] = {name: i + 1 for i, name in enumerate(ORGAN_NAMES)}
BODY_LENGTH_MM = 480.0  # pelvis (z=0) to shoulders


@dataclass(frozen=True)
class PhantomVolume:
    """One phantom: ``image`` (HU, float32) and ``label`` (uint8) arrays (X, Y, Z), voxel ``spacing`` and RAS ``affine``."""

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    name: str

    def to_subject(self) -> tio.Subject:
        return tio.Subject(
            image=tio.ScalarImage(tensor=torch.from_numpy(self.image[None]), affine=self.affine),
            label=tio.LabelMap(tensor=torch.from_numpy(self.label[None].astype(np.int16)), affine=self.affine),
            name=self.name,
        )

    def save(self, root: str | Path) -> tuple[Path, Path]:
        """Write ``root/images/<name>.nii.gz`` and ``root/labels/<name>.nii.gz``; return both paths."""
        root = Path(root)
        paths = root / "images" / f"{self.name}.nii.gz", root / "labels" / f"{self.name}.nii.gz"
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)
        subject = self.to_subject()
        subject["image"].save(paths[0])
        subject["label"].save(paths[1])
        return paths


def _ellipsoid(grid: tuple[np.ndarray, ...], center, axes) -> np.ndarray:
    x, y, z = grid
    return ((x - center[0]) / axes[0]) ** 2 + ((y - center[1]) / axes[1]) ** 2 + ((z - center[2]) / axes[2]) ** 2 <= 1.0


def _capsule(grid: tuple[np.ndarray, ...], start, end, radius: float) -> np.ndarray:
    """Points within ``radius`` of the segment start-end (vessels)."""
    p = np.stack(grid, axis=-1)
    a, b = np.asarray(start, float), np.asarray(end, float)
    ab = b - a
    u = np.clip(((p - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + u[..., None] * ab), axis=-1) <= radius


def make_ct_phantom(
    seed: int,
    spacing: tuple[float, float, float] | None = None,
    fov_length_mm: float | None = None,
) -> PhantomVolume:
    """A torso phantom for ``seed``; ``spacing`` (mm) and the z field of view are drawn from the seed when None."""
    rng = np.random.default_rng(seed)
    if spacing is None:
        inplane = float(rng.uniform(2.5, 4.0))
        spacing = (inplane, inplane, float(rng.uniform(3.0, 5.0)))
    fov = float(fov_length_mm or rng.uniform(260.0, 380.0))
    z_start = float(rng.uniform(0.0, BODY_LENGTH_MM - fov))
    s = float(rng.uniform(0.88, 1.12))  # body size
    shape = tuple(int(round(e / sp)) for e, sp in zip((380.0 * s, 300.0 * s, fov), spacing))
    axes_mm = [(np.arange(n) - (n - 1) / 2.0) * sp for n, sp in zip(shape[:2], spacing[:2])]
    axes_mm.append(z_start + np.arange(shape[2]) * spacing[2])
    grid = np.meshgrid(*axes_mm, indexing="ij")

    def jitter(center, axes, shift: float = 6.0, size: float = 0.15):
        c = [s * ci + rng.normal(0.0, shift) for ci in center[:2]] + [s * center[2] + rng.normal(0.0, shift)]
        a = [s * ai * rng.uniform(1 - size, 1 + size) for ai in axes]
        return c, a

    image = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)

    def paint(mask: np.ndarray, hu: float, name: str | None = None, hu_jitter: float = 10.0) -> None:
        image[mask] = hu + rng.normal(0.0, hu_jitter)
        if name is not None:
            label[mask] = LABELS[name]

    x, y, z = grid
    body_a, body_b = 165.0 * s, 115.0 * s
    ellipse = (x / body_a) ** 2 + (y / body_b) ** 2
    paint(ellipse <= 1.0, -100.0)  # subcutaneous fat
    paint((x / (body_a - 15)) ** 2 + (y / (body_b - 15)) ** 2 <= 1.0, 40.0)  # muscle / soft tissue
    # lungs (thorax), then abdominal organs in BTCV-like positions (x>0 is the patient's right)
    for side in (+1, -1):
        paint(_ellipsoid(grid, *jitter((side * 70.0, 0.0, 390.0), (55.0, 75.0, 95.0))), -850.0, "lungs", 30.0)
    paint(_ellipsoid(grid, *jitter((70.0, 10.0, 255.0), (75.0, 80.0, 65.0))), 60.0, "liver")
    paint(_ellipsoid(grid, *jitter((-85.0, -25.0, 260.0), (30.0, 45.0, 48.0))), 50.0, "spleen")
    paint(_ellipsoid(grid, *jitter((-45.0, 40.0, 265.0), (45.0, 38.0, 45.0))), 15.0, "stomach")
    paint(_ellipsoid(grid, *jitter((60.0, -50.0, 200.0), (28.0, 25.0, 50.0))), 150.0, "right_kidney")
    paint(_ellipsoid(grid, *jitter((-60.0, -50.0, 212.0), (28.0, 25.0, 50.0))), 150.0, "left_kidney")
    paint(_ellipsoid(grid, *jitter((55.0, 45.0, 215.0), (16.0, 16.0, 30.0))), 5.0, "gallbladder")
    paint(_ellipsoid(grid, *jitter((-10.0, 5.0, 222.0), (60.0, 13.0, 13.0))), 90.0, "pancreas")
    paint(_ellipsoid(grid, *jitter((40.0, -30.0, 258.0), (10.0, 7.0, 16.0), 3.0)), 30.0, "right_adrenal")
    paint(_ellipsoid(grid, *jitter((-40.0, -30.0, 262.0), (10.0, 7.0, 16.0), 3.0)), 30.0, "left_adrenal")
    c, _ = jitter((0.0, 0.0, 0.0), (1, 1, 1), 4.0)
    paint(_capsule(grid, (s * -15 + c[0], s * -25 + c[1], 100.0), (s * -15 + c[0], s * -25 + c[1], 450.0), 12.0 * s), 200.0, "aorta")
    paint(_capsule(grid, (s * 25 + c[0], s * -20 + c[1], 100.0), (s * 25 + c[0], s * -20 + c[1], 320.0), 12.0 * s), 130.0, "inferior_vena_cava")
    paint(_capsule(grid, (s * -5, s * -38, s * 300.0), (s * -5, s * -38, 480.0), 8.0 * s), -20.0, "esophagus")
    paint(_capsule(grid, (s * 40, s * 15, s * 245.0), (s * -70, s * -10, s * 237.0), 6.0 * s), 165.0, "portal_splenic_vein")
    # bones: vertebrae with discs, ribs in the thorax, iliac wings at the pelvis
    bone = np.zeros(shape, dtype=bool)
    spine_r = ((x / (18.0 * s)) ** 2 + ((y + 75.0 * s) / (16.0 * s)) ** 2) <= 1.0
    bone |= spine_r & (np.mod(z / s, 30.0) < 24.0)
    ribs = (ellipse <= 0.92) & (ellipse >= 0.80) & (y > -90.0 * s) & (z > 300.0 * s) & (z < 470.0 * s)
    bone |= ribs & (np.mod(z / s, 26.0) < 9.0)
    for side in (+1, -1):
        bone |= _ellipsoid(grid, (side * 100.0 * s, -30.0 * s, 40.0 * s), (30.0 * s, 50.0 * s, 55.0 * s))
    paint(bone, 700.0, "bones", 60.0)
    body = ellipse <= 1.0
    image = gaussian_filter(image, sigma=0.6)
    image += rng.normal(0.0, rng.uniform(8.0, 25.0), size=shape).astype(np.float32) * body
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = [axes_mm[0][0], axes_mm[1][0], axes_mm[2][0]]
    return PhantomVolume(image=image.astype(np.float32), label=label, spacing=tuple(spacing), affine=affine, name=f"phantom_{seed:04d}")


def write_phantom_dataset(root: str | Path, count: int, seed: int = 0) -> list[tuple[Path, Path]]:
    """Write ``count`` phantoms (seeds ``seed .. seed+count-1``) as NIfTI under ``root/images`` and ``root/labels``."""
    return [make_ct_phantom(seed + i).save(root) for i in range(count)]
