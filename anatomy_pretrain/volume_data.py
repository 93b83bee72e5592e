"""VolumeDataModule: labelled and unlabelled 3D volumes (files, DICOM series or in-memory phantoms), preprocessed
once and cached, seeded k-fold splits, optional anatomical coordinate maps, patches through TorchIO's Queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torchio as tio
from torch.utils.data import DistributedSampler

from anatomy_pretrain.checkpoints import load_coordinate_net
from anatomy_pretrain.coordinate_net import volume_coordinates
from anatomy_pretrain.phantoms import ORGAN_NAMES, make_ct_phantom
from anatomy_pretrain.preprocessing import Preprocessing, cache_path, load_cached, save_cached, source_id
from anatomy_pretrain.splits import kfold_split, label_budget, write_split
from anatomy_pretrain.volume_io import is_volume_path, read_subject, volume_stem


class EpochAdvancingDistributedSampler(DistributedSampler):
    """DistributedSampler over subjects that calls ``set_epoch`` itself after each pass (the Queue re-iterates it)."""

    def __iter__(self):
        indices = list(super().__iter__())
        self.set_epoch(self.epoch + 1)
        return iter(indices)


def collate_subjects(subjects: list[tio.Subject]) -> dict:
    """Flat batch: ``image`` (B,1,X,Y,Z), ``label`` (B,1,X,Y,Z) long and ``coords`` (B,3,X,Y,Z) if every item has them,
    ``location``, ``spacing``, ``affine``, ``name``."""
    batch = {
        "image": torch.stack([s["image"].data.float() for s in subjects]),
        "spacing": torch.tensor([s["image"].spacing for s in subjects], dtype=torch.float32),
        "affine": torch.stack([torch.as_tensor(s["image"].affine, dtype=torch.float64) for s in subjects]),
        "name": [s["name"] for s in subjects],
    }
    if all("label" in s for s in subjects):
        batch["label"] = torch.stack([s["label"].data.long() for s in subjects])
    if all("coords" in s for s in subjects):
        batch["coords"] = torch.stack([s["coords"].data.float() for s in subjects])
    if all(tio.LOCATION in s for s in subjects):
        batch["location"] = torch.stack([torch.as_tensor(s[tio.LOCATION]) for s in subjects])
    return batch


def find_cases(root: str | Path) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """``root/images/*`` paired by stem with ``root/labels/*``: (labelled pairs, unlabelled images); a flat folder is all unlabelled."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"volume folder {root} does not exist")
    image_dir = root / "images" if (root / "images").is_dir() else root
    labels = {volume_stem(p): p for p in sorted((root / "labels").iterdir()) if is_volume_path(p)} if (root / "labels").is_dir() else {}
    images = [p for p in sorted(image_dir.iterdir()) if is_volume_path(p) and not p.name.startswith(".")]
    if not images:
        raise FileNotFoundError(f"no volumes (.nii.gz, .nii, .mha, .nrrd or DICOM folders) in {image_dir}")
    labelled = [(p, labels[volume_stem(p)]) for p in images if volume_stem(p) in labels]
    unlabelled = [p for p in images if volume_stem(p) not in labels]
    return labelled, unlabelled


class VolumeDataModule(L.LightningDataModule):
    """3D volumes for every anatomy-pretraining stage. Patches come from a TorchIO Queue (outer loader
    ``num_workers=0``); under DDP the Queue gets a per-rank subject sampler (set ``trainer.use_distributed_sampler: false``).

    ``coordinate_ckpt`` (a trained AnatomicalCoordinateModel): every volume gets its whole-volume coordinate map as the
    image ``coords``, so patches and batches carry the anatomical guidance of the voxels they hold.

    ``labelled_cases`` (label-efficiency studies): train on a seeded subset of that many labelled cases of the training
    fold; the held-out fold and the unlabelled volumes (``train_on='all'``) are unchanged."""

    def __init__(
        self,
        root: str | None = None,
        unlabelled_roots: list[str] | None = None,
        phantoms: int = 0,
        phantom_seed: int = 0,
        max_cases: int | None = None,
        spacing: tuple[float, float, float] = (1.0, 1.0, 2.0),
        window: tuple[float, float] | None = (-1000.0, 1000.0),
        crop_to_body: bool = True,
        body_threshold: float = -500.0,
        patch_size: tuple[int, int, int] = (96, 96, 64),
        samples_per_volume: int = 8,
        queue_length: int = 64,
        batch_size: int = 2,
        sampler: Literal["uniform", "label"] = "uniform",
        train_on: Literal["labelled", "all"] = "all",
        num_folds: int = 5,
        fold: int = 0,
        seed: int = 0,
        split_file: str | None = None,
        cache_dir: str | None = None,
        num_workers: int = 0,
        num_classes: int | None = None,
        coordinate_ckpt: str | None = None,
        labelled_cases: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        if root is None and not unlabelled_roots and phantoms <= 0:
            raise ValueError("VolumeDataModule needs a root, unlabelled_roots or phantoms > 0")
        if labelled_cases is not None and labelled_cases < 1:
            raise ValueError(f"labelled_cases must be >= 1 (or None for every labelled training case), got {labelled_cases}")
        self.preprocessing = Preprocessing(
            spacing=tuple(spacing), window=tuple(window) if window is not None else None, crop_to_body=crop_to_body,
            body_threshold=body_threshold, min_shape=tuple(patch_size),
        )
        self.train_subjects: list[tio.Subject] = []
        self.held_out_subjects: list[tio.Subject] = []
        self.class_names: list[str] = list(ORGAN_NAMES) if phantoms > 0 and root is None else []

    # --- loading ------------------------------------------------------------------------------------
    def _load(self, make, name: str, source: str) -> tio.Subject:
        cache_dir = self.hparams.cache_dir
        if cache_dir:
            path = cache_path(cache_dir, name, source, self.preprocessing)
            if path.is_file():
                return load_cached(path)
        subject = self.preprocessing(make())
        if cache_dir:
            save_cached(path, subject)
        return subject

    def _labelled_sources(self) -> dict[str, tuple]:
        """name -> (factory, source id) for every labelled case."""
        hp = self.hparams
        out: dict[str, tuple] = {}
        if hp.root is not None:
            pairs, _ = find_cases(hp.root)
            for img, lbl in pairs:
                out[volume_stem(img)] = (lambda i=img, l=lbl: read_subject(i, l), f"{source_id(img)}+{source_id(lbl)}")
        for k in range(hp.phantoms):
            seed = hp.phantom_seed + k
            out[f"phantom_{seed:04d}"] = (lambda s=seed: make_ct_phantom(s).to_subject(), f"phantom-v1-{seed}")
        names = sorted(out)[: hp.max_cases] if hp.max_cases else sorted(out)
        return {n: out[n] for n in names}

    def _unlabelled_sources(self) -> dict[str, tuple]:
        hp = self.hparams
        paths = []
        if hp.root is not None:
            paths += find_cases(hp.root)[1]
        for extra in hp.unlabelled_roots or []:
            pairs, images = find_cases(extra)
            paths += images + [img for img, _ in pairs]
        return {volume_stem(p): (lambda p=p: read_subject(p), source_id(p)) for p in paths}

    def setup(self, stage: str | None = None) -> None:
        if self.train_subjects or self.held_out_subjects:
            return
        hp = self.hparams
        labelled = self._labelled_sources()
        train_names, held_names = kfold_split(list(labelled), hp.num_folds, hp.fold, hp.seed) if labelled else ([], [])
        if hp.labelled_cases is not None:
            train_names = label_budget(train_names, hp.labelled_cases, hp.seed)
        if hp.split_file:
            write_split(hp.split_file, train_names, held_names, {"num_folds": hp.num_folds, "fold": hp.fold, "seed": hp.seed})
        self.train_subjects = [self._load(labelled[n][0], n, labelled[n][1]) for n in train_names]
        self.held_out_subjects = [self._load(labelled[n][0], n, labelled[n][1]) for n in held_names]
        if hp.train_on == "all":
            unlabelled = self._unlabelled_sources()
            self.train_subjects += [self._load(unlabelled[n][0], n, unlabelled[n][1]) for n in sorted(unlabelled)]
        if not self.train_subjects:
            raise ValueError("no training volumes: check root / phantoms / train_on")
        if hp.coordinate_ckpt:
            self._add_coordinates(self.train_subjects + self.held_out_subjects, hp.coordinate_ckpt)
        if hp.num_classes is None and labelled:
            hp.num_classes = 1 + max(int(s["label"].data.max()) for s in self.train_subjects + self.held_out_subjects if "label" in s)

    @staticmethod
    def _add_coordinates(subjects: list[tio.Subject], ckpt: str) -> None:
        net = load_coordinate_net(ckpt)
        for s in subjects:
            image = s["image"]
            coords = volume_coordinates(net, image.data[None].float(), torch.tensor(image.spacing, dtype=torch.float32))[0]
            s.add_image(tio.ScalarImage(tensor=coords, affine=image.affine), "coords")

    @property
    def num_classes(self) -> int | None:
        return self.hparams.num_classes

    # --- loaders ------------------------------------------------------------------------------------
    def _patch_sampler(self) -> tio.data.PatchSampler:
        patch = tuple(self.hparams.patch_size)
        if self.hparams.sampler == "label":
            if not all("label" in s for s in self.train_subjects):
                raise ValueError("sampler='label' needs every training volume labelled (set train_on='labelled')")
            return tio.LabelSampler(patch, label_name="label")
        return tio.UniformSampler(patch)

    def train_dataloader(self) -> tio.SubjectsLoader:
        hp = self.hparams
        dataset = tio.SubjectsDataset(self.train_subjects)
        subject_sampler = None
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            subject_sampler = EpochAdvancingDistributedSampler(
                dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=True, seed=hp.seed,
            )
        queue = tio.Queue(
            dataset, max_length=hp.queue_length, samples_per_volume=hp.samples_per_volume, sampler=self._patch_sampler(),
            subject_sampler=subject_sampler, num_workers=hp.num_workers, shuffle_subjects=subject_sampler is None,
        )
        return tio.SubjectsLoader(queue, batch_size=hp.batch_size, num_workers=0, collate_fn=collate_subjects)

    def _volume_loader(self, subjects: list[tio.Subject]) -> tio.SubjectsLoader:
        return tio.SubjectsLoader(tio.SubjectsDataset(subjects), batch_size=1, num_workers=0, collate_fn=collate_subjects)

    def val_dataloader(self) -> tio.SubjectsLoader:
        return self._volume_loader(self.held_out_subjects)

    def test_dataloader(self) -> tio.SubjectsLoader:
        return self._volume_loader(self.held_out_subjects)

    def predict_dataloader(self) -> tio.SubjectsLoader:
        return self._volume_loader(self.held_out_subjects or self.train_subjects)
