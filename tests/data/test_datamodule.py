"""LesionDataModule: batch format, deterministic splits, balanced DDP-safe sampling, workers, real data."""

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from unisegdiff.data.datamodule import LesionDataModule
from unisegdiff.data.phantoms import PHANTOM_STYLES, write_phantom_root
from unisegdiff.data.preprocess import prepare_image
from unisegdiff.data.registry import load_registry
from unisegdiff.data.sampling import DistributedWeightedSampler, balanced_weights
from unisegdiff.data.splits import split_stems

REAL_DATASETS = ["brain_mri_lgg", "breast_us_busi", "liver_ct_lits", "polyp_endoscopy_kvasir", "skin_dermoscopy_isic2018", "thyroid_us_tg3k"]


def _check_batch(batch: dict, size: int, channels: int = 3) -> None:
    n = batch["image"].shape[0]
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (n, channels, size, size)
    assert batch["mask"].dtype == torch.float32 and batch["mask"].shape == (n, 1, size, size)
    assert set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    assert torch.isfinite(batch["image"]).all()
    assert len(batch["dataset"]) == n and len(batch["stem"]) == n and all(isinstance(s, str) for s in batch["stem"])


def test_phantom_default_batches_and_names():
    module = LesionDataModule(image_size=32, phantom_samples=10, batch_size=6, num_workers=0)
    assert module.dataset_names == sorted(PHANTOM_STYLES)
    module.setup("fit")
    _check_batch(next(iter(module.train_dataloader())), 32)
    val = [b for b in module.val_dataloader()]
    _check_batch(val[0], 32)
    again = [b["stem"] for b in module.val_dataloader()]
    assert [b["stem"] for b in val] == again  # deterministic, unshuffled
    module.setup("test")
    assert sum(len(b["stem"]) for b in module.test_dataloader()) == sum(len(s["test"]) for s in module.splits().values())


def test_one_channel_and_no_augmentation_is_exact():
    module = LesionDataModule(image_size=24, channels=1, phantom_samples=6, batch_size=4, num_workers=0, augment=False, datasets=["phantom_ct"])
    first = next(iter(module.test_dataloader()))
    _check_batch(first, 24, channels=1)
    assert first["dataset"] == ["phantom_ct"] * len(first["stem"])


def test_splits_deterministic_sorted_and_grouped():
    stems = [f"TCGA_A_{p}_{i}" for p in range(8) for i in range(5)]
    shuffled = stems[:]
    random.Random(3).shuffle(shuffled)
    spec = load_registry()["brain_mri_lgg"]
    a = split_stems(stems, "brain_mri_lgg", 0, 0.15, 0.15, spec.group_of)
    assert a == split_stems(shuffled, "brain_mri_lgg", 0, 0.15, 0.15, spec.group_of)  # listing order does not matter
    assert a != split_stems(stems, "brain_mri_lgg", 1, 0.15, 0.15, spec.group_of)
    groups = {name: {spec.group_of(s) for s in part} for name, part in a.items()}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"]) and not (groups["val"] & groups["test"])
    assert sorted(sum(a.values(), [])) == sorted(stems)


def test_splits_json_in_dataset_is_used_and_split_dir_written(tmp_path: Path):
    root = write_phantom_root(tmp_path / "root", n_per_dataset=6, size=24, seed=0)
    (root / "phantom_mr" / "splits.json").write_text(json.dumps({"train": ["mr_0000", "mr_0001", "mr_0002", "mr_0003"], "test": ["mr_0005"]}))
    module = LesionDataModule(root=str(root), datasets=["phantom_mr", "phantom_ct"], image_size=24, num_workers=0, split_dir=str(tmp_path / "splits"))
    splits = module.splits()
    assert splits["phantom_mr"]["test"] == ["mr_0005"] and len(splits["phantom_mr"]["val"]) == 1
    assert "mr_0004" not in sum(splits["phantom_mr"].values(), [])
    module.setup("fit")
    written = json.loads((tmp_path / "splits" / "splits.json").read_text())
    assert sorted(written["datasets"]) == ["phantom_ct", "phantom_mr"] and written["settings"]["seed"] == 0
    assert LesionDataModule(root=str(root), datasets=["phantom_mr", "phantom_ct"], num_workers=0).splits() == splits


