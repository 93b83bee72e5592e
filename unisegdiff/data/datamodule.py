"""LesionDataModule: every 2D lesion dataset of a canonical root (or the embedded phantoms) as one
training stream: seeded splits, per-modality normalization, fixed size and channels, balanced sampling.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from monai.data import DistributedSampler as UnpaddedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from unisegdiff.data.canonical import SPLITS_FILE, PairPaths, dataset_folders, load_pair, scan_dataset
from unisegdiff.data.errors import DataError
from unisegdiff.data.phantoms import PHANTOM_STYLES, make_phantom
from unisegdiff.data.preprocess import preprocess_image, resize_mask
from unisegdiff.data.registry import DatasetSpec, load_registry, spec_for_folder
from unisegdiff.data.sampling import DistributedWeightedSampler, ResumableLoader, balanced_weights
from unisegdiff.data.splits import (
    SPLIT_NAMES, cap_splits, carve_val, check_split_override, kfold_stems, read_splits_file, split_stems, write_splits_json,
)
from unisegdiff.data.transforms import seed_worker_augmentation, train_augmentation


@dataclass(frozen=True)
class SampleRef:
    """Where one sample comes from: a canonical file pair, or a phantom (style, index) made on demand."""

    dataset: str
    stem: str
    spec: DatasetSpec
    pair: PairPaths | None = None
    phantom_index: int | None = None
    phantom_seed: int = 0


def load_sample(ref: SampleRef, image_size: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode, check, normalize and resize one sample: image float32 (C, S, S), mask uint8 (1, S, S) {0, 1}."""
    if ref.pair is not None:
        image, mask = load_pair(ref.pair)
        where = str(ref.pair.image)
    else:
        phantom = make_phantom(ref.dataset, ref.phantom_index or 0, image_size, ref.phantom_seed)
        image, mask, where = phantom.image, phantom.mask, f"phantom {ref.dataset}/{ref.stem}"
    return preprocess_image(image, ref.spec, image_size, channels, where), resize_mask(mask, image_size)


