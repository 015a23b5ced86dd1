"""Confine file-system paths to one workspace directory.

The software-engineer agent lets a model name files. Every name it gives goes
through :meth:`Workspace.resolve`, so ``..``, absolute paths and symlinks cannot
lead outside the directory the agent was given.

Example:
    >>> import tempfile
    >>> ws = Workspace(tempfile.mkdtemp())
    >>> ws.resolve("src/app.py").is_relative_to(ws.root)
    True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["Workspace", "WorkspaceError"]


class WorkspaceError(ValueError):
    """A path that is not allowed: it leads outside the workspace, or is not usable.

    It is a ``ValueError`` so callers that only expect bad input keep working.

    Example:
        >>> import tempfile
        >>> try:
        ...     Workspace(tempfile.mkdtemp()).resolve("../secret")
        ... except WorkspaceError as exc:
        ...     print("refused")
        refused
    """


class Workspace:
    """A directory that every path handed to the agent's tools must stay inside.

    The root is resolved to an absolute real path once, at construction, so a
    later change of the current directory or of a symlink above the root does
    not move it.

    Args:
        root: The workspace directory.

    Raises:
        WorkspaceError: If ``root`` is not an existing directory.

    Example:
        >>> import tempfile
        >>> ws = Workspace(tempfile.mkdtemp())
        >>> ws.relative(ws.resolve("docs/../README.md"))
        'README.md'
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        resolved = Path(os.path.realpath(root))
        if not resolved.is_dir():
            raise WorkspaceError(f"workspace is not a directory: {os.fspath(root)!r}")
        self._root = resolved

    @property
    def root(self) -> Path:
        """The absolute, symlink-free workspace directory.

        Example:
            >>> import tempfile
            >>> Workspace(tempfile.mkdtemp()).root.is_absolute()
            True
        """
        return self._root

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """Return the real absolute path of ``path``, refusing any that leaves the root.

        Relative paths are taken from the root. Symlinks are followed (also ones
        whose target does not exist yet, so a write cannot go through a dangling
        link) before ``..`` is applied, exactly as the operating system would, and
        the result must lie inside the root. The path need not exist.

        Args:
            path: A path relative to the root, or an absolute path inside it.

        Returns:
            The resolved path, inside :attr:`root`.

        Raises:
            WorkspaceError: If the resolved path is outside the root or the path
                is not usable (for example it contains a NUL character).

        Example:
            >>> import tempfile
            >>> ws = Workspace(tempfile.mkdtemp())
            >>> ws.resolve("a/b.txt") == ws.root / "a" / "b.txt"
            True
        """
        raw = os.fspath(path)
        try:
            resolved = Path(os.path.realpath(self._root / raw))
        except (ValueError, OSError) as exc:
            raise WorkspaceError(f"invalid path {raw!r}: {exc}") from exc
        if not resolved.is_relative_to(self._root):
            raise WorkspaceError(f"path {raw!r} is outside the workspace")
        return resolved

    def relative(self, path: Path) -> str:
        """Show a resolved path the way the model should name it: relative, with ``/``.

        Args:
            path: A path returned by :meth:`resolve`.

        Returns:
            The path relative to the root in POSIX form; ``"."`` for the root itself.

        Example:
            >>> import tempfile
            >>> ws = Workspace(tempfile.mkdtemp())
            >>> ws.relative(ws.root / "src" / "app.py")
            'src/app.py'
        """
        return path.relative_to(self._root).as_posix()
