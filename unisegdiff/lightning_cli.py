"""The LightningCLI of ``unisegdiff`` (fit / validate / test / predict) and its builder, shared by the
console entry point (``unisegdiff.cli``) and the sweep dry run (``unisegdiff.sweeps``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

import lightning as L
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from unisegdiff.checkpoint_cli import SETTINGS_KEYS, checkpoint_config, read_checkpoint
from unisegdiff.cli_argv import expand_argv
from unisegdiff.io import write_text_atomic
from unisegdiff.recipes import CONFIG_ROOT
from unisegdiff.secrets import redact, refuse_logger_credentials

PREDICT_CONFIG = "predict_config.yaml"  # predict's record inside its output folder, apart from fit's config.yaml


class SaveAndLogConfig(SaveConfigCallback):
    """Saves the resolved config, redacted (``unisegdiff.secrets``), next to the logs (predict: into its output
    folder as ``predict_config.yaml``) and sends the same to W&B."""

    def redacted(self) -> dict[str, Any]:
        text = self.parser.dump(self.config, skip_none=False, skip_validation=True)
        return redact(yaml.safe_load(text) or {})

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        output_dir = getattr(trainer.datamodule, "output_dir", None)
        if stage == "predict" and output_dir is not None:
            path = Path(output_dir) / PREDICT_CONFIG
        else:  # fit keeps config.yaml; validate/test write their own (test_config.yaml), never over the fit's
            name = self.config_filename if stage == "fit" else f"{getattr(stage, 'value', stage)}_{self.config_filename}"
            path = Path(trainer.log_dir) / name  # log_dir broadcasts: every rank asks for it
        exists = trainer.strategy.broadcast(path.is_file() if trainer.is_global_zero else False)
        if exists and not self.overwrite and stage != "predict":  # predict reruns complete their folder
            raise RuntimeError(f"{path} exists; pass another log directory (or save_config_kwargs overwrite=True)")
        if trainer.is_global_zero:
            text = yaml.safe_dump(self.redacted(), sort_keys=False, default_flow_style=False, allow_unicode=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(text, path)
            if stage != "predict":
                self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update({"cli": self.redacted()}, allow_val_change=True)


def _redacting(log_hyperparams: Callable[..., Any]) -> Callable[..., Any]:
    """A logger's ``log_hyperparams`` that gets its params redacted (W&B run files, CSV ``hparams.yaml``)."""

    def log(params: Any, *args: Any, **kwargs: Any) -> Any:
        params = vars(params) if isinstance(params, argparse.Namespace) else dict(params)
        return log_hyperparams(redact(params), *args, **kwargs)

    return log


def _logger_entries(trainer: Any) -> tuple[Any, list[Any]]:
    loggers = trainer.get("logger")
    return loggers, loggers if isinstance(loggers, list) else [loggers]


class UniSegDiffCLI(LightningCLI):
    """LightningCLI with project defaults: seed 0, config overwrite allowed (sweeps share log dirs),
    W&B offline unless WANDB_MODE says otherwise, CSV logs instead of W&B when WANDB_MODE=disabled.

    A ``--ckpt_path`` checkpoint is read (weights only, class path checked) before parsing and its model,
    and for ``predict`` its training image settings, become the first config; the command line overrides it.
    """

    checkpoint_settings: dict[str, Any] | None = None  # set when the command line named a checkpoint file

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        if args is None or isinstance(args, list):
            args, self.checkpoint_settings = expand_argv(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Lightning's version imports the checkpoint's class path unchecked and lets the checkpoint override the
        command line; here only a ``ckpt_path`` from a config file is left, and it fills the model if none is given."""
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if self.checkpoint_settings is not None or not ckpt or not Path(ckpt).is_file():
            return
        info = read_checkpoint(ckpt)
        if self.config[subcommand].get("model") is None:
            model = checkpoint_config(subcommand, info)["model"]
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.subcommand == "predict":
            self._warn_on_changed_settings(config)
        trainer = config.get("trainer")
        if trainer is None:
            return
        self._check_logger_settings(trainer)
        if os.environ.get("WANDB_MODE") != "disabled":
            return
        loggers, entries = _logger_entries(trainer)
        swapped = []
        for entry in entries:
            if entry is not None and not isinstance(entry, bool) and str(entry.get("class_path", "")).endswith("WandbLogger"):
                args = entry.get("init_args", {}) or {}
                save_dir = args.get("save_dir") or trainer.get("default_root_dir") or "."
                entry = type(entry)(class_path="lightning.pytorch.loggers.CSVLogger", init_args=type(args)(save_dir=save_dir, name="csv"))
            swapped.append(entry)
        trainer["logger"] = swapped if isinstance(loggers, list) else swapped[0]

    def _check_logger_settings(self, trainer: Any) -> None:
        """No credential in a logger's init args (refused: use WANDB_API_KEY), and secret-looking tokens in its
        values (notes, tags, config) replaced by '***' before the logger writes them into its run files."""
        loggers, entries = _logger_entries(trainer)
        for i, entry in enumerate(entries):
            if entry is None or isinstance(entry, bool) or entry.get("init_args") is None:
                continue
            where = f"trainer.logger[{i}].init_args" if isinstance(loggers, list) else "trainer.logger.init_args"
            args = entry["init_args"]
            plain = args.as_dict() if hasattr(args, "as_dict") else dict(args)
            refuse_logger_credentials(plain, where)
            for key, value in plain.items():
                if redact(value) != value:
                    print(f"warning: {where}.{key} holds a secret-looking value; it is logged as '***'", file=sys.stderr)
                    args[key] = redact(value)

    def _warn_on_changed_settings(self, config: Any) -> None:
        recorded = getattr(self, "checkpoint_settings", None) or {}
        data = config.get("data")
        init_args = data.get("init_args") if data is not None and not isinstance(data, dict) else None
        for key in SETTINGS_KEYS:
            if key in recorded and init_args is not None and key in init_args and init_args[key] != recorded[key]:
                print(f"warning: predict: data.{key}={init_args[key]!r} differs from the training value {recorded[key]!r} recorded "
                      f"in the checkpoint; masks will differ from what the model learned (drop the option to use it)", file=sys.stderr)

    def after_instantiate_classes(self) -> None:
        for logger in getattr(self.trainer, "loggers", []):
            logger.log_hyperparams = _redacting(logger.log_hyperparams)
        if self.subcommand == "predict" and not any(isinstance(c, BasePredictionWriter) for c in self.trainer.callbacks):
            from unisegdiff.predict import PredictionWriter

            self.trainer.callbacks.append(PredictionWriter())  # a training config's callback list replaced the writer


FIT_DEFAULTS = CONFIG_ROOT / "trainer" / "fit_defaults.yaml"


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    os.environ.setdefault("WANDB_MODE", "offline")
    return UniSegDiffCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_callback=SaveAndLogConfig,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
        # the callbacks every 2D stage shares, as data; a config's own trainer.callbacks replaces them
        parser_kwargs={"fit": {"default_config_files": [str(p) for p in [FIT_DEFAULTS] if p.is_file()]}},
    )
