"""Anatomy-pretraining benchmark: coordinate model (distance correlation on held-out phantoms), then random init vs
restorative vs diffusion vs anatomy-guided diffusion under linear / non-linear probing, then the chain on real MR.
``--protocol btcv --data ROOT`` runs the same stages on an imported abdominal CT root (the paper's BTCV protocol,
profiles in configs/benchmark/anatomy/btcv.yaml): k-fold probing and fine-tuning on the 13 organs. The phantom
protocol's profiles are in configs/benchmark/anatomy/phantoms.yaml.

Probes train to convergence with several seeds (mean +- std over seeds and folds), with all labelled training cases and
with a label budget (``low_label_cases``). ``--reuse`` takes coordinate / pretraining checkpoints already in ``--work``.
Usage: python bench/bench_anatomy.py --profile quick [--reuse]   -> reports/bench/anatomy.json and anatomy.md
       python bench/bench_anatomy.py --protocol btcv --data ROOT --profile cpu [--unlabelled ROOT2]  -> anatomy_btcv.*
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anatomy_pretrain.coordinate_model import AnatomicalCoordinateModel  # noqa: E402
from anatomy_pretrain.phantoms import ORGAN_NAMES  # noqa: E402
from anatomy_pretrain.pretrainer import AnatomyGuidedDiffusionPretrainer  # noqa: E402
from anatomy_pretrain.probe import SegmentationProbe  # noqa: E402
from anatomy_pretrain.backbone import GuidedUNet3D  # noqa: E402
from anatomy_pretrain.checkpoints import load_pretrained_backbone, read_checkpoint  # noqa: E402
from anatomy_pretrain.coordinate_embedding import guide_from_batch  # noqa: E402
from anatomy_pretrain.diagnostics import pyramid_effective_ranks  # noqa: E402
from anatomy_pretrain.tiny import quiet_trainer, save_module_checkpoint  # noqa: E402
from anatomy_pretrain.importers.common import MANIFEST, btcv13_names  # noqa: E402
from anatomy_pretrain.profiles import GUIDANCE_DEFAULTS, GUIDANCE_KEYS, load_profile, profile_names  # noqa: E402
from anatomy_pretrain.volume_data import VolumeDataModule, find_cases  # noqa: E402
from unisegdiff.io import write_json_atomic, write_text_atomic  # noqa: E402

PHANTOM_PROFILES = ROOT / "configs" / "benchmark" / "anatomy" / "phantoms.yaml"
PHANTOM_KEYS = {"phantoms", "folds", "seeds", "pretrain_seeds", "features", "coord_steps", "pretrain_steps", "pretrain_max_timestep",
                "pretrain_skip_dropout", "pretrain_decorrelation", "pretrain_target", "probe_steps", "linear_steps", "low_label_cases",
                "low_label_steps", "finetune_steps", "hippo_cases", "hippo_coord_steps", "hippo_pretrain_steps", "hippo_probe_steps"}
PROBES = {  # column -> (head, steps key, label budget key or None, fine-tune the backbone too)
    "nonlinear": ("nonlinear", "probe_steps", None, False),
    "linear": ("linear", "linear_steps", None, False),
    "nonlinear_low_label": ("nonlinear", "low_label_steps", "low_label_cases", False),
    "finetune": ("nonlinear", "finetune_steps", None, True),
}
LABELS = {"nonlinear": "non-linear probe", "linear": "linear probe", "nonlinear_low_label": "non-linear label budget",
          "finetune": "fine-tuning"}
ARMS = {  # name -> pretrainer arguments (None: random init)
    "random init": None,
    "restorative": dict(pretext="restorative", guidance="none"),
    "diffusion": dict(pretext="diffusion", guidance="none"),
    "diffusion + anatomy guidance": dict(pretext="diffusion", guidance="film"),
}
ARM_IDS = {"random": "random init", "restorative": "restorative", "diffusion": "diffusion",
           "guided": "diffusion + anatomy guidance"}  # --arms: short names of the arms
HIPPO = ROOT.parent / "shared" / "data" / "volumes" / "hippocampus_mri_msd"
BTCV_PROFILES = ROOT / "configs" / "benchmark" / "anatomy" / "btcv.yaml"
BTCV_KEYS = {"folds", "seeds", "pretrain_seeds", "features", "spacing", "coord_spacing", "window", "patch", "coord_patch",
             "sw_overlap", "samples_per_volume", "queue_length", "batch_size", "coord_steps", "pretrain_steps",
             "pretrain_max_timestep", "pretrain_skip_dropout", "pretrain_decorrelation", "pretrain_target", "probe_steps",
             "linear_steps", "low_label_cases", "low_label_steps", "finetune_steps"}


COORD_SPACING_MM = 8.0  # the coordinate model sees 256 mm per 32^3 crop; pretraining and probing run at 4 mm


def phantom_data(p: dict, fold: int, cache: Path, patch: int, train_on: str = "all", batch: int = 4, spacing: float = 4.0,
                 coordinate_ckpt: str | None = None, labelled_cases: int | None = None) -> VolumeDataModule:
    return VolumeDataModule(
        phantoms=p["phantoms"], spacing=(spacing,) * 3, window=(-300.0, 400.0), patch_size=(patch,) * 3, samples_per_volume=8,
        queue_length=48, batch_size=batch, train_on=train_on, num_folds=max(p["folds"], 4), fold=fold, seed=0, cache_dir=str(cache),
        coordinate_ckpt=coordinate_ckpt, labelled_cases=labelled_cases,
    )


def phantom_profile(name: str, path: Path = PHANTOM_PROFILES) -> dict:
    """One profile of the phantom protocol's YAML (``name`` may also be a YAML file holding a single profile's keys)."""
    return load_profile(name, path, PHANTOM_KEYS, GUIDANCE_KEYS)


def btcv_profile(name: str, path: Path = BTCV_PROFILES) -> dict:
    """One profile of the BTCV protocol's YAML (``name`` may also be a YAML file holding a single profile's keys)."""
    p = load_profile(name, path, BTCV_KEYS, GUIDANCE_KEYS)
    if not isinstance(p["folds"], int) or p["folds"] < 2:
        raise SystemExit(f"--profile {name}: folds must be an integer >= 2 (k-fold probing), got {p['folds']!r}")
    return p


def btcv_root(data: str | None, folds: int) -> dict:
    """Check an imported CT root for the BTCV protocol: labelled cases >= folds, BTCV-13 label names in its manifest."""
    if not data:
        raise SystemExit("--protocol btcv needs --data ROOT: a folder written by python -m anatomy_pretrain.importers "
                         "(btcv, amos, totalseg or totalseg-ml)")
    root = Path(data)
    try:
        labelled, unlabelled = find_cases(root)
    except FileNotFoundError as error:
        raise SystemExit(f"--data {root}: {error}") from error
    if len(labelled) < folds:
        raise SystemExit(f"--data {root}: {len(labelled)} labelled case(s) in {root / 'labels'}, the profile's {folds}-fold "
                         "probing needs at least as many; import more cases or use a profile with fewer folds")
    names = btcv13_names()
    manifest = root / MANIFEST
    if manifest.is_file():
        import json

        stored = {int(k): v for k, v in json.loads(manifest.read_text())["label_names"].items()}
        if stored != names:
            raise SystemExit(f"--data {root}: {manifest} has the label set {stored}, not BTCV-13; import the source with a "
                             "BTCV-13 importer (btcv, amos, totalseg, totalseg-ml)")
    return {"root": str(root.resolve()), "labelled": len(labelled), "unlabelled": len(unlabelled), "names": [names[k] for k in sorted(names) if k]}


def btcv_data(p: dict, root: str, unlabelled: list[str], fold: int, cache: Path, patch: int, train_on: str = "all", batch: int | None = None,
              spacing: float | None = None, coordinate_ckpt: str | None = None, labelled_cases: int | None = None) -> VolumeDataModule:
    """The phantom_data of the BTCV protocol: the imported root (+ unlabelled roots for pretraining), 14 classes."""
    return VolumeDataModule(
        root=root, unlabelled_roots=list(unlabelled) if train_on == "all" else None, spacing=(spacing or p["spacing"],) * 3,
        window=tuple(p["window"]), crop_to_body=True, patch_size=(patch,) * 3, samples_per_volume=p["samples_per_volume"],
        queue_length=p["queue_length"], batch_size=batch or p["batch_size"], train_on=train_on, num_folds=p["folds"], fold=fold,
        seed=0, cache_dir=str(cache), coordinate_ckpt=coordinate_ckpt, labelled_cases=labelled_cases, num_classes=14,
    )


def hippo_data(p: dict, cache: Path, patch: int = 32, train_on: str = "all", coordinate_ckpt: str | None = None) -> VolumeDataModule:
    return VolumeDataModule(
        root=str(HIPPO), max_cases=p["hippo_cases"], spacing=(1.0, 1.0, 1.0), window=None, crop_to_body=False,
        patch_size=(patch,) * 3, samples_per_volume=4, queue_length=32, batch_size=4, train_on=train_on, num_folds=5, fold=0,
        cache_dir=str(cache), coordinate_ckpt=coordinate_ckpt,
    )


def fit(model, data, steps: int) -> float:
    """Train for ``steps`` optimizer steps; return seconds per step."""
    start = time.time()
    quiet_trainer(max_steps=steps, limit_val_batches=0).fit(model, data)
    return (time.time() - start) / max(steps, 1)


def is_guided(arm: str) -> bool:
    return ARMS[arm] is not None and ARMS[arm]["guidance"] != "none"


def reusable(path: Path, reuse: bool, module_cls: type, expected: dict, steps: int | None = None) -> bool:
    """True when ``--reuse`` and ``path`` exists; refuses a checkpoint trained with other settings than ``expected``
    (a hyper-parameter missing from an older checkpoint counts as its legacy value, else ``module_cls``'s default)
    or for another number of ``steps`` than the one it records (checkpoints written before steps were recorded are
    taken as they are, with a note)."""
    if not (reuse and path.is_file()):
        return False
    ckpt = read_checkpoint(path)
    if steps is not None and ckpt["global_step"] is not None and ckpt["global_step"] != steps:
        raise ValueError(f"--reuse: {path} was trained for {ckpt['global_step']} steps, this profile wants {steps}; "
                         "use a fresh --work")
    if steps is not None and ckpt["global_step"] is None:
        print(f"note: {path} records no step count (written before they were recorded); reused as {steps} steps", flush=True)
    saved, params = ckpt["hyper_parameters"], inspect.signature(module_cls.__init__).parameters
    saved = {**getattr(sys.modules[module_cls.__module__], "LEGACY_HPARAMS", {}), **saved}  # what an old checkpoint meant
    saved = {k: saved.get(k, params[k].default) for k in expected}
    differ = {k: (saved[k], v) for k, v in expected.items() if _plain(saved[k]) != _plain(v)}
    if differ:
        raise ValueError(f"--reuse: {path} was trained with other settings (saved, wanted) {differ}; use a fresh --work")
    print(f"reusing {path}", flush=True)
    return True


def _plain(value):
    return list(value) if isinstance(value, (tuple, list)) else value


def coordinate_stage(p, data, out: Path, steps: int, crop: int = 32, reuse: bool = False) -> tuple[str, dict]:
    L.seed_everything(0, verbose=False)  # every stage starts from a fixed RNG state (torch, numpy, random)
    model = AnatomicalCoordinateModel(features=p["features"], crop_size=crop, num_points=256, lr=2e-3, sw_overlap=0.25)
    path, sec = out / "coordinates.ckpt", None
    if reusable(path, reuse, AnatomicalCoordinateModel, {"features": p["features"], "crop_size": crop}, steps):
        model.load_state_dict(read_checkpoint(path)["state_dict"])
    else:
        sec = fit(model, data, steps)
        save_module_checkpoint(model, path, global_step=steps)
    quiet_trainer().validate(model, data, verbose=False)
    rs = model.last_distance_r
    return str(path), {"distance_r_mean": sum(rs) / len(rs), "distance_r_per_volume": rs, "sec_per_step": sec, "steps": steps,
                       "reused": sec is None}


def guided_args(p: dict, args: dict) -> dict:
    """A guided arm's pretrainer arguments with the profile's guidance settings (``guidance`` film|input,
    ``guidance_frequencies``, ``guidance_dropout``, ``guidance_levels``; absent: FiLM on every encoder level, 3
    frequencies, no dropout)."""
    if args["guidance"] == "none":
        return args
    guided = {**args, "guidance": p.get("guidance", args["guidance"]),
              "num_frequencies": p.get("guidance_frequencies", GUIDANCE_DEFAULTS["guidance_frequencies"]),
              "guidance_dropout": p.get("guidance_dropout", GUIDANCE_DEFAULTS["guidance_dropout"])}
    # None: every level; a checkpoint made before the option lacks it, which reads as the default None, so it stays reusable
    levels = p.get("guidance_levels")
    guided["film_levels"] = tuple(levels) if levels is not None else None
    return guided


def check_guidance_levels(p: dict) -> None:
    """Before any training: guidance levels are FiLM's, distinct, in 0..4 (the backbone checks again when built)."""
    levels = p.get("guidance_levels")
    if levels is None:
        return
    if p.get("guidance", "film") != "film":
        raise SystemExit(f"guidance_levels {list(levels)} are where FiLM enters; the guided arm's guidance is {p['guidance']!r}")
    if not levels or len(set(levels)) != len(levels) or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 4 for v in levels):
        raise SystemExit(f"guidance_levels must be distinct encoder levels in 0..4, got {list(levels)}")


