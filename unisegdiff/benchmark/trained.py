"""The trained models a benchmark run left behind, for analyses that rescore them without training
(bench/uncertainty_sources.py, bench/threshold_tuning.py): loaded only if they are the ones their result files scored."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch

from unisegdiff.benchmark.profile import BenchProfile
from unisegdiff.io import read_checkpoint
from unisegdiff.recipes import instantiate_section

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # where the benchmark scored them


def load_trained(bench, method: str, seed: int) -> L.LightningModule | None:
    """``method``'s checkpoint of ``seed`` in ``bench.work`` on the benchmark's device, in eval mode; None (with a note)
    when the checkpoint or the result file is missing. Refused (``SystemExit``) when the checkpoint is at another step
    than its result file's training (a later run replaced it)."""
    ckpt, result = bench.work / method / f"seed{seed}" / "last.ckpt", bench.result_path(method, seed)
    if not ckpt.is_file() or not result.is_file():
        print(f"[rescore] {method} seed {seed}: no checkpoint {ckpt} or result {result}, skipped")
        return None
    state, train = read_checkpoint(ckpt), json.loads(result.read_text())["train"]
    steps = train.get("phase2_steps", train["steps"])
    if state["global_step"] != steps:
        raise SystemExit(f"{ckpt} is at step {state['global_step']}, not the {steps} steps of {result}: a later run "
                         "replaced it; rerun the benchmark for it")
    model = instantiate_section(bench.model_section(method), L.LightningModule)
    model.load_state_dict(state["state_dict"])
    return model.to(DEVICE).eval()


def check_same_dice(bench, method: str, seed: int, rescored: dict[tuple[str, str], float], tolerance: float = 1e-6) -> None:
    """Rescored per-image Dice at the reported setting, ``{(dataset, stem): dice}``, must be the result file's: else
    the analysis would judge another segmentation (another machine, device or data root)."""
    stored = {(r["dataset"], r["stem"]): r["dice"] for r in json.loads(bench.result_path(method, seed).read_text())["images"]}
    for key, dice in rescored.items():
        if key not in stored:
            raise SystemExit(f"{method} seed {seed}: {key[0]}/{key[1]} is not a test image of its result file (another data root?)")
        if abs(stored[key] - dice) > tolerance:
            raise SystemExit(f"{method} seed {seed}: {key[0]}/{key[1]} rescores to Dice {dice:.6f}, its result file has "
                             f"{stored[key]:.6f} (another machine, device or data root?)")


def image_generators(model, batch: dict, image: torch.Tensor):
    """The per-image sampling generators of the benchmark's scoring, on the image's device."""
    return model._eval_generator({**batch, "image": image})


def profile_run(profile: str, root: Path, out: str | None = None):
    """(BenchProfile, its name, its report folder, its checkpoint folder) for ``profile``, a name of configs/benchmark/
    or a YAML file, laid out as bench/benchmark.py lays out a run (reports/benchmark for standard, else
    reports/benchmark_<name>; runs/benchmark_<name>); ``out`` overrides the report folder."""
    path = Path(profile) if profile.endswith(".yaml") else root / "configs" / "benchmark" / f"{profile}.yaml"
    name = path.stem
    report = Path(out) if out else root / "reports" / ("benchmark" if name == "standard" else f"benchmark_{name}")
    return BenchProfile.from_yaml(path), name, report, root / "runs" / f"benchmark_{name}"
