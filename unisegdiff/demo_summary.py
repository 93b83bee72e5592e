"""The last step of ``make demo``: what was trained and for how long, test Dice against the phantom ground truth,
where the figures are and what to type next. ``python -m unisegdiff.demo_summary runs/demo [--command CMD]``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from unisegdiff.fit_feedback import FIT_SUMMARY, TEST_SUMMARY

RUNS = (("condition", "phase 1, condition network"), ("staged", "phase 2, staged diffusion segmenter"))


def _read(path: Path, missing: list[str]) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        missing.append(str(path))
        return {}


def _latest(run_dir: Path, prefix: str) -> Path | None:
    """The figure ``<prefix>_epochNNN.png`` of the highest epoch under ``run_dir`` (any logger's log folder)."""
    found = sorted(run_dir.glob(f"**/figures/{prefix}_epoch*.png"), key=lambda p: (int(re.sub(r"\D", "", p.stem) or 0), str(p)))
    return found[-1] if found else None


def _dice(values: dict) -> str:
    rest = ", ".join(f"{name} {value:.2f}" for name, value in values.items() if name != "macro")
    return f"macro {values['macro']:.3f}" + (f" ({rest})" if rest else "") if "macro" in values else rest or "none logged"


def summary_lines(root: str | Path, command: str = ".venv/bin/unisegdiff") -> tuple[list[str], list[str]]:
    """The summary's lines and the files it looked for and did not find."""
    root, missing = Path(root), []
    lines = ["", "=== demo summary ==="]
    for name, what in RUNS:
        fit = _read(root / name / FIT_SUMMARY, missing)
        if fit:
            seconds = f"{fit['seconds']:.0f} s" if fit.get("seconds") is not None else "time not recorded"
            lines.append(f"trained   {what} ({fit.get('model')}): {fit.get('steps')} steps, {fit.get('epochs')} epochs, "
                         f"{seconds} -> {root / name / 'last.ckpt'}")
    test = _read(root / "staged" / TEST_SUMMARY, missing)
    if test:
        lines.append(f"test Dice against the phantom ground truth: {_dice(test.get('test_dice', {}))}")
    figures = [(label, _latest(root / run, prefix)) for label, run, prefix in
               (("overlays", "staged", "overlay"), ("timestep profile", "staged", "timestep_profile"))]
    for label, path in figures:
        if path is None:
            missing.append(str(root / "staged" / "**" / "figures" / f"{label.replace(' ', '_')}_epoch*.png"))
        else:
            lines.append(f"figures   {label}: {path}")
    checkpoint = root / "staged" / "last.ckpt"
    lines += ["next      " + f"{command} predict {checkpoint} <your images> -o predictions",
              "          " + f"{command} score predictions <your masks>",
              "          make benchmark"]
    return lines, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unisegdiff.demo_summary", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="runs/demo", help="the demo's run folder (default runs/demo)")
    parser.add_argument("--command", default=".venv/bin/unisegdiff", help="how the next commands call unisegdiff")
    args = parser.parse_args(argv)
    lines, missing = summary_lines(args.root, args.command)
    print("\n".join(lines))
    if missing:
        print("not found (did every `make demo` step finish?): " + ", ".join(missing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
