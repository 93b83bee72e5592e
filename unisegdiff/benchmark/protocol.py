"""Benchmark v2 protocol: every (method, seed) trained at the same budget of optimizer steps, from the
recipes in configs/, scored image by image; one result file per run, written as soon as it is done.

Result files live in ``<out>/runs/<method>/seed<k>.json`` (schema in ``report.py``'s docstring). A rerun
skips every file already there with the same settings and refuses one made with other settings, so a long
benchmark can be run, committed and continued in pieces. Checkpoints go to ``<work>``, outside the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch

from unisegdiff.benchmark.calibration import PixelCalibration
from unisegdiff.benchmark.fingerprint import comparable_settings, import_class, model_with_defaults
from unisegdiff.benchmark.profile import DIFFUSION_METHODS, BenchProfile
from unisegdiff.benchmark.runs import evaluate_images, per_dataset_subset, train
from unisegdiff.callbacks import run_record
from unisegdiff.data import load_registry
from unisegdiff.diffusion import StagedScheduler
from unisegdiff.inference import check_anchor_weight, inference_autocast
from unisegdiff.io import read_checkpoint, write_json_atomic
from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter
from unisegdiff.plots import plot_overlays, plot_timestep_profiles
from unisegdiff.recipes import compose_section, instantiate_section
from unisegdiff.timestep_profile import profile_timesteps, timestep_profile

SCHEMA = 1


class MissingVariants(ValueError):
    """A finished run lacks inference variants added to its profile since, and its checkpoint is gone."""


class Benchmark:
    """The runs of one profile over one data root (None: the embedded phantoms)."""

    def __init__(self, profile: BenchProfile, root: str | None, out: Path, work: Path, profile_name: str,
                 datasets: list[str] | None = None, external: dict[str, tuple[str, dict[str, str]]] | None = None):
        inference_autocast(profile.precision, "cpu")  # validates the precision string before hours of training
        root = str(Path(root).resolve()) if root else None  # one spelling of the root, so a rerun from elsewhere matches
        self.profile, self.root, self.out, self.work, self.profile_name = profile, root, Path(out), Path(work), profile_name
        self.external = external or {}
        registry = load_registry()
        wanted = datasets or [n for n, spec in registry.items() if spec.phantom == (root is None)]
        self.datasets = [d for d in wanted if root is None or (Path(root) / (registry[d].folder if d in registry else d)).is_dir()]
        self.missing = [d for d in wanted if d not in self.datasets]
        if not self.datasets:
            raise FileNotFoundError(f"no dataset of {wanted} found under {root!r}; set UNISEGDIFF_DATA to a canonical root")
        self.check_model_classes()
        self.check_inference_variants()

    def check_model_classes(self) -> None:
        """Every method's composed model is of its recipe's kind (a variant's ``configs`` could name another one, whose
        run would then take the wrong training path): found now, not after hours of training."""
        for method in self.profile.methods:
            recipe = self.profile.recipe_of(method)
            expected = StagedDiffusionSegmenter if recipe in DIFFUSION_METHODS else DeterministicSegmenter
            class_path = self.model_section(method)["class_path"]
            try:
                cls = import_class(class_path)
            except (ImportError, AttributeError, ValueError) as error:
                raise ValueError(f"benchmark profile: method {method!r} composes model class {class_path!r}, which cannot be "
                                 f"imported ({error})") from error
            if not (isinstance(cls, type) and issubclass(cls, expected)):
                raise ValueError(f"benchmark profile: method {method!r} has recipe {recipe!r} but its configs "
                                 f"{self.profile.configs_of(method)} build a {class_path}; a {recipe} method needs a "
                                 f"{expected.__name__} (fix the variant's recipe or configs)")

    def check_inference_variants(self) -> None:
        """Every inference variant must fit every diffusion method's plan: found now, not after hours of training."""
        for method in self.profile.methods:
            if self.profile.recipe_of(method) not in DIFFUSION_METHODS:
                continue
            args = self.model_section(method)["init_args"]  # the method's own configs and overrides
            plan = StagedDiffusionSegmenter.stage_plan(args.get("stages"), args.get("num_timesteps", 1000), args.get("stage_boundaries"))
            for name, spec in self.inference_variants_of(method).items():
                k = spec.get("num_samples", 1)
                try:
                    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                        raise ValueError(f"num_samples must be a positive integer, got {k!r}")
                    StagedScheduler.from_plan(plan).set_timesteps(spec.get("sampling_steps"), spec.get("sampler"))
                    if "guidance_scale" in spec:
                        StagedDiffusionSegmenter._check_guidance(spec["guidance_scale"], args.get("condition_dropout", 0.0))
                    if "condition_weight" in spec:
                        check_anchor_weight(spec["condition_weight"], "condition_weight")
                except ValueError as error:
                    raise ValueError(f"benchmark profile: inference variant {name!r} does not fit method {method!r}: {error}") from error

    def inference_variants_of(self, method: str) -> dict[str, dict[str, Any]]:
        """The profile's inference variants that apply to ``method`` (a variant's ``methods`` list, default: all)."""
        unknown = {m for spec in self.profile.inference_variants.values() for m in spec.get("methods", [])} - set(self.profile.methods)
        if unknown:
            raise ValueError(f"benchmark profile: inference variants name methods {sorted(unknown)} that are not in the profile")
        return {name: spec for name, spec in self.profile.inference_variants.items() if method in spec.get("methods", [method])}

    # --- recipes ----------------------------------------------------------------------------------
    def datamodule(self, seed: int, root: str | None = None, datasets: list[str] | None = None, registry: str | None = None,
                   split_overrides: dict | None = None) -> L.LightningDataModule:
        p = self.profile
        overrides = {"root": root if root is not None else self.root, "datasets": datasets or self.datasets, "image_size": p.image_size,
                     "batch_size": p.batch_size, "num_workers": p.num_workers, "seed": seed, "split_seed": p.split_seed,
                     "max_per_dataset": p.max_per_dataset, "split_dir": None, "registry": registry}
        if split_overrides:
            overrides["split_overrides"] = split_overrides
        return instantiate_section(compose_section([p.data_recipe], "data", overrides), L.LightningDataModule)

    def model_section(self, method: str, condition_ckpt: str | None = None) -> dict[str, Any]:
        p = self.profile
        recipe = p.recipe_of(method)
        overrides: dict[str, Any] = {"lr": p.lr, **p.overrides_of(method)}
        if recipe in DIFFUSION_METHODS:
            overrides = {"num_samples": p.num_samples, "condition_ckpt": condition_ckpt, **overrides}
        return compose_section(p.configs_of(method), "model", overrides)

    def settings(self, method: str) -> dict[str, Any]:
        """What a result file depends on: a rerun with other settings must not reuse it."""
        p = self.profile.as_dict()
        for key in ("seeds", "methods", "speed_min_seconds", "profile_points", "eval_batch_size", "min_images", "ddpm_subset_per_dataset"):
            p.pop(key)
        if not p["small_set_folds"]:  # off: result files made before the option existed stay valid
            p.pop("small_set_folds")
        else:
            p["min_images"] = self.profile.min_images  # which sets are cross-validated
        recipe = self.profile.recipe_of(method)
        # only what this method's run depends on: tuning the staged recipe keeps the U-Net's results valid
        p["model_overrides"] = self.profile.overrides_of(method)
        p.pop("variants")
        if recipe in DIFFUSION_METHODS:
            p["phase1_fraction"] = self.profile.phase1_steps_of(method) / self.profile.budget_steps
        p["recipes"] = {k: v for k, v in p["recipes"].items() if k == recipe or (k == "condition" and recipe in DIFFUSION_METHODS)}
        p["recipes"][recipe] = self.profile.configs_of(method)  # the files this method's model was composed from
        if recipe not in DIFFUSION_METHODS:
            p.pop("phase1_fraction"), p.pop("num_samples"), p.pop("inference_variants")
        else:  # only the variants scored on this method (a guided variant for the dropout models leaves the others valid)
            p["inference_variants"] = {name: {k: v for k, v in spec.items() if k != "methods"}
                                       for name, spec in self.inference_variants_of(method).items()}
        model = self.model_section(method, condition_ckpt="<phase 1 of this seed>")
        # the recipes' contents, not only their names: editing configs/data/*.yaml or the condition recipe invalidates
        contents = {"data": compose_section([self.profile.data_recipe], "data")}
        if recipe in DIFFUSION_METHODS:
            contents["condition"] = compose_section(self.profile.recipe_files("condition"), "model")
        return {"profile": p, "model": model, "model_resolved": model_with_defaults(model), "root": self.root, "datasets": self.datasets,
                "recipe_contents": contents,
                "external": {k: [v[0], v[1]] for k, v in sorted(self.external.items())}}

    # --- result files -----------------------------------------------------------------------------
    def result_path(self, method: str, seed: int) -> Path:
        return self.out / "runs" / method / f"seed{seed}.json"

    def done(self, method: str, seed: int) -> bool:
        path = self.result_path(method, seed)
        if not path.is_file():
            return False
        # compared as what the run trained with: reorganizing configs/ (a default spelled out, a recipe split into an
        # overlay) keeps a file valid as long as the composed model, data and budget are the same
        stored = comparable_settings(json.loads(path.read_text()).get("settings"))
        current = comparable_settings(self.settings(method))
        if "recipe_contents" not in stored:  # written before recipe contents were recorded (session of 2026-11-23)
            current.pop("recipe_contents")
            print(f"[benchmark] {path}: no recipe contents recorded; assuming configs/ unchanged since its commit "
                  f"{json.loads(path.read_text()).get('run_record', {}).get('git_commit', '?')}")
        if stored != current and self.add_inference_variants(method, seed, stored, current):
            return True
        if stored != current:
            raise ValueError(f"{path} was made with other settings than this run's ({self.profile_name} profile); "
                             "use another --out, or delete the file to rerun it")
        return True

    def reportable(self, method: str, seed: int) -> bool:
        """``done``, except that a finished run lacking only newly added inference variants whose checkpoint is gone
        still counts for the report (shown without those variants) instead of stopping it."""
        try:
            return self.done(method, seed)
        except MissingVariants as error:
            print(f"[benchmark] {error}; reported without them")
            return True

    def add_inference_variants(self, method: str, seed: int, stored: dict[str, Any], current: dict[str, Any]) -> bool:
        """A finished run whose settings differ only by inference variants added to the profile: score the new ones on
        its checkpoint (no retraining) and add them to its result file. False when anything else differs."""
        s, c = json.loads(json.dumps(stored)), json.loads(json.dumps(current))
        old, new = s["profile"].pop("inference_variants", {}), c["profile"].pop("inference_variants", {})
        if s != c or any(name in new and new[name] != spec for name, spec in old.items()):
            return False
        missing = [name for name in new if name not in old]
        path, ckpt = self.result_path(method, seed), self.work / method / f"seed{seed}" / "last.ckpt"
        run = json.loads(path.read_text(encoding="utf-8"))
        if not ckpt.is_file():
            raise MissingVariants(f"{path} lacks the inference variants {missing} and its checkpoint {ckpt} is gone; delete the file to rerun it")
        state = read_checkpoint(ckpt)
        if state.get("global_step") != run["train"]["phase2_steps"]:
            raise ValueError(f"{ckpt} is at step {state.get('global_step')}, not the {run['train']['phase2_steps']} steps of {path}")
        model = instantiate_section(self.model_section(method), L.LightningModule)
        model.load_state_dict(state["state_dict"])
        model.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        dm = self.datamodule(seed)
        dm.setup("test")
        test_set = dm.split_dataset("test")
        for name in missing:
            print(f"[benchmark] {method} seed {seed}: scoring the new inference variant {name!r} on {ckpt}")
            run.setdefault("inference_variants", {})[name] = self.score_inference_variant(model, test_set, new[name])
        run["settings"]["profile"]["inference_variants"] = {**old, **new}
        write_json_atomic(run, path)
        return True

    def result_files(self) -> list[Path]:
        return sorted((self.out / "runs").glob("*/seed*.json"))

    # --- runs -------------------------------------------------------------------------------------
    def run(self, methods: list[str] | None = None, seeds: list[int] | None = None) -> list[Path]:
        """Every missing (method, seed) of the profile, seed by seed, each written as soon as it is done."""
        p = self.profile
        methods = [m for m in p.methods if methods is None or m in methods]
        written = []
        for seed in seeds if seeds is not None else p.seeds:
            for method in methods:
                if self.done(method, seed):
                    print(f"[benchmark] {method} seed {seed}: done ({self.result_path(method, seed)}), skipped")
                    continue
                written.append(self.run_one(method, seed))
        return written

    def phase1(self, seed: int, steps: int, fold: int | None = None, split_overrides: dict | None = None) -> tuple[str, dict[str, Any]]:
        """The seed's condition network (phase 1), trained once and shared by the diffusion runs of that length
        (``fold``: of that cross-validation fold, trained on its ``split_overrides``)."""
        ckpt_dir = self.work / "condition" / (f"seed{seed}_steps{steps}" + ("" if fold is None else f"_cv{fold}"))
        stamp = ckpt_dir / "phase1.json"
        wanted = {"steps": steps, "settings": self.settings("unet"),
                  "condition": compose_section(self.profile.recipe_files("condition"), "model", {"lr": self.profile.lr})}
        if split_overrides:
            wanted["split_overrides"] = split_overrides
        if stamp.is_file() and (ckpt_dir / "last.ckpt").is_file():
            stored = json.loads(stamp.read_text())
            if {**stored["wanted"], "settings": comparable_settings(stored["wanted"]["settings"])} == \
                    {**json.loads(json.dumps(wanted)), "settings": comparable_settings(wanted["settings"])}:
                return str(ckpt_dir / "last.ckpt"), stored["train"]
        stamp.unlink(missing_ok=True)  # an interrupted retrain must never leave its checkpoint beside an older stamp
        L.seed_everything(seed, workers=True)  # weights initialized from the seed, not from whatever ran before
        model = instantiate_section(wanted["condition"], L.LightningModule)
        info = train(model, self.datamodule(seed, split_overrides=split_overrides), steps, ckpt_dir, seed, self.profile.precision,
                     self.profile.deterministic)
        write_json_atomic({"wanted": wanted, "train": info}, stamp)
        return str(ckpt_dir / "last.ckpt"), info

    def train_method(self, method: str, seed: int, fold: int | None = None, split_overrides: dict | None = None):
        """``method`` trained at the profile's budget for ``seed`` (phase 1 included): (model, datamodule, train block).
        ``fold``/``split_overrides``: one cross-validation fold, with its own checkpoints under ``cv<fold>``."""
        p = self.profile
        if p.deterministic:
            torch.use_deterministic_algorithms(True)
        diffusion = p.recipe_of(method) in DIFFUSION_METHODS
        phase1_steps = p.phase1_steps_of(method) if diffusion else 0
        condition, phase1 = self.phase1(seed, phase1_steps, fold, split_overrides) if phase1_steps else (None, None)
        L.seed_everything(seed, workers=True)  # weights initialized from the seed, not from whatever ran before
        model = instantiate_section(self.model_section(method, condition), L.LightningModule)
        dm = self.datamodule(seed, split_overrides=split_overrides)
        ckpt_dir = self.work / method / f"seed{seed}"
        if fold is not None:
            ckpt_dir = ckpt_dir / f"cv{fold}"
        if method == "unet_walltime":
            staged = json.loads(self.result_path("staged", seed).read_text()) if self.done("staged", seed) else None
            if staged is None:
                raise RuntimeError(f"unet_walltime seed {seed} needs the staged result of that seed first")
            # the staged run's training-loop time, on the clock max_time stops by (older files: the wall time around fit)
            budget = staged["train"].get("loop_seconds", staged["train"]["seconds"])
            info = train(model, dm, -1, ckpt_dir, seed, p.precision, p.deterministic, max_time=budget)
        else:
            if diffusion and not phase1 and model.hparams.freeze_condition:
                raise ValueError(f"{method}: without phase 1 the condition network must train in phase 2; set freeze_condition: false")
            info = train(model, dm, p.budget_steps - phase1_steps, ckpt_dir, seed, p.precision, p.deterministic)
        train_block = {"steps": info["steps"], "seconds": info["seconds"], "loop_seconds": info["loop_seconds"], "batch_size": p.batch_size}
        if diffusion:
            train_block.update(phase1_steps=0, phase2_steps=info["steps"])
        if phase1:
            train_block = {"steps": phase1["steps"] + info["steps"], "seconds": phase1["seconds"] + info["seconds"],
                           "loop_seconds": phase1.get("loop_seconds", phase1["seconds"]) + info["loop_seconds"],
                           "phase1_steps": phase1["steps"], "phase2_steps": info["steps"], "batch_size": p.batch_size}
        return model, dm, train_block

    def cross_validate(self, method: str, seed: int, dm) -> dict[str, Any] | None:
        """With ``small_set_folds`` k: every dataset with fewer than ``min_images`` test images, k-fold cross-validated
        (k more trainings at the same budget, each scored on its fold's images of those sets; the other datasets keep
        their split). Every image of those sets is then a test image once. None when off or no set is that small."""
        p = self.profile
        small = sorted(d for d, parts in dm.splits().items() if len(parts["test"]) < p.min_images)
        if p.small_set_folds < 2 or not small:
            return None
        rows: list[dict[str, Any]] = []
        pixel: dict[str, PixelCalibration] = {}  # pooled over the folds' models
        trained = []
        for fold, overrides in enumerate(dm.kfold_splits(small, p.small_set_folds)):
            model, fold_dm, train_block = self.train_method(method, seed, fold, overrides)
            fold_dm.setup("test")
            test_set = fold_dm.split_dataset("test")
            subset = torch.utils.data.Subset(test_set, [i for i, d in enumerate(test_set.dataset_of_sample) if d in small])
            scored = evaluate_images(model, subset, p.eval_batch_size, p.precision, pixel=pixel)
            rows += [{**row, "fold": fold} for row in scored["images"]]
            trained.append(train_block)
            print(f"[benchmark] {method} seed {seed}: cross-validation fold {fold + 1}/{p.small_set_folds} scored")
        return {"folds": p.small_set_folds, "datasets": small, "images": rows, "train": trained,
                "pixel": {name: {**cal.compute(), "reliability": cal.reliability()} for name, cal in sorted(pixel.items())}}

    def run_one(self, method: str, seed: int) -> Path:
        p = self.profile
        record = {**run_record(seed), "cpu_model": cpu_model(), "threads": torch.get_num_threads()}  # the code that trains
        model, dm, train_block = self.train_method(method, seed)
        dm.setup("test")
        test_set = dm.split_dataset("test")
        scored = evaluate_images(model, test_set, p.eval_batch_size, p.precision)
        result: dict[str, Any] = {
            "schema": SCHEMA, "method": method, "seed": seed, "profile_name": self.profile_name, "settings": self.settings(method),
            "train": train_block, "precision": p.precision, "images": scored["images"], "pixel": scored["pixel"],
            "inference": {"calls_per_sample": getattr(model, "network_calls", 1), "num_samples": getattr(model.hparams, "num_samples", 1),
                          "seconds_per_image": scored["seconds_per_image"], "images": scored["count"]},
            "run_record": record,
            "missing_datasets": self.missing, "splits": dm.describe()}
        if p.recipe_of(method) in DIFFUSION_METHODS and self.inference_variants_of(method):
            result["inference_variants"] = {
                name: self.score_inference_variant(model, test_set, spec) for name, spec in self.inference_variants_of(method).items()}
        if seed == p.seeds[0]:
            result.update(self.first_seed_extras(method, model, test_set, seed))
        result["external"] = {name: self.score_external(model, root, mapping, seed) for name, (root, mapping) in self.external.items()}
        cv = self.cross_validate(method, seed, dm)
        if cv is not None:
            result["cross_validation"] = cv
        path = self.result_path(method, seed)
        write_json_atomic(result, path)
        print(f"[benchmark] {method} seed {seed}: written {path}")
        return path

    def first_seed_extras(self, method: str, model, test_set, seed: int) -> dict[str, Any]:
        """Overlays of two test images per dataset; side-by-side speed on a fixed subset (staged vs eps DDPM-1000)
        and the timestep profile of the diffusion methods."""
        p, extras = self.profile, {}
        self.write_overlays(method, model, per_dataset_subset(test_set, 2))
        if p.recipe_of(method) in DIFFUSION_METHODS:
            subset = per_dataset_subset(test_set, p.ddpm_subset_per_dataset)
            scheduler = model.scheduler.set_timesteps(1000, "ddpm") if method == "eps" else None
            timed = evaluate_images(model, subset, p.eval_batch_size, p.precision, scheduler=scheduler,
                                    min_seconds=p.speed_min_seconds if scheduler is None else 0.0)
            mean_dice = sum(r["dice"] for r in timed["images"]) / max(len(timed["images"]), 1)
            key = "speed_subset" if scheduler is None else "speed_subset_ddpm1000"
            extras[key] = {"images": timed["count"], "seconds_per_image": timed["seconds_per_image"], "dice": mean_dice,
                           "calls_per_sample": 1000 if scheduler is not None else model.network_calls}
            batch = next(iter(torch.utils.data.DataLoader(test_set, batch_size=min(len(test_set), 32), shuffle=False)))
            with inference_autocast(p.precision, model.device.type):
                extras["timestep_profile"] = timestep_profile(model.eval(), batch["image"].to(model.device), batch["mask"].to(model.device),
                                                              profile_timesteps(model.plan.num_timesteps, p.profile_points), seed=seed)
        return extras

    def write_overlays(self, method: str, model, subset) -> Path:
        """``overlays_<method>.png``: image, ground truth, prediction and uncertainty, one row per image."""
        batch = next(iter(torch.utils.data.DataLoader(subset, batch_size=len(subset), shuffle=False)))
        image = batch["image"].to(model.device)
        with inference_autocast(self.profile.precision, model.device.type):
            fused = model.eval().predict_fused(image, generator=model._eval_generator({**batch, "image": image}))
        titles = [f"{d}/{s}" for d, s in zip(batch["dataset"], batch["stem"])]
        return plot_overlays(batch["image"].numpy(), batch["mask"].numpy(), fused.mask.float().cpu().numpy(),
                             fused.uncertainty.float().cpu().numpy(), self.out / f"overlays_{method}.png", titles)

    def write_timestep_profiles(self) -> Path | None:
        """``timestep_profiles.png`` from the first-seed result files of the diffusion methods."""
        profiles = {}
        for path in self.result_files():
            run = json.loads(path.read_text(encoding="utf-8"))
            if run.get("timestep_profile"):
                profiles[run["method"]] = [tuple(row) for row in run["timestep_profile"]]
        if not profiles:
            return None
        return plot_timestep_profiles(profiles, self.out / "timestep_profiles.png", "Dice of the one-step x0 estimate (test images, first seed)")

    def score_inference_variant(self, model, test_set, spec: dict[str, Any]) -> dict[str, Any]:
        """The same trained model sampled another way (calls per stage, sampler, K): images, pixels, speed, calls."""
        steps = spec["sampling_steps"] if "sampling_steps" in spec else model.scheduler.steps  # unset: the model's own steps
        scheduler = model.scheduler.set_timesteps(steps, spec.get("sampler"))
        scored = evaluate_images(model, test_set, self.profile.eval_batch_size, self.profile.precision, scheduler=scheduler,
                                 num_samples=spec.get("num_samples"), guidance_scale=spec.get("guidance_scale"),
                                 condition_weight=spec.get("condition_weight"))
        guided = spec.get("guidance_scale", model.hparams.get("guidance_scale", 1.0)) != 1  # two branches per step
        return {"spec": spec, "calls_per_sample": scheduler.network_calls * (2 if guided else 1),
                "num_samples": spec.get("num_samples") or model.hparams.num_samples,
                "images": scored["images"], "pixel": scored["pixel"], "seconds_per_image": scored["seconds_per_image"]}

    def score_external(self, model, root: str, mapping: dict[str, str], seed: int) -> dict[str, Any]:
        """The trained model on every image of another canonical root (``mapping``: folder -> registry name)."""
        registry = None
        if mapping:
            registry = self.work / "external_registry" / f"{Path(root).name}.yaml"
            write_json_atomic({"datasets": {name: {"folder": folder} for folder, name in mapping.items()}}, registry)
        dm = self.datamodule(seed, root=root, datasets=list(mapping.values()) or None, registry=str(registry) if registry else None)
        scored = evaluate_images(model, dm.all_samples_dataset(), self.profile.eval_batch_size, self.profile.precision)
        return {"root": root, "images": scored["images"], "pixel": scored["pixel"]}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux; the platform string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()
