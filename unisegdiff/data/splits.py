"""Deterministic train/val/test splits per dataset: seeded from the SORTED stems (never from
directory order), grouped by patient/volume when the registry says how, or read from ``splits.json``.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from unisegdiff.data.errors import DataError
from unisegdiff.data.readers import write_bytes_atomic

SPLIT_NAMES = ("train", "val", "test")


def _target(fraction: float, n: int) -> int:
    return 0 if fraction <= 0 else max(1, int(round(fraction * n)))


def dataset_rng(seed: int, dataset: str) -> np.random.Generator:
    """One generator per (seed, dataset): adding a dataset never changes another's split."""
    return np.random.default_rng([seed, zlib.crc32(dataset.encode())])


def split_stems(stems: list[str], dataset: str, seed: int, val_fraction: float, test_fraction: float,
                group_of: Callable[[str], str] = lambda stem: stem, where: str = "") -> dict[str, list[str]]:
    """Seeded split of ``stems`` (order-independent: they are sorted first). Whole groups go to one split;
    test and val get at least one group each when their fraction is positive. Lists keep the seeded order.

    Not MONAI ``partition_dataset``: it splits items, not groups (slices of one patient would leak across
    splits), and cannot guarantee a non-empty val/test split for the tiny datasets."""
    stems = sorted(set(stems))
    needed = 1 + int(val_fraction > 0) + int(test_fraction > 0)
    groups: dict[str, list[str]] = {}
    for stem in stems:
        groups.setdefault(group_of(stem), []).append(stem)
    if len(groups) < needed:
        raise DataError(where or dataset, f"only {len(stems)} pairs in {len(groups)} group(s); {needed} are needed for train/val/test splits",
                        "add data, lower val_fraction/test_fraction to 0, or give a splits.json")
    order = [sorted(groups)[i] for i in dataset_rng(seed, dataset).permutation(len(groups))]
    splits: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    targets = {"test": _target(test_fraction, len(stems)), "val": _target(val_fraction, len(stems))}
    reserve = {"test": 1 + int(val_fraction > 0), "val": 1}  # groups left over for the later splits
    position = 0
    for name in ("test", "val"):
        while len(splits[name]) < targets[name] and len(order) - position > reserve[name]:
            splits[name].extend(groups[order[position]])
            position += 1
    for group in order[position:]:
        splits["train"].extend(groups[group])
    return splits


def kfold_stems(stems: list[str], k: int, dataset: str, seed: int, group_of: Callable[[str], str] = lambda stem: stem,
                where: str = "") -> list[dict[str, list[str]]]:
    """``k`` folds of ``stems`` by whole groups (seeded from sorted groups; sizes differ by at most one group): fold
    ``f`` tests on its own stems and trains on every other fold's, with no val (k-fold cross-validation of a set too
    small for a held-out split)."""
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k-fold cross-validation needs k >= 2 folds, got {k!r}")
    groups: dict[str, list[str]] = {}
    for stem in sorted(set(stems)):
        groups.setdefault(group_of(stem), []).append(stem)
    if len(groups) < k:
        raise DataError(where or dataset, f"{len(stems)} pairs in {len(groups)} group(s) cannot make {k} cross-validation folds",
                        "lower small_set_folds or add data")
    order = [sorted(groups)[i] for i in dataset_rng(seed, f"{dataset}/kfold").permutation(len(groups))]
    tests = [[stem for group in order[f::k] for stem in groups[group]] for f in range(k)]
    return [{"train": [s for g, fold in enumerate(tests) if g != f for s in fold], "val": [], "test": tests[f]} for f in range(k)]


def check_split_override(parts: dict[str, list[str]], stems: list[str], dataset: str) -> dict[str, list[str]]:
    """A given split of one dataset ({"train", "val", "test"}: stems) checked against its stems: known stems only,
    no stem in two splits, a non-empty train split."""
    if not isinstance(parts, dict) or set(parts) - set(SPLIT_NAMES):
        raise ValueError(f"split_overrides[{dataset!r}] must map {list(SPLIT_NAMES)} to lists of stems, got {parts!r}")
    out = {name: list(parts.get(name, [])) for name in SPLIT_NAMES}
    unknown = sorted(set(sum(out.values(), [])) - set(stems))
    if unknown:
        raise ValueError(f"split_overrides[{dataset!r}] names stems that are not in the dataset: {unknown[:5]}")
    seen = [s for name in SPLIT_NAMES for s in out[name]]
    if len(seen) != len(set(seen)):
        raise ValueError(f"split_overrides[{dataset!r}] puts a stem in two splits (or twice in one)")
    if not out["train"]:
        raise ValueError(f"split_overrides[{dataset!r}] has an empty train split")
    return out


def read_splits_file(path: Path, stems: list[str]) -> dict[str, list[str]]:
    """A dataset's ``splits.json`` ({"train": [...], "val": [...], "test": [...]}; val optional), checked
    against the stems present."""
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(path, f"cannot read splits ({error})", "fix the JSON or delete the file to use seeded splits") from error
    if not isinstance(content, dict) or set(content) - set(SPLIT_NAMES) or "train" not in content:
        raise DataError(path, f"keys {sorted(content) if isinstance(content, dict) else type(content).__name__} are not a split mapping",
                        'write {"train": [stems], "val": [stems], "test": [stems]} (val and test optional)')
    present, seen = set(stems), {}
    for name, listed in content.items():
        if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            raise DataError(path, f"split {name!r} is not a list of stems", "list file stems without extensions")
        missing = [s for s in listed if s not in present]
        if missing:
            raise DataError(path, f"split {name!r} lists {len(missing)} stem(s) without an image/mask pair, e.g. {missing[:3]}",
                            "remove them from splits.json or add the pairs")
        for stem in listed:
            if stem in seen:
                raise DataError(path, f"stem {stem!r} is in both {seen[stem]!r} and {name!r}", "put every stem in one split only")
            seen[stem] = name
    return {name: list(content.get(name, [])) for name in SPLIT_NAMES}


def carve_val(splits: dict[str, list[str]], dataset: str, seed: int, val_fraction: float, group_of: Callable[[str], str]) -> dict[str, list[str]]:
    """A val split taken from train when a splits.json gives none."""
    if splits["val"] or val_fraction <= 0:
        return splits
    total = sum(len(v) for v in splits.values())
    fraction = min(0.5, val_fraction * total / max(len(splits["train"]), 1))
    carved = split_stems(splits["train"], dataset, seed, fraction, 0.0, group_of)
    return {"train": carved["train"], "val": carved["val"], "test": splits["test"]}


def cap_splits(splits: dict[str, list[str]], cap: int | None, val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """At most ``cap`` stems in all, taken from the front of each (seeded-order) split, keeping its share."""
    if cap is None or sum(len(v) for v in splits.values()) <= cap:
        return splits
    n_test = min(len(splits["test"]), _target(test_fraction, cap)) if splits["test"] else 0
    n_val = min(len(splits["val"]), _target(val_fraction, cap)) if splits["val"] else 0
    n_train = max(1, cap - n_test - n_val)
    return {"train": splits["train"][:n_train], "val": splits["val"][:n_val], "test": splits["test"][:n_test]}


def write_splits_json(splits: dict[str, dict[str, list[str]]], path: str | Path, settings: dict) -> Path:
    """All datasets' splits (stems sorted) and the settings that made them, written atomically."""
    content = {"settings": settings, "datasets": {name: {k: sorted(v) for k, v in parts.items()} for name, parts in sorted(splits.items())}}
    return write_bytes_atomic((json.dumps(content, indent=1) + "\n").encode(), path, overwrite=True)
