"""``unisegdiff data``: ``check <root>`` reports every problem of a canonical root; ``import <kind> <src> <dst>``
converts an official archive; ``phantoms <root>`` writes the embedded phantoms. Also ``python -m unisegdiff.data.cli``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable

from rich.progress import track

from unisegdiff.data.errors import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unisegdiff data", description="dataset tools for the canonical layout <root>/<dataset>/images|masks/<stem>")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser("check", help="scan a root and report every problem (exit code 1 if any)")
    check.add_argument("root")
    check.add_argument("--registry", help="extra registry YAML merged over configs/data/registry.yaml")

    from unisegdiff.data.importers import IMPORTERS
    imp = commands.add_parser("import", help="convert an official archive into the canonical layout")
    imp.add_argument("kind", choices=sorted(IMPORTERS))
    imp.add_argument("src", help="folder where the official archive was extracted (never modified)")
    imp.add_argument("dst", help="canonical root to write <dst>/<dataset>/images|masks into")
    imp.add_argument("--dataset", help="dataset folder name (default: the registry name for this kind)")
    imp.add_argument("--overwrite", action="store_true", help="replace files of an earlier import")
    imp.add_argument("--lesion-only", dest="lesion_only", action=argparse.BooleanOptionalAction, default=None,
                     help="lgg/lits: keep only slices with lesion (lits default: on, lgg default: off)")
    imp.add_argument("--stride", type=int, default=1, help="lits: keep every N-th slice")
    imp.add_argument("--window", type=float, nargs=2, default=(-100.0, 200.0), metavar=("LOW", "HIGH"), help="lits: HU window")
    imp.add_argument("--lesion-label", dest="lesion_label", type=int, default=2, help="lits: label value of the lesion (2: tumour)")
    imp.add_argument("--include-normal", dest="include_normal", action="store_true", help="busi: also import the 'normal' class (empty masks)")

    phantoms = commands.add_parser("phantoms", help="write the embedded lesion phantoms as a canonical root")
    phantoms.add_argument("root")
    phantoms.add_argument("--n", type=int, default=24, help="phantoms per style")
    phantoms.add_argument("--size", type=int, default=128)
    phantoms.add_argument("--seed", type=int, default=0)
    phantoms.add_argument("--overwrite", action="store_true")
    return parser


def _progress(items: Iterable, label: str, total: int) -> Iterable:
    return track(items, description=f"checking {label}", total=total, transient=True)


def _dataset_counts(root: Path, problems: list) -> list[str]:
    """One line per dataset folder of ``root``: its image/mask pairs and how many problems name a file in it."""
    from unisegdiff.data.canonical import IMAGES_DIR, MASKS_DIR, scan_dataset

    lines = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (folder / IMAGES_DIR).is_dir() or (folder / MASKS_DIR).is_dir():
            pairs, _ = scan_dataset(root, folder.name)
            inside = sum(1 for p in problems if Path(p.path) == folder or folder in Path(p.path).parents)
            lines.append(f"  {folder.name}: {len(pairs)} pairs" + (f", {inside} problem(s)" if inside else ""))
    return lines


def _check(args: argparse.Namespace) -> int:
    from unisegdiff.data.canonical import IMAGES_DIR, MASKS_DIR
    from unisegdiff.data.checks import check_root

    root = Path(args.root)
    if (root / IMAGES_DIR).is_dir() or (root / MASKS_DIR).is_dir():
        parent = root.resolve().parent
        print(f"error: {args.root} is a dataset folder (it holds {IMAGES_DIR}/ or {MASKS_DIR}/), not a root of datasets; "
              f"pass its parent: unisegdiff data check {parent}", file=sys.stderr)
        return 2
    problems = check_root(root, args.registry, progress=_progress if sys.stderr.isatty() else None)
    for problem in problems:
        print(problem)
    if root.is_dir():
        print("\n".join([f"{args.root}:", *_dataset_counts(root, problems)]))
    print(f"{len(problems)} problem(s) found in {args.root}" if problems else f"{args.root}: no problems found")
    return 1 if problems else 0


def _import(args: argparse.Namespace) -> int:
    from unisegdiff.data.importers import IMPORTERS
    from unisegdiff.data.registry import load_registry

    importer = IMPORTERS[args.kind]
    registered = [spec.folder for spec in load_registry().values() if spec.importer == ("tn3k" if args.kind == "tg3k" else args.kind)]
    options = {"dataset": args.dataset or (registered[0] if registered else args.kind), "overwrite": args.overwrite, "progress": True}
    if args.kind == "lits":
        options.update(window=tuple(args.window), stride=args.stride, lesion_label=args.lesion_label,
                       lesion_only=True if args.lesion_only is None else args.lesion_only)
    elif args.kind == "lgg":
        options["lesion_only"] = bool(args.lesion_only)
    elif args.kind == "busi":
        options["include_normal"] = args.include_normal
    print(importer(args.src, args.dst, **options))
    return 0


def _phantoms(args: argparse.Namespace) -> int:
    from unisegdiff.data.phantoms import write_phantom_root

    root = write_phantom_root(args.root, args.n, args.size, args.seed, overwrite=args.overwrite)
    print(f"phantoms written to {root} ({args.n} per style, {args.size}x{args.size}, seed {args.seed})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return {"check": _check, "import": _import, "phantoms": _phantoms}[args.command](args)
    except (DataError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
