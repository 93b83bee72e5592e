"""Benchmark report: result files (one per method and seed) into results.json, per_image.csv and a README that
opens with a verdict in plain words, plus figures; every statistic comes from benchmark.statistics."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from unisegdiff.benchmark import figures
from unisegdiff.benchmark.fingerprint import comparable_settings
from unisegdiff.benchmark.readme import render_readme
from unisegdiff.benchmark.statistics import macro_over, paired_difference, risk_coverage, seed_summary
from unisegdiff.io import write_json_atomic, write_text_atomic

SCHEMA = 1
DROP_FRACTIONS = (0.1, 0.2)
ROW_FIELDS = ("dataset", "stem", "dice", "iou", "hd95", "uncertainty")
CSV_FIELDS = ("method", "seed", "source", *ROW_FIELDS)
Runs = dict[str, dict[int, dict[str, Any]]]  # method -> seed -> result


def load_results(items: Iterable[str | os.PathLike | Mapping] | str | os.PathLike | Mapping) -> tuple[Runs, dict[tuple[str, int], str]]:
    """The results as ``{method: {seed: result}}`` (seeds sorted) and each (method, seed)'s origin (its file
    name, or ``result #i (a dict)``); a ValueError naming the file for another schema or a repeated pair."""
    if isinstance(items, (str, os.PathLike, Mapping)):
        items = [items]
    runs: Runs = {}
    origin: dict[tuple[str, int], str] = {}
    for i, item in enumerate(items):
        name = os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"result #{i} (a dict)"
        data = _read(item, name)
        key = (data["method"], data["seed"])
        if key in origin:
            raise ValueError(f"{name}: a second result for method {key[0]!r} seed {key[1]} (the first is {origin[key]}); "
                             "keep one file per method and seed")
        origin[key] = name
        runs.setdefault(key[0], {})[key[1]] = data
    if not runs:
        raise ValueError("write_report: result_files_or_dicts is empty")
    return {method: dict(sorted(seeds.items())) for method, seeds in runs.items()}, origin


def _read(item, name: str) -> dict[str, Any]:
    try:
        data = dict(item) if isinstance(item, Mapping) else json.loads(Path(item).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{name}: cannot read the result file: {err}") from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = data.get("schema", "none") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{name}: result file of schema {got!r}; this report reads schema {SCHEMA}")
    problems = [] if isinstance(data.get("method"), str) and data["method"] else ["'method' must be a non-empty string"]
    if not isinstance(data.get("seed"), int) or isinstance(data.get("seed"), bool):
        problems.append("'seed' must be an integer")
    for key, fields in (("train", ("steps", "seconds")), ("inference", ("seconds_per_image",))):
        block = data.get(key)
        if not isinstance(block, dict) or any(not isinstance(block.get(f), (int, float)) for f in fields):
            problems.append(f"'{key}' must be an object with numbers {list(fields)}")
    if not isinstance(data.get("images"), list) or not data["images"]:
        problems.append("'images' must be a non-empty list")
    if problems:
        raise ValueError(f"{name}: not a valid result file: " + "; ".join(problems))
    return data


def _row_problem(row: Any) -> str | None:
    if not isinstance(row, dict) or any(f not in row for f in ROW_FIELDS):
        return f"needs the fields {list(ROW_FIELDS)}"
    finite = all(isinstance(row[f], (int, float)) and math.isfinite(row[f]) for f in ("dice", "iou", "uncertainty"))
    return None if finite and (row["hd95"] is None or isinstance(row["hd95"], (int, float))) else "has a non-finite score"


def _tables(runs: Runs, origin: dict, source: str) -> tuple[dict, dict[str, list[str]]]:
    """Per method and seed: ({(dataset, stem): row}, pixel) of ``source`` (``test``, ``cross_validation`` or an
    external root), and each dataset's stems (sorted; datasets in first-seen order). Every run must hold the same images."""
    tables: dict[str, dict[int, tuple[dict, dict]]] = {}
    first: tuple[str, list] | None = None
    for method, seeds in runs.items():
        for seed, data in seeds.items():
            block = data if source == "test" else data.get(source) if source == "cross_validation" else (data.get("external") or {}).get(source)
            name = origin[(method, seed)]
            if block is None:
                continue
            rows: dict[tuple[str, str], dict] = {}
            for i, row in enumerate(block.get("images") or []):
                problem = _row_problem(row)
                if problem or (row["dataset"], row["stem"]) in rows:
                    raise ValueError(f"{name}: {source} image row {i} {problem or 'repeats ' + repr((row['dataset'], row['stem']))}")
                rows[(row["dataset"], row["stem"])] = row
            if first is None:
                first = (name, list(rows))
            elif set(rows) != set(first[1]):
                raise ValueError(f"{name}: its {source} images differ from those of {first[0]} (only here: "
                                 f"{sorted(set(rows) - set(first[1]))[:3]}, missing: {sorted(set(first[1]) - set(rows))[:3]}); "
                                 "every method and seed must score the same images")
            tables.setdefault(method, {})[seed] = (rows, block.get("pixel") or {})
    if first is None or not first[1]:
        raise ValueError(f"no result holds images of {source!r}")
    datasets = list(dict.fromkeys(key[0] for key in first[1]))
    return tables, {ds: sorted(stem for name, stem in first[1] if name == ds) for ds in datasets}


