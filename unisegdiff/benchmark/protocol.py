"""Benchmark of the segmentation methods on the lesion datasets: deterministic U-Net, eps-diffusion
(DDIM-50 and DDPM-1000) and the staged model, one unified model per method over all datasets.

Writes results.csv, results.json (with the run record), README.md (tables) and PNG plots.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml
from rich.progress import Progress
from torch.utils.data import DataLoader, Subset

from unisegdiff.callbacks import run_record, write_json_atomic
from unisegdiff.data import LesionDataModule, load_registry
from unisegdiff.inference import inference_autocast
from unisegdiff.metrics import METRIC_NAMES, PerDatasetMetrics
from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter
from unisegdiff.recipes import model_init_args
from unisegdiff.plots import plot_overlays, save_figure_atomic, plot_timestep_profiles
from unisegdiff.timestep_profile import profile_timesteps, timestep_profile



@dataclass
class BenchProfile:
    image_size: int = 128
    batch_size: int = 8
    num_workers: int = 2
    lr: float = 2e-3
    unet_steps: int = 600
    diffusion_steps: int = 500
    num_samples: int = 2
    eval_batch_size: int = 16
    ddpm_subset_per_dataset: int = 1
    profile_points: int = 12
    max_per_dataset: int | None = None
    precision: str = "32-true"  # Lightning precision for training; inference runs under the matching autocast
    speed_min_seconds: float = 20.0  # the staged side-by-side timing repeats its pass until this much time was measured

    @classmethod
    def from_yaml(cls, path: str | Path) -> "BenchProfile":
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"benchmark profile {path}: unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass
class MethodResult:
    method: str
    calls_per_sample: int
    train_seconds: float
    infer_seconds_per_image: float
    metrics: dict[str, float] = field(default_factory=dict)


def _trainer(max_steps: int, ckpt_dir: Path | None = None, precision: str = "32-true") -> L.Trainer:
    callbacks = []
    if ckpt_dir is not None:
        # no version counter: a stale last.ckpt must be replaced, never kept beside a new last-v1.ckpt
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0, enable_version_counter=False))
    return L.Trainer(accelerator="auto", devices=1, max_steps=max_steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                     logger=False, enable_checkpointing=bool(callbacks), callbacks=callbacks, enable_model_summary=False,
                     enable_progress_bar=True, deterministic=False, precision=precision)


def train(model: L.LightningModule, dm: LesionDataModule, steps: int, ckpt_dir: Path, seed: int, precision: str = "32-true") -> float:
    """Fit for ``steps`` steps; ``ckpt_dir/last.ckpt`` is this run's final checkpoint (an older one is removed first)."""
    (ckpt_dir / "last.ckpt").unlink(missing_ok=True)
    L.seed_everything(seed, workers=True)
    start = time.perf_counter()
    _trainer(steps, ckpt_dir, precision).fit(model, datamodule=dm)
    if not (ckpt_dir / "last.ckpt").is_file():
        raise RuntimeError(f"training wrote no {ckpt_dir / 'last.ckpt'}")
    return time.perf_counter() - start


@torch.inference_mode()
def evaluate(model, loader: DataLoader, names: list[str], label: str, precision: str = "32-true",
             min_seconds: float = 0.0, scheduler=None) -> tuple[dict[str, float], float, int]:
    """Per-dataset metrics, seconds per image (model inference only, under ``precision``'s autocast) and images seen.

    A short pass is noisy to time: with ``min_seconds`` the loader is run again (timed, metrics unchanged)
    until at least that much inference time was measured; seconds per image average over all passes.
    """
    model.eval()
    sampling = {} if scheduler is None else {"scheduler": scheduler}  # a diffusion model's sampler for this pass
    metrics = PerDatasetMetrics(sorted(names))
    seconds, timed, n = 0.0, 0, 0
    first = next(iter(loader), None)
    if first is not None:  # untimed: the first call of a shape pays for kernel selection, which would bias short runs
        with inference_autocast(precision, model.device.type):
            model.warm_up(first["image"].to(model.device))
    with Progress(transient=True) as progress:
        task = progress.add_task(f"evaluating {label}", total=len(loader))
        passes = 0
        while first is not None and (passes == 0 or seconds < min_seconds):
            for batch in loader:
                start = time.perf_counter()
                with inference_autocast(precision, model.device.type):
                    fused = model.predict_fused(batch["image"].to(model.device), generator=model._eval_generator(batch), **sampling)
                seconds += time.perf_counter() - start
                timed += batch["image"].shape[0]
                if passes == 0:
                    metrics.update(fused.mask.cpu(), batch["mask"], list(batch["dataset"]))
                    n += batch["image"].shape[0]
                    progress.advance(task)
            passes += 1
    return metrics.compute(), seconds / max(timed, 1), n


def _subset_loader(dataset, per_dataset: int, batch_size: int) -> DataLoader:
    taken: dict[str, int] = {}
    idx = []
    for i, name in enumerate(dataset.dataset_of_sample):
        if taken.get(name, 0) < per_dataset:
            taken[name] = taken.get(name, 0) + 1
            idx.append(i)
    return DataLoader(Subset(dataset, idx), batch_size=batch_size, shuffle=False)