def pretrain_arms(make_data, out: Path, coord_ckpt: str, steps: int, p: dict, arms: dict, reuse: bool = False,
                  seed: int = 0) -> tuple[dict, dict]:
    """Pretrain every arm with the profile's recipe from RNG state ``seed``; ``make_data(coordinate_ckpt)`` builds its
    data (guided arms get the coordinate maps, embedded as the profile's guidance settings say)."""
    ckpts, timing = {}, {}
    for name, args in arms.items():
        if args is None:
            ckpts[name] = None
            continue
        path = out / f"pretrain_{name.replace(' ', '_').replace('+', 'and')}.ckpt"
        ckpts[name] = str(path)
        recipe = dict(features=p["features"], max_timestep=p["pretrain_max_timestep"], skip_dropout=p["pretrain_skip_dropout"],
                      decorrelation=p["pretrain_decorrelation"], lr=1e-3)
        if args["pretext"] == "diffusion":  # the restorative pretext has no prediction target
            args = {"target": p["pretrain_target"]} | guided_args(p, args)
        if reusable(path, reuse, AnatomyGuidedDiffusionPretrainer, recipe | args, steps):
            timing[name] = None
            continue
        data = make_data(coord_ckpt if args["guidance"] != "none" else None)
        L.seed_everything(seed, verbose=False)
        model = AnatomyGuidedDiffusionPretrainer(**recipe, **args)
        timing[name] = fit(model, data, steps)
        save_module_checkpoint(model, path, global_step=steps)
    return ckpts, timing


