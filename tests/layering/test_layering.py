"""The roles' boundaries hold: `oracle`, `node` and `api` import only `protocol` (never one another),
`protocol` imports no role, and no import cycle stands among the project's modules.

Imports are read from the source (ast), so a lazy import inside a function counts as much as one at
the top of a module; only imports under `if TYPE_CHECKING:` are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocol", "oracle", "node", "api", "negawatt", "bench", "buyer", "vtn")
ROLES = ("oracle", "node", "api", "buyer", "vtn")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Project modules `module` imports (resolved to the longest known module name)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    resolved = set()
    for name in names:
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            candidate = ".".join(parts[:cut])
            if candidate in known:
                if candidate != module:
                    resolved.add(candidate)
                break
    return resolved


def _graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    modules = _modules()
    return {module: _imports(path, module, set(modules)) for module, path in modules.items()}


def _edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [(source, target) for source, targets in graph.items() for target in targets]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each one import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_role_imports_another_role_and_protocol_imports_none():
    graph = _graph()
    crossing = []
    for source, target in _edges(graph):
        src, dst = source.split(".")[0], target.split(".")[0]
        if src in ROLES and dst in ROLES and src != dst:
            crossing.append(f"{source} -> {target}")
        if src == "protocol" and dst != "protocol":
            crossing.append(f"{source} -> {target}")
    assert not crossing, "imports across roles:\n" + "\n".join(sorted(crossing))


def test_no_import_cycle():
    graph = _graph()
    cycles = _cycles(graph)
    assert not cycles, "modules in import cycles:\n" + "\n".join(", ".join(c) for c in cycles)


@pytest.mark.parametrize("role", ROLES)
def test_the_graph_sees_each_role(role):
    """The checks above would pass vacuously if the walk found nothing; it must see protocol imports."""
    graph = _graph()
    assert any(t.startswith("protocol") for s, t in _edges(graph) if s.startswith(role + "."))