def plot_dice_bars(results: list[MethodResult], datasets: list[str], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(datasets) + 2), 3.8))
    width = 0.8 / max(len(results), 1)
    x = np.arange(len(datasets) + 1)
    for i, r in enumerate(results):
        vals = [r.metrics.get(f"{d}/dice", np.nan) for d in datasets] + [r.metrics.get("macro/dice", np.nan)]
        ax.bar(x + i * width, vals, width, label=r.method)
    ax.set_xticks(x + width * (len(results) - 1) / 2, [d.replace("_", "\n", 1) for d in datasets] + ["macro"], fontsize=7)
    ax.set_ylabel("test Dice")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return save_figure_atomic(fig, path)


def write_tables(results: list[MethodResult], datasets: list[str], missing: list[str], extra: dict, out: Path) -> None:
    rows = []
    for r in results:
        for d in datasets + ["macro"]:
            rows.append({"method": r.method, "dataset": d, **{m: r.metrics.get(f"{d}/{m}", float("nan")) for m in METRIC_NAMES},
                         "train_seconds": r.train_seconds, "infer_seconds_per_image": r.infer_seconds_per_image, "calls_per_sample": r.calls_per_sample})
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["# Benchmark results", "", f"Profile: `{extra['profile_name']}` (precision `{extra['profile']['precision']}`); seed {extra['seed']}; "
             f"commit `{extra['run_record'].get('git_commit')}`; wall time {extra.get('wall_seconds', float('nan')) / 60:.1f} min "
             f"({extra['run_record'].get('cpu_count', '?')} CPUs).", ""]
    lines += ["## Dice (test split) per dataset", "", "| dataset | " + " | ".join(r.method for r in results) + " |", "|---|" + "---|" * len(results)]
    for d in datasets + ["macro"]:
        lines.append(f"| {d} | " + " | ".join(f"{r.metrics.get(f'{d}/dice', float('nan')):.3f}" for r in results) + " |")
    lines += ["", "## All metrics", "", "| method | dataset | Dice | IoU | HD95 (px) |", "|---|---|---|---|---|"]
    for r in results:
        for d in datasets + ["macro"]:
            lines.append(f"| {r.method} | {d} | {r.metrics.get(f'{d}/dice', float('nan')):.3f} | {r.metrics.get(f'{d}/iou', float('nan')):.3f} | {r.metrics.get(f'{d}/hd95', float('nan')):.2f} |")
    lines += ["", "## Cost", "", "| method | network calls / sample | train time (s) | inference time / image (s) |", "|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.method} | {r.calls_per_sample} | {r.train_seconds:.0f} | {r.infer_seconds_per_image:.3f} |")
    if "speed" in extra:
        s = extra["speed"]
        lines += ["", "## Staged vs DDPM-1000, side by side on the same images", "",
                  f"{s['images']} test images ({extra['ddpm_subset_per_dataset']} per dataset), {s['num_samples']} samples each; "
                  f"both warmed up untimed; the staged pass repeated until >= {extra['profile']['speed_min_seconds']:.0f} s were timed.", "",
                  "| sampler | calls / sample | seconds / image | Dice (macro over these images) |", "|---|---|---|---|",
                  f"| staged | {s['staged_calls']} | {s['staged_seconds_per_image']:.3f} | {s['staged_dice']:.3f} |",
                  f"| eps DDPM-1000 | 1000 | {s['ddpm_seconds_per_image']:.3f} | {s['ddpm_dice']:.3f} |",
                  "", f"Speed-up: **{s['speedup']:.0f}x**."]
    lines += ["", "## Datasets", "", extra["splits"].replace("\n", "  \n"), ""]
    lines += ["Missing datasets (not found under the data root): " + (", ".join(missing) if missing else "none"), ""]
    lines += ["Figures: `dice_by_dataset.png`, `timestep_profiles.png`, `overlays_*.png`.", ""]
    (out / "README.md").write_text("\n".join(lines))


