"""Guided vs unguided diffusion pretraining, from bench_anatomy.py result files: per probe column, both arms' mean +- std
over runs (pretraining seeds x probe seeds x folds), the paired gap with a 95% t-interval, and the gap in stds; then the
same at the level of pretraining seeds (each arm's runs averaged over probe seeds and folds first), where the unit of
replication is the pretraining run: issue 19's criterion (a gap of at least 2 std over >= 3 pretraining seeds) is read there.

Usage: python bench/anatomy_guidance_gap.py reports/bench/anatomy_pretrain_seeds.json [more.json ...] [--control zero.json ...]
(prints markdown; each --probe-guide zeros control is paired with the result file whose checkpoints it reused)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from scipy import stats

GUIDED, UNGUIDED = "diffusion + anatomy guidance", "diffusion"
# what a control file must share with its result file: the pretraining design and the guided arm's guidance settings
# (bench_anatomy.py records the guidance keys only when they were set; absent reads as the default)
CONTROL_KEYS = ("seeds", "pretrain_seeds", "folds", "pretrain_target", "pretrain_steps")
GUIDANCE_DEFAULTS = {"guidance": "film", "guidance_frequencies": 3, "guidance_dropout": 0.0, "guidance_levels": None}


def guidance_settings(settings: dict) -> dict:
    """The guided arm's guidance settings of a result file, defaults filled in."""
    return {k: settings.get(k) if settings.get(k) is not None else d for k, d in GUIDANCE_DEFAULTS.items()}


def guidance_label(settings: dict) -> str:
    """A short name for the guided arm's guidance, e.g. ``FiLM, 3 freq`` or ``input, 5 freq, dropout 0.3, levels 3 4``."""
    g = guidance_settings(settings)
    parts = ["FiLM" if g["guidance"] == "film" else str(g["guidance"]), f"{g['guidance_frequencies']} freq"]
    if g["guidance_dropout"]:
        parts.append(f"dropout {g['guidance_dropout']:g}")
    if g["guidance_levels"] is not None:
        parts.append("levels " + " ".join(str(v) for v in g["guidance_levels"]))
    return ", ".join(parts)


def paired_gap(guided: list[float], unguided: list[float]) -> dict:
    """Means and stds of both arms, the mean paired gap with its 95% t-interval, the gap over the larger arm std."""
    diffs = [g - u for g, u in zip(guided, unguided)]
    n = len(diffs)
    mean = statistics.fmean(diffs)
    sd = statistics.stdev(diffs) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * sd / n**0.5 if n > 1 else float("nan")
    g_std, u_std = (statistics.stdev(guided), statistics.stdev(unguided)) if n > 1 else (0.0, 0.0)
    arm_std = max(g_std, u_std)
    return {"n": n, "guided": statistics.fmean(guided), "guided_std": g_std, "unguided": statistics.fmean(unguided), "unguided_std": u_std,
            "gap": mean, "ci_low": mean - half, "ci_high": mean + half, "gap_in_stds": mean / arm_std if arm_std > 0 else float("nan")}


def by_pretraining_run(runs: list[float], probe_seeds: int, pretrain_seeds: int = 1, folds: int = 1) -> list[float]:
    """One value per pretraining seed: its runs averaged over probe seeds and folds. bench_anatomy.py appends runs fold
    by fold, pretraining seed by pretraining seed, probe seed by probe seed: run ``(fold * P + seed) * S + probe``."""
    if probe_seeds < 1 or pretrain_seeds < 1 or folds < 1 or len(runs) != probe_seeds * pretrain_seeds * folds:
        raise ValueError(f"{len(runs)} runs are not {folds} fold(s) x {pretrain_seeds} pretraining seed(s) x {probe_seeds} probe "
                         "seed(s); a result file of a run still in progress is read once it is done")
    return [statistics.fmean(runs[(fold * pretrain_seeds + seed) * probe_seeds + probe] for fold in range(folds)
                             for probe in range(probe_seeds)) for seed in range(pretrain_seeds)]


def gap_rows(result: dict) -> list[dict]:
    """One row per probe column both arms have; runs pair by position (same pretraining seed, probe seed, fold).
    ``pretraining`` holds the same statistics over pretraining seeds (probe seeds and folds averaged first)."""
    rows = []
    probes = result.get("probes", {})
    st = result["settings"]
    design = (len(st["seeds"]), len(st.get("pretrain_seeds", [0])), st.get("folds", 1))
    for column in probes.get(GUIDED, {}):
        if column not in probes.get(UNGUIDED, {}):
            continue
        guided, unguided = probes[GUIDED][column]["runs"], probes[UNGUIDED][column]["runs"]
        if len(guided) != len(unguided):
            raise ValueError(f"{column}: {len(guided)} guided runs vs {len(unguided)} unguided; they must pair one to one")
        rows.append({"column": column, **paired_gap(guided, unguided),
                     "pretraining": paired_gap(by_pretraining_run(guided, *design), by_pretraining_run(unguided, *design))})
    return rows


def control_differences(result: dict, control: dict) -> list[str]:
    """The settings in which ``control`` differs from ``result``: empty when it can have reused its checkpoints."""
    differ = [k for k in CONTROL_KEYS if result["settings"].get(k) != control["settings"].get(k)]
    mine, theirs = guidance_settings(result["settings"]), guidance_settings(control["settings"])
    return differ + [k for k in GUIDANCE_DEFAULTS if mine[k] != theirs[k]]


