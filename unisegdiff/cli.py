"""The ``unisegdiff`` command: LightningCLI (fit / validate / test / predict) where a config picks
the LightningModule (pipeline stage) and DataModule, plus ``data`` and ``sweep-dry-run`` tools.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import lightning as L
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

EXTRA_COMMANDS = {
    "data": ("unisegdiff.data.cli", "dataset tools: check a root, import an official archive"),
    "sweep-dry-run": ("unisegdiff.sweeps", "sample a W&B sweep offline and run each trial briefly"),
}
SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")


def redact(value: Any) -> Any:
    """A copy of a nested config with values under secret-looking keys replaced by '***'."""
    if isinstance(value, dict):
        return {k: "***" if any(w in str(k).lower() for w in SECRET_WORDS) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


class SaveAndLogConfig(SaveConfigCallback):
    """Saves the resolved config next to the logs and also sends it (redacted) to W&B."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = redact(self.config.as_dict() if hasattr(self.config, "as_dict") else dict(self.config))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.config.update({"cli": config}, allow_val_change=True)


class UniSegDiffCLI(LightningCLI):
    """LightningCLI with project defaults: seed 0, config overwrite allowed (sweeps share log dirs),
    W&B offline unless WANDB_MODE says otherwise, CSV logs instead of W&B when WANDB_MODE=disabled."""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.get("trainer")
        if trainer is None or os.environ.get("WANDB_MODE") != "disabled":
            return
        loggers = trainer.get("logger")
        entries = loggers if isinstance(loggers, list) else [loggers]
        swapped = []
        for entry in entries:
            if entry is not None and not isinstance(entry, bool) and str(entry.get("class_path", "")).endswith("WandbLogger"):
                args = entry.get("init_args", {}) or {}
                save_dir = args.get("save_dir") or trainer.get("default_root_dir") or "."
                entry = type(entry)(class_path="lightning.pytorch.loggers.CSVLogger", init_args=type(args)(save_dir=save_dir, name="csv"))
            swapped.append(entry)
        trainer["logger"] = swapped if isinstance(loggers, list) else swapped[0]


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
    )


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        module = importlib.import_module(EXTRA_COMMANDS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    if argv and argv[0] in ("-h", "--help"):
        print("extra commands:\n" + "\n".join(f"  {k:<15} {v[1]}" for k, v in EXTRA_COMMANDS.items()) + "\n")
    build_cli(None if from_command_line else argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
