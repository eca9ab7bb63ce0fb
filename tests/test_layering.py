"""The pure core stays pure: no Trio, no SQLite, no sockets, no clock, no randomness."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "edged" / "core"
FORBIDDEN = {
    "trio",
    "sqlite3",
    "socket",
    "time",
    "random",
    "os",
    "threading",
    "asyncio",
    "edged.journal",
    "edged.runtime",
    "edged.api",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_io() -> None:
    offenders = []
    for path in sorted(CORE.glob("*.py")):
        for name in _imports(path):
            root = name.split(".")[0]
            if (
                name in FORBIDDEN
                or root in FORBIDDEN
                or any(name.startswith(f + ".") for f in FORBIDDEN)
            ):
                offenders.append(f"{path.name}: imports {name}")
    assert not offenders, offenders


def test_core_reads_no_clock_or_uuid4() -> None:
    for path in sorted(CORE.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "uuid4" not in text, path.name
        assert "datetime.now" not in text and "utcnow" not in text, path.name
