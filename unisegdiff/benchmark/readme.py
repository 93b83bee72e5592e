"""The benchmark README in Markdown from the results of report.build_results: a verdict in plain words
generated from the numbers, then the tables, settings, how the statistics are computed and the figures."""

from __future__ import annotations

import math
from typing import Any

# `staged` is the paper's frozen two-phase plan (staged.yaml + staged_two_phase.yaml); staged.yaml's end-to-end
# default is the standard profile's `joint_e2e` variant, named by its key like every variant
NAMES = {"unet": "the U-Net", "staged": "the two-phase staged model", "eps": "the eps-diffusion model",
         "unet_walltime": "the U-Net trained for the two-phase staged model's wall time"}

STATISTICS = (
    "Each score is first averaged over the test images of a dataset per seed; the tables give the mean ± sample std "
    "(ddof=1) of these per-seed means over seeds (no std with one seed). The paired difference of a method and the "
    "reference uses each test image's Dice **averaged over the seeds both methods have**, so that one pair per image "
    "enters: its mean, a 95% paired-bootstrap BCa confidence interval over images (`scipy.stats.bootstrap`), the "
    "two-sided Wilcoxon signed-rank p-value (`scipy.stats.wilcoxon`) and wins/ties/losses over images (a tie is a "
    "difference within 0.1 Dice points). The interval covers the sampling of test images, not a fresh training run: "
    "the std over seeds shows that. A method is called better or worse when the 95% CI excludes 0, else not "
    "distinguishable. The honest macro is the unweighted mean over the datasets with at least {min_images} test images; "
    "smaller sets stay in the tables, marked `n<{min_images}`. ECE (15 equal-width bins) and the AUROC of the "
    "uncertainty map for error pixels are pixel-level, per dataset and seed. Risk-coverage: the mean Dice of the images "
    "kept when the 10%/20% most uncertain images (mean uncertainty per image, floor of the fraction) are dropped, "
    "per seed, then averaged over seeds. HD95 averages the images where it is defined.")

FIGURES = {"dice_by_dataset.png": "Dice per dataset and method, error bars: std over seeds",
           "paired_differences.png": "paired Dice difference to the reference per dataset, 95% bootstrap CI",
           "reliability.png": "reliability diagram per method, pixels pooled over datasets and seeds",
           "risk_coverage.png": "mean Dice of the kept images against coverage, datasets with enough images"}


def name(method: str) -> str:
    return NAMES.get(method, f"`{method}`")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _num(x: Any, fmt: str = ".3f") -> str:
    return format(x, fmt) if _finite(x) else "n/a"


def _pm(summary: dict | None, fmt: str = ".3f") -> str:
    if summary is None:
        return "n/a"
    return _num(summary["mean"], fmt) + (f" ± {summary['std']:{fmt}}" if _finite(summary["std"]) else "")


def _p(p: float) -> str:
    return "p<0.001" if _finite(p) and p < 0.001 else f"p={_num(p, '.2g')}"


def _budget(results: dict, method: str) -> str:
    cost, ref = results["cost"], results["reference"]
    c, r = cost[method], cost[ref]
    if c["equal_train_steps_to_reference"]:
        return f"at equal compute ({_num(r['train_steps'], '.0f')} train steps each)"
    return (f"at UNEQUAL compute ({name(ref)}: {_num(r['train_steps'], '.0f')} train steps in {_num(r['train_seconds'], '.0f')} s; "
            f"{name(method)}: {_num(c['train_steps'], '.0f')} in {_num(c['train_seconds'], '.0f')} s)")


def _compare(a: Any, b: Any, higher_better: bool) -> str:
    if not (_finite(a) and _finite(b)):
        return "not available"
    if math.isclose(a, b, abs_tol=1e-12):
        return "equal"
    return ("higher" if a > b else "lower") + (" (better)" if (a > b) == higher_better else " (worse)")


def verdict_sentence(results: dict, section: dict, dataset: str, method: str) -> str:
    """One verdict: better / worse / not distinguishable (the 95% CI excludes 0 or not), then uncertainty."""
    ref, d = results["reference"], section["paired_dice"][method]["datasets"][dataset]
    mean, low, high = (100 * d[k] if _finite(d[k]) else math.nan for k in ("mean", "ci_low", "ci_high"))
    seeds = len(section["paired_dice"][method]["seeds"])
    stats = f"95% CI {_num(low, '.1f')} to {_num(high, '.1f')}, Wilcoxon {_p(d['p_value'])}, {seeds} seed{'s' * (seeds != 1)}"
    if low > 0:
        verdict = f"better than {name(ref)} by {mean:.1f} Dice points ({stats})"
    elif high < 0:
        verdict = f"worse than {name(ref)} by {-mean:.1f} Dice points ({stats})"
    else:
        verdict = f"not distinguishable from {name(ref)} ({mean:+.1f} Dice points, {stats})"
    own, other = section["methods"][method]["datasets"][dataset], section["methods"][ref]["datasets"][dataset]
    values = {key: ((own[key] or {}).get("mean"), (other[key] or {}).get("mean")) for key in ("uncertainty_auroc", "ece")}
    auroc, ece = values["uncertainty_auroc"], values["ece"]
    return (f"On {dataset} {name(method)} is {verdict} {_budget(results, method)}. Its uncertainty AUROC is "
            f"{_compare(*auroc, True)} than {name(ref)}'s ({_num(auroc[0])} vs {_num(auroc[1])}) and its ECE "
            f"{_compare(*ece, False)} ({_num(ece[0])} vs {_num(ece[1])}).")


