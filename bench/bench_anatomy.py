"""Anatomy-pretraining benchmark: coordinate model (distance correlation on held-out phantoms), then random init vs
restorative vs diffusion vs anatomy-guided diffusion under linear / non-linear probing, then the chain on real MR.

Probes train to convergence with several seeds (mean +- std over seeds and folds), with all labelled training cases and
with a label budget (``low_label_cases``). ``--reuse`` takes coordinate / pretraining checkpoints already in ``--work``.
Usage: python bench/bench_anatomy.py --profile quick [--reuse]   -> reports/bench/anatomy.json and anatomy.md
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
from anatomy_pretrain.volume_data import VolumeDataModule  # noqa: E402
from unisegdiff.io import write_json_atomic  # noqa: E402

PROFILES = {
    "quick": dict(phantoms=16, folds=1, seeds=(0, 1), pretrain_seeds=(0,), features=(8, 16, 32, 64, 128, 8), coord_steps=1000, pretrain_steps=1200,
                  pretrain_max_timestep=600, pretrain_skip_dropout=0.0, pretrain_decorrelation=1.0, pretrain_target="eps", probe_steps=1000, linear_steps=400, low_label_cases=2,
                  low_label_steps=600, finetune_steps=600, hippo_cases=30, hippo_coord_steps=300, hippo_pretrain_steps=200, hippo_probe_steps=400),
    "smoke": dict(phantoms=8, folds=1, seeds=(0,), pretrain_seeds=(0,), features=(4, 4, 8, 16, 32, 4), coord_steps=2, pretrain_steps=2,
                  pretrain_max_timestep=600, pretrain_skip_dropout=0.0, pretrain_decorrelation=1.0, pretrain_target="eps", probe_steps=2, linear_steps=2, low_label_cases=2,
                  low_label_steps=2, finetune_steps=2, hippo_cases=10, hippo_coord_steps=2, hippo_pretrain_steps=2, hippo_probe_steps=2),
    "full": dict(phantoms=40, folds=4, seeds=(0, 1, 2), pretrain_seeds=(0, 1, 2), features=(16, 16, 32, 64, 128, 16), coord_steps=1500, pretrain_steps=1500,
                 pretrain_max_timestep=600, pretrain_skip_dropout=0.0, pretrain_decorrelation=1.0, pretrain_target="eps", probe_steps=1500, linear_steps=800, low_label_cases=4,
                 low_label_steps=1000, finetune_steps=1500, hippo_cases=260, hippo_coord_steps=600, hippo_pretrain_steps=1000, hippo_probe_steps=800),
}
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
HIPPO = ROOT.parent / "shared" / "data" / "volumes" / "hippocampus_mri_msd"


COORD_SPACING_MM = 8.0  # the coordinate model sees 256 mm per 32^3 crop; pretraining and probing run at 4 mm


def phantom_data(p: dict, fold: int, cache: Path, patch: int, train_on: str = "all", batch: int = 4, spacing: float = 4.0,
                 coordinate_ckpt: str | None = None, labelled_cases: int | None = None) -> VolumeDataModule:
    return VolumeDataModule(
        phantoms=p["phantoms"], spacing=(spacing,) * 3, window=(-300.0, 400.0), patch_size=(patch,) * 3, samples_per_volume=8,
        queue_length=48, batch_size=batch, train_on=train_on, num_folds=max(p["folds"], 4), fold=fold, seed=0, cache_dir=str(cache),
        coordinate_ckpt=coordinate_ckpt, labelled_cases=labelled_cases,
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


def reusable(path: Path, reuse: bool, module_cls: type, expected: dict) -> bool:
    """True when ``--reuse`` and ``path`` exists; refuses a checkpoint trained with other settings than ``expected``
    (a hyper-parameter missing from an older checkpoint counts as its legacy value, else ``module_cls``'s default)."""
    if not (reuse and path.is_file()):
        return False
    saved, params = read_checkpoint(path)["hyper_parameters"], inspect.signature(module_cls.__init__).parameters
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
    if reusable(path, reuse, AnatomicalCoordinateModel, {"features": p["features"], "crop_size": crop}):
        model.load_state_dict(read_checkpoint(path)["state_dict"])
    else:
        sec = fit(model, data, steps)
        save_module_checkpoint(model, path)
    quiet_trainer().validate(model, data, verbose=False)
    rs = model.last_distance_r
    return str(path), {"distance_r_mean": sum(rs) / len(rs), "distance_r_per_volume": rs, "sec_per_step": sec, "steps": steps,
                       "reused": sec is None}


def pretrain_arms(make_data, out: Path, coord_ckpt: str, steps: int, p: dict, arms: dict, reuse: bool = False,
                  seed: int = 0) -> tuple[dict, dict]:
    """Pretrain every arm with the profile's recipe from RNG state ``seed``; ``make_data(coordinate_ckpt)`` builds its
    data (guided arms get the coordinate maps)."""
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
            args = {"target": p["pretrain_target"]} | args
        if reusable(path, reuse, AnatomyGuidedDiffusionPretrainer, recipe | args):
            timing[name] = None
            continue
        data = make_data(coord_ckpt if args["guidance"] != "none" else None)
        L.seed_everything(seed, verbose=False)
        model = AnatomyGuidedDiffusionPretrainer(**recipe, **args)
        timing[name] = fit(model, data, steps)
        save_module_checkpoint(model, path)
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
        net, guidance = (load_pretrained_backbone(ckpt)[0], ARMS[name]["guidance"]) if ckpt else (GuidedUNet3D(features=p["features"]), "none")
        out[name] = pyramid_effective_ranks(net, batch["image"], guide_from_batch(batch, guidance, 3))
    return out


def probe(p, data, ckpt: str | None, head: str, steps: int, num_classes: int, names: list[str], seed: int = 0,
          finetune: bool = False) -> dict:
    L.seed_everything(seed, verbose=False)
    model = SegmentationProbe(num_classes=num_classes, pretrainer_ckpt=ckpt, features=p["features"], head=head, lr=3e-3, class_names=names,
                              sw_overlap=0.0, finetune=finetune, backbone_lr=3e-4)
    sec = fit(model, data, steps)
    quiet_trainer().validate(model, data, verbose=False)
    return {"dice": model.last_dice, "sec_per_step": sec}


def ordering_holds(probes: dict, column: str) -> bool:
    """guided >= diffusion >= restorative >= random init on the mean Dice of ``column`` (the paper's ordering)."""
    order = [probes[n][column]["mean"] for n in ("diffusion + anatomy guidance", "diffusion", "restorative", "random init")]
    return all(a >= b for a, b in zip(order, order[1:]))


def probe_arms(p, ckpts: dict, runs: dict, results: dict, make_data, progress, columns=tuple(PROBES)) -> None:
    """Every probe column of ``columns`` x probe seed x arm of ``ckpts``; appends to ``runs[arm][column]`` and refreshes
    the summary. ``make_data(guided, labelled_cases)`` builds the labelled data."""
    for col in columns:
        head, steps_key, budget_key, finetune = PROBES[col]
        for seed in p["seeds"]:
            for name, ckpt in ckpts.items():
                labelled = make_data(is_guided(name), p[budget_key] if budget_key else None)
                runs[name][col].append(probe(p, labelled, ckpt, head, p[steps_key], 16, list(ORGAN_NAMES), seed=seed, finetune=finetune))
                results["probes"][name] = {c: summarize(v) for c, v in runs[name].items() if v}
                progress()


def summarize(runs: list[dict]) -> dict:
    """Per-class Dice averaged over runs (seeds x folds); mean Dice with its std and per-run values."""
    keys = [k for k in runs[0]["dice"] if k != "mean"]
    means = [r["dice"]["mean"] for r in runs]
    return {"mean": statistics.fmean(means), "std": statistics.stdev(means) if len(means) > 1 else 0.0, "runs": means,
            "per_class": {k: statistics.fmean(r["dice"][k] for r in runs) for k in keys}, "sec_per_step": runs[-1]["sec_per_step"]}


def write_reports(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(results, out_dir / "anatomy.json", indent=1)
    st = results["settings"]
    lines = [f"# Anatomy pretraining benchmark ({results['profile']} profile, CPU)", ""]
    c = results.get("coordinates")
    if c:
        how = "reused checkpoint" if c.get("reused") else f"{c['steps']} steps, {c['sec_per_step']:.2f} s/step"
        lines += [f"Coordinate model: Pearson r (predicted vs physical distance, held-out phantoms) = **{c['distance_r_mean']:.3f}** ({how})", ""]
    rows = results.get("probes", {})
    if rows:
        lines += [f"Pretraining: {st['pretrain_steps']} steps, diffusion timesteps < {st['pretrain_max_timestep'] or 1000}, "
                  f"skip dropout {st['pretrain_skip_dropout']}, decorrelation weight {st['pretrain_decorrelation']}, "
                  f"diffusion target {st.get('pretrain_target', 'x0')}.", "",
                  "Frozen-backbone probes and fine-tuning, evaluated on held-out phantoms, mean Dice over 15 organs, mean +- std "
                  f"over probe seeds {list(st['seeds'])} x pretraining seeds {list(st.get('pretrain_seeds', [0]))} (random init: "
                  f"probe seeds only) x {st['folds']} fold(s). Probe steps: non-linear {st['probe_steps']}, linear {st['linear_steps']}, "
                  f"label budget ({st['low_label_cases']} labelled volumes) {st['low_label_steps']}, "
                  f"fine-tuning (backbone trained too, non-linear head) {st.get('finetune_steps', '-')}.", "",
                  f"| initialization | non-linear probe | linear probe | non-linear, {st['low_label_cases']} labelled volumes | fine-tuning |",
                  "|---|---|---|---|---|"]
        for name, r in rows.items():
            fmt = lambda k: f"{r[k]['mean']:.3f} +- {r[k]['std']:.3f}" if k in r else "-"  # noqa: E731
            lines.append(f"| {name} | {fmt('nonlinear')} | {fmt('linear')} | {fmt('nonlinear_low_label')} | {fmt('finetune')} |")
        by_col = results.get("ordering_by_column", {})
        lines += ["", "Ordering guided >= diffusion >= restorative >= random (means), "
                  + "; ".join(f"{LABELS[col]}: " + (f"**{v}**" if col == "nonlinear" else str(v)) for col, v in by_col.items()), ""]
    ranks = results.get("feature_effective_rank")
    if ranks:
        lines += ["Effective rank of the frozen encoder's features per level (full res -> 1/16; channels "
                  f"{list(st['features'][:5])}), central 32^3 crops of the held-out phantoms:", ""]
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
    lines += ["", f"Total wall time: {results.get('wall_s', 0):.0f} s"]
    (out_dir / "anatomy.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "bench_anatomy"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="reuse coordinate / pretraining checkpoints found in --work")
    parser.add_argument("--skip-hippocampus", action="store_true")
    parser.add_argument("--pretrain-max-timestep", type=int, help="override the profile's (diffusion timesteps drawn below it)")
    parser.add_argument("--pretrain-skip-dropout", type=float, help="override the profile's (use a fresh --work with it)")
    parser.add_argument("--pretrain-decorrelation", type=float, help="override the profile's (use a fresh --work with it)")
    parser.add_argument("--pretrain-target", choices=["x0", "eps", "v"], help="override the profile's diffusion prediction target")
    parser.add_argument("--pretrain-seeds", type=int, nargs="+", help="override the profile's pretraining seeds (seed 0 in fold<k>/, "
                        "seed s in fold<k>/pretrain_seed<s>/)")
    parser.add_argument("--columns", nargs="+", choices=list(PROBES), default=list(PROBES),
                        help="probe columns to run (default: all); the others show '-' in the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "disabled")
    p, out, work = dict(PROFILES[args.profile]), Path(args.out), Path(args.work)
    for key in ("pretrain_max_timestep", "pretrain_skip_dropout", "pretrain_decorrelation", "pretrain_target", "pretrain_seeds"):
        if getattr(args, key) is not None:
            p[key] = getattr(args, key)
    cache = work / "cache"
    start = time.time()
    results: dict = {"profile": args.profile, "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}
                     | {"columns": args.columns}, "probes": {}}
    runs: dict = {name: {col: [] for col in PROBES} for name in ARMS}

    def progress() -> None:
        results["reused"] = sorted(str(Path(f).relative_to(work)) for f in reused)
        results["wall_s"] = time.time() - start
        write_reports(results, out)

    reused: list[str] = []
    for fold in range(p["folds"]):
        fold_dir = work / f"fold{fold}"
        coord_data = phantom_data(p, fold, cache, 48, batch=2, spacing=COORD_SPACING_MM)
        coord_ckpt, coords = coordinate_stage(p, coord_data, fold_dir, p["coord_steps"], reuse=args.reuse)
        reused += [coord_ckpt] if coords["reused"] else []
        results.setdefault("coordinates_per_fold", []).append(coords)
        results["coordinates"] = coords if fold == 0 else results["coordinates"]
        progress()
        for pretrain_seed in p["pretrain_seeds"]:  # pretraining-seed variance enters the std beside the probe seeds
            first = pretrain_seed == p["pretrain_seeds"][0]
            seed_dir = fold_dir if pretrain_seed == 0 else fold_dir / f"pretrain_seed{pretrain_seed}"
            arms = {n: a for n, a in ARMS.items() if a is not None or first}  # random init does not depend on it
            ckpts, timing = pretrain_arms(lambda c: phantom_data(p, fold, cache, 32, coordinate_ckpt=c), seed_dir, coord_ckpt,
                                          p["pretrain_steps"], p, arms, reuse=args.reuse, seed=pretrain_seed)
            reused += [ckpts[n] for n, t in timing.items() if t is None]
            results["pretrain_sec_per_step"] = timing
            if first:
                results["feature_effective_rank"] = feature_ranks(
                    p, ckpts, lambda guided: phantom_data(p, fold, cache, 32, train_on="labelled", coordinate_ckpt=coord_ckpt if guided else None))
            progress()
            probe_arms(p, ckpts, runs, results, lambda guided, budget: phantom_data(
                p, fold, cache, 32, train_on="labelled", coordinate_ckpt=coord_ckpt if guided else None, labelled_cases=budget), progress,
                columns=args.columns)
    results["ordering_by_column"] = {col: ordering_holds(results["probes"], col) for col in args.columns}
    results["ordering_holds"] = results["ordering_by_column"].get("nonlinear")  # the paper's claim: the non-linear probe
    progress()
    if not args.skip_hippocampus and (HIPPO / "images").is_dir():
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
    print((out / "anatomy.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
