"""The benchmark runner end to end on two phantom datasets with a tiny profile: tables, CSV, JSON
and figures are written, every method has a row per dataset, and the DDPM-1000 comparison runs."""

import csv
import json

import pytest
from PIL import Image

from unisegdiff.benchmark import BenchProfile, run_benchmark


@pytest.mark.slow
def test_benchmark_writes_complete_report(tmp_path):
    profile = BenchProfile(image_size=32, batch_size=4, num_workers=0, unet_steps=2, diffusion_steps=2, num_samples=1,
                           eval_batch_size=8, ddpm_subset_per_dataset=1, profile_points=3, max_per_dataset=12,
                           precision="bf16-mixed", speed_min_seconds=0.5)
    stale = tmp_path / "checkpoints" / "unet" / "last.ckpt"  # from an earlier run: must not condition this one
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    run_benchmark(None, ["phantom_ct", "phantom_mr"], profile, tmp_path, seed=0, profile_name="tiny")
    assert stale.read_bytes() != b"stale" and not list(stale.parent.glob("last-v*.ckpt"))
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    methods = {r["method"] for r in rows}
    assert methods == {"unet", "eps_ddim50", "staged", "eps_ddpm1000 (subset)"}
    assert {r["dataset"] for r in rows} == {"phantom_ct", "phantom_mr", "macro"}
    calls = {r["method"]: int(r["calls_per_sample"]) for r in rows}
    assert calls == {"unet": 1, "eps_ddim50": 50, "staged": 8, "eps_ddpm1000 (subset)": 1000}
    report = (tmp_path / "README.md").read_text()
    assert "| phantom_ct |" in report and "| macro |" in report and "Speed-up" in report
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["speed"]["speedup"] > 1 and data["run_record"]["packages"]["torch"]
    assert data["profile"]["precision"] == "bf16-mixed" and data["wall_seconds"] > 0 and "wall time" in report
    for png in ["dice_by_dataset.png", "timestep_profiles.png", "overlays_phantom_ct.png"]:
        assert Image.open(tmp_path / png).size[0] > 100


def test_profile_rejects_unknown_keys_and_precisions(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_size: 64\nsteps: 3\n")
    with pytest.raises(ValueError, match="unknown keys"):
        BenchProfile.from_yaml(bad)
    with pytest.raises(ValueError, match="precision 'fp8'"):
        run_benchmark(None, ["phantom_ct"], BenchProfile(precision="fp8"), tmp_path / "out")
