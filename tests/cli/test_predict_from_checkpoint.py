"""``unisegdiff predict`` from a checkpoint alone (every kind the project writes), the short form, overrides,
settings taken from training, the run record inside the output folder, and checkpoints that are refused."""

import json
import sys

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from unisegdiff.cli import main

OUTPUTS = ["a_mask.png", "a_prob.png", "a_uncertainty.png"]
QUIET = ["--trainer.enable_progress_bar", "false"]


def _outputs(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".png")


@pytest.mark.parametrize("kind", ["unet", "staged", "eps", "x0"])
def test_predict_with_only_ckpt_path_and_inputs(kind, checkpoints, tmp_path, monkeypatch, write_png):
    monkeypatch.chdir(tmp_path)  # not the training directory: the phase-1 file is gone too
    write_png(tmp_path / "scans" / "a.png")
    rc = main(["predict", "--ckpt_path", checkpoints[kind], "--data.inputs", "[scans/]", "--data.output_dir", "out", *QUIET])
    assert rc == 0
    assert _outputs(tmp_path / "out") == OUTPUTS
    assert Image.open(tmp_path / "out" / "a_mask.png").size == (50, 40)
    config = yaml.safe_load((tmp_path / "out" / "predict_config.yaml").read_text())
    assert config["data"]["init_args"]["image_size"] == 32 and config["data"]["init_args"]["channels"] == 3  # from training
    assert config["data"]["init_args"]["modality"] == "phantom_ct"
    record = json.loads((tmp_path / "out" / "predict_record.json").read_text())
    assert record["status"] == "complete" and record["checkpoint"] == checkpoints[kind] and record["written"] == 1
    assert not (tmp_path / "predictions").exists() and not (tmp_path / "config.yaml").exists()  # nothing in the CWD


def test_short_form_and_config_override(checkpoints, tmp_path, write_png):
    write_png(tmp_path / "scans" / "a.png")
    write_png(tmp_path / "b.png", seed=2)
    rc = main(["predict", checkpoints["staged"], str(tmp_path / "scans"), str(tmp_path / "b.png"), "-o", str(tmp_path / "out"),
               "--model.init_args.num_samples", "1", *QUIET])
    assert rc == 0
    assert _outputs(tmp_path / "out") == sorted(OUTPUTS + ["b_mask.png", "b_prob.png", "b_uncertainty.png"])
    config = yaml.safe_load((tmp_path / "out" / "predict_config.yaml").read_text())
    assert config["model"]["init_args"]["num_samples"] == 1  # the command line beats the checkpoint
    assert config["model"]["init_args"]["denoiser_channels"] == [4, 8, 8, 16]  # the rest comes from the checkpoint


def test_short_form_needs_inputs_and_output(checkpoints, tmp_path, capsys):
    assert main(["predict", checkpoints["unet"], "-o", str(tmp_path / "out")]) == 2
    assert "usage: unisegdiff predict CKPT INPUT... -o OUTPUT_DIR" in capsys.readouterr().err
    assert main(["predict", checkpoints["unet"], str(tmp_path)]) == 2
    assert "no output folder" in capsys.readouterr().err


def test_changed_training_setting_warns(checkpoints, tmp_path, capsys, write_png):
    write_png(tmp_path / "scans" / "a.png")
    rc = main(["predict", checkpoints["unet"], str(tmp_path / "scans"), "-o", str(tmp_path / "out"), "--data.image_size", "48", *QUIET])
    assert rc == 0
    err = capsys.readouterr().err
    assert "data.image_size=48 differs from the training value 32" in err
    assert "channels" not in err.split("warning")[-1]  # only the changed setting is named


