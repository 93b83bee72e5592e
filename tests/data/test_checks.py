"""Bad input gives clear errors naming the file, and `check` reports every problem in one run."""

from pathlib import Path

import numpy as np
import pytest

from unisegdiff.data.canonical import PairPaths, load_pair, read_2d
from unisegdiff.data.checks import check_root
from unisegdiff.data.cli import main as data_cli
from unisegdiff.data.datamodule import LesionDataModule
from unisegdiff.data.errors import DataError
from unisegdiff.data.preprocess import prepare_image
from unisegdiff.data.readers import Geometry, write_image


def _pair(folder: Path, stem: str, image: np.ndarray, mask: np.ndarray, image_ext: str = ".png") -> PairPaths:
    write_image(image, Geometry.identity(2), folder / "images" / f"{stem}{image_ext}")
    write_image(mask, Geometry.identity(2), folder / "masks" / f"{stem}.png")
    return PairPaths(folder.name, stem, folder / "images" / f"{stem}{image_ext}", folder / "masks" / f"{stem}.png")


def _good(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).integers(0, 255, (size, size), dtype=np.uint8)
    mask = np.zeros((size, size), np.uint8)
    mask[4:9, 4:9] = 255
    return image, mask


def test_good_pair_loads_as_binary(tmp_path: Path):
    pair = _pair(tmp_path / "ds", "ok", *_good())
    image, mask = load_pair(pair)
    assert image.shape == (16, 16) and set(np.unique(mask)) == {0, 1}


def test_size_mismatch_names_mask_and_image(tmp_path: Path):
    image, _ = _good(16)
    pair = _pair(tmp_path / "ds", "a", image, np.zeros((12, 16), np.uint8))
    with pytest.raises(DataError, match=r"masks/a\.png: mask size 16x12 differs from image size 16x16"):
        load_pair(pair)


def test_three_level_mask_rejected(tmp_path: Path):
    image, mask = _good()
    mask[0, 0] = 128
    pair = _pair(tmp_path / "ds", "levels", image, mask)
    with pytest.raises(DataError, match=r"masks/levels\.png: mask is not binary: values \{0, 128, 255\}"):
        load_pair(pair)


def test_nan_and_3d_rejected_with_file_name(tmp_path: Path):
    nan_image = np.full((8, 8), np.nan, np.float32)
    write_image(nan_image, Geometry.identity(2), tmp_path / "nan.mha")
    with pytest.raises(DataError, match=r"nan\.mha: 64 NaN/Inf intensities"):
        read_2d(tmp_path / "nan.mha")
    write_image(np.zeros((5, 8, 8), np.float32), Geometry.identity(3), tmp_path / "vol.nii.gz")
    with pytest.raises(DataError, match=r"vol\.nii\.gz: 3D data .* in a 2D dataset"):
        read_2d(tmp_path / "vol.nii.gz")
    with pytest.raises(DataError, match="NaN/Inf"):
        prepare_image(np.array([[0.0, np.inf], [1.0, 2.0]], np.float32), "mr", 8)


def _broken_root(root: Path) -> None:
    ds = root / "breast_us_busi"
    image, mask = _good()
    _pair(ds, "good", image, mask)
    _pair(ds, "mismatch", image, np.zeros((10, 10), np.uint8))
    levels = mask.copy()
    levels[0, 0] = 128
    _pair(ds, "levels", image, levels)
    write_image(image, None, ds / "images" / "nomask.png")
    (ds / "images" / "notes.txt").write_text("not an image")
    truncated = _pair(ds, "truncated", image, mask).image
    truncated.write_bytes(truncated.read_bytes()[:50])
    (root / "empty_set" / "images").mkdir(parents=True)
    (root / "empty_set" / "masks").mkdir(parents=True)


def test_check_root_reports_every_problem(tmp_path: Path):
    _broken_root(tmp_path)
    messages = [str(p) for p in check_root(tmp_path)]
    expected = ["mismatch.png: mask size", "levels.png: mask is not binary", "nomask.png: missing mask",
                "notes.txt: unsupported entry", "truncated.png: cannot decode", "empty_set: empty dataset"]
    for fragment in expected:
        assert any(fragment in m for m in messages), (fragment, messages)


def test_check_command_prints_problems_and_fails(tmp_path: Path, capsys):
    _broken_root(tmp_path)
    assert data_cli(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "levels.png" in out and "nomask.png" in out and "problem(s) found" in out
    clean = tmp_path / "clean"
    _pair(clean / "breast_us_busi", "a", *_good())
    assert data_cli(["check", str(clean)]) == 0


def test_datamodule_refuses_broken_root_and_empty_root(tmp_path: Path):
    _broken_root(tmp_path)
    with pytest.raises(DataError, match=r"(?s)layout problem.*nomask\.png"):
        LesionDataModule(root=str(tmp_path), num_workers=0).setup("fit")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"nothing: no dataset folders"):
        LesionDataModule(root=str(tmp_path / "nothing"), num_workers=0).setup("fit")


def test_datamodule_names_unloadable_files(tmp_path: Path):
    ds = tmp_path / "breast_us_busi"
    image, mask = _good()
    for i in range(4):
        _pair(ds, f"s{i}", image, mask)
    levels = mask.copy()
    levels[0, 0] = 7
    _pair(ds, "s4", image, levels)
    module = LesionDataModule(root=str(tmp_path), num_workers=0, image_size=16, val_fraction=0.2, test_fraction=0.2, seed=0)
    with pytest.raises(DataError, match=r"s4\.png: mask is not binary"):
        for split in ("train", "val", "test"):
            module.split_dataset(split)


def test_too_small_dataset_and_unknown_selection(tmp_path: Path):
    _pair(tmp_path / "thyroid_us_tg3k", "only", *_good())
    with pytest.raises(DataError, match=r"thyroid_us_tg3k: only 1 pairs"):
        LesionDataModule(root=str(tmp_path), num_workers=0).splits()
    with pytest.raises(DataError, match=r"datasets \['nope'\] not found"):
        LesionDataModule(root=str(tmp_path), datasets=["nope"], num_workers=0).splits()


def test_empty_split_is_a_clear_error():
    module = LesionDataModule(image_size=16, phantom_samples=5, test_fraction=0, num_workers=0)
    with pytest.raises(DataError, match="test split is empty; raise test_fraction"):
        module.test_dataloader()
    assert LesionDataModule(image_size=16, phantom_samples=5, val_fraction=0, num_workers=0).val_dataloader() == []
