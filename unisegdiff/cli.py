"""The ``unisegdiff`` command: LightningCLI (fit / validate / test / predict, see ``unisegdiff.lightning_cli``)
plus extra commands (``data``, ``score``, ``sweep-dry-run``) loaded lazily by module name.
"""

from __future__ import annotations

import importlib
import os
import sys

from unisegdiff.checkpoint_cli import CheckpointError
from unisegdiff.data.errors import DataError

# command -> (module with ``main(argv) -> int``, help line); modules load only when their command runs
EXTRA_COMMANDS = {
    "data": ("unisegdiff.data.cli", "dataset tools: check a root, import an official archive"),
    "score": ("unisegdiff.scoring", "score predicted masks against ground truth: Dice, IoU, HD95 per image and folder"),
    "sweep-dry-run": ("unisegdiff.sweeps", "sample a W&B sweep offline and run each trial briefly"),
}
USER_ERRORS = (CheckpointError, DataError)  # their messages name the file and the fix: no traceback


def run_extra(command: str, argv: list[str]) -> int:
    module_name = EXTRA_COMMANDS[command][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        print(f"unisegdiff {command}: not available in this version ({module_name} is missing); update the package", file=sys.stderr)
        return 2
    return int(module.main(argv) or 0)


def _chain(error: BaseException):
    """The error and its causes (jsonargparse wraps errors raised while instantiating a class)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        return run_extra(argv[0], argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print("extra commands:\n" + "\n".join(f"  {k:<15} {v[1]}" for k, v in EXTRA_COMMANDS.items()) + "\n"
              "short predict form:\n  unisegdiff predict CKPT INPUT... -o OUTPUT_DIR [--data.on_error skip] [other predict options]\n")
    from unisegdiff.lightning_cli import build_cli

    try:
        cli = build_cli(None if from_command_line else argv)
    except Exception as error:
        user_error = next((e for e in _chain(error) if isinstance(e, USER_ERRORS)), None)
        if user_error is None or os.environ.get("UNISEGDIFF_DEBUG") == "1":
            raise
        print(f"unisegdiff {argv[0] if argv else ''}: error: {user_error}", file=sys.stderr)
        return 2
    failures = getattr(getattr(cli, "datamodule", None), "failures", None)
    if failures:  # predict --data.on_error skip: the rest was predicted, the skipped inputs are listed
        print(f"unisegdiff predict: {len(failures)} input(s) skipped, listed in {cli.datamodule.failures_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
