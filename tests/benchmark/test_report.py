"""The benchmark report on a fixed table of synthetic results (2 methods x 2 seeds x 2 datasets of 4 and 31
images, one external root): results.json checked against hand-computed numbers, the verdict, CSV and figures."""

import csv
import json
import math

import numpy as np
import pytest
import scipy.stats

from unisegdiff.benchmark.report import load_results, write_report

N_LARGE = 31
SMALL = {"unet": {0: [0.5, 0.6, 0.7, 0.8], 1: [0.6, 0.7, 0.8, 0.9]},      # seed means 0.65, 0.75
         "staged": {0: [0.7, 0.65, 0.6, 0.9], 1: [0.7, 0.65, 0.7, 0.9]}}  # seed means 0.7125, 0.7375
# seed-averaged small: unet [0.55, 0.65, 0.75, 0.85], staged [0.7, 0.65, 0.65, 0.9] -> staged - unet
# [0.15, 0, -0.10, 0.05]: 2 wins, 1 tie, 1 loss, mean 0.025
NOISE = [0.01 * (i % 3 - 1) for i in range(N_LARGE)]  # sums to -0.01 (11 x -0.01, 10 x 0, 10 x +0.01)
PIXEL = {"unet": {0: (0.05, 0.70), 1: (0.07, 0.80)}, "staged": {0: (0.02, 0.85), 1: (0.04, 0.87)}}  # (ece, auroc)


def large_dice(method, seed, offsets):
    """unet: 0.40 + 0.01 i (seed 0), 0.42 + 0.01 i (seed 1); staged: unet + offsets[seed] + NOISE[i]."""
    unet = [0.40 + 0.02 * seed + 0.01 * i for i in range(N_LARGE)]
    return unet if method == "unet" else [u + offsets[seed] + NOISE[i] for i, u in enumerate(unet)]


def reliability(scale):
    count = [0.0] * 15
    count[0], count[14] = 100.0 * scale, 50.0 * scale
    mean_probability = [math.nan] * 15
    mean_probability[0], mean_probability[14] = 0.02, 0.97
    positive_fraction = [math.nan] * 15
    positive_fraction[0], positive_fraction[14] = 0.01, 0.9
    return {"bin_edges": list(np.linspace(0, 1, 16)), "count": count, "mean_probability": mean_probability,
            "positive_fraction": positive_fraction}


def rows(dataset, dice):
    # uncertainty 1 - dice: the least accurate images are the most uncertain
    return [{"dataset": dataset, "stem": f"{dataset}_{i:02d}", "dice": d, "iou": d / (2 - d),
             "hd95": None if i == 0 else 10.0 * (i + 1), "uncertainty": 1 - d} for i, d in enumerate(dice)]


def result(method, seed, offsets=(0.04, 0.06), steps=None):
    ece, auroc = PIXEL[method][seed]
    pixel = {ds: {"ece": ece, "uncertainty_auroc": auroc, "pixels": 1000, "error_pixels": 100, "images": n,
                  "reliability": reliability(seed + 1)} for ds, n in (("small", 4), ("large", N_LARGE))}
    train = {"steps": 1200, "seconds": 100.0 + 10 * seed, "batch_size": 8}
    if method == "staged":
        train = {"steps": 1100, "phase1_steps": 600, "phase2_steps": 500, "seconds": 150.0 + 10 * seed, "batch_size": 8}
    if steps is not None:
        train["steps"] = steps
    external = {"hospital_b": {"root": "/data/b", "images": rows("ext", SMALL[method][seed][:3]), "pixel": {}}}
    return {"schema": 1, "method": method, "seed": seed, "settings": {"budget_steps": 1200, "method": method},
            "train": train, "inference": {"calls_per_sample": 1 if method == "unet" else 8, "num_samples": 1 if method == "unet" else 2,
                                          "seconds_per_image": 0.01 if method == "unet" else 0.05, "images": 35},
            "images": rows("small", SMALL[method][seed]) + rows("large", large_dice(method, seed, offsets)),
            "pixel": pixel, "external": external, "precision": "32-true",
            "run_record": {"cpu_model": "Test CPU 9000", "threads": 2, "packages": {"torch": "2.13.0"}, "git_commit": "abc123"}}


