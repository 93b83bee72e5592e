"""Volume preprocessing with TorchIO (canonical RAS, resampling to a target spacing, CT window or percentile
scaling to [-1, 1], crop to the body, padding to the patch size) and an on-disk cache of the results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torchio as tio

from unisegdiff.io import write_atomic


@dataclass(frozen=True)
class Preprocessing:
    """What turns a raw subject into a training-ready one; ``key`` identifies it in cache file names."""

    spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)
    window: tuple[float, float] | None = (-1000.0, 1000.0)  # HU mapped to [-1, 1]; None: 0.5-99.5 percentiles (MR)
    crop_to_body: bool = True
    body_threshold: float = -500.0  # HU above which a voxel is "body" (before windowing)
    min_shape: tuple[int, int, int] = (32, 32, 32)  # pad to at least the patch size

    @property
    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def __call__(self, subject: tio.Subject) -> tio.Subject:
        subject = tio.ToCanonical()(subject)
        subject = tio.Resample(tuple(float(s) for s in self.spacing))(subject)
        if self.crop_to_body:
            subject = crop_to_body(subject, self.body_threshold)
        if self.window is not None:
            lo, hi = self.window
            subject = tio.Clamp(lo, hi, include=["image"])(subject)
            subject = tio.RescaleIntensity(out_min_max=(-1.0, 1.0), in_min_max=(lo, hi), include=["image"])(subject)
        else:
            subject = tio.RescaleIntensity(out_min_max=(-1.0, 1.0), percentiles=(0.5, 99.5), include=["image"])(subject)
            subject = tio.Clamp(-1.0, 1.0, include=["image"])(subject)
        target = tuple(max(n, m) for n, m in zip(subject["image"].spatial_shape, self.min_shape))
        return tio.CropOrPad(target, padding_mode="minimum", only_pad=True)(subject)


def crop_to_body(subject: tio.Subject, threshold: float) -> tio.Subject:
    """Crop every image of ``subject`` to the bounding box of voxels above ``threshold``; no-op if none are."""
    body = subject["image"].data > threshold
    if not bool(body.any()):
        return subject
    subject.add_image(tio.LabelMap(tensor=body.to(torch.int16), affine=subject["image"].affine), "body")
    cropped = tio.CropOrPad(mask_name="body")(subject)
    cropped.remove_image("body")
    return cropped


def cache_path(cache_dir: str | Path, name: str, source_id: str, preprocessing: Preprocessing) -> Path:
    digest = hashlib.sha1(f"{source_id}|{preprocessing.key}".encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{name}-{digest}.pt"


def save_cached(path: Path, subject: tio.Subject) -> None:
    """Write the subject's tensors and affine atomically (``unisegdiff.io.write_atomic``)."""
    blob = {"image": subject["image"].data, "affine": torch.as_tensor(subject["image"].affine), "name": subject["name"]}
    if "label" in subject:
        blob["label"] = subject["label"].data
    write_atomic(path, lambda temp: torch.save(blob, temp))


def load_cached(path: Path) -> tio.Subject:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    affine = blob["affine"].numpy()
    items = {"image": tio.ScalarImage(tensor=blob["image"], affine=affine), "name": blob["name"]}
    if "label" in blob:
        items["label"] = tio.LabelMap(tensor=blob["label"], affine=affine)
    return tio.Subject(**items)


def source_id(path: str | Path) -> str:
    """Path + size + mtime: changes when the file does."""
    p = Path(path)
    st = p.stat()
    return f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
