"""The floors of ARCHITECTURE.md, read from the code: which package imports which (import statements and
the module names loaded by importlib), with no cycle between packages and the 3D half on public surfaces only."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# unit -> the units it may import (a unit is a subpackage of unisegdiff, a top-level module, or anatomy_pretrain)
ALLOWED = {
    "unisegdiff.io": set(),
    "unisegdiff.recipes": set(),
    "unisegdiff.diffusion": set(),
    "unisegdiff.nets": set(),
    "unisegdiff.data": {"unisegdiff.io", "unisegdiff.recipes"},
    "anatomy_pretrain": {"unisegdiff.io", "unisegdiff.diffusion", "unisegdiff.nets"},
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return "anatomy_pretrain" if parts[0] == "anatomy_pretrain" else ".".join(parts[:2])


def _imports_of(path: Path) -> set[str]:
    text = path.read_text()
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    # module names handed to importlib as strings ("unisegdiff.x.y")
    found.update(re.findall(r"[\"']((?:unisegdiff|anatomy_pretrain)(?:\.[a-z_]+)+)[\"']", text))
    return {m for m in found if m.split(".")[0] in ("unisegdiff", "anatomy_pretrain")}


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for package in ("unisegdiff", "anatomy_pretrain"):
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            unit = _unit(module)
            graph.setdefault(unit, set()).update(_unit(m) for m in _imports_of(path) if _unit(m) != unit)
    return graph


def test_low_floors_import_only_what_they_may():
    graph = _graph()
    for unit, allowed in ALLOWED.items():
        assert graph[unit] <= allowed, f"{unit} imports {sorted(graph[unit] - allowed)}; ARCHITECTURE.md allows {sorted(allowed)}"


def test_the_core_never_imports_the_3d_half():
    graph = _graph()  # the CLI reaches anatomy_pretrain's classes only through class paths in configs
    offenders = sorted(u for u, deps in graph.items() if u.startswith("unisegdiff") and "anatomy_pretrain" in deps)
    assert not offenders, offenders


def test_no_import_cycle_between_packages():
    graph = _graph()

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, (*seen, n))) for n in graph.get(a, ()))

    assert not [u for u in graph if reaches(u, u)], {u: sorted(d) for u, d in graph.items() if reaches(u, u)}