def results_set(**kwargs):
    return [result(m, s, **kwargs) for m in ("unet", "staged") for s in (0, 1)]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    paths = write_report(results_set(), out, "standard", compare=("staged",), n_resamples=2000)
    return out, paths, json.loads((out / "results.json").read_text())


def test_seed_summaries_and_honest_macro(report):
    _, _, res = report
    assert res["profile"] == "standard" and res["methods"] == {"unet": [0, 1], "staged": [0, 1]}
    unet, staged = res["test"]["methods"]["unet"], res["test"]["methods"]["staged"]
    assert unet["datasets"]["small"]["dice"] == pytest.approx({"mean": 0.70, "std": 0.1 / math.sqrt(2), "n": 2})
    assert staged["datasets"]["small"]["dice"] == pytest.approx({"mean": 0.725, "std": 0.025 / math.sqrt(2), "n": 2})
    assert unet["datasets"]["large"]["dice"] == pytest.approx({"mean": 0.56, "std": 0.02 / math.sqrt(2), "n": 2})
    assert staged["datasets"]["large"]["dice"]["mean"] == pytest.approx(0.61 - 0.01 / 31)
    assert staged["datasets"]["large"]["dice"]["std"] == pytest.approx(0.04 / math.sqrt(2))
    # HD95 leaves out the first image of each dataset (null): small seeds both average 20, 30, 40
    assert unet["datasets"]["small"]["hd95"] == pytest.approx({"mean": 30.0, "std": 0.0, "n": 2})
    assert unet["datasets"]["large"]["ece"] == pytest.approx({"mean": 0.06, "std": 0.02 / math.sqrt(2), "n": 2})
    assert staged["datasets"]["large"]["uncertainty_auroc"]["mean"] == pytest.approx(0.86)
    # the honest macro uses only the 31-image dataset, not (0.70 + 0.56) / 2
    assert unet["macro_dice"]["value"] == pytest.approx(0.56) and unet["macro_dice"]["used"] == ["large"]
    assert unet["macro_dice"]["excluded"] == {"small": "n<30"}
    assert staged["macro_dice"]["value"] == pytest.approx(0.61 - 0.01 / 31)
    assert res["test"]["datasets"] == {"small": {"n": 4, "mark": "n<30"}, "large": {"n": 31, "mark": ""}}


def test_risk_coverage_kept_means(report):
    rc = report[2]["test"]["methods"]["unet"]["datasets"]["large"]["risk_coverage"]
    # 10%: floor(3.1) = 3 most uncertain (lowest Dice) dropped: seed 0 keeps 0.43..0.70 (mean 0.565), seed 1 0.585
    assert rc["drop_0.1"]["mean"] == pytest.approx(0.575)
    # 20%: floor(6.2) = 6 dropped: 0.58 and 0.60
    assert rc["drop_0.2"]["mean"] == pytest.approx(0.59)
    small = report[2]["test"]["methods"]["unet"]["datasets"]["small"]["risk_coverage"]
    assert small["drop_0.2"]["mean"] == pytest.approx(0.70)  # floor(0.8) = 0: nothing dropped from 4 images


def test_paired_difference_uses_the_seed_average_per_image(report):
    paired = report[2]["test"]["paired_dice"]["staged"]
    assert paired["seeds"] == [0, 1]
    small = paired["datasets"]["small"]
    assert small["mean"] == pytest.approx(0.025) and (small["wins"], small["ties"], small["losses"]) == (2, 1, 1)
    large = paired["datasets"]["large"]
    assert large["n"] == 31 and large["mean"] == pytest.approx(0.05 - 0.01 / 31)  # seed 0 alone: 0.04, seed 1 alone: 0.06
    assert (large["wins"], large["ties"], large["losses"]) == (31, 0, 0)
    assert large["p_value"] == pytest.approx(scipy.stats.wilcoxon(np.round(np.add(0.05, NOISE), 12)).pvalue)
    assert 0 < large["ci_low"] < large["mean"] < large["ci_high"]
    assert paired["macro"]["value"] == pytest.approx(0.05 - 0.01 / 31) and paired["macro"]["used"] == ["large"]