def verdict(results: dict, section: dict, where: str = "the test set") -> list[str]:
    min_images, ref = results["min_images"], results["reference"]
    large = [ds for ds, info in section["datasets"].items() if info["n"] >= min_images]
    compared = [m for m, block in section["paired_dice"].items() if "datasets" in block]
    if not large or not compared:
        why = (f"no dataset of {where} has at least {min_images} test images" if not large else "no compared method has "
               + ("a seed in common with the reference" if section["paired_dice"] else "result files"))
        return [f"No verdict: {why}; the tables show every dataset."]
    lines = [f"- {verdict_sentence(results, section, ds, m)}" for ds in large for m in compared]
    macro = "; ".join(f"{name(m)} {_num(block['macro_dice']['value'])}"
                      + (f" ± {_num(block['macro_dice']['over_seeds']['std'])}" if block["macro_dice"]["over_seeds"]
                         and _finite(block["macro_dice"]["over_seeds"]["std"]) else "")
                      for m, block in section["methods"].items())
    diff = "; ".join(f"{name(m)} − {name(ref)} {100 * section['paired_dice'][m]['macro']['value']:+.1f} points" for m in compared)
    lines.append(f"- Honest macro Dice over the datasets with at least {min_images} test images ({', '.join(large)}): {macro}. "
                 f"Macro of the paired differences: {diff}.")
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _dataset_cell(section: dict, ds: str) -> str:
    info = section["datasets"][ds]
    return f"{ds} (n={info['n']}" + (f", **{info['mark']}**)" if info["mark"] else ")")


def metric_table(section: dict, metric: str, fmt: str = ".3f") -> list[str]:
    methods = list(section["methods"])
    rows = [[_dataset_cell(section, ds)] + [_pm(section["methods"][m]["datasets"][ds][metric], fmt) for m in methods]
            for ds in section["datasets"]]
    if metric == "dice":
        rows.append(["**honest macro**"] + [_num(section["methods"][m]["macro_dice"]["value"]) for m in methods])
    return _table(["dataset", *methods], rows)


def paired_table(section: dict, reference: str) -> list[str]:
    rows = []
    for method, block in section["paired_dice"].items():
        for ds, d in (block.get("datasets") or {}).items():
            rows.append([_dataset_cell(section, ds), f"{method} − {reference}", f"{100 * d['mean']:+.1f}",
                         f"{_num(100 * d['ci_low'], '.1f')} to {_num(100 * d['ci_high'], '.1f')}", _p(d["p_value"]),
                         f"{d['wins']}/{d['ties']}/{d['losses']}", ", ".join(map(str, block["seeds"]))])
        if "macro" in block:
            rows.append(["**honest macro**", f"{method} − {reference}", f"{_num(100 * block['macro']['value'], '+.1f')}", "", "", "", ""])
    return _table(["dataset", "difference", "mean (Dice points)", "95% CI", "Wilcoxon", "wins/ties/losses", "seeds"], rows)


def uncertainty_table(section: dict) -> list[str]:
    rows = [[_dataset_cell(section, ds), m, _pm(b["ece"]), _pm(b["uncertainty_auroc"]), _pm(b["dice"]),
             _pm(b["risk_coverage"]["drop_0.1"]), _pm(b["risk_coverage"]["drop_0.2"])]
            for ds in section["datasets"] for m, block in section["methods"].items() for b in [block["datasets"][ds]]]
    return _table(["dataset", "method", "ECE ↓", "uncertainty AUROC ↑", "Dice, all images",
                   "Dice, 10% most uncertain dropped", "Dice, 20% dropped"], rows)


def cost_table(results: dict) -> list[str]:
    rows = []
    for m, c in results["cost"].items():
        steps = _num(c["train_steps"], ".0f") + (f" ({_num(c['phase1_steps'], '.0f')} + {_num(c['phase2_steps'], '.0f')})" if c["phase1_steps"] else "")
        rows.append([m, str(len(c["seeds"])), steps, ", ".join(map(str, c["batch_size"])), _num(c["train_seconds"], ".0f"),
                     _num(c["train_seconds_multiple_of_reference"], ".2f") + "×", _num(c["inference_seconds_per_image"], ".3f"),
                     _num(c["inference_seconds_per_image_multiple_of_reference"], ".2f") + "×", f"{c['calls_per_sample']} × {c['num_samples']}"])
    return _table(["method", "seeds", "train steps (phase 1 + 2)", "batch", "train s", f"× {results['reference']}",
                   "inference s/image", f"× {results['reference']}", "calls per sample × samples"], rows)