def _summary(values: Iterable[float | None]) -> dict[str, float] | None:
    """``seed_summary`` of the finite values (a metric undefined in some seed leaves that seed out); None if none."""
    finite = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return seed_summary(finite).to_dict() if finite else None


def _method_dataset(seeds: dict, dataset: str, stems: list[str]) -> tuple[dict, dict]:
    """One method on one dataset: metrics, calibration and risk-coverage over seeds, and the seed-mean curve."""
    values: dict[str, list] = {key: [] for key in ("dice", "iou", "hd95", "ece", "uncertainty_auroc", *DROP_FRACTIONS)}
    curves = []
    for rows, pixel in seeds.values():
        r = [rows[(dataset, stem)] for stem in stems]
        hd95 = [x["hd95"] for x in r if x["hd95"] is not None]
        values["dice"].append(np.mean([x["dice"] for x in r]))
        values["iou"].append(np.mean([x["iou"] for x in r]))
        values["hd95"].append(np.mean(hd95) if hd95 else None)
        for key in ("ece", "uncertainty_auroc"):
            values[key].append((pixel.get(dataset) or {}).get(key))
        rc = risk_coverage([x["dice"] for x in r], [x["uncertainty"] for x in r], DROP_FRACTIONS)
        for f in DROP_FRACTIONS:
            values[f].append(rc.kept_mean[f])
        curves.append(rc.mean_dice)
    block = {"n": len(stems), **{key: _summary(values[key]) for key in ("dice", "iou", "hd95", "ece", "uncertainty_auroc")},
             "risk_coverage": {f"drop_{f:g}": _summary(values[f]) for f in DROP_FRACTIONS}}
    return block, {"coverage": rc.coverage, "mean_dice": np.mean(curves, axis=0).tolist()}


def _seed_average(seeds: dict, common: list[int], dataset: str, stems: list[str]) -> np.ndarray:
    return np.mean([[seeds[s][0][(dataset, stem)]["dice"] for stem in stems] for s in common], axis=0)


def _section(tables: dict, stems: dict[str, list[str]], reference: str, compare: tuple[str, ...], min_images: int,
             n_resamples: int) -> tuple[dict, dict]:
    """The results block of one source (test set or external root) and the risk-coverage curves."""
    counts = {ds: len(s) for ds, s in stems.items()}
    methods, curves = {}, {}
    for method, seeds in tables.items():
        per_dataset = {}
        for ds in stems:
            per_dataset[ds], curves.setdefault(method, {})[ds] = _method_dataset(seeds, ds, stems[ds])
        macro = macro_over({ds: per_dataset[ds]["dice"]["mean"] for ds in stems}, counts, min_images).to_dict()
        per_seed = [macro_over({ds: float(np.mean([rows[(ds, s)]["dice"] for s in stems[ds]])) for ds in stems}, counts,
                               min_images).value for rows, _ in seeds.values()]
        macro["over_seeds"] = _summary(per_seed)  # the same macro per seed: its spread is the seed noise
        methods[method] = {"seeds": list(seeds), "datasets": per_dataset, "macro_dice": macro}
    paired = {}
    for other in compare:
        if other not in tables or reference not in tables:
            continue
        common = sorted(set(tables[other]) & set(tables[reference]))
        if not common:
            paired[other] = {"seeds": [], "note": f"no seed in common with {reference}: no paired difference"}
            continue
        diffs = {ds: paired_difference(_seed_average(tables[other], common, ds, stems[ds]),
                                       _seed_average(tables[reference], common, ds, stems[ds]), n_resamples=n_resamples).to_dict()
                 for ds in stems}
        paired[other] = {"seeds": common, "datasets": diffs,
                         "macro": macro_over({ds: d["mean"] for ds, d in diffs.items()}, counts, min_images).to_dict()}
    datasets = {ds: {"n": n, "mark": "" if n >= min_images else f"n<{min_images}"} for ds, n in counts.items()}
    return {"datasets": datasets, "methods": methods, "paired_dice": paired}, curves


def _mean(values: list) -> float | None:
    return (_summary(values) or {}).get("mean")


