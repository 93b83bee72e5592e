"""Atomic writes: permissions follow the umask (not tempfile's 0600), a failed write leaves nothing behind,
no clobbering without overwrite, writers see the target's extension; the repository has one rename site."""

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from unisegdiff.io import Geometry, read_image, write_atomic, write_bytes_atomic, write_image, write_json_atomic

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_outputs_get_normal_permissions_from_the_umask(tmp_path: Path, umask_022):
    raw = write_bytes_atomic(b"abc", tmp_path / "raw.bin")
    png = write_image(np.zeros((4, 4), np.uint8), None, tmp_path / "mask.png")
    nii = write_image(np.zeros((3, 4, 4), np.float32), Geometry.identity(3), tmp_path / "prob.nii.gz")
    assert [_mode(p) for p in (raw, png, nii)] == [0o644] * 3
    os.umask(0o077)
    assert _mode(write_json_atomic({"a": 1}, tmp_path / "private.json")) == 0o600


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path):
    path = write_bytes_atomic(b"old", tmp_path / "out.txt")

    def half_then_fail(temp: Path) -> None:
        temp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_no_overwrite_refuses_and_names_the_file(tmp_path: Path):
    path = write_bytes_atomic(b"first", tmp_path / "a.bin")
    with pytest.raises(FileExistsError, match=r"a\.bin: already exists"):
        write_bytes_atomic(b"second", path)
    with pytest.raises(FileExistsError, match=r"b\.bin: already exists"):  # a file that appears while writing
        write_atomic(tmp_path / "b.bin", lambda temp: (temp.write_bytes(b"x"), (tmp_path / "b.bin").write_bytes(b"raced")),
                     overwrite=False)
    assert path.read_bytes() == b"first" and (tmp_path / "b.bin").read_bytes() == b"raced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_writer_callback_sees_the_target_extension(tmp_path: Path):
    image = sitk.GetImageFromArray(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    path = write_atomic(tmp_path / "sub" / "vol.nii.gz", lambda temp: sitk.WriteImage(image, str(temp)))
    assert path.read_bytes()[:2] == b"\x1f\x8b"  # gzip: SimpleITK chose the format from the temp name
    np.testing.assert_array_equal(read_image(path).array, np.arange(24).reshape(2, 3, 4))


def test_one_rename_site_in_the_repository():
    sites = [f"{p.relative_to(REPO)}:{n}" for folder in ("unisegdiff", "anatomy_pretrain", "bench")
             for p in (REPO / folder).rglob("*.py") for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"os\.replace", line)]
    assert len(sites) == 1 and sites[0].startswith("unisegdiff/io/atomic.py:"), sites
