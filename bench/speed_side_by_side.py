"""Staged sampling vs 1000-step DDPM, timed side by side in one process on the same test images, from the
eps and staged checkpoints that `make benchmark` wrote (no retraining). Writes speed_side_by_side.{json,md}.

Usage: python bench/speed_side_by_side.py [--bench reports/benchmark] [--per-dataset 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unisegdiff  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
import torch  # noqa: E402

from unisegdiff.benchmark.protocol import BenchProfile, _subset_loader, evaluate  # noqa: E402
from unisegdiff.callbacks import run_record, write_json_atomic  # noqa: E402
from unisegdiff.data import LesionDataModule  # noqa: E402
from unisegdiff.io import write_text_atomic  # noqa: E402
from unisegdiff.models import StagedDiffusionSegmenter  # noqa: E402


def load_staged(path: Path) -> StagedDiffusionSegmenter:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `make benchmark` first (it writes the eps and staged checkpoints)")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    hp = {k: v for k, v in blob["hyper_parameters"].items() if not k.startswith("_")}
    hp["condition_ckpt"] = None  # the condition network's weights are part of this checkpoint
    model = StagedDiffusionSegmenter(**hp)
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default=str(ROOT / "reports" / "benchmark"), help="a `make benchmark` output folder")
    parser.add_argument("--per-dataset", type=int, default=None, help="test images per dataset (default: the profile's)")
    args = parser.parse_args()
    bench = Path(args.bench)
    results = json.loads((bench / "results.json").read_text())
    profile = BenchProfile(**results["profile"])
    per_dataset = args.per_dataset or profile.ddpm_subset_per_dataset
    datasets = results.get("datasets") or [s.split(":")[0] for s in results["splits"].splitlines() if ":" in s]
    dm = LesionDataModule(root=os.environ.get("UNISEGDIFF_DATA"), datasets=datasets, image_size=profile.image_size,
                          batch_size=profile.batch_size, num_workers=0, seed=results["seed"], max_per_dataset=profile.max_per_dataset)
    dm.setup("test")
    subset = _subset_loader(dm.split_dataset("test"), per_dataset, profile.eval_batch_size)
    staged, eps = load_staged(bench / "checkpoints" / "staged" / "last.ckpt"), load_staged(bench / "checkpoints" / "eps" / "last.ckpt")
    names = dm.dataset_names
    m_st, s_st, n = evaluate(staged, subset, names, "staged", profile.precision, min_seconds=profile.speed_min_seconds)
    m_dd, s_dd, _ = evaluate(eps, subset, names, "eps DDPM-1000", profile.precision, scheduler=eps.scheduler.set_timesteps(1000, "ddpm"))
    out = {"images": n, "per_dataset": per_dataset, "num_samples": profile.num_samples, "precision": profile.precision,
           "staged_calls": staged.network_calls, "staged_seconds_per_image": s_st, "ddpm_seconds_per_image": s_dd,
           "speedup": s_dd / max(s_st, 1e-9), "staged_dice": m_st["macro/dice"], "ddpm_dice": m_dd["macro/dice"],
           "staged_metrics": m_st, "ddpm_metrics": m_dd, "run_record": run_record(results["seed"])}
    write_json_atomic(out, bench / "speed_side_by_side.json")
    md = ["# Staged vs eps DDPM-1000, side by side", "",
          f"{n} test images ({per_dataset} per dataset), {profile.num_samples} samples each, precision `{profile.precision}`, "
          f"checkpoints from `{bench}`; each method warmed up once before timing; staged timed over repeated passes (>= {profile.speed_min_seconds:.0f} s in all).", "",
          "| sampler | calls / sample | seconds / image | Dice (macro over these images) |", "|---|---|---|---|",
          f"| staged | {staged.network_calls} | {s_st:.3f} | {m_st['macro/dice']:.3f} |",
          f"| eps DDPM-1000 | 1000 | {s_dd:.3f} | {m_dd['macro/dice']:.3f} |", "", f"Speed-up: **{out['speedup']:.0f}x**.", ""]
    write_text_atomic("\n".join(md), bench / "speed_side_by_side.md")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
