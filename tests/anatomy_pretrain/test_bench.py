"""The anatomy-pretraining benchmark end to end with its smoke profile: every arm gets a row with every probe column
(fine-tuning included) over pretraining and probe seeds, the ordering verdict is recorded, and --reuse refuses
checkpoints of another recipe."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_anatomy.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_anatomy", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_anatomy"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_anatomy_bench_smoke_writes_the_full_table(tmp_path):
    bench = load_bench()
    work, out = tmp_path / "work", tmp_path / "out"
    assert bench.main(["--profile", "smoke", "--skip-hippocampus", "--threads", "2", "--work", str(work), "--out", str(out),
                       "--pretrain-seeds", "0", "1"]) == 0
    results = json.loads((out / "anatomy.json").read_text())
    assert set(results["probes"]) == set(bench.ARMS)
    for name, cols in results["probes"].items():
        assert set(cols) == set(bench.PROBES), name
        for col in cols.values():  # pretrained arms: 2 pretraining seeds x 1 probe seed; random init: its probe seed only
            assert 0.0 <= col["mean"] <= 1.0 and len(col["runs"]) == (1 if name == "random init" else 2)
    assert (work / "fold0" / "pretrain_seed1" / "pretrain_diffusion.ckpt").is_file()
    assert isinstance(results["ordering_holds"], bool) and set(results["ordering_by_column"]) == set(bench.PROBES)
    means = [results["probes"][arm]["nonlinear"]["mean"] for arm in ("diffusion + anatomy guidance", "diffusion", "restorative", "random init")]
    assert results["ordering_holds"] == (means == sorted(means, reverse=True))  # recomputed here, not the bench's expression
    report = (out / "anatomy.md").read_text()
    assert "fine-tuning |" in report and report.count("| diffusion + anatomy guidance |") == 1
    # a changed recipe must not reuse the pretraining checkpoints already in --work
    with pytest.raises(ValueError, match="other settings"):
        bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out), "--reuse",
                    "--pretrain-decorrelation", "0.5"])
    with pytest.raises(ValueError, match="target"):  # the restorative arm is reused, the diffusion arms are refused
        bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out), "--reuse",
                    "--pretrain-target", "x0"])
    # --columns runs only the columns asked for, on the checkpoints already there
    out2 = tmp_path / "out2"
    assert bench.main(["--profile", "smoke", "--skip-hippocampus", "--work", str(work), "--out", str(out2), "--reuse",
                       "--columns", "nonlinear"]) == 0
    partial = json.loads((out2 / "anatomy.json").read_text())
    assert all(set(cols) == {"nonlinear"} for cols in partial["probes"].values())
    assert set(partial["ordering_by_column"]) == {"nonlinear"} and partial["settings"]["columns"] == ["nonlinear"]
    assert "| - | - | - |" in (out2 / "anatomy.md").read_text()
