"""Reader hardening (issue 17): truncated NIfTI, NaN/Inf in every format, the pixel limit, spatial axes from
the geometry, symlink loops; each error names the file and the problem, and the input is never changed."""

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from unisegdiff.data.canonical import read_2d
from unisegdiff.io import DataError, Geometry, read_image, read_volume, write_image

HIPPOCAMPUS = "volumes/hippocampus_mri_msd/images/hippocampus_001.nii.gz"


def _volume(path: Path, array: np.ndarray) -> Path:
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def _truncated_copy(source: Path, target: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_truncated_nifti_is_refused(tmp_path: Path, ext: str):
    array = np.random.default_rng(0).normal(size=(20, 64, 64)).astype(np.float32)
    cut = _truncated_copy(_volume(tmp_path / f"whole{ext}", array), tmp_path / f"cut{ext}")
    before = _digest(cut)
    with pytest.raises(DataError, match=rf"cut{ext.replace('.', '[.]')}: NIfTI data is truncated"):
        read_image(cut)
    with pytest.raises(DataError, match="truncated"):
        read_volume(cut)
    assert _digest(cut) == before


def test_truncated_uncompressed_integer_nifti_is_refused_from_its_size(tmp_path: Path):
    whole = _volume(tmp_path / "labels.nii", np.ones((8, 16, 16), np.int16))
    cut = _truncated_copy(whole, tmp_path / "cut.nii", keep=0.9)
    with pytest.raises(DataError, match=r"cut\.nii: NIfTI data is truncated: the header declares 4,448 bytes \(16x16x8 int16\), the file holds 4,003"):
        read_image(cut)
    assert read_image(whole).array.sum() == 8 * 16 * 16


def test_truncated_copy_of_a_real_volume_is_refused(tmp_path: Path, shared_data: Path):
    cut = _truncated_copy(shared_data / HIPPOCAMPUS, tmp_path / "hippocampus_001.nii.gz", keep=0.7)
    with pytest.raises(DataError, match=r"hippocampus_001\.nii\.gz: NIfTI data is truncated"):
        read_volume(cut)
    assert read_volume(shared_data / HIPPOCAMPUS).GetSize()[2] > 1  # the whole file still reads


@pytest.mark.parametrize("ext", [".nii", ".nii.gz", ".mha", ".nrrd", ".tif"])
def test_nan_and_inf_are_refused_in_every_format(tmp_path: Path, ext: str):
    array = np.ones((6, 7), np.float32)
    array[1, 2], array[3, 4] = np.nan, np.inf
    path = tmp_path / f"bad{ext}"
    if ext == ".tif":
        Image.fromarray(array, mode="F").save(path)
    else:
        _volume(path, array)
    with pytest.raises(DataError, match=r"bad\.\w+(\.gz)?: 2 NaN/Inf intensities"):
        read_image(path)


def test_nan_in_a_nifti_volume_is_refused_by_the_3d_reader(tmp_path: Path):
    array = np.zeros((8, 8, 8), np.float32)
    array[2, 3, 4] = -np.inf
    with pytest.raises(DataError, match=r"case\.nii\.gz: 1 NaN/Inf intensities"):
        read_volume(_volume(tmp_path / "case.nii.gz", array))


def test_pixel_limit_refuses_a_decompression_bomb_naming_the_file(tmp_path: Path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(bomb)  # 24 kB on disk, 196 M pixels decoded
    with pytest.raises(DataError, match=r"bomb\.png: image of 14000 x 14000 = 196,000,000 pixels exceeds the limit of "
                       r"100,000,000 .*UNISEGDIFF_MAX_PIXELS"):
        read_image(bomb)


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch):
    small = write_image(np.zeros((30, 40), np.uint8), None, tmp_path / "small.png")
    volume = write_image(np.zeros((5, 6, 7), np.float32), Geometry.identity(3), tmp_path / "vol.nii.gz")
    with pytest.raises(DataError, match=r"small\.png: image of 40 x 30 = 1,200 pixels exceeds the limit of 1,000"):
        read_image(small, max_pixels=1000)
    monkeypatch.setenv("UNISEGDIFF_MAX_PIXELS", "1199")
    with pytest.raises(DataError, match="limit of 1,199"):
        read_image(small)
    monkeypatch.setenv("UNISEGDIFF_MAX_VOXELS", "209")
    with pytest.raises(DataError, match=r"vol\.nii\.gz: image of 7 x 6 x 5 = 210 pixels exceeds the limit of 209 .*UNISEGDIFF_MAX_VOXELS"):
        read_image(volume)
    monkeypatch.setenv("UNISEGDIFF_MAX_PIXELS", "1200")
    assert read_image(small).array.shape == (30, 40)


def test_thin_volume_is_a_volume_not_an_rgb_image(tmp_path: Path):
    array = np.zeros((20, 64, 3), np.float32)
    array[5:10, 10:20] = 1.0
    path = _volume(tmp_path / "thin.nii.gz", array)
    with pytest.raises(DataError, match=r"thin\.nii\.gz: 3D data \(shape \(20, 64, 3\)\) in a 2D dataset"):
        read_2d(path)
    record = read_image(path)
    assert record.geometry.ndim == 3 and not record.has_channels
    rgb = write_image(np.zeros((20, 64, 3), np.uint8), Geometry.identity(2), tmp_path / "rgb.nii.gz")
    assert read_image(rgb).has_channels and read_2d(rgb).shape == (20, 64, 3)  # a real 2D RGB image still reads


def test_symlink_loop_and_broken_link_are_reported_as_such(tmp_path: Path):
    os.symlink(tmp_path / "b.png", tmp_path / "a.png")
    os.symlink(tmp_path / "a.png", tmp_path / "b.png")
    with pytest.raises(DataError, match=r"a\.png: symlink loop"):
        read_image(tmp_path / "a.png")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    with pytest.raises(DataError, match=r"dangling\.png: broken symlink to .*gone\.png"):
        read_image(tmp_path / "dangling.png")
    with pytest.raises(DataError, match=r"missing\.png: file does not exist"):
        read_image(tmp_path / "missing.png")


def test_data_error_survives_pickling_and_a_bare_message():
    error = pickle.loads(pickle.dumps(DataError("x.png", "is broken", "fix it")))
    assert (str(error), error.path, error.problem) == ("x.png: is broken; fix it", "x.png", "is broken")
    assert str(DataError("x.png: is broken")) == "x.png: is broken"  # how a DataLoader worker re-raises it


def test_reading_a_dicom_series_keeps_the_process_locale(tmp_path):
    """ITK's DICOM writer (with ImagePositionPatient) resets the locale to "C", after which Python reads UTF-8 text
    as ASCII; reading a series must not do the same to our users (tests/conftest.py restores it after the writer)."""
    import locale

    import numpy as np
    import SimpleITK as sitk

    from unisegdiff.io import read_image

    saved = locale.setlocale(locale.LC_ALL)
    image = sitk.GetImageFromArray(np.zeros((2, 4, 4), np.int16))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    (tmp_path / "s").mkdir()
    for z in range(2):
        piece = image[:, :, z]
        piece.SetMetaData("0020|000e", "1.2.3")
        piece.SetMetaData("0020|0032", f"0\\0\\{z}")
        writer.SetFileName(str(tmp_path / "s" / f"{z}.dcm"))
        writer.Execute(piece)
    locale.setlocale(locale.LC_ALL, saved)
    before = locale.getpreferredencoding(False)
    assert read_image(tmp_path / "s").array.shape == (2, 4, 4)
    assert locale.getpreferredencoding(False) == before
