"""Per-dataset segmentation metrics (MONAI Dice, IoU, HD95), macro-averaged, correct under DDP.

Empty-ground-truth policy: an image without lesion scores Dice/IoU (and surface Dice) 1 when the
prediction is empty too and 0 otherwise (MONAI ``ignore_empty=False``); HD95 is undefined there and left out.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

METRIC_NAMES = ("dice", "iou", "hd95")


def per_sample_metrics(pred: torch.Tensor, target: torch.Tensor, spacing: Sequence[float] | None = None) -> torch.Tensor:
    """(B, 3) tensor of Dice, IoU, HD95 for binary (B, 1, ...) masks; HD95 is NaN when either mask is
    empty, in pixels, or in physical units when ``spacing`` (one value per spatial axis, array order) is given."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    pred, target = pred.float(), target.float()
    dice = compute_dice(pred, target, include_background=True, ignore_empty=False)[:, 0]
    iou = compute_iou(pred, target, include_background=True, ignore_empty=False)[:, 0]
    hd = torch.full_like(dice, float("nan"))
    both = (pred.flatten(1).sum(1) > 0) & (target.flatten(1).sum(1) > 0)
    if both.any():
        hd[both] = compute_hausdorff_distance(pred[both], target[both], include_background=True, percentile=95,
                                              spacing=spacing)[:, 0].to(hd)
    return torch.stack([dice, iou, hd], dim=1)


def surface_dice(pred: torch.Tensor, target: torch.Tensor, tolerance: float, spacing: Sequence[float] | None = None) -> torch.Tensor:
    """(B,) normalized surface Dice (MONAI) of binary (B, 1, ...) masks at ``tolerance`` (units of ``spacing``);
    like Dice: 1 when both masks are empty, 0 when only one is."""
    pred, target = pred.float(), target.float()
    pred_any, target_any = pred.flatten(1).sum(1) > 0, target.flatten(1).sum(1) > 0
    nsd = (pred_any == target_any).float()
    both = pred_any & target_any
    if both.any():
        nsd[both] = compute_surface_dice(pred[both], target[both], [tolerance], include_background=True,
                                         spacing=spacing)[:, 0].to(nsd)
    return nsd


class PerDatasetMetrics:
    """Accumulates sums and counts of each metric per dataset; ``compute`` reduces across ranks.

    Hand-written on purpose (not torchmetrics / MONAI ``aggregate``): a dataset may first appear at evaluation
    time, and the rows must line up across DDP ranks (names registered sorted in ``setup``), which a metric object
    per dataset created at construction cannot do; the arithmetic itself is MONAI's per-sample metrics."""

    def __init__(self, dataset_names: list[str]):
        self.names = list(dataset_names)
        self.reset()

    def reset(self) -> None:
        self.sums = torch.zeros(len(self.names), len(METRIC_NAMES), dtype=torch.float64)
        self.counts = torch.zeros_like(self.sums)

    def index(self, name: str) -> int:
        if name not in self.names:  # a dataset first seen at evaluation time
            self.names.append(name)
            self.sums = torch.cat([self.sums, self.sums.new_zeros(1, len(METRIC_NAMES))])
            self.counts = torch.cat([self.counts, self.counts.new_zeros(1, len(METRIC_NAMES))])
        return self.names.index(name)

    def update(self, pred: torch.Tensor, target: torch.Tensor, datasets: list[str]) -> torch.Tensor:
        values = per_sample_metrics(pred, target).double().cpu()
        for row, name in zip(values, datasets):
            i = self.index(name)
            ok = ~torch.isnan(row)
            self.sums[i] += torch.where(ok, row, torch.zeros_like(row))
            self.counts[i] += ok.double()
        return values

    def compute(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """``{"<dataset>/<metric>": value, "macro/<metric>": value}``; ``reduce_sum`` sums a tensor over ranks."""
        sums, counts = self.sums, self.counts
        if reduce_sum is not None:
            sums, counts = reduce_sum(sums), reduce_sum(counts)
        out: dict[str, float] = {}
        per_metric: dict[str, list[float]] = {m: [] for m in METRIC_NAMES}
        for i, name in enumerate(self.names):
            for j, metric in enumerate(METRIC_NAMES):
                if counts[i, j] > 0:
                    value = float(sums[i, j] / counts[i, j])
                    out[f"{name}/{metric}"] = value
                    per_metric[metric].append(value)
        for metric, values in per_metric.items():
            if values:
                out[f"macro/{metric}"] = sum(values) / len(values)
            elif metric != "hd95":
                out[f"macro/{metric}"] = math.nan
        return out
