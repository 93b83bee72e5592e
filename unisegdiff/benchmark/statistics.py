"""Statistics of the benchmark over per-image and per-seed scores: paired differences between two
methods (bootstrap CI, Wilcoxon test, wins), mean ± std over seeds, risk-coverage and the honest macro."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

DEFAULT_TIE_TOLERANCE = 1e-3  # 0.1 Dice points: below what a benchmark of this size can tell apart


def _vector(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """``values`` as a non-empty 1D float64 array of finite numbers, or a ValueError naming ``name``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1D sequence of numbers, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values at positions {np.flatnonzero(~np.isfinite(array)).tolist()}")
    return array


def _same_length(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have one value per image in the same order: "
                         f"got {a.size} and {b.size} values")


@dataclass(frozen=True)
class PairedDifference:
    """Paired comparison ``a - b`` of two methods over the same images.

    ``ci_method`` says how the interval was obtained: ``"BCa"``; ``"percentile"`` where BCa is undefined
    (its acceleration needs a non-constant jackknife); ``"exact"`` when every difference is the same
    (every resample has that mean); ``"none"`` for a single image (no interval: nan, nan).
    """

    n: int
    mean: float
    ci_low: float
    ci_high: float
    confidence: float
    ci_method: str
    p_value: float
    wins: int
    ties: int
    losses: int
    tie_tolerance: float

    def to_dict(self) -> dict:
        return asdict(self)


def _bootstrap_ci(a: np.ndarray, b: np.ndarray, n_resamples: int, confidence: float, seed: int) -> tuple[float, float, str]:
    def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    # scipy >= 1.15 names the generator `rng`; older versions accept a Generator as `random_state`
    key = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            result = stats.bootstrap((a, b), mean_difference, n_resamples=n_resamples, paired=True, vectorized=True,
                                     confidence_level=confidence, method=method, **{key: np.random.default_rng(seed)})
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high), method
    return math.nan, math.nan, "none"


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, n_resamples: int = 10000,
                      confidence: float = 0.95, seed: int = 0,
                      tie_tolerance: float = DEFAULT_TIE_TOLERANCE) -> PairedDifference:
    """Compare per-image scores ``a`` and ``b`` of two methods on the same images, in the same order.

    - ``mean``: mean of ``a - b``.
    - CI: paired bootstrap over images (``scipy.stats.bootstrap(paired=True)``, ``n_resamples``, seeded).
      BCa rather than percentile: per-image Dice differences are bounded and skewed (a few images where one
      method fails outright), and BCa corrects the bias and skew of the bootstrap distribution (second-order
      accurate coverage); it falls back to percentile where BCa is undefined.
    - ``p_value``: two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero_method "wilcox": images
      with a zero difference are left out; exact null distribution for small n). All differences zero: 1.0.
      Differences are rounded to 12 decimals first so that roundoff does not break ties (scipy's advice).
    - ``wins``/``ties``/``losses``: images with ``a - b > tie_tolerance`` / ``|a - b| <= tie_tolerance`` /
      ``a - b < -tie_tolerance``; the default 1e-3 is 0.1 Dice points.
    """
    a, b = _vector("a", a), _vector("b", b)
    _same_length("a", a, "b", b)
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not tie_tolerance >= 0:
        raise ValueError(f"tie_tolerance must be >= 0, got {tie_tolerance!r}")
    diff = np.round(a - b, 12)
    mean = float(diff.mean())
    if diff.size == 1:
        low, high, ci_method = math.nan, math.nan, "none"
    elif np.ptp(diff) == 0:
        low, high, ci_method = mean, mean, "exact"
    else:
        low, high, ci_method = _bootstrap_ci(a, b, int(n_resamples), confidence, seed)
    p_value = 1.0 if not diff.any() else float(stats.wilcoxon(diff).pvalue)
    return PairedDifference(
        n=int(diff.size), mean=mean, ci_low=low, ci_high=high, confidence=confidence, ci_method=ci_method,
        p_value=p_value, wins=int((diff > tie_tolerance).sum()), ties=int((np.abs(diff) <= tie_tolerance).sum()),
        losses=int((diff < -tie_tolerance).sum()), tie_tolerance=tie_tolerance)


