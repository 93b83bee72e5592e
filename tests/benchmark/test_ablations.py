"""The ablation table: every diffusion method and inference setting paired with the U-Net of the same seed,
the condition network alone beside it; only datasets with enough test images."""

from unisegdiff.benchmark.ablations import ablation_rows, write_ablations


def _run(method, seed, dice, condition=None, variants=None, dataset="big", n=30):
    images = [{"dataset": dataset, "stem": f"s{i}", "dice": dice + 0.001 * (i % 3)} for i in range(n)]
    if condition is not None:
        for row in images:
            row["condition_dice"] = condition
    return {"method": method, "seed": seed, "images": images, "train": {"steps": 600, "seconds": 10.0},
            "inference": {"calls_per_sample": 8, "num_samples": 2, "seconds_per_image": 0.3}, "inference_variants": variants or {}}


def test_rows_pair_each_setting_with_the_unet_of_the_same_seed(tmp_path):
    one_call = {"images": [{"dataset": "big", "stem": f"s{i}", "dice": 0.70} for i in range(30)], "calls_per_sample": 1,
                "num_samples": 2, "seconds_per_image": 0.05}
    results = [_run("unet", 0, 0.60), _run("unet", 1, 0.50), _run("staged", 0, 0.65, condition=0.62, variants={"one_call": one_call}),
               _run("staged", 2, 0.9), _run("staged", 0, 0.1, dataset="small", n=4) | {"method": "eps"}]
    rows = ablation_rows(results, n_resamples=500)
    assert [(r["method"], r["setting"], r["seed"]) for r in rows] == [("staged", "plan", 0), ("staged", "one_call", 0)]  # seed 2 has no U-Net; eps: n<30
    plan, fast = rows
    assert abs(plan["difference"] - 0.05) < 1e-9 and plan["ci_low"] - 1e-9 <= 0.05 <= plan["ci_high"] + 1e-9 and plan["condition_dice"] == 0.62
    expected = 0.70 - sum(0.60 + 0.001 * (i % 3) for i in range(30)) / 30  # hand: 0.70 - 0.601
    assert abs(fast["difference"] - expected) < 1e-9 and fast["calls"] == 1 and fast["n"] == 30
    text = write_ablations_from(results, tmp_path)  # ablation_table.md
    assert "| staged | one_call | 0 | big | 30 | 1 x 2 |" in text and "+9.9" in text


def write_ablations_from(results, tmp_path):
    import json

    files = []
    for i, r in enumerate(results):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(r))
        files.append(path)
    return write_ablations(files, tmp_path).read_text()


def test_the_generated_table_never_overwrites_a_hand_written_summary(tmp_path):
    (tmp_path / "ablations.md").write_text("# my summary\n")
    path = write_ablations_from([_run("unet", 0, 0.6), _run("staged", 0, 0.65)], tmp_path)
    assert (tmp_path / "ablations.md").read_text() == "# my summary\n" and "| staged | plan |" in path
