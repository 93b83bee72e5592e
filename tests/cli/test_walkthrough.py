"""The README's five-minute walk-through, run as written after a tiny demo-like training (the demo configs with small
budgets), and the demo's closing summary read from the files those runs write."""

import re
import shlex
from pathlib import Path

import pytest

from unisegdiff import demo_summary
from unisegdiff.cli import main

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Five minutes after `make demo`"
TINY = ["--trainer.logger", "false", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1", "--data.init_args.phantom_samples", "6",
        "--data.init_args.image_size", "32"]
FEATURES = "[4, 8, 8, 16, 16, 4]"


def walkthrough_commands() -> list[str]:
    """The commands of the fenced block under the walk-through heading, comments removed."""
    text = (ROOT / "README.md").read_text()
    assert HEADING in text, f"README.md lost its walk-through heading {HEADING!r}"
    block = re.search(r"```\n(.*?)```", text[text.index(HEADING):], re.S)
    assert block, "no fenced block under the walk-through heading"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.split("#", 1)[0].strip()]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A folder where the demo's three steps ran (tiny budgets, no logger: figures land in runs/demo/*/figures)."""
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        condition = ["--config", str(ROOT / "configs/unisegdiff/demo_condition.yaml"), *TINY, "--model.init_args.features", FEATURES]
        staged = ["--config", str(ROOT / "configs/unisegdiff/demo.yaml"), *TINY, "--model.init_args.condition_features", FEATURES,
                  "--model.init_args.denoiser_channels", "[4, 8, 8, 16]", "--model.init_args.num_samples", "2"]
        assert main(["fit", *condition]) == 0
        assert main(["fit", *staged]) == 0
        assert main(["test", *staged, "--ckpt_path", "runs/demo/staged/last.ckpt"]) == 0
    return folder


def test_demo_summary_says_what_was_trained_the_test_dice_figures_and_next_commands(demo_dir, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    capsys.readouterr()
    assert demo_summary.main(["runs/demo"]) == 0
    out = capsys.readouterr().out
    assert "DeterministicSegmenter): 2 steps, 1 epochs" in out and "StagedDiffusionSegmenter): 2 steps, 1 epochs" in out
    dice = re.search(r"test Dice against the phantom ground truth: macro (\d\.\d+)", out)
    assert dice and 0.0 <= float(dice.group(1)) <= 1.0
    figures = re.findall(r"figures +[a-z ]+: (\S+)", out)
    assert len(figures) == 2 and all(Path(f).is_file() for f in figures)
    assert "runs/demo/staged/figures/overlay_epoch000.png" in figures
    assert ".venv/bin/unisegdiff predict runs/demo/staged/last.ckpt <your images> -o predictions" in out
    assert ".venv/bin/unisegdiff score predictions <your masks>" in out and "make benchmark" in out


def test_demo_summary_names_what_is_missing(tmp_path, capsys):
    assert demo_summary.main([str(tmp_path / "runs/demo")]) == 1
    assert "fit_summary.json" in capsys.readouterr().err


def test_readme_walkthrough_runs_as_written(demo_dir, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    commands = walkthrough_commands()
    assert commands[0] == "source .venv/bin/activate"  # the Makefile's VENV; every other line is run below
    assert (ROOT / "Makefile").read_text().count("VENV   ?= .venv") == 1
    for command in commands[1:]:
        words = shlex.split(command)
        if words[0] == "ls":
            assert all((demo_dir / w).is_dir() and any((demo_dir / w).iterdir()) for w in words[1:]), command
            continue
        assert words[0] in ("unisegdiff", ".venv/bin/unisegdiff"), f"README walk-through runs {command!r}: teach this test it"
        assert main(words[1:]) == 0, command
    listed = {p.name for p in (demo_dir / "predictions").iterdir()}
    assert {"dermoscopy_0000_mask.png", "dermoscopy_0000_prob.png", "dermoscopy_0000_uncertainty.png"} <= listed
    assert {"per_image.csv", "summary.json"} <= {p.name for p in (demo_dir / "predictions/scores").iterdir()}
    assert any(p.name.startswith("overlay_epoch") for p in (demo_dir / "runs/demo/staged/figures").iterdir())
