"""Command-line rewriting before LightningCLI parses: the short form ``predict CKPT INPUT... -o OUT``, and a
``--ckpt_path`` checkpoint's model (and predict settings) inserted as the first config, so the rest overrides it.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import yaml

from unisegdiff.checkpoint_cli import CheckpointError, checkpoint_config, read_checkpoint, training_settings

SUBCOMMANDS = ("fit", "validate", "test", "predict")
LIGHTNING_CKPT_WORDS = ("last", "best", "hpc", "registry")  # names Lightning resolves itself


def _option_parser(*flags: str, dest: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(*flags, dest=dest)
    return parser


def short_predict_argv(argv: list[str]) -> list[str]:
    """``predict CKPT INPUT... -o OUT [options]`` -> ``predict --ckpt_path CKPT --data.inputs [...] --data.output_dir OUT [options]``."""
    if len(argv) < 2 or argv[0] != "predict" or argv[1].startswith("-"):
        return argv
    positionals = list(itertools.takewhile(lambda a: not a.startswith("-"), argv[1:]))
    ns, rest = _option_parser("-o", "--output", dest="output").parse_known_args(argv[1 + len(positionals):])
    ckpt, inputs = positionals[0], positionals[1:]
    if not inputs:
        raise CheckpointError(f"predict {ckpt}: no inputs; usage: unisegdiff predict CKPT INPUT... -o OUTPUT_DIR")
    if ns.output is None and not any(a.startswith("--data.output_dir") for a in rest):
        raise CheckpointError("predict: no output folder; usage: unisegdiff predict CKPT INPUT... -o OUTPUT_DIR")
    output = ["--data.output_dir", ns.output] if ns.output is not None else []
    return ["predict", "--ckpt_path", ckpt, "--data.inputs", json.dumps(inputs), *output, *rest]


def ckpt_path_of(args: list[str]) -> str | None:
    """The ``--ckpt_path`` value given on the command line (``--ckpt_path X`` or ``--ckpt_path=X``)."""
    return _option_parser("--ckpt_path", dest="ckpt_path").parse_known_args(args)[0].ckpt_path


def expand_argv(argv: list[str]) -> tuple[list[str], dict[str, Any] | None]:
    """The argv LightningCLI parses, and the training settings recorded in the checkpoint (None: no checkpoint file)."""
    argv = short_predict_argv(list(argv))
    if not argv or argv[0] not in SUBCOMMANDS or any(a in ("-h", "--help") for a in argv[1:]):
        return argv, None
    ckpt = ckpt_path_of(argv[1:])
    if ckpt is None or ckpt in LIGHTNING_CKPT_WORDS or ckpt.startswith("registry:"):
        return argv, None
    if not Path(ckpt).is_file():
        raise CheckpointError(f"--ckpt_path {ckpt!r}: no such file; pass a .ckpt written by `unisegdiff fit`")
    info = read_checkpoint(ckpt)
    config = yaml.safe_dump(checkpoint_config(argv[0], info), sort_keys=False)
    settings = training_settings(info) if argv[0] == "predict" else {}
    return [argv[0], "--config", config, *argv[1:]], settings
