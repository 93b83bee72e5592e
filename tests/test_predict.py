"""Tests of ``predict``: outputs in the input's geometry, PNG for 2D, outputs never mixed with inputs, stem
clashes refused, every input validated first, an interrupted run completed by a rerun, the old config path."""

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from unisegdiff import predict_writer
from unisegdiff.cli import main
from unisegdiff.data.errors import DataError
from unisegdiff.models import DeterministicSegmenter, StagedDiffusionSegmenter
from unisegdiff.predict import PredictionDataModule, PredictionWriter

SMALL_FEATURES = (4, 8, 8, 16, 16, 4)


def _volume(path, size=(40, 36, 5)):
    arr = np.random.default_rng(0).normal(40, 30, size[::-1]).astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.8, 2.5))
    img.SetOrigin((-12.5, 30.0, 4.0))
    img.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(img, str(path))
    return img


def _png(path, size=(50, 40)):
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def _predict(model, inputs, out, **kw):
    dm = PredictionDataModule(inputs=[str(i) for i in inputs], output_dir=str(out), image_size=32, modality="auto", **kw)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[PredictionWriter()], accelerator="cpu")
    trainer.predict(model, datamodule=dm, return_predictions=False)
    return dm


def test_nifti_outputs_keep_geometry_exactly_and_png_keeps_size(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _volume(src / "case1.nii.gz")
    vol = sitk.ReadImage(str(src / "case1.nii.gz"))  # NIfTI stores geometry as float32: compare to what is on disk
    _png(src / "photo.png")
    model = StagedDiffusionSegmenter(condition_features=SMALL_FEATURES, denoiser_channels=(4, 8, 8, 16), num_samples=2)
    _predict(model, [src], tmp_path / "out")
    for kind in ("mask", "prob", "uncertainty"):
        out = sitk.ReadImage(str(tmp_path / "out" / f"case1_{kind}.nii.gz"))
        assert out.GetSize() == vol.GetSize()
        assert out.GetSpacing() == vol.GetSpacing() and out.GetOrigin() == vol.GetOrigin() and out.GetDirection() == vol.GetDirection()
        png = Image.open(tmp_path / "out" / f"photo_{kind}.png")
        assert png.size == (50, 40)
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "case1_mask.nii.gz")))
    assert set(np.unique(mask)) <= {0, 1}
    assert set(np.unique(np.array(Image.open(tmp_path / "out" / "photo_mask.png")))) <= {0, 255}
    assert not [p for p in (tmp_path / "out").iterdir() if "tmp" in p.name]  # no temp files left behind


def test_same_stem_inputs_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _png(tmp_path / "a" / "x.png")
    _png(tmp_path / "b" / "x.png")
    with pytest.raises(DataError, match="shares the stem 'x'"):
        PredictionDataModule(inputs=[str(tmp_path / "a"), str(tmp_path / "b")], output_dir=str(tmp_path / "out"))