def control_rows(result: dict, control: dict) -> list[dict]:
    """The zero-guide control (``bench_anatomy.py --probe-guide zeros --reuse`` on ``result``'s checkpoints): per probe
    column both files have, over pretraining seeds, the guided arm with coordinates vs with a zero guide, and the
    zero-guide arm vs unguided diffusion. The two files must share the pretraining design."""
    differ = control_differences(result, control)
    if differ:
        raise ValueError(f"the control file was made with other {differ}; it must reuse the result file's checkpoints")
    if control["settings"].get("probe_guide") != "zeros":
        raise ValueError("the control file is not a --probe-guide zeros run")
    st = result["settings"]
    design = (len(st["seeds"]), len(st.get("pretrain_seeds", [0])), st.get("folds", 1))
    rows = []
    for column, zero in control.get("probes", {}).get(GUIDED, {}).items():
        guided, unguided = (result["probes"].get(arm, {}).get(column) for arm in (GUIDED, UNGUIDED))
        if guided is None or unguided is None:
            continue
        per_seed = {name: by_pretraining_run(runs["runs"], *design) for name, runs in
                    (("guided", guided), ("zero", zero), ("unguided", unguided))}
        rows.append({"column": column, "coords_vs_zero": paired_gap(per_seed["guided"], per_seed["zero"]),
                     "zero_vs_unguided": paired_gap(per_seed["zero"], per_seed["unguided"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="anatomy*.json files written by bench/bench_anatomy.py")
    parser.add_argument("--control", action="append", default=[],
                        help="a --probe-guide zeros run on the checkpoints of one of the result files (repeatable; each is "
                        "paired with the result file of the same design and guidance settings): adds the table of what "
                        "the guided arm keeps without its coordinates at probe time")
    args = parser.parse_args(argv)
    for name in args.control:
        if not Path(name).is_file():
            print(f"error: {name} does not exist", file=sys.stderr)
            return 2
    loaded = []
    for name in args.results:
        path = Path(name)
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        loaded.append((path, json.loads(path.read_text())))

    def label(path: Path) -> str:  # bench_anatomy.py names every report anatomy.json inside its --out folder
        return f"{path.parent.name}/{path.name}" if path.name == "anatomy.json" and path.parent.name != "bench" else path.name

    print("Over runs (pretraining seeds x probe seeds x folds, each run one unit):", "", sep="\n")
    print("| result file | target | guidance | pretraining seeds x probe seeds | probe | guided | unguided | gap (points) | 95% t-CI | gap / larger std |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path, result in loaded:
        st = result["settings"]
        design = f"{len(st.get('pretrain_seeds', [0]))} x {len(st['seeds'])} x {st['folds']} fold"
        for r in gap_rows(result):
            print(f"| {label(path)} | {st.get('pretrain_target', 'x0')} | {guidance_label(st)} | {design} | {r['column']} | {r['guided']:.3f} +- {r['guided_std']:.3f} | "
                  f"{r['unguided']:.3f} +- {r['unguided_std']:.3f} | {100 * r['gap']:+.1f} | {100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f} | "
                  f"{r['gap_in_stds']:.1f} |")
    print("", "Over pretraining seeds (probe seeds and folds averaged first; the criterion: gap / larger std >= 2 over >= 3 of them):",
          "", sep="\n")
    print("| result file | target | guidance | pretraining seeds | probe | guided | unguided | gap (points) | 95% t-CI | gap / larger std | criterion |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path, result in loaded:
        st = result["settings"]
        for r in gap_rows(result):
            q = r["pretraining"]
            met = "met" if q["n"] >= 3 and q["gap_in_stds"] >= 2 else "not met" if q["n"] >= 3 else f"needs >= 3 runs ({q['n']})"
            ci = f"{100 * q['ci_low']:+.1f} to {100 * q['ci_high']:+.1f}" if q["n"] > 1 else "-"
            stds = f"{q['gap_in_stds']:.1f}" if q["n"] > 1 else "-"
            pm = lambda m, sd: f"{m:.3f} +- {sd:.3f}" if q["n"] > 1 else f"{m:.3f}"  # noqa: E731
            print(f"| {label(path)} | {st.get('pretrain_target', 'x0')} | {guidance_label(st)} | {q['n']} | {r['column']} | {pm(q['guided'], q['guided_std'])} | "
                  f"{pm(q['unguided'], q['unguided_std'])} | {100 * q['gap']:+.1f} | {ci} | {stds} | {met} |")
    for name in args.control:
        control = json.loads(Path(name).read_text())
        if control.get("settings", {}).get("probe_guide") != "zeros":
            print(f"error: {name} is not a --probe-guide zeros run", file=sys.stderr)
            return 2
        matches = [(path, result) for path, result in loaded if not control_differences(result, control)]
        if len(matches) != 1:
            print(f"error: {name} pairs with {len(matches)} of the result files (it must reuse the checkpoints of exactly "
                  "one: same pretraining design and guidance settings); give its result file too", file=sys.stderr)
            return 2
        path, result = matches[0]
        print("", f"Zero-guide control ({label(Path(name))} on the checkpoints of {label(path)}, guidance "
              f"{guidance_label(result['settings'])}; over pretraining seeds, gap in points with its 95% t-CI):", "", sep="\n")
        print("| probe | guided, coordinates | guided, zero guide | unguided | coordinates - zero guide | zero guide - unguided |")
        print("|---|---|---|---|---|---|")
        for r in control_rows(result, control):
            a, b = r["coords_vs_zero"], r["zero_vs_unguided"]
            cell = lambda g: f"{100 * g['gap']:+.1f} [{100 * g['ci_low']:+.1f}, {100 * g['ci_high']:+.1f}]"  # noqa: E731
            print(f"| {r['column']} | {a['guided']:.3f} +- {a['guided_std']:.3f} | {a['unguided']:.3f} +- {a['unguided_std']:.3f} | "
                  f"{b['unguided']:.3f} +- {b['unguided_std']:.3f} | {cell(a)} | {cell(b)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
