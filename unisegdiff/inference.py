"""Fusion of K sampled masks into probability, binary mask and per-pixel uncertainty.

Mean fusion averages the sample probabilities; STAPLE (SimpleITK) weighs samples by estimated
sensitivity/specificity; an optional anchor (the condition network's own probability) joins with a weight.
Uncertainty is the binary entropy of the fused probability or the (weighted) variance of the members.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import SimpleITK as sitk
import torch

FUSIONS = ("mean", "staple")
UNCERTAINTIES = ("entropy", "variance")


@dataclass
class FusedPrediction:
    """Fused outputs, each (B, 1, ...): ``probability`` in [0, 1], ``mask`` in {0, 1}, ``uncertainty`` >= 0."""

    probability: torch.Tensor
    mask: torch.Tensor
    uncertainty: torch.Tensor


def _staple(samples: torch.Tensor) -> torch.Tensor:
    """STAPLE probability for (K, 1, ...) sample probabilities of one image (thresholded at 0.5)."""
    binary = (samples[:, 0] > 0.5).to(torch.uint8).cpu().numpy()
    if binary.sum() == 0 or binary.all():
        return samples.mean(0)
    images = [sitk.GetImageFromArray(b) for b in binary]
    prob = sitk.GetArrayFromImage(sitk.STAPLE(images, 1.0))
    return torch.from_numpy(prob).to(samples)[None].nan_to_num(0.0).clamp(0, 1)


def fuse_samples(samples: torch.Tensor, fusion: str = "mean", uncertainty: str = "entropy", threshold: float = 0.5,
                 anchor: torch.Tensor | None = None, anchor_weight: float = 0.0) -> FusedPrediction:
    """Fuse (B, K, 1, ...) sample probabilities into a :class:`FusedPrediction`.

    ``anchor`` (B, 1, ...) is a deterministic probability fused in with weight ``anchor_weight`` in [0, 1]:
    ``prob = w * anchor + (1 - w) * fused samples``; the variance uncertainty then weighs the anchor by w and each
    sample by (1 - w) / K.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {FUSIONS}")
    if uncertainty not in UNCERTAINTIES:
        raise ValueError(f"unknown uncertainty {uncertainty!r}; choose one of {UNCERTAINTIES}")
    if samples.ndim < 4:
        raise ValueError(f"samples must be (B, K, C, ...), got shape {tuple(samples.shape)}")
    check_anchor_weight(anchor_weight)
    if anchor_weight > 0 and (anchor is None or anchor.shape != samples[:, 0].shape):
        raise ValueError(f"anchor_weight {anchor_weight} needs an anchor of shape {tuple(samples[:, 0].shape)}, "
                         f"got {None if anchor is None else tuple(anchor.shape)}")
    samples = samples.float()
    prob = samples.mean(1) if fusion == "mean" else torch.stack([_staple(s) for s in samples])
    w = float(anchor_weight)
    if w > 0:
        prob = w * anchor.float() + (1 - w) * prob
    if uncertainty == "entropy":
        p = prob.clamp(1e-6, 1 - 1e-6)
        unc = -(p * p.log2() + (1 - p) * (1 - p).log2())
    elif w > 0:
        members = torch.cat([samples, anchor.float()[:, None]], 1)
        weights = torch.tensor([(1 - w) / samples.shape[1]] * samples.shape[1] + [w], device=members.device)
        weights = weights.reshape(1, -1, *([1] * (members.ndim - 2)))
        unc = (weights * (members - prob[:, None]) ** 2).sum(1)
    else:
        unc = samples.var(1, unbiased=False) if samples.shape[1] > 1 else torch.zeros_like(prob)
    return FusedPrediction(probability=prob, mask=(prob > threshold).float(), uncertainty=unc)


def check_anchor_weight(weight: float, name: str = "anchor_weight") -> None:
    """A fusion weight must be a number in [0, 1]."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {weight!r}")


def inference_autocast(precision: str, device_type: str):
    """Autocast context for inference matching a Lightning precision string ("32-true", "bf16-mixed", "16-mixed").

    Lightning's precision plugin applies autocast only inside its own loops; the benchmark's timed passes and
    figure callbacks call the model outside them, so they need the same context by hand."""
    if precision in ("32", "32-true", "64", "64-true"):
        return contextlib.nullcontext()
    if precision in ("bf16-mixed", "bf16"):
        return torch.autocast(device_type, dtype=torch.bfloat16)
    if precision in ("16-mixed", "16"):
        return torch.autocast(device_type, dtype=torch.float16)
    raise ValueError(f"precision {precision!r} is not supported here: use 32-true, bf16-mixed or 16-mixed")
