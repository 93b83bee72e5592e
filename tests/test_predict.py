"""Tests of ``predict``: outputs in the input's geometry, PNG for 2D, no overwrite of inputs,
stem clashes refused, nothing half-written, and the CLI path from a checkpoint."""

import lightning as L
import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

from unisegdiff.cli import main
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
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[PredictionWriter()])
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
    with pytest.raises(ValueError, match="share the stem 'x'"):
        PredictionDataModule(inputs=[str(tmp_path / "a"), str(tmp_path / "b")], output_dir=str(tmp_path / "out"))


def test_outputs_never_overwrite_inputs_or_existing_files(tmp_path):
    _png(tmp_path / "x_mask.png")  # an input that is named like an output of x.png
    _png(tmp_path / "x.png")
    with pytest.raises(ValueError, match="would overwrite an input"):
        PredictionDataModule(inputs=[str(tmp_path / "x.png"), str(tmp_path / "x_mask.png")], output_dir=str(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_prob.png").write_bytes(b"earlier result")
    with pytest.raises(FileExistsError, match="x_prob.png' already exists"):
        PredictionDataModule(inputs=[str(tmp_path / "x.png")], output_dir=str(out))
    assert (out / "x_prob.png").read_bytes() == b"earlier result"


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png' does not exist"):
        PredictionDataModule(inputs=[str(tmp_path / "nope.png")])
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(ValueError, match="notes.docx' has an unsupported extension"):
        PredictionDataModule(inputs=[str(tmp_path / "notes.docx")])


def test_cli_predict_from_checkpoint(tmp_path):
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
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["img_mask.png", "img_prob.png", "img_uncertainty.png"]
