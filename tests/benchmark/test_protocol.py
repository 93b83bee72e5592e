"""The benchmark v2 protocol end to end on phantoms with tiny budgets: equal train steps, the same test
images for every (method, seed), resumable result files, an external root, deterministic reruns."""

import json
from pathlib import Path

import numpy as np
import pytest

from unisegdiff.benchmark import Benchmark, BenchProfile
from unisegdiff.data.phantoms import write_phantom_root

TINY = dict(image_size=32, batch_size=4, num_workers=0, budget_steps=4, num_samples=1, max_per_dataset=12, eval_batch_size=8,
            speed_min_seconds=0.1, profile_points=3, model_overrides={"eps": {"sampling_steps": 4}})
DATASETS = ["phantom_ct", "phantom_mr"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Two seeds of every method, scored on the held-out phantoms and on an external phantom root."""
    tmp = tmp_path_factory.mktemp("bench")
    external = write_phantom_root(tmp / "hospital_b", n_per_dataset=3, size=32, seed=7)
    folder = sorted(p.name for p in external.iterdir() if p.is_dir() and "ct" in p.name)[0]
    profile = BenchProfile(seeds=[0, 1], methods=["unet", "staged", "eps", "unet_walltime"], **TINY)
    bench = Benchmark(profile, None, tmp / "out", tmp / "work", "tiny", DATASETS, {"hospital_b": (str(external), {folder: "phantom_ct"})})
    written = bench.run()
    return bench, written


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_every_method_and_seed_has_a_result_at_equal_steps(finished):
    bench, written = finished
    assert len(written) == 8 and sorted(written) == bench.result_files()
    runs = {(r["method"], r["seed"]): r for r in map(_load, written)}
    for seed in (0, 1):
        assert runs[("unet", seed)]["train"]["steps"] == 4
        for method in ("staged", "eps"):  # phase 1 + phase 2 = the U-Net's budget
            train = runs[(method, seed)]["train"]
            assert (train["phase1_steps"], train["phase2_steps"], train["steps"]) == (2, 2, 4)
        assert runs[("unet_walltime", seed)]["train"]["steps"] >= 1
        for method in ("unet", "staged", "unet_walltime"):  # the training loop's clock, inside the wall time around fit
            train = runs[(method, seed)]["train"]
            assert 0 < train["loop_seconds"] <= train["seconds"]
        # the U-Net gets the staged run's training-loop time, on the clock max_time stops by (plus at most one step)
        assert runs[("unet_walltime", seed)]["train"]["loop_seconds"] >= runs[("staged", seed)]["train"]["loop_seconds"]
        assert runs[("unet_walltime", seed)]["train"]["loop_seconds"] <= runs[("staged", seed)]["train"]["loop_seconds"] + 30
    stems = {key: [(i["dataset"], i["stem"]) for i in r["images"]] for key, r in runs.items()}
    assert len(set(map(tuple, stems.values()))) == 1  # one split for every seed: paired statistics are possible
    assert len(stems[("unet", 0)]) == 4 and {d for d, _ in stems[("unet", 0)]} == set(DATASETS)
    staged = runs[("staged", 0)]
    assert staged["inference"]["calls_per_sample"] == 8 and runs[("eps", 0)]["inference"]["calls_per_sample"] == 4
    assert 0 <= staged["pixel"]["phantom_ct"]["ece"] <= 1 and len(staged["pixel"]["phantom_ct"]["reliability"]["count"]) == 15
    assert staged["speed_subset"]["calls_per_sample"] == 8 and runs[("eps", 0)]["speed_subset_ddpm1000"]["calls_per_sample"] == 1000
    assert "speed_subset" not in runs[("staged", 1)] and len(staged["timestep_profile"]) == 3
    assert staged["run_record"]["cpu_model"] and staged["run_record"]["threads"] >= 1
    for method in ("unet", "staged", "eps"):  # first seed: overlays per method, readable as an image
        assert (bench.out / f"overlays_{method}.png").stat().st_size > 10_000
    assert bench.write_timestep_profiles().stat().st_size > 10_000
    ext = staged["external"]["hospital_b"]
    assert len(ext["images"]) == 3 and {i["dataset"] for i in ext["images"]} == {"phantom_ct"}


def test_a_time_budget_reaches_the_trainer_timer(tmp_path):
    """Lightning ignores Trainer(max_time=...) once the callbacks hold a Timer: the budget must sit on that Timer."""
    import lightning as L

    from unisegdiff.benchmark.runs import make_trainer

    timers = [c for c in make_trainer(-1, tmp_path, "32-true", False, max_time=7.0).callbacks if isinstance(c, L.pytorch.callbacks.Timer)]
    assert len(timers) == 1 and timers[0].time_remaining() == pytest.approx(7.0)
    untimed = [c for c in make_trainer(5, tmp_path, "32-true", False).callbacks if isinstance(c, L.pytorch.callbacks.Timer)]
    assert len(untimed) == 1 and untimed[0].time_remaining() is None


def test_rerun_skips_finished_runs_and_refuses_other_settings(finished):
    bench, written = finished
    stamp = {p: p.stat().st_mtime_ns for p in written}
    assert bench.run() == [] and all(p.stat().st_mtime_ns == t for p, t in stamp.items())
    other = Benchmark(BenchProfile(seeds=[0], methods=["unet"], **{**TINY, "budget_steps": 6}), None, bench.out, bench.work, "tiny", DATASETS)
    with pytest.raises(ValueError, match=r"unet/seed0.json was made with other settings"):
        other.run()


def test_deterministic_reruns_give_identical_numbers(tmp_path):
    runs = []
    for name in ("a", "b"):
        profile = BenchProfile(seeds=[3], methods=["unet", "staged"], deterministic=True, **TINY)
        bench = Benchmark(profile, None, tmp_path / name, tmp_path / f"work_{name}", "tiny", ["phantom_ct"])
        runs.append([_load(p) for p in bench.run()])
    for first, second in zip(*runs):
        assert first["precision"] == "32-true"
        assert [i["dice"] for i in first["images"]] == [i["dice"] for i in second["images"]]
        assert first["pixel"] == second["pixel"]


def test_profile_rejects_unknown_keys_methods_and_precisions(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_size: 64\nsteps: 3\n")
    with pytest.raises(ValueError, match="unknown keys"):
        BenchProfile.from_yaml(bad)
    with pytest.raises(ValueError, match="unknown methods"):
        BenchProfile(methods=["unet", "medsegdiff"])
    with pytest.raises(ValueError, match="unet_walltime needs the staged method"):
        BenchProfile(methods=["unet", "unet_walltime"])
    with pytest.raises(ValueError, match="precision 'fp8'"):
        Benchmark(BenchProfile(precision="fp8"), None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])


@pytest.mark.parametrize("name", ["quick", "standard", "full", "ablations", "ablations_round3"])
def test_shipped_profiles_load_and_use_the_recipes(name):
    root = Path(__file__).parents[2] / "configs" / "benchmark"
    profile = BenchProfile.from_yaml(root / f"{name}.yaml")
    assert profile.phase1_steps + profile.phase2_steps == profile.budget_steps
    assert name != "standard" or len(profile.seeds) >= 3


def test_variants_are_methods_with_their_own_recipe_overrides_and_phase_split(tmp_path):
    variants = {"staged_joint": {"recipe": "staged", "phase1_fraction": 0.0,
                                 "overrides": {"freeze_condition": False, "denoiser_trains_condition": False}},
                "staged_frozen_no_phase1": {"recipe": "staged", "phase1_fraction": 0.0}}
    profile = BenchProfile(seeds=[0], methods=["staged_joint"], variants=variants, **TINY,
                           inference_variants={"one_call": {"sampling_steps": [0, 0, 1], "num_samples": 2},
                                               "condition_only": {"sampling_steps": [0, 0, 1], "condition_weight": 1.0}})
    bench = Benchmark(profile, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"])
    run = _load(bench.run()[0])
    one_call = run["inference_variants"]["one_call"]  # the same trained model, sampled in one denoiser call, K = 2
    assert one_call["calls_per_sample"] == 1 and one_call["num_samples"] == 2 and len(one_call["images"]) == len(run["images"])
    # condition_weight 1: the fused output is the condition network's own segmentation
    only = run["inference_variants"]["condition_only"]["images"]
    assert [round(r["dice"], 6) for r in only] == [round(r["condition_dice"], 6) for r in run["images"]]
    assert (run["train"]["phase1_steps"], run["train"]["phase2_steps"], run["train"]["steps"]) == (0, 4, 4)
    assert run["settings"]["model"]["init_args"]["freeze_condition"] is False
    assert all(0 <= row["condition_dice"] <= 1 for row in run["images"])  # phase 2 vs the segmentation it starts from
    frozen = Benchmark(BenchProfile(seeds=[0], methods=["staged_frozen_no_phase1"], variants=variants, **TINY), None,
                       tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"])
    with pytest.raises(ValueError, match="without phase 1 the condition network must train in phase 2"):
        frozen.run()
    with pytest.raises(ValueError, match="variant 'unet' needs a new name"):
        BenchProfile(variants={"unet": {"recipe": "unet"}})


def test_inference_variants_and_overrides_are_checked_before_training(tmp_path):
    bad_steps = BenchProfile(seeds=[0], methods=["unet", "eps"], **{**TINY, "inference_variants": {"one_call": {"sampling_steps": [0, 0, 1]}}})
    with pytest.raises(ValueError, match="inference variant 'one_call' does not fit method 'eps'"):
        Benchmark(bad_steps, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])
    no_samples = BenchProfile(seeds=[0], methods=["staged"], **{**TINY, "inference_variants": {"k0": {"num_samples": 0}}})
    with pytest.raises(ValueError, match="num_samples must be a positive integer"):
        Benchmark(no_samples, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])
    bad_weight = BenchProfile(seeds=[0], methods=["staged"], **{**TINY, "inference_variants": {"w": {"condition_weight": 1.5}}})
    with pytest.raises(ValueError, match=r"inference variant 'w' does not fit method 'staged': condition_weight must be a number in \[0, 1\]"):
        Benchmark(bad_weight, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])
    with pytest.raises(ValueError, match=r"model_overrides for unknown methods \['stagd'\]"):
        BenchProfile(model_overrides={"stagd": {"lr": 0.1}})


def test_inference_variants_are_checked_against_the_methods_own_plan(tmp_path):
    """A variant whose configs set no stages samples with the class's default plan (three stages), whatever the profile's
    staged recipe says: a one-call variant fits it, and does not fit a one-stage recipe."""
    one_stage = tmp_path / "one_stage.yaml"
    one_stage.write_text("model:\n  class_path: unisegdiff.models.StagedDiffusionSegmenter\n  init_args:\n    stages:\n"
                         "      - {name: eps, start: 0, end: 1000, target: eps, loss: {mse: 1.0}, weight: 1.0, steps: 10}\n")
    no_stages = tmp_path / "no_stages.yaml"
    no_stages.write_text("model:\n  class_path: unisegdiff.models.StagedDiffusionSegmenter\n  init_args: {num_samples: 2}\n")
    recipes = {**BenchProfile().recipes, "staged": [str(one_stage)]}
    one_call = {"one_call": {"sampling_steps": [0, 0, 1]}}
    variants = {"shipped_plan": {"recipe": "staged", "configs": [str(no_stages)]}}
    fits = BenchProfile(seeds=[0], methods=["shipped_plan"], recipes=recipes, variants=variants, inference_variants=one_call, **TINY)
    Benchmark(fits, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])  # checked at construction: no error
    misfit = BenchProfile(seeds=[0], methods=["staged"], recipes=recipes, inference_variants=one_call, **TINY)
    with pytest.raises(ValueError, match="inference variant 'one_call' does not fit method 'staged'"):
        Benchmark(misfit, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])


def test_a_variant_whose_configs_build_another_kind_of_model_is_refused(tmp_path):
    wrong = BenchProfile(seeds=[0], methods=["unet_from_staged"], variants={"unet_from_staged": {"recipe": "unet", "configs": ["unisegdiff/staged"]}},
                         **TINY)
    with pytest.raises(ValueError, match=r"method 'unet_from_staged' has recipe 'unet' but its configs \['unisegdiff/staged'\] build a "
                                         r"unisegdiff.models.StagedDiffusionSegmenter; a unet method needs a DeterministicSegmenter"):
        Benchmark(wrong, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])
    right = BenchProfile(seeds=[0], methods=["e2e"], variants={"e2e": {"recipe": "staged", "configs": ["unisegdiff/staged"]}}, **TINY)
    Benchmark(right, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])


def test_guided_inference_variants_apply_to_the_methods_they_name(tmp_path):
    variants = {"cdrop": {"recipe": "staged", "phase1_fraction": 0.0,
                          "overrides": {"freeze_condition": False, "denoiser_trains_condition": False, "denoiser_image": True,
                                        "condition_dropout": 0.5, "sampling_steps": [0, 0, 1]}}}
    guided = {"half": {"guidance_scale": 0.5, "methods": ["cdrop"]}}
    profile = BenchProfile(seeds=[0], methods=["staged", "cdrop"], variants=variants, inference_variants=guided, **TINY)
    bench = Benchmark(profile, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"])
    assert bench.inference_variants_of("staged") == {} and set(bench.inference_variants_of("cdrop")) == {"half"}
    assert bench.settings("staged")["profile"]["inference_variants"] == {}
    run = _load(bench.run(["cdrop"])[0])
    half = run["inference_variants"]["half"]
    assert half["calls_per_sample"] == 2 and len(half["images"]) == len(run["images"])  # two branches of one call
    everywhere = BenchProfile(seeds=[0], methods=["staged", "cdrop"], variants=variants, **TINY,
                              inference_variants={"half": {"guidance_scale": 0.5}})
    with pytest.raises(ValueError, match="inference variant 'half' does not fit method 'staged'.*condition_dropout"):
        Benchmark(everywhere, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])
    stray = BenchProfile(seeds=[0], methods=["cdrop"], variants=variants, **TINY,
                         inference_variants={"half": {"guidance_scale": 0.5, "methods": ["nope"]}})
    with pytest.raises(ValueError, match=r"name methods \['nope'\] that are not in the profile"):
        Benchmark(stray, None, tmp_path / "o", tmp_path / "w", "x", ["phantom_ct"])


def test_an_added_inference_variant_is_scored_on_the_checkpoint_without_retraining(tmp_path):
    variants = {"joint": {"recipe": "staged", "phase1_fraction": 0.0,
                          "overrides": {"freeze_condition": False, "denoiser_trains_condition": False}}}
    first = BenchProfile(seeds=[0], methods=["joint"], variants=variants, **TINY,
                         inference_variants={"k2": {"num_samples": 2}})
    path = Benchmark(first, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"]).run()[0]
    before = _load(path)
    more = BenchProfile(seeds=[0], methods=["joint"], variants=variants, **TINY,
                        inference_variants={"k2": {"num_samples": 2}, "one_call": {"sampling_steps": [0, 0, 1]}})
    bench = Benchmark(more, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"])
    assert bench.run() == []  # nothing retrained
    after = _load(path)
    assert after["images"] == before["images"] and after["train"] == before["train"]
    assert after["inference_variants"]["k2"] == before["inference_variants"]["k2"]
    assert after["inference_variants"]["one_call"]["calls_per_sample"] == 1
    assert len(after["inference_variants"]["one_call"]["images"]) == len(before["images"])
    assert bench.done("joint", 0)  # the file now matches the profile
    changed = BenchProfile(seeds=[0], methods=["joint"], variants=variants, **TINY, inference_variants={"k2": {"num_samples": 3}})
    with pytest.raises(ValueError, match="made with other settings"):  # a changed variant is not an added one
        Benchmark(changed, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"]).done("joint", 0)
    # a fresh machine: the checkpoint is gone, so a newly added variant cannot be scored; the run refuses, the report keeps it
    (tmp_path / "work" / "joint" / "seed0" / "last.ckpt").unlink()
    fresh = BenchProfile(seeds=[0], methods=["joint"], variants=variants, **TINY,
                         inference_variants={**more.inference_variants, "k3": {"num_samples": 3}})
    gone = Benchmark(fresh, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"])
    with pytest.raises(ValueError, match=r"lacks the inference variants \['k3'\] and its checkpoint .* is gone"):
        gone.done("joint", 0)
    assert gone.reportable("joint", 0) and "k3" not in _load(path)["inference_variants"]


def test_a_changed_data_recipe_invalidates_finished_runs(tmp_path):
    recipe = tmp_path / "data.yaml"
    recipe.write_text("data:\n  class_path: unisegdiff.data.LesionDataModule\n  init_args: {augment: false}\n")
    profile = BenchProfile(seeds=[0], methods=["unet"], **{**TINY, "data_recipe": str(recipe)})
    bench = Benchmark(profile, None, tmp_path / "out", tmp_path / "work", "tiny", ["phantom_ct"])
    bench.run()
    assert bench.done("unet", 0)
    recipe.write_text("data:\n  class_path: unisegdiff.data.LesionDataModule\n  init_args: {augment: true}\n")
    with pytest.raises(ValueError, match="other settings"):
        bench.done("unet", 0)


def test_small_sets_are_cross_validated_over_every_image_once(tmp_path):
    """small_set_folds 2: the set with < min_images test images is scored by 2 more trainings per method, each on
    one fold, so each of its images is a test image exactly once; the large set keeps its split; the report gets a
    cross-validation section with paired statistics over those images."""
    from unisegdiff.benchmark.report import write_report

    root = write_phantom_root(tmp_path / "root", n_per_dataset=24, size=32, seed=0)
    for stem in [f"mr_{i:04d}" for i in range(8, 24)]:  # phantom_mr keeps 8 pairs: 1-2 test images, a small set
        for sub in ("images", "masks"):
            for path in (root / "phantom_mr" / sub).glob(f"{stem}.*"):
                path.unlink()
    tiny = {**TINY, "max_per_dataset": None}
    profile = BenchProfile(seeds=[0], methods=["unet", "staged"], small_set_folds=2, min_images=3, **tiny)
    bench = Benchmark(profile, str(root), tmp_path / "out", tmp_path / "work", "tiny", DATASETS)
    dm = bench.datamodule(0)
    counts = {d: len(parts["test"]) for d, parts in dm.splits().items()}
    every = {d: sorted(sum(parts.values(), [])) for d, parts in dm.splits().items()}
    small = sorted(d for d, n in counts.items() if n < 3)
    assert small and len(small) < len(DATASETS), f"fixture needs one small and one large set, test counts {counts}"
    written = bench.run()
    runs = {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in written}
    for method, run in runs.items():
        cv = run["cross_validation"]
        assert cv["folds"] == 2 and cv["datasets"] == small and len(cv["train"]) == 2
        assert all(t["steps"] == 4 for t in cv["train"]), method  # the same budget per fold (phase 1 + 2 for staged)
        for d in small:
            assert sorted(r["stem"] for r in cv["images"] if r["dataset"] == d) == every[d]  # each image once
        assert {r["fold"] for r in cv["images"]} == {0, 1} and set(cv["pixel"]) == set(small)
        assert (tmp_path / "work" / method / "seed0" / "cv1" / "last.ckpt").is_file()
    assert (tmp_path / "work" / "condition" / "seed0_steps2_cv0" / "last.ckpt").is_file()  # phase 1 per fold
    paths = write_report(written, tmp_path / "report", "tiny", compare=["staged"], min_images=3)
    results = json.loads(paths["results.json"].read_text())
    cv = results["cross_validation"]
    assert cv["folds"] == [2] and {d: v["n"] for d, v in cv["datasets"].items()} == {d: len(every[d]) for d in small}
    assert set(cv["paired_dice"]["staged"]["datasets"]) == set(small)
    assert "## Small sets, 2-fold cross-validation" in paths["README.md"].read_text()
    assert "cross_validation" in paths["per_image.csv"].read_text()
    with pytest.raises(ValueError, match="small_set_folds must be 0"):
        BenchProfile(small_set_folds=1)


def test_uncertainty_sources_rescore_the_reported_segmentation(finished, tmp_path, bench_script):
    """bench/uncertainty_sources.py on the finished checkpoints: its segmentation and entropy AUROC are the result
    files' own (the maps are compared on fixed error pixels), and every map and the U-Net ensemble are reported."""
    sources = bench_script("uncertainty_sources")
    bench, _ = finished
    results = sources.run(bench, 0, 1, ["staged"], k_many=3)
    for method in ("unet", "staged"):
        stored = _load(bench.result_path(method, 0))
        for name in DATASETS:
            dice = [i["dice"] for i in stored["images"] if i["dataset"] == name]
            assert results[method][name]["dice"] == pytest.approx(dice, abs=1e-6)
            pooled = results[method][name]["maps"]["entropy"]["pooled"]
            assert pooled == pytest.approx(stored["pixel"][name]["uncertainty_auroc"], abs=1e-9, nan_ok=True)
    assert set(results["staged"]["phantom_ct"]["maps"]) == {"entropy", "entropy K=3", "sample variance K=3", "|condition - head|",
                                                          "entropy + |condition - head|"}
    ensemble = results["unet ensemble (seeds 0+1)"]["phantom_ct"]
    assert set(ensemble["maps"]) == {"ensemble entropy", "ensemble disagreement"} and len(ensemble["dice"]) == 2
    sources.write(results, "tiny", 0, tmp_path, min_images=1)
    report = (tmp_path / "uncertainty_sources.md").read_text()
    assert report.count("| staged |") == 10 and "| unet ensemble (seeds 0+1) |" in report
    assert _load(tmp_path / "uncertainty_sources.json")["results"]["staged"]["phantom_mr"]["entropy K=3"]["dice"] >= 0


def test_uncertainty_sources_table_statistics(tmp_path, bench_script):
    """kept-80% drops the most uncertain fifth; the per-image AUROC difference is paired image by image against the
    method's own entropy (a constant +0.05 gives an exact interval); images with an undefined AUROC are left out."""
    sources = bench_script("uncertainty_sources")
    dice = [0.1 * (i + 1) for i in range(10)]
    base = [0.8 + 0.01 * i for i in range(10)]
    better = [a + 0.05 for a in base]
    better[3] = float("nan")  # an image without error pixels has no AUROC
    d = sources.finish({"dice": dice, "stems": [f"s{i}" for i in range(10)], "maps": {
        "entropy": {"pooled": 0.9, "auroc": base, "mean": [1 - x for x in dice]},  # the worst images are the most uncertain
        "other": {"pooled": 0.95, "auroc": better, "mean": dice}}})  # ... and here the best ones
    assert d["maps"]["entropy"]["kept80"] == pytest.approx(sum(dice[2:]) / 8)
    assert d["maps"]["other"]["kept80"] == pytest.approx(sum(dice[:8]) / 8)
    results = {"unet": {"set": d}, "m": {"set": d}}
    sources.write(results, "tiny", 0, tmp_path, min_images=10)
    report = (tmp_path / "uncertainty_sources.md").read_text()
    assert "| m | 0.550 | other | 0.950 | +0.050 [+0.050, +0.050], p=0.0039 | 0.450 |" in report
    assert "| m | 0.550 | entropy | 0.900 | — | 0.650 |" in report
    sources.write(results, "tiny", 0, tmp_path, min_images=11)  # too few test images: the dataset is left out
    assert "## set" not in (tmp_path / "uncertainty_sources.md").read_text()


def test_threshold_tuning_picks_on_validation_and_pairs_like_the_report(finished, tmp_path, bench_script):
    """bench/threshold_tuning.py on the finished checkpoints: at 0.5 it reproduces the result files (checked inside),
    its paired difference at 0.5 is the seed-averaged per-image difference, and the threshold comes from validation."""
    tuning = bench_script("threshold_tuning")
    bench, _ = finished
    scores = {m: {s: tuning.score_model(bench, m, s) for s in (0, 1)} for m in ("unet", "staged")}
    for m in scores:
        for s, r in scores[m].items():
            assert r["threshold"] in tuning.GRID and r["val_images"] > 0
            assert set(r["test_tuned"]) == set(r["test_at_half"])
    half = tuning.compare(scores, "staged", "test_at_half")
    for name in DATASETS:
        runs = {(m, s): {(i["dataset"], i["stem"]): i["dice"] for i in _load(bench.result_path(m, s))["images"] if i["dataset"] == name}
                for m in ("unet", "staged") for s in (0, 1)}
        keys = sorted(runs[("unet", 0)])
        by_hand = sum((runs[("staged", 0)][k] + runs[("staged", 1)][k]) / 2 - (runs[("unet", 0)][k] + runs[("unet", 1)][k]) / 2
                      for k in keys) / len(keys)
        assert half[name]["mean"] == pytest.approx(by_hand, abs=1e-9) and half[name]["seeds"] == [0, 1]
    tuning.write(scores, "tiny", tmp_path, min_images=1)
    assert "| staged | phantom_ct (n=2) | 0, 1 |" in (tmp_path / "threshold_tuning.md").read_text()
    flat = {("d", str(i)): np.full(len(tuning.GRID), 0.5) for i in range(3)}  # every threshold ties: keep 0.5
    assert tuning.best_threshold(flat) == 0.5
    peaked = {("d", "a"): np.array([1.0 if t == 0.3 else 0.0 for t in tuning.GRID])}
    assert tuning.best_threshold(peaked) == 0.3
