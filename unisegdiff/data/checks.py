"""Scan a whole canonical root and report every problem in one run (not stopping at the first):
layout, unreadable files, sizes, non-binary masks, NaN/Inf, 3D data, splits.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from unisegdiff.data.canonical import IMAGES_DIR, MASKS_DIR, SPLITS_FILE, PairPaths, load_pair, scan_dataset
from unisegdiff.data.errors import DataError, Problem
from unisegdiff.data.registry import load_registry, spec_for_folder
from unisegdiff.data.splits import read_splits_file


def check_root(root: str | Path, registry: str | None = None,
               progress: Callable[[Iterable[PairPaths], str, int], Iterable[PairPaths]] | None = None) -> list[Problem]:
    """Every problem under ``root`` (empty list: the root is usable). ``progress`` may wrap the pair loop."""
    root = Path(root)
    if not root.is_dir():
        return [Problem(str(root), "dataset root does not exist or is not a folder; pass the folder that holds <dataset>/images and <dataset>/masks")]
    try:
        specs = load_registry(registry)
    except DataError as error:
        return [Problem.from_error(error)]
    problems: list[Problem] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        problems.append(Problem(str(root), "no dataset folders; expected <root>/<dataset>/images and masks"))
    for folder in folders:
        if not (folder / IMAGES_DIR).is_dir() and not (folder / MASKS_DIR).is_dir():
            problems.append(Problem(str(folder), "not a dataset folder (no images/ or masks/ inside); move it out of the root or fix its layout"))
            continue
        pairs, layout_problems = scan_dataset(root, folder.name)
        problems.extend(layout_problems)
        if spec_for_folder(specs, folder.name).description.startswith("not in the registry"):
            problems.append(Problem(str(folder), "dataset is not in the registry; its normalization will be guessed per image: "
                                    "add an entry to a registry YAML (see configs/data/registry.yaml) and pass it with --registry"))
        loop = progress(pairs, folder.name, len(pairs)) if progress else pairs
        for pair in loop:
            try:
                load_pair(pair)
            except DataError as error:
                problems.append(Problem.from_error(error))
        splits_file = folder / SPLITS_FILE
        if splits_file.is_file():
            try:
                read_splits_file(splits_file, [p.stem for p in pairs])
            except DataError as error:
                problems.append(Problem.from_error(error))
    return problems
