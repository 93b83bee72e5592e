"""The ``unisegdiff`` command: LightningCLI (fit / validate / test / predict, see ``unisegdiff.lightning_cli``)
plus extra commands (``data``, ``score``, ``sweep-dry-run``) loaded lazily by module name.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from unisegdiff import quiet
from unisegdiff.checkpoint_cli import CheckpointError
from unisegdiff.data.errors import DataError

# command -> (module with ``main(argv) -> int``, help line); modules load only when their command runs
EXTRA_COMMANDS = {
    "data": ("unisegdiff.data.cli", "dataset tools: check a root, import an official archive"),
    "score": ("unisegdiff.scoring", "score predicted masks against ground truth: Dice, IoU, HD95 per image and folder"),
    "sweep-dry-run": ("unisegdiff.sweeps", "sample a W&B sweep offline and run each trial briefly"),
}
USER_ERRORS = (CheckpointError, DataError)  # their messages name the file and the fix: no traceback
# a path the user gave that is not there / not usable (the error carries the file name)
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)
PROJECT_DIRS = tuple(str(Path(__file__).resolve().parents[1] / name) for name in ("unisegdiff", "anatomy_pretrain"))
DEBUG_ENV = "UNISEGDIFF_DEBUG"


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


def _raised_in_project(error: BaseException) -> bool:
    """Whether ``error`` was raised by this project's own code (a deliberate message), not inside a library."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(PROJECT_DIRS)


def user_error(error: BaseException) -> BaseException | None:
    """The user error (bad data, path, config value or checkpoint) in ``error``'s chain, or None for a bug."""
    for candidate in _chain(error):
        if isinstance(candidate, USER_ERRORS):
            return candidate
        if isinstance(candidate, PATH_ERRORS) and candidate.filename:
            return candidate
        if isinstance(candidate, ValueError) and str(candidate) and _raised_in_project(candidate):
            return candidate  # config values checked by our classes (StagePlan, data module, recipes ...)
    return None


def error_message(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or type(error).__name__}; check the path (relative paths start at {os.getcwd()})"
    return str(error)


def report(command: str, error: Exception) -> int:
    """A user error: one short message on stderr and exit status 2; anything else (or ``UNISEGDIFF_DEBUG=1``) is
    raised again with its traceback."""
    found = user_error(error)
    if found is None or os.environ.get(DEBUG_ENV) == "1":
        raise error
    print(f"unisegdiff {command}: error: {error_message(found)}\n(set {DEBUG_ENV}=1 to see the traceback)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else ""
    if command in EXTRA_COMMANDS:
        quiet.install(wandb=False)
        try:
            return run_extra(command, argv[1:])
        except Exception as error:
            return report(command, error)
    if command in ("-h", "--help"):
        print("extra commands:\n" + "\n".join(f"  {k:<15} {v[1]}" for k, v in EXTRA_COMMANDS.items()) + "\n"
              "short predict form:\n  unisegdiff predict CKPT INPUT... -o OUTPUT_DIR [--data.on_error skip] [other predict options]\n")
    quiet.install()
    from unisegdiff.lightning_cli import build_cli

    try:
        cli = build_cli(None if from_command_line else argv)
    except Exception as error:
        return report(command, error)
    failures = getattr(getattr(cli, "datamodule", None), "failures", None)
    if failures:  # predict --data.on_error skip: the rest was predicted, the skipped inputs are listed
        print(f"unisegdiff predict: {len(failures)} input(s) skipped, listed in {cli.datamodule.failures_path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
