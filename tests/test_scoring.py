"""Tests of ``unisegdiff score``: known Dice/IoU on hand-made squares, ``_mask`` matching, HD95 and surface
Dice in mm on an anisotropic NIfTI, and the error cases (missing, unexpected, size, non-binary), inputs unchanged."""

import csv
import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from unisegdiff.scoring import main, score_folders


def _square(top, left, height, width, size=24, value=255):
    mask = np.zeros((size, size), np.uint8)
    mask[top:top + height, left:left + width] = value
    return mask


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _checksums(*folders):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(out_dir):
    with open(out_dir / "per_image.csv", newline="") as stream:
        return {row["case"]: row for row in csv.DictReader(stream)}


def _dice_iou(a, b):
    inter, total, union = (a & b).sum(), a.sum() + b.sum(), (a | b).sum()
    return 2 * inter / total, inter / union


@pytest.fixture
def png_folders(tmp_path):
    """GT a/b/c; predictions a_mask (with predict's _prob/_uncertainty beside it), b without suffix, c empty."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    shapes = {"a": (_square(2, 2, 10, 10), _square(4, 2, 8, 10)),      # 80 of 100 pixels inside
              "b": (_square(10, 10, 6, 6, value=1), _square(12, 10, 6, 6)),  # GT as {0, 1}; overlap 4 x 6
              "c": (_square(0, 0, 0, 0), _square(0, 0, 0, 0))}          # both empty
    for stem, (truth, prediction) in shapes.items():
        _png(gt / f"{stem}.png", truth)
    _png(pred / "a_mask.png", shapes["a"][1])
    _png(pred / "a_prob.png", (np.arange(24 * 24).reshape(24, 24) % 200).astype(np.uint8))  # not binary: must be skipped
    _png(pred / "a_uncertainty.png", np.full((24, 24), 37, np.uint8))
    _png(pred / "b.png", shapes["b"][1])
    _png(pred / "c_mask.png", shapes["c"][1])
    return pred, gt, {stem: _dice_iou(t > 0, p > 0) for stem, (t, p) in shapes.items() if stem != "c"}


def test_known_dice_and_iou_on_squares(png_folders, capsys):
    pred, gt, expected = png_folders
    before = _checksums(pred, gt)
    assert main([str(pred), str(gt)]) == 0
    assert expected["a"] == pytest.approx((160 / 180, 80 / 100)) and expected["b"] == pytest.approx((48 / 72, 24 / 48))
    rows = _rows(pred / "scores")
    assert set(rows) == {"a", "b", "c"} and rows["a"]["prediction"] == "a_mask.png" and rows["b"]["prediction"] == "b.png"
    for stem in ("a", "b"):
        assert (float(rows[stem]["dice"]), float(rows[stem]["iou"])) == pytest.approx(expected[stem], abs=1e-6)
        assert rows[stem]["hd95_unit"] == "px" and float(rows[stem]["hd95"]) > 0 and rows[stem]["surface_dice"] == ""
    assert (rows["c"]["dice"], rows["c"]["iou"], rows["c"]["hd95"]) == ("1.0", "1.0", "")  # both empty: metrics.py policy
    summary = json.loads((pred / "scores" / "summary.json").read_text())
    dice = [expected["a"][0], expected["b"][0], 1.0]
    assert summary["n"] == 3 and summary["missing"] == [] and summary["unexpected"] == []
    assert summary["metrics"]["dice"]["mean"] == pytest.approx(np.mean(dice), abs=1e-6)
    assert summary["metrics"]["dice"]["median"] == pytest.approx(expected["a"][0], abs=1e-6)
    low, high = summary["metrics"]["dice"]["ci95"]
    assert min(dice) - 1e-6 <= low <= np.mean(dice) <= high <= 1.0 + 1e-6
    assert summary["metrics"]["hd95"]["n"] == 2 and summary["metrics"]["surface_dice"]["n"] == 0
    assert "dice" in capsys.readouterr().out
    after = _checksums(pred, gt)
    assert {p: h for p, h in after.items() if "scores" not in p.parts} == before  # inputs untouched, GT gains nothing


def _nifti(path, z_range, spacing=(1.0, 1.0, 3.0)):
    volume = np.zeros((8, 16, 16), np.uint8)  # (z, y, x)
    volume[z_range[0]:z_range[1], 4:12, 4:12] = 1
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(spacing)  # SimpleITK order (x, y, z): 3 mm slices
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def test_nifti_hd95_and_surface_dice_in_mm_from_spacing(tmp_path):
    """Prediction = GT cube plus one 3 mm slice on top: HD95 is 3 mm (1 if spacing were ignored or misordered).
    Surface Dice at 2 mm by construction: the prediction's 8x8 top face (64 of 184 edge voxels) lies 3 mm from the
    GT surface; of the GT's 156 edge voxels only the 2x2 centre of its top face is > 2 mm from the prediction's
    surface. (120 + 152) / (184 + 156) = 0.8."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _nifti(gt / "vol.nii.gz", (2, 5))
    _nifti(pred / "vol_mask.nii.gz", (2, 6))
    row = score_folders(pred, gt).rows[0]
    assert row["case"] == "vol" and row["hd95_unit"] == "mm"
    assert row["hd95"] == pytest.approx(3.0)
    assert row["dice"] == pytest.approx(2 * 192 / (192 + 256))
    assert row["surface_dice"] == pytest.approx(272 / 340)
    assert score_folders(pred, gt, tolerance_mm=3.5).rows[0]["surface_dice"] == pytest.approx(1.0)