def _cost(runs: Runs, reference: str, compare: tuple[str, ...]) -> tuple[dict, dict]:
    """Train steps/seconds and inference seconds per method (means over seeds), multiples of the reference's,
    and whether each method trained the reference's steps at its batch size in every seed."""
    cost = {}
    for method, seeds in runs.items():
        train, infer = [d["train"] for d in seeds.values()], [d["inference"] for d in seeds.values()]
        cost[method] = {"seeds": list(seeds), "train_steps": _mean([t["steps"] for t in train]),
                        "train_steps_per_seed": [t["steps"] for t in train],
                        **{key: _mean([t.get(key) or 0 for t in train]) for key in ("phase1_steps", "phase2_steps")},
                        "batch_size": sorted({t.get("batch_size") for t in train}, key=str),
                        "train_seconds": _mean([t["seconds"] for t in train]),
                        "inference_seconds_per_image": _mean([i["seconds_per_image"] for i in infer]),
                        "calls_per_sample": infer[0].get("calls_per_sample"), "num_samples": infer[0].get("num_samples")}
    ref = cost[reference]
    for c in cost.values():
        for key in ("train_seconds", "inference_seconds_per_image"):
            c[f"{key}_multiple_of_reference"] = c[key] / ref[key] if c[key] is not None and ref[key] else None
        c["equal_train_steps_to_reference"] = (len(set(c["train_steps_per_seed"] + ref["train_steps_per_seed"])) == 1
                                               and c["batch_size"] == ref["batch_size"])
    checked = [m for m in (reference, *compare) if m in cost and not m.endswith("_walltime")]
    return cost, {"value": all(cost[m]["equal_train_steps_to_reference"] for m in checked), "methods": checked,
                  "note": "optimizer steps at one batch size, every seed; *_walltime methods train for a wall time instead"}


def _speed(runs: Runs) -> dict | None:
    """The side-by-side timing on a fixed subset: ``speed_subset`` of a method, ``speed_subset_ddpm1000`` (of
    eps) as ``<method>_ddpm1000``; the staged model's speed-up over eps DDPM-1000 where both are present."""
    entries: dict[str, dict] = {}
    for method, seeds in runs.items():
        for data in seeds.values():
            for key, label in (("speed_subset", method), ("speed_subset_ddpm1000", f"{method}_ddpm1000")):
                if isinstance(data.get(key), dict):
                    entries.setdefault(label, data[key])
    if not entries:
        return None
    staged, slow = entries.get("staged"), entries.get("eps_ddpm1000")
    speedup = slow["seconds_per_image"] / staged["seconds_per_image"] if staged and slow and staged.get("seconds_per_image") else None
    return {"entries": entries, "staged_speedup_vs_eps_ddpm1000": speedup}


def _reliability(runs: Runs, origin: dict) -> dict[str, dict]:
    """Per method, the reliability bins of its test pixel statistics summed over datasets and seeds."""
    pooled = {}
    for method, seeds in runs.items():
        edges, count, prob, positive = None, 0.0, 0.0, 0.0
        for seed, data in seeds.items():
            for ds, block in (data.get("pixel") or {}).items():
                rel = (block or {}).get("reliability")
                if not rel:
                    continue
                if edges is not None and not np.allclose(rel["bin_edges"], edges):
                    raise ValueError(f"{origin[(method, seed)]}: {ds} has other reliability bins than the method's other results")
                edges, n = rel["bin_edges"], np.asarray(rel["count"], dtype=float)
                count = count + n
                prob = prob + np.nan_to_num(np.asarray(rel["mean_probability"], dtype=float) * n)
                positive = positive + np.nan_to_num(np.asarray(rel["positive_fraction"], dtype=float) * n)
        if edges is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                pooled[method] = {"bin_edges": list(edges), "count": count.tolist(),
                                  "mean_probability": (prob / count).tolist(), "positive_fraction": (positive / count).tolist()}
    return pooled


def _run_record(first: dict, runs: Runs, reference: str) -> dict[str, Any]:
    """The first run's machine and versions, every run's CPU model, and the runs whose CPU is not that of the reference
    run of the same seed: bf16 kernels differ between CPUs, so such a pair carries a machine effect beside the method's."""
    record = first.get("run_record") or {}
    cpu = {m: {s: (d.get("run_record") or {}).get("cpu_model") for s, d in seeds.items()} for m, seeds in runs.items()}
    other = [f"{m} seed {s}" for m, seeds in cpu.items() if m != reference for s, model in seeds.items()
             if s in cpu.get(reference, {}) and model != cpu[reference][s]]
    return {"cpu_model": record.get("cpu_model"), "threads": record.get("threads"),
            "torch": (record.get("packages") or {}).get("torch"), "precision": first.get("precision"),
            "git_commit": record.get("git_commit"), "git_dirty": record.get("git_dirty"), "platform": record.get("platform"),
            "cpu_models": sorted({str(c) for seeds in cpu.values() for c in seeds.values()}),
            "cpu_model_of_runs": {m: {str(s): c for s, c in seeds.items()} for m, seeds in cpu.items()},
            "other_cpu_than_reference": other}


