"""Which uncertainty map finds a segmenter's errors: the diffusion heads' fused entropy, their sample spread, their
disagreement with the condition network, or a second U-Net seed's disagreement (a 2-member deep ensemble)?

Scores the checkpoints a benchmark run left in runs/benchmark_<profile>/ (no training) on the same test split. Every
map of a method is scored against that method's own reported segmentation (its recipe's K samples and plan, mean
fusion, threshold 0.5; checked image by image against its result file), so the error pixels are fixed and only the
map changes: pooled pixel AUROC per dataset, the per-image AUROC paired against the method's reported entropy
(bootstrap CI and Wilcoxon, the benchmark's statistics), and Dice kept at 80% coverage. The K-sample maps draw from
the same per-image seeds as the reported samples, so their first samples are the reported ones.
Usage: python bench/uncertainty_sources.py --seed 1 [--profile standard] -> reports/benchmark/uncertainty_sources.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unisegdiff  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from unisegdiff.benchmark import Benchmark  # noqa: E402
from unisegdiff.benchmark.calibration import PixelCalibration  # noqa: E402
from unisegdiff.benchmark.statistics import paired_difference, risk_coverage  # noqa: E402
from unisegdiff.inference import inference_autocast  # noqa: E402
from unisegdiff.benchmark.trained import check_same_dice, image_generators, load_trained, profile_run  # noqa: E402
from unisegdiff.io import write_json_atomic, write_text_atomic  # noqa: E402
from unisegdiff.metrics import per_sample_metrics  # noqa: E402

HEADS = ("staged_joint", "joint_image", "joint_e2e")  # one-call diffusion heads with a jointly trained condition network


def entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.float().clamp(1e-6, 1 - 1e-6)
    return -(p * p.log2() + (1 - p) * (1 - p).log2())


def load(bench: Benchmark, method: str, seed: int) -> L.LightningModule | None:
    """``load_trained``, refused unless the reported map is the mean-fused entropy these maps are compared with."""
    model = load_trained(bench, method, seed)
    hp = model.hparams if model is not None else {}
    if model is not None and hasattr(model, "condition_probability") and (
            hp.get("condition_weight", 0.0) or hp.fusion != "mean" or hp.uncertainty != "entropy"):
        raise SystemExit(f"{method}: reports condition_weight {hp.get('condition_weight', 0.0)}, fusion {hp.fusion!r}, uncertainty "
                         f"{hp.uncertainty!r}; this script compares maps against the samples' mean and its entropy only")
    return model


def same_as_reported(bench: Benchmark, method: str, seed: int, scored: dict) -> None:
    check_same_dice(bench, method, seed, {(name, stem): dice for name, d in scored.items() for stem, dice in zip(d["stems"], d["dice"])})


@torch.inference_mode()
def maps_of(model, batch: dict, precision: str, k_many: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The method's reported probability and its candidate uncertainty maps, for one batch."""
    image = batch["image"].to(model.device)
    with inference_autocast(precision, image.device.type):
        if not hasattr(model, "condition_probability"):  # the U-Net: its binary entropy is all it has
            fused = model.predict_fused(image, generator=image_generators(model, batch, image))
            return fused.probability.float().cpu(), {"entropy": entropy(fused.probability).cpu()}
        samples, condition = model._sample(image, model.hparams.num_samples, image_generators(model, batch, image))
        many, _ = model._sample(image, k_many, image_generators(model, batch, image))
    prob, many, condition = samples.float().mean(1).cpu(), many.float().cpu(), condition.float().cpu()
    return prob, {"entropy": entropy(prob), f"entropy K={k_many}": entropy(many.mean(1)),
                  f"sample variance K={k_many}": many.var(1, unbiased=False),
                  "|condition - head|": (condition - prob).abs(),
                  "entropy + |condition - head|": entropy(prob) + (condition - prob).abs()}


def image_auroc(prob: torch.Tensor, mask: torch.Tensor, unc: torch.Tensor) -> float:
    cal = PixelCalibration()
    cal.update(prob[None], mask[None], unc[None])
    return cal.uncertainty_auroc()


def score(model, test_set, precision: str, k_many: int, batch_size: int, partner=None) -> dict:
    """Per dataset and map: pooled AUROC, per-image AUROC and per-image mean uncertainty; per-image Dice. ``partner``:
    a second U-Net whose probability joins this one's (the 2-member ensemble; its Dice is the ensemble's)."""
    out: dict = {}
    for batch in DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=0):
        prob, maps = maps_of(model, batch, precision, k_many)
        if partner is not None:
            other, _ = maps_of(partner, batch, precision, k_many)
            prob, maps = (prob + other) / 2, {"ensemble entropy": entropy((prob + other) / 2),
                                              "ensemble disagreement": (prob - other).abs()}
        dice = per_sample_metrics((prob > 0.5).float(), batch["mask"])[:, 0]
        for i, name in enumerate(batch["dataset"]):
            d = out.setdefault(name, {"dice": [], "stems": [], "maps": {}})
            d["dice"].append(float(dice[i]))
            d["stems"].append(batch["stem"][i])
            for key, unc in maps.items():
                m = d["maps"].setdefault(key, {"pooled": PixelCalibration(), "auroc": [], "mean": []})
                m["pooled"].update(prob[i:i + 1], batch["mask"][i:i + 1], unc[i:i + 1])
                m["auroc"].append(image_auroc(prob[i], batch["mask"][i], unc[i]))
                m["mean"].append(float(unc[i].mean()))
    for d in out.values():
        finish(d)
    return out


