"""Validation figures of a unified model cover every dataset: the first images of each, not the first batch only."""

import torch

from unisegdiff.callbacks import ValidationFiguresCallback


def _batch(names, offset=0):
    n = len(names)
    return {"image": torch.arange(offset, offset + n).float().view(n, 1, 1, 1).expand(n, 3, 4, 4), "mask": torch.zeros(n, 1, 4, 4),
            "dataset": names, "stem": [f"s{offset + i}" for i in range(n)]}


def test_overlays_take_the_first_images_of_every_dataset_across_batches():
    callback = ValidationFiguresCallback(max_images=2)
    callback.on_validation_batch_end(None, None, None, _batch(["busi"] * 4), 0)
    callback.on_validation_batch_end(None, None, None, _batch(["busi", "lits", "lits", "lits"], offset=4), 1)
    callback.on_validation_batch_end(None, None, None, _batch(["tg3k"], offset=8), 2)
    assert callback._batch["dataset"] == ["busi", "busi", "lits", "lits", "tg3k"]
    assert callback._batch["stem"] == ["s0", "s1", "s5", "s6", "s8"] and callback._batch["image"].shape[0] == 5
    callback.on_validation_batch_end(None, None, None, _batch(["lits"], offset=20), 0)  # a new validation epoch starts afresh
    assert callback._batch["stem"] == ["s20"]


def test_a_test_run_keeps_the_fit_run_record(tmp_path):
    import lightning as L

    from unisegdiff.callbacks import RunRecordCallback

    callback = RunRecordCallback()
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False)
    callback.on_fit_start(trainer, None)
    fit_record = (tmp_path / "run_record.json").read_bytes()
    callback.on_test_start(trainer, None)
    assert (tmp_path / "run_record.json").read_bytes() == fit_record and (tmp_path / "test_run_record.json").is_file()
