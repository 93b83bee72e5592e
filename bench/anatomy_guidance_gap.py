"""Guided vs unguided diffusion pretraining, from bench_anatomy.py result files: per probe column, both arms' mean +- std
over runs (pretraining seeds x probe seeds x folds), the paired gap with a 95% t-interval, and the gap in stds; then the
same at the level of pretraining seeds (each arm's runs averaged over probe seeds and folds first), where the unit of
replication is the pretraining run: issue 19's criterion (a gap of at least 2 std over >= 3 pretraining seeds) is read there.

Usage: python bench/anatomy_guidance_gap.py reports/bench/anatomy_pretrain_seeds.json [more.json ...] [--control zero.json ...]
(prints markdown; each --probe-guide zeros or head control is paired with the result file whose checkpoints it reused)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from anatomy_pretrain.profiles import GUIDANCE_DEFAULTS  # noqa: E402  (one source for what an absent guidance key means)

GUIDED, UNGUIDED = "diffusion + anatomy guidance", "diffusion"
# a control file must share every setting with its result file except what only the probing run chose; these must be
# recorded in both, the others are compared where both files record them; the guidance keys are recorded only when set
# (absent reads as the default)
CONTROL_KEYS = ("seeds", "pretrain_seeds", "folds", "pretrain_target", "pretrain_steps")
PROBE_RUN_KEYS = ("probe_guide", "arms", "columns")


def guidance_settings(settings: dict) -> dict:
    """The guided arm's guidance settings of a result file, defaults filled in; FiLM levels sorted, all five = None."""
    g = {k: settings.get(k) if settings.get(k) is not None else d for k, d in GUIDANCE_DEFAULTS.items()}
    if g["guidance_levels"] is not None:
        levels = sorted(g["guidance_levels"])
        g["guidance_levels"] = None if levels == [0, 1, 2, 3, 4] else levels
    return g


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
    a, b = result["settings"], control["settings"]
    differ = [k for k in CONTROL_KEYS if a.get(k) != b.get(k)]
    skip = set(CONTROL_KEYS) | set(PROBE_RUN_KEYS) | set(GUIDANCE_DEFAULTS)
    differ += sorted(k for k in a.keys() & b.keys() if k not in skip and a[k] != b[k])
    mine, theirs = guidance_settings(a), guidance_settings(b)
    return differ + [k for k in GUIDANCE_DEFAULTS if mine[k] != theirs[k]]


# per control kind (the control run's probe_guide): the arm it probes and how the report names it
CONTROLS = {"zeros": (GUIDED, "guided, zero guide"), "head": (UNGUIDED, "unguided, coordinates in the head")}


