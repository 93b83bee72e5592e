"""The ``unisegdiff`` entry point: imports run one way (importlib loads included), extra commands load lazily
and a missing one is a clear error."""

import ast
from pathlib import Path

import pytest

from unisegdiff import cli

PACKAGE = Path(cli.__file__).parent


def _imports(module: str) -> set[str]:
    """Project modules a module imports: import statements anywhere, and module names the CLI loads by importlib."""
    path = PACKAGE.joinpath(*module.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    if module == "unisegdiff.cli":
        found.update(target for target, _ in cli.EXTRA_COMMANDS.values())
    return {m for m in found if m.startswith("unisegdiff.") and PACKAGE.joinpath(*m.split(".")[1:]).with_suffix(".py").is_file()}


def test_cli_modules_import_one_way():
    start = ["unisegdiff.cli", "unisegdiff.lightning_cli", "unisegdiff.sweeps", "unisegdiff.cli_argv", "unisegdiff.checkpoint_cli"]
    graph, todo = {}, list(start)
    while todo:
        module = todo.pop()
        if module not in graph:
            graph[module] = _imports(module)
            todo.extend(graph[module])
    assert "unisegdiff.sweeps" in graph["unisegdiff.cli"] and "unisegdiff.lightning_cli" in graph["unisegdiff.sweeps"]

    def reaches(a: str, b: str, seen=()) -> bool:
        return any(n == b or (n not in seen and reaches(n, b, (*seen, n))) for n in graph.get(a, ()))

    cycles = sorted(m for m in graph if reaches(m, m))
    assert not cycles, f"import cycle through {cycles}"


def test_missing_extra_command_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.EXTRA_COMMANDS, "score", ("unisegdiff.no_such_scoring", "score"))
    assert cli.main(["score", "pred", "gt"]) == 2
    assert "unisegdiff score: not available in this version (unisegdiff.no_such_scoring is missing)" in capsys.readouterr().err


def test_score_is_registered_and_listed(capsys):
    assert cli.EXTRA_COMMANDS["score"][0] == "unisegdiff.scoring"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "score" in capsys.readouterr().out
