"""Every path handed to the agent's tools must stay inside the workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adk_retry.agents.workspace import Workspace, WorkspaceError


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Workspace, Path]:
    """A workspace with a file and a subdirectory, beside an outside directory."""
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("print('hi')\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    return Workspace(root), outside


def test_root_is_the_absolute_real_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    assert Workspace("alias").root == (tmp_path / "real").resolve()
    assert Workspace(Path("real")).root.is_absolute()


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(WorkspaceError, match="missing"):
        Workspace(missing)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"file\.txt"):
        Workspace(a_file)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/app.py", "src/app.py"),
        ("src/../src/app.py", "src/app.py"),
        ("new/dir/file.txt", "new/dir/file.txt"),
        ("./src", "src"),
        ("", "."),
        (".", "."),
    ],
)
def test_paths_inside_are_resolved(layout: tuple[Workspace, Path], path: str, expected: str) -> None:
    ws, _ = layout
    resolved = ws.resolve(path)
    assert resolved.is_absolute()
    assert ws.relative(resolved) == expected


def test_absolute_path_inside_is_allowed(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    assert ws.resolve(ws.root / "src" / "app.py") == ws.root / "src" / "app.py"


@pytest.mark.parametrize("path", ["../x", "..", "a/../../x", "src/../../x", "/etc/passwd", "/"])
def test_escapes_are_refused(layout: tuple[Workspace, Path], path: str) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        ws.resolve(path)


def test_absolute_path_of_the_outside_dir_is_refused(layout: tuple[Workspace, Path]) -> None:
    ws, outside = layout
    with pytest.raises(WorkspaceError):
        ws.resolve(outside / "secret.txt")


def test_symlink_to_outside_file_is_refused(layout: tuple[Workspace, Path]) -> None:
    ws, outside = layout
    (ws.root / "link.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(WorkspaceError):
        ws.resolve("link.txt")


def test_symlink_to_outside_directory_is_refused(layout: tuple[Workspace, Path]) -> None:
    ws, outside = layout
    (ws.root / "linkdir").symlink_to(outside, target_is_directory=True)
    for path in ("linkdir", "linkdir/secret.txt", "linkdir/new.txt"):
        with pytest.raises(WorkspaceError):
            ws.resolve(path)


def test_dotdot_after_a_symlink_follows_the_link_first(layout: tuple[Workspace, Path]) -> None:
    # As the OS does: "linkdir/.." is the parent of the link's target, which is outside.
    ws, outside = layout
    (ws.root / "linkdir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(WorkspaceError):
        ws.resolve("linkdir/../outside/secret.txt")


def test_dangling_symlink_to_outside_is_refused(layout: tuple[Workspace, Path]) -> None:
    # Writing through it would create a file outside.
    ws, outside = layout
    (ws.root / "dangling").symlink_to(outside / "not-yet-there.txt")
    with pytest.raises(WorkspaceError):
        ws.resolve("dangling")


def test_symlink_staying_inside_is_allowed(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    (ws.root / "alias.py").symlink_to(ws.root / "src" / "app.py")
    (ws.root / "srclink").symlink_to("src", target_is_directory=True)
    assert ws.resolve("alias.py") == ws.root / "src" / "app.py"
    assert ws.resolve("srclink/app.py") == ws.root / "src" / "app.py"


def test_workspace_under_a_symlinked_root_still_confines(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    ws = Workspace(tmp_path / "alias")
    assert ws.resolve(str(tmp_path / "alias" / "f.txt")) == ws.root / "f.txt"
    with pytest.raises(WorkspaceError):
        ws.resolve("../alias-sibling")


def test_nul_byte_is_refused(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    with pytest.raises(WorkspaceError):
        ws.resolve("src/app.py\0.txt")


def test_error_is_a_value_error() -> None:
    assert issubclass(WorkspaceError, ValueError)


def test_pathlike_input(layout: tuple[Workspace, Path]) -> None:
    ws, _ = layout
    assert ws.resolve(Path("src") / "app.py") == ws.root / "src" / "app.py"
    assert ws.resolve(os.path.join("src", "app.py")) == ws.root / "src" / "app.py"
