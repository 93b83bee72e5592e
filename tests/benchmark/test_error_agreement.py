"""bench/error_agreement.py: per-image agreement of each method with the U-Net, checked on a hand-made per_image.csv."""

import csv

import pytest


def _write(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "seed", "source", "dataset", "stem", "dice", "iou", "hd95", "uncertainty"])
        for method, seed, dataset, dices in rows:
            for i, d in enumerate(dices):
                writer.writerow([method, seed, "test", dataset, f"img{i}", d, "", "", ""])
            writer.writerow([method, seed, "external", dataset, "other", 0.0, "", "", ""])  # not a test row: ignored


def test_agreement_numbers_match_hand_computed_values(tmp_path, bench_script):
    agreement = bench_script("error_agreement")
    unet0, unet1 = [0.5, 0.6, 0.7, 0.8], [0.6, 0.5, 0.9, 0.7]
    head0 = [0.5, 0.6, 0.7, 0.9]  # same ranking as unet0, better on the last image only
    path = tmp_path / "per_image.csv"
    _write(path, [("unet", 0, "big", unet0), ("unet", 1, "big", unet1), ("head", 0, "big", head0),
                  ("unet", 0, "tiny", [0.1, 0.2])])
    rows = {r["method"]: r for r in agreement.rows(agreement.read_dice(path), min_images=3)}
    assert set(rows) == {"unet (other seed)", "head"}  # tiny has 2 < 3 images: left out
    head = rows["head"]
    assert head["pairs"] == 1 and head["n"] == 4 and head["spearman"] == pytest.approx(1.0)
    assert head["mean_abs_diff"] == pytest.approx(100 * 0.1 / 4)
    assert head["oracle_gain"] == pytest.approx(100 * 0.1 / 4)
    other = rows["unet (other seed)"]
    # both orders of the seed pair: r is symmetric; |diff| = (.1 + .1 + .2 + .1) / 4; oracle gain averages the two orders
    assert other["pairs"] == 2 and other["spearman"] == pytest.approx(0.6)
    assert other["mean_abs_diff"] == pytest.approx(12.5)
    best = [0.6, 0.6, 0.9, 0.8]
    gains = [sum(best) / 4 - sum(unet1) / 4, sum(best) / 4 - sum(unet0) / 4]
    assert other["oracle_gain"] == pytest.approx(100 * sum(gains) / 2)
    out = tmp_path / "agreement.md"
    assert agreement.main([str(path), "--min-images", "3", "--out", str(out)]) == 0
    assert "| big | head | 1 | 4 | 1.000 | 2.5 | +2.5 |" in out.read_text()


def test_bad_inputs_name_the_file(tmp_path, bench_script):
    agreement = bench_script("error_agreement")
    with pytest.raises(SystemExit, match="no such file"):
        agreement.read_dice(tmp_path / "absent.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("method,seed\nunet,0\n")
    with pytest.raises(SystemExit, match=r"bad.csv: missing columns \['dataset', 'dice', 'source', 'stem'\]"):
        agreement.read_dice(bad)
