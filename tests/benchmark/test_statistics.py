"""Benchmark statistics and streaming calibration checked against hand-computed values on small fixed tables.

No ``__init__.py`` here: pytest's default import mode needs only a unique basename, and a package named
``benchmark`` under tests/ would shadow the script bench/benchmark.py for any test that imports it by name."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torchmetrics.functional.classification import binary_auroc, binary_calibration_error

from unisegdiff.benchmark.calibration import PixelCalibration
from unisegdiff.benchmark.statistics import macro_over, paired_difference, risk_coverage, seed_summary

# 8 images; differences a - b = [0.12, -0.05, 0.01, 0.07, 0.30, -0.02, 0.0005, 0.26]
A = [0.82, 0.75, 0.61, 0.90, 0.55, 0.70, 0.6505, 0.88]
B = [0.70, 0.80, 0.60, 0.83, 0.25, 0.72, 0.65, 0.62]


def test_paired_difference_on_the_fixed_table():
    result = paired_difference(A, B)
    assert result.n == 8
    assert result.mean == pytest.approx(0.6905 / 8)  # (0.12 - 0.05 + 0.01 + 0.07 + 0.30 - 0.02 + 0.0005 + 0.26) / 8
    assert (result.wins, result.ties, result.losses) == (5, 1, 2)  # 0.0005 is a tie at the default 1e-3
    # |d| ranks 1..8 of 0.0005, 0.01, 0.02-, 0.05-, 0.07, 0.12, 0.26, 0.30: W- = 3 + 4 = 7. Subsets of {1..8} with
    # rank sum <= 7: 1+1+1+2+2+3+4+5 = 19 of 2^8, two-sided exact p = 2 * 19 / 256.
    assert result.p_value == pytest.approx(38 / 256)
    assert result.p_value == pytest.approx(scipy.stats.wilcoxon(np.subtract(A, B)).pvalue)
    assert result.ci_method == "BCa" and result.confidence == 0.95
    assert result.ci_low < result.mean < result.ci_high
    assert result.to_dict()["wins"] == 5


def test_exact_wilcoxon_by_enumeration_matches():
    diffs = np.array([0.12, -0.05, 0.01, 0.07, 0.30, -0.02, 0.0005, 0.26])
    ranks = scipy.stats.rankdata(np.abs(diffs))
    observed = ranks[diffs < 0].sum()
    signs = np.array(np.meshgrid(*[[0, 1]] * 8)).reshape(8, -1).T  # every sign pattern
    null = signs @ ranks
    p = min(1.0, 2 * np.mean(null <= min(observed, ranks.sum() - observed)))
    assert paired_difference(diffs, np.zeros(8)).p_value == pytest.approx(p)


def test_bootstrap_is_seeded_and_widens_with_confidence():
    first, again, other = paired_difference(A, B, seed=3), paired_difference(A, B, seed=3), paired_difference(A, B, seed=4)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    wide = paired_difference(A, B, seed=3, confidence=0.99)
    assert wide.ci_low < first.ci_low and wide.ci_high > first.ci_high


def test_paired_difference_degenerate_cases():
    single = paired_difference([0.7], [0.5])
    assert single.mean == pytest.approx(0.2) and math.isnan(single.ci_low) and math.isnan(single.ci_high)
    assert single.ci_method == "none" and single.p_value == 1.0 and single.wins == 1
    constant = paired_difference([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert (constant.ci_low, constant.ci_high) == pytest.approx((0.1, 0.1)) and constant.ci_method == "exact"
    assert constant.p_value == pytest.approx(2 / 8)  # all three positive: P(W- <= 0) = 1/8, two-sided
    same = paired_difference([0.3, 0.4, 0.5], [0.3, 0.4, 0.5])
    assert same.p_value == 1.0 and (same.ci_low, same.ci_high, same.ties) == (0.0, 0.0, 3)
    assert paired_difference(A, B, tie_tolerance=0.0).ties == 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a": A, "b": B[:7]}, "a and b must have one value per image"),
    ({"a": [0.1, math.nan], "b": [0.1, 0.2]}, "a holds non-finite values at positions \\[1\\]"),
    ({"a": [[0.1, 0.2]], "b": [0.1, 0.2]}, "a must be a non-empty 1D"),
    ({"a": [], "b": []}, "a must be a non-empty 1D"),
    ({"a": A, "b": B, "confidence": 1.5}, "confidence must lie in"),
    ({"a": A, "b": B, "n_resamples": 0}, "n_resamples must be a positive integer"),
    ({"a": A, "b": B, "tie_tolerance": -1.0}, "tie_tolerance must be >= 0"),
])
def test_paired_difference_rejects_bad_inputs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(kwargs.pop("a"), kwargs.pop("b"), **kwargs)


def test_seed_summary():
    summary = seed_summary([0.5, 0.6, 0.7])
    assert (summary.mean, summary.std, summary.n) == (pytest.approx(0.6), pytest.approx(0.1), 3)
    one = seed_summary([0.42])
    assert one.mean == 0.42 and math.isnan(one.std) and one.to_dict()["n"] == 1
    with pytest.raises(ValueError, match="values must be a non-empty 1D"):
        seed_summary([])


DICE = [0.9, 0.8, 0.2, 0.7, 0.1, 0.85, 0.6, 0.3, 0.95, 0.5]
UNCERTAINTY = [0.1, 0.2, 0.9, 0.3, 0.95, 0.15, 0.4, 0.8, 0.05, 0.5]  # most certain first: .95 .9 .85 .8 .7 .6 .5 .3 .2 .1


def test_risk_coverage_on_a_hand_made_table():
    result = risk_coverage(DICE, UNCERTAINTY, drop_fractions=(0.1, 0.2, 0.25, 0.3))
    assert result.n == 10 and result.full_mean == pytest.approx(0.59)
    assert result.dropped == {0.1: 1, 0.2: 2, 0.25: 2, 0.3: 3}  # floor(f * n); 0.3 * 10 is 3.0000000000000004
    assert result.kept_mean[0.1] == pytest.approx(5.8 / 9)
    assert result.kept_mean[0.2] == pytest.approx(5.6 / 8) == result.kept_mean[0.25]
    assert result.kept_mean[0.3] == pytest.approx(5.3 / 7)
    assert result.coverage == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    assert result.mean_dice[0] == pytest.approx(0.59) and result.mean_dice[-1] == pytest.approx(0.95)
    assert result.mean_dice[1] == pytest.approx(5.8 / 9)
    assert risk_coverage(DICE[:5], UNCERTAINTY[:5]).dropped == {0.1: 0, 0.2: 1}


def test_risk_coverage_ties_and_errors():
    assert risk_coverage([1.0, 0.0], [0.5, 0.5], drop_fractions=(0.5,)).kept_mean[0.5] == 1.0  # later one dropped
    with pytest.raises(ValueError, match="per_image_dice and per_image_uncertainty must have one value per image"):
        risk_coverage(DICE, UNCERTAINTY[:9])
    with pytest.raises(ValueError, match="drop_fractions must lie in"):
        risk_coverage(DICE, UNCERTAINTY, drop_fractions=(1.0,))


def test_macro_over_keeps_only_large_datasets():
    means = {"busi": 0.6, "lits": 0.7, "skin": 0.9, "polyps": math.nan}
    macro = macro_over(means, {"busi": 130, "lits": 30, "skin": 1, "polyps": 4})
    assert macro.value == pytest.approx(0.65) and macro.used == ["busi", "lits"]
    assert macro.excluded == {"skin": "n<30", "polyps": "n<30"}
    assert math.isnan(macro_over({"skin": 0.9}, {"skin": 1}).value)
    with pytest.raises(ValueError, match="only in means \\['skin'\\]"):
        macro_over({"busi": 0.6, "skin": 0.9}, {"busi": 130})
    with pytest.raises(ValueError, match="per_dataset_means \\(of the datasets used\\) holds non-finite"):
        macro_over({"busi": math.nan}, {"busi": 30})
    with pytest.raises(ValueError, match="per_dataset_counts\\['busi'\\] must be a non-negative integer"):
        macro_over({"busi": 0.6}, {"busi": -1})


# 2-bin toy: bin [0, .5): p .1 .3, mask 1 1 -> |1.0 - 0.2| = 0.8 over 2 pixels;
# bin [.5, 1]: p .6 .8 1.0 .9, mask 1 0 1 1 -> |0.75 - 0.825| = 0.075 over 4 pixels. ECE = (2 * .8 + 4 * .075) / 6.
TOY_PROB = torch.tensor([0.1, 0.3, 0.6, 0.8, 1.0, 0.9]).view(1, 1, 2, 3)
TOY_MASK = torch.tensor([1, 1, 1, 0, 1, 1]).view(1, 1, 2, 3)
# error pixels (p > .5 != mask): 0, 1, 3 with uncertainty .9 .5 .7; correct: .6 .0 .5 -> 7.5 of 9 pairs ranked right
TOY_UNC = torch.tensor([0.9, 0.5, 0.6, 0.7, 0.0, 0.5]).view(1, 1, 2, 3)


def test_pixel_calibration_on_a_hand_computed_toy():
    metric = PixelCalibration(n_bins=2)
    metric.update(TOY_PROB, TOY_MASK, TOY_UNC)
    assert metric.ece() == pytest.approx(1.9 / 6)
    assert metric.uncertainty_auroc() == pytest.approx(7.5 / 9)
    assert metric.per_image_uncertainty == pytest.approx([3.2 / 6])
    reliability = metric.reliability()
    assert reliability["count"] == [2, 4] and reliability["positive_fraction"] == pytest.approx([1.0, 0.75])
    assert metric.compute() == {"ece": metric.ece(), "uncertainty_auroc": metric.uncertainty_auroc(), "pixels": 6,
                                "error_pixels": 3, "images": 1}


def _random_batch(generator, n=3, size=16):
    prob = torch.rand(n, 1, size, size, generator=generator, dtype=torch.float64)
    mask = (torch.rand(n, 1, size, size, generator=generator, dtype=torch.float64) < prob).long()
    p = prob.clamp(1e-6, 1 - 1e-6)
    return prob, mask, -(p * p.log2() + (1 - p) * (1 - p).log2())


def test_streaming_equals_one_shot_and_torchmetrics():
    generator = torch.Generator().manual_seed(0)
    batches = [_random_batch(generator), _random_batch(generator, n=2)]
    streamed, one_shot = PixelCalibration(), PixelCalibration()
    for batch in batches:
        streamed.update(*batch)
    prob, mask, unc = (torch.cat(parts) for parts in zip(*batches))
    one_shot.update(prob, mask, unc)
    assert streamed.compute() == pytest.approx(one_shot.compute())
    assert streamed.per_image_uncertainty == pytest.approx(unc.flatten(1).mean(1).tolist())
    # torchmetrics keeps every pixel (and sums in the input dtype: float64 here); uncertainty rounded to float16
    # is exactly what the histogram ranks
    assert streamed.ece() == pytest.approx(float(binary_calibration_error(prob.flatten(), mask.flatten(), n_bins=15)))
    error = ((prob > 0.5).long() != mask).long()
    reference = binary_auroc(unc.half().double().flatten(), error.flatten())
    assert streamed.uncertainty_auroc() == pytest.approx(float(reference), abs=1e-6)  # torchmetrics returns float32
    assert streamed.uncertainty_auroc() == pytest.approx(float(binary_auroc(unc.flatten(), error.flatten())), abs=1e-3)


def test_auroc_is_one_on_error_pixels_and_half_when_random():
    prob, mask, _ = _random_batch(torch.Generator().manual_seed(1), n=4, size=64)
    error = ((prob > 0.5).long() != mask).double()
    perfect, random = PixelCalibration(), PixelCalibration()
    perfect.update(prob, mask, error * 0.9 + 0.05)
    random.update(prob, mask, torch.rand(prob.shape, generator=torch.Generator().manual_seed(2)))
    assert perfect.uncertainty_auroc() == 1.0
    assert random.uncertainty_auroc() == pytest.approx(0.5, abs=0.02)


def test_no_error_pixels_and_perfect_calibration():
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    metric = PixelCalibration()
    metric.update(mask.clone(), mask, torch.zeros_like(mask))
    assert metric.ece() == 0.0 and math.isnan(metric.uncertainty_auroc()) and metric.error_pixels == 0


@pytest.mark.parametrize(("prob", "mask", "unc", "error", "message"), [
    (TOY_PROB, TOY_MASK[..., :2], TOY_UNC, ValueError, "one shape"),
    (TOY_PROB.flatten(), TOY_MASK.flatten()[:1], TOY_UNC.flatten()[:1], ValueError, "one shape"),
    (TOY_PROB[0, 0, 0], TOY_MASK[0, 0, 0], TOY_UNC[0, 0, 0], ValueError, "batch \\(B, ...\\)"),
    (TOY_PROB + 0.5, TOY_MASK, TOY_UNC, ValueError, "probability must lie in"),
    (TOY_PROB, TOY_MASK * 2, TOY_UNC, ValueError, "mask must hold only 0 and 1"),
    (TOY_PROB, TOY_MASK, -TOY_UNC - 1, ValueError, "uncertainty must be finite"),
])
def test_pixel_calibration_rejects_bad_inputs(prob, mask, unc, error, message):
    with pytest.raises(error, match=message):
        PixelCalibration().update(prob, mask, unc)


def test_pixel_calibration_needs_data_and_valid_settings():
    with pytest.raises(RuntimeError, match="no pixels accumulated"):
        PixelCalibration().ece()
    with pytest.raises(ValueError, match="n_bins must be a positive integer"):
        PixelCalibration(n_bins=0)
    with pytest.raises(ValueError, match="threshold must lie in"):
        PixelCalibration(threshold=1.0)
