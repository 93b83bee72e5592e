"""Result files are reused by what their run trained with: config reorganizations keep them valid, real changes do not."""

import json
from pathlib import Path

import pytest

from unisegdiff.benchmark.fingerprint import comparable_settings, model_with_defaults
from unisegdiff.benchmark.profile import BenchProfile
from unisegdiff.benchmark.protocol import Benchmark

ROOT = Path(__file__).resolve().parents[2]
STAGED = "unisegdiff.models.StagedDiffusionSegmenter"


def test_a_default_spelled_out_equals_it_omitted_and_another_value_differs():
    omitted = {"class_path": STAGED, "init_args": {"lr": 0.002}}
    spelled = {"class_path": STAGED, "init_args": {"lr": 0.002, "freeze_condition": True, "sampling_steps": None}}
    changed = {"class_path": STAGED, "init_args": {"lr": 0.002, "freeze_condition": False}}
    assert model_with_defaults(omitted) == model_with_defaults(spelled) != model_with_defaults(changed)
    assert model_with_defaults(omitted)["init_args"]["condition_features"] == [16, 32, 64, 128, 256, 16]  # JSON spelling
    assert omitted["init_args"] == {"lr": 0.002}  # the input is not modified


def test_recipe_names_and_overrides_do_not_count_the_composed_model_does():
    base = {"profile": {"budget_steps": 10, "recipes": {"staged": "unisegdiff/staged"}, "model_overrides": {}},
            "model": {"class_path": STAGED, "init_args": {"freeze_condition": True}}}
    split = {"profile": {"budget_steps": 10, "recipes": {"staged": ["unisegdiff/staged", "unisegdiff/staged_two_phase"]},
                         "model_overrides": {"freeze_condition": True}},
             "model": {"class_path": STAGED, "init_args": {"freeze_condition": True, "condition_loss_weight": 1.0}}}
    assert comparable_settings(base) == comparable_settings(split)
    other_condition = {**base, "profile": {**base["profile"], "recipes": {"condition": "my/condition"}}}
    assert comparable_settings(base | {"profile": {**base["profile"], "recipes": {"condition": "unisegdiff/condition"}}}) \
        != comparable_settings(other_condition)  # the condition recipe's name still counts
    renamed = {**base, "model": {"class_path": "unisegdiff.models.NoLongerThere", "init_args": {}}}
    assert comparable_settings(renamed)["model"] == renamed["model"]  # no ImportError: compared as stored
    assert comparable_settings(base) != comparable_settings({**base, "profile": {**base["profile"], "budget_steps": 20}})


def test_a_file_records_its_defaults_so_a_changed_class_default_invalidates_it():
    model = {"class_path": STAGED, "init_args": {"lr": 0.002}}
    today = model_with_defaults(model)
    then = json.loads(json.dumps(today))
    then["init_args"]["num_samples"] = 7  # the class's default when that file was written
    new_file = {"profile": {}, "model": model, "model_resolved": then}
    current = {"profile": {}, "model": model, "model_resolved": today}
    assert comparable_settings(new_file) != comparable_settings(current)
    old_file = {"profile": {}, "model": model}  # written before model_resolved: filled in with today's defaults
    assert comparable_settings(old_file) == comparable_settings(current)
    # an argument added to the class since the file was written takes its default: the file stays valid
    before_new_argument = {"profile": {}, "model": model,
                           "model_resolved": {**today, "init_args": {k: v for k, v in today["init_args"].items() if k != "self_condition"}}}
    assert comparable_settings(before_new_argument) == comparable_settings(current)


def test_recipes_take_a_config_or_a_list_merged_in_order():
    profile = BenchProfile()
    assert profile.recipe_files("staged") == ["unisegdiff/staged", "unisegdiff/staged_two_phase"]
    assert profile.recipe_files("unet") == ["unisegdiff/unet"]
    with pytest.raises(ValueError, match="recipes maps a key to a config name or a list"):
        BenchProfile(recipes={**BenchProfile().recipes, "staged": []})
    variant = BenchProfile(methods=["unet", "default"], variants={"default": {"recipe": "staged", "configs": ["unisegdiff/staged"]}})
    assert variant.configs_of("default") == ["unisegdiff/staged"] and variant.configs_of("staged") == variant.recipe_files("staged")
    assert variant.configs_of("unet_walltime") == ["unisegdiff/unet"]
    with pytest.raises(ValueError, match="optionally configs"):
        BenchProfile(variants={"v": {"recipe": "staged", "configs": "unisegdiff/staged"}})


@pytest.mark.parametrize("method", ["staged", "joint_e2e", "staged_joint", "unet"])
def test_committed_standard_results_still_match_the_shipped_recipes(method):
    """Editing configs/ in a way that changes what a committed standard run trained with fails here, before a rerun
    of the benchmark refuses hours of result files."""
    path = ROOT / "reports" / "benchmark" / "runs" / method / "seed1.json"
    if not path.is_file():
        pytest.skip(f"{path} is not committed")
    profile = BenchProfile.from_yaml(ROOT / "configs" / "benchmark" / "standard.yaml")
    bench = Benchmark(profile, None, ROOT / "reports" / "benchmark", ROOT / "runs" / "unused", "standard", ["phantom_ct"])
    stored = comparable_settings(json.loads(path.read_text())["settings"])
    current = comparable_settings(bench.settings(method))
    assert stored["model"] == current["model"]
    assert {k: v for k, v in stored["profile"].items()} == current["profile"]
