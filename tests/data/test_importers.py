"""Importers: tiny official-layout fixtures -> canonical pairs, checked pair by pair; sources unchanged."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from unisegdiff.data.checks import check_root
from unisegdiff.data.cli import main as data_cli
from unisegdiff.data.errors import DataError
from unisegdiff.data.importers import import_busi, import_isic2018, import_kvasir, import_lgg, import_lits, import_tn3k, safe_stem
from unisegdiff.data.readers import read_image

RNG = np.random.default_rng(0)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    array = RNG.integers(0, 255, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(array).save(path)
    return array


def _mask(path: Path, shape: tuple[int, int], box: tuple[int, int, int, int], jpeg_noise: bool = False) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[box[0]:box[1], box[2]:box[3]] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = mask.copy()
    if jpeg_noise:  # what lossy masks look like: values near 0 and 255, not exactly
        stored = np.clip(stored.astype(int) + RNG.integers(-20, 20, shape), 0, 255).astype(np.uint8)
    Image.fromarray(stored).save(path)
    return mask


def _check_pair(dst: Path, dataset: str, stem: str, expected_image: np.ndarray | None, expected_mask: np.ndarray, image_ext: str = ".png"):
    image = read_image(dst / dataset / "images" / f"{stem}{image_ext}").array
    mask = read_image(dst / dataset / "masks" / f"{stem}.png").array
    if expected_image is not None:
        np.testing.assert_array_equal(image, expected_image)
    np.testing.assert_array_equal(mask, expected_mask)
    assert set(np.unique(mask)) <= {0, 255}


def test_safe_stem():
    assert safe_stem("benign (1)") == "benign_1"
    assert safe_stem("a b&c") == "a_b_c"


def test_busi_or_merges_masks_and_keeps_sources(tmp_path: Path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    base = src / "Dataset_BUSI_with_GT"
    img1 = _image(base / "benign" / "benign (1).png", (20, 24))
    m1 = _mask(base / "benign" / "benign (1)_mask.png", (20, 24), (2, 6, 2, 6))
    m2 = _mask(base / "benign" / "benign (1)_mask_1.png", (20, 24), (10, 14, 10, 14))
    img2 = _image(base / "malignant" / "malignant (12).png", (20, 24))
    m3 = _mask(base / "malignant" / "malignant (12)_mask.png", (20, 24), (5, 15, 5, 15))
    _image(base / "normal" / "normal (1).png", (20, 24))
    _mask(base / "normal" / "normal (1)_mask.png", (20, 24), (0, 0, 0, 0))
    _image(base / "benign" / "benign (2).png", (20, 24))  # no mask: skipped with a note
    before = _hashes(src)
    summary = import_busi(src, dst)
    assert _hashes(src) == before
    assert summary.pairs == 2 and summary.skipped == 1 and "benign (2).png" in summary.notes[0]
    _check_pair(dst, "breast_us_busi", "benign_1", img1, np.maximum(m1, m2))
    _check_pair(dst, "breast_us_busi", "malignant_12", img2, m3)
    assert check_root(dst) == []
    with pytest.raises(DataError, match="already holds 2 images"):
        import_busi(src, dst)
    assert import_busi(src, dst, include_normal=True, overwrite=True).pairs == 3


def test_isic2018_pairs_and_official_split(tmp_path: Path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    images, masks = {}, {}
    for split, stem in (("Training", "ISIC_0000001"), ("Training", "ISIC_0000002"), ("Validation", "ISIC_0000003")):
        images[stem] = _image(src / f"ISIC2018_Task1-2_{split}_Input" / f"{stem}.jpg", (18, 22, 3))
        masks[stem] = _mask(src / f"ISIC2018_Task1_{split}_GroundTruth" / f"{stem}_segmentation.png", (18, 22), (3, 9, 4, 12))
    (src / "ISIC2018_Task1-2_Training_Input" / "LICENSE.txt").write_text("license")
    before = _hashes(src)
    summary = import_isic2018(src, dst)
    assert _hashes(src) == before and summary.pairs == 3
    for stem in images:  # JPEG copied byte for byte
        copied = dst / "skin_dermoscopy_isic2018" / "images" / f"{stem}.jpg"
        split = "Validation" if stem.endswith("3") else "Training"
        assert copied.read_bytes() == (src / f"ISIC2018_Task1-2_{split}_Input" / f"{stem}.jpg").read_bytes()
        _check_pair(dst, "skin_dermoscopy_isic2018", stem, None, masks[stem], ".jpg")
    splits = json.loads((dst / "skin_dermoscopy_isic2018" / "splits.json").read_text())
    assert splits == {"train": ["ISIC_0000001", "ISIC_0000002"], "val": ["ISIC_0000003"]}


def test_kvasir_thresholds_noisy_jpeg_masks(tmp_path: Path):
    src, dst = tmp_path / "Kvasir-SEG", tmp_path / "dst"
    image = _image(src / "images" / "cju0abc.jpg", (16, 20, 3))
    mask = _mask(src / "masks" / "cju0abc.jpg", (16, 20), (4, 12, 5, 15), jpeg_noise=True)
    before = _hashes(src)
    assert import_kvasir(src, dst).pairs == 1
    assert _hashes(src) == before
    _check_pair(dst, "polyp_endoscopy_kvasir", "cju0abc", None, mask, ".jpg")
    assert read_image(dst / "polyp_endoscopy_kvasir" / "images" / "cju0abc.jpg").array.shape == image.shape


def test_tn3k_subsets_prefixed_with_split(tmp_path: Path):
    src, dst = tmp_path / "tn3k", tmp_path / "dst"
    expected = {}
    for subset in ("trainval", "test"):
        for number in ("0000", "0001"):
            img = _image(src / f"{subset}-image" / f"{number}.jpg", (12, 12))
            expected[f"{subset}_{number}"] = _mask(src / f"{subset}-mask" / f"{number}.jpg", (12, 12), (2, 8, 2, 8), jpeg_noise=True)
    before = _hashes(src)
    assert import_tn3k(src, dst).pairs == 4
    assert _hashes(src) == before
    for stem, mask in expected.items():
        _check_pair(dst, "thyroid_us_tg3k", stem, None, mask, ".jpg")
    splits = json.loads((dst / "thyroid_us_tg3k" / "splits.json").read_text())
    assert splits == {"train": ["trainval_0000", "trainval_0001"], "test": ["test_0000", "test_0001"]}


def test_lgg_tif_to_png_with_lesion_only_option(tmp_path: Path):
    src = tmp_path / "kaggle_3m"
    patient = "TCGA_CS_4941_19960909"
    img1 = _image(src / patient / f"{patient}_1.tif", (16, 16, 3))
    empty = _mask(src / patient / f"{patient}_1_mask.tif", (16, 16), (0, 0, 0, 0))
    img2 = _image(src / patient / f"{patient}_2.tif", (16, 16, 3))
    lesion = _mask(src / patient / f"{patient}_2_mask.tif", (16, 16), (3, 9, 3, 9))
    (src / "data.csv").write_text("a,b\n")
    before = _hashes(src)
    assert import_lgg(src, tmp_path / "all").pairs == 2
    _check_pair(tmp_path / "all", "brain_mri_lgg", f"{patient}_1", img1, empty)
    _check_pair(tmp_path / "all", "brain_mri_lgg", f"{patient}_2", img2, lesion)
    summary = import_lgg(src, tmp_path / "lesion", lesion_only=True)
    assert summary.pairs == 1 and "left out" in summary.notes[0]
    assert _hashes(src) == before


def test_lits_slices_windowed_with_stride_and_lesion_only(tmp_path: Path):
    src, dst = tmp_path / "lits", tmp_path / "dst"
    src.mkdir()
    volume = RNG.integers(-1000, 1000, (6, 10, 12)).astype(np.int16)
    labels = np.zeros((6, 10, 12), np.uint8)
    labels[:, 2:8, 2:8] = 1  # liver
    labels[2, 3:5, 3:5] = 2  # tumour on slices 2 and 4
    labels[4, 4:7, 4:7] = 2
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(src / "volume-7.nii"))
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(src / "segmentation-7.nii"))
    before = _hashes(src)
    summary = import_lits(src, dst, window=(-100, 200), lesion_only=True, stride=1)
    assert _hashes(src) == before
    assert summary.pairs == 2
    for z in (2, 4):
        windowed = np.round((np.clip(volume[z].astype(np.float32), -100, 200) + 100) / 300 * 255).astype(np.uint8)
        _check_pair(dst, "liver_ct_lits", f"volume_7_{z:04d}", windowed, (labels[z] == 2).astype(np.uint8) * 255)
    every_other = import_lits(src, tmp_path / "strided", lesion_only=False, stride=2)
    assert every_other.pairs == 3  # slices 0, 2, 4
    assert check_root(dst) == []


def test_import_command_prints_summary(tmp_path: Path, capsys):
    src = tmp_path / "Kvasir-SEG"
    _image(src / "images" / "a.jpg", (8, 8, 3))
    _mask(src / "masks" / "a.jpg", (8, 8), (2, 5, 2, 5))
    assert data_cli(["import", "kvasir", str(src), str(tmp_path / "out")]) == 0
    assert "kvasir: 1 pairs written" in capsys.readouterr().out
    assert data_cli(["import", "kvasir", str(src), str(tmp_path / "out")]) == 2  # refuses to mix with earlier output
    assert "--overwrite" in capsys.readouterr().err


def test_destination_inside_source_refused(tmp_path: Path):
    src = tmp_path / "Kvasir-SEG"
    _image(src / "images" / "a.jpg", (8, 8, 3))
    _mask(src / "masks" / "a.jpg", (8, 8), (2, 5, 2, 5))
    with pytest.raises(DataError, match="inside the source"):
        import_kvasir(src, src / "out")
