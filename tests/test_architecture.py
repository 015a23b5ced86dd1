"""The layout is the architecture: each room imports only the rooms beneath it (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "adk_retry"

# Room -> the rooms it may import (itself included). Everything not listed may import anything.
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "guards": {"core", "guards", "observability"},
    "observability": {"core", "observability"},
    "engine": {"core", "guards", "observability", "engine"},
    "adapter": {"core", "guards", "observability", "engine", "adapter"},
    "contrib": {"core", "guards", "observability", "engine", "adapter", "contrib"},
}

# The one edge against the direction, taken lazily inside a function: RetryPolicy.codeworm()
# (kept from 0.1, where presets are classmethods) builds CodeWorm's default recovery, the
# Ollama unloader, from contrib. Nothing else in core knows a provider.
EXCEPTIONS = {("core/_policy.py", "contrib")}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "adk_retry" else None


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, at module level and outside TYPE_CHECKING) for every adk_retry or google.adk import."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
                continue
            nested = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            if isinstance(child, ast.ClassDef):
                nested = top  # a class body runs at import
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "adk_retry":
                    found.extend((f"adk_retry.{alias.name}", child.lineno, top) for alias in child.names)
                else:
                    found.append((child.module, child.lineno, top))
            visit(child, nested)

    visit(tree, True)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] in ALLOWED)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_room_imports_only_the_rooms_beneath_it(path: Path) -> None:
    relative = path.relative_to(PACKAGE)
    room = relative.parts[0]
    wrong = [
        f"line {line}: {module}"
        for module, line, _ in _imports(path)
        if (target := _room(module)) is not None
        and target in ALLOWED  # agents, testing, cli, demo sit above every room
        and target not in ALLOWED[room]
        and (str(relative), target) not in EXCEPTIONS
    ]
    above = [
        f"line {line}: {module}"
        for module, line, _ in _imports(path)
        if _room(module) in {"agents", "testing", "cli", "demo"}
    ]
    assert not wrong, f"{relative} imports against the direction: {wrong}"
    assert not above, f"{relative} imports a room above every other: {above}"


@pytest.mark.parametrize(
    "path",
    [p for p in _modules() if p.relative_to(PACKAGE).parts[0] in ("core", "engine")],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_core_and_engine_do_not_import_adk_at_import_time(path: Path) -> None:
    eager = [f"line {line}: {m}" for m, line, top in _imports(path) if top and m.startswith("google.adk")]
    assert not eager, f"{path.relative_to(PACKAGE)} imports ADK at import time: {eager}"


def test_the_rooms_are_the_documented_ones() -> None:
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == {*ALLOWED, "agents", "testing"}
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    for room in rooms:
        assert f"`{room}/`" in doc, f"docs/architecture.md does not describe {room}/"


def test_the_checker_sees_a_wrong_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from adk_retry.adapter._wrap import install\ndef f():\n    import adk_retry.contrib.ollama\n")
    assert [(m, top) for m, _, top in _imports(bad)] == [
        ("adk_retry.adapter._wrap", True),
        ("adk_retry.contrib.ollama", False),
    ]