def test_cost_flags_unequal_steps_and_reads_the_run_record(report):
    res = report[2]
    assert res["cost"]["staged"]["train_steps"] == 1100 and res["cost"]["unet"]["train_steps"] == 1200
    assert res["cost"]["staged"]["train_seconds"] == pytest.approx(155.0)
    assert res["cost"]["staged"]["inference_seconds_per_image_multiple_of_reference"] == pytest.approx(5.0)
    assert res["equal_train_steps"]["value"] is False and res["cost"]["staged"]["equal_train_steps_to_reference"] is False
    assert res["run_record"] == {"cpu_model": "Test CPU 9000", "threads": 2, "torch": "2.13.0", "precision": "32-true",
                                 "git_commit": "abc123", "git_dirty": None, "platform": None, "cpu_models": ["Test CPU 9000"],
                                 "cpu_model_of_runs": {m: {"0": "Test CPU 9000", "1": "Test CPU 9000"} for m in ("unet", "staged")},
                                 "other_cpu_than_reference": []}
    # reliability pooled over 2 datasets x 2 seeds: counts 100 x (1 + 1 + 2 + 2) in the first bin; empty bins null
    pooled = res["reliability"]["unet"]
    assert pooled["count"][0] == 600 and pooled["mean_probability"][0] == pytest.approx(0.02) and pooled["mean_probability"][5] is None


def test_equal_steps_flag_true_when_steps_match(tmp_path):
    paths = write_report(results_set(steps=1200), tmp_path, "standard", compare=("staged",), n_resamples=2000)
    assert json.loads(paths["results.json"].read_text())["equal_train_steps"]["value"] is True
    assert "at equal compute (1200 train steps each)" in paths["README.md"].read_text()


def test_readme_verdict_for_a_clear_win(report):
    text = (report[0] / "README.md").read_text()
    assert text.startswith("# Benchmark report (profile `standard`)\n\n## Verdict\n\n- On large the two-phase staged model is better "
                           "than the U-Net by 5.0 Dice points (95% CI ")
    assert "Wilcoxon p<0.001, 2 seeds) at UNEQUAL compute" in text
    assert "Its uncertainty AUROC is higher (better) than the U-Net's (0.860 vs 0.750) and its ECE lower (better) (0.030 vs 0.060)." in text
    assert "On small" not in text.split("## Test set")[0]  # 4 images: no verdict, only the tables
    assert "2 seeds: the CIs cover image sampling only, not training noise" in text
    assert "seeds so far: staged 2, unet 2)" in text
    assert "small (n=4, **n<30**)" in text and "Test CPU 9000" in text and "## External set `hospital_b`" in text


def test_readme_verdict_for_an_indistinguishable_difference(tmp_path):
    runs = results_set()
    for run in runs:  # staged = unet + 0.02 on even images, - 0.02 on odd ones: mean +0.02 / 31
        if run["method"] == "staged":
            unet = large_dice("unet", run["seed"], None)
            for i, row in enumerate(r for r in run["images"] if r["dataset"] == "large"):
                row["dice"] = unet[i] + (0.02 if i % 2 == 0 else -0.02)
    res = json.loads(write_report(runs, tmp_path, "standard", compare=("staged",), n_resamples=2000)["results.json"].read_text())
    large = res["test"]["paired_dice"]["staged"]["datasets"]["large"]
    assert large["mean"] == pytest.approx(0.02 / 31) and large["ci_low"] < 0 < large["ci_high"]
    text = (tmp_path / "README.md").read_text()
    assert "- On large the two-phase staged model is not distinguishable from the U-Net (+0.1 Dice points, 95% CI " in text


