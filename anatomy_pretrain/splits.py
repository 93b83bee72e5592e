"""Seeded k-fold splits over case names: sorted first (os.listdir order differs between machines),
then permuted with the seed; optionally written to JSON so that every stage uses the same folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unisegdiff.io import write_json_atomic


def kfold_split(names: list[str], num_folds: int, fold: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, held-out) names for ``fold`` of ``num_folds``; with one fold, everything is train and held-out is empty."""
    if num_folds < 1 or not 0 <= fold < num_folds:
        raise ValueError(f"need 0 <= fold < num_folds, got fold={fold}, num_folds={num_folds}")
    ordered = sorted(set(names))
    if num_folds == 1:
        return ordered, []
    if len(ordered) < num_folds:
        raise ValueError(f"{len(ordered)} labelled cases cannot make {num_folds} folds")
    perm = np.random.default_rng(seed).permutation(len(ordered))
    folds = np.array_split(perm, num_folds)
    held = sorted(ordered[i] for i in folds[fold])
    held_set = set(held)
    return [n for n in ordered if n not in held_set], held


def label_budget(names: list[str], cases: int, seed: int = 0) -> list[str]:
    """A seeded subset of ``cases`` training case names (sorted); nested: a larger budget keeps the smaller one's cases."""
    if cases > len(names):
        raise ValueError(f"labelled_cases={cases} but the training fold has only {len(names)} labelled cases: lower "
                         "labelled_cases or use fewer folds")
    ordered = sorted(names)
    order = np.random.default_rng(seed + 1).permutation(len(ordered))
    return sorted(ordered[i] for i in order[:cases])


def write_split(path: str | Path, train: list[str], held_out: list[str], meta: dict) -> None:
    """Write the split as JSON atomically."""
    write_json_atomic({**meta, "train": train, "held_out": held_out}, path, indent=1)
