"""Shared parts of the 3D importers: label maps read from ``configs/anatomy_pretrain/label_maps``, checked reading
of source volumes, label remapping, and the writer of ``images/`` + ``labels/`` + ``manifest.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import yaml

from anatomy_pretrain.volume_io import check_same_geometry, is_volume_path, read_volume, volume_stem
from unisegdiff.io import DataError, Geometry, read_sitk, write_bytes_atomic, write_image

LABEL_MAP_DIR = Path(__file__).resolve().parents[2] / "configs" / "anatomy_pretrain" / "label_maps"
MANIFEST = "manifest.json"


# --- label maps (data, not code) -------------------------------------------------------------------------------
def load_label_map(name: str) -> dict[str, Any]:
    """``configs/anatomy_pretrain/label_maps/<name>.yml`` as a dict."""
    path = LABEL_MAP_DIR / f"{name}.yml"
    if not path.is_file():
        raise DataError(path, "label map does not exist", f"label maps live in {LABEL_MAP_DIR} (a source checkout)")
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict):
        raise DataError(path, "label map must be a YAML mapping", "see the other files in that folder")
    return content


def int_keys(mapping: dict) -> dict[int, Any]:
    return {int(k): v for k, v in mapping.items()}


def btcv13_names() -> dict[int, str]:
    """0 background, 1 spleen, ..., 13 left adrenal gland (``btcv13.yml``)."""
    return int_keys(load_label_map("btcv13")["labels"])


# --- reading and checking sources --------------------------------------------------------------------------------
def volume_files(folder: Path) -> dict[str, Path]:
    """stem -> volume file in ``folder``; hidden files (macOS ``._x.nii.gz`` in MSD archives) are ignored."""
    return {volume_stem(p): p for p in sorted(folder.iterdir()) if p.is_file() and is_volume_path(p) and not p.name.startswith(".")}


def pair_by_key(images: dict[str, Path], labels: dict[str, Path]) -> list[tuple[str, Path, Path]]:
    """(key, image, label) for matching keys; a label without image or an image without label is an error."""
    for key in sorted(labels.keys() - images.keys()):
        raise DataError(labels[key], "label has no matching image", "add the image or remove the label from the source")
    for key in sorted(images.keys() - labels.keys()):
        raise DataError(images[key], "image has no matching label", "add the label or remove the image from the labelled folder")
    return [(key, images[key], labels[key]) for key in sorted(images)]


def read_source(path: Path, channel: int | None = None) -> sitk.Image:
    """A checked 3D volume; ``channel`` picks one modality of a 4D multi-channel file (MSD brain, prostate)."""
    if not path.is_file():
        raise DataError(path, "file does not exist", "check the source folder")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    size = reader.GetSize()
    if channel is None and reader.GetDimension() == 4:
        raise DataError(path, f"is a 4D multi-channel volume (size {size})", "pass channel=<i> (--channel) to import one channel")
    if channel is None:
        return read_volume(path)
    if reader.GetDimension() != 4 or not 0 <= channel < size[3]:
        raise DataError(path, f"has no channel {channel} (size {size})", "pass a channel index within the 4th dimension, or none for 3D files")
    return read_sitk(path)[:, :, :, channel]  # the io layer's checks (NIfTI size, NaN/Inf, voxel limit) on 4D too


def read_label(path: Path, image: sitk.Image, image_path: Path) -> np.ndarray:
    """The label voxels (z, y, x) as integers, after checking it lies on the image's grid (size, spacing, origin,
    direction within tolerance)."""
    label = read_volume(path)
    check_same_geometry(image, label, image_path, path)
    values = sitk.GetArrayFromImage(label)
    if np.issubdtype(values.dtype, np.floating):
        if not np.array_equal(values, np.round(values)):
            raise DataError(path, "label holds non-integer values", "labels must be integer class ids; is this an image?")
        values = values.astype(np.int32)
    return values


def remap(values: np.ndarray, table: dict[int, int], path: Path) -> np.ndarray:
    """Map source label ids through ``table`` (source id -> target id); a value missing from it is an error."""
    present = [int(v) for v in np.unique(values)]
    unknown = [v for v in present if v not in table]
    if unknown:
        raise DataError(path, f"unknown label value(s) {unknown[:10]}; this layout's label ids are {sorted(table)[:20]}"
                        + (" ..." if len(table) > 20 else ""),
                        "check that the file belongs to this dataset, or update its label map")
    lut = np.zeros(max(table) + 1, dtype=np.uint8)
    for source, target in table.items():
        lut[source] = target
    return lut[values]


def geometry_of(image: sitk.Image) -> Geometry:
    return Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))


def volumes_ml(label: np.ndarray, spacing: tuple[float, ...], names: dict[int, str]) -> dict[str, float]:
    """Volume in mL of every class present in ``label`` (background left out)."""
    counts = np.bincount(label.ravel(), minlength=max(names) + 1)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {names.get(k, str(k)): round(float(n) * voxel_ml, 2) for k, n in enumerate(counts) if k > 0 and n > 0}


# --- destination -------------------------------------------------------------------------------------------------
class VolumeWriter:
    """Writes ``<dst>/images/<name>.nii.gz``, ``<dst>/labels/<name>.nii.gz`` (the layout ``VolumeDataModule`` reads)
    and ``<dst>/manifest.json``; every file atomically. Sources are only read."""

    def __init__(self, kind: str, src: str | Path, dst: str | Path, label_names: dict[int, str], overwrite: bool = False):
        self.src, self.dst, self.overwrite, self.label_names = Path(src), Path(dst), overwrite, label_names
        if not self.src.exists():
            raise DataError(self.src, "source does not exist", "pass the folder where the official archive was extracted")
        if self.dst.resolve().is_relative_to(self.src.resolve() if self.src.is_dir() else self.src.resolve().parent):
            raise DataError(self.dst, "destination lies inside the source", "choose a destination outside the source")
        existing = list((self.dst / "images").glob("*")) if (self.dst / "images").is_dir() else []
        if existing and not overwrite:
            raise DataError(self.dst, f"destination already holds {len(existing)} images", "choose another destination, delete it, or pass --overwrite")
        self.manifest: dict[str, Any] = {
            "kind": kind, "source": str(self.src.resolve()), "label_names": {str(k): v for k, v in label_names.items()},
            "cases": {}, "unlabelled": {}, "skipped": {},
        }

    def _check_name(self, name: str) -> None:
        if name in self.manifest["cases"] or name in self.manifest["unlabelled"]:
            raise DataError(name, "two source cases give the same output name", "rename one of the sources")

    def _write_image(self, name: str, image: sitk.Image, source: Path, copy: bool) -> str:
        target = self.dst / "images" / f"{name}.nii.gz"
        if copy and source.name.lower().endswith(".nii.gz"):
            write_bytes_atomic(source.read_bytes(), target, self.overwrite)  # byte for byte: header and dtype kept
        else:
            write_image(sitk.GetArrayFromImage(image), geometry_of(image), target, self.overwrite)
        return str(target.relative_to(self.dst))

    def write_case(self, name: str, image: sitk.Image, label: np.ndarray, image_source: Path, label_source: Path,
                   annotated: list[int], copy_image: bool = True, **extra: Any) -> None:
        """One labelled case; ``label`` is already mapped, written on the image's grid; ``annotated`` lists the class ids
        the source's protocol labels (a class outside it is unknown there, not absent from the body)."""
        self._check_name(name)
        target = self.dst / "labels" / f"{name}.nii.gz"
        image_rel = self._write_image(name, image, image_source, copy_image)
        write_image(label.astype(np.uint8), geometry_of(image), target, self.overwrite)
        self.manifest["cases"][name] = {
            "image": image_rel, "label": str(target.relative_to(self.dst)), "source_image": str(image_source),
            "source_label": str(label_source), "annotated": sorted(annotated),
            "volumes_ml": volumes_ml(label, image.GetSpacing(), self.label_names), **extra,
        }

    def write_unlabelled(self, name: str, image: sitk.Image, image_source: Path, copy_image: bool = True, **extra: Any) -> None:
        self._check_name(name)
        image_rel = self._write_image(name, image, image_source, copy_image)
        self.manifest["unlabelled"][name] = {"image": image_rel, "source_image": str(image_source), **extra}

    def skip(self, name: str, reason: str) -> None:
        self.manifest["skipped"][name] = reason

    def finish(self, **fields: Any) -> dict[str, Any]:
        """Write ``manifest.json`` (with ``fields`` added) and return the manifest."""
        if not self.manifest["cases"] and not self.manifest["unlabelled"]:
            raise DataError(self.src, "no case was imported" + (f" ({len(self.manifest['skipped'])} skipped)" if self.manifest["skipped"] else ""),
                            "check the source layout and the importer's filters")
        self.manifest.update(fields)
        write_bytes_atomic((json.dumps(self.manifest, indent=1) + "\n").encode(), self.dst / MANIFEST, overwrite=True)
        self.manifest["destination"] = str(self.dst)
        return self.manifest


def summary(manifest: dict[str, Any]) -> str:
    """One line for the CLI."""
    text = (f"{manifest['kind']}: {len(manifest['cases'])} labelled cases, {len(manifest['unlabelled'])} unlabelled images "
            f"written to {manifest['destination']}")
    if manifest["skipped"]:
        text += f"; {len(manifest['skipped'])} skipped (see {MANIFEST})"
    return text
