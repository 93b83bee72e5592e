"""3D CT phantoms: deterministic per seed, labelled with every organ, varying between seeds, writable as NIfTI."""

import numpy as np
import SimpleITK as sitk

from anatomy_pretrain.phantoms import LABELS, ORGAN_NAMES, make_ct_phantom, write_phantom_dataset


def test_phantom_is_deterministic_per_seed():
    a, b = make_ct_phantom(3, spacing=(6.0, 6.0, 6.0)), make_ct_phantom(3, spacing=(6.0, 6.0, 6.0))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)


def test_phantoms_vary_between_seeds():
    assert make_ct_phantom(1).spacing != make_ct_phantom(2).spacing
    a, b = make_ct_phantom(1, spacing=(6.0, 6.0, 6.0)), make_ct_phantom(2, spacing=(6.0, 6.0, 6.0))
    volume = lambda p, k: int((p.label == k).sum())
    differs = [name for name, k in LABELS.items() if abs(volume(a, k) - volume(b, k)) > 0.05 * max(volume(a, k), 1)]
    assert len(differs) >= len(LABELS) - 2, f"organ volumes barely change between seeds; only {differs} do"


def test_phantom_has_organs_lungs_and_bones():
    p = make_ct_phantom(0, spacing=(4.0, 4.0, 4.0), fov_length_mm=470.0)
    present = set(np.unique(p.label).tolist())
    assert len(ORGAN_NAMES) == 15 and set(LABELS.values()) <= present
    assert p.image[p.label == LABELS["bones"]].mean() > 300
    assert p.image[p.label == LABELS["lungs"]].mean() < -600
    assert p.label.dtype == np.uint8 and p.image.dtype == np.float32


def test_phantoms_written_as_nifti(tmp_path):
    (img_path, lbl_path), = write_phantom_dataset(tmp_path, 1, seed=5)
    img, lbl = sitk.ReadImage(str(img_path)), sitk.ReadImage(str(lbl_path))
    assert img.GetSize() == lbl.GetSize() and img.GetDimension() == 3
    assert np.allclose(img.GetSpacing(), make_ct_phantom(5).spacing, atol=1e-4)
    assert sitk.GetArrayFromImage(lbl).max() >= 10