def run_benchmark(root: str | None, datasets: list[str] | None, profile: BenchProfile, out: Path, seed: int = 0, profile_name: str = "quick", methods: tuple[str, ...] = ("unet", "eps", "staged")) -> list[MethodResult]:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    prec = profile.precision
    inference_autocast(prec, "cpu")  # validates the precision string before hours of training
    registry = load_registry()
    embedded = root is None  # no data root: the embedded phantoms stand in for the six datasets
    wanted = datasets or [n for n, spec in registry.items() if spec.phantom == embedded]
    found = [d for d in wanted if root is None or (Path(root) / registry[d].folder if d in registry else Path(root) / d).is_dir()]
    missing = [d for d in wanted if d not in found]
    if not found:
        raise FileNotFoundError(f"no dataset of {wanted} found under {root!r}; set UNISEGDIFF_DATA to a canonical root")
    dm = LesionDataModule(root=root, datasets=found, image_size=profile.image_size, batch_size=profile.batch_size,
                          num_workers=profile.num_workers, seed=seed, max_per_dataset=profile.max_per_dataset)
    dm.setup("fit")
    dm.setup("test")
    names = dm.dataset_names
    test_set = dm.split_dataset("test")
    test_loader = DataLoader(test_set, batch_size=profile.eval_batch_size, shuffle=False, num_workers=0)
    ckpt = out / "checkpoints"
    results: list[MethodResult] = []
    extra: dict = {"datasets": names, "seed": seed, "profile_name": profile_name, "profile": asdict(profile), "splits": dm.describe(),
                   "run_record": run_record(seed), "ddpm_subset_per_dataset": profile.ddpm_subset_per_dataset}

    unet = DeterministicSegmenter(lr=profile.lr)
    t_unet = train(unet, dm, profile.unet_steps, ckpt / "unet", seed, prec)
    condition = str(ckpt / "unet" / "last.ckpt")
    m, s, _ = evaluate(unet, test_loader, names, "unet", prec)
    results.append(MethodResult("unet", 1, t_unet, s, m))

    diffusion = {}
    if "eps" in methods:
        eps = StagedDiffusionSegmenter(stages=model_init_args("unisegdiff/eps_only")["stages"], condition_ckpt=condition, num_samples=profile.num_samples, lr=profile.lr)
        t_eps = train(eps, dm, profile.diffusion_steps, ckpt / "eps", seed, prec)
        m, s, _ = evaluate(eps, test_loader, names, "eps DDIM-50", prec)
        results.append(MethodResult("eps_ddim50", eps.network_calls, t_eps, s, m))
        diffusion["eps"] = eps
    if "staged" in methods:
        staged = StagedDiffusionSegmenter(condition_ckpt=condition, num_samples=profile.num_samples, lr=profile.lr)
        t_staged = train(staged, dm, profile.diffusion_steps, ckpt / "staged", seed, prec)
        m, s, _ = evaluate(staged, test_loader, names, "staged", prec)
        results.append(MethodResult("staged", staged.network_calls, t_staged, s, m))
        diffusion["staged"] = staged

    if "eps" in diffusion:  # DDPM-1000 is too slow for the whole test split on CPU: a fixed subset, side by side
        subset = _subset_loader(test_set, profile.ddpm_subset_per_dataset, profile.eval_batch_size)
        eps = diffusion["eps"]
        m_ddpm, s_ddpm, n_sub = evaluate(eps, subset, names, "eps DDPM-1000", prec, scheduler=eps.scheduler.set_timesteps(1000, "ddpm"))
        results.append(MethodResult("eps_ddpm1000 (subset)", 1000, results[1].train_seconds, s_ddpm, m_ddpm))
        if "staged" in diffusion:
            m_st, s_st, _ = evaluate(diffusion["staged"], subset, names, "staged (subset)", prec,
                                     min_seconds=profile.speed_min_seconds)
            extra["speed"] = {"images": n_sub, "num_samples": profile.num_samples, "staged_calls": diffusion["staged"].network_calls,
                              "staged_seconds_per_image": s_st, "ddpm_seconds_per_image": s_ddpm, "speedup": s_ddpm / max(s_st, 1e-9),
                              "staged_dice": m_st.get("macro/dice", float("nan")), "ddpm_dice": m_ddpm.get("macro/dice", float("nan"))}

    # figures: timestep profiles of the diffusion models, overlays of the staged model, Dice bars
    batch = next(iter(DataLoader(test_set, batch_size=min(len(test_set), 32), shuffle=False)))
    ts = profile_timesteps(1000, profile.profile_points)
    with inference_autocast(prec, "cpu" if not torch.cuda.is_available() else "cuda"):
        profiles = {name: timestep_profile(model.eval(), batch["image"], batch["mask"], ts, seed=seed) for name, model in diffusion.items()}
    if profiles:
        plot_timestep_profiles(profiles, out / "timestep_profiles.png", "Dice of the one-step x0 estimate (test images)")
        extra["timestep_profiles"] = profiles
    shown = diffusion.get("staged") or unet
    for name in names:
        idx = [i for i, d in enumerate(test_set.dataset_of_sample) if d == name][:3]
        if not idx:
            continue
        items = [test_set[i] for i in idx]
        image = torch.stack([it["image"] for it in items])
        fused = shown.eval().predict_fused(image, generator=[torch.Generator().manual_seed(i) for i in idx])
        plot_overlays(image.numpy(), torch.stack([it["mask"] for it in items]).numpy(), fused.mask.numpy(), fused.uncertainty.numpy(),
                      out / f"overlays_{name}.png", [f"{name}/{it['stem']}" for it in items])
    plot_dice_bars(results, names, out / "dice_by_dataset.png")
    extra["wall_seconds"] = time.perf_counter() - started
    write_tables(results, names, missing, extra, out)
    write_json_atomic({"results": [asdict(r) for r in results], "missing": missing, **extra}, out / "results.json")
    return results
