"""Importers for the Decathlon-style layout (``imagesTr``/``labelsTr`` [+ ``imagesVa``/``labelsVa``, ``imagesTs``] and
``dataset.json``): MSD tasks keep their own labels; AMOS22 is mapped to the BTCV 13-organ set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from anatomy_pretrain.importers.common import (
    VolumeWriter, btcv13_names, int_keys, load_label_map, pair_by_key, read_label, read_source, remap, volume_files,
)
from anatomy_pretrain.volume_io import volume_stem
from unisegdiff.io import DataError


def read_dataset_json(src: Path) -> dict[str, Any]:
    path = src / "dataset.json"
    if not path.is_file():
        raise DataError(path, "dataset.json is missing", "pass the task folder that holds dataset.json, imagesTr and labelsTr")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(path, f"is not valid JSON ({error})", "restore the file from the official archive") from error


def label_table(dataset: dict[str, Any], path: Path) -> dict[int, str]:
    """``labels`` as id -> name; MSD writes ``{"0": "background"}``, nnU-Net v2 ``{"background": 0}``."""
    labels = dataset.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise DataError(path, "has no 'labels' mapping", "restore dataset.json from the official archive")
    try:
        if all(isinstance(v, int) for v in labels.values()):
            return {int(v): str(k) for k, v in labels.items()}
        return {int(k): str(v) for k, v in labels.items()}
    except ValueError as error:
        raise DataError(path, f"'labels' keys are not class ids ({error})", "restore dataset.json from the official archive") from error


def check_listed_files(src: Path, dataset: dict[str, Any]) -> None:
    """Every image and label that dataset.json lists under training/validation must exist."""
    for section in ("training", "validation"):
        for entry in dataset.get(section) or []:
            for key in ("image", "label"):
                if isinstance(entry, dict) and key in entry and not (src / entry[key]).is_file():
                    raise DataError(src / entry[key], f"listed in dataset.json ({section}) but missing", "re-extract the archive")


def labelled_pairs(src: Path, split: str) -> list[tuple[str, Path, Path]]:
    """(stem, image, label) of ``images<split>``/``labels<split>``; [] when the split is absent."""
    images, labels = src / f"images{split}", src / f"labels{split}"
    if not images.is_dir() and not labels.is_dir():
        return []
    if not images.is_dir() or not labels.is_dir():
        missing = images if not images.is_dir() else labels
        raise DataError(missing, "folder is missing while its partner exists", "re-extract the archive")
    return pair_by_key(volume_files(images), volume_files(labels))


def unlabelled_images(src: Path) -> list[tuple[str, Path]]:
    folder = src / "imagesTs"
    return sorted(volume_files(folder).items()) if folder.is_dir() else []


def import_msd(src: str | Path, dst: str | Path, channel: int | None = None, include_test: bool = False,
               overwrite: bool = False) -> dict[str, Any]:
    """An MSD task (``TaskNN_Name``) with its native labels; ``channel`` picks one modality of 4D tasks."""
    src = Path(src)
    dataset = read_dataset_json(src)
    check_listed_files(src, dataset)
    names = label_table(dataset, src / "dataset.json")
    writer = VolumeWriter("msd", src, dst, names, overwrite)
    pairs = labelled_pairs(src, "Tr")
    if not pairs:
        raise DataError(src, "no imagesTr + labelsTr folders", "pass the extracted TaskNN_<Name> folder")
    table = {k: k for k in names}
    for stem, image_path, label_path in pairs:
        image = read_source(image_path, channel)
        label = remap(read_label(label_path, image, image_path), table, label_path)
        writer.write_case(stem, image, label, image_path, label_path, annotated=[k for k in names if k],
                          copy_image=channel is None, split="Tr")
    for stem, image_path in unlabelled_images(src) if include_test else []:
        writer.write_unlabelled(stem, read_source(image_path, channel), image_path, copy_image=channel is None, split="Ts")
    return writer.finish(task=dataset.get("name"), modality=dataset.get("modality"), channel=channel, absent_classes=[])


def amos_modality(stem: str, path: Path, mr_ids_above: int) -> str:
    """``amos_0507`` -> ``MR``: AMOS numbers its MR cases above ``mr_ids_above`` (label_maps/amos.yml)."""
    try:
        number = int(stem.rsplit("_", 1)[-1])
    except ValueError:
        raise DataError(path, "not an AMOS file name (expected amos_NNNN.nii.gz)", "remove it from the AMOS folder") from None
    return "MR" if number > mr_ids_above else "CT"


def check_amos_labels(dataset: dict[str, Any], path: Path, expected: dict[int, str]) -> None:
    found = label_table(dataset, path)
    if {k: v.lower().strip() for k, v in found.items()} != {k: v.lower().strip() for k, v in expected.items()}:
        raise DataError(path, f"labels {found} differ from AMOS22's {expected}",
                        "pass the amos22 folder, or update configs/anatomy_pretrain/label_maps/amos.yml")


def import_amos(src: str | Path, dst: str | Path, modality: Literal["CT", "MR", "all"] = "CT", include_test: bool = False,
                overwrite: bool = False) -> dict[str, Any]:
    """AMOS22 training + validation cases mapped to BTCV-13 (portal/splenic vein not annotated: recorded, not scored).
    ``modality`` keeps CT (ids <= 500), MR or all; the other cases are listed as skipped in the manifest."""
    if modality not in ("CT", "MR", "all"):
        raise ValueError(f"modality must be 'CT', 'MR' or 'all', got {modality!r}")
    src = Path(src)
    spec = load_label_map("amos")
    dataset = read_dataset_json(src)
    check_amos_labels(dataset, src / "dataset.json", int_keys(spec["source_labels"]))
    check_listed_files(src, dataset)
    names, table = btcv13_names(), {int(k): int(v) for k, v in spec["to_btcv13"].items()}
    annotated = sorted({v for v in table.values() if v})
    writer = VolumeWriter("amos", src, dst, names, overwrite)
    pairs = [(split, *pair) for split in ("Tr", "Va") for pair in labelled_pairs(src, split)]
    if not pairs:
        raise DataError(src, "no imagesTr + labelsTr folders", "pass the extracted amos22 folder")
    for split, stem, image_path, label_path in pairs:
        kind = amos_modality(stem, image_path, spec["mr_ids_above"])
        if modality not in ("all", kind):
            writer.skip(stem, f"{kind} (modality={modality})")
            continue
        image = read_source(image_path)
        label = remap(read_label(label_path, image, image_path), table, label_path)
        writer.write_case(stem, image, label, image_path, label_path, annotated=annotated, modality=kind, split=split)
    for stem, image_path in unlabelled_images(src) if include_test else []:
        kind = amos_modality(volume_stem(image_path), image_path, spec["mr_ids_above"])
        if modality in ("all", kind):
            writer.write_unlabelled(stem, read_source(image_path), image_path, modality=kind, split="Ts")
    absent = sorted(k for k in names if k and k not in annotated)
    return writer.finish(absent_classes=absent, source_to_target={str(k): v for k, v in table.items()})
