"""Training behaviour: a tiny staged model overfits phantoms, resuming from a checkpoint continues
exactly like an uninterrupted run, and DDP (2 CPU processes, gloo) gives the single-process metrics."""

import lightning as L
import pytest
import torch

from unisegdiff.data import LesionDataModule
from unisegdiff.metrics import per_sample_metrics
from unisegdiff.models import StagedDiffusionSegmenter

TINY = dict(condition_features=(8, 16, 16, 32, 32, 8), denoiser_channels=(8, 16, 16, 32))


def _trainer(**kw):
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                    enable_checkpointing=False, num_sanity_val_steps=0)
    defaults.update(kw)
    return L.Trainer(**defaults)


def test_tiny_staged_model_overfits_phantoms():
    torch.manual_seed(0)
    dm = LesionDataModule(root=None, datasets=["phantom_dermoscopy"], image_size=32, batch_size=4, num_workers=0, phantom_samples=8, augment=False)
    dm.setup("fit")
    items = [dm.split_dataset("train")[i] for i in range(4)]
    image = torch.stack([it["image"] for it in items])
    mask = torch.stack([it["mask"] for it in items])
    model = StagedDiffusionSegmenter(freeze_condition=False, num_samples=2, **TINY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(200):
        loss, _ = model.diffusion_loss(image, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    fused = model.eval().predict_fused(image, generator=torch.Generator().manual_seed(0))
    dice = per_sample_metrics(fused.mask, mask)[:, 0]
    assert dice.mean() > 0.9, f"tiny staged model did not overfit 4 phantoms: Dice {dice.tolist()}"


class LossRecorder(L.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[trainer.global_step] = float(outputs["loss"])


def _phantoms(**kw):
    kw.setdefault("augment", False)
    kw.setdefault("num_workers", 0)
    return LesionDataModule(root=None, datasets=["phantom_ct", "phantom_mr"], image_size=32, batch_size=4, phantom_samples=12, **kw)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_last_checkpoint_continues_exactly(tmp_path, workers):
    """With workers the resumed run's first iterator prefetches before Lightning's set_epoch: the sampler is told
    the epoch when the loader is built (before the fix, 2 workers replayed epoch 0's draws: step 4 loss 1.420 vs 1.390)."""
    # augmentation on: its seeds come from the sampler's epoch draw, so a resume replays them exactly
    steps = dict(limit_train_batches=3, limit_val_batches=0)
    data = dict(augment=True, num_workers=workers)
    L.seed_everything(0)
    full = LossRecorder()
    _trainer(max_epochs=3, callbacks=[full], **steps).fit(StagedDiffusionSegmenter(lr=3e-3, **TINY), datamodule=_phantoms(**data))

    L.seed_everything(0)
    ckpt_cb = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    _trainer(max_epochs=1, callbacks=[ckpt_cb], enable_checkpointing=True, **steps).fit(StagedDiffusionSegmenter(lr=3e-3, **TINY), datamodule=_phantoms(**data))
    L.seed_everything(123)  # a different global seed must not matter: the RNG state comes from the checkpoint
    resumed = LossRecorder()
    _trainer(max_epochs=3, callbacks=[resumed], **steps).fit(StagedDiffusionSegmenter(lr=3e-3, **TINY), datamodule=_phantoms(**data), ckpt_path=str(tmp_path / "last.ckpt"))

    assert sorted(resumed.losses) == [4, 5, 6, 7, 8, 9]
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(full.losses[step], rel=1e-5, abs=1e-6), f"step {step}"
    # and the checkpoint loads with weights_only=True
    blob = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert "rng_state" in blob and blob["hyper_parameters"]["_class_path"].endswith("StagedDiffusionSegmenter")


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_a_max_steps_stop_mid_epoch_continues_exactly(tmp_path, workers):
    """Stopped by max_steps after the first batch of epoch 1 (steps 1-3: epoch 0), the resumed run trains that epoch's
    remaining batches on the same draws (steps 5-6) and then epoch 2 (7-9), like the uninterrupted run. Before the fix,
    last.ckpt was saved at the epoch's end and the resume jumped to epoch 2 (steps 5-7 on epoch 2's draws)."""
    from unisegdiff.callbacks import StageCheckpoint

    steps = dict(limit_train_batches=3, limit_val_batches=0)
    data = dict(augment=True, num_workers=workers)
    L.seed_everything(0)
    full = LossRecorder()
    _trainer(max_epochs=3, callbacks=[full], **steps).fit(StagedDiffusionSegmenter(lr=3e-3, **TINY), datamodule=_phantoms(**data))
    ckpt_cb = StageCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    L.seed_everything(0)
    _trainer(max_epochs=3, max_steps=4, callbacks=[ckpt_cb], enable_checkpointing=True, **steps).fit(
        StagedDiffusionSegmenter(lr=3e-3, **TINY), datamodule=_phantoms(**data))
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4
    resumed = LossRecorder()
    _trainer(max_epochs=3, callbacks=[resumed], **steps).fit(StagedDiffusionSegmenter(lr=3e-3, **TINY), datamodule=_phantoms(**data),
                                                            ckpt_path=str(tmp_path / "last.ckpt"))
    assert sorted(resumed.losses) == [5, 6, 7, 8, 9]
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(full.losses[step], rel=1e-5, abs=1e-6), f"step {step}"


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_same_seed_same_losses_with_workers_and_augmentation(precision):
    """What `make benchmark` relies on for "same seed, same numbers": two fresh runs, workers and augmentation on."""
    runs = []
    for _ in range(2):
        L.seed_everything(0, workers=True)
        model = StagedDiffusionSegmenter(lr=3e-3, **TINY)
        recorder = LossRecorder()
        _trainer(max_steps=6, limit_val_batches=0, callbacks=[recorder], precision=precision).fit(
            model, datamodule=_phantoms(augment=True, num_workers=2))
        runs.append((recorder.losses, torch.cat([p.detach().flatten() for p in model.parameters()])))
    assert runs[0][0] == runs[1][0] and len(runs[0][0]) == 6
    assert torch.equal(runs[0][1], runs[1][1])


def test_ddp_two_processes_match_single_process_metrics():
    dm = _phantoms(val_fraction=0.34, test_fraction=0.0)
    dm.setup("fit")
    n_val = len(dm.split_dataset("val"))
    assert n_val % 4 == 0, f"val set of {n_val} would be padded by DistributedSampler; adjust the fixture"
    L.seed_everything(0)
    model = StagedDiffusionSegmenter(lr=3e-3, num_samples=2, **TINY)
    ddp = _trainer(devices=2, strategy="ddp_spawn", max_steps=4, limit_train_batches=2)
    ddp.fit(model, datamodule=_phantoms(val_fraction=0.34, test_fraction=0.0))
    ddp_metrics = {k: float(v) for k, v in ddp.callback_metrics.items() if k.startswith("val/")}
    assert "val/macro/dice" in ddp_metrics and "val/phantom_ct/dice" in ddp_metrics
    single = _trainer().validate(model, datamodule=_phantoms(val_fraction=0.34, test_fraction=0.0), verbose=False)[0]
    for key, value in ddp_metrics.items():
        assert single[key] == pytest.approx(value, abs=1e-4), key


class StemRecorder(L.Callback):
    """Writes the (dataset, stem) pairs each rank evaluates to ``<out>/<stage>_rank<k>.txt`` (spawned processes share no memory)."""

    def __init__(self, out):
        self.out = out

    def _record(self, trainer, batch, stage):
        with open(self.out / f"{stage}_rank{trainer.global_rank}.txt", "a") as fh:
            fh.writelines(f"{d}/{s}\n" for d, s in zip(batch["dataset"], batch["stem"]))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._record(trainer, batch, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._record(trainer, batch, "test")


def test_ddp_odd_split_evaluates_each_sample_once_and_matches_single_process(tmp_path):
    """9 val and 9 test samples over 2 ranks: rank 0 gets 5 (2 batches), rank 1 gets 4 (1 batch); a padding
    sampler would evaluate one sample twice and shift every per-dataset mean it belongs to."""
    data = dict(datasets=["phantom_dermoscopy", "phantom_endoscopy", "phantom_breast_us"], image_size=32, batch_size=4,
                phantom_samples=12, val_fraction=0.25, test_fraction=0.25, augment=False, num_workers=0)
    dm = LesionDataModule(root=None, **data)
    expected = {split: sorted(f"{d}/{s}" for d, parts in dm.splits().items() for s in parts[split]) for split in ("val", "test")}
    assert len(expected["val"]) == len(expected["test"]) == 9
    L.seed_everything(0)
    model = StagedDiffusionSegmenter(num_samples=2, **TINY)
    ddp = _trainer(devices=2, strategy="ddp_spawn", callbacks=[StemRecorder(tmp_path)])
    ddp_val = ddp.validate(model, datamodule=LesionDataModule(root=None, **data), verbose=False)[0]
    ddp_test = ddp.test(model, datamodule=LesionDataModule(root=None, **data), verbose=False)[0]
    for split in ("val", "test"):
        seen = [line for rank in (0, 1) for line in (tmp_path / f"{split}_rank{rank}.txt").read_text().split()]
        assert sorted(seen) == expected[split], f"{split}: evaluated {len(seen)} samples, expected each of {len(expected[split])} once"
    single = _trainer()
    single_val = single.validate(model, datamodule=LesionDataModule(root=None, **data), verbose=False)[0]
    single_test = single.test(model, datamodule=LesionDataModule(root=None, **data), verbose=False)[0]
    assert any(k.startswith("val/phantom_endoscopy/") for k in ddp_val) and "test/macro/dice" in ddp_test
    assert ddp_val.keys() == single_val.keys() and ddp_test.keys() == single_test.keys()
    for key in ddp_val:
        assert ddp_val[key] == pytest.approx(single_val[key], rel=1e-9, abs=1e-12), key
    for key in ddp_test:
        assert ddp_test[key] == pytest.approx(single_test[key], rel=1e-9, abs=1e-12), key
