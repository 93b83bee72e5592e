"""Figures for logs and reports: timestep-profile curves and image / truth / prediction / uncertainty
overlays. Matplotlib with the Agg backend; files are written atomically.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from unisegdiff.io import write_atomic  # noqa: E402


def save_figure_atomic(fig, path: str | Path) -> Path:
    try:
        return write_atomic(path, lambda temp: fig.savefig(temp, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_timestep_profiles(profiles: dict[str, list[tuple[int, float]]], path: str | Path, title: str = "Timestep profile") -> Path:
    """One curve per model: Dice of the one-step x0 estimate against t."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, rows in profiles.items():
        ts, dice = zip(*rows)
        ax.plot(ts, dice, marker="o", ms=3, label=name)
    ax.set_xlabel("timestep t (noise level grows to the right)")
    ax.set_ylabel("Dice of one-step x0 estimate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure_atomic(fig, path)


def _to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) normalized image -> (H, W[, 3]) in [0, 1] for display."""
    img = image[:3] if image.shape[0] >= 3 else image[:1]
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)
    return img.transpose(1, 2, 0) if img.shape[0] == 3 else img[0]


def plot_overlays(images: np.ndarray, truths: np.ndarray, preds: np.ndarray, uncertainties: np.ndarray, path: str | Path, titles: list[str] | None = None) -> Path:
    """Rows of (image, ground truth contour, prediction contour, uncertainty) for (N, C, H, W) arrays."""
    n = images.shape[0]
    fig, axes = plt.subplots(n, 4, figsize=(10.5, 2.3 * n), squeeze=False)
    for i in range(n):
        disp = _to_display(images[i])
        cmap = None if disp.ndim == 3 else "gray"
        for j, (label, overlay, color) in enumerate([("image", None, None), ("ground truth", truths[i, 0], "lime"), ("prediction", preds[i, 0], "red")]):
            axes[i, j].imshow(disp, cmap=cmap)
            if overlay is not None and overlay.any():
                axes[i, j].contour(overlay, levels=[0.5], colors=color, linewidths=1.2)
            axes[i, j].set_title(label if i == 0 else "", fontsize=8)
        im = axes[i, 3].imshow(uncertainties[i, 0], cmap="magma", vmin=0, vmax=max(float(uncertainties[i].max()), 1e-6))
        axes[i, 3].set_title("uncertainty" if i == 0 else "", fontsize=8)
        fig.colorbar(im, ax=axes[i, 3], fraction=0.046)
        if titles:  # horizontal, wrapped row labels left of the row: long dataset/stem names never overlap the next row
            axes[i, 0].set_ylabel(textwrap.fill(titles[i].replace("/", "/ "), 22), fontsize=7, rotation=0, ha="right", va="center", labelpad=6)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    return save_figure_atomic(fig, path)
