"""The ``unisegdiff`` command: LightningCLI (fit / validate / test / predict) where a config picks
the LightningModule (pipeline stage) and DataModule, plus ``data`` and ``sweep-dry-run`` tools.
"""

from __future__ import annotations

import sys

import lightning as L
from lightning.pytorch.cli import LightningCLI

EXTRA_COMMANDS = {
    "data": ("unisegdiff.data.cli", "dataset tools: check a root, import an official archive"),
    "sweep-dry-run": ("unisegdiff.sweeps", "sample a W&B sweep offline and run each trial briefly"),
}


class UniSegDiffCLI(LightningCLI):
    """LightningCLI with project defaults: seed 0, config overwrite allowed (sweeps share log dirs)."""


def build_cli(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    return UniSegDiffCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        import importlib

        module = importlib.import_module(EXTRA_COMMANDS[argv[0]][0])
        return int(module.main(argv[1:]) or 0)
    if argv and argv[0] in ("-h", "--help"):
        print("extra commands:\n" + "\n".join(f"  {k:<15} {v[1]}" for k, v in EXTRA_COMMANDS.items()) + "\n")
    build_cli(None if from_command_line else argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
