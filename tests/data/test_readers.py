"""Readers and atomic writers: geometry round trips, formats, refusals and clear errors."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from unisegdiff.data.errors import DataError
from unisegdiff.data.readers import Geometry, file_stem, read_image, write_image

GEOMETRY_3D = Geometry((0.7, 0.8, 2.5), (10.0, -20.0, 30.0), (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))


@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_volume_geometry_round_trip(tmp_path: Path, ext: str):
    array = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    path = write_image(array, GEOMETRY_3D, tmp_path / f"volume{ext}")
    record = read_image(path)
    np.testing.assert_array_equal(record.array, array)
    np.testing.assert_allclose(record.geometry.spacing, GEOMETRY_3D.spacing, rtol=1e-6)
    np.testing.assert_allclose(record.geometry.origin, GEOMETRY_3D.origin, rtol=1e-6)
    np.testing.assert_allclose(record.geometry.direction, GEOMETRY_3D.direction, atol=1e-6)
    assert record.path == str(path)


def test_2d_nifti_and_rgb_nifti_round_trip(tmp_path: Path):
    geometry = Geometry((0.5, 0.25), (1.0, 2.0), (1.0, 0.0, 0.0, 1.0))
    gray = np.arange(30, dtype=np.int16).reshape(5, 6)
    rgb = np.random.default_rng(1).integers(0, 255, (5, 6, 3), dtype=np.uint8)
    for name, array in (("gray.nii.gz", gray), ("rgb.nii.gz", rgb)):
        record = read_image(write_image(array, geometry, tmp_path / name))
        np.testing.assert_array_equal(record.array, array)
        np.testing.assert_allclose(record.geometry.spacing, geometry.spacing)


def test_pil_formats_shapes_and_identity_geometry(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 255, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "a.tif")
    Image.fromarray(rgb[..., 0]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "a.png").array.shape == (7, 9, 3)
    assert read_image(tmp_path / "a.jpg").array.shape == (7, 9, 3)
    assert read_image(tmp_path / "a.tif").array.shape == (7, 9)
    assert read_image(tmp_path / "p.png").array.shape == (7, 9, 3)
    geometry = read_image(tmp_path / "a.png").geometry
    assert geometry == Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))


def test_dicom_series_folder(tmp_path: Path):
    array = np.random.default_rng(0).integers(0, 1000, (3, 8, 9)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.5, 0.5, 2.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series = tmp_path / "series"
    series.mkdir()
    for z in range(array.shape[0]):
        piece = image[:, :, z]
        piece.SetMetaData("0020|000e", "1.2.826.0.1.3680043.2.1125.1")  # series instance UID
        piece.SetMetaData("0020|0032", f"0\\0\\{2.0 * z}")
        piece.SetMetaData("0020|0013", str(z))
        writer.SetFileName(str(series / f"slice{z}.dcm"))
        writer.Execute(piece)
    record = read_image(series)
    assert record.array.shape == (3, 8, 9)
    np.testing.assert_array_equal(record.array, array)


def test_write_refuses_overwrite_and_is_atomic(tmp_path: Path):
    path = tmp_path / "mask.png"
    write_image(np.zeros((4, 4), np.uint8), None, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="mask.png"):
        write_image(np.ones((4, 4), np.uint8), None, path)
    assert path.read_bytes() == before
    with pytest.raises(DataError, match="mask.png"):  # a failing write leaves the old file intact
        write_image(np.ones((4, 4), np.float64), None, path, overwrite=True)
    assert path.read_bytes() == before
    write_image(np.full((4, 4), 255, np.uint8), None, path, overwrite=True)
    assert read_image(path).array.max() == 255
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.png"]  # no temp files left behind


def test_read_errors_name_the_file(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"notes\.txt.*unsupported extension"):
        read_image(tmp_path / "notes.txt")
    png = tmp_path / "cut.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(DataError, match=r"cut\.png.*truncated"):
        read_image(png)
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"bad\.nii\.gz"):
        read_image(tmp_path / "bad.nii.gz")
    with pytest.raises(DataError, match=r"missing\.png.*does not exist"):
        read_image(tmp_path / "missing.png")
    assert file_stem("a/b/case.nii.gz") == "case"
