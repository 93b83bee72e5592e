"""Dataset registry: what each dataset folder is (organ, modality) and how to normalize it.

The defaults live in ``configs/data/registry.yaml``; a user YAML merges over them, entry by entry.
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unisegdiff.data.errors import DataError

DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parents[2] / "configs" / "data" / "registry.yaml"
NORMALIZATIONS = ("rgb", "ct_window", "mr_percentile", "us", "scale", "auto")
COLORS = ("rgb", "gray", "multi", "auto")
SPEC_KEYS = {"folder", "organ", "modality", "normalization", "params", "color", "group_regex", "importer", "phantom", "description"}


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry."""

    name: str
    folder: str
    organ: str = "unknown"
    modality: str = "unknown"
    normalization: str = "auto"
    params: dict[str, Any] = field(default_factory=dict)
    color: str = "auto"
    group_regex: str | None = None
    importer: str | None = None
    phantom: bool = False
    description: str = ""

    def group_of(self, stem: str) -> str:
        """Group key (patient / volume) of a stem; the stem itself without a ``group_regex`` or match."""
        if not self.group_regex:
            return stem
        match = re.search(self.group_regex, stem)
        return match.group(1) if match and match.groups() else stem


def unregistered_spec(folder: str) -> DatasetSpec:
    """Spec for a folder found under a root but missing from the registry: normalization guessed per image."""
    return DatasetSpec(name=folder, folder=folder, description="not in the registry; normalization chosen per image")


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(path, "registry file does not exist", "pass an existing YAML file as registry")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DataError(path, f"registry is not valid YAML ({error})", "fix the YAML syntax") from error
    if not isinstance(content, dict) or not isinstance(content.get("datasets", {}), dict):
        raise DataError(path, "registry must be a mapping with a 'datasets' mapping", "see configs/data/registry.yaml")
    return content.get("datasets") or {}


def _make_spec(name: str, entry: dict[str, Any], source: Path) -> DatasetSpec:
    unknown = set(entry) - SPEC_KEYS
    if unknown:
        raise DataError(source, f"dataset {name!r} has unknown keys {sorted(unknown)}", f"allowed keys: {sorted(SPEC_KEYS)}")
    entry = {"folder": name, **entry}
    if entry.get("normalization", "auto") not in NORMALIZATIONS:
        raise DataError(source, f"dataset {name!r} has normalization {entry['normalization']!r}", f"use one of {NORMALIZATIONS}")
    if entry.get("color", "auto") not in COLORS:
        raise DataError(source, f"dataset {name!r} has color {entry['color']!r}", f"use one of {COLORS}")
    if entry.get("group_regex"):
        try:
            re.compile(entry["group_regex"])
        except re.error as error:
            raise DataError(source, f"dataset {name!r} has an invalid group_regex ({error})", "fix the regular expression") from error
    entry["params"] = dict(entry.get("params") or {})
    return DatasetSpec(name=name, **entry)


def load_registry(extra: str | Path | None = None) -> dict[str, DatasetSpec]:
    """Default registry, with the entries of ``extra`` (a YAML path) merged over it key by key."""
    key = str(Path(extra).resolve()) if extra else ""
    stamp = tuple(p.stat().st_mtime_ns if p.is_file() else 0 for p in [DEFAULT_REGISTRY_PATH] + ([Path(key)] if key else []))
    return dict(_load_registry_cached(key, stamp))


@lru_cache(maxsize=16)
def _load_registry_cached(extra: str, stamp: tuple[int, ...]) -> dict[str, DatasetSpec]:
    sources = [DEFAULT_REGISTRY_PATH] + ([Path(extra)] if extra else [])
    merged: dict[str, tuple[dict[str, Any], Path]] = {}
    for source in sources:
        for name, entry in _read_yaml(source).items():
            if not isinstance(entry, dict):
                raise DataError(source, f"dataset {name!r} must be a mapping of fields", "see configs/data/registry.yaml")
            previous = merged.get(name, ({}, source))[0]
            params = {**previous.get("params", {}), **(entry.get("params") or {})}
            merged[name] = ({**previous, **entry, "params": params}, source)
    return {name: _make_spec(name, entry, source) for name, (entry, source) in merged.items()}


def spec_for_folder(registry: dict[str, DatasetSpec], folder: str) -> DatasetSpec:
    """Registry entry whose folder is ``folder`` (or a spec with per-image normalization if none)."""
    for spec in registry.values():
        if spec.folder == folder:
            return spec
    return unregistered_spec(folder)
