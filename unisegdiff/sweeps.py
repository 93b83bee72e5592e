"""``unisegdiff sweep-dry-run``: sample parameter sets from a W&B sweep YAML offline and run each as a
short trial through the same CLI, proving every swept name is a valid LightningCLI argument.

W&B's sweep controller is a server (sweeps cannot run offline) and its open-source ``sweeps`` package
pins numpy<2, so sampling here implements the documented W&B parameter forms: values, value,
distribution (uniform, int_uniform, log_uniform_values, q_uniform, normal, categorical) with min/max.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from unisegdiff.lightning_cli import build_cli

SHORT_TRIAL_ARGS = [
    "--trainer.max_steps={steps}", "--trainer.limit_val_batches=1", "--trainer.num_sanity_val_steps=0",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    "--trainer.logger=false", "--trainer.enable_checkpointing=false", "--trainer.callbacks=null",
]
METHODS = ("random", "grid", "bayes")


def load_sweep(path: str) -> dict:
    """Read and check a sweep YAML: method, parameters (each a W&B parameter form) and command."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"sweep file {path!r} does not exist")
    sweep = yaml.safe_load(file.read_text())
    if not isinstance(sweep, dict):
        raise ValueError(f"sweep file {path!r} is not a YAML mapping")
    if sweep.get("method") not in METHODS:
        raise ValueError(f"sweep file {path!r}: method must be one of {METHODS}, got {sweep.get('method')!r}")
    params = sweep.get("parameters")
    if not isinstance(params, dict) or not params:
        raise ValueError(f"sweep file {path!r}: 'parameters' must be a non-empty mapping")
    for name, spec in params.items():
        if not isinstance(spec, dict) or not ({"values", "value", "distribution", "min"} & set(spec)):
            raise ValueError(f"sweep file {path!r}: parameter {name!r} needs one of values / value / distribution / min+max")
    command = sweep.get("command")
    if not isinstance(command, list) or "${args}" not in command:
        raise ValueError(f"sweep file {path!r}: 'command' must be a list containing '${{args}}' (LightningCLI --key=value arguments)")
    return sweep


def sample_value(spec: dict, rng: random.Random) -> Any:
    """One draw from a W&B parameter spec."""
    if "value" in spec:
        return spec["value"]
    if "values" in spec:
        dist = spec.get("distribution", "categorical")
        if dist != "categorical":
            raise ValueError(f"'values' goes with the categorical distribution, got {dist!r}")
        return rng.choice(spec["values"])
    dist = spec.get("distribution", "int_uniform" if isinstance(spec.get("min"), int) and isinstance(spec.get("max"), int) else "uniform")
    lo, hi = spec.get("min"), spec.get("max")
    if dist == "uniform":
        return rng.uniform(lo, hi)
    if dist == "int_uniform":
        return rng.randint(lo, hi)
    if dist == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if dist == "q_uniform":
        q = spec.get("q", 1)
        return round(rng.uniform(lo, hi) / q) * q
    if dist == "normal":
        return rng.gauss(spec.get("mu", 0.0), spec.get("sigma", 1.0))
    raise ValueError(f"unsupported distribution {dist!r}")


def sample_parameter_sets(sweep: dict, trials: int, seed: int = 0) -> list[dict[str, Any]]:
    """``trials`` parameter sets: a grid walks the Cartesian product; random and bayes draw randomly
    (bayes needs finished runs' metrics, which a dry run does not have)."""
    params = sweep["parameters"]
    if sweep["method"] == "grid":
        for name, spec in params.items():
            if "values" not in spec and "value" not in spec:
                raise ValueError(f"grid sweeps need 'values' for every parameter; {name!r} has {spec}")
        names = list(params)
        grid = itertools.product(*[params[n].get("values", [params[n].get("value")]) for n in names])
        return [dict(zip(names, combo)) for combo in itertools.islice(grid, trials)]
    rng = random.Random(seed)
    return [{name: sample_value(spec, rng) for name, spec in params.items()} for _ in range(trials)]


def build_command(sweep: dict, params: dict[str, Any]) -> list[str]:
    """The CLI arguments of one trial: the sweep's command with ${args} expanded to --key=value."""
    args: list[str] = []
    for item in sweep["command"]:
        if item in ("${env}", "${interpreter}"):
            continue
        if item == "${program}":
            item = sweep.get("program", "unisegdiff")
        if item == "${args}":
            args.extend(f"--{k}={json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else v}" for k, v in params.items())
        else:
            args.append(item)
    if args and Path(args[0]).name in ("unisegdiff", "python", "python3"):
        args = args[1:]
    if args[:2] == ["-m", "unisegdiff"]:
        args = args[2:]
    return args


def run_trial(args: list[str], out_dir: Path, steps: int) -> dict:
    """Run one trial in-process; returns the resolved config (as LightningCLI parsed it) and status."""
    subcommand, rest = args[0], args[1:]
    if subcommand not in ("fit", "validate", "test"):
        raise ValueError(f"sweep command must run fit, validate or test; got {subcommand!r}")
    short = [a.format(steps=steps) for a in SHORT_TRIAL_ARGS] + [f"--trainer.default_root_dir={out_dir}"]
    cli = build_cli(rest + short, run=False)  # run=False parses without the subcommand
    getattr(cli.trainer, subcommand)(cli.model, datamodule=cli.datamodule)
    config = cli.config.as_dict()
    return {"status": "finished", "global_step": cli.trainer.global_step, "config": config,
            "metrics": {k: float(v) for k, v in cli.trainer.callback_metrics.items()}}


def lookup(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unisegdiff sweep-dry-run", description=__doc__.split("\n")[0])
    parser.add_argument("sweep", help="W&B sweep YAML (configs/sweeps/*.yaml)")
    parser.add_argument("--trials", type=int, default=2, help="number of parameter sets to sample and run")
    parser.add_argument("--steps", type=int, default=2, help="training steps per trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/sweep_dry_run", help="folder for trial logs and results.json")
    parser.epilog = "Any other --key=value arguments are appended to every trial's command line."
    ns, extra = parser.parse_known_args(argv)
    bad = [a for a in extra if not a.startswith("--")]
    if bad:
        parser.error(f"unexpected arguments {bad}; trial overrides must look like --key=value")
    sweep = load_sweep(ns.sweep)
    out = Path(ns.out)
    results = []
    for i, params in enumerate(sample_parameter_sets(sweep, ns.trials, ns.seed)):
        args = build_command(sweep, params) + extra
        trial_dir = out / f"trial_{i:02d}"
        shutil.rmtree(trial_dir, ignore_errors=True)
        print(f"[trial {i}] {' '.join(args)}", file=sys.stderr)
        result = run_trial(args, trial_dir, ns.steps)
        mismatches = {k: (v, lookup(result["config"], k)) for k, v in params.items() if lookup(result["config"], k) != v}
        if mismatches:
            raise RuntimeError(f"trial {i}: the parsed config does not carry the sampled values: {mismatches}")
        results.append({"trial": i, "params": params, "args": args, **result})
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps([{k: r[k] for k in ("trial", "params", "status", "global_step")} for r in results], indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
