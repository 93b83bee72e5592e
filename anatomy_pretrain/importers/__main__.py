"""``python -m anatomy_pretrain.importers <kind> <src> <dst>``: convert BTCV, AMOS22, an MSD task or TotalSegmentator
into ``<dst>/images`` + ``<dst>/labels`` + ``manifest.json``; errors name the file and the fix.
"""

from __future__ import annotations

import argparse
import sys

from anatomy_pretrain.importers import IMPORTERS, summary

OPTIONS = {  # kind -> the options its importer takes
    "btcv": ("include_testing", "overwrite"),
    "amos": ("modality", "include_test", "overwrite"),
    "msd": ("channel", "include_test", "overwrite"),
    "totalseg": ("overwrite",),
    "totalseg-ml": ("seg", "class_table", "name", "overwrite"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m anatomy_pretrain.importers", description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(IMPORTERS))
    parser.add_argument("src", help="extracted official archive (totalseg-ml: a folder of images/ + labels/, or a CT file with --seg)")
    parser.add_argument("dst", help="destination folder (images/, labels/, manifest.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an earlier import")
    parser.add_argument("--include-testing", action="store_true", help="btcv: also import Testing/img as unlabelled volumes")
    parser.add_argument("--include-test", action="store_true", help="amos, msd: also import imagesTs as unlabelled volumes")
    parser.add_argument("--modality", default="CT", choices=("CT", "MR", "all"), help="amos: which cases (ids > 500 are MR)")
    parser.add_argument("--channel", type=int, help="msd: the channel of 4D multi-modal images to import")
    parser.add_argument("--seg", help="totalseg-ml: the multi-label map of the CT given as src")
    parser.add_argument("--class-table", default="total", help="totalseg-ml: 'total' (v2 ids) or 'total_v1'")
    parser.add_argument("--name", help="totalseg-ml with --seg: the case name (default: the CT's file stem)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = {key: getattr(args, key) for key in OPTIONS[args.kind]}
    try:
        manifest = IMPORTERS[args.kind](args.src, args.dst, **options)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(summary(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
