"""The core stays pure: no Kafka, Faust, SQLite, HTTP, SSH or file-system I/O imports."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "streams" / "core"
FORBIDDEN = {
    "aiokafka",
    "faust",
    "mode",
    "sqlite3",
    "aiosqlite",
    "starlette",
    "uvicorn",
    "httpx",
    "requests",
    "asyncssh",
    "paramiko",
    "rocksdict",
    "socket",
    "subprocess",
    "os",
    "shutil",
    "pathlib",
    "asyncio",
    "connectors",
    "tidegate",
    "streams.embedded",
    "streams.kafka",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_infrastructure() -> None:
    offenders = {}
    for path in CORE.rglob("*.py"):
        bad = {
            name
            for name in _imports(path)
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
        }
        if bad:
            offenders[str(path.relative_to(CORE))] = sorted(bad)
    assert offenders == {}
