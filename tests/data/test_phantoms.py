"""Phantoms: deterministic for a seed, every style present, not solvable by an intensity threshold."""

from pathlib import Path

import numpy as np

from unisegdiff.data.checks import check_root
from unisegdiff.data.phantoms import PHANTOM_STYLES, make_phantom, make_phantom_datasets, write_phantom_root
from unisegdiff.data.preprocess import prepare_image


def test_deterministic_for_a_seed_and_varied_across_seeds():
    a, b = make_phantom("phantom_ct", 3, 64, seed=5), make_phantom("phantom_ct", 3, 64, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    c = make_phantom("phantom_ct", 3, 64, seed=6)
    assert not np.array_equal(a.mask, c.mask)


def test_styles_types_and_lesion_sizes_vary():
    datasets = make_phantom_datasets(n_per_dataset=8, size=64, seed=0)
    assert list(datasets) == list(PHANTOM_STYLES)
    kinds = {style: (s[0].image.dtype, s[0].image.shape) for style, s in datasets.items()}
    assert kinds["phantom_dermoscopy"] == (np.uint8, (64, 64, 3))
    assert kinds["phantom_ct"][0] == np.int16 and kinds["phantom_mr"][0] == np.float32
    fractions = [s.mask.mean() for samples in datasets.values() for s in samples]
    assert min(fractions) > 0 and max(fractions) / min(fractions) > 3  # lesion sizes vary


def _dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    return 2 * (prediction & truth).sum() / max(prediction.sum() + truth.sum(), 1)


def test_threshold_classifier_is_far_from_solving_them():
    datasets = make_phantom_datasets(n_per_dataset=12, size=64, seed=1)
    for style, samples in datasets.items():
        grays = [prepare_image(s.image, style, 64, 3).mean(0).numpy() for s in samples]
        masks = [s.mask.astype(bool) for s in samples]
        best = max(np.mean([_dice((g > t) if up else (g < t), m) for g, m in zip(grays, masks)])
                   for t in np.linspace(0, 1, 26) for up in (True, False))
        assert best < 0.75, (style, best)


def test_written_root_is_canonical_and_clean(tmp_path: Path):
    root = write_phantom_root(tmp_path / "phantoms", n_per_dataset=2, size=32, seed=0)
    assert sorted(p.name for p in root.iterdir()) == sorted(PHANTOM_STYLES)
    assert (root / "phantom_ct" / "images" / "ct_0000.nii.gz").is_file()
    assert check_root(root) == []
