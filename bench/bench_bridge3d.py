"""The two halves joined, measured: a 3D U-Net and a 3D staged segmenter on MSD hippocampus MR (binary), each from
random init and from an anatomy-pretrained encoder, at equal training steps, over seeds; per-volume Dice with paired
CIs and uncertainty AUROC / ECE from the 2D benchmark's statistics code (unisegdiff.benchmark).

Usage: python bench/bench_bridge3d.py --profile cpu   (profiles: configs/benchmark/anatomy/bridge3d.yaml)
  -> reports/bench/bridge3d.md and bridge3d.json; one result file per (arm, seed) in reports/bench/bridge3d_runs/,
     written as soon as it is done (a rerun skips the ones there, so the run can be done in pieces).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from monai.inferers import SlidingWindowInferer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anatomy_pretrain import profiles  # noqa: E402
from anatomy_pretrain.bridge import export_encoder  # noqa: E402
from anatomy_pretrain.tiny import quiet_trainer, save_module_checkpoint  # noqa: E402
from anatomy_pretrain.volume_data import VolumeDataModule  # noqa: E402
from unisegdiff.benchmark.calibration import PixelCalibration  # noqa: E402
from unisegdiff.benchmark.fingerprint import model_with_defaults  # noqa: E402
from unisegdiff.benchmark.statistics import paired_difference, seed_summary  # noqa: E402
from unisegdiff.io import write_json_atomic, write_text_atomic  # noqa: E402
from unisegdiff.metrics import per_sample_metrics  # noqa: E402
from unisegdiff.models import DeterministicSegmenter  # noqa: E402
from unisegdiff.recipes import compose_section, instantiate_section  # noqa: E402

PROFILES = ROOT / "configs" / "benchmark" / "anatomy" / "bridge3d.yaml"
HIPPO = ROOT.parent / "shared" / "data" / "volumes" / "hippocampus_mri_msd"
KEYS = {"cases", "folds", "fold", "seeds", "features", "denoiser_channels", "patch", "sw_overlap", "batch_size", "samples_per_volume",
        "queue_length", "steps", "lr", "num_samples", "coord_steps", "pretrain_steps", "pretrain_max_timestep", "pretrain_target",
        "recipes", "model_overrides"}
# what files written before these were profile keys were made with (the models then built in code: the same arguments,
# tests/anatomy_pretrain/test_bench_bridge3d.py checks that these recipes still compose to them)
LEGACY_SETTINGS = {"pretrain_max_timestep": 600, "pretrain_target": "eps",
                   "recipes": {"unet": ["unisegdiff/unet"], "staged": ["unisegdiff/staged"]},
                   "model_overrides": {"staged": {"denoiser_trains_condition": False}}}
ARMS = {  # name -> (segmenter, encoder pretrained)
    "unet": ("unet", False),
    "unet + pretrained encoder": ("unet", True),
    "staged": ("staged", False),
    "staged + pretrained encoder": ("staged", True),
}
COMPARISONS = [("unet + pretrained encoder", "unet"), ("staged", "unet"), ("staged + pretrained encoder", "unet"),
               ("staged + pretrained encoder", "staged")]


class BinaryVolumes(VolumeDataModule):
    """The volumes with labels > 0 as the binary ``mask`` the 2D-half segmenters train on (hippocampus vs background)."""

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if "label" in batch:
            batch["mask"] = (batch["label"] > 0).float()
        batch["dataset"] = ["hippocampus"] * batch["image"].shape[0]
        return batch


SIZE_KEYS = {"spatial_dims", "in_channels", "lr", "features", "encoder_ckpt", "condition_features", "denoiser_channels", "num_samples",
             "condition_ckpt"}  # set by the profile's own keys (and the pretrained encoder), never by model_overrides


def load_profile(name: str) -> dict:
    """Profile ``name`` of configs/benchmark/anatomy/bridge3d.yaml (or a YAML file of one profile's keys); its
    ``recipes`` (kind -> a config name or a list of them) and ``model_overrides`` (kind -> init_args) are checked."""
    p = profiles.load_profile(name, PROFILES, KEYS)
    kinds = {kind for kind, _ in ARMS.values()}
    recipes = p["recipes"]
    if not isinstance(recipes, dict) or set(recipes) != kinds:
        raise SystemExit(f"--profile {name}: recipes must map each of {sorted(kinds)} to its configs/ recipe(s), got {recipes!r}")
    p["recipes"] = {kind: [v] if isinstance(v, str) else v for kind, v in recipes.items()}
    for kind, value in p["recipes"].items():
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            raise SystemExit(f"--profile {name}: recipes.{kind} must be a config name or a non-empty list of them, got {value!r}")
    overrides = p["model_overrides"] or {}
    if not isinstance(overrides, dict) or set(overrides) - kinds or not all(isinstance(v, dict) for v in overrides.values()):
        raise SystemExit(f"--profile {name}: model_overrides maps kinds among {sorted(kinds)} to init_args, got {overrides!r}")
    sized = sorted({k for v in overrides.values() for k in v} & SIZE_KEYS)
    if sized:
        raise SystemExit(f"--profile {name}: model_overrides may not set {sized}; they come from the profile's own keys "
                         "(features, denoiser_channels, num_samples, lr)")
    p["model_overrides"] = overrides
    return p


def volumes(p: dict, root: Path, cache: Path, train_on: str = "labelled", patch: int | None = None, coordinate_ckpt: str | None = None,
            cls: type[VolumeDataModule] = BinaryVolumes) -> VolumeDataModule:
    """One seeded k-fold split of the first ``cases`` volumes, the same for every stage (pretraining never sees the
    held-out fold)."""
    return cls(root=str(root), max_cases=p["cases"], spacing=(1.0, 1.0, 1.0), window=None, crop_to_body=False,
               patch_size=((patch or p["patch"]),) * 3, samples_per_volume=p["samples_per_volume"], queue_length=p["queue_length"],
               batch_size=p["batch_size"], train_on=train_on, num_folds=p["folds"], fold=p["fold"], seed=0, cache_dir=str(cache),
               coordinate_ckpt=coordinate_ckpt)


def load_anatomy_bench():
    spec = importlib.util.spec_from_file_location("bench_anatomy", ROOT / "bench" / "bench_anatomy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_anatomy", module)
    spec.loader.exec_module(module)
    return module


def pretrained_encoder(p: dict, root: Path, work: Path, reuse: bool) -> tuple[Path, dict]:
    """Coordinate model, then input-guided diffusion pretraining on the training fold (labels unused), with the
    anatomy benchmark's own stages; its encoder exported for a 1-channel segmenter."""
    anat = load_anatomy_bench()
    # guidance "input" is structural, not a recipe choice: the exported encoder must fit a plain 1-channel segmenter
    q = {"features": tuple(p["features"]), "pretrain_max_timestep": p["pretrain_max_timestep"], "pretrain_skip_dropout": 0.0,
         "pretrain_decorrelation": 1.0, "pretrain_target": p["pretrain_target"], "guidance": "input"}
    cache = work / "cache"
    coord_ckpt, coords = anat.coordinate_stage(q, volumes(p, root, cache, "all", 48, cls=VolumeDataModule), work, p["coord_steps"],
                                               reuse=reuse)
    arms = {"diffusion + anatomy guidance": anat.ARMS["diffusion + anatomy guidance"]}
    ckpts, timing = anat.pretrain_arms(lambda c: volumes(p, root, cache, "all", coordinate_ckpt=c, cls=VolumeDataModule), work, coord_ckpt,
                                       p["pretrain_steps"], q, arms, reuse=reuse)
    encoder = export_encoder(ckpts["diffusion + anatomy guidance"], work / "encoder.pt", in_channels=1)
    return encoder, {"coordinates_r": coords["distance_r_mean"], "pretrain_sec_per_step": timing["diffusion + anatomy guidance"]}


def model_section(p: dict, kind: str, checkpoint: str | None = None) -> dict:
    """``{class_path, init_args}`` of an arm's model: the profile's recipes for ``kind`` (unet | staged), its
    model_overrides over them, then the profile's sizes (3D, 1 channel, channels, K, lr) and ``checkpoint`` (the
    U-Net's pretrained encoder, the staged model's condition network start)."""
    recipes = p["recipes"][kind]
    sizes = {"spatial_dims": 3, "in_channels": 1, "lr": p["lr"]}
    if kind == "unet":
        sizes |= {"features": list(p["features"]), "encoder_ckpt": checkpoint}
    else:
        sizes |= {"condition_features": list(p["features"]), "denoiser_channels": list(p["denoiser_channels"]),
                  "num_samples": p["num_samples"], "condition_ckpt": checkpoint}
    return compose_section(list(recipes), "model", {**(p.get("model_overrides") or {}).get(kind, {}), **sizes})


def model_fingerprint(p: dict, kind: str, pretrained: bool) -> dict:
    """What an arm's model is, every default filled in and the checkpoint path reduced to whether there is one: the key
    a stored result file is reused by."""
    return model_with_defaults(model_section(p, kind, "<pretrained encoder>" if pretrained else None))


def same_run(stored: dict, settings: dict, model: dict) -> bool:
    """Whether a stored result file is a run of these ``settings`` and this ``model`` fingerprint. Files that record
    their model compare by it (recipe names aside: a recipe renamed or split keeps them valid); older files, made before
    the pretraining recipe and the models were profile keys, by their settings with the values of that time."""
    if "model" in stored:
        drop = lambda d: {k: v for k, v in d.items() if k not in ("recipes", "model_overrides")}  # noqa: E731
        return drop(stored["settings"]) == drop(settings) and model_with_defaults(stored["model"]) == model
    return {**LEGACY_SETTINGS, **stored["settings"]} == settings


def make_model(p: dict, kind: str, encoder: Path | None, work: Path) -> L.LightningModule:
    if kind == "unet":
        return instantiate_section(model_section(p, kind, str(encoder) if encoder else None), L.LightningModule)
    condition = None
    if encoder:  # the condition network starts from the pretrained encoder (its decoder fresh), then trains in the budget
        init = DeterministicSegmenter(spatial_dims=3, in_channels=1, features=tuple(p["features"]), encoder_ckpt=str(encoder))
        init.load_encoder_weights()
        condition = str(save_module_checkpoint(init, work / "condition_init.ckpt"))
    return instantiate_section(model_section(p, kind, condition), L.LightningModule)


@torch.inference_mode()
def evaluate(model: L.LightningModule, data: VolumeDataModule, p: dict, seed: int) -> dict:
    """Sliding-window probability and uncertainty of every held-out volume: per-volume Dice and pooled pixel calibration."""
    model.eval()
    data.setup("validate")
    inferer = SlidingWindowInferer(roi_size=(p["patch"],) * 3, sw_batch_size=4, overlap=p["sw_overlap"], mode="gaussian")
    device = next(model.parameters()).device

    def predictor(x: torch.Tensor) -> torch.Tensor:
        fused = model.predict_fused(x)
        return torch.cat([fused.probability.float(), fused.uncertainty.float()], 1)

    calibration, rows = PixelCalibration(), []
    for i, subject in enumerate(data.held_out_subjects):
        image = subject["image"].data[None].float().to(device)
        mask = (subject["label"].data[None] > 0).float()
        torch.manual_seed(seed * 100_003 + i)  # the staged samples' noise, the same for every arm
        out = inferer(image, predictor).cpu()
        prob, unc = out[:, :1].clamp(0, 1), out[:, 1:].clamp(min=0)
        rows.append({"case": subject["name"], "dice": float(per_sample_metrics((prob > 0.5).float(), mask)[0, 0]),
                     "uncertainty": float(unc.mean())})
        calibration.update(prob, mask, unc)
    return {"volumes": rows, **{k: v for k, v in calibration.compute().items() if k in ("ece", "uncertainty_auroc")}}


def run_arm(arm: str, seed: int, p: dict, root: Path, work: Path, encoder: Path | None, path: Path) -> dict:
    kind, pretrained = ARMS[arm]
    L.seed_everything(seed, verbose=False)
    model = make_model(p, kind, encoder if pretrained else None, work / arm.replace(" ", "_").replace("+", "and") / f"seed{seed}")
    data = volumes(p, root, work / "cache")
    start = time.time()
    quiet_trainer(max_steps=p["steps"], limit_val_batches=0, num_sanity_val_steps=0).fit(model, data)
    seconds = time.time() - start
    result = {"arm": arm, "seed": seed, "steps": p["steps"], "train_seconds": seconds, "settings": p,
              "model": model_fingerprint(p, kind, pretrained),
              "calls_per_sample": getattr(model, "network_calls", 1), **evaluate(model, data, p, seed)}
    write_json_atomic(result, path)
    return result


def summarize(results: dict[str, dict[int, dict]], n_resamples: int = 10000) -> dict:
    """Per arm: Dice, ECE, AUROC as mean +- std over seeds; per comparison: the paired difference over volumes of the
    seed-averaged Dice (common seeds), with its BCa CI and Wilcoxon p."""
    arms = {}
    for arm, seeds in results.items():
        arms[arm] = {"seeds": sorted(seeds), **{key: seed_summary([np.mean([v["dice"] for v in r["volumes"]]) if key == "dice" else r[key]
                                                                 for r in seeds.values()]).__dict__
                                               for key in ("dice", "ece", "uncertainty_auroc")},
                     "train_seconds": float(np.mean([r["train_seconds"] for r in seeds.values()]))}
    paired = {}
    for a, b in COMPARISONS:
        if a not in results or b not in results:
            continue
        common = sorted(set(results[a]) & set(results[b]))
        if not common:
            continue
        cases = [v["case"] for v in results[b][common[0]]["volumes"]]

        def per_case(arm: str) -> np.ndarray:
            return np.mean([[{v["case"]: v["dice"] for v in results[arm][s]["volumes"]}[c] for c in cases] for s in common], axis=0)

        paired[f"{a} - {b}"] = {"seeds": common, **paired_difference(per_case(a), per_case(b), n_resamples=n_resamples).to_dict()}
    return {"arms": arms, "paired": paired}


def write_report(summary: dict, p: dict, profile: str, extra: dict, out: Path) -> None:
    write_json_atomic({"profile": profile, "settings": p, **extra, **summary}, out / "bridge3d.json", indent=1)
    fmt = lambda s: f"{s['mean']:.3f} +- {s['std']:.3f}" if s["std"] == s["std"] else f"{s['mean']:.3f} (1 seed)"  # noqa: E731
    lines = [f"# The halves joined: 3D U-Net vs 3D staged, random vs anatomy-pretrained encoder ({profile} profile)", "",
             f"MSD hippocampus MR, binary (hippocampus vs background), first {p['cases']} cases, held-out fold {p['fold']} of "
             f"{p['folds']}; every arm {p['steps']} optimizer steps at batch {p['batch_size']}, {p['patch']}^3 patches, sliding-window "
             f"evaluation (overlap {p['sw_overlap']}) of whole volumes. The staged arms: condition network trained inside the "
             f"budget by its own loss, one denoiser call, K = {p['num_samples']}. Pretrained encoder: anatomy-guided diffusion "
             f"(input guidance, {p['pretrain_steps']} steps, coordinate model {p['coord_steps']} steps; coordinate r "
             f"{extra.get('pretraining', {}).get('coordinates_r', float('nan')):.3f}) on the training fold without labels; "
             "its cost is not in the arms' budget.", "",
             "| arm | seeds | Dice (mean +- std over seeds) | ECE | uncertainty AUROC (error pixels) | train s |", "|---|---|---|---|---|---|"]
    for arm, s in summary["arms"].items():
        lines.append(f"| {arm} | {len(s['seeds'])} | {fmt(s['dice'])} | {fmt(s['ece'])} | {fmt(s['uncertainty_auroc'])} | {s['train_seconds']:.0f} |")
    lines += ["", "Paired differences over held-out volumes (per-volume Dice averaged over the common seeds; BCa bootstrap CI, "
              "Wilcoxon signed-rank p; the statistics code of the 2D benchmark):", "",
              "| comparison | seeds | volumes | difference (points) | 95% CI | p | wins / ties / losses |", "|---|---|---|---|---|---|---|"]
    for name, d in summary["paired"].items():
        lines.append(f"| {name} | {len(d['seeds'])} | {d['n']} | {100 * d['mean']:+.1f} | {100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f} | "
                     f"{d['p_value']:.2g} | {d['wins']} / {d['ties']} / {d['losses']} |")
    write_text_atomic("\n".join(lines) + "\n", out / "bridge3d.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--data", default=str(HIPPO), help="MSD hippocampus folder of images/ + labels/")
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench_bridge3d"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse the coordinate / pretraining checkpoints in --work")
    parser.add_argument("--arms", nargs="*", choices=list(ARMS), default=list(ARMS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    p, root, out, work = load_profile(args.profile), Path(args.data), Path(args.out), Path(args.work)
    if not (root / "images").is_dir() or not (root / "labels").is_dir():
        raise SystemExit(f"--data {root}: no images/ + labels/ folders (MSD Task04_Hippocampus, imported or as in ../shared/data)")
    runs_dir = out / "bridge3d_runs" / Path(args.profile).stem  # a profile name, or the stem of a profile file
    settings = json.loads(json.dumps(p))  # as a result file stores them (tuples become lists)
    encoder, extra = None, {}
    results: dict[str, dict[int, dict]] = {}
    for seed in p["seeds"]:
        for arm in args.arms:
            path = runs_dir / arm.replace(" ", "_").replace("+", "and") / f"seed{seed}.json"
            if path.is_file():
                stored = json.loads(path.read_text())
                if not same_run(stored, settings, model_fingerprint(p, *ARMS[arm])):
                    raise SystemExit(f"{path} was made with other settings or another model than this profile's; delete it "
                                     "or use another --out")
                results.setdefault(arm, {})[seed] = stored
                continue
            if ARMS[arm][1] and encoder is None:
                encoder, pre = pretrained_encoder(p, root, work / "pretraining", args.reuse)
                extra["pretraining"] = pre
            results.setdefault(arm, {})[seed] = run_arm(arm, seed, p, root, work, encoder, path)
            write_report(summarize(results), p, args.profile, extra, out)
            print(f"[bridge3d] {arm} seed {seed}: Dice {np.mean([v['dice'] for v in results[arm][seed]['volumes']]):.3f}", flush=True)
    write_report(summarize(results), p, args.profile, extra, out)
    print((out / "bridge3d.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
