"""Importers from each benchmark dataset's official archive layout into the canonical layout
``<dst>/<dataset>/images|masks/<stem>``; masks become {0, 255} PNG, sources are only ever read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from rich.progress import track

from unisegdiff.data.canonical import IMAGES_DIR, MASKS_DIR, SPLITS_FILE
from unisegdiff.data.errors import DataError
from unisegdiff.data.readers import Geometry, file_stem, file_suffix, read_image, write_bytes_atomic, write_image

COPYABLE_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass
class ImportSummary:
    """What an importer wrote."""

    kind: str
    dataset: str
    destination: str
    pairs: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.kind}: {self.pairs} pairs written to {self.destination}" + (f", {self.skipped} skipped" if self.skipped else "")]
        lines += [f"  - {note}" for note in self.notes[:20]] + ([f"  ... and {len(self.notes) - 20} more notes"] if len(self.notes) > 20 else [])
        return "\n".join(lines)


def safe_stem(name: str) -> str:
    """Filesystem-safe stem: ``benign (1)`` -> ``benign_1``."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9.-]+", "_", name)).strip("_.")


def threshold_mask(array: np.ndarray, level: int = 128) -> np.ndarray:
    """JPEG-noisy or multi-channel mask -> uint8 {0, 255} (any channel at or above ``level``)."""
    if array.ndim == 3:
        array = array.max(axis=2)
    scale = 255.0 / max(float(array.max()), 1.0) if array.max() <= 1 else 1.0  # {0, 1} masks
    return np.where(array.astype(np.float32) * scale >= level, 255, 0).astype(np.uint8)


class CanonicalWriter:
    """Writes pairs into ``<dst>/<dataset>`` and keeps the summary; refuses to mix with earlier output."""

    def __init__(self, kind: str, src: Path, dst: str | Path, dataset: str, overwrite: bool):
        self.src, self.folder, self.overwrite = Path(src), Path(dst) / dataset, overwrite
        if not self.src.exists():
            raise DataError(self.src, "source does not exist", "pass the folder where the official archive was extracted")
        if self.folder.resolve().is_relative_to(self.src.resolve()):
            raise DataError(self.folder, "destination lies inside the source archive", "choose a destination outside the source")
        existing = list((self.folder / IMAGES_DIR).glob("*")) if (self.folder / IMAGES_DIR).is_dir() else []
        if existing and not overwrite:
            raise DataError(self.folder, f"destination already holds {len(existing)} images",
                            "choose another destination, delete it, or pass --overwrite")
        self.summary = ImportSummary(kind, dataset, str(self.folder))
        self.stems: dict[str, str] = {}

    def skip(self, path: Path | str, reason: str) -> None:
        self.summary.skipped += 1
        self.summary.notes.append(f"skipped {path}: {reason}")

    def write(self, stem: str, image: Path | np.ndarray, mask: np.ndarray, origin: str) -> bool:
        """One pair; the image is copied byte for byte when it is a PNG/JPEG file, else written as PNG."""
        if stem in self.stems:
            raise DataError(origin, f"stem {stem!r} also produced by {self.stems[stem]}", "rename one of the sources")
        try:
            array = read_image(image).array if isinstance(image, Path) else image
        except DataError as error:
            self.skip(origin, error.problem)
            return False
        if array.shape[:2] != mask.shape[:2]:
            self.skip(origin, f"mask size {mask.shape[:2]} differs from image size {array.shape[:2]}")
            return False
        if isinstance(image, Path) and file_suffix(image) in COPYABLE_IMAGE_EXTENSIONS:
            write_bytes_atomic(image.read_bytes(), self.folder / IMAGES_DIR / f"{stem}{file_suffix(image)}", self.overwrite)
        else:
            write_image(array, Geometry.identity(2), self.folder / IMAGES_DIR / f"{stem}.png", self.overwrite)
        write_image(mask, Geometry.identity(2), self.folder / MASKS_DIR / f"{stem}.png", self.overwrite)
        self.stems[stem] = origin
        self.summary.pairs += 1
        return True

    def write_splits(self, splits: dict[str, list[str]]) -> None:
        """The official split as ``splits.json`` (only splits that have pairs)."""
        content = {name: sorted(s for s in stems if s in self.stems) for name, stems in splits.items() if stems}
        write_bytes_atomic((json.dumps(content, indent=1) + "\n").encode(), self.folder / SPLITS_FILE, overwrite=True)
        self.summary.notes.append(f"official split written to {SPLITS_FILE}: " + ", ".join(f"{k} {len(v)}" for k, v in content.items()))


