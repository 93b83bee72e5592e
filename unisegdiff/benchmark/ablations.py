"""The ablation table of a benchmark: every diffusion method and inference setting against the U-Net, with
the condition network alone beside it (does phase 2 improve on the segmentation it starts from?).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from unisegdiff.benchmark.statistics import paired_difference
from unisegdiff.io import write_text_atomic


def _by_image(rows: list[dict], key: str = "dice") -> dict[tuple[str, str], float]:
    return {(r["dataset"], r["stem"]): float(r[key]) for r in rows if r.get(key) is not None}


def ablation_rows(results: list[dict], reference: str = "unet", min_images: int = 30, n_resamples: int = 4000) -> list[dict[str, Any]]:
    """One row per (method, inference setting, seed, dataset with >= ``min_images`` test images)."""
    refs = {r["seed"]: _by_image(r["images"]) for r in results if r["method"] == reference}
    rows = []
    for run in sorted(results, key=lambda r: (r["method"], r["seed"])):
        if run["method"] == reference or run["seed"] not in refs:
            continue
        settings = {"plan": {"images": run["images"], "calls": run["inference"]["calls_per_sample"],
                             "samples": run["inference"]["num_samples"], "seconds": run["inference"]["seconds_per_image"]}}
        for name, v in run.get("inference_variants", {}).items():
            settings[name] = {"images": v["images"], "calls": v["calls_per_sample"], "samples": v["num_samples"], "seconds": v["seconds_per_image"]}
        condition = _by_image(run["images"], "condition_dice")
        for setting, s in settings.items():
            scores = _by_image(s["images"])
            for dataset in sorted({d for d, _ in scores}):
                keys = sorted(k for k in scores if k[0] == dataset and k in refs[run["seed"]])
                if len(keys) < min_images:
                    continue
                ours, ref = np.array([scores[k] for k in keys]), np.array([refs[run["seed"]][k] for k in keys])
                diff = paired_difference(ours, ref, n_resamples=n_resamples)
                cond = [condition[k] for k in keys if k in condition]
                rows.append({"method": run["method"], "setting": setting, "seed": run["seed"], "dataset": dataset, "n": len(keys),
                             "calls": s["calls"], "samples": s["samples"], "seconds_per_image": s["seconds"],
                             "train_steps": run["train"]["steps"], "train_seconds": run["train"]["seconds"],
                             "dice": float(ours.mean()), "reference_dice": float(ref.mean()),
                             "condition_dice": float(np.mean(cond)) if cond else None,
                             "difference": diff.mean, "ci_low": diff.ci_low, "ci_high": diff.ci_high, "p_value": diff.p_value})
    return rows


def write_ablations(result_files: list[Path], out: Path, reference: str = "unet", min_images: int = 30) -> Path:
    """``ablation_table.md`` and ``ablation_table.json`` in ``out`` from the benchmark's result files (a hand-written
    ``ablations.md`` summary may sit beside them; it is never overwritten)."""
    results = [json.loads(Path(p).read_text(encoding="utf-8")) for p in result_files]
    rows = ablation_rows(results, reference, min_images)
    write_text_atomic(json.dumps(rows, indent=1), out / "ablation_table.json")
    lines = ["# Ablations against the U-Net", "",
             f"Every trained diffusion method and inference setting on the datasets with >= {min_images} test images, paired with "
             f"the `{reference}` of the same seed on the same images (difference in Dice points, 95% paired-bootstrap CI, "
             "Wilcoxon p). `condition` is the method's own condition network alone: a diffusion model below it degrades the "
             "segmentation it starts from. `plan` is the recipe's own inference (its per-stage steps, its K).", "",
             "| method | inference | seed | dataset | n | calls x K | s / image | train steps | Dice | condition | U-Net | difference | 95% CI | p |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cond = "-" if r["condition_dice"] is None else f"{r['condition_dice']:.3f}"
        lines.append(f"| {r['method']} | {r['setting']} | {r['seed']} | {r['dataset']} | {r['n']} | {r['calls']} x {r['samples']} | "
                     f"{r['seconds_per_image']:.3f} | {r['train_steps']} | {r['dice']:.3f} | {cond} | {r['reference_dice']:.3f} | "
                     f"{100 * r['difference']:+.1f} | {100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f} | {r['p_value']:.2g} |")
    if not rows:
        lines.append(f"| (no dataset with >= {min_images} test images, or no `{reference}` run of the same seed) |" + " |" * 13)
    return write_text_atomic("\n".join(lines) + "\n", out / "ablation_table.md")