def test_record_lives_in_the_output_folder_and_training_records_stay(checkpoints, tmp_path, monkeypatch, write_png):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("fit: record\n")
    write_png(tmp_path / "scans" / "a.png")
    assert main(["predict", checkpoints["unet"], "scans", "-o", "run", *QUIET]) == 0  # a training run folder as output
    assert (tmp_path / "run" / "config.yaml").read_text() == "fit: record\n"
    assert (tmp_path / "run" / "predict_config.yaml").is_file() and (tmp_path / "run" / "predict_record.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "scans"]


def test_skip_mode_lists_failures_and_exits_nonzero(checkpoints, tmp_path, capsys, write_png):
    write_png(tmp_path / "scans" / "a.png")
    (tmp_path / "scans" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rc = main(["predict", checkpoints["unet"], str(tmp_path / "scans"), "-o", str(tmp_path / "out"), "--data.on_error", "skip", *QUIET])
    assert rc == 1
    assert _outputs(tmp_path / "out") == OUTPUTS
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())["failures"]
    assert [f["input"] for f in failures] == [str(tmp_path / "scans" / "broken.png")] and "decode" in failures[0]["error"]
    assert "1 input(s) skipped" in capsys.readouterr().err


def test_fail_mode_names_every_bad_input_before_predicting(checkpoints, tmp_path, capsys, write_png):
    write_png(tmp_path / "scans" / "a.png")
    (tmp_path / "scans" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "scans" / "empty.png").write_bytes(b"")
    assert main(["predict", checkpoints["unet"], str(tmp_path / "scans"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "2 input(s)" in err and "broken.png" in err and "empty.png" in err and "--data.on_error skip" in err
    assert not (tmp_path / "out").exists()


def test_output_dir_equal_to_input_folder_is_refused(checkpoints, tmp_path, capsys, write_png):
    write_png(tmp_path / "scans" / "a.png")
    before = sorted((tmp_path / "scans").iterdir())
    assert main(["predict", checkpoints["unet"], str(tmp_path / "scans"), "-o", str(tmp_path / "scans")]) == 2
    assert "outputs would mix with inputs" in capsys.readouterr().err
    assert sorted((tmp_path / "scans").iterdir()) == before


def _checkpoint_naming(path, class_path):
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {"_class_path": class_path}}, path)
    return str(path)


@pytest.mark.parametrize("class_path", ["this.s", "trap_module_for_ckpt.Model", "unisegdiff.no_such_module.Model"])
def test_foreign_class_path_is_refused_before_import(class_path, tmp_path, monkeypatch, capsys, write_png):
    marker = tmp_path / "imported.txt"
    (tmp_path / "trap_module_for_ckpt.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    top = class_path.split(".")[0]
    was_loaded = top in sys.modules
    ckpt = _checkpoint_naming(tmp_path / "foreign.ckpt", class_path)
    write_png(tmp_path / "scans" / "a.png")
    assert main(["predict", ckpt, str(tmp_path / "scans"), "-o", str(tmp_path / "out")]) == 2
    assert f"names the model class {class_path!r}, which is not part of unisegdiff" in capsys.readouterr().err
    assert not marker.exists()
    if not was_loaded:
        assert top not in sys.modules


def test_non_unisegdiff_checkpoints_get_a_clear_error(tmp_path, capsys, write_png):
    write_png(tmp_path / "scans" / "a.png")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {"lr": 0.1}}, plain)
    text = tmp_path / "text.ckpt"
    text.write_text("hello")
    for ckpt, message in [(plain, "not a unisegdiff checkpoint"), (text, "cannot be read as a weights-only torch checkpoint"),
                          (tmp_path / "missing.ckpt", "no such file")]:
        assert main(["predict", "--ckpt_path", str(ckpt), "--data.inputs", f"[{tmp_path / 'scans'}]", "--data.output_dir", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and str(ckpt.name) in err


def test_masks_follow_the_model(checkpoints, tmp_path, write_png):
    """Deterministic U-Net predictions are reproducible through the CLI: two runs, same bytes."""
    write_png(tmp_path / "scans" / "a.png")
    for out in ("o1", "o2"):
        assert main(["predict", checkpoints["unet"], str(tmp_path / "scans"), "-o", str(tmp_path / out), *QUIET]) == 0
    assert np.array_equal(np.array(Image.open(tmp_path / "o1" / "a_prob.png")), np.array(Image.open(tmp_path / "o2" / "a_prob.png")))


def test_3d_checkpoint_is_refused_clearly(tmp_path, capsys, write_png):
    from unisegdiff.models import DeterministicSegmenter

    model = DeterministicSegmenter(spatial_dims=3, in_channels=1, features=(4, 8, 8, 16, 16, 4))
    ckpt = tmp_path / "model3d.ckpt"
    hparams = {**dict(model.hparams), "_class_path": "unisegdiff.models.deterministic.DeterministicSegmenter"}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams}, ckpt)
    write_png(tmp_path / "scans" / "a.png")
    assert main(["predict", str(ckpt), str(tmp_path / "scans"), "-o", str(tmp_path / "out")]) == 2
    assert "a 3D model; `unisegdiff predict` segments with 2D models only" in capsys.readouterr().err
