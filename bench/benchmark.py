"""`make benchmark`: train each method once as a unified model over the datasets found under
UNISEGDIFF_DATA and write reports/benchmark/ (results.csv, results.json, README.md, PNG plots)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unisegdiff  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from unisegdiff.benchmark import BenchProfile, run_benchmark  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick", help="quick (CPU) | full (GPU) | path to a profile YAML")
    parser.add_argument("--data", default=os.environ.get("UNISEGDIFF_DATA"), help="canonical data root (default: $UNISEGDIFF_DATA)")
    parser.add_argument("--datasets", nargs="*", default=None, help="subset of registry names (default: the six benchmark sets)")
    parser.add_argument("--out", default=str(ROOT / "reports" / "benchmark"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=["unet", "eps", "staged"])
    args = parser.parse_args()
    profile_path = Path(args.profile) if args.profile.endswith(".yaml") else ROOT / "configs" / "benchmark" / f"{args.profile}.yaml"
    profile = BenchProfile.from_yaml(profile_path)
    results = run_benchmark(args.data, args.datasets, profile, Path(args.out), seed=args.seed, profile_name=profile_path.stem, methods=tuple(args.methods))
    for r in results:
        print(f"{r.method:>24}: macro Dice {r.metrics.get('macro/dice', float('nan')):.3f}  calls {r.calls_per_sample}  {r.infer_seconds_per_image:.3f} s/image")
    print(f"report: {args.out}/README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
