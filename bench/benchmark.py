"""`make benchmark`: train every method of a profile at equal compute, seed by seed, over the datasets
under UNISEGDIFF_DATA, one result file per (method, seed), then write reports/benchmark/ from them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import unisegdiff  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads)
from unisegdiff import quiet  # noqa: E402
from unisegdiff.benchmark import Benchmark, BenchProfile  # noqa: E402


def parse_external(roots: list[str], maps: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    mapping = {}
    for item in maps:
        folder, sep, name = item.partition("=")
        if not sep or not folder or not name:
            raise SystemExit(f"--external-map takes folder=registry_name, got {item!r}")
        mapping[folder] = name
    return {Path(r).resolve().name: (str(Path(r).resolve()), mapping) for r in roots}


def main() -> int:
    quiet.install(wandb=False)  # known-harmless third-party warnings (unisegdiff/quiet.py); no W&B logger here
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick", help="quick (CPU smoke) | standard (CPU, 3 seeds) | full (GPU) | a profile YAML")
    parser.add_argument("--data", default=os.environ.get("UNISEGDIFF_DATA"), help="canonical data root (default: $UNISEGDIFF_DATA; empty: the embedded phantoms)")
    parser.add_argument("--datasets", nargs="*", default=None, help="subset of registry names (default: the six benchmark sets)")
    parser.add_argument("--out", default=None, help="report folder (default: reports/benchmark for standard, reports/benchmark_<profile> otherwise)")
    parser.add_argument("--work", default=None, help="checkpoints (default: runs/benchmark_<profile>)")
    parser.add_argument("--methods", nargs="*", default=None, help="run only these methods of the profile")
    parser.add_argument("--seeds", nargs="*", type=int, default=None, help="run only these seeds of the profile")
    parser.add_argument("--external", nargs="*", default=[], help="other canonical roots to score every trained model on")
    parser.add_argument("--external-map", nargs="*", default=[], help="folder=registry_name for the external roots' folders")
    parser.add_argument("--deterministic", action="store_true", help="fp32 and deterministic algorithms (same seed, same numbers)")
    parser.add_argument("--report-only", action="store_true", help="write the report from the result files already there")
    args = parser.parse_args()
    path = Path(args.profile) if args.profile.endswith(".yaml") else ROOT / "configs" / "benchmark" / f"{args.profile}.yaml"
    profile = BenchProfile.from_yaml(path)
    if args.deterministic:
        profile.deterministic, profile.precision = True, "32-true"
    name = path.stem
    out = Path(args.out) if args.out else ROOT / "reports" / ("benchmark" if name == "standard" else f"benchmark_{name}")
    work = Path(args.work) if args.work else ROOT / "runs" / f"benchmark_{name}"
    bench = Benchmark(profile, args.data or None, out, work, name, args.datasets, parse_external(args.external, args.external_map))
    for given, allowed, what in ((args.methods, profile.methods, "--methods"), (args.seeds, profile.seeds, "--seeds")):
        if given and set(given) - set(allowed):
            raise SystemExit(f"{what} {sorted(set(given) - set(allowed))} not in the {name} profile ({allowed})")
    if not args.report_only:
        bench.run(args.methods, args.seeds)
    from unisegdiff.benchmark.report import write_report

    # only this profile's methods, and only files made with its settings (reportable() refuses the others)
    files = [f for f in bench.result_files() if f.parent.name in profile.methods and bench.reportable(f.parent.name, int(f.stem[4:]))]
    write_report(files, out, name, compare=[m for m in profile.methods if m != "unet"], min_images=profile.min_images)
    bench.write_timestep_profiles()
    if profile.variants or profile.inference_variants:
        from unisegdiff.benchmark.ablations import write_ablations

        write_ablations(files, out, min_images=profile.min_images)
    print(f"report: {out}/README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
