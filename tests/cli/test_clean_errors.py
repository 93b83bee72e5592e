"""User errors of ``unisegdiff`` (config values, data roots, checkpoints, paths) end in one short message naming the
file or field and exit status 2; the traceback only with ``UNISEGDIFF_DEBUG=1``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unisegdiff.cli import main

ROOT = Path(__file__).resolve().parents[2]
BAD_PLAN = """\
model:
  class_path: unisegdiff.models.StagedDiffusionSegmenter
  init_args:
    stages:
      - {name: segment, start: "six hundred", end: 1000, target: x0, loss: {dice: 1.0}, steps: 1}
      - {name: refine, start: 0, end: 600, target: x0, loss: {dice: 1.0}, steps: 1}
data: unisegdiff.data.LesionDataModule
"""


def _short(err: str) -> None:
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("unisegdiff ")]) == 1, err
    assert "UNISEGDIFF_DEBUG=1" in err


def test_stage_plan_value_of_wrong_type_names_stage_and_field(tmp_path, capsys):
    (tmp_path / "plan.yaml").write_text(BAD_PLAN)
    assert main(["fit", "--config", str(tmp_path / "plan.yaml"), "--trainer.max_steps", "1", "--trainer.logger", "false"]) == 2
    err = capsys.readouterr().err
    _short(err)
    assert "unisegdiff fit: error: StagePlan: stage #0 (segment): start must be an integer" in err and "'six hundred'" in err


def test_missing_data_root(tmp_path, capsys):
    missing = tmp_path / "no_such_root"
    assert main(["fit", "--config", str(ROOT / "configs/unisegdiff/demo_condition.yaml"), "--data.init_args.root", str(missing),
                 "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    _short(err)
    assert f"{missing}: dataset root does not exist" in err


def test_missing_condition_checkpoint_is_a_path_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # demo.yaml names runs/demo/condition/last.ckpt, which is not here
    assert main(["fit", "--config", str(ROOT / "configs/unisegdiff/demo.yaml"), "--trainer.logger", "false"]) == 2
    err = capsys.readouterr().err
    _short(err)
    assert "runs/demo/condition/last.ckpt" in err


def test_user_errors_of_extra_commands_exit_2(tmp_path, capsys):
    assert main(["score", str(tmp_path / "no_pred"), str(tmp_path / "no_gt")]) == 2
    assert "no_pred" in capsys.readouterr().err


def test_a_bug_is_not_hidden(monkeypatch):
    """An error raised inside a library (not a user error) keeps its traceback."""
    import unisegdiff.lightning_cli as lightning_cli

    def broken(*args, **kwargs):
        return {}["missing key"]

    monkeypatch.setattr(lightning_cli, "build_cli", broken)
    with pytest.raises(KeyError):
        main(["fit"])


@pytest.mark.parametrize("debug", [False, True])
def test_non_checkpoint_file_exits_2_and_traceback_only_with_debug(tmp_path, debug):
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    env = {"UNISEGDIFF_DEBUG": "1"} if debug else {}
    result = subprocess.run([sys.executable, "-m", "unisegdiff", "test", "--config", str(ROOT / "configs/unisegdiff/demo.yaml"),
                             "--ckpt_path", str(tmp_path / "notes.ckpt")], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "WANDB_MODE": "disabled", **env}, timeout=300)
    if debug:
        assert result.returncode == 1 and "Traceback" in result.stderr and "CheckpointError" in result.stderr
    else:
        assert result.returncode == 2, result.stderr
        _short(result.stderr)
        assert "notes.ckpt: cannot be read as a weights-only torch checkpoint" in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 4, result.stderr
