"""Guided vs unguided diffusion pretraining, from bench_anatomy.py result files: per probe column, both arms' mean +- std
over runs (pretraining seeds x probe seeds x folds), the paired gap with a 95% t-interval, and the gap in stds.

Usage: python bench/anatomy_guidance_gap.py reports/bench/anatomy_pretrain_seeds.json [more.json ...]  (prints markdown)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from scipy import stats

GUIDED, UNGUIDED = "diffusion + anatomy guidance", "diffusion"


def gap_rows(result: dict) -> list[dict]:
    """One row per probe column both arms have; runs pair by position (same pretraining seed, probe seed, fold)."""
    rows = []
    probes = result.get("probes", {})
    for column in probes.get(GUIDED, {}):
        if column not in probes.get(UNGUIDED, {}):
            continue
        guided, unguided = probes[GUIDED][column]["runs"], probes[UNGUIDED][column]["runs"]
        if len(guided) != len(unguided):
            raise ValueError(f"{column}: {len(guided)} guided runs vs {len(unguided)} unguided; they must pair one to one")
        diffs = [g - u for g, u in zip(guided, unguided)]
        n = len(diffs)
        mean = statistics.fmean(diffs)
        sd = statistics.stdev(diffs) if n > 1 else float("nan")
        half = stats.t.ppf(0.975, n - 1) * sd / n**0.5 if n > 1 else float("nan")
        arm_std = max(statistics.stdev(guided) if n > 1 else 0.0, statistics.stdev(unguided) if n > 1 else 0.0)
        rows.append({"column": column, "n": n, "guided": statistics.fmean(guided), "guided_std": statistics.stdev(guided) if n > 1 else 0.0,
                     "unguided": statistics.fmean(unguided), "unguided_std": statistics.stdev(unguided) if n > 1 else 0.0,
                     "gap": mean, "ci_low": mean - half, "ci_high": mean + half,
                     "gap_in_stds": mean / arm_std if arm_std > 0 else float("nan")})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="anatomy*.json files written by bench/bench_anatomy.py")
    args = parser.parse_args(argv)
    print("| result file | target | pretraining seeds x probe seeds | probe | guided | unguided | gap (points) | 95% t-CI | gap / larger std |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.results:
        path = Path(name)
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        result = json.loads(path.read_text())
        st = result["settings"]
        design = f"{len(st.get('pretrain_seeds', [0]))} x {len(st['seeds'])} x {st['folds']} fold"
        for r in gap_rows(result):
            print(f"| {path.name} | {st.get('pretrain_target', 'x0')} | {design} | {r['column']} | {r['guided']:.3f} +- {r['guided_std']:.3f} | "
                  f"{r['unguided']:.3f} +- {r['unguided_std']:.3f} | {100 * r['gap']:+.1f} | {100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f} | "
                  f"{r['gap_in_stds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
