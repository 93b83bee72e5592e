"""Recipes are data: the YAML files under ``configs/`` are the single source of every model and data
setting; this module finds them and reads a config's sections for code that builds runs in Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG_ROOT = Path(__file__).resolve().parents[1] / "configs"


def config_path(name: str | Path) -> Path:
    """``configs/<name>.yaml`` (``name`` like ``unisegdiff/staged``) or an explicit path to a YAML file."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_ROOT / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"recipe {name!r}: {path} does not exist; configs live in {CONFIG_ROOT} "
                                "(a source checkout of the project) or pass a path to your own YAML file")
    return path


def read_config(name: str | Path) -> dict[str, Any]:
    """The whole config file as a dict."""
    path = config_path(name)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"recipe {path}: expected a mapping with trainer/model/data sections, got {type(data).__name__}")
    return data


def model_init_args(name: str | Path) -> dict[str, Any]:
    """``model.init_args`` of a config (e.g. ``unisegdiff/staged``): the recipe's model settings."""
    path = config_path(name)
    args = (read_config(path).get("model") or {}).get("init_args")
    if not isinstance(args, dict):
        raise ValueError(f"recipe {path} has no model.init_args section")
    return args


def compose_section(configs: list[str | Path], section: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{class_path, init_args}`` of ``section`` (``model`` / ``data``) merged over ``configs`` in order, as
    LightningCLI merges several ``--config`` files, with ``overrides`` applied to ``init_args`` last."""
    merged: dict[str, Any] = {}
    for name in configs:
        part = read_config(name).get(section)
        if not part:
            continue
        if part.get("class_path") and part["class_path"] != merged.get("class_path"):
            merged = {"class_path": part["class_path"], "init_args": {}}
        merged["init_args"] = {**merged.get("init_args", {}), **(part.get("init_args") or {})}
    if not merged.get("class_path"):
        raise ValueError(f"no {section}.class_path in recipes {[str(c) for c in configs]}")
    merged["init_args"] = {**merged["init_args"], **(overrides or {})}
    return merged


def instantiate_section(section: dict[str, Any], base: type) -> Any:
    """Build ``{class_path, init_args}`` through jsonargparse, the parser LightningCLI uses: unknown or
    mistyped arguments fail the same way they fail on the command line."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "obj", required=True)
    return parser.instantiate(parser.parse_object({"obj": section})).obj