def test_outputs_never_overwrite_inputs_or_foreign_files(tmp_path):
    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "x.png")
    _png(tmp_path / "x_mask.png")  # an input named like an output of x.png, given explicitly, in the output folder
    with pytest.raises(DataError, match="outputs would mix with inputs"):
        PredictionDataModule(inputs=[str(tmp_path / "in" / "x.png"), str(tmp_path / "x_mask.png")], output_dir=str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_prob.png").write_bytes(b"earlier result")  # not a folder predict wrote (no predict_record.json)
    with pytest.raises(DataError, match="x_prob.png: output already exists"):
        PredictionDataModule(inputs=[str(tmp_path / "in" / "x.png")], output_dir=str(out))
    assert (out / "x_prob.png").read_bytes() == b"earlier result"


@pytest.mark.parametrize("output", [".", "sub", "sub/deeper"])
def test_output_dir_in_an_input_folder_is_refused(tmp_path, output):
    _png(tmp_path / "x.png")
    with pytest.raises(DataError, match="outputs would mix with inputs"):
        PredictionDataModule(inputs=[str(tmp_path)], output_dir=str(tmp_path / output))
    with pytest.raises(DataError, match="is the folder of the input"):
        PredictionDataModule(inputs=[str(tmp_path / "x.png")], output_dir=str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_outputs_in_a_folder_are_not_read_as_inputs(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("x.png", "x_mask.png", "x_prob.png", "x_uncertainty.png"):
        _png(tmp_path / "in" / name)
    dm = PredictionDataModule(inputs=[str(tmp_path / "in")], output_dir=str(tmp_path / "out"))
    assert [p.name for p in dm.inputs] == ["x.png"]


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(DataError, match="nope.png: input does not exist"):
        PredictionDataModule(inputs=[str(tmp_path / "nope.png")])
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(DataError, match="notes.docx: input has an unsupported extension"):
        PredictionDataModule(inputs=[str(tmp_path / "notes.docx")])


def test_every_input_is_validated_before_predicting(tmp_path):
    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    _volume(tmp_path / "in" / "nan.nii.gz")
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "in" / "nan.nii.gz")))
    arr[0, 0, 0] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(tmp_path / "in" / "nan.nii.gz"))
    with pytest.raises(DataError, match="2 input\\(s\\)") as info:
        PredictionDataModule(inputs=[str(tmp_path / "in")], output_dir=str(tmp_path / "out"))
    assert "bad.png" in str(info.value) and "nan.nii.gz" in str(info.value) and "good.png" not in str(info.value)
    assert not (tmp_path / "out").exists()
    dm = PredictionDataModule(inputs=[str(tmp_path / "in")], output_dir=str(tmp_path / "out"), on_error="skip")
    assert [p.name for p in dm.inputs] == ["good.png"]
    listed = json.loads((tmp_path / "out" / "failures.json").read_text())["failures"]
    assert sorted(Path(f["input"]).name for f in listed) == ["bad.png", "nan.nii.gz"]


def test_interrupted_run_is_completed_by_a_rerun(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    for i in range(3):
        _png(tmp_path / "in" / f"c{i}.png")
    out = tmp_path / "out"
    model = DeterministicSegmenter(features=SMALL_FEATURES)
    calls = {"n": 0}
    real_write = predict_writer.write_image

    def dying_write(array, geometry, path, overwrite=False):
        calls["n"] += 1
        if calls["n"] == 5:  # the second output of the second case: the process dies mid-write
            (Path(path).parent / f".tmp-dead-{Path(path).name}").write_bytes(b"half")  # what a kill leaves
            raise KeyboardInterrupt
        return real_write(array, geometry, path, overwrite=overwrite)

    monkeypatch.setattr(predict_writer, "write_image", dying_write)
    with pytest.raises(BaseException):
        _predict(model, [tmp_path / "in"], out)
    assert not (out / "c1_mask.png").exists() and (out / "c1_uncertainty.png").exists()  # mask last: no lone mask
    monkeypatch.setattr(predict_writer, "write_image", real_write)
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("c0_*")}
    dm = _predict(model, [tmp_path / "in"], out)  # the rerun completes the folder instead of refusing
    assert [c.path.name for c in dm.done] == ["c0.png"] and [c.path.name for c in dm.cases] == ["c1.png", "c2.png"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("predict_")) == sorted(
        f"c{i}_{k}.png" for i in range(3) for k in ("mask", "prob", "uncertainty"))
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("c0_*")} == done  # finished cases are kept as they were


def test_cli_predict_with_model_config_and_predict_yaml(tmp_path):
    model = DeterministicSegmenter(features=SMALL_FEATURES)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_steps=0)
    trainer.strategy.connect(model)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    _png(tmp_path / "img.png")
    main(["predict", "--model", "unisegdiff.models.DeterministicSegmenter", "--model.init_args.features", str(list(SMALL_FEATURES)),
          "--config", "configs/unisegdiff/predict.yaml", "--ckpt_path", str(ckpt),
          "--data.inputs", f"[{tmp_path / 'img.png'}]", "--data.output_dir", str(tmp_path / "pred"), "--data.image_size", "32",
          "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path / "run")])
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["img_mask.png", "img_prob.png", "img_uncertainty.png",
                                                                     "predict_config.yaml", "predict_record.json"]
    assert not (tmp_path / "run").exists()  # the run's record is in the output folder
