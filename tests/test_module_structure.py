"""The package's shape: imports among nnviz_report's modules point one way (no cycle, counting
imports under ``TYPE_CHECKING`` and inside functions, which still tie the modules together), and
no module grows past a screenful of concerns (450 lines)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nnviz_report"
MAX_LINES = 450
# Over the limit for now, each with the reason; remove the entry when the module is split.
OVERSIZED: set[str] = set()


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name → file, for every module of ``package`` (a package is its ``__init__``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_modules(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """Every module of ``known`` that ``name`` imports, wherever the import stands."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # from package import module
                    yield f"{base}.{alias.name}"
                elif base in known:  # from module import name
                    yield base


def import_graph(package: Path) -> dict[str, set[str]]:
    modules = module_names(package)
    known = set(modules)
    return {name: set(imported_modules(name, path, known)) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 40 and "nnviz_report.pipeline" in graph["nnviz_report.compare"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_no_module_over_the_line_limit() -> None:
    lengths = {str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
               for path in module_names(PACKAGE).values()}
    over = {name: n for name, n in lengths.items() if n > MAX_LINES and name not in OVERSIZED}
    assert not over, f"modules over {MAX_LINES} lines (split them): {over}"
    stale = {name for name in OVERSIZED if lengths.get(name, 0) <= MAX_LINES}
    assert not stale, f"no longer over {MAX_LINES} lines: remove from OVERSIZED: {stale}"


def test_the_cycle_finder_sees_type_checking_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .version import VERSION\n")
    (package / "version.py").write_text("VERSION = 1\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("from ..c import thing\n")
    (package / "c.py").write_text("def thing():\n    from . import a\n")
    graph = import_graph(package)
    assert graph["pkg"] == {"pkg.version"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    (package / "c.py").write_text("def thing():\n    from .version import VERSION\n")
    assert find_cycle(import_graph(package)) is None
