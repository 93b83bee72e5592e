"""Masks with an alpha channel: alpha is used when it is the only varying channel (a lesion drawn in alpha),
anything ambiguous is refused naming the file; a lesion is never silently dropped."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unisegdiff.data.canonical import PairPaths, load_pair
from unisegdiff.io import DataError, read_mask

BUSI = "lesion2d/breast_us_busi"


def _pair(folder: Path, mask_pixels: np.ndarray, mode: str) -> PairPaths:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(mask_pixels.shape[:2], 90, np.uint8)).save(folder / "images" / "case.png")
    Image.fromarray(mask_pixels, mode=mode).save(folder / "masks" / "case.png")
    return PairPaths(folder.name, "case", folder / "images" / "case.png", folder / "masks" / "case.png")


def _lesion(shape=(24, 32)) -> np.ndarray:
    lesion = np.zeros(shape, np.uint8)
    lesion[5:15, 8:20] = 255
    return lesion


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_lesion_in_alpha_is_used(tmp_path: Path, mode: str):
    lesion = _lesion()
    color = np.zeros((*lesion.shape, 3 if mode == "RGBA" else 1), np.uint8)  # black everywhere, lesion only in alpha
    _, mask = load_pair(_pair(tmp_path / "ds", np.dstack([color, lesion]), mode))
    assert int(mask.sum()) == 120 and mask[10, 10] == 1 and mask[0, 0] == 0


def test_opaque_rgba_mask_reads_its_gray(tmp_path: Path):
    lesion = _lesion()
    rgba = np.dstack([lesion, lesion, lesion, np.full(lesion.shape, 255, np.uint8)])
    _, mask = load_pair(_pair(tmp_path / "ds", rgba, "RGBA"))
    np.testing.assert_array_equal(mask, lesion // 255)


def test_alpha_and_gray_both_varying_is_refused(tmp_path: Path):
    lesion = _lesion()
    alpha = np.full(lesion.shape, 255, np.uint8)
    alpha[:, :4] = 0  # a transparent border beside a gray lesion: which one is the mask?
    pair = _pair(tmp_path / "ds", np.dstack([lesion, lesion, lesion, alpha]), "RGBA")
    with pytest.raises(DataError, match=r"masks/case\.png: mask varies in both its gray/RGB channels and its alpha channel"):
        load_pair(pair)


def test_coloured_mask_is_refused(tmp_path: Path):
    lesion = _lesion()
    rgb = np.dstack([lesion, np.zeros_like(lesion), np.zeros_like(lesion)])
    with pytest.raises(DataError, match=r"case\.png: mask has colours"):
        read_mask(_pair(tmp_path / "ds", rgb, "RGB").mask)


def test_real_mask_moved_into_alpha_keeps_every_lesion_pixel(tmp_path: Path, shared_data: Path):
    source = sorted((shared_data / BUSI / "masks").glob("*.png"))[0]
    gray = np.array(Image.open(source).convert("L"))
    lesion_pixels = int((gray > 0).sum())
    assert lesion_pixels > 0
    rgba = np.dstack([np.zeros((*gray.shape, 3), np.uint8), gray])
    _, mask = load_pair(_pair(tmp_path / "ds", rgba, "RGBA"))
    assert int(mask.sum()) == lesion_pixels
