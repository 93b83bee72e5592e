"""TotalSegmentator importers, both mapped to BTCV-13 (``label_maps/totalsegmentator.yml``): the official dataset
(``<case>/ct.nii.gz`` + ``<case>/segmentations/<structure>.nii.gz``) and multi-label output maps with v1/v2 class ids.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from anatomy_pretrain.importers.common import (
    LABEL_MAP_DIR, VolumeWriter, btcv13_names, load_label_map, pair_by_key, read_label, read_source, remap, volume_files,
)
from anatomy_pretrain.volume_io import volume_stem
from unisegdiff.io import DataError

SEGMENTATIONS = "segmentations"


def structure_maps(spec: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """(required, optional) structure name -> BTCV id."""
    return dict(spec["structures_to_btcv13"]), dict(spec.get("optional_structures_to_btcv13") or {})


def read_meta_splits(src: Path) -> dict[str, str]:
    """``meta.csv`` of the official dataset (``;``-separated, ``image_id`` and ``split`` columns): case -> split."""
    path = src / "meta.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter=";"))
    return {row["image_id"]: row["split"] for row in rows if row.get("image_id") and row.get("split")}


def find_case_folders(src: Path) -> list[Path]:
    cases = sorted(p for p in src.iterdir() if p.is_dir() and ((p / "ct.nii.gz").exists() or (p / SEGMENTATIONS).is_dir()))
    if not cases:
        raise DataError(src, "no <case>/ct.nii.gz + <case>/segmentations/ folders", "pass the extracted Totalsegmentator_dataset folder")
    return cases


def case_label(case: Path, image: sitk.Image, ct_path: Path, required: dict[str, int], optional: dict[str, int]) -> tuple[np.ndarray, int]:
    """The BTCV-13 map of one case from its binary masks, and how many voxels two organs both claimed (the later
    structure in the label map wins)."""
    folder = case / SEGMENTATIONS
    if not folder.is_dir():
        raise DataError(folder, "segmentations folder is missing", "the official layout has <case>/segmentations/<structure>.nii.gz")
    present_optional = {s: c for s, c in optional.items() if (folder / f"{s}.nii.gz").is_file()}
    label = np.zeros(sitk.GetArrayViewFromImage(image).shape, dtype=np.uint8)
    overlap = 0
    for structure, cls in {**required, **present_optional}.items():
        path = folder / f"{structure}.nii.gz"
        if not path.is_file():
            raise DataError(path, f"missing organ: the case has no {structure} mask",
                            "the official layout holds one file per structure (empty if out of view); re-extract the case or remove it")
        mask = remap(read_label(path, image, ct_path), {0: 0, 1: 1}, path).astype(bool)
        overlap += int(np.count_nonzero((label[mask] != 0) & (label[mask] != cls)))
        label[mask] = cls
    return label, overlap


def import_totalseg_dataset(src: str | Path, dst: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """The official TotalSegmentator dataset (v1 or v2): every case folder becomes one BTCV-13 labelled case."""
    src = Path(src)
    required, optional = structure_maps(load_label_map("totalsegmentator"))
    names = btcv13_names()
    writer = VolumeWriter("totalseg", src, dst, names, overwrite)
    splits = read_meta_splits(src)
    for case in find_case_folders(src):
        ct_path = case / "ct.nii.gz"
        if not ct_path.is_file():
            raise DataError(ct_path, "missing image for the segmentations", "re-extract the case or remove its folder")
        image = read_source(ct_path)
        label, overlap = case_label(case, image, ct_path, required, optional)
        writer.write_case(case.name, image, label, ct_path, case / SEGMENTATIONS, annotated=[k for k in names if k],
                          overlap_voxels=overlap, split=splits.get(case.name))
    return writer.finish(absent_classes=[], structures_to_btcv13={**required, **optional})


def multilabel_table(spec: dict[str, Any], class_table: str) -> dict[int, int]:
    """TotalSegmentator class id -> BTCV id for every id of ``class_table`` (``total`` = v2, ``total_v1``)."""
    tables = spec["class_ids"]
    if class_table not in tables:
        raise ValueError(f"class_table must be one of {sorted(tables)}, got {class_table!r}")
    entry = tables[class_table]
    required, optional = structure_maps(spec)
    table = {i: 0 for i in range(int(entry["max_id"]) + 1)}
    for structure, cls in {**required, **optional}.items():
        if structure not in entry["ids"]:
            raise DataError(LABEL_MAP_DIR / "totalsegmentator.yml", f"class_ids.{class_table} has no id for {structure}", "add it")
        table[int(entry["ids"][structure])] = cls
    return table


def multilabel_pairs(src: Path, seg: str | Path | None, name: str | None) -> list[tuple[str, Path, Path]]:
    """(name, CT, segmentation): one pair when ``seg`` is given (``src`` the CT file), else ``src/images`` + ``src/labels``."""
    if seg is not None:
        return [(name or volume_stem(src), src, Path(seg))]
    if not (src / "images").is_dir() or not (src / "labels").is_dir():
        raise DataError(src, "no images/ + labels/ folders of CTs and TotalSegmentator --ml maps",
                        "pass such a folder, or a CT file with seg=<map> (--seg)")
    return pair_by_key(volume_files(src / "images"), volume_files(src / "labels"))


def import_totalseg_multilabel(src: str | Path, dst: str | Path, seg: str | Path | None = None, class_table: str = "total",
                               name: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """TotalSegmentator multi-label maps (``--ml`` output, ids of ``class_table``) mapped to BTCV-13."""
    src = Path(src)
    spec = load_label_map("totalsegmentator")
    table = multilabel_table(spec, class_table)
    names = btcv13_names()
    writer = VolumeWriter("totalseg-ml", src, dst, names, overwrite)
    for case, ct_path, seg_path in multilabel_pairs(src, seg, name):
        image = read_source(ct_path)
        label = remap(read_label(seg_path, image, ct_path), table, seg_path)
        writer.write_case(case, image, label, ct_path, seg_path, annotated=[k for k in names if k], class_table=class_table)
    return writer.finish(absent_classes=[], class_table=class_table,
                         source_to_target={str(k): v for k, v in table.items() if v})