def finish(d: dict) -> dict:
    """One dataset's maps: the pooled AUROC from its accumulator, and the mean Dice of the images kept after dropping
    the 20% whose mean uncertainty is highest (``risk_coverage``)."""
    for m in d["maps"].values():
        if isinstance(m["pooled"], PixelCalibration):
            m["pooled"] = m["pooled"].uncertainty_auroc()
        m["kept80"] = risk_coverage(d["dice"], m["mean"]).kept_mean[0.2]
    return d


def fmt_ci(diff) -> str:
    return f"{diff.mean:+.3f} [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}], p={diff.p_value:.2g}"


def run(bench: Benchmark, seed: int, partner_seed: int | None, methods: list[str], k_many: int) -> dict:
    """Every map of the U-Net of ``seed``, its ensemble with the U-Net of ``partner_seed`` and the diffusion ``methods``
    whose checkpoints are in ``bench.work``, on the seed's test split."""
    if partner_seed == seed:
        raise SystemExit(f"--partner-seed {partner_seed} is --seed: an ensemble needs a second U-Net")
    p = bench.profile
    unet = load(bench, "unet", seed)
    if unet is None:
        raise SystemExit(f"the U-Net of seed {seed} is needed as the reference")
    partner = load(bench, "unet", partner_seed) if partner_seed is not None else None
    models = {m: model for m in methods if (model := load(bench, m, seed)) is not None}  # every refusal before any scoring
    dm = bench.datamodule(seed)
    dm.setup("test")
    test_set = dm.split_dataset("test")
    results = {"unet": score(unet, test_set, p.precision, k_many, p.eval_batch_size)}
    same_as_reported(bench, "unet", seed, results["unet"])
    if partner is not None:
        results[f"unet ensemble (seeds {seed}+{partner_seed})"] = score(unet, test_set, p.precision, k_many, p.eval_batch_size, partner)
    for method, model in models.items():
        results[method] = score(model, test_set, p.precision, k_many, p.eval_batch_size)
        same_as_reported(bench, method, seed, results[method])
        print(f"[uncertainty] {method} seed {seed}: scored")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="standard", help="a profile name of configs/benchmark/ or its YAML file")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partner-seed", type=int, default=2, help="the second U-Net seed of the ensemble row")
    parser.add_argument("--methods", nargs="+", default=list(HEADS))
    parser.add_argument("--data", help="the data root (default: the one the U-Net's result file was trained on)")
    parser.add_argument("--k", type=int, default=8, help="samples of the many-sample maps")
    parser.add_argument("--out", help="default: the profile's report folder (reports/benchmark for standard, else "
                        "reports/benchmark_<profile>)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    profile, name, out, work = profile_run(args.profile, ROOT, args.out)
    reference = out / "runs" / "unet" / f"seed{args.seed}.json"
    if not args.data and not reference.is_file():
        raise SystemExit(f"no {reference}: run the benchmark's U-Net of seed {args.seed} first, or give --out / --data")
    data = args.data or json.loads(reference.read_text())["settings"]["root"]
    bench = Benchmark(profile, data, out, work, name, None, {})
    write(run(bench, args.seed, args.partner_seed, args.methods, args.k), name, args.seed, out, profile.min_images)
    return 0


def write(results: dict, profile: str, seed: int, out: Path, min_images: int = 30) -> None:
    datasets = sorted(d for d, v in results["unet"].items() if len(v["dice"]) >= min_images)
    lines = [f"# Uncertainty sources (profile `{profile}`, seed {seed}, checkpoints of the benchmark run)", "",
             "Every map of a method is scored against that method's own segmentation (its reported K-sample mean, threshold "
             "0.5, equal image by image to its result file): the error pixels stay fixed, only the map changes. Pixel "
             "AUROC for error pixels pooled over "
             "a dataset's test images; Δ per-image AUROC: mean over images (with error and correct pixels) of this map's "
             "AUROC minus the same method's entropy, 95% paired-bootstrap CI and Wilcoxon p; kept 80%: mean Dice of the "
             "images kept after dropping the 20% with the highest mean uncertainty. One seed: no training noise in the CIs.",
             "", f"Reproduce: `python bench/uncertainty_sources.py --profile {profile} --seed {seed}`", ""]
    summary: dict = {}
    for d in datasets:
        lines += [f"## {d} (n={len(results['unet'][d]['dice'])})", "",
                  "| method | Dice | map | pooled AUROC | Δ per-image AUROC vs its entropy | kept 80% Dice |", "|---|---|---|---|---|---|"]
        for method, per in results.items():
            r = per[d]
            base = r["maps"].get("entropy") or r["maps"]["ensemble entropy"]
            for key, m in r["maps"].items():
                pair = [(a, b) for a, b in zip(m["auroc"], base["auroc"]) if not (math.isnan(a) or math.isnan(b))]
                delta = "—" if m is base or len(pair) < 5 else fmt_ci(paired_difference([a for a, _ in pair], [b for _, b in pair]))
                lines.append(f"| {method} | {np.mean(r['dice']):.3f} | {key} | {m['pooled']:.3f} | {delta} | {m['kept80']:.3f} |")
                summary.setdefault(method, {}).setdefault(d, {})[key] = {"pooled_auroc": m["pooled"], "kept80": m["kept80"],
                                                                         "dice": float(np.mean(r["dice"]))}
        lines.append("")
    write_json_atomic({"profile": profile, "seed": seed, "results": summary}, out / "uncertainty_sources.json")
    write_text_atomic("\n".join(lines) + "\n", out / "uncertainty_sources.md")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
