"""``unisegdiff predict``: a DataModule over user files/folders (validated before the model runs) and a writer
callback (``unisegdiff.predict_writer``) that saves mask, probability and uncertainty in the input's geometry.

2D images (PNG/JPEG/TIFF) get PNG outputs; NIfTI/MHA/NRRD/DICOM inputs get NIfTI outputs with the
input's spacing, origin and direction. 3D volumes given to a 2D model are segmented slice by slice.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import lightning as L
from torch.utils.data import DataLoader, Dataset

from unisegdiff.data.errors import DataError
from unisegdiff.io import write_json_atomic
from unisegdiff.predict_inputs import FAILURES, RECORD, Case, check_output_dir, expand_inputs, load_input, plan_cases, remove_stale_temp_files, validate_inputs
from unisegdiff.predict_writer import PredictionWriter

__all__ = ["PredictionDataModule", "PredictionDataset", "PredictionWriter"]


class PredictionDataset(Dataset):
    """One item per case: slices (N, C, S, S) for the model (N = 1 for a 2D image) plus metadata."""

    def __init__(self, cases: list[Case], image_size: int, channels: int, modality: str):
        self.cases, self.image_size, self.channels, self.modality = cases, image_size, channels, modality

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> dict[str, Any]:
        case = self.cases[i]
        image, meta = load_input(case.path, self.image_size, self.channels, self.modality)
        meta.update(outputs={k: str(v) for k, v in case.outputs.items()}, replace=case.replace)
        return {"image": image, "stem": [meta["stem"]] * image.shape[0], "meta": meta}


def _collate_one(items: list[dict]) -> dict:
    if len(items) != 1:
        raise ValueError("prediction batches hold one input (all its slices); use batch_size=1")
    return items[0]


class PredictionDataModule(L.LightningDataModule):
    """Predict-only DataModule over files, folders (sorted) or .txt lists of images.

    Every input is read and preprocessed once when the module is built, before any model runs.

    Args:
        inputs: files, folders or .txt file lists; files named like outputs (``*_mask`` ...) in folders are not read.
        output_dir: where ``<stem>_mask``, ``<stem>_prob`` and ``<stem>_uncertainty`` are written; never an input
            folder. A folder an interrupted run left is completed: finished cases are kept, partial ones redone.
        image_size / channels / modality: preprocessing as in training (``unisegdiff predict --ckpt_path`` takes them
            from the checkpoint; modality: a registry dataset name such as ``breast_us_busi`` or a normalization
            kind such as ``ct_window``; ``auto`` guesses from the array).
        overwrite: predict every case again, replacing earlier outputs (never inputs).
        on_error: ``fail`` stops before predicting if any input is unusable (all are listed); ``skip`` predicts the
            rest and lists the skipped inputs in ``<output_dir>/failures.json`` (the command then exits with 1).
    """

    def __init__(self, inputs: list[str], output_dir: str = "predictions", image_size: int = 128, channels: int = 3,
                 modality: str = "auto", overwrite: bool = False, on_error: Literal["fail", "skip"] = "fail", num_workers: int = 0):
        super().__init__()
        if on_error not in ("fail", "skip"):
            raise ValueError(f"predict: --data.on_error must be 'fail' or 'skip', got {on_error!r}")
        self.save_hyperparameters()
        self.output_dir = Path(output_dir)
        check_output_dir(list(inputs), self.output_dir)
        self.cases, self.done = plan_cases(expand_inputs(list(inputs)), self.output_dir, overwrite)
        self.failures = validate_inputs(self.cases, image_size, channels, modality)
        self.failures_path = self.output_dir / FAILURES
        if self.failures and on_error == "fail":
            shown = "\n  ".join(f"{f['input']}: {f['error']}" for f in self.failures)
            raise DataError(f"{len(self.failures)} input(s)", f"cannot be predicted (nothing was written):\n  {shown}\n",
                            "fix or remove them, or pass --data.on_error skip to predict the others")
        failed = {f["input"] for f in self.failures}
        self.cases = [c for c in self.cases if str(c.path) not in failed]
        self.inputs = [c.path for c in self.cases]
        remove_stale_temp_files(self.cases)
        if self.failures:
            write_json_atomic({"failures": self.failures}, self.failures_path)
        elif (self.output_dir / RECORD).is_file():
            self.failures_path.unlink(missing_ok=True)  # an earlier run's list no longer applies
        if self.done:
            print(f"predict: {len(self.done)} case(s) already complete in {self.output_dir} are kept; predicting {len(self.cases)}", file=sys.stderr)

    def predict_dataloader(self) -> DataLoader:
        ds = PredictionDataset(self.cases, self.hparams.image_size, self.hparams.channels, self.hparams.modality)
        return DataLoader(ds, batch_size=1, shuffle=False, num_workers=self.hparams.num_workers, collate_fn=_collate_one)
