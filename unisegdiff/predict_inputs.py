"""What ``unisegdiff predict`` reads and where it writes: inputs expanded and validated up front, an output
folder that never mixes with inputs, and which cases an earlier (interrupted) run already completed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from unisegdiff.data.errors import DataError
from unisegdiff.data.preprocess import prepare_image
from unisegdiff.io import PIL_EXTENSIONS, SITK_EXTENSIONS, file_stem, file_suffix, read_image
from unisegdiff.io.atomic import TEMP_PREFIX

OUTPUT_KINDS = ("uncertainty", "prob", "mask")  # write order: a case is complete once its mask exists
SUPPORTED = PIL_EXTENSIONS + SITK_EXTENSIONS
RECORD = "predict_record.json"
FAILURES = "failures.json"


def _suffix(path: Path) -> str:
    return file_suffix(path) if path.is_file() else ""


def stem_of(path: Path) -> str:
    return file_stem(path) if path.is_file() else path.name  # a DICOM series folder keeps its name


def is_output_name(path: Path) -> bool:
    """A file named like a predict output (``<stem>_mask|_prob|_uncertainty``): never read from a folder as input."""
    return any(stem_of(path).endswith(f"_{kind}") for kind in OUTPUT_KINDS)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (sorted supported files inside, outputs of predict left out; a folder of .dcm files is one
    DICOM series) or .txt lists (one path per line, relative to the list)."""
    if not inputs:
        raise DataError("--data.inputs", "no inputs given", "pass image files, folders or a .txt file list")
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise DataError(item, "input does not exist", "check the path")
        if path.is_file() and path.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            found.extend(expand_inputs([str((path.parent / ln) if not Path(ln).is_absolute() else ln) for ln in lines]))
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file())
            if files and all(_suffix(p) == ".dcm" for p in files):
                found.append(path)  # one DICOM series
            else:
                usable = [p for p in files if _suffix(p) in SUPPORTED and not is_output_name(p)]
                if not usable:
                    raise DataError(item, f"folder holds no supported image ({', '.join(SUPPORTED)})",
                                    "add images; files named *_mask, *_prob, *_uncertainty are predict outputs and are not read")
                found.extend(usable)
        elif _suffix(path) in SUPPORTED:
            found.append(path)
        else:
            raise DataError(item, "input has an unsupported extension", f"convert it to one of {', '.join(SUPPORTED)}")
    return found


def check_output_dir(inputs: list[str], output_dir: Path) -> None:
    """Refuse an output folder equal to or inside an input folder, or the folder of an input file."""
    out = output_dir.resolve()
    for item in inputs:
        path = Path(item).resolve()
        folder = path if path.is_dir() else path.parent
        inside = path.is_dir() and folder in out.parents
        if out == folder or inside:
            raise DataError(f"--data.output_dir {str(output_dir)}", f"is {'inside' if inside else 'the folder of'} the input {item!r}: outputs would mix with inputs",
                            f"choose a separate folder, e.g. {str(folder.parent / (folder.name + '_pred'))!r}")


def output_paths(path: Path, output_dir: Path) -> dict[str, Path]:
    ext = ".png" if _suffix(path) in PIL_EXTENSIONS else ".nii.gz"
    return {kind: output_dir / f"{stem_of(path)}_{kind}{ext}" for kind in OUTPUT_KINDS}


@dataclass
class Case:
    """One input, its outputs, and whether earlier outputs of it are replaced."""

    path: Path
    outputs: dict[str, Path]
    replace: bool = False


def plan_cases(inputs: list[Path], output_dir: Path, overwrite: bool = False) -> tuple[list[Case], list[Case]]:
    """(to predict, already complete). In a folder an earlier predict run wrote (it holds ``predict_record.json``)
    complete cases are kept and partial ones redone; elsewhere an existing output is refused."""
    ours = (output_dir / RECORD).is_file()
    resolved_inputs = {p.resolve() for p in inputs}
    owner: dict[Path, Path] = {}
    todo, done = [], []
    for path in inputs:
        outs = output_paths(path, output_dir)
        for out in outs.values():
            if out in owner:
                raise DataError(path, f"shares the stem {stem_of(path)!r} with {str(owner[out])!r}: both would write {str(out)!r}",
                                "rename one or predict them into different --data.output_dir")
            if out.resolve() in resolved_inputs:
                raise DataError(out, "output would overwrite an input", "choose another --data.output_dir")
            owner[out] = path
        existing = [out for out in outs.values() if out.exists()]
        if existing and not overwrite and not ours:
            raise DataError(existing[0], f"output already exists and {str(output_dir)!r} was not written by predict (no {RECORD})",
                            "remove it, choose another --data.output_dir or pass --data.overwrite true")
        if len(existing) == len(outs) and not overwrite:
            done.append(Case(path, outs))
        else:
            todo.append(Case(path, outs, replace=bool(existing)))
    return todo, done


def remove_stale_temp_files(cases: list[Case]) -> list[Path]:
    """Temp files a killed run left for these outputs (``.tmp-<random>-<name>``, see ``unisegdiff.io.write_atomic``)."""
    removed = []
    for case in cases:
        for out in case.outputs.values():
            for temp in out.parent.glob(f"{TEMP_PREFIX}*-{out.name}") if out.parent.is_dir() else []:
                temp.unlink(missing_ok=True)
                removed.append(temp)
    return removed


def load_input(path: Path, image_size: int, channels: int, modality: str) -> tuple[torch.Tensor, dict[str, Any]]:
    """One input as model slices (N, C, S, S) (N = 1 for a 2D image, one per z for a volume) and its metadata."""
    record = read_image(str(path))
    array = record.array
    is_2d_file = _suffix(path) in PIL_EXTENSIONS
    if is_2d_file or array.ndim == 2:
        slices = [array]
    elif array.ndim == 3 and array.shape[0] == 1:
        slices = [array[0]]
    elif array.ndim == 3:
        slices = list(array)  # (D, H, W): one 2D slice per z
    else:
        raise DataError(path, f"array of shape {array.shape} is neither a 2D image nor a 3D volume", "pass 2D images or 3D volumes")
    image = torch.stack([prepare_image(s, modality, image_size, channels) for s in slices])
    meta = {"path": str(path), "stem": stem_of(path), "shape": tuple(array.shape), "shape2d": tuple(slices[0].shape[:2]),
            "geometry": dataclasses.asdict(record.geometry), "is_2d_file": is_2d_file}
    return image, meta


def validate_inputs(cases: list[Case], image_size: int, channels: int, modality: str) -> list[dict[str, str]]:
    """Read and preprocess every input once; ``[{input, error}]`` for those that cannot be predicted."""
    failures = []
    for case in cases:
        try:
            load_input(case.path, image_size, channels, modality)
        except Exception as error:  # noqa: BLE001 - any unreadable input is reported, the others still run
            failures.append({"input": str(case.path), "error": str(error) if isinstance(error, (DataError, OSError)) else f"{type(error).__name__}: {error}"})
    return failures
