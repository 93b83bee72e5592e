"""Guidance variants of the phantom protocol, one bench_anatomy.py run each (non-linear probe, guided vs unguided),
then the guidance-gap table over all of them: issue 19 item 3's search as one resumable command.

Variants are data (configs/benchmark/anatomy/guidance_variants.yaml). Those that change only the guidance share one
unguided arm: its coordinate and pretraining checkpoints are copied into each variant's work folder and reused
(bench_anatomy.py --reuse checks their settings). A variant whose result file is complete is skipped, so a rerun
continues where it stopped; one file per variant is written as soon as it is done. With --unguided-from (a finished
result file of the base settings whose checkpoints --seed-from names), guidance-only variants train and probe only the
guided arm and take the unguided arm's probe runs from that file (the same checkpoints and probe settings; the unguided
probe reproduces bit for bit across work folders): about a third less time per variant, recorded in the result file.

Usage: python bench/bench_anatomy_guidance_variants.py [--variants film input ...] [--work runs/anatomy_variants]
       [--out reports/bench/anatomy_variants] [--seed-from runs/anatomy_v3 [--unguided-from reports/bench/anatomy_target_v3/anatomy.json]]
       -> <out>/<variant>/anatomy.json, <out>/summary.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench_anatomy's report writer, for a result file completed by import_unguided

from anatomy_pretrain.profiles import GUIDANCE_KEYS  # noqa: E402
from unisegdiff.io import write_text_atomic  # noqa: E402

VARIANTS = ROOT / "configs" / "benchmark" / "anatomy" / "guidance_variants.yaml"
BASE_KEYS = {"profile", "pretrain_target", "pretrain_seeds"}
SHARED_CKPTS = ("coordinates.ckpt", "pretrain_diffusion.ckpt")  # what guidance-only variants share
ARMS = {"diffusion": "diffusion", "guided": "diffusion + anatomy guidance"}  # bench_anatomy.py --arms name -> result row


def load_variants(path: Path = VARIANTS) -> tuple[dict, dict]:
    """``(base, variants)`` of the variants file, checked: base has exactly BASE_KEYS, a variant only guidance keys or
    ``profile``. Errors are SystemExit messages naming the file and the keys at fault."""
    import yaml

    if not path.is_file():
        raise SystemExit(f"{path} does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("base"), dict) or not isinstance(data.get("variants"), dict):
        raise SystemExit(f"{path}: expected the mappings 'base' and 'variants'")
    base, variants = data["base"], data["variants"]
    if set(base) != BASE_KEYS:
        raise SystemExit(f"{path}: base must have the keys {sorted(BASE_KEYS)}, got {sorted(base)}")
    for name, v in variants.items():
        unknown = sorted(set(v or {}) - GUIDANCE_KEYS - {"profile"})
        if not isinstance(v, (dict, type(None))) or unknown:
            raise SystemExit(f"{path}: variant {name!r} may set only {sorted(GUIDANCE_KEYS | {'profile'})}, got {unknown or v!r}")
    return base, {name: dict(v or {}) for name, v in variants.items()}


def bench_args(base: dict, variant: dict, work: Path, out: Path, arms: tuple[str, ...] = ("diffusion", "guided")) -> list[str]:
    """bench_anatomy.py's arguments for one variant (by default the guided and unguided arms; non-linear probe, no
    hippocampus)."""
    args = ["--profile", str(variant.get("profile", base["profile"])), "--pretrain-target", str(base["pretrain_target"]),
            "--pretrain-seeds", *map(str, base["pretrain_seeds"]), "--columns", "nonlinear", "--arms", *arms,
            "--skip-hippocampus", "--reuse", "--work", str(work), "--out", str(out)]
    for key in sorted(GUIDANCE_KEYS & set(variant)):
        value = variant[key]
        args += [f"--{key.replace('_', '-')}", *(map(str, value) if isinstance(value, (list, tuple)) else [str(value)])]
    return args


def seed_dirs(work: Path, seeds: list[int]) -> list[Path]:
    """bench_anatomy.py's checkpoint folders of fold 0: seed 0 in fold0/, seed s in fold0/pretrain_seed<s>/."""
    return [work / "fold0" if s == 0 else work / "fold0" / f"pretrain_seed{s}" for s in seeds]


def share_unguided(source: Path, work: Path, seeds: list[int]) -> list[str]:
    """Copy the coordinate model and the unguided checkpoints of ``source`` into ``work`` where ``work`` lacks them;
    returns the copied paths (relative to ``work``). Nothing is overwritten."""
    copied = []
    for src_dir, dst_dir in zip(seed_dirs(source, seeds), seed_dirs(work, seeds)):
        for name in SHARED_CKPTS:
            if name == "coordinates.ckpt" and src_dir != source / "fold0":
                continue  # one coordinate model per fold
            src, dst = src_dir / name, dst_dir / name
            if src.is_file() and not dst.exists():
                dst_dir.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                copied.append(str(dst.relative_to(work)))
    return copied