def _section_body(results: dict, section: dict) -> list[str]:
    ref = results["reference"]
    return ["### Dice (mean ± std over seeds)", "", *metric_table(section, "dice"), "",
            f"### Paired differences to {ref} (per-image Dice averaged over the common seeds)", "", *paired_table(section, ref), "",
            "### Uncertainty and risk-coverage (mean ± std over seeds)", "", *uncertainty_table(section), "",
            "### IoU (mean ± std over seeds)", "", *metric_table(section, "iou"), "",
            "### HD95 in pixels (mean ± std over seeds; images where it is defined)", "", *metric_table(section, "hd95", ".1f")]


def _cpu_line(record: dict) -> str:
    """One CPU model, or each model with the runs that used it."""
    runs = record.get("cpu_model_of_runs") or {}
    if len(record.get("cpu_models") or []) <= 1:
        return f"- CPU model: {record['cpu_model']}"
    by_cpu: dict[str, list[str]] = {}
    for method, seeds in runs.items():
        for seed, cpu in seeds.items():
            by_cpu.setdefault(str(cpu), []).append(f"{method} {seed}")
    return "- CPU models: " + "; ".join(f"{cpu} ({', '.join(names)})" for cpu, names in sorted(by_cpu.items()))


def render_readme(results: dict, figure_names: list[str]) -> str:
    ref, record = results["reference"], results["run_record"]
    seeds = min(len(s) for s in results["methods"].values())
    lines = [f"# Benchmark report (profile `{results['profile']}`)", "", "## Verdict", "", *verdict(results, results["test"]), ""]
    if seeds < 3:
        short = ", ".join(f"{m} {len(s)}" for m, s in sorted(results["methods"].items()) if len(s) < 3)
        lines += [f"**{seeds} seed{'s' * (seeds != 1)}: the CIs cover image sampling only, not training noise** "
                  f"(at least 3 seeds per method are needed to see the seed-to-seed spread; seeds so far: {short}).", ""]
    unequal = [m for m in results["equal_train_steps"]["methods"] if not results["cost"][m]["equal_train_steps_to_reference"]]
    if unequal:
        lines += [f"**Unequal training budgets**: {', '.join(unequal)} did not train {ref}'s "
                  f"{_num(results['cost'][ref]['train_steps'], '.0f')} optimizer steps at its batch size in every seed (see Cost).", ""]
    other_cpu = record.get("other_cpu_than_reference") or []
    if other_cpu:
        lines += [f"**Mixed machines**: {', '.join(other_cpu)} ran on another CPU model than {ref} of the same seed (see Settings); "
                  "bf16 numerics differ between CPUs, so those paired differences include a machine effect.", ""]
    if results["missing_methods"]:
        lines += [f"No result files for {', '.join(results['missing_methods'])}.", ""]
    lines += ["## Test set", "", *_section_body(results, results["test"]), "", "## Cost", "", *cost_table(results), ""]
    speed = results["speed_subset"]
    if speed:
        rows = [[label, str(e.get("images")), _num(e.get("seconds_per_image")), str(e.get("calls_per_sample")), _num(e.get("dice"))]
                for label, e in speed["entries"].items()]
        lines += ["### Speed on a fixed subset (first seed)", "", *_table(["run", "images", "s/image", "calls per sample", "Dice"], rows), ""]
        if speed["staged_speedup_vs_eps_ddpm1000"]:
            lines += [f"The two-phase staged model is {speed['staged_speedup_vs_eps_ddpm1000']:.1f}× faster per image than eps DDPM-1000.", ""]
    cv = results.get("cross_validation")
    if cv:
        k = "/".join(map(str, cv["folds"]))
        lines += [f"## Small sets, {k}-fold cross-validation", "",
                  f"Each dataset with fewer than {results['min_images']} test images, cross-validated: {k} more trainings per "
                  "method and seed at the same budget, each tested on one fold of those sets (the other datasets keep their "
                  "split), so every image of them is a test image once.", "", *verdict(results, cv, "the cross-validated small sets"), "",
                  *_section_body(results, cv), ""]
    for root, section in results["external"].items():
        lines += [f"## External set `{root}` (models not retrained)", "", *verdict(results, section, f"`{root}`"), "",
                  *_section_body(results, section), ""]
    lines += ["## Settings", "", f"- profile: `{results['profile']}`", _cpu_line(record),
              f"- threads: {record['threads']}", f"- torch: {record['torch']}", f"- precision: {record['precision']}",
              f"- git commit: {record['git_commit']}" + (" (dirty tree)" if record.get("git_dirty") else ""),
              "- seeds: " + "; ".join(f"{m} {', '.join(map(str, s))}" for m, s in results["methods"].items()),
              f"- bootstrap resamples: {results['n_resamples']}; honest macro: datasets with at least {results['min_images']} test images", "",
              "## How the statistics are computed", "", STATISTICS.format(min_images=results["min_images"]), "",
              "## Figures", "", *(f"- `{f}`: {FIGURES.get(f, '')}" for f in figure_names), "",
              "Data: `results.json` (every number above), `per_image.csv` (every image's scores per method, seed and source)."]
    return "\n".join(lines) + "\n"
