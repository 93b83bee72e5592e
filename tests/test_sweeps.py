"""Sweep dry-run: W&B sweep files parse, sampling follows the W&B parameter forms, and two tiny
trials run through the CLI with configs that carry the sampled values."""

import json
import random
from pathlib import Path

import pytest

from unisegdiff.sweeps import build_command, load_sweep, main, sample_parameter_sets, sample_value

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_files_are_valid(path):
    sweep = load_sweep(str(path))
    params = sample_parameter_sets(sweep, 3, seed=1)
    assert len(params) == 3 and all(set(p) == set(sweep["parameters"]) for p in params)
    args = build_command(sweep, params[0])
    assert args[0] in ("fit", "validate", "test") and all(f"--{k}=" in " ".join(args) for k in params[0])


def test_parameter_forms():
    rng = random.Random(0)
    for _ in range(50):
        assert 1e-4 <= sample_value({"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2}, rng) <= 1e-2
        assert sample_value({"min": 2, "max": 5}, rng) in {2, 3, 4, 5}
        assert sample_value({"values": ["a", "b"]}, rng) in {"a", "b"}
    grid = sample_parameter_sets({"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"values": [3, 4]}}}, 10)
    assert grid == [{"a": 1, "b": 3}, {"a": 1, "b": 4}, {"a": 2, "b": 3}, {"a": 2, "b": 4}]


def test_bad_sweep_files_are_named(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("method: random\nparameters: {lr: {values: [1]}}\ncommand: [unisegdiff, fit]\n")
    with pytest.raises(ValueError, match=r"s.yaml': 'command' must be a list containing '\$\{args\}'"):
        load_sweep(str(bad))
    bad.write_text("method: annealing\nparameters: {}\ncommand: []\n")
    with pytest.raises(ValueError, match="method must be one of"):
        load_sweep(str(bad))


def test_dry_run_two_tiny_trials_carry_sampled_values(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "dry"
    main([str(ROOT / "configs" / "sweeps" / "staged_plan.yaml"), "--trials", "2", "--steps", "1", "--out", str(out),
          "--model.init_args.condition_ckpt=null", "--model.init_args.condition_features=[4, 8, 8, 16, 16, 4]",
          "--model.init_args.denoiser_channels=[4, 8, 8, 16]", "--data.init_args.phantom_samples=6", "--data.init_args.image_size=32"])
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2
    for trial in results:
        assert trial["global_step"] == 1
        model_args = trial["config"]["model"]["init_args"]
        assert model_args["lr"] == pytest.approx(trial["params"]["model.init_args.lr"])
        assert model_args["stage_boundaries"] == trial["params"]["model.init_args.stage_boundaries"]
        assert model_args["sampling_steps"] == trial["params"]["model.init_args.sampling_steps"]
        assert model_args["num_samples"] == trial["params"]["model.init_args.num_samples"]
    assert results[0]["params"] != results[1]["params"]
