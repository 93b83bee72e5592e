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

NOT_IN_REGISTRY = ("dataset is not in the registry; its normalization will be guessed per image: add an entry to a "
                   "registry YAML (see configs/data/registry.yaml) and pass it with --registry")


def check_root(root: str | Path, registry: str | None = None,
               progress: Callable[[Iterable[PairPaths], str, int], Iterable[PairPaths]] | None = None) -> list[Problem]:
    """Every problem under ``root`` (empty list: the root is usable). ``progress`` may wrap the pair loop.
    No exception stops the scan: an unexpected one is reported as a problem of the file being checked."""
    root = Path(root)
    if not root.is_dir():
        return [Problem(str(root), "dataset root does not exist or is not a folder; pass the folder that holds <dataset>/images and <dataset>/masks")]
    problems: list[Problem] = []
    specs = _guarded(problems, registry or "registry", lambda: load_registry(registry))
    folders = _guarded(problems, root, lambda: sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if specs is None or folders is None:
        return problems
    if not folders:
        problems.append(Problem(str(root), "no dataset folders; expected <root>/<dataset>/images and masks"))
    for folder in folders:
        _guarded(problems, folder, lambda: _check_folder(root, folder, specs, problems, progress))
    return problems


def _check_folder(root: Path, folder: Path, specs, problems: list[Problem], progress) -> None:
    if not (folder / IMAGES_DIR).is_dir() and not (folder / MASKS_DIR).is_dir():
        problems.append(Problem(str(folder), "not a dataset folder (no images/ or masks/ inside); move it out of the root or fix its layout"))
        return
    pairs, layout_problems = scan_dataset(root, folder.name)
    problems.extend(layout_problems)
    if spec_for_folder(specs, folder.name).description.startswith("not in the registry"):
        problems.append(Problem(str(folder), NOT_IN_REGISTRY))
    loop = progress(pairs, folder.name, len(pairs)) if progress else pairs
    for pair in loop:
        _guarded(problems, f"{pair.image} (mask {pair.mask})", lambda: load_pair(pair))
    splits_file = folder / SPLITS_FILE
    if splits_file.is_file():
        _guarded(problems, splits_file, lambda: read_splits_file(splits_file, [p.stem for p in pairs]))


def _guarded(problems: list[Problem], where: object, step: Callable[[], object]) -> object | None:
    """``step()``'s result; a ``DataError`` or any other exception becomes a problem (naming ``where`` when the
    error does not name a file itself) and gives None, so the scan goes on."""
    try:
        return step()
    except DataError as error:
        problems.append(Problem.from_error(error))
    except Exception as error:  # noqa: BLE001 - a check reports every problem, it never stops at one
        problems.append(Problem(str(where), f"unexpected {type(error).__name__} while checking ({error}); "
                                "report it with the file if the message does not say what to fix"))
    return None
