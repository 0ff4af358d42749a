"""The layers: no import circle between mnistbench's top-level packages, and the import-linter
contract in pyproject.toml kept by this tree and broken by an upward import (docs/architecture.md).

Imports are counted as grimp reads them: every import statement, those inside functions and
under TYPE_CHECKING included, since a lazy import couples two packages as much as any other.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import mnistbench

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def package_imports(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """{top-level package or module: the others it imports}, from module-level imports."""

    def top(module: str) -> str:
        return module.split(".")[1]

    edges: dict[str, set[str]] = {}
    for module in graph.modules:
        if module == "mnistbench":
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("mnistbench.") and top(imported) != top(module):
                edges.setdefault(top(module), set()).add(top(imported))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle in `edges` as [a, b, ..., a], or None (depth-first, three colours)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_circle_and_only_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"cli": {"config", "models"}, "models": {"config"}, "config": set()}) is None


def test_no_import_circle_between_top_level_packages() -> None:
    graph = grimp.build_graph("mnistbench", cache_dir=None)
    edges = package_imports(graph)
    assert {"config", "models", "engine", "recipes", "store"} <= set(edges)  # the graph is real
    assert edges["config"] <= {"settings", "errors"}  # a plain record, importing nothing above
    cycle = find_cycle(edges)
    # on failure, name the imports that close the circle, so the message says what to move
    chains = [
        sorted(graph.find_shortest_chains(importer=f"mnistbench.{a}", imported=f"mnistbench.{b}"))
        for a, b in itertools.pairwise(cycle or [])
    ]
    assert cycle is None, f"import circle {' -> '.join(cycle or [])}: {chains}"


def lint_imports(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` over the package under `src`, with the contract in cwd/pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """A copy of the installed package and of the contract, to break on purpose."""
    shutil.copytree(Path(mnistbench.__file__).parent, tmp_path / "src" / "mnistbench",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contract_is_kept_and_an_upward_import_breaks_it(tree_copy: Path) -> None:
    kept = lint_imports(tree_copy / "src", tree_copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout

    # the report reaching the model registry, inside a function (a lazy import counts too)
    module = tree_copy / "src" / "mnistbench" / "report" / "format.py"
    module.write_text(
        module.read_text() + "\n\ndef _wrong():\n    from mnistbench.models import list_models\n"
    )
    broken = lint_imports(tree_copy / "src", tree_copy)
    assert broken.returncode == 1
    assert "mnistbench.report is not allowed to import mnistbench.models" in broken.stdout
    assert "mnistbench.report.format -> mnistbench.models" in broken.stdout


def test_a_new_top_level_module_must_be_placed_in_a_layer(tree_copy: Path) -> None:
    (tree_copy / "src" / "mnistbench" / "unplaced.py").write_text('"""Nowhere yet."""\n')
    result = lint_imports(tree_copy / "src", tree_copy)
    assert result.returncode == 1 and "mnistbench.unplaced" in result.stdout