def feature_ranks(p, ckpts: dict, make_data, patch: int = 32) -> dict:
    """Effective rank of every encoder level on the central ``patch``^3 crops of the held-out volumes, per arm."""
    out = {}
    for name, ckpt in ckpts.items():
        guided = is_guided(name)
        data = make_data(guided)
        data.setup("validate")

        def center(t: torch.Tensor) -> torch.Tensor:
            lo = [(n - patch) // 2 for n in t.shape[1:]]
            return t[:, lo[0]:lo[0] + patch, lo[1]:lo[1] + patch, lo[2]:lo[2] + patch]

        batch = {"image": torch.stack([center(s["image"].data.float()) for s in data.held_out_subjects])}
        if guided:
            batch["coords"] = torch.stack([center(s["coords"].data.float()) for s in data.held_out_subjects])
        L.seed_everything(0, verbose=False)
        net, hp = load_pretrained_backbone(ckpt) if ckpt else (GuidedUNet3D(features=p["features"]), {})
        guide = guide_from_batch(batch, hp.get("guidance", "none"), int(hp.get("num_frequencies", 3)))  # as it was pretrained
        out[name] = pyramid_effective_ranks(net, batch["image"], guide)
    return out


def probe(p, data, ckpt: str | None, head: str, steps: int, num_classes: int, names: list[str], seed: int = 0,
          finetune: bool = False) -> dict:
    L.seed_everything(seed, verbose=False)
    roi = (p.get("patch", 32),) * 3  # the sliding window is the training patch
    model = SegmentationProbe(num_classes=num_classes, pretrainer_ckpt=ckpt, features=p["features"], head=head, lr=3e-3, class_names=names,
                              sw_overlap=p.get("sw_overlap", 0.0), roi_size=roi, finetune=finetune, backbone_lr=3e-4,
                              probe_guide=p.get("probe_guide", "coords"))
    sec = fit(model, data, steps)
    quiet_trainer().validate(model, data, verbose=False)
    return {"dice": model.last_dice, "sec_per_step": sec}


def ordering_holds(probes: dict, column: str) -> bool:
    """guided >= diffusion >= restorative >= random init on the mean Dice of ``column`` (the paper's ordering)."""
    order = [probes[n][column]["mean"] for n in ("diffusion + anatomy guidance", "diffusion", "restorative", "random init")]
    return all(a >= b for a, b in zip(order, order[1:]))


def probe_arms(p, ckpts: dict, runs: dict, results: dict, make_data, progress, columns=tuple(PROBES),
               names: list[str] = tuple(ORGAN_NAMES)) -> None:
    """Every probe column of ``columns`` x probe seed x arm of ``ckpts``; appends to ``runs[arm][column]`` and refreshes
    the summary. ``make_data(guided, labelled_cases)`` builds the labelled data; ``names`` are its foreground classes."""
    for col in columns:
        head, steps_key, budget_key, finetune = PROBES[col]
        for seed in p["seeds"]:
            for name, ckpt in ckpts.items():
                # --probe-guide head hands the coordinates to every arm's head, so every arm's data carries them
                with_coords = is_guided(name) or p.get("probe_guide") == "head"
                labelled = make_data(with_coords, p[budget_key] if budget_key else None)
                runs[name][col].append(probe(p, labelled, ckpt, head, p[steps_key], len(names) + 1, list(names), seed=seed,
                                             finetune=finetune))
                results["probes"][name] = {c: summarize(v) for c, v in runs[name].items() if v}
                progress()


def summarize(runs: list[dict]) -> dict:
    """Per-class Dice averaged over runs (seeds x folds) that hold the class (None where no held-out volume has it);
    mean Dice with its std and per-run values."""
    keys = [k for k in runs[0]["dice"] if k != "mean"]
    means = [r["dice"]["mean"] for r in runs]

    def class_mean(k: str) -> float | None:
        present = [r["dice"][k] for r in runs if r["dice"][k] == r["dice"][k]]  # NaN: the class is absent from that fold
        return statistics.fmean(present) if present else None

    return {"mean": statistics.fmean(means), "std": statistics.stdev(means) if len(means) > 1 else 0.0, "runs": means,
            "per_class": {k: class_mean(k) for k in keys}, "sec_per_step": runs[-1]["sec_per_step"]}


def per_class_table(rows: dict, column: str) -> list[str]:
    """Per-organ Dice of one probe column, one row per organ and one column per arm ('-': absent from every held-out fold)."""
    arms = [name for name, r in rows.items() if column in r]
    if not arms:
        return []
    organs = list(rows[arms[0]][column]["per_class"])
    cell = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"Per-organ Dice, {LABELS[column]} (mean over the runs whose held-out fold holds the organ):", "",
             "| organ | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    lines += [f"| {organ} | " + " | ".join(cell(rows[a][column]["per_class"].get(organ)) for a in arms) + " |" for organ in organs]
    return lines + [""]


def write_reports(results: dict, out_dir: Path, stem: str = "anatomy") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results, out_dir / f"{stem}.json", indent=1)
    st = results["settings"]
    data = results.get("dataset") or {"name": "phantoms", "held_out": "held-out phantoms", "organs": 15}
    if data["name"] == "phantoms":
        lines = [f"# Anatomy pretraining benchmark ({results['profile']} profile, CPU)", ""]
    else:
        lines = [f"# Anatomy pretraining, {data['name']} protocol ({results['profile']} profile)", "",
                 f"Data: {data['root']}: {data['labelled']} labelled CT volumes ({data['organs']} organs), "
                 f"{data['unlabelled']} unlabelled, plus unlabelled roots {data.get('unlabelled_roots', [])}; "
                 f"{st['folds']}-fold split of the labelled cases, pretraining on each fold's training and unlabelled volumes "
                 f"(never its held-out fold); {st['spacing']} mm voxels, {st['patch']}^3 patches, sliding-window evaluation "
                 f"(overlap {st['sw_overlap']}) on the whole held-out volumes; device {results.get('device', '?')}.", ""]
    c = results.get("coordinates")
    if c:
        how = "reused checkpoint" if c.get("reused") else f"{c['steps']} steps, {c['sec_per_step']:.2f} s/step"
        lines += [f"Coordinate model: Pearson r (predicted vs physical distance, {data['held_out']}) = **{c['distance_r_mean']:.3f}** ({how})", ""]
    rows = results.get("probes", {})
    if rows:
        lines += [f"Pretraining: {st['pretrain_steps']} steps, diffusion timesteps < {st['pretrain_max_timestep'] or 1000}, "
                  f"skip dropout {st['pretrain_skip_dropout']}, decorrelation weight {st['pretrain_decorrelation']}, "
                  f"diffusion target {st.get('pretrain_target', 'x0')}.", "",
                  f"Frozen-backbone probes and fine-tuning, evaluated on {data['held_out']}, mean Dice over {data['organs']} organs, mean +- std "
                  f"over probe seeds {list(st['seeds'])} x pretraining seeds {list(st.get('pretrain_seeds', [0]))} (random init: "
                  f"probe seeds only) x {st['folds']} fold(s). Probe steps: non-linear {st['probe_steps']}, linear {st['linear_steps']}, "
                  f"label budget ({st['low_label_cases']} labelled volumes) {st['low_label_steps']}, "
                  f"fine-tuning (backbone trained too, non-linear head) {st.get('finetune_steps', '-')}."
                  + (" **Control: the guided backbones are probed with a zero guide** (their coordinates withheld at probe time; "
                     f"pretraining guidance dropout {st.get('guidance_dropout', 0.0)}: "
                     + ("they saw zero guides in pretraining)." if st.get("guidance_dropout", 0.0) > 0 else
                        "they never saw a zero guide in pretraining, so this also measures an unseen input).")
                     if st.get("probe_guide") == "zeros" else "")
                  + (" **Control: every probe head gets the coordinate embedding** (one more input level, full resolution) and "
                     "no backbone is guided (guided ones get a zero guide): does position handed to the probe explain the "
                     "guided arm's lead?" if st.get("probe_guide") == "head" else ""), "",
                  f"| initialization | non-linear probe | linear probe | non-linear, {st['low_label_cases']} labelled volumes | fine-tuning |",
                  "|---|---|---|---|---|"]
        for name, r in rows.items():
            fmt = lambda k: f"{r[k]['mean']:.3f} +- {r[k]['std']:.3f}" if k in r else "-"  # noqa: E731
            lines.append(f"| {name} | {fmt('nonlinear')} | {fmt('linear')} | {fmt('nonlinear_low_label')} | {fmt('finetune')} |")
        by_col = results.get("ordering_by_column", {})
        if by_col:
            lines += ["", "Ordering guided >= diffusion >= restorative >= random (means), "
                      + "; ".join(f"{LABELS[col]}: " + (f"**{v}**" if col == "nonlinear" else str(v)) for col, v in by_col.items())]
        lines.append("")
        if data["name"] != "phantoms":
            for column in ("nonlinear", "linear", "finetune"):
                lines += per_class_table(rows, column)
    ranks = results.get("feature_effective_rank")
    if ranks:
        lines += ["Effective rank of the frozen encoder's features per level (full res -> 1/16; channels "
                  f"{list(st['features'][:5])}), central {st.get('patch', 32)}^3 crops of {data['held_out']}:", ""]
        lines += [f"- {name}: {', '.join(f'{r:.1f}' for r in v)}" for name, v in ranks.items()]
        lines.append("")
    h = results.get("hippocampus")
    if h:
        lines += [f"Real MR (MSD hippocampus, {st['hippo_cases']} cases, 2-class non-linear probe, mean Dice over anterior/posterior, "
                  "mean +- std over seeds):", ""]
        lines += [f"- {k}: {v['mean']:.3f} +- {v['std']:.3f}" for k, v in h.get("probes", {}).items()]
        if "coordinates" in h:
            lines.append(f"- coordinate model distance r on held-out MR: {h['coordinates']['distance_r_mean']:.3f}")
    if results.get("reused"):
        lines += ["", f"Reused checkpoints (--reuse): {', '.join(results['reused'])}"]
    if results.get("unguided_from"):
        u = results["unguided_from"]
        lines += ["", f"The unguided arm's probe runs come from {u['file']}" + (f" (checkpoints of {u['seed_from']})" if u.get("seed_from") else "")
                  + f": {u['note']}. The wall time below is this run's (guided arm only)."]
    lines += ["", f"Total wall time: {results.get('wall_s', 0):.0f} s"]
    write_text_atomic("\n".join(lines) + "\n", out_dir / f"{stem}.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["phantoms", "btcv"], default="phantoms",
                        help="phantoms (+ MSD hippocampus MR), or btcv: the 13-organ CT protocol on --data")
    parser.add_argument("--profile", default=None, help=f"phantoms: a profile of {PHANTOM_PROFILES.relative_to(ROOT)} {profile_names(PHANTOM_PROFILES)} "
                        f"(default quick); btcv: a profile of {BTCV_PROFILES.relative_to(ROOT)} (default smoke); or a YAML "
                        "file of one profile's keys")
    parser.add_argument("--data", help="btcv: an imported CT root (images/ + labels/ with BTCV-13 ids, manifest.json)")
    parser.add_argument("--unlabelled", nargs="*", default=[], help="btcv: more volume folders for the label-free stages")
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench"))
    parser.add_argument("--work", default=None, help="checkpoints (default runs/bench_anatomy, btcv: runs/bench_anatomy_btcv)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse coordinate / pretraining checkpoints found in --work")
    parser.add_argument("--skip-hippocampus", action="store_true")
    parser.add_argument("--pretrain-max-timestep", type=int, help="override the profile's (diffusion timesteps drawn below it)")
    parser.add_argument("--pretrain-skip-dropout", type=float, help="override the profile's (use a fresh --work with it)")
    parser.add_argument("--pretrain-decorrelation", type=float, help="override the profile's (use a fresh --work with it)")
    parser.add_argument("--pretrain-target", choices=["x0", "eps", "v"], help="override the profile's diffusion prediction target")
    parser.add_argument("--pretrain-seeds", type=int, nargs="+", help="override the profile's pretraining seeds (seed 0 in fold<k>/, "
                        "seed s in fold<k>/pretrain_seed<s>/)")
    parser.add_argument("--guidance", choices=["film", "input"], help="the guided arm's guidance (default film; fresh --work)")
    parser.add_argument("--guidance-frequencies", type=int, help="the guided arm's sin/cos frequencies per axis (default 3)")
    parser.add_argument("--guidance-dropout", type=float, help="the guided arm's per-sample guide dropout in pretraining (default 0)")
    parser.add_argument("--guidance-levels", type=int, nargs="+", choices=range(5), help="the encoder levels FiLM guidance "
                        "enters (0 = full resolution .. 4 = 1/16; default all; fresh --work)")
    parser.add_argument("--probe-guide", choices=["coords", "zeros", "head"], help="what guided backbones get at probe time: "
                        "their coordinates (default) or a zero guide, the control for coordinates handed to the probe; or "
                        "'head': every arm's probe head gets the coordinate embedding and no backbone is guided (does "
                        "position alone explain the guided arm's lead?). Controls --reuse the checkpoints of a finished run "
                        "with another --out")
    parser.add_argument("--arms", nargs="+", choices=list(ARM_IDS), default=list(ARM_IDS),
                        help="arms to pretrain and probe (default: all four; e.g. diffusion guided for the guidance gap "
                        "alone, about half the time); the ordering verdict needs all four. The hippocampus chain always "
                        "runs random init and the guided arm")
    parser.add_argument("--columns", nargs="+", choices=list(PROBES), default=list(PROBES),
                        help="probe columns to run (default: all); the others show '-' in the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    btcv = args.protocol == "btcv"
    if btcv:
        profile_name = args.profile or "smoke"
        p = btcv_profile(profile_name)
        dataset = btcv_root(args.data, p["folds"]) | {"name": "BTCV", "held_out": "the held-out folds' CT volumes", "organs": 13}
        for extra in args.unlabelled:
            if not Path(extra).is_dir():
                raise SystemExit(f"--unlabelled {extra}: not a folder")
        dataset["unlabelled_roots"] = [str(Path(u).resolve()) for u in args.unlabelled]
        names = dataset["names"]
    else:
        profile_name = args.profile or "quick"
        if args.data or args.unlabelled:
            raise SystemExit("--data / --unlabelled belong to --protocol btcv")
        p, dataset, names = phantom_profile(profile_name), None, list(ORGAN_NAMES)
    out = Path(args.out)
    work = Path(args.work) if args.work else ROOT / "runs" / ("bench_anatomy_btcv" if btcv else "bench_anatomy")
    for key in ("pretrain_max_timestep", "pretrain_skip_dropout", "pretrain_decorrelation", "pretrain_target", "pretrain_seeds",
                "guidance", "guidance_frequencies", "guidance_dropout", "guidance_levels", "probe_guide"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    check_guidance_levels(p)
    if p.get("probe_guide") == "zeros" and not p.get("guidance_dropout"):
        print("note: --probe-guide zeros on backbones pretrained without guidance dropout: a zero guide is an input they never "
              "saw, so the control mixes 'no coordinates' with 'unseen input'", flush=True)
    cache = work / "cache"
    start = time.time()
    results: dict = {"profile": profile_name, "protocol": args.protocol, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}
                     | {"columns": args.columns}, "probes": {}, "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if dataset:
        results["dataset"] = dataset
    selected = [ARM_IDS[a] for a in dict.fromkeys(args.arms)]
    results["settings"]["arms"] = list(dict.fromkeys(args.arms))
    runs: dict = {name: {col: [] for col in PROBES} for name in selected}

    def make(fold: int, patch: int, **kwargs) -> VolumeDataModule:
        """The data of one stage of one fold: phantoms, or the imported CT root (the only difference between protocols)."""
        if btcv:
            return btcv_data(p, dataset["root"], dataset["unlabelled_roots"], fold, cache, patch, **kwargs)
        return phantom_data(p, fold, cache, patch, **kwargs)

    def progress() -> None:
        results["reused"] = sorted(str(Path(f).relative_to(work)) for f in reused)
        results["wall_s"] = time.time() - start
        write_reports(results, out, "anatomy_btcv" if btcv else "anatomy")

    reused: list[str] = []
    patch, coord_patch, coord_spacing = p.get("patch", 32), p.get("coord_patch", 48), p.get("coord_spacing", COORD_SPACING_MM)
    for fold in range(p["folds"]):
        fold_dir = work / f"fold{fold}"
        coord_data = make(fold, coord_patch, batch=2, spacing=coord_spacing)
        coord_ckpt, coords = coordinate_stage(p, coord_data, fold_dir, p["coord_steps"], reuse=args.reuse)
        reused += [coord_ckpt] if coords["reused"] else []
        results.setdefault("coordinates_per_fold", []).append(coords)
        results["coordinates"] = coords if fold == 0 else results["coordinates"]
        progress()
        for pretrain_seed in p["pretrain_seeds"]:  # pretraining-seed variance enters the std beside the probe seeds
            first = pretrain_seed == p["pretrain_seeds"][0]
            seed_dir = fold_dir if pretrain_seed == 0 else fold_dir / f"pretrain_seed{pretrain_seed}"
            # random init does not depend on the pretraining seed
            arms = {n: a for n, a in ARMS.items() if n in selected and (a is not None or first)}
            ckpts, timing = pretrain_arms(lambda c: make(fold, patch, coordinate_ckpt=c), seed_dir, coord_ckpt,
                                          p["pretrain_steps"], p, arms, reuse=args.reuse, seed=pretrain_seed)
            reused += [ckpts[n] for n, t in timing.items() if t is None]
            results["pretrain_sec_per_step"] = timing
            if first and fold == 0:
                results["feature_effective_rank"] = feature_ranks(
                    p, ckpts, lambda guided: make(fold, patch, train_on="labelled", coordinate_ckpt=coord_ckpt if guided else None), patch)
            progress()
            probe_arms(p, ckpts, runs, results, lambda guided, budget: make(
                fold, patch, train_on="labelled", coordinate_ckpt=coord_ckpt if guided else None, labelled_cases=budget), progress,
                columns=args.columns, names=names)
    every_arm = set(selected) == set(ARMS)  # the paper's ordering compares all four
    results["ordering_by_column"] = {col: ordering_holds(results["probes"], col) for col in args.columns} if every_arm else {}
    results["ordering_holds"] = results["ordering_by_column"].get("nonlinear")  # the paper's claim: the non-linear probe
    progress()
    if not btcv and not args.skip_hippocampus and (HIPPO / "images").is_dir():
        hdir = work / "hippocampus"
        h_ckpt, h_coords = coordinate_stage(p, hippo_data(p, cache, 48), hdir, p["hippo_coord_steps"], reuse=args.reuse)
        reused += [h_ckpt] if h_coords["reused"] else []
        arms = {"random init": None, "diffusion + anatomy guidance": ARMS["diffusion + anatomy guidance"]}
        h_ckpts, h_timing = pretrain_arms(lambda c: hippo_data(p, cache, coordinate_ckpt=c), hdir, h_ckpt, p["hippo_pretrain_steps"],
                                          p, arms, reuse=args.reuse)
        reused += [h_ckpts[n] for n, t in h_timing.items() if t is None]
        results["hippocampus"] = {"coordinates": h_coords, "probes": {}}
        for name, ckpt in h_ckpts.items():
            labelled = hippo_data(p, cache, train_on="labelled", coordinate_ckpt=h_ckpt if ARMS[name] is not None else None)
            h_runs = [probe(p, labelled, ckpt, "nonlinear", p["hippo_probe_steps"], 3, ["anterior", "posterior"], seed=seed) for seed in p["seeds"]]
            results["hippocampus"]["probes"][name] = summarize(h_runs)
            progress()
    progress()
    print((out / ("anatomy_btcv.md" if btcv else "anatomy.md")).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