def _find_dir(src: Path, name: str) -> Path | None:
    """``src`` itself, ``src/name``, or the first folder called ``name`` below ``src``."""
    if src.name == name and src.is_dir():
        return src
    if (src / name).is_dir():
        return src / name
    return next((p for p in sorted(src.rglob(name)) if p.is_dir()), None)


def _loop(items: Sequence, description: str, progress: bool) -> Iterable:
    return track(items, description=description, disable=not progress, transient=True)


def _read_mask(path: Path, writer: CanonicalWriter) -> np.ndarray | None:
    try:
        return threshold_mask(read_image(path).array)
    except DataError as error:
        writer.skip(path, error.problem)
        return None


def import_busi(src: str | Path, dst: str | Path, dataset: str = "breast_us_busi", include_normal: bool = False,
                overwrite: bool = False, progress: bool = False) -> ImportSummary:
    """``Dataset_BUSI_with_GT/<class>/<name>.png`` + ``<name>_mask.png`` [+ ``<name>_mask_1.png`` ...],
    masks OR-merged; stems ``benign_1``. The ``normal`` class (empty masks) only with ``include_normal``."""
    writer = CanonicalWriter("busi", Path(src), dst, dataset, overwrite)
    base = _find_dir(Path(src), "Dataset_BUSI_with_GT") or Path(src)
    classes = [d for d in sorted(base.iterdir()) if d.is_dir() and (include_normal or d.name.lower() != "normal")]
    if not classes:
        raise DataError(base, "no class folders (benign/malignant/normal)", "pass the extracted Dataset_BUSI_with_GT folder")
    images = [p for d in classes for p in sorted(d.iterdir()) if p.suffix.lower() == ".png" and not re.search(r"_mask(_\d+)?$", p.stem)]
    for image in _loop(images, "BUSI", progress):
        mask_paths = sorted(image.parent.glob(f"{glob_escape(image.stem)}_mask*.png"))
        mask_paths = [m for m in mask_paths if re.fullmatch(re.escape(image.stem) + r"_mask(_\d+)?", m.stem)]
        if not mask_paths:
            writer.skip(image, "no _mask.png file")
            continue
        masks = [_read_mask(m, writer) for m in mask_paths]
        if any(m is None for m in masks):
            continue
        if len({m.shape for m in masks}) > 1:
            writer.skip(image, "its masks have different sizes")
            continue
        writer.write(safe_stem(image.stem), image, np.maximum.reduce(masks), str(image))
    return writer.summary


def glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def import_isic2018(src: str | Path, dst: str | Path, dataset: str = "skin_dermoscopy_isic2018",
                    overwrite: bool = False, progress: bool = False) -> ImportSummary:
    """``ISIC2018_Task1-2_<Split>_Input/ISIC_x.jpg`` + ``ISIC2018_Task1_<Split>_GroundTruth/ISIC_x_segmentation.png``
    for Training / Validation / Test; the official split goes to splits.json when several are present."""
    writer = CanonicalWriter("isic2018", Path(src), dst, dataset, overwrite)
    official: dict[str, list[str]] = {}
    for split, name in (("Training", "train"), ("Validation", "val"), ("Test", "test")):
        inputs = _find_dir(Path(src), f"ISIC2018_Task1-2_{split}_Input")
        truth = _find_dir(Path(src), f"ISIC2018_Task1_{split}_GroundTruth")
        if inputs is None or truth is None:
            continue
        official[name] = []
        for image in _loop(sorted(inputs.glob("*.jpg")), f"ISIC {split}", progress):
            mask_path = truth / f"{image.stem}_segmentation.png"
            if not mask_path.is_file():
                writer.skip(image, f"no {mask_path.name} in {truth.name}")
                continue
            mask = _read_mask(mask_path, writer)
            if mask is not None and writer.write(safe_stem(image.stem), image, mask, str(image)):
                official[name].append(safe_stem(image.stem))
    if not official:
        raise DataError(src, "no ISIC2018_Task1-2_<Split>_Input + ISIC2018_Task1_<Split>_GroundTruth folders",
                        "pass the folder where the ISIC 2018 task 1 archives were extracted")
    if len(official) > 1:
        writer.write_splits(official)
    return writer.summary