def complete(result_file: Path, seeds: list[int], arms: tuple[str, ...] = ("diffusion", "guided")) -> bool:
    """True when ``result_file`` holds every run of ``arms`` (folds x pretraining seeds x probe seeds)."""
    if not result_file.is_file():
        return False
    r = json.loads(result_file.read_text())
    want = expected_runs(r["settings"]) if "pretrain_seeds" in r["settings"] else len(seeds) * len(r["settings"]["seeds"])
    return all(len(nonlinear_runs(r, arm)) == want for arm in arms)


def nonlinear_runs(result: dict, arm: str) -> list[float]:
    """The non-linear probe runs of ``arm`` (a --arms name) in a result file; [] where it has none."""
    return result.get("probes", {}).get(ARMS[arm], {}).get("nonlinear", {}).get("runs", [])


def expected_runs(settings: dict) -> int:
    """Probe runs per arm and column of a bench_anatomy.py result: folds x pretraining seeds x probe seeds."""
    return int(settings.get("folds", 1)) * len(settings.get("pretrain_seeds", [0])) * len(settings["seeds"])


def check_reference(reference_file: Path, base: dict, profile: str) -> dict:
    """The ``--unguided-from`` file, read and checked before any run: a result of ``profile`` with the base's target and
    pretraining seeds and a complete unguided non-linear arm; SystemExit naming the fault otherwise."""
    ref = json.loads(Path(reference_file).read_text())
    st = ref.get("settings", {})
    want = {"profile": profile, "pretrain_target": base["pretrain_target"], "pretrain_seeds": list(base["pretrain_seeds"])}
    got = {"profile": ref.get("profile"), "pretrain_target": st.get("pretrain_target"), "pretrain_seeds": st.get("pretrain_seeds")}
    differ = [f"{k}: {got[k]!r} there, {want[k]!r} here" for k in want if got[k] != want[k]]
    if differ:
        raise SystemExit(f"--unguided-from {reference_file}: not a run of the base settings ({'; '.join(differ)})")
    runs = nonlinear_runs(ref, "diffusion")
    if "seeds" not in st or len(runs) != expected_runs(st):
        raise SystemExit(f"--unguided-from {reference_file}: its unguided ('diffusion') non-linear arm has {len(runs)} runs, "
                         f"not {expected_runs(st) if 'seeds' in st else '?'}; give a finished run")
    return ref


