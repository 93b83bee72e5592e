"""How independent is a method's opinion from the U-Net's? Per-image Dice agreement from a benchmark's per_image.csv:
Spearman r, mean |difference| and the best-of-two oracle gain, for each method against the U-Net of the same seed and
for the U-Net against its own other seeds (the reference: what a second, independently trained U-Net adds).

Usage: python bench/error_agreement.py reports/benchmark/per_image.csv [--min-images 30] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

REFERENCE = "unet"


def read_dice(path: Path) -> dict[tuple[str, int, str], dict[str, float]]:
    """(method, seed, dataset) -> {image stem: Dice} of the test rows of a per_image.csv."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file; give the per_image.csv of a benchmark report (bench/benchmark.py writes it)")
    table: dict[tuple[str, int, str], dict[str, float]] = defaultdict(dict)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"method", "seed", "source", "dataset", "stem", "dice"} - set(reader.fieldnames or [])
        if missing:
            raise SystemExit(f"{path}: missing columns {sorted(missing)}; is this a benchmark per_image.csv?")
        for row in reader:
            if row["source"] == "test" and row["dice"] not in ("", "nan"):
                table[(row["method"], int(row["seed"]), row["dataset"])][row["stem"]] = float(row["dice"])
    return table


def agreement(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Spearman r, mean |a - b| and the oracle gain mean(max(a, b)) - mean(b), in Dice points, over the common images."""
    stems = sorted(set(a) & set(b))
    x, y = np.array([a[s] for s in stems]), np.array([b[s] for s in stems])
    r = float(stats.spearmanr(x, y).statistic) if len(stems) > 2 else math.nan
    return {"n": len(stems), "spearman": r, "mean_abs_diff": 100 * float(np.abs(x - y).mean()),
            "oracle_gain": 100 * float(np.maximum(x, y).mean() - y.mean())}


def rows(table, min_images: int) -> list[dict]:
    """One row per (dataset, pair kind, method): the mean over seeds (method vs the same seed's U-Net) or over seed pairs."""
    out = []
    datasets = sorted({d for (_, _, d) in table})
    methods = sorted({m for (m, _, _) in table} - {REFERENCE})
    for dataset in datasets:
        ref_seeds = sorted(s for (m, s, d) in table if m == REFERENCE and d == dataset)
        if not ref_seeds or len(table[(REFERENCE, ref_seeds[0], dataset)]) < min_images:
            continue
        pairs = {f"{REFERENCE} (other seed)": [(table[(REFERENCE, s, dataset)], table[(REFERENCE, t, dataset)])
                                               for s, t in itertools.permutations(ref_seeds, 2)]}
        for m in methods:
            pairs[m] = [(table[(m, s, dataset)], table[(REFERENCE, s, dataset)]) for s in ref_seeds if (m, s, dataset) in table]
        for name, items in pairs.items():
            if not items:
                continue
            scores = [agreement(a, b) for a, b in items]
            out.append({"dataset": dataset, "method": name, "pairs": len(items), "n": scores[0]["n"],
                        **{k: float(np.mean([s[k] for s in scores])) for k in ("spearman", "mean_abs_diff", "oracle_gain")}})
    return out


def markdown(table_rows: list[dict], source: Path) -> str:
    lines = [f"# Per-image agreement with the U-Net (`{source}`)", "",
             "Each method's per-image test Dice against the U-Net of the same seed (mean over seeds); the first row of each "
             "dataset is a U-Net against the U-Nets of its other seeds. Spearman r: how alike the two rank the images; "
             "mean |diff| and the oracle gain (mean of the better of the two per image, minus the U-Net's mean) in Dice "
             "points: how much a second opinion could add at most. A head that only repeats the U-Net has r near 1 and an "
             "oracle gain near 0.", "",
             "| dataset | against the U-Net | pairs | images | Spearman r | mean abs diff | oracle gain |", "|---|---|---|---|---|---|---|"]
    for r in table_rows:
        lines.append(f"| {r['dataset']} | {r['method']} | {r['pairs']} | {r['n']} | {r['spearman']:.3f} | "
                     f"{r['mean_abs_diff']:.1f} | +{r['oracle_gain']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("per_image", type=Path, help="a benchmark report's per_image.csv")
    parser.add_argument("--min-images", type=int, default=30, help="datasets with fewer test images are left out")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown here (atomically) instead of printing it")
    args = parser.parse_args(argv)
    text = markdown(rows(read_dice(args.per_image), args.min_images), args.per_image)
    if args.out is None:
        sys.stdout.write(text)
    else:
        from unisegdiff.io import write_text_atomic

        write_text_atomic(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
