"""Figures of the benchmark report: Dice per dataset with error bars over seeds, the paired-difference forest
plot, pooled reliability diagrams and risk-coverage curves. Matplotlib (Agg); every file is written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from unisegdiff.plots import save_figure_atomic  # noqa: E402


def wrap_name(name: str, width: int = 14) -> str:
    """A dataset name broken after underscores into lines of about ``width`` characters (tick labels that fit)."""
    lines, line = [], ""
    for part in name.split("_"):
        if line and len(line) + 1 + len(part) > width:
            lines.append(line + "_")
            line = part
        else:
            line = f"{line}_{part}" if line else part
    return "\n".join([*lines, line])


def _colors(methods: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def dice_by_dataset(section: dict, path: Path, title: str) -> Path:
    datasets, methods = list(section["datasets"]), list(section["methods"])
    colors, width, x = _colors(methods), 0.8 / len(methods), np.arange(len(datasets))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(datasets) + 1.5), 4.2))
    for i, m in enumerate(methods):
        dice = [section["methods"][m]["datasets"][ds]["dice"] for ds in datasets]
        std = [s["std"] if math.isfinite(s["std"]) else 0.0 for s in dice]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, [s["mean"] for s in dice], width, yerr=std, capsize=3,
               color=colors[m], label=f"{m} ({len(section['methods'][m]['seeds'])} seeds)")
    labels = [f"{wrap_name(ds)}\nn={info['n']}" + (f" ({info['mark']})" if info["mark"] else "") for ds, info in section["datasets"].items()]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Dice: mean over seeds (bars: ± std)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return save_figure_atomic(fig, path)


def paired_differences(section: dict, reference: str, path: Path, title: str) -> Path:
    rows = [(ds, m, d) for m, block in section["paired_dice"].items() for ds, d in (block.get("datasets") or {}).items()]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6))
    if not rows:
        _empty(ax, "no compared method with a seed in common with the reference")
        return save_figure_atomic(fig, path)
    colors = _colors(list(section["paired_dice"]))
    y = np.arange(len(rows))[::-1]
    for yi, (ds, m, d) in zip(y, rows):
        mean, low, high = (100 * d[k] for k in ("mean", "ci_low", "ci_high"))
        xerr = [[mean - low], [high - mean]] if math.isfinite(low) and math.isfinite(high) else None
        ax.errorbar(mean, yi, xerr=xerr, fmt="o", color=colors[m], capsize=3)
    ax.axvline(0, color="gray", linestyle="--", linewidth=1)
    marks = section["datasets"]
    ax.set_yticks(y, [f"{ds} (n={d['n']}{', ' + marks[ds]['mark'] if marks[ds]['mark'] else ''}): {m} − {reference}"
                      for ds, m, d in rows], fontsize=8)
    ax.set_xlabel(f"Dice difference to {reference} (points; 95% paired-bootstrap CI)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return save_figure_atomic(fig, path)


def reliability(pooled: dict[str, dict], path: Path, title: str) -> Path:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    if not pooled:
        _empty(top, "no reliability bins in the result files")
        bottom.set_axis_off()
        return save_figure_atomic(fig, path)
    colors = _colors(list(pooled))
    top.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfect calibration")
    for m, rel in pooled.items():
        edges, count = np.asarray(rel["bin_edges"], dtype=float), np.asarray(rel["count"], dtype=float)
        prob, positive = np.asarray(rel["mean_probability"], dtype=float), np.asarray(rel["positive_fraction"], dtype=float)
        filled = count > 0
        top.plot(prob[filled], positive[filled], marker="o", ms=3, color=colors[m], label=m)
        bottom.bar(edges[:-1][filled], (count / count.sum())[filled], width=np.diff(edges)[filled], align="edge",
                   color=colors[m], alpha=0.45, edgecolor=colors[m])
    top.set_ylabel("foreground fraction")
    top.set_title(title)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted foreground probability (bin)")
    bottom.set_ylabel("pixel fraction")
    return save_figure_atomic(fig, path)


def risk_coverage(section: dict, curves: dict, min_images: int, path: Path, title: str) -> Path:
    datasets = [ds for ds, info in section["datasets"].items() if info["n"] >= min_images]
    cols = min(3, max(len(datasets), 1))
    rows = math.ceil(max(len(datasets), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    if not datasets:
        _empty(axes[0, 0], f"no dataset with at least {min_images} test images")
    colors = _colors(list(curves))
    for ax, ds in zip(axes.flat, datasets):
        for m, per_dataset in curves.items():
            ax.plot(per_dataset[ds]["coverage"], per_dataset[ds]["mean_dice"], color=colors[m], label=m)
        for coverage in (0.9, 0.8):
            ax.axvline(coverage, color="gray", linestyle=":", linewidth=1)
        ax.set_title(f"{wrap_name(ds, 30)} (n={section['datasets'][ds]['n']})", fontsize=9)
        ax.set_xlabel("coverage (most certain images kept)")
        ax.set_ylabel("mean Dice of kept images")
        ax.invert_xaxis()
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(datasets) or 1:]:
        ax.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure_atomic(fig, path)


def write_figures(results: dict, curves: dict, out_dir: Path) -> dict[str, Path]:
    """The four test-set figures of the report into ``out_dir``: ``{file name: path}``."""
    out, test, profile = Path(out_dir), results["test"], results["profile"]
    return {
        "dice_by_dataset.png": dice_by_dataset(test, out / "dice_by_dataset.png", f"Dice per test dataset ({profile})"),
        "paired_differences.png": paired_differences(test, results["reference"], out / "paired_differences.png",
                                                     "Paired Dice differences (per-image, seed-averaged)"),
        "reliability.png": reliability(results["reliability"], out / "reliability.png", "Reliability, test pixels pooled"),
        "risk_coverage.png": risk_coverage(test, curves, results["min_images"], out / "risk_coverage.png",
                                           "Risk-coverage (mean over seeds)"),
    }