def _per_image_csv(runs: Runs) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for method, seeds in runs.items():
        for seed, data in seeds.items():
            sources = [("test", data["images"])] + [(name, block.get("images") or []) for name, block in (data.get("external") or {}).items()]
            if "cross_validation" in data:
                sources.append(("cross_validation", data["cross_validation"]["images"]))
            for source, rows in sources:
                for row in rows:
                    writer.writerow({"method": method, "seed": seed, "source": source, **{f: row[f] for f in ROW_FIELDS}})
    return buffer.getvalue()


def _json_ready(value: Any) -> Any:
    """Plain JSON: nan and inf as null, numpy scalars as Python numbers, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def build_results(runs: Runs, origin: dict, profile_name: str, reference: str = "unet",
                  compare: tuple[str, ...] = ("staged", "eps", "unet_walltime"), min_images: int = 30,
                  n_resamples: int = 10000) -> tuple[dict, dict]:
    """The results.json content (nan kept as nan) and the test-set risk-coverage curves for the figures."""
    if reference not in runs:
        raise ValueError(f"reference={reference!r} has no result file; methods present: {sorted(runs)}")
    for key, name in origin.items():
        stored = runs[key[0]][key[1]].get("profile_name")
        if stored is not None and stored != profile_name:
            raise ValueError(f"{name}: made with profile {stored!r}, but this report is for profile_name={profile_name!r}")
    compare = tuple(m for m in compare if m != reference)
    first = runs[next(iter(origin))[0]][next(iter(origin))[1]]
    test, curves = _section(*_tables(runs, origin, "test"), reference, compare, min_images, n_resamples)
    cost, equal = _cost(runs, reference, compare)
    externals = list(dict.fromkeys(name for seeds in runs.values() for d in seeds.values() for name in (d.get("external") or {})))
    results = {
        "schema": SCHEMA, "profile": profile_name, "reference": reference, "compare": [m for m in compare if m in runs],
        "missing_methods": [m for m in compare if m not in runs], "min_images": min_images, "n_resamples": n_resamples,
        "methods": {m: list(seeds) for m, seeds in runs.items()}, "test": test, "cost": cost, "equal_train_steps": equal,
        "speed_subset": _speed(runs), "reliability": _reliability(runs, origin), "run_record": _run_record(first, runs, reference),
        "settings": {m: next(iter(seeds.values())).get("settings") for m, seeds in runs.items()},
        "settings_differ_across_seeds": [m for m, s in runs.items() if len({json.dumps(comparable_settings(d["settings"]) if d.get("settings") else None, sort_keys=True)
                                                                        for d in s.values()}) > 1],
        "external": {name: _section(*_tables(runs, origin, name), reference, compare, min_images, n_resamples)[0] for name in externals},
    }
    if any("cross_validation" in d for seeds in runs.values() for d in seeds.values()):  # the small sets, k-fold (GPU profile)
        section = _section(*_tables(runs, origin, "cross_validation"), reference, compare, min_images, n_resamples)[0]
        folds = {d["cross_validation"]["folds"] for seeds in runs.values() for d in seeds.values() if "cross_validation" in d}
        results["cross_validation"] = {**section, "folds": sorted(folds)}
    return results, curves


def write_report(result_files_or_dicts, out_dir: str | os.PathLike, profile_name: str, reference: str = "unet",
                 compare: tuple[str, ...] = ("staged", "eps", "unet_walltime"), min_images: int = 30,
                 n_resamples: int = 10000) -> dict[str, Path]:
    """Write results.json, per_image.csv, the figures and README.md into ``out_dir``, each atomically.

    ``result_files_or_dicts``: paths of result files (schema 1) or their loaded dicts, one per method and seed.
    Compared methods without a result file are listed in ``missing_methods``. Returns ``{name: path}``.
    """
    runs, origin = load_results(result_files_or_dicts)
    results, curves = build_results(runs, origin, profile_name, reference, tuple(compare), min_images, n_resamples)
    out = Path(out_dir)
    paths = {"results.json": write_json_atomic(_json_ready(results), out / "results.json"),
             "per_image.csv": write_text_atomic(_per_image_csv(runs), out / "per_image.csv")}
    paths.update(figures.write_figures(results, curves, out))
    paths["README.md"] = write_text_atomic(render_readme(results, [p.name for p in paths.values() if p.suffix == ".png"]), out / "README.md")
    return paths