def test_balanced_sampler_shards_by_rank_and_is_kept_by_lightning():
    names = ["big"] * 900 + ["small"] * 100
    weights = balanced_weights(names)
    ranks = [DistributedWeightedSampler(weights, num_samples=1000, num_replicas=2, rank=r, seed=0) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(3)
        assert isinstance(sampler, DistributedSampler)  # Lightning leaves DistributedSamplers in place
    keyed = [list(s) for s in ranks]  # (index, augmentation seed) pairs
    drawn = [[i for i, _ in k] for k in keyed]
    assert len(drawn[0]) == len(drawn[1]) == 500
    assert keyed[0] == list(ranks[0])  # same epoch -> same indices and augmentation seeds
    full = torch.multinomial(torch.as_tensor(weights, dtype=torch.double), 1000, True, generator=torch.Generator().manual_seed(3)).tolist()
    assert drawn[0] == full[0::2] and drawn[1] == full[1::2]  # one draw, sharded
    assert len({seed for _, seed in keyed[0] + keyed[1]}) > 900  # a fresh augmentation seed per draw
    share = Counter(names[i] for i in drawn[0] + drawn[1])
    assert 0.4 < share["small"] / 1000 < 0.6
    plain = DistributedWeightedSampler(weights, seed=0)
    assert list(plain) != list(plain)  # a new epoch per iteration without set_epoch
    weighted = balanced_weights(names, {"small": 3.0})
    assert abs(sum(w for w, n in zip(weighted, names) if n == "small") / sum(weighted) - 0.75) < 1e-9
    with pytest.raises(ValueError, match="not in the train split"):
        balanced_weights(names, {"other": 1.0})


def test_workers_two_and_balanced_counts():
    module = LesionDataModule(image_size=32, phantom_samples=12, batch_size=8, num_workers=2, seed=1)
    module.setup("fit")
    counts, first_images = Counter(), []
    for batch in module.train_dataloader():
        _check_batch(batch, 32)
        counts.update(batch["dataset"])
        first_images.append(batch["image"][0])
    assert set(counts) == set(PHANTOM_STYLES)
    assert not torch.equal(first_images[0], first_images[1])


def test_prepare_image_for_raw_user_arrays():
    hu = np.random.default_rng(0).integers(-1000, 1000, (40, 50)).astype(np.int16)
    ct = prepare_image(hu, "ct", 32, 3)
    assert ct.shape == (3, 32, 32) and ct.dtype == torch.float32 and 0 <= ct.min() and ct.max() <= 1
    assert torch.equal(ct[0], ct[1])  # gray replicated
    rgb = prepare_image(np.zeros((30, 20, 3), np.uint8), "skin_dermoscopy_isic2018", 16, 3)
    assert rgb.shape == (3, 16, 16)
    assert prepare_image(np.ones((30, 20), np.float32), "auto", 16, 1).shape == (1, 16, 16)
    with pytest.raises(ValueError, match="unknown modality"):
        prepare_image(hu, "xray-ish", 16)


def test_user_registry_adds_a_seventh_dataset(tmp_path: Path):
    root = write_phantom_root(tmp_path / "root", n_per_dataset=5, size=24, seed=0)
    (root / "phantom_ct").rename(root / "my_ct_set")
    registry = tmp_path / "mine.yaml"
    registry.write_text("datasets:\n  my_ct:\n    folder: my_ct_set\n    organ: kidney\n    modality: ct\n"
                        "    normalization: ct_window\n    params: {window: [-200, 300]}\n    color: gray\n")
    module = LesionDataModule(root=str(root), registry=str(registry), datasets=["my_ct"], image_size=24, num_workers=0)
    assert module.dataset_names == ["my_ct"]
    assert next(iter(module.test_dataloader()))["dataset"][0] == "my_ct"
    assert load_registry(str(registry))["my_ct"].params["window"] == [-200, 300]


def test_real_datasets_through_the_registry(shared_data: Path):
    root = shared_data / "lesion2d"
    present = [d for d in REAL_DATASETS if (root / d / "images").is_dir()]
    if not present:
        pytest.skip(f"no 2D lesion datasets under {root}")
    full = LesionDataModule(root=str(root), num_workers=0).splits()
    for name in present:
        n = len(list((root / name / "images").iterdir()))
        sizes = {k: len(v) for k, v in full[name].items()}
        assert sum(sizes.values()) == n and min(sizes.values()) >= 1, (name, sizes)
        if load_registry()[name].group_regex is None:
            assert sizes["test"] == sizes["val"] == max(1, round(0.15 * n)), (name, sizes)
    assert {k: len(v) for k, v in full["breast_us_busi"].items()} == {"train": 453, "val": 97, "test": 97}
    module = LesionDataModule(root=str(root), image_size=64, max_per_dataset=6, batch_size=4, num_workers=0, augment=False)
    assert module.dataset_names == sorted(present)
    seen = Counter()
    for batch in module.test_dataloader():
        _check_batch(batch, 64)
        seen.update(batch["dataset"])
    assert set(seen) == set(present)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    _check_batch(batch, 64)


def test_lightning_fit_smoke_with_weighted_sampler(tmp_path: Path):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Conv2d(3, 1, 3, padding=1)

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.binary_cross_entropy_with_logits(self.net(batch["image"]), batch["mask"])

        def validation_step(self, batch, batch_idx):
            assert batch["dataset"] and batch["stem"]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    module = LesionDataModule(image_size=16, phantom_samples=6, batch_size=4, num_workers=0)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Tiny(), datamodule=module)
    assert isinstance(trainer.train_dataloader.sampler, DistributedWeightedSampler)
    assert trainer.train_dataloader.sampler.epoch == 1  # Lightning called set_epoch


def test_a_resumed_loader_continues_its_epoch_where_the_checkpoint_left_it():
    """ResumableLoader's state (epoch, batches trained) makes the next iteration of that epoch start at the next
    batch of the same draw; an iteration of another epoch (a checkpoint from an epoch's end) is not shifted."""
    from unisegdiff.data.sampling import DistributedWeightedSampler, ResumableLoader

    def loader():
        sampler = DistributedWeightedSampler([1.0] * 10, seed=3)
        sampler.set_epoch(2)
        dataset = type("Draws", (), {"__getitem__": lambda self, key: key, "__len__": lambda self: 10})()  # (index, aug seed)
        return ResumableLoader(dataset, batch_size=2, sampler=sampler, collate_fn=list)

    full = list(loader())
    saved = loader()
    saved.trained_batches = lambda: 2
    state = saved.state_dict()
    assert state == {"epoch": 2, "batches": 2, "batch_size": 2}
    resumed = loader()
    resumed.load_state_dict(state)
    assert list(resumed) == full[2:]
    assert list(resumed) == full  # the skip applies once: the next iteration is the whole epoch again
    other = loader()
    other.load_state_dict({"epoch": 1, "batches": 2, "batch_size": 2})  # saved at the end of epoch 1
    assert list(other) == full
    with pytest.raises(ValueError, match="batch_size 4, this run has 2"):
        loader().load_state_dict({"epoch": 2, "batches": 1, "batch_size": 4})
