"""The canonical dataset layout ``<root>/<dataset>/images/<stem>.<ext>`` + ``masks/<stem>.<ext>``
[+ ``splits.json``]: find image/mask pairs and load one pair with every check a 2D set needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unisegdiff.data.errors import DataError, Problem
from unisegdiff.data.preprocess import binarize_mask, check_finite_2d
from unisegdiff.io import READABLE_EXTENSIONS, file_stem, file_suffix, read_image, read_mask

IMAGES_DIR, MASKS_DIR, SPLITS_FILE = "images", "masks", "splits.json"


@dataclass(frozen=True)
class PairPaths:
    """One image and its mask in a canonical dataset folder."""

    folder: str
    stem: str
    image: Path
    mask: Path


def dataset_folders(root: str | Path) -> list[str]:
    """Sorted names of the dataset folders (those with an ``images`` or ``masks`` folder) under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset root does not exist or is not a folder", "pass an existing folder as root (or root=None for phantoms)")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and ((p / IMAGES_DIR).is_dir() or (p / MASKS_DIR).is_dir()))


def _files_by_stem(folder: Path, problems: list[Problem]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not folder.is_dir():
        problems.append(Problem(str(folder), "folder is missing; a dataset needs both images/ and masks/"))
        return found
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue  # hidden and temporary files
        suffix = file_suffix(path)
        if path.is_dir() or suffix not in READABLE_EXTENSIONS:
            problems.append(Problem(str(path), f"unsupported entry ({'a folder' if path.is_dir() else repr(suffix)}); "
                                    f"use one file per image with one of {', '.join(READABLE_EXTENSIONS)}"))
            continue
        stem = file_stem(path)
        if stem in found:
            problems.append(Problem(str(path), f"stem {stem!r} also used by {found[stem].name}; keep one file per stem"))
            continue
        found[stem] = path
    return found


def scan_dataset(root: str | Path, folder: str) -> tuple[list[PairPaths], list[Problem]]:
    """Pairs sorted by stem, plus the layout problems (missing masks, orphans, unsupported files)."""
    base = Path(root) / folder
    problems: list[Problem] = []
    images = _files_by_stem(base / IMAGES_DIR, problems)
    masks = _files_by_stem(base / MASKS_DIR, problems)
    for stem in sorted(set(images) - set(masks)):
        problems.append(Problem(str(images[stem]), f"missing mask: no {MASKS_DIR}/{stem}.<ext>; add the mask or remove the image"))
    for stem in sorted(set(masks) - set(images)):
        problems.append(Problem(str(masks[stem]), f"mask without image: no {IMAGES_DIR}/{stem}.<ext>; add the image or remove the mask"))
    pairs = [PairPaths(folder, stem, images[stem], masks[stem]) for stem in sorted(set(images) & set(masks))]
    if not pairs and (base / IMAGES_DIR).is_dir() and (base / MASKS_DIR).is_dir():
        problems.append(Problem(str(base), "empty dataset: no image/mask pairs; add pairs or remove the folder"))
    return pairs, problems


def read_2d(path: str | Path, mask: bool = False) -> np.ndarray:
    """Decode a 2D image, or with ``mask`` a one-plane mask (``unisegdiff.io.read_mask``); a single-slice volume
    counts as 2D. Whether an axis is spatial comes from the file's geometry (a 20x64x3 volume is not RGB)."""
    record = read_mask(path) if mask else read_image(path)
    array, spatial_ndim = record.array, record.geometry.ndim
    if spatial_ndim == 3 and array.shape[0] == 1:
        array, spatial_ndim = array[0], 2
    if spatial_ndim != 2:
        raise DataError(path, f"3D data (shape {array.shape}) in a 2D dataset",
                        "slice volumes into 2D images first (e.g. `unisegdiff data import lits`) or use the 3D pipeline")
    check_finite_2d(array, str(path))
    return array


def load_pair(pair: PairPaths) -> tuple[np.ndarray, np.ndarray]:
    """(image (H, W[, C]) in its own type, mask (H, W) uint8 {0, 1}); ``DataError`` naming the file otherwise."""
    image = read_2d(pair.image)
    mask = binarize_mask(read_2d(pair.mask, mask=True), str(pair.mask))
    if image.shape[:2] != mask.shape:
        raise DataError(pair.mask, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from image size "
                        f"{image.shape[1]}x{image.shape[0]} ({pair.image.name})",
                        "masks must have their image's size; re-export the mask or resize it with nearest neighbour")
    return image, mask
