"""Every YAML in configs/ parses with ``--print_config``; the CLI exposes its subcommands."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unisegdiff.cli import main

ROOT = Path(__file__).resolve().parents[2]
NOT_CLI = {"sweeps", "benchmark"}  # W&B sweep files and benchmark plans are tested by their own tools
NOT_CLI_FILES = {"registry.yaml"}  # the dataset registry is data for LesionDataModule, not a CLI config
# overlays: configs that change a few settings of a base config and are only used after it on the command line
OVERLAYS = {"staged_two_phase.yaml": ROOT / "configs" / "unisegdiff" / "staged.yaml"}
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if not NOT_CLI & set(p.parts) and p.name not in NOT_CLI_FILES)


def test_there_are_configs_for_each_half():
    folders = {p.parent.name for p in CONFIGS}
    assert {"unisegdiff", "data"} <= folders


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_parses_with_print_config(config, capsys):
    base = ["--config", str(OVERLAYS[config.name])] if config.name in OVERLAYS else []
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *base, "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    source = yaml.safe_load(config.read_text())
    for section in ("model", "data"):
        if isinstance(source.get(section), dict) and "class_path" in source[section]:
            assert printed[section]["class_path"].endswith(source[section]["class_path"].split(".")[-1])


def test_fit_print_config_without_config(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--print_config"])
    assert "trainer:" in capsys.readouterr().out


def test_console_script_and_module_help():
    out = subprocess.run([sys.executable, "-m", "unisegdiff", "--help"], capture_output=True, text=True, check=True).stdout
    for word in ("fit", "validate", "test", "predict", "data", "sweep-dry-run"):
        assert word in out


def test_unknown_model_class_is_a_clear_error(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--model", "unisegdiff.models.NoSuchModel", "--print_config"])
    assert "NoSuchModel" in capsys.readouterr().err


def _tiny_fit(config: str, root: Path, *model_args: str) -> None:
    """One epoch of at most 2 batches of ``config`` on 6 phantom images of 32x32, checkpointing into ``root``."""
    main(["fit", "--config", str(ROOT / "configs" / config), "--config", str(ROOT / "configs/data/phantoms.yaml"),
          "--trainer.default_root_dir", str(root), "--trainer.logger", "false", "--trainer.max_epochs", "1",
          "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
          *model_args, "--data.init_args.phantom_samples", "6", "--data.init_args.image_size", "32",
          "--data.init_args.datasets", "[phantom_ct]"])


def test_stage_configs_share_the_fit_defaults_and_checkpoint_into_their_root_dir(tmp_path):
    """configs/trainer/fit_defaults.yaml gives every 2D stage its callbacks; StageCheckpoint writes into default_root_dir."""
    root = tmp_path / "stage"
    _tiny_fit("unisegdiff/condition.yaml", root, "--model.init_args.features", "[4, 8, 8, 16, 16, 4]")
    assert (root / "last.ckpt").is_file() and (root / "best.ckpt").is_file() and (root / "run_record.json").is_file()
    pasted = [p.name for p in (ROOT / "configs" / "unisegdiff").glob("*.yaml") if "StageCheckpoint" in p.read_text() or "ModelCheckpoint" in p.read_text()]
    assert sorted(pasted) == ["demo.yaml", "demo_condition.yaml"]  # only the demo keeps its own (shorter) figure interval


def test_last_checkpoint_is_the_last_step_even_when_validation_does_not_improve(tmp_path):
    """issue 17: last.ckpt must reflect the last step trained, not the step of the best validation."""
    import torch

    from unisegdiff.cli import main as cli_main

    root = tmp_path / "stage"
    cli_main(["fit", "--config", str(ROOT / "configs/unisegdiff/condition.yaml"), "--config", str(ROOT / "configs/data/phantoms.yaml"),
              "--trainer.default_root_dir", str(root), "--trainer.logger", "false", "--trainer.max_epochs", "4",
              "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
              "--model.init_args.features", "[4, 8, 8, 16, 16, 4]", "--model.init_args.lr", "0.0",  # lr 0: validation never improves
              "--data.init_args.phantom_samples", "6", "--data.init_args.image_size", "32", "--data.init_args.datasets", "[phantom_ct]"])
    # one batch per epoch (the phantom_ct train split is smaller than a batch): 4 epochs = 4 steps
    assert torch.load(root / "last.ckpt", weights_only=True)["global_step"] == 4  # was 1 when last.ckpt followed best.ckpt
    assert torch.load(root / "best.ckpt", weights_only=True)["global_step"] == 1


def test_a_test_run_keeps_the_fit_config_and_run_record(tmp_path):
    """issue 18: `unisegdiff test` used to overwrite the fit run's config.yaml and run_record.json."""
    from unisegdiff.cli import main as cli_main

    root = tmp_path / "stage"
    common = ["--config", str(ROOT / "configs/unisegdiff/condition.yaml"), "--config", str(ROOT / "configs/data/phantoms.yaml"),
              "--trainer.default_root_dir", str(root), "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
              "--model.init_args.features", "[4, 8, 8, 16, 16, 4]", "--data.init_args.phantom_samples", "6",
              "--data.init_args.image_size", "32", "--data.init_args.datasets", "[phantom_ct]"]
    cli_main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"])
    fit_config = (root / "config.yaml").read_bytes()
    cli_main(["test", *common, "--ckpt_path", str(root / "last.ckpt")])
    assert (root / "config.yaml").read_bytes() == fit_config and (root / "test_config.yaml").is_file()


def _printed_model(capsys, *configs: str) -> dict:
    with pytest.raises(SystemExit):
        main(["fit", *[a for c in configs for a in ("--config", str(ROOT / "configs" / c))], "--print_config"])
    return yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]


def test_staged_default_trains_end_to_end_and_the_overlay_gives_the_two_phase_plan(capsys):
    """staged.yaml alone: one fit, the condition network trained from step 0 with the diffusion loss flowing into it,
    one-call inference; with staged_two_phase.yaml after it: a frozen phase-1 checkpoint and the plan's calls."""
    default = _printed_model(capsys, "unisegdiff/staged.yaml")
    assert (default["freeze_condition"], default["denoiser_trains_condition"], default["condition_ckpt"]) == (False, True, None)
    assert default["sampling_steps"] == [0, 0, 1]
    two_phase = _printed_model(capsys, "unisegdiff/staged.yaml", "unisegdiff/staged_two_phase.yaml")
    assert (two_phase["freeze_condition"], two_phase["condition_ckpt"], two_phase["sampling_steps"]) == (True, "runs/condition/last.ckpt", None)
    assert two_phase["stages"] == default["stages"]  # one plan, read from staged.yaml


def test_staged_default_fits_in_one_command_without_a_condition_checkpoint(tmp_path):
    root = tmp_path / "staged"
    _tiny_fit("unisegdiff/staged.yaml", root, "--model.init_args.condition_features", "[4, 8, 8, 16, 16, 4]",
              "--model.init_args.denoiser_channels", "[4, 8, 8, 16]", "--model.init_args.num_samples", "1")
    from unisegdiff.io import read_checkpoint

    state = read_checkpoint(root / "last.ckpt")
    assert state["global_step"] >= 1 and state["hyper_parameters"]["freeze_condition"] is False