def test_csv_and_figures(report):
    out, paths, _ = report
    with open(out / "per_image.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 2 * 2 * (4 + 31 + 3)  # methods x seeds x (test images + external images)
    assert {r["source"] for r in table} == {"test", "hospital_b"} and table[0]["hd95"] == ""
    for name in ("dice_by_dataset.png", "paired_differences.png", "reliability.png", "risk_coverage.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert name in (out / "README.md").read_text()
    assert not list(out.glob(".tmp-*"))


def test_a_file_of_another_schema_is_named(tmp_path):
    path = tmp_path / "runs" / "unet" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**result("unet", 0), "schema": 2}))
    with pytest.raises(ValueError, match=rf"{path}: result file of schema 2; this report reads schema 1"):
        write_report([path], tmp_path / "out", "standard")


def test_two_files_of_one_method_and_seed_are_named(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for p in (first, second):
        p.write_text(json.dumps(result("unet", 1)))
    with pytest.raises(ValueError, match=rf"{second}: a second result for method 'unet' seed 1 \(the first is {first}\)"):
        load_results([first, second])


def test_results_that_score_other_images_are_named(tmp_path):
    runs = results_set()
    runs[3]["images"] = runs[3]["images"][:-1]
    with pytest.raises(ValueError, match=r"result #3 \(a dict\): its test images differ from those of result #0"):
        write_report(runs, tmp_path, "standard", n_resamples=2000)


def test_one_seed_walltime_row_and_speed_subset(tmp_path):
    runs = [result("unet", 0, steps=1100), result("staged", 0), {**result("staged", 0), "method": "eps"},
            {**result("unet", 0, steps=1500), "method": "unet_walltime"}]
    runs[1]["speed_subset"] = {"images": 6, "seconds_per_image": 0.3, "calls_per_sample": 8, "dice": 0.55}
    runs[2]["speed_subset_ddpm1000"] = {"images": 6, "seconds_per_image": 6.0, "calls_per_sample": 1000, "dice": 0.5}
    res = json.loads(write_report(runs, tmp_path, "quick", n_resamples=2000)["results.json"].read_text())
    assert res["speed_subset"]["staged_speedup_vs_eps_ddpm1000"] == pytest.approx(20.0)
    # unet_walltime trains for the staged model's wall time: not part of the equal-steps flag
    assert res["equal_train_steps"] == {"value": True, "methods": ["unet", "staged", "eps"], "note": res["equal_train_steps"]["note"]}
    assert res["cost"]["unet_walltime"]["equal_train_steps_to_reference"] is False
    assert res["test"]["methods"]["unet"]["datasets"]["large"]["dice"]["std"] is None  # one seed: no std, not 0
    text = (tmp_path / "README.md").read_text()
    assert "**1 seed: the CIs cover image sampling only, not training noise**" in text
    assert "- On large the U-Net trained for the two-phase staged model's wall time is not distinguishable from the U-Net (+0.0 Dice points" in text
    assert "at UNEQUAL compute (the U-Net: 1100 train steps" in text and "The two-phase staged model is 20.0× faster per image than eps DDPM-1000" in text


def test_runs_on_another_cpu_than_the_reference_of_their_seed_are_flagged(tmp_path):
    runs = results_set()
    runs[3]["run_record"] = {**runs[3]["run_record"], "cpu_model": "Other CPU 1"}  # staged seed 1
    res = json.loads(write_report(runs, tmp_path, "standard", compare=("staged",), n_resamples=200)["results.json"].read_text())
    assert res["run_record"]["other_cpu_than_reference"] == ["staged seed 1"]
    assert res["run_record"]["cpu_models"] == ["Other CPU 1", "Test CPU 9000"]
    text = (tmp_path / "README.md").read_text()
    assert "**Mixed machines**: staged seed 1 ran on another CPU model than unet of the same seed" in text
    assert "- CPU models: Other CPU 1 (staged 1); Test CPU 9000 (unet 0, unet 1, staged 0)" in text