@dataclass(frozen=True)
class SeedSummary:
    """Mean and sample standard deviation (ddof=1) of one score over ``n`` seeds."""

    mean: float
    std: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def seed_summary(values: Sequence[float] | np.ndarray) -> SeedSummary:
    """Mean ± sample std (ddof=1) over seeds. With one seed the std is nan, not 0: one run says nothing
    about seed noise, and a report must not show it as ``± 0``."""
    array = _vector("values", values)
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return SeedSummary(mean=float(array.mean()), std=std, n=int(array.size))


@dataclass(frozen=True)
class RiskCoverage:
    """Selective prediction: images ordered from most to least certain, the most uncertain dropped.

    ``kept_mean[f]`` is the mean Dice of the images kept after dropping ``dropped[f]`` images for the
    drop fraction ``f``; ``coverage[i]``/``mean_dice[i]`` is the full curve, coverage ``m/n`` for
    ``m = n .. 1`` kept images (coverage 1.0 first, where ``mean_dice`` is the plain mean).
    """

    n: int
    full_mean: float
    kept_mean: dict[float, float]
    dropped: dict[float, int]
    coverage: list[float]
    mean_dice: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def risk_coverage(per_image_dice: Sequence[float] | np.ndarray, per_image_uncertainty: Sequence[float] | np.ndarray,
                  drop_fractions: Sequence[float] = (0.1, 0.2)) -> RiskCoverage:
    """Mean Dice of the images kept when the fraction ``f`` of most uncertain images is dropped, and the curve.

    Rounding: ``floor(f * n)`` images are dropped (never more than the fraction, so with fewer than
    ``1 / f`` images nothing is dropped); a tiny epsilon keeps ``0.3 * 10`` at 3. Ties in uncertainty are
    broken by input order (a stable sort: of equally uncertain images the later ones are dropped first).
    """
    dice = _vector("per_image_dice", per_image_dice)
    uncertainty = _vector("per_image_uncertainty", per_image_uncertainty)
    _same_length("per_image_dice", dice, "per_image_uncertainty", uncertainty)
    fractions = [float(f) for f in drop_fractions]
    if any(not 0 <= f < 1 for f in fractions):
        raise ValueError(f"drop_fractions must lie in [0, 1), got {list(drop_fractions)}")
    n = dice.size
    ordered = dice[np.argsort(uncertainty, kind="stable")]
    kept_means = np.cumsum(ordered) / np.arange(1, n + 1)  # [m - 1]: mean of the m most certain images
    dropped = {f: math.floor(f * n + 1e-9) for f in fractions}
    return RiskCoverage(
        n=n, full_mean=float(dice.mean()), kept_mean={f: float(kept_means[n - k - 1]) for f, k in dropped.items()},
        dropped=dropped, coverage=(np.arange(n, 0, -1) / n).tolist(), mean_dice=kept_means[::-1].tolist())


@dataclass(frozen=True)
class Macro:
    """Unweighted mean over the datasets in ``used``; ``excluded`` maps each other dataset to its mark."""

    value: float
    used: list[str]
    excluded: dict[str, str]
    min_images: int

    def to_dict(self) -> dict:
        return asdict(self)


def macro_over(per_dataset_means: Mapping[str, float], per_dataset_counts: Mapping[str, int],
               min_images: int = 30) -> Macro:
    """The headline macro: the unweighted mean over the datasets with at least ``min_images`` test images.

    The others are listed in ``excluded`` marked ``"n<30"`` (for ``min_images=30``) and stay in the tables.
    With no dataset large enough the value is nan. Dataset order follows ``per_dataset_means``.
    """
    if set(per_dataset_means) != set(per_dataset_counts):
        raise ValueError(f"per_dataset_means and per_dataset_counts must name the same datasets: only in means "
                         f"{sorted(set(per_dataset_means) - set(per_dataset_counts))}, only in counts "
                         f"{sorted(set(per_dataset_counts) - set(per_dataset_means))}")
    if not isinstance(min_images, (int, np.integer)) or min_images < 1:
        raise ValueError(f"min_images must be a positive integer, got {min_images!r}")
    for name, count in per_dataset_counts.items():
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"per_dataset_counts[{name!r}] must be a non-negative integer, got {count!r}")
    used = [name for name in per_dataset_means if per_dataset_counts[name] >= min_images]
    values = _vector("per_dataset_means (of the datasets used)", [per_dataset_means[name] for name in used]) if used else []
    return Macro(value=float(np.mean(values)) if used else math.nan, used=used, min_images=int(min_images),
                 excluded={name: f"n<{min_images}" for name in per_dataset_means if name not in used})