def import_kvasir(src: str | Path, dst: str | Path, dataset: str = "polyp_endoscopy_kvasir",
                  overwrite: bool = False, progress: bool = False) -> ImportSummary:
    """``Kvasir-SEG/images/*.jpg`` + ``masks/*.jpg`` (JPEG-noisy masks thresholded at 128)."""
    writer = CanonicalWriter("kvasir", Path(src), dst, dataset, overwrite)
    base = Path(src) if (Path(src) / "images").is_dir() else _find_dir(Path(src), "Kvasir-SEG")
    if base is None or not (base / "images").is_dir() or not (base / "masks").is_dir():
        raise DataError(src, "no Kvasir-SEG/images + masks folders", "pass the extracted Kvasir-SEG folder")
    _paired_folders(writer, base / "images", base / "masks", "", progress)
    return writer.summary


def _paired_folders(writer: CanonicalWriter, images_dir: Path, masks_dir: Path, prefix: str, progress: bool) -> list[str]:
    masks = {file_stem(p): p for p in masks_dir.iterdir() if file_suffix(p) in (".jpg", ".jpeg", ".png", ".tif", ".bmp")}
    written = []
    images = sorted(p for p in images_dir.iterdir() if file_suffix(p) in (".jpg", ".jpeg", ".png", ".tif", ".bmp"))
    for image in _loop(images, images_dir.name, progress):
        mask_path = masks.get(file_stem(image))
        if mask_path is None:
            writer.skip(image, f"no mask with the same name in {masks_dir.name}")
            continue
        mask = _read_mask(mask_path, writer)
        stem = safe_stem(prefix + file_stem(image))
        if mask is not None and writer.write(stem, image, mask, str(image)):
            written.append(stem)
    return written


def import_tn3k(src: str | Path, dst: str | Path, dataset: str = "thyroid_us_tg3k",
                overwrite: bool = False, progress: bool = False) -> ImportSummary:
    """TN3K ``trainval-image`` + ``trainval-mask`` and/or ``test-image`` + ``test-mask``; TG3K ``thyroid-image``
    + ``thyroid-mask``. With several subsets, stems get the subset as prefix (``test_0001``: TN3K numbers
    restart per subset) and the official split goes to splits.json."""
    writer = CanonicalWriter("tn3k", Path(src), dst, dataset, overwrite)
    subsets = [(name, _find_dir(Path(src), f"{name}-image"), _find_dir(Path(src), f"{name}-mask")) for name in ("trainval", "test", "thyroid")]
    subsets = [(name, images, masks) for name, images, masks in subsets if images is not None and masks is not None]
    if not subsets:
        raise DataError(src, "no trainval-image/trainval-mask, test-image/test-mask or thyroid-image/thyroid-mask folders",
                        "pass the extracted TN3K/TG3K folder")
    official = {}
    for name, images, masks in subsets:
        official[{"trainval": "train", "test": "test", "thyroid": "train"}[name]] = _paired_folders(writer, images, masks, f"{name}_" if len(subsets) > 1 else "", progress)
    if len(subsets) > 1:
        writer.write_splits(official)
    return writer.summary


