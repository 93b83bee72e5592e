"""BTCV (Multi-Atlas Labeling Beyond the Cranial Vault) importer: ``RawData/Training/img/img0001.nii.gz`` with
``RawData/Training/label/label0001.nii.gz``, 13 organs kept as they are; ``Testing/img`` optionally as unlabelled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from anatomy_pretrain.importers.common import VolumeWriter, btcv13_names, pair_by_key, read_label, read_source, remap, volume_files
from unisegdiff.io import DataError


def _numbered(folder: Path, prefix: str) -> dict[str, Path]:
    """``img0001`` -> key ``0001``; other volume files in the folder are not BTCV files and are an error."""
    out = {}
    for stem, path in volume_files(folder).items():
        match = re.fullmatch(rf"{prefix}(\d+)", stem)
        if match is None:
            raise DataError(path, f"not a BTCV file name (expected {prefix}NNNN.nii.gz)", "remove it from the BTCV folder")
        out[match.group(1)] = path
    return out


def find_btcv_training(src: Path) -> Path:
    """The folder holding ``img/`` and ``label/``: ``src``, ``src/Training`` or ``src/RawData/Training``."""
    for folder in (src, src / "Training", src / "RawData" / "Training"):
        if (folder / "img").is_dir() and (folder / "label").is_dir():
            return folder
    raise DataError(src, "no Training/img + Training/label folders", "pass the extracted BTCV RawData folder")


def import_btcv(src: str | Path, dst: str | Path, include_testing: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Every labelled training case as ``btcv_NNNN``; with ``include_testing`` the unlabelled ``Testing/img`` too."""
    src = Path(src)
    names = btcv13_names()
    writer = VolumeWriter("btcv", src, dst, names, overwrite)
    training = find_btcv_training(src)
    table = {k: k for k in names}
    for key, image_path, label_path in pair_by_key(_numbered(training / "img", "img"), _numbered(training / "label", "label")):
        image = read_source(image_path)
        label = remap(read_label(label_path, image, image_path), table, label_path)
        writer.write_case(f"btcv_{key}", image, label, image_path, label_path, annotated=[k for k in names if k], split="Training")
    testing = training.parent / "Testing" / "img"
    if include_testing and testing.is_dir():
        for key, image_path in sorted(_numbered(testing, "img").items()):
            writer.write_unlabelled(f"btcv_{key}", read_source(image_path), image_path, split="Testing")
    return writer.finish(absent_classes=[])
