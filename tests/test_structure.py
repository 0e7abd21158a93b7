"""The backend's import structure, read from the sources (every import, at module level or inside a
function): no cycles, no library module reaching into the command line, and a client package that
stands alone (the add-on ships a copy of ``nstr.remote`` without the rest of the backend)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "backend" / "nstr"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The nstr modules ``name`` imports anywhere in its source (a ``from package import module`` names the module)."""
    found: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("nstr") and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_reader_sees_the_imports_it_must() -> None:
    """The graph is not empty by accident: known edges, at module level and inside functions, are found."""
    graph = _graph()
    assert len(graph) > 100
    assert "nstr.errors" in graph["nstr.config"]                     # module level
    assert "nstr.geometry.solid" in graph["nstr.tasks.sdf"]           # inside a function
    assert "nstr.server.ray_engine" in graph["nstr.server.engine_choice"]
    assert "nstr.remote.wire" in graph["nstr.remote.client"]          # relative: from . import wire


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_library_code_never_imports_the_command_line() -> None:
    graph = _graph()
    reach = sorted((a, b) for a, deps in graph.items() for b in deps
                   if b.startswith("nstr.cli") and not a.startswith("nstr.cli") and a != "nstr.__main__")
    assert reach == []


def test_the_client_package_stands_alone() -> None:
    """``scripts/build_extension.py`` copies ``nstr/remote`` into the add-on as its own package, which
    runs in Blender's Python (no torch, no numpy needed): it may import only itself."""
    graph = _graph()
    outside = sorted((a, b) for a, deps in graph.items() if a.startswith("nstr.remote")
                     for b in deps if not b.startswith("nstr.remote"))
    assert outside == []
