"""Streaming pixel-level calibration and uncertainty metrics of fused probability maps: expected calibration
error over equal-width foreground-probability bins, and the AUROC of the uncertainty map for error pixels."""

from __future__ import annotations

import math

import numpy as np
import torch

# Non-negative finite float16 values, ordered as their bit patterns 0x0000 .. 0x7BFF (65504): uncertainty is
# histogrammed on this grid (relative resolution 2^-11 at every scale, down to 6e-8), so the AUROC state is
# two fixed-size count vectors and the AUROC is exact for the uncertainty rounded to float16.
_FP16_MAX = 65504.0
_CODES = 0x7BFF + 1


def _real_cpu_tensor(name: str, value: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``value`` on the CPU (deterministic ``bincount``; a batch is a few MB), integers and bools as float32."""
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.is_complex():
        raise ValueError(f"{name} must be a real tensor, got dtype {tensor.dtype}")
    return tensor if tensor.is_floating_point() else tensor.float()


class PixelCalibration:
    """Accumulates, batch by batch, the pixel statistics of one method on one dataset in fixed memory.

    ``update(probability, mask, uncertainty)`` takes tensors of one shape ``(B, ...)`` (batch first, e.g.
    ``(B, 1, H, W)``): the fused foreground probability in [0, 1], the ground-truth mask in {0, 1} and the
    uncertainty map (>= 0: the U-Net's binary entropy of its probability, a diffusion model's fused entropy
    or variance; only its order matters). Tensors may live on any device: they are copied to the CPU, where
    ``bincount`` is deterministic (also under ``torch.use_deterministic_algorithms``); 100 images of 128x128
    take about 0.1 s. Then:

    - :meth:`ece`: expected calibration error, ``sum_b (n_b / N) |mean(mask)_b - mean(prob)_b|`` over
      ``n_bins`` equal-width bins of the foreground probability, bin ``b = [b/n_bins, (b+1)/n_bins)`` with the
      last bin closed at 1.0 (torchmetrics' ``binary_calibration_error`` gives probability 1.0 a bin of its
      own; otherwise the two agree). Kept as per-bin counts and sums, not the pixels.
    - :meth:`uncertainty_auroc`: AUROC of the uncertainty for separating error pixels
      (``(prob > threshold) != mask``) from correct ones, ties counted half; nan when there are no error
      pixels or no correct pixels (the AUROC is undefined).
    - :attr:`per_image_uncertainty`: the mean of each image's uncertainty map, in update order (for
      :func:`unisegdiff.benchmark.statistics.risk_coverage`).
    - :meth:`reliability`: the per-bin table behind the ECE, for a reliability diagram.
    """

    def __init__(self, n_bins: int = 15, threshold: float = 0.5) -> None:
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        self.n_bins, self.threshold = n_bins, threshold
        self._inner_edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
        self.bin_count = torch.zeros(n_bins, dtype=torch.float64)
        self.bin_prob_sum = torch.zeros(n_bins, dtype=torch.float64)
        self.bin_positive_sum = torch.zeros(n_bins, dtype=torch.float64)
        self.uncertainty_histogram = torch.zeros(2, _CODES, dtype=torch.int64)  # [0]: correct, [1]: error pixels
        self.per_image_uncertainty: list[float] = []

    def update(self, probability: torch.Tensor, mask: torch.Tensor, uncertainty: torch.Tensor) -> None:
        prob = _real_cpu_tensor("probability", probability)
        target = _real_cpu_tensor("mask", mask)
        unc = _real_cpu_tensor("uncertainty", uncertainty)
        if not prob.shape == target.shape == unc.shape:
            raise ValueError(f"probability, mask and uncertainty must have one shape, got {tuple(prob.shape)}, "
                             f"{tuple(target.shape)} and {tuple(unc.shape)}")
        if prob.ndim < 2 or prob.numel() == 0:
            raise ValueError(f"probability must be a non-empty batch (B, ...) of maps, got shape {tuple(prob.shape)}")
        if not bool(((prob >= 0) & (prob <= 1)).all()):
            raise ValueError("probability must lie in [0, 1] (and not be nan)")
        if not bool(((target == 0) | (target == 1)).all()):
            raise ValueError("mask must hold only 0 and 1")
        if not bool(((unc >= 0) & (unc < math.inf)).all()):
            raise ValueError("uncertainty must be finite and >= 0")
        prob, target = prob.flatten(), target.flatten()
        bins = torch.bucketize(prob.double(), self._inner_edges, right=True)
        for state, weights in ((self.bin_count, None), (self.bin_prob_sum, prob.double()), (self.bin_positive_sum, target.double())):
            state += torch.bincount(bins, weights=weights, minlength=self.n_bins)
        error = ((prob > self.threshold).float() != target).long()
        codes = unc.flatten().clamp(max=_FP16_MAX).abs().half().view(torch.int16).long()  # abs: -0.0 -> +0.0
        self.uncertainty_histogram += torch.bincount(codes + error * _CODES, minlength=2 * _CODES).view(2, _CODES)
        self.per_image_uncertainty.extend(unc.flatten(1).double().mean(1).tolist())

    @property
    def pixels(self) -> int:
        return int(self.bin_count.sum())

    @property
    def error_pixels(self) -> int:
        return int(self.uncertainty_histogram[1].sum())

    def _require_data(self) -> None:
        if self.pixels == 0:
            raise RuntimeError("PixelCalibration: no pixels accumulated yet (call update first)")

    def ece(self) -> float:
        self._require_data()
        return float((self.bin_positive_sum - self.bin_prob_sum).abs().sum() / self.bin_count.sum())

    def uncertainty_auroc(self) -> float:
        self._require_data()
        correct, error = self.uncertainty_histogram.double()
        n_correct, n_error = correct.sum(), error.sum()
        if n_correct == 0 or n_error == 0:
            return math.nan
        correct_below = torch.cumsum(correct, 0) - correct
        return float((error * (correct_below + 0.5 * correct)).sum() / (n_error * n_correct))

    def reliability(self) -> dict[str, list[float]]:
        """Per bin: edges, pixel count, mean probability (confidence) and foreground fraction (nan if empty)."""
        count = self.bin_count
        return {"bin_edges": torch.linspace(0, 1, self.n_bins + 1, dtype=torch.float64).tolist(),
                "count": count.tolist(), "mean_probability": (self.bin_prob_sum / count).tolist(),
                "positive_fraction": (self.bin_positive_sum / count).tolist()}

    def compute(self) -> dict[str, float | int]:
        return {"ece": self.ece(), "uncertainty_auroc": self.uncertainty_auroc(), "pixels": self.pixels,
                "error_pixels": self.error_pixels, "images": len(self.per_image_uncertainty)}