def import_lgg(src: str | Path, dst: str | Path, dataset: str = "brain_mri_lgg", lesion_only: bool = False,
               overwrite: bool = False, progress: bool = False) -> ImportSummary:
    """``kaggle_3m/<patient>/<patient>_N.tif`` + ``<patient>_N_mask.tif`` -> PNG (RGB: three MR sequences);
    ``lesion_only`` keeps the slices whose mask is not empty."""
    writer = CanonicalWriter("lgg", Path(src), dst, dataset, overwrite)
    base = _find_dir(Path(src), "kaggle_3m") or Path(src)
    images = sorted(p for patient in sorted(base.iterdir()) if patient.is_dir() for p in patient.glob("*.tif") if not p.stem.endswith("_mask"))
    if not images:
        raise DataError(base, "no <patient>/<patient>_N.tif files", "pass the extracted kaggle_3m folder")
    empty = 0
    for image in _loop(images, "LGG", progress):
        mask_path = image.with_name(f"{image.stem}_mask.tif")
        if not mask_path.is_file():
            writer.skip(image, f"no {mask_path.name}")
            continue
        mask = _read_mask(mask_path, writer)
        if mask is None:
            continue
        if lesion_only and not mask.any():
            empty += 1
            continue
        writer.write(safe_stem(image.stem), image, mask, str(image))
    if empty:
        writer.summary.notes.append(f"{empty} slices without lesion left out (lesion_only)")
    return writer.summary


def import_lits(src: str | Path, dst: str | Path, dataset: str = "liver_ct_lits", window: tuple[float, float] = (-100.0, 200.0),
                lesion_label: int = 2, lesion_only: bool = True, stride: int = 1,
                overwrite: bool = False, progress: bool = False) -> ImportSummary:
    """``volume-N.nii`` + ``segmentation-N.nii`` sliced along z into HU-windowed 8-bit PNGs (``window``);
    the mask is ``label == lesion_label`` (2: tumour); ``lesion_only`` keeps slices with tumour; every
    ``stride``-th slice. Stems ``volume_N_zzzz``."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    writer = CanonicalWriter("lits", Path(src), dst, dataset, overwrite)
    volumes = sorted((p for p in Path(src).rglob("volume-*.nii*") if re.fullmatch(r"volume-\d+\.nii(\.gz)?", p.name)),
                     key=lambda p: int(re.search(r"\d+", p.name).group()))
    if not volumes:
        raise DataError(src, "no volume-N.nii files", "pass the folder where the LiTS archives were extracted")
    low, high = float(window[0]), float(window[1])
    left_out = 0
    for volume_path in _loop(volumes, "LiTS", progress):
        number = int(re.search(r"\d+", volume_path.name).group())
        candidates = [p for p in Path(src).rglob(f"segmentation-{number}.nii*") if re.fullmatch(rf"segmentation-{number}\.nii(\.gz)?", p.name)]
        if not candidates:
            writer.skip(volume_path, f"no segmentation-{number}.nii")
            continue
        try:
            volume, labels = read_image(volume_path).array, read_image(candidates[0]).array
        except DataError as error:
            writer.skip(volume_path, error.problem)
            continue
        if volume.shape != labels.shape or volume.ndim != 3:
            writer.skip(volume_path, f"volume {volume.shape} and segmentation {labels.shape} differ or are not 3D")
            continue
        for z in range(0, volume.shape[0], stride):
            lesion = labels[z] == lesion_label
            if lesion_only and not lesion.any():
                left_out += 1
                continue
            slice_u8 = np.round((np.clip(volume[z].astype(np.float32), low, high) - low) / (high - low) * 255).astype(np.uint8)
            writer.write(f"volume_{number}_{z:04d}", slice_u8, lesion.astype(np.uint8) * 255, f"{volume_path}[z={z}]")
    if left_out:
        writer.summary.notes.append(f"{left_out} slices without label {lesion_label} left out (lesion_only)")
    return writer.summary


IMPORTERS: dict[str, Callable[..., ImportSummary]] = {
    "busi": import_busi,
    "isic2018": import_isic2018,
    "kvasir": import_kvasir,
    "tn3k": import_tn3k,
    "tg3k": import_tn3k,
    "lgg": import_lgg,
    "lits": import_lits,
}