def test_missing_file_scores_the_rest_and_exits_1(png_folders, capsys):
    pred, gt, _ = png_folders
    _png(gt / "d.png", _square(2, 2, 4, 4))
    assert main([str(pred), str(gt)]) == 1
    captured = capsys.readouterr()
    assert "d.png" in captured.out and "--allow-missing" in captured.err
    summary = json.loads((pred / "scores" / "summary.json").read_text())
    assert summary["missing"] == ["d.png"] and summary["n"] == 3
    assert main([str(pred), str(gt), "--allow-missing"]) == 0


def test_unexpected_file_is_listed(png_folders, capsys):
    pred, gt, _ = png_folders
    _png(pred / "extra_mask.png", _square(2, 2, 4, 4))
    assert main([str(pred), str(gt)]) == 0
    assert "extra_mask.png" in capsys.readouterr().out
    assert json.loads((pred / "scores" / "summary.json").read_text())["unexpected"] == ["extra_mask.png"]


def test_size_mismatch_is_an_error_naming_both_files(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    _png(gt / "a.png", _square(4, 4, 8, 8, size=20))
    _png(pred / "a_mask.png", _square(2, 2, 4, 4, size=10))  # the same square at half resolution
    before = _checksums(pred, gt)
    assert main([str(pred), str(gt)]) == 2
    err = capsys.readouterr().err
    assert "a_mask.png" in err and "a.png" in err and "(10, 10)" in err and "(20, 20)" in err and "--resize nearest" in err
    assert not (pred / "scores").exists() and _checksums(pred, gt) == before
    assert main([str(pred), str(gt), "--resize", "nearest"]) == 0
    assert float(_rows(pred / "scores")["a"]["dice"]) == pytest.approx(1.0)


def test_non_binary_mask_is_an_error_naming_file_and_values(png_folders, capsys):
    pred, gt, _ = png_folders
    grey = _square(2, 2, 10, 10)
    grey[2:4, 2:12] = 128
    _png(pred / "a_mask.png", grey)
    assert main([str(pred), str(gt)]) == 2
    err = capsys.readouterr().err
    assert "a_mask.png" in err and "not binary" in err and "0, 128, 255" in err
    assert "Traceback" not in err and not (pred / "scores").exists()


@pytest.mark.parametrize("case", ["out_inside_gt", "duplicate_stem", "no_match", "no_folder"])
def test_user_errors_exit_2_naming_the_path(png_folders, capsys, case):
    pred, gt, _ = png_folders
    argv = [str(pred), str(gt)]
    if case == "out_inside_gt":
        argv += ["--out", str(gt / "scores")]
        named = str(gt / "scores")
    elif case == "duplicate_stem":
        _png(pred / "a.png", _square(2, 2, 4, 4))
        named = "a_mask.png"
    elif case == "no_match":
        (pred.parent / "nothing").mkdir()
        argv = [str(pred.parent / "nothing"), str(gt)]
        named = "no prediction matches"
    else:
        argv = [str(pred / "absent"), str(gt)]
        named = "absent"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err
    assert not (gt / "scores").exists() and not (pred.parent / "nothing" / "scores").exists()


def test_help_documents_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--allow-missing" in out and "exit codes" in out
