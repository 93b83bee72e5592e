"""VolumeDataModule and volume IO: bad volumes are errors naming the file; patches, splits, caching; real volumes load."""

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from anatomy_pretrain.splits import kfold_split, label_budget
from anatomy_pretrain.tiny import tiny_datamodule
from anatomy_pretrain.volume_data import VolumeDataModule
from anatomy_pretrain.volume_io import VolumeError, read_subject, read_volume

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "volumes"


def _write(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> Path:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing[: array.ndim])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))
    return path


def test_unreadable_volume_names_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti file at all")
    with pytest.raises(VolumeError, match="broken.nii.gz"):
        read_volume(bad)


def test_2d_volume_names_the_file(tmp_path):
    flat = _write(tmp_path / "flat.nii.gz", np.zeros((16, 16), np.float32))
    with pytest.raises(VolumeError, match="flat.nii.gz.*not a 3D"):
        read_volume(flat)


def test_nan_volume_names_the_file(tmp_path):
    arr = np.zeros((8, 8, 8), np.float32)
    arr[2, 3, 4] = np.nan
    with pytest.raises(VolumeError, match="nan_case.mha.*NaN"):
        read_volume(_write(tmp_path / "nan_case.mha", arr))


def test_label_geometry_mismatch_names_both_files(tmp_path):
    img = _write(tmp_path / "images" / "c1.nrrd", np.zeros((8, 8, 8), np.float32))
    lbl = _write(tmp_path / "labels" / "c1.nrrd", np.zeros((8, 8, 8), np.uint8), spacing=(2.0, 1.0, 1.0))
    with pytest.raises(VolumeError, match="labels/c1.nrrd.*images/c1.nrrd"):
        read_subject(img, lbl)


def test_datamodule_reports_bad_file_in_a_folder(tmp_path):
    _write(tmp_path / "images" / "ok.nii.gz", np.zeros((40, 40, 40), np.float32))
    (tmp_path / "images" / "garbage.nii.gz").write_bytes(b"xx")
    dm = VolumeDataModule(root=str(tmp_path), num_folds=1, patch_size=(16, 16, 16), window=None, crop_to_body=False)
    with pytest.raises(VolumeError, match="garbage.nii.gz"):
        dm.setup("fit")


def test_kfold_split_is_seeded_sorted_and_disjoint():
    names = [f"c{i}" for i in range(10)]
    held = [kfold_split(names, 5, f, seed=1)[1] for f in range(5)]
    assert sorted(sum(held, [])) == sorted(names)
    assert kfold_split(list(reversed(names)), 5, 2, seed=1) == kfold_split(names, 5, 2, seed=1)
    assert kfold_split(names, 5, 2, seed=1) != kfold_split(names, 5, 2, seed=2)


def test_phantom_patches_split_file_and_cache(tmp_path):
    dm = tiny_datamodule(phantoms=3, split_file=str(tmp_path / "split.json"), cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    assert dm.num_classes == 16 and len(dm.train_subjects) == 2 and len(dm.held_out_subjects) == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 32, 32, 32) and batch["label"].shape == (2, 1, 32, 32, 32)
    assert batch["image"].min() >= -1 and batch["image"].max() <= 1
    assert batch["location"].shape == (2, 6) and np.allclose(batch["spacing"].numpy(), 10.0)
    vol = next(iter(dm.val_dataloader()))
    assert vol["image"].shape[2:] == vol["label"].shape[2:] and min(vol["image"].shape[2:]) >= 32
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["held_out"] == [s["name"] for s in dm.held_out_subjects]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 3
    again = tiny_datamodule(phantoms=3, cache_dir=str(tmp_path / "cache"))
    again.setup("fit")
    assert np.array_equal(again.train_subjects[0]["image"].data.numpy(), dm.train_subjects[0]["image"].data.numpy())


def test_real_hippocampus_volumes_load():
    root = SHARED / "hippocampus_mri_msd"
    if not (root / "images").is_dir():
        pytest.skip(f"real volumes absent: {root} not found (shared sample data not mounted)")
    dm = VolumeDataModule(root=str(root), max_cases=4, spacing=(1.0, 1.0, 1.0), window=None, crop_to_body=False,
                          patch_size=(32, 32, 32), num_folds=2, batch_size=1)
    dm.setup("fit")
    assert dm.num_classes == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (1, 1, 32, 32, 32) and set(batch["label"].unique().tolist()) <= {0, 1, 2}


def test_real_ct_volume_loads_and_crops_to_body():
    path = SHARED / "spleen_ct_msd" / "images"
    if not path.is_dir():
        pytest.skip(f"real volumes absent: {path} not found (shared sample data not mounted)")
    dm = VolumeDataModule(root=str(path.parent), spacing=(4.0, 4.0, 5.0), patch_size=(32, 32, 32), num_folds=1)
    dm.setup("fit")
    image = dm.train_subjects[0]["image"]
    assert image.data.min() >= -1 and image.data.max() <= 1 and np.allclose(image.spacing, (4.0, 4.0, 5.0))
    assert "label" in dm.train_subjects[0]


def test_subject_sampler_advances_epoch_and_splits_ranks():
    from anatomy_pretrain.volume_data import EpochAdvancingDistributedSampler

    data = list(range(10))
    rank0 = EpochAdvancingDistributedSampler(data, num_replicas=2, rank=0, shuffle=True, seed=0)
    rank1 = EpochAdvancingDistributedSampler(data, num_replicas=2, rank=1, shuffle=True, seed=0)
    first0, first1 = list(rank0), list(rank1)
    assert sorted(first0 + first1) == data and rank0.epoch == 1
    assert list(rank0) != first0  # a new permutation on the next pass


def test_label_budget_is_seeded_nested_and_validated(tmp_path):
    names = [f"case_{i}" for i in range(10)]
    two, five = label_budget(names, 2, seed=3), label_budget(names, 5, seed=3)
    assert len(two) == 2 and set(two) <= set(five) and two == label_budget(names, 2, seed=3)
    with pytest.raises(ValueError, match="labelled_cases=11 but the training fold has only 10"):
        label_budget(names, 11)
    dm = tiny_datamodule(phantoms=4, num_folds=2, labelled_cases=1, train_on="labelled", cache_dir=str(tmp_path))
    dm.setup("fit")
    full = tiny_datamodule(phantoms=4, num_folds=2, train_on="labelled", cache_dir=str(tmp_path))
    full.setup("fit")
    assert len(dm.train_subjects) == 1 and dm.train_subjects[0]["name"] in [s["name"] for s in full.train_subjects]
    assert [s["name"] for s in dm.held_out_subjects] == [s["name"] for s in full.held_out_subjects]
    with pytest.raises(ValueError, match="labelled_cases must be >= 1"):
        tiny_datamodule(labelled_cases=0)
