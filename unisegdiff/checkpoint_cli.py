"""What the CLI takes from a checkpoint: read with ``weights_only``, the class path checked against this
project's packages before anything is imported, and the model and training settings as a config.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

PROJECT_PACKAGES = ("unisegdiff", "anatomy_pretrain")
SETTINGS_KEYS = ("image_size", "channels", "modality")  # predict preprocessing that must match training
FIX = "pass a .ckpt written by `unisegdiff fit` (e.g. runs/demo/staged/last.ckpt)"


class CheckpointError(ValueError):
    """A checkpoint the CLI cannot use (the message names the file and the fix)."""


@dataclass
class CheckpointInfo:
    """A checkpoint's model class path, its init hyperparameters and its datamodule's hyperparameters."""

    path: str
    class_path: str
    hparams: dict[str, Any]
    data_hparams: dict[str, Any] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """Tuples to lists and mappings to dicts, so the values dump as YAML."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _project_module_exists(module_name: str) -> bool:
    """Whether ``module_name`` is a module file inside one of this project's packages (nothing is imported)."""
    parts = module_name.split(".")
    if parts[0] not in PROJECT_PACKAGES or not all(p.isidentifier() for p in parts):
        return False
    spec = importlib.util.find_spec(parts[0])  # a top-level name is located, not executed
    if spec is None or not spec.submodule_search_locations:
        return False
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts[1:])
    return len(parts) == 1 or base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def model_class(class_path: str, where: str) -> type:
    """The LightningModule class a checkpoint names; refused before import unless it lives in this project."""
    module_name, _, name = str(class_path).rpartition(".")
    if not module_name or not name.isidentifier() or not _project_module_exists(module_name):
        raise CheckpointError(f"{where}: names the model class {class_path!r}, which is not part of unisegdiff "
                              f"(only classes of {', '.join(PROJECT_PACKAGES)} are loaded from a checkpoint); {FIX}")
    import lightning as L

    cls = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, L.LightningModule)):
        raise CheckpointError(f"{where}: {class_path!r} is not a LightningModule of this project; {FIX}")
    return cls


def read_checkpoint(path: str) -> CheckpointInfo:
    """Load ``path`` with ``weights_only=True`` and check its class path; raises ``CheckpointError``."""
    if not Path(path).is_file():
        raise CheckpointError(f"--ckpt_path {path!r}: no such file; {FIX}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # truncated, not a torch file, or pickled objects weights_only refuses
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: cannot be read as a weights-only torch checkpoint ({first}); {FIX}") from error
    if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict); {FIX}")
    hparams = dict(blob.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None)
    if not class_path:
        raise CheckpointError(f"{path}: not a unisegdiff checkpoint (hyper_parameters has no _class_path); {FIX}")
    cls = model_class(class_path, path)
    return CheckpointInfo(path, class_path, _init_args(cls, hparams, path), _plain(dict(blob.get("datamodule_hyper_parameters") or {})))


def _init_args(cls: type, hparams: dict[str, Any], where: str) -> dict[str, Any]:
    """The hyperparameters the class still accepts (private keys such as ``_instantiator`` dropped)."""
    params = inspect.signature(cls.__init__).parameters
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kept = {k: v for k, v in hparams.items() if not k.startswith("_") and (open_kwargs or k in params)}
    dropped = sorted(k for k in hparams if not k.startswith("_") and k not in kept)
    if dropped:
        print(f"note: {where}: hyperparameters {dropped} are no longer arguments of {cls.__name__}; ignored", file=sys.stderr)
    return _plain(kept)


def training_settings(info: CheckpointInfo) -> dict[str, Any]:
    """Image size, channels and (a single trained dataset's) modality as recorded at training time."""
    data, settings = info.data_hparams, {}
    if isinstance(data.get("image_size"), int):
        settings["image_size"] = data["image_size"]
    channels = data.get("channels", info.hparams.get("in_channels"))
    if isinstance(channels, int):
        settings["channels"] = channels
    datasets = data.get("datasets")
    if isinstance(datasets, list) and len(datasets) == 1 and not data.get("registry"):
        from unisegdiff.data.preprocess import resolve_spec

        try:
            settings["modality"] = resolve_spec(str(datasets[0])).name
        except ValueError:
            pass  # a folder name, not a registry entry: predict keeps ``auto``
    return settings


def checkpoint_config(subcommand: str, info: CheckpointInfo) -> dict[str, Any]:
    """The first config of a run from ``info``: its model; for predict also the data and trainer defaults."""
    config: dict[str, Any] = {"model": {"class_path": info.class_path, "init_args": info.hparams}}
    if subcommand != "fit":
        config["weights_only"] = True  # Trainer restores the checkpoint without unpickling objects
    if subcommand == "predict" and info.hparams.get("spatial_dims", 2) != 2:
        raise CheckpointError(f"{info.path}: a {info.hparams.get('spatial_dims')}D model; `unisegdiff predict` segments with 2D "
                              f"models only (volumes slice by slice); use a 2D checkpoint")
    if subcommand == "predict":
        config["data"] = {"class_path": "unisegdiff.predict.PredictionDataModule", "init_args": training_settings(info)}
        config["trainer"] = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False,
                             "callbacks": [{"class_path": "unisegdiff.predict.PredictionWriter"}]}
    return config
