"""``unisegdiff score PRED_DIR GT_DIR``: Dice, IoU, HD95 and (with physical spacing) surface Dice of
predicted masks against ground truth, per image and per folder (mean, median, 95% bootstrap CI).

Predictions match ground truth by stem, ``<stem>_mask.<ext>`` (what ``unisegdiff predict`` writes)
matching ``<stem>.<ext>``; ``.nii.gz`` is one extension. Empty masks follow ``unisegdiff.metrics``:
Dice, IoU and surface Dice are 1 when prediction and ground truth are both empty and 0 when only one
is; HD95 is undefined (blank in the CSV) when either is empty and is left out of its summary.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from torch.nn import functional as F

from unisegdiff.data.errors import DataError
from unisegdiff.data.readers import PIL_EXTENSIONS, READABLE_EXTENSIONS, file_stem, file_suffix, read_image, write_bytes_atomic
from unisegdiff.metrics import per_sample_metrics, surface_dice

MASK_SUFFIX = "_mask"
PREDICT_EXTRAS = ("_prob", "_uncertainty")  # written by ``unisegdiff predict`` beside each mask; never scored
METRICS = ("dice", "iou", "hd95", "surface_dice")
CSV_COLUMNS = ("case", "prediction", "ground_truth", *METRICS, "hd95_unit", "pred_voxels", "gt_voxels")
# 2 mm: about one voxel of clinical CT/MR (0.7-1 mm in-plane, 1-2.5 mm slices), so a one-voxel boundary
# disagreement (within inter-rater variability) is not counted as an error; --tolerance-mm 1 for a stricter score.
DEFAULT_TOLERANCE_MM = 2.0
DESCRIPTION = """Score predicted masks against ground-truth masks: Dice, IoU and HD95 per image, surface Dice
for files with spacing (NIfTI/MHA/NRRD). HD95 is in mm from the ground truth's spacing for those,
in pixels for PNG/JPEG/TIFF. Files match by stem: <stem>_mask.<ext> (what predict writes) matches
<stem>.<ext>; predict's _prob/_uncertainty maps are ignored. Masks must hold {0, 1} or {0, 255}.
Empty masks: Dice, IoU and surface Dice are 1 if both masks are empty and 0 if one is; HD95 is then
undefined (blank in per_image.csv) and left out of its summary. Inputs are only read."""
EXIT_CODES = """exit codes:
  0  every ground-truth file had a prediction and was scored
  1  scored, but some ground-truth files have no prediction (listed; --allow-missing makes this 0)
  2  usage error: a folder is missing, no file matches, a mask is not binary, sizes differ, ...
     (nothing is written; every problem is listed)
Predictions without ground truth ("unexpected") are listed in the output and summary.json; they do
not change the exit code."""


class ScoreError(ValueError):
    """A user error of ``unisegdiff score``: one line per problem, each naming the file and the fix."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class ScoreReport:
    """Per-image rows (dicts keyed by ``CSV_COLUMNS``), unmatched file names and the tolerance used."""

    rows: list[dict]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    tolerance_mm: float = DEFAULT_TOLERANCE_MM

    def summary(self) -> dict:
        units = sorted({row["hd95_unit"] for row in self.rows})
        return {
            "n": len(self.rows),
            "missing": self.missing,
            "unexpected": self.unexpected,
            "hd95_unit": units[0] if len(units) == 1 else "mixed",
            "surface_dice_tolerance_mm": self.tolerance_mm,
            "metrics": {name: summarize([row[name] for row in self.rows]) for name in METRICS},
        }


def match_key(path: Path) -> str:
    """The stem a prediction and its ground truth share: ``case1_mask.png`` and ``case1.png`` -> ``case1``."""
    stem = file_stem(path)
    return stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) else stem


def _mask_files(folder: Path, role: str, predictions: bool) -> dict[str, Path]:
    """Readable files of ``folder`` by match key (hidden files, ``_prob``/``_uncertainty`` maps skipped)."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if file_suffix(path) not in READABLE_EXTENSIONS:
            continue
        if predictions and file_stem(path).endswith(PREDICT_EXTRAS):
            continue
        key = match_key(path)
        if key in found:
            raise ScoreError(f"{role} {found[key]} and {path} both match the stem {key!r}; keep one of them in {folder}")
        found[key] = path
    return found


def match_folders(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(key, prediction, ground truth) pairs, missing ground-truth names, unexpected prediction names."""
    preds = _mask_files(pred_dir, "predictions", predictions=True)
    truths = _mask_files(gt_dir, "ground-truth files", predictions=False)
    pairs = [(key, preds[key], truths[key]) for key in sorted(truths) if key in preds]
    missing = [truths[key].name for key in sorted(truths) if key not in preds]
    unexpected = [preds[key].name for key in sorted(preds) if key not in truths]
    return pairs, missing, unexpected


