"""``data check`` reports every problem of a root in one run: several broken files of different kinds in one
root are each named, and an unexpected exception is reported instead of stopping the scan."""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import unisegdiff.data.checks as checks
from unisegdiff.data.checks import check_root
from unisegdiff.data.cli import main as data_cli


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _nifti(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


def _broken_root(root: Path) -> None:
    ds = root / "breast_us_busi"
    image, lesion = np.full((16, 16), 90, np.uint8), np.zeros((16, 16), np.uint8)
    lesion[4:9, 4:9] = 255
    for stem in ("good", "cut", "nan", "alpha", "thin", "loop", "bomb"):
        _png(ds / "masks" / f"{stem}.png", lesion)
    _png(ds / "images" / "good.png", image)
    _png(ds / "images" / "alpha.png", image)
    both = np.dstack([lesion, lesion, lesion, np.where(np.arange(16) < 3, 0, 255).astype(np.uint8)[None].repeat(16, 0)])
    _png(ds / "masks" / "alpha.png", both, "RGBA")
    _nifti(ds / "images" / "whole.nii", np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32))
    data = (ds / "images" / "whole.nii").read_bytes()
    (ds / "images" / ".whole.nii").write_bytes(data)  # hidden files are skipped
    (ds / "images" / "whole.nii").unlink()
    (ds / "images" / "cut.nii").write_bytes(data[: len(data) - 200])
    nan = np.zeros((16, 16), np.float32)
    nan[3, 3] = np.nan
    _nifti(ds / "images" / "nan.nii.gz", nan)
    _nifti(ds / "images" / "thin.nii.gz", np.zeros((20, 16, 3), np.float32))
    os.symlink(ds / "images" / "loop.png", ds / "images" / "loop.png")
    Image.new("1", (14000, 14000)).save(ds / "images" / "bomb.png")


def _checksums(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_every_broken_file_is_named_in_one_run(tmp_path: Path):
    _broken_root(tmp_path)
    before = _checksums(tmp_path)
    messages = [str(p) for p in check_root(tmp_path)]
    expected = ["cut.nii: NIfTI data is truncated", "nan.nii.gz: 1 NaN/Inf intensities",
                "alpha.png: mask varies in both its gray/RGB channels and its alpha channel",
                "thin.nii.gz: 3D data (shape (20, 16, 3)) in a 2D dataset", "loop.png: symlink loop",
                "bomb.png: image of 14000 x 14000 = 196,000,000 pixels exceeds the limit"]
    for fragment in expected:
        assert any(fragment in m for m in messages), (fragment, messages)
    assert not any("good.png" in m for m in messages), messages
    assert _checksums(tmp_path) == before


def test_an_unexpected_exception_is_reported_and_the_scan_goes_on(tmp_path: Path, monkeypatch, capsys):
    _broken_root(tmp_path)
    real = checks.load_pair

    def flaky(pair):
        if pair.stem == "good":
            raise MemoryError("out of memory decoding")
        return real(pair)

    monkeypatch.setattr(checks, "load_pair", flaky)
    messages = [str(p) for p in check_root(tmp_path)]
    assert any("good.png" in m and "unexpected MemoryError" in m and "out of memory decoding" in m for m in messages), messages
    assert any("bomb.png" in m for m in messages) and any("cut.nii" in m for m in messages)
    assert data_cli(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "loop.png" in out and "bomb.png" in out


@pytest.mark.parametrize("broken", ["registry", "listing"])
def test_a_failing_root_level_step_is_a_problem_not_a_traceback(tmp_path: Path, monkeypatch, broken: str):
    _png(tmp_path / "ds" / "images" / "a.png", np.zeros((4, 4), np.uint8))
    if broken == "registry":
        monkeypatch.setattr(checks, "load_registry", lambda registry: (_ for _ in ()).throw(OSError("registry unreadable")))
    else:
        monkeypatch.setattr(checks, "scan_dataset", lambda root, name: (_ for _ in ()).throw(PermissionError("denied")))
    messages = [str(p) for p in check_root(tmp_path)]
    assert any(("registry unreadable" if broken == "registry" else "denied") in m for m in messages), messages