class LesionSampleDataset(Dataset):
    """Samples of one split as dicts {"image", "mask", "dataset", "stem"}; decoded arrays cached in memory
    (one contiguous array, built before DataLoader workers fork, so workers share it)."""

    def __init__(self, refs: list[SampleRef], image_size: int, channels: int, transform: Any = None,
                 cache: bool = True, threads: int = 1):
        self.refs, self.image_size, self.channels, self.transform = refs, image_size, channels, transform
        self.images: np.ndarray | None = None
        self.masks: np.ndarray | None = None
        if cache and refs:
            self.images, self.masks = self._decode_all(threads)

    def _decode_all(self, threads: int) -> tuple[np.ndarray, np.ndarray]:
        images = np.empty((len(self.refs), self.channels, self.image_size, self.image_size), np.float32)
        masks = np.empty((len(self.refs), 1, self.image_size, self.image_size), np.uint8)
        errors: list[str] = []

        def fill(i: int) -> None:
            try:
                images[i], masks[i] = load_sample(self.refs[i], self.image_size, self.channels)
            except DataError as error:
                errors.append(str(error))

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            list(pool.map(fill, range(len(self.refs))))
        if errors:
            shown = "\n  ".join(sorted(errors)[:10]) + (f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else "")
            raise DataError(f"{len(errors)} sample(s)", f"cannot be loaded:\n  {shown}\n",
                            "fix or remove these files; `unisegdiff data check <root>` lists every problem")
        return images, masks

    @property
    def dataset_of_sample(self) -> list[str]:
        return [ref.dataset for ref in self.refs]

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key`` is an index, or (index, augmentation seed) from ``DistributedWeightedSampler``."""
        index, aug_seed = key if isinstance(key, tuple) else (key, None)
        ref = self.refs[index]
        if self.images is not None:
            image, mask = self.images[index], self.masks[index]
        else:
            image, mask = load_sample(ref, self.image_size, self.channels)
        sample = {"image": torch.tensor(image, dtype=torch.float32), "mask": torch.tensor(mask, dtype=torch.float32)}
        if self.transform is not None:
            if aug_seed is not None:
                self.transform.set_random_state(seed=aug_seed)
            sample = self.transform(sample)
        return {"image": torch.as_tensor(sample["image"]).as_subclass(torch.Tensor).float().contiguous(),
                "mask": (torch.as_tensor(sample["mask"]).as_subclass(torch.Tensor) > 0.5).float().contiguous(),
                "dataset": ref.dataset, "stem": ref.stem}


class LesionDataModule(L.LightningDataModule):
    """2D lesion datasets (canonical root or embedded phantoms) for every pipeline stage.

    Batches: {"image": float32 (B, channels, S, S), "mask": float32 (B, 1, S, S) in {0, 1},
    "dataset": list[str], "stem": list[str]}.

    Args:
        root: canonical root ``<root>/<dataset>/images|masks``; None: in-memory phantoms (six styles).
        datasets: registry names (or folder names) to use; None: every dataset found.
        registry: a YAML whose entries merge over ``configs/data/registry.yaml``.
        image_size / channels: every sample is resized to (channels, image_size, image_size).
        batch_size / num_workers: DataLoader settings (persistent workers when num_workers > 0).
        seed: seeds sampling and augmentation, and the splits unless ``split_seed`` is given.
        split_seed: seeds the splits (per dataset, from sorted stems) and the phantoms' content; keeping it
            fixed while ``seed`` varies trains several seeds on the same split (the benchmark does so).
        val_fraction / test_fraction: split shares when a dataset has no ``splits.json``.
        augment: MONAI flips / affine / intensity jitter on the train split only.
        balanced_sampling: each dataset equally likely per draw (times ``dataset_weights``), whatever its size;
            a ``DistributedWeightedSampler`` shards the draws by rank under DDP.
        dataset_weights: relative draw weight per dataset name (default 1).
        cache: decode + resize every sample once, in ``setup``, and keep the arrays in memory.
        max_per_dataset: cap per dataset over all splits (quick profiles), keeping the split shares.
        phantom_samples: phantoms per style when ``root`` is None.
        split_dir: if given, the splits are written to ``<split_dir>/splits.json``.
        split_overrides: ``{dataset: {"train"|"val"|"test": [stems]}}`` replacing those datasets' splits (a fold of
            :meth:`kfold_splits`; the benchmark's cross-validation of the small sets).
    """

    def __init__(self, root: str | None = None, datasets: list[str] | None = None, registry: str | None = None,
                 image_size: int = 128, channels: int = 3, batch_size: int = 8, num_workers: int = 2, seed: int = 0,
                 val_fraction: float = 0.15, test_fraction: float = 0.15, augment: bool = True,
                 balanced_sampling: bool = True, dataset_weights: dict[str, float] | None = None, cache: bool = True,
                 max_per_dataset: int | None = None, phantom_samples: int = 48, split_dir: str | None = None,
                 split_seed: int | None = None, split_overrides: dict[str, dict[str, list[str]]] | None = None):
        super().__init__()
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) with a sum below 1")
        if image_size < 8 or channels < 1 or batch_size < 1 or num_workers < 0:
            raise ValueError("image_size must be >= 8, channels >= 1, batch_size >= 1, num_workers >= 0")
        if max_per_dataset is not None and max_per_dataset < 3:
            raise ValueError(f"max_per_dataset={max_per_dataset} leaves no room for train/val/test; use at least 3 or None")
        self.save_hyperparameters()
        self.root, self.registry_path = root, registry
        self.image_size, self.channels, self.batch_size, self.num_workers = image_size, channels, batch_size, num_workers
        self.seed, self.val_fraction, self.test_fraction = seed, val_fraction, test_fraction
        self.split_seed = seed if split_seed is None else split_seed
        self.augment, self.balanced_sampling, self.dataset_weights = augment, balanced_sampling, dataset_weights
        self.cache, self.max_per_dataset, self.phantom_samples, self.split_dir = cache, max_per_dataset, phantom_samples, split_dir
        self.selected = list(datasets) if datasets else None
        self.split_overrides = dict(split_overrides or {})
        self._refs: dict[str, dict[str, SampleRef]] | None = None
        self._splits: dict[str, dict[str, list[str]]] | None = None
        self._datasets: dict[str, LesionSampleDataset] = {}

    # --- what is there --------------------------------------------------------------------------
    def _discover(self) -> dict[str, dict[str, SampleRef]]:
        """{dataset: {stem: SampleRef}} for the selected datasets."""
        if self._refs is not None:
            return self._refs
        registry = load_registry(self.registry_path)
        refs: dict[str, dict[str, SampleRef]] = {}
        if self.root is None:
            for style in PHANTOM_STYLES:
                if self.selected and style not in self.selected:
                    continue
                spec = registry[style]
                refs[style] = {f"{style.removeprefix('phantom_')}_{i:04d}": SampleRef(style, f"{style.removeprefix('phantom_')}_{i:04d}", spec, phantom_index=i, phantom_seed=self.split_seed)
                               for i in range(self.phantom_samples)}
        else:
            folders = dataset_folders(self.root)
            if not folders:
                raise DataError(self.root, "no dataset folders (<root>/<dataset>/images + masks) found",
                                "import a dataset (`unisegdiff data import ...`) or pass root=None for phantoms")
            for folder in folders:
                spec = spec_for_folder(registry, folder)
                if self.selected and spec.name not in self.selected and folder not in self.selected:
                    continue
                pairs, problems = scan_dataset(self.root, folder)
                if problems:
                    shown = "\n  ".join(str(p) for p in problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
                    raise DataError(Path(self.root) / folder, f"{len(problems)} layout problem(s):\n  {shown}\n",
                                    f"fix them; `unisegdiff data check {self.root}` lists every problem")
                refs[spec.name] = {p.stem: SampleRef(spec.name, p.stem, spec, pair=p) for p in pairs}
        if self.selected:
            missing = [name for name in self.selected if name not in refs and not any(r.spec.folder == name for d in refs.values() for r in d.values())]
            if missing:
                raise DataError(self.root or "phantoms", f"datasets {missing} not found", f"available: {self._available(registry)}")
        self._refs = refs
        return refs

    def _available(self, registry: dict[str, DatasetSpec]) -> list[str]:
        if self.root is None:
            return list(PHANTOM_STYLES)
        return [spec_for_folder(registry, f).name for f in dataset_folders(self.root)]

    @property
    def dataset_names(self) -> list[str]:
        """Sorted names of the datasets this module serves."""
        return sorted(self._discover())

    def splits(self) -> dict[str, dict[str, list[str]]]:
        """{dataset: {"train"|"val"|"test": [stems]}}: splits.json when the dataset has one, else seeded
        from sorted stems, grouped by patient/volume per the registry; capped by ``max_per_dataset``."""
        if self._splits is not None:
            return self._splits
        result: dict[str, dict[str, list[str]]] = {}
        for name, refs in sorted(self._discover().items()):
            spec = next(iter(refs.values())).spec
            stems = sorted(refs)
            where = str(Path(self.root) / spec.folder) if self.root else f"phantoms/{name}"
            if not stems:
                raise DataError(where, "empty dataset: no image/mask pairs", "add pairs or leave the dataset out with `datasets`")
            splits_file = Path(self.root) / spec.folder / SPLITS_FILE if self.root else None
            if splits_file is not None and splits_file.is_file():
                parts = carve_val(read_splits_file(splits_file, stems), name, self.split_seed, self.val_fraction, spec.group_of)
            else:
                parts = split_stems(stems, name, self.split_seed, self.val_fraction, self.test_fraction, spec.group_of, where)
            result[name] = cap_splits(parts, self.max_per_dataset, self.val_fraction, self.test_fraction)
            if name in self.split_overrides:  # checked against the stems the dataset's own split serves
                result[name] = check_split_override(self.split_overrides[name], sum(result[name].values(), []), name)
        stray = sorted(set(self.split_overrides) - set(result))
        if stray:
            raise ValueError(f"split_overrides names datasets that are not served: {stray}; served: {sorted(result)}")
        self._splits = result
        return result

    def kfold_splits(self, datasets: list[str], k: int) -> list[dict[str, dict[str, list[str]]]]:
        """``k`` cross-validation folds over every stem the splits serve of each of ``datasets`` (whole patient /
        volume groups per the registry), as ``split_overrides`` for one fold each."""
        splits, refs = self.splits(), self._discover()
        folds: list[dict[str, dict[str, list[str]]]] = [{} for _ in range(k)]
        for name in datasets:
            if name not in splits:
                raise ValueError(f"kfold_splits: dataset {name!r} is not served; served: {sorted(splits)}")
            spec = next(iter(refs[name].values())).spec
            where = str(Path(self.root) / spec.folder) if self.root else f"phantoms/{name}"
            for f, parts in enumerate(kfold_stems(sum(splits[name].values(), []), k, name, self.split_seed, spec.group_of, where)):
                folds[f][name] = parts
        return folds

    def split_settings(self) -> dict[str, Any]:
        return {"root": self.root, "seed": self.split_seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "max_per_dataset": self.max_per_dataset, "phantom_samples": self.phantom_samples if self.root is None else None}

    # --- Lightning hooks ------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}.get(stage or "", SPLIT_NAMES)
        splits = self.splits()
        if self.split_dir:
            write_splits_json(splits, Path(self.split_dir) / "splits.json", self.split_settings())
        for split in needed:
            if split in self._datasets:
                continue
            refs = [self._discover()[name][stem] for name in sorted(splits) for stem in sorted(splits[name][split])]
            transform = train_augmentation(self.image_size, self.seed) if (split == "train" and self.augment) else None
            self._datasets[split] = LesionSampleDataset(refs, self.image_size, self.channels, transform, self.cache, max(1, self.num_workers))

    def all_samples_dataset(self) -> LesionSampleDataset:
        """Every pair of the selected datasets, unsplit and unaugmented (scoring a trained model on an external root)."""
        refs = [ref for name, by_stem in sorted(self._discover().items()) for _, ref in sorted(by_stem.items())]
        return LesionSampleDataset(refs, self.image_size, self.channels, None, self.cache, max(1, self.num_workers))

    def split_dataset(self, split: str) -> LesionSampleDataset:
        """The dataset of one split (set up on demand)."""
        if split not in self._datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        dataset = self._datasets[split]
        if len(dataset) == 0:
            fraction = {"train": "", "val": "val_fraction", "test": "test_fraction"}[split]
            raise DataError(self.root or "phantoms", f"the {split} split is empty",
                            f"raise {fraction} or list {split} stems in splits.json" if fraction else "add data")
        return dataset

    def _loader(self, dataset: Dataset, loader_class: type[DataLoader] = DataLoader, **kwargs: Any) -> DataLoader:
        # an own generator: worker base seeds are then not drawn from the global RNG, which the
        # models use for timesteps and noise (and which checkpoints restore on resume)
        kwargs.setdefault("generator", torch.Generator().manual_seed(self.seed))
        return loader_class(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, worker_init_fn=seed_worker_augmentation, **kwargs)

    def train_dataloader(self) -> DataLoader:
        dataset = self.split_dataset("train")
        if not self.balanced_sampling:
            generator = torch.Generator().manual_seed(self.seed)
            return self._loader(dataset, shuffle=True, drop_last=len(dataset) > self.batch_size, generator=generator)
        trainer = getattr(self, "trainer", None)
        world_size, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = DistributedWeightedSampler(balanced_weights(dataset.dataset_of_sample, self.dataset_weights),
                                             num_samples=len(dataset), num_replicas=world_size, rank=rank, seed=self.seed)
        # the epoch Lightning is about to run: with workers, the first iterator (a resumed run's included) prefetches
        # from the sampler before Lightning's own set_epoch call, and a resumed run would replay epoch 0's draws
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0)
        loader = self._loader(dataset, sampler=sampler, drop_last=len(sampler) > self.batch_size, loader_class=ResumableLoader)
        if trainer is not None:  # the batches trained in the current epoch, for a checkpoint's loader state
            loader.trained_batches = lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return loader

    def _eval_loader(self, split: str) -> DataLoader:
        """In order, each sample once. Under DDP each rank takes every ``world_size``-th sample with no padding
        (ranks may differ by one sample); a ``DistributedSampler`` subclass, so Lightning keeps it as it is."""
        dataset = self.split_dataset(split)
        trainer = getattr(self, "trainer", None)
        world_size = trainer.world_size if trainer is not None else 1
        if world_size == 1:
            return self._loader(dataset, shuffle=False)
        if len(dataset) < world_size:
            raise DataError(self.root or "phantoms", f"the {split} split has {len(dataset)} sample(s) for {world_size} processes",
                            f"give the {split} split at least {world_size} samples, or evaluate on one device (--trainer.devices 1)")
        sampler = UnpaddedDistributedSampler(dataset, even_divisible=False, num_replicas=world_size, rank=trainer.global_rank, shuffle=False)
        return self._loader(dataset, sampler=sampler)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_fraction == 0:
            self.setup("validate")
            if len(self._datasets["val"]) == 0:
                return []  # validation switched off (Lightning skips it)
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def describe(self) -> str:
        """One line per dataset: split sizes (for logs and reports)."""
        return "\n".join(f"{name}: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()) for name, parts in self.splits().items())

    def splits_json(self) -> str:
        return json.dumps({"settings": self.split_settings(), "datasets": self.splits()}, indent=1)