def import_unguided(result_file: Path, reference_file: Path, seed_from: Path | None = None) -> dict:
    """Complete a guided-only result file with the unguided arm of ``reference_file``, in place (atomically), and
    return it. The reference must share every setting except the guidance keys and the arm list, hold the unguided
    non-linear runs, and (where both record it) the same coordinate model; otherwise SystemExit naming the fault. The
    result records where its unguided arm came from (``unguided_from``)."""
    result, ref = (json.loads(Path(f).read_text()) for f in (result_file, reference_file))
    ignore = GUIDANCE_KEYS | {"arms"}
    mine = {k: v for k, v in result["settings"].items() if k not in ignore}
    theirs = {k: v for k, v in ref.get("settings", {}).items() if k not in ignore}
    differ = [f"{k} ({theirs.get(k)!r} there, {mine.get(k)!r} here)" for k in sorted(mine.keys() | theirs.keys())
              if mine.get(k) != theirs.get(k)]
    if differ:
        raise SystemExit(f"--unguided-from {reference_file}: its settings differ from {result_file} in {', '.join(differ)}; "
                         "give the result file of the run whose checkpoints --seed-from names")
    if result.get("device") != ref.get("device"):
        raise SystemExit(f"--unguided-from {reference_file}: probed on {ref.get('device')!r}, this run on "
                         f"{result.get('device')!r}; probes reproduce exactly only on the same device, so run both arms here")
    unguided = ref.get("probes", {}).get(ARMS["diffusion"], {})
    want = expected_runs(result["settings"])
    have = len(nonlinear_runs(ref, "diffusion"))
    if have != want:
        raise SystemExit(f"--unguided-from {reference_file}: its unguided ('diffusion') non-linear arm has {have} of the "
                         f"{want} runs; give a finished run")
    r_mine, r_ref = (d.get("coordinates", {}).get("distance_r_mean") for d in (result, ref))
    if r_mine is not None and r_ref is not None and abs(r_mine - r_ref) > 1e-6:
        raise SystemExit(f"--unguided-from {reference_file}: another coordinate model (distance r {r_ref:.6f} vs {r_mine:.6f} "
                         f"in {result_file}); give --seed-from the work folder that produced {reference_file}")
    result["probes"] = {ARMS["diffusion"]: unguided, **{k: v for k, v in result["probes"].items() if k != ARMS["diffusion"]}}
    result["settings"]["arms"] = ["diffusion", *[a for a in result["settings"]["arms"] if a != "diffusion"]]
    for key in ("pretrain_sec_per_step", "feature_effective_rank"):
        if ARMS["diffusion"] in ref.get(key, {}):
            result.setdefault(key, {})[ARMS["diffusion"]] = ref[key][ARMS["diffusion"]]
    result["unguided_from"] = {"file": str(reference_file), "seed_from": None if seed_from is None else str(seed_from),
                               "note": "matched on settings, device and coordinate model r; the unguided probes were not "
                               "run again (they reproduce bit for bit across work folders on one machine)"}
    from bench_anatomy import write_reports  # noqa: E402  (its JSON and markdown, as if it had run both arms)

    write_reports(result, Path(result_file).parent, Path(result_file).stem)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(VARIANTS))
    parser.add_argument("--variants", nargs="+", help="variants to run (default: all of the config, in its order)")
    parser.add_argument("--work", default=str(ROOT / "runs" / "anatomy_variants"))
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench" / "anatomy_variants"))
    parser.add_argument("--seed-from", help="a finished bench_anatomy.py work folder of the base settings (e.g. runs/anatomy_v3) "
                        "whose coordinate and unguided checkpoints the guidance-only variants reuse")
    parser.add_argument("--unguided-from", help="with --seed-from: the result file of the run that made those checkpoints "
                        "(e.g. reports/bench/anatomy_target_v3/anatomy.json); guidance-only variants then run the guided "
                        "arm only and take the unguided probe runs from it")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    base, variants = load_variants(Path(args.config))
    chosen = args.variants or list(variants)
    unknown = [v for v in chosen if v not in variants]
    if unknown:
        raise SystemExit(f"--variants {unknown}: not in {args.config} (variants: {list(variants)})")
    if args.seed_from and not (Path(args.seed_from) / "fold0").is_dir():
        raise SystemExit(f"--seed-from {args.seed_from}: no fold0/ there; give a bench_anatomy.py --work folder")
    if args.unguided_from and not args.seed_from:
        raise SystemExit(f"--unguided-from {args.unguided_from}: needs --seed-from, the work folder that produced it")
    if args.unguided_from and not Path(args.unguided_from).is_file():
        raise SystemExit(f"--unguided-from {args.unguided_from}: no such file; give a bench_anatomy.py result file")
    work_root, out_root = Path(args.work), Path(args.out)
    shared = Path(args.seed_from) if args.seed_from else None
    seeds = list(base["pretrain_seeds"])
    for name in chosen:
        variant, work, out = variants[name], work_root / name, out_root / name
        if complete(out / "anatomy.json", seeds):
            print(f"{name}: done ({out / 'anatomy.json'})", flush=True)
            continue
        guidance_only = variant.get("profile", base["profile"]) == base["profile"]
        if guidance_only and shared is not None:
            copied = share_unguided(shared, work, seeds)
            if copied:
                print(f"{name}: reusing {', '.join(copied)} from {shared}", flush=True)
        borrow = guidance_only and args.unguided_from is not None
        arms = ("guided",) if borrow else ("diffusion", "guided")
        if borrow:
            check_reference(Path(args.unguided_from), base, variant.get("profile", base["profile"]))  # before, not after, the run
        if not (borrow and complete(out / "anatomy.json", seeds, arms)):  # a guided-only run interrupted before the import
            cmd = [sys.executable, str(ROOT / "bench" / "bench_anatomy.py"), *bench_args(base, variant, work, out, arms),
                   "--threads", str(args.threads)]
            print(f"{name}: {' '.join(cmd[1:])}", flush=True)
            subprocess.run(cmd, check=True)
        if borrow:
            import_unguided(out / "anatomy.json", Path(args.unguided_from), shared)
            print(f"{name}: unguided arm taken from {args.unguided_from}", flush=True)
        if guidance_only and shared is None:
            shared = work  # later guidance-only variants reuse this one's unguided arm
    done = [out_root / n / "anatomy.json" for n in variants if complete(out_root / n / "anatomy.json", seeds)]
    if done:
        gap = subprocess.run([sys.executable, str(ROOT / "bench" / "anatomy_guidance_gap.py"), *map(str, done)],
                             check=True, capture_output=True, text=True).stdout
        write_text_atomic(f"# Guidance variants ({Path(args.config).name})\n\n{gap}", out_root / "summary.md")
        print(gap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