def control_rows(result: dict, control: dict) -> list[dict]:
    """A control run on ``result``'s checkpoints (``bench_anatomy.py --reuse``), per probe column both files have, over
    pretraining seeds. ``--probe-guide zeros``: the guided arm with coordinates vs with a zero guide (``guided_vs_control``)
    and the zero-guide arm vs unguided diffusion (``control_vs_unguided``). ``--probe-guide head``: the guided arm vs the
    unguided backbone whose head gets the coordinates, and that vs plain unguided diffusion. The files must share the
    pretraining design and guidance settings."""
    differ = control_differences(result, control)
    if differ:
        raise ValueError(f"the control file was made with other {differ}; it must reuse the result file's checkpoints")
    kind = control["settings"].get("probe_guide")
    if kind not in CONTROLS:
        raise ValueError("the control file is not a --probe-guide zeros or head run")
    st = result["settings"]
    design = (len(st["seeds"]), len(st.get("pretrain_seeds", [0])), st.get("folds", 1))
    rows = []
    for column, probed in control.get("probes", {}).get(CONTROLS[kind][0], {}).items():
        guided, unguided = (result["probes"].get(arm, {}).get(column) for arm in (GUIDED, UNGUIDED))
        if guided is None or unguided is None:
            continue
        per_seed = {name: by_pretraining_run(runs["runs"], *design) for name, runs in
                    (("guided", guided), ("control", probed), ("unguided", unguided))}
        rows.append({"column": column, "guided_vs_control": paired_gap(per_seed["guided"], per_seed["control"]),
                     "control_vs_unguided": paired_gap(per_seed["control"], per_seed["unguided"])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="anatomy*.json files written by bench/bench_anatomy.py")
    parser.add_argument("--control", action="append", default=[],
                        help="a --probe-guide zeros or head run on the checkpoints of one of the result files (repeatable; "
                        "each is paired with the result file of the same design and guidance settings): adds the table of "
                        "what the guided arm keeps without its coordinates at probe time (zeros), or of what an unguided "
                        "backbone gains when its probe head gets them (head)")
    args = parser.parse_args(argv)
    def read(name: str) -> dict | None:
        path = Path(name)
        if not path.is_file():
            print(f"error: {path} does not exist", file=sys.stderr)
            return None
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            print(f"error: {path} is not JSON ({exc}); pass the anatomy.json that bench_anatomy.py wrote", file=sys.stderr)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
            print(f"error: {path} has no 'settings'; it is not a bench_anatomy.py result file", file=sys.stderr)
            return None
        return data

    loaded = []
    for name in args.results:
        data = read(name)
        if data is None:
            return 2
        loaded.append((Path(name), data))
    # every control is paired before anything is printed, so an error leaves no half report
    pairs = []
    for name in args.control:
        control = read(name)
        if control is None:
            return 2
        if control["settings"].get("probe_guide") not in CONTROLS:
            print(f"error: {name} is not a --probe-guide zeros or head run", file=sys.stderr)
            return 2
        matches = [(path, result) for path, result in loaded
                   if result["settings"].get("probe_guide") not in CONTROLS and not control_differences(result, control)]
        if not matches:
            print(f"error: {name} pairs with none of the result files (it must reuse the checkpoints of one: the same "
                  "pretraining design and guidance settings); give its result file too", file=sys.stderr)
            return 2
        if len(matches) > 1:
            print(f"error: {name} pairs with {len(matches)} result files ({', '.join(str(p) for p, _ in matches)}); they "
                  "share their settings, so give only the one whose checkpoints the control reused", file=sys.stderr)
            return 2
        pairs.append((Path(name), control, *matches[0]))

    try:  # a file of a run still in progress, or unpaired arms, fail before anything is printed too
        rows = [gap_rows(result) for _, result in loaded]
        control_tables = [control_rows(result, control) for _, control, _, result in pairs]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def label(path: Path) -> str:  # bench_anatomy.py names every report anatomy.json inside its --out folder
        return f"{path.parent.name}/{path.name}" if path.name == "anatomy.json" and path.parent.name != "bench" else path.name

    print("Over runs (pretraining seeds x probe seeds x folds, each run one unit):", "", sep="\n")
    print("| result file | target | guidance | pretraining seeds x probe seeds | probe | guided | unguided | gap (points) | 95% t-CI | gap / larger std |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (path, result), result_rows in zip(loaded, rows):
        st = result["settings"]
        design = f"{len(st.get('pretrain_seeds', [0]))} x {len(st['seeds'])} x {st['folds']} fold"
        for r in result_rows:
            print(f"| {label(path)} | {st.get('pretrain_target', 'x0')} | {guidance_label(st)} | {design} | {r['column']} | {r['guided']:.3f} +- {r['guided_std']:.3f} | "
                  f"{r['unguided']:.3f} +- {r['unguided_std']:.3f} | {100 * r['gap']:+.1f} | {100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f} | "
                  f"{r['gap_in_stds']:.1f} |")
    print("", "Over pretraining seeds (probe seeds and folds averaged first; the criterion: gap / larger std >= 2 over >= 3 of them):",
          "", sep="\n")
    print("| result file | target | guidance | pretraining seeds | probe | guided | unguided | gap (points) | 95% t-CI | gap / larger std | criterion |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (path, result), result_rows in zip(loaded, rows):
        st = result["settings"]
        for r in result_rows:
            q = r["pretraining"]
            met = "met" if q["n"] >= 3 and q["gap_in_stds"] >= 2 else "not met" if q["n"] >= 3 else f"needs >= 3 runs ({q['n']})"
            ci = f"{100 * q['ci_low']:+.1f} to {100 * q['ci_high']:+.1f}" if q["n"] > 1 else "-"
            stds = f"{q['gap_in_stds']:.1f}" if q["n"] > 1 else "-"
            pm = lambda m, sd: f"{m:.3f} +- {sd:.3f}" if q["n"] > 1 else f"{m:.3f}"  # noqa: E731
            print(f"| {label(path)} | {st.get('pretrain_target', 'x0')} | {guidance_label(st)} | {q['n']} | {r['column']} | {pm(q['guided'], q['guided_std'])} | "
                  f"{pm(q['unguided'], q['unguided_std'])} | {100 * q['gap']:+.1f} | {ci} | {stds} | {met} |")
    for (name, control, path, result), table in zip(pairs, control_tables):
        kind = control["settings"]["probe_guide"]
        title = "Zero-guide control" if kind == "zeros" else "Coordinates-in-the-head control"
        print("", f"{title} ({label(name)} on the checkpoints of {label(path)}, guidance "
              f"{guidance_label(result['settings'])}; over pretraining seeds, gap in points with its 95% t-CI):", "", sep="\n")
        arm = CONTROLS[kind][1]
        gaps = ("coordinates - zero guide", "zero guide - unguided") if kind == "zeros" else \
            ("guided - unguided with coordinates in the head", "coordinates in the head - unguided")
        print(f"| probe | guided, coordinates | {arm} | unguided | {gaps[0]} | {gaps[1]} |")
        print("|---|---|---|---|---|---|")
        for r in table:
            a, b = r["guided_vs_control"], r["control_vs_unguided"]
            cell = lambda g: f"{100 * g['gap']:+.1f}" + (f" [{100 * g['ci_low']:+.1f}, {100 * g['ci_high']:+.1f}]" if g["n"] > 1 else "")  # noqa: E731
            print(f"| {r['column']} | {a['guided']:.3f} +- {a['guided_std']:.3f} | {a['unguided']:.3f} +- {a['unguided_std']:.3f} | "
                  f"{b['unguided']:.3f} +- {b['unguided_std']:.3f} | {cell(a)} | {cell(b)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