def read_mask(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Binary mask as bool array, and its spacing in array axis order (None for PNG/JPEG/TIFF: pixels)."""
    record = read_image(path)
    array = _single_channel(record.array, path) if file_suffix(path) in PIL_EXTENSIONS else record.array
    values = np.unique(array)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(f"{v:g}" for v in values[:8]) + (", ..." if len(values) > 8 else "")
        raise DataError(path, f"mask is not binary: values {{{shown}}}",
                        "masks must hold only 0 and 1, or only 0 and 255; score the <stem>_mask files predict writes, "
                        "or threshold probability maps first")
    spacing = None if file_suffix(path) in PIL_EXTENSIONS else tuple(reversed(record.geometry.spacing))
    return array > 0, spacing


def _single_channel(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] in (3, 4):
        color = array[..., :3]
        if not (color == color[..., :1]).all():
            raise DataError(path, "mask has colours (RGB channels differ)", "save masks as single-channel {0, 255} images")
        return color[..., 0]
    return array


def _aligned(pred: np.ndarray, gt: np.ndarray, pred_path: Path, gt_path: Path, resize: str | None) -> np.ndarray:
    """The prediction on the ground truth's grid: unchanged, nearest-resized (``resize='nearest'``) or an error."""
    if pred.shape == gt.shape:
        return pred
    if resize != "nearest" or pred.ndim != gt.ndim:
        raise DataError(pred_path, f"prediction shape {pred.shape} differs from ground truth {gt_path} shape {gt.shape}",
                        "predict at the ground truth's size, or pass --resize nearest to resize predictions to it"
                        if pred.ndim == gt.ndim else "prediction and ground truth must have the same number of axes")
    resized = F.interpolate(torch.from_numpy(pred)[None, None].float(), size=gt.shape, mode="nearest-exact")
    return resized[0, 0].numpy() > 0


def score_pair(pred_path: Path, gt_path: Path, resize: str | None = None,
               tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> dict:
    """One CSV row: metrics of one prediction against its ground truth (spacing from the ground truth)."""
    gt, spacing = read_mask(gt_path)
    pred = _aligned(read_mask(pred_path)[0], gt, pred_path, gt_path, resize)
    p, g = (torch.from_numpy(a)[None, None].float() for a in (pred, gt))
    dice, iou, hd95 = per_sample_metrics(p, g, spacing)[0].tolist()
    nsd = surface_dice(p, g, tolerance_mm, spacing)[0].item() if spacing is not None else math.nan
    return {"case": match_key(gt_path), "prediction": pred_path.name, "ground_truth": gt_path.name,
            "dice": dice, "iou": iou, "hd95": hd95, "surface_dice": nsd, "hd95_unit": "px" if spacing is None else "mm",
            "pred_voxels": int(pred.sum()), "gt_voxels": int(gt.sum())}


def score_folders(pred_dir: str | Path, gt_dir: str | Path, resize: str | None = None,
                  tolerance_mm: float = DEFAULT_TOLERANCE_MM) -> ScoreReport:
    """Score every prediction that has a ground truth; raises ``ScoreError`` listing every problem found."""
    pred_dir, gt_dir = _folder(pred_dir, "PRED_DIR"), _folder(gt_dir, "GT_DIR")
    if pred_dir.resolve() == gt_dir.resolve():
        raise ScoreError(f"{pred_dir}: PRED_DIR and GT_DIR are the same folder; pass the predictions' folder first")
    pairs, missing, unexpected = match_folders(pred_dir, gt_dir)
    if not pairs:
        raise ScoreError(f"{pred_dir}: no prediction matches a ground-truth file in {gt_dir} "
                         f"({len(missing)} ground truth, {len(unexpected)} predictions); "
                         f"name predictions <stem>{MASK_SUFFIX}.<ext> or <stem>.<ext> after the ground truth's <stem>")
    rows, problems = [], []
    for _, pred_path, gt_path in pairs:
        try:
            rows.append(score_pair(pred_path, gt_path, resize, tolerance_mm))
        except DataError as error:
            problems.append(str(error))
    if problems:
        raise ScoreError(problems)
    return ScoreReport(rows, missing, unexpected, tolerance_mm)


def _folder(path: str | Path, name: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ScoreError(f"{path}: {name} is not a folder" + ("" if path.exists() else " (it does not exist)"))
    return path


def summarize(values: list[float]) -> dict:
    """Mean, median, 95% bootstrap CI of the mean and n over the finite values (NaN/undefined left out)."""
    finite = np.array([v for v in values if math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"mean": None, "median": None, "ci95": None, "n": 0}
    return {"mean": float(finite.mean()), "median": float(np.median(finite)), "ci95": bootstrap_ci(finite), "n": int(finite.size)}


def bootstrap_ci(values: np.ndarray, seed: int = 0) -> list[float] | None:
    """95% BCa bootstrap interval of the mean (``scipy.stats.bootstrap``, seeded); percentile where BCa is
    degenerate; None for fewer than two values."""
    if values.size < 2:
        return None
    if np.ptp(values) == 0:
        return [float(values[0]), float(values[0])]
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interval = stats.bootstrap((values,), np.mean, method=method, batch=1000, rng=np.random.default_rng(seed)).confidence_interval
        if math.isfinite(interval.low) and math.isfinite(interval.high):
            break
    return [float(interval.low), float(interval.high)]


def resolve_out_dir(pred_dir: str | Path, gt_dir: str | Path, out: str | Path | None) -> Path:
    """``--out`` or PRED_DIR/scores; refuses a folder inside GT_DIR (ground truth is never written to)."""
    out_dir = Path(out) if out is not None else Path(pred_dir) / "scores"
    if out_dir.resolve().is_relative_to(Path(gt_dir).resolve()):
        raise ScoreError(f"{out_dir}: the output folder lies inside GT_DIR {gt_dir}; pass --out outside the ground truth")
    return out_dir


def write_report(report: ScoreReport, out_dir: Path) -> tuple[Path, Path]:
    """``per_image.csv`` and ``summary.json`` in ``out_dir``, each written atomically (replacing earlier scores)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()} for row in report.rows)
    csv_path = write_bytes_atomic(buffer.getvalue().encode(), out_dir / "per_image.csv", overwrite=True)
    summary = json.dumps(report.summary(), indent=2, allow_nan=False).encode()
    return csv_path, write_bytes_atomic(summary, out_dir / "summary.json", overwrite=True)


def print_report(report: ScoreReport, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    summary = report.summary()
    table = Table(title=f"{summary['n']} image(s) scored")
    for column in ("metric", "mean", "median", "95% CI", "n"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, stat in summary["metrics"].items():
        if name == "surface_dice" and stat["n"] == 0:
            continue  # no file with physical spacing
        label = f"hd95 ({summary['hd95_unit']})" if name == "hd95" else (
            f"surface dice @{report.tolerance_mm:g} mm" if name == "surface_dice" else name)
        table.add_row(label, *_cells(stat))
    console = Console()
    console.print(table)
    for kind, names in (("missing (ground truth without prediction)", report.missing),
                        ("unexpected (prediction without ground truth)", report.unexpected)):
        if names:
            console.print(f"{len(names)} {kind}: " + ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
                          markup=False)
    console.print(f"wrote {out_dir / 'per_image.csv'} and {out_dir / 'summary.json'}", markup=False)


def _cells(stat: dict) -> list[str]:
    if stat["n"] == 0:
        return ["-", "-", "-", "0"]
    ci = f"{stat['ci95'][0]:.3f}-{stat['ci95'][1]:.3f}" if stat["ci95"] else "-"
    return [f"{stat['mean']:.3f}", f"{stat['median']:.3f}", ci, str(stat["n"])]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unisegdiff score", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES,
        description=DESCRIPTION)
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted masks")
    parser.add_argument("gt_dir", metavar="GT_DIR", help="folder of ground-truth masks")
    parser.add_argument("--out", help="folder for per_image.csv and summary.json (default: PRED_DIR/scores; "
                                      "never inside GT_DIR; earlier scores there are replaced)")
    parser.add_argument("--resize", choices=["nearest"], help="resize predictions to the ground truth's size by "
                                                              "nearest neighbour (default: a size mismatch is an error)")
    parser.add_argument("--tolerance-mm", dest="tolerance_mm", type=_positive, default=DEFAULT_TOLERANCE_MM,
                        help="surface Dice tolerance in mm (default %(default)s: about one voxel of clinical CT/MR)")
    parser.add_argument("--allow-missing", dest="allow_missing", action="store_true",
                        help="exit 0 even if some ground-truth files have no prediction")
    return parser


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of mm, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """``unisegdiff score`` entry point; returns the exit code (see ``EXIT_CODES``)."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed by argparse
        return int(exit_.code or 0)
    try:
        out_dir = resolve_out_dir(args.pred_dir, args.gt_dir, args.out)
        report = score_folders(args.pred_dir, args.gt_dir, args.resize, args.tolerance_mm)
        write_report(report, out_dir)
    except (ScoreError, DataError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(report, out_dir)
    if report.missing and not args.allow_missing:
        print(f"error: {len(report.missing)} ground-truth file(s) have no prediction (listed above and in summary.json); "
              "pass --allow-missing to accept", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
