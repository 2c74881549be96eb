"""Dependencies point one way: core <- runtimes and connectors <- command line; no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "connectors", "tidegate")
# The Kafka runtime is the `streams.kafka` package.
EMBEDDED = "embedded runtime"
KAFKA = "kafka runtime"
LAYER = {"core": 0, "ports": 0, EMBEDDED: 1, KAFKA: 1, "connectors": 1, "command line": 2}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """The layer group a module belongs to."""
    if module in ("streams", "streams.core") or module.startswith("streams.core."):
        return "core"
    if module == "connectors.ports":
        return "ports"
    if module.startswith("streams.embedded"):
        return EMBEDDED
    if module == "streams.kafka" or module.startswith("streams.kafka."):
        return KAFKA
    if module.startswith("connectors"):
        return "connectors"
    return "command line"


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """Every project module `path` imports, at any depth of the code (function-level too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            # the longest project module the name starts with
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    known = set(paths)
    graph = {m: imports_of(p, m, known) for m, p in paths.items()}
    # importing a package runs its __init__, not its modules: a package is not an edge to them
    return {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph.items()}


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        mine = part_of(module)
        for target in sorted(targets):
            theirs = part_of(target)
            if LAYER[theirs] > LAYER[mine]:
                bad.append(f"{module} ({mine}) imports {target} ({theirs}), a higher layer")
            elif {mine, theirs} == {EMBEDDED, KAFKA}:
                bad.append(f"{module} ({mine}) imports {target} ({theirs}), another runtime")
            elif mine == "connectors" and theirs in (EMBEDDED, KAFKA):
                bad.append(f"{module} (connector) imports {target} ({theirs}), a runtime")
            elif mine in (EMBEDDED, KAFKA) and theirs == "connectors":
                bad.append(f"{module} ({mine}) imports {target} (connector)")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
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


def test_no_module_imports_a_higher_layer_or_another_runtime() -> None:
    assert layer_violations(import_graph()) == []


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_checks_catch_what_they_guard() -> None:
    graph = {
        "streams.core.decide": {"streams.embedded.engine"},
        "streams.kafka.agents": {"streams.embedded.engine"},
        "connectors.sftp": {"tidegate.serve"},
        "streams.kafka.ingest": {"tidegate.serve"},
        "tidegate.a": {"tidegate.b"},
        "tidegate.b": {"tidegate.a"},
    }
    assert len(layer_violations(graph)) == 4
    assert cycles(graph) == [["tidegate.a", "tidegate.b"]]
