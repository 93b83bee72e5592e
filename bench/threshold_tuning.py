"""Does a threshold tuned on the validation split change the comparison? Rescores a benchmark run's checkpoints (no
training): every model's fused probability is thresholded at the value that maximises its mean validation Dice.

Every model gets the same treatment, the U-Net included (one threshold per model over all its validation images, from
a grid of 0.05 to 0.95), and the paired test difference to the U-Net is computed as in the report (per-image Dice
averaged over the seeds both have; BCa bootstrap CI, Wilcoxon). At 0.5 the rescored test Dice is checked image by
image against the result files. The test split never chooses anything.
Usage: python bench/threshold_tuning.py [--profile standard] [--seeds 1 2] -> reports/benchmark/threshold_tuning.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unisegdiff  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from unisegdiff.benchmark import Benchmark  # noqa: E402
from unisegdiff.benchmark.statistics import paired_difference  # noqa: E402
from unisegdiff.benchmark.trained import check_same_dice, image_generators, load_trained, profile_run  # noqa: E402
from unisegdiff.inference import inference_autocast  # noqa: E402
from unisegdiff.io import write_json_atomic, write_text_atomic  # noqa: E402
from unisegdiff.metrics import per_sample_metrics  # noqa: E402

GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95; 0.5 is on it
METHODS = ("unet", "staged_joint", "joint_image", "joint_e2e")


@torch.inference_mode()
def dice_by_threshold(model, dataset, precision: str, batch_size: int) -> dict[tuple[str, str], np.ndarray]:
    """``{(dataset, stem): Dice at every threshold of GRID}`` of the model's reported fused probability."""
    out: dict[tuple[str, str], np.ndarray] = {}
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        image = batch["image"].to(model.device)
        with inference_autocast(precision, image.device.type):
            prob = model.predict_fused(image, generator=image_generators(model, batch, image)).probability.float().cpu()
        per = torch.stack([per_sample_metrics((prob > t).float(), batch["mask"])[:, 0] for t in GRID], 1)
        for i, key in enumerate(zip(batch["dataset"], batch["stem"])):
            out[key] = per[i].numpy().astype(np.float64)
    return out


def best_threshold(val: dict[tuple[str, str], np.ndarray]) -> float:
    """The grid value with the highest mean validation Dice (ties: the one nearest 0.5)."""
    means = np.mean(np.stack(list(val.values())), 0)
    order = sorted(range(len(GRID)), key=lambda i: (-round(float(means[i]), 12), abs(GRID[i] - 0.5)))
    return GRID[order[0]]


def score_model(bench: Benchmark, method: str, seed: int) -> dict | None:
    model = load_trained(bench, method, seed)
    if model is None:
        return None
    p = bench.profile
    dm = bench.datamodule(seed)
    val = dice_by_threshold(model, dm.split_dataset("val"), p.precision, p.eval_batch_size)
    test = dice_by_threshold(model, dm.split_dataset("test"), p.precision, p.eval_batch_size)
    half = GRID.index(0.5)
    check_same_dice(bench, method, seed, {k: float(v[half]) for k, v in test.items()})
    t = best_threshold(val)
    print(f"[threshold] {method} seed {seed}: validation picks {t}")
    return {"threshold": t, "val_images": len(val), "test_at_half": {k: float(v[half]) for k, v in test.items()},
            "test_tuned": {k: float(v[GRID.index(t)]) for k, v in test.items()}}


def compare(scores: dict, method: str, field: str, reference: str = "unet") -> dict[str, dict]:
    """Per dataset: the paired difference of ``method`` and the reference at ``field`` (test_at_half / test_tuned),
    per-image Dice averaged over the seeds both have."""
    seeds = sorted(set(scores.get(method, {})) & set(scores.get(reference, {})))
    if not seeds:
        return {}
    keys = sorted(scores[reference][seeds[0]][field])
    out = {}
    for name in sorted({k[0] for k in keys}):
        ks = [k for k in keys if k[0] == name]
        a = [float(np.mean([scores[method][s][field][k] for s in seeds])) for k in ks]
        b = [float(np.mean([scores[reference][s][field][k] for s in seeds])) for k in ks]
        d = paired_difference(a, b)
        out[name] = {"n": len(ks), "seeds": seeds, "mean": d.mean, "ci": [d.ci_low, d.ci_high], "p": d.p_value,
                     "dice": float(np.mean(a)), "reference_dice": float(np.mean(b))}
    return out


def write(scores: dict, profile: str, out: Path, min_images: int) -> None:
    lines = [f"# Validation-tuned thresholds (profile `{profile}`, checkpoints of the benchmark run)", "",
             "Each model's threshold maximises its mean validation Dice over all its validation images (grid 0.05-0.95); "
             "the U-Net is tuned the same way. Differences to the U-Net in Dice points, per-image Dice averaged over the "
             "seeds both have, 95% BCa bootstrap CI and Wilcoxon p over test images. At 0.5 every rescored test image "
             "equals its result file.", "", f"Reproduce: `python bench/threshold_tuning.py --profile {profile}`", "",
             "| method | seed | threshold | validation images |", "|---|---|---|---|"]
    for method, per in scores.items():
        lines += [f"| {method} | {s} | {r['threshold']} | {r['val_images']} |" for s, r in sorted(per.items())]
    summary: dict = {"profile": profile, "thresholds": {m: {s: r["threshold"] for s, r in per.items()} for m, per in scores.items()},
                     "differences": {}}
    lines += ["", "| method | dataset | seeds | at 0.5: Dice (U-Net) | difference [95% CI] | tuned: Dice (U-Net) | difference [95% CI] |",
              "|---|---|---|---|---|---|---|"]
    for method in scores:
        if method == "unet":
            continue
        half, tuned = compare(scores, method, "test_at_half"), compare(scores, method, "test_tuned")
        summary["differences"][method] = {"at_half": half, "tuned": tuned}
        for name in half:
            if half[name]["n"] < min_images:
                continue
            h, t = half[name], tuned[name]
            cell = lambda r: f"{100 * r['mean']:+.1f} [{100 * r['ci'][0]:+.1f}, {100 * r['ci'][1]:+.1f}], p={r['p']:.2g}"  # noqa: E731
            lines.append(f"| {method} | {name} (n={h['n']}) | {', '.join(map(str, h['seeds']))} | {h['dice']:.3f} ({h['reference_dice']:.3f}) "
                         f"| {cell(h)} | {t['dice']:.3f} ({t['reference_dice']:.3f}) | {cell(t)} |")
    write_json_atomic(summary, out / "threshold_tuning.json")
    write_text_atomic("\n".join(lines) + "\n", out / "threshold_tuning.md")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="standard", help="a profile name of configs/benchmark/ or its YAML file")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the profile's seeds (those without checkpoints are skipped)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="the U-Net is always the reference")
    parser.add_argument("--out", help="default: the profile's report folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    profile, name, out, work = profile_run(args.profile, ROOT, args.out)
    scores: dict = {}
    for seed in args.seeds or profile.seeds:
        reference = out / "runs" / "unet" / f"seed{seed}.json"
        if not reference.is_file():
            print(f"[threshold] seed {seed}: no U-Net result {reference}, skipped")
            continue
        bench = Benchmark(profile, json.loads(reference.read_text())["settings"]["root"], out, work, name)
        for method in dict.fromkeys(["unet", *args.methods]):
            scored = score_model(bench, method, seed)
            if scored is not None:
                scores.setdefault(method, {})[seed] = scored
    if "unet" not in scores:
        raise SystemExit("no U-Net checkpoint with its result file: nothing to compare with")
    write(scores, name, out, profile.min_images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
