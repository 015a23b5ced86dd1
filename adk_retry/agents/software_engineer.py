"""A software-engineer ``LlmAgent`` whose model calls are retried.

:func:`create_enhanced_software_engineer_agent` builds an ADK agent that can
explore a code base (list, read and search files) and, when allowed, edit it and
run a small set of programs. Every path is confined to one workspace directory
(see :class:`~adk_retry.agents.workspace.Workspace`), and the model calls get the
retry callbacks of this library.

The tools are the methods of :class:`SoftwareEngineerTools`; they can be used on
their own, for example to give them to another agent.

Why not ADK's own tools (checked on google-adk 2.3.0 and 2.13.0; the reasons are
pinned by ``tests/agents/test_adk_tools.py``, so a change in ADK shows there):

- ``tools.bash_tool.ExecuteBashTool`` (with ``BashToolPolicy``) asks the user to
  confirm every command, with no way to turn that off: an unattended run stops
  at the first command, which never runs. Besides, its default policy allows
  every program; on 2.3 the allow-list is a string prefix (``"ls"`` admits
  ``lsof``); it waits for pipes that a background grandchild holds, so a
  program that exits at once is reported as timed out and its output lost; it
  does not cap the output and lets the program read the agent's stdin.
- ``tools.environment.EnvironmentToolset`` with ``environment.LocalEnvironment``
  is experimental (it warns so) and changed between 2.3 and 2.13. Its
  ``Execute`` runs the command through ``/bin/sh`` with no allow-list and it
  always offers ``Execute``, ``WriteFile`` and ``EditFile``, and its
  instruction tells the model to chain commands with ``&&``. On 2.3
  ``LocalEnvironment`` does not confine paths at all (``..`` and absolute paths
  reach any file) and ``ReadFile`` with a line range shells out to
  ``cat -n | sed``. Where it is confined (2.13) it reads whole files into
  memory, numbers the lines it returns, and ``EditFile`` counts only
  non-overlapping matches: a different contract from the tools below.
- ``code_executors``: ``UnsafeLocalCodeExecutor`` runs model-written Python
  with no confinement; the others need Gemini, Docker, GKE or Vertex AI.

ADK has no tools to list or search files.

Example:
    >>> agent = create_enhanced_software_engineer_agent(  # doctest: +SKIP
    ...     "openai/gpt-4o-mini", workspace="/path/to/repo", allow_write=True
    ... )
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import itertools
import os
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec

from google.adk.agents.llm_agent import LlmAgent, ToolUnion
from google.adk.models.base_llm import BaseLlm

from adk_retry.adapter._attach import add_retry_capabilities_to_agent
from adk_retry.adapter._callbacks import create_retry_callbacks
from adk_retry.agents.workspace import Workspace, WorkspaceError
from adk_retry.core._policy import RetryPolicy

__all__ = [
    "DEFAULT_ALLOWED_COMMANDS",
    "DEFAULT_MODEL",
    "MAX_COMMAND_OUTPUT_CHARS",
    "MAX_READ_CHARS",
    "MODEL_ENV_VAR",
    "SoftwareEngineerTools",
    "create_enhanced_software_engineer_agent",
]

DEFAULT_MODEL = "openai/gpt-4o-mini"
"""LiteLLM model used when neither ``model`` nor ``$ADK_RETRY_MODEL`` is given."""

MODEL_ENV_VAR = "ADK_RETRY_MODEL"
"""Environment variable naming the default LiteLLM model, e.g. ``anthropic/claude-sonnet-4-5``."""

DEFAULT_ALLOWED_COMMANDS: tuple[str, ...] = ("ls", "cat", "git", "python", "python3", "pytest", "ruff", "grep")
"""Programs ``run_command`` may start when commands are enabled.

This limits which program runs, not what it does: ``python``, ``pytest`` and
``git`` can run arbitrary code in the workspace. Enable commands only where the
model may do that.
"""

MAX_READ_CHARS = 64 * 1024
"""Most characters ``read_file`` returns in one call."""

MAX_COMMAND_OUTPUT_CHARS = 16 * 1024
"""Most characters of stdout, and of stderr, that ``run_command`` returns."""

# Hard ceilings for the sizes the model asks for, so one call cannot flood the context.
_MAX_LIST_ENTRIES = 1000
_MAX_SEARCH_RESULTS = 500
_MAX_MATCH_LINE_CHARS = 300
# Searching is line by line in memory; files this large are rarely source code.
_MAX_SEARCH_FILE_BYTES = 1024 * 1024
# A NUL byte in the first block is how git and grep tell binary files apart too.
_BINARY_SNIFF_BYTES = 8192
# Generated or vendored trees that drown a recursive listing or search.
_SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".venv",
        "__pycache__",
        "node_modules",
        "venv",
    }
)
# After the program ends, its pipes may still be held open by something it
# started outside its process group; stop waiting for them after this long.
_PIPE_GRACE_SECONDS = 2.0

ToolResult = dict[str, Any]
_P = ParamSpec("_P")


def _error(message: str, **details: Any) -> ToolResult:
    """Build the result a tool returns instead of raising, so the run goes on."""
    return {"status": "error", "error": message, **details}


class _TextCap:
    """Keep the start and the end of a text of any length, in bounded memory.

    The middle is dropped because both ends matter: a command's first error and
    its final summary.
    """

    def __init__(self, limit: int) -> None:
        self._tail_limit = limit // 2
        self._head_limit = limit - self._tail_limit
        self._head = ""
        self._tail = ""
        self._total = 0

    def add(self, text: str) -> None:
        self._total += len(text)
        room = self._head_limit - len(self._head)
        if room > 0:
            self._head += text[:room]
            text = text[room:]
        self._tail += text
        # Trim only once the tail is twice too long, so a long stream of small
        # chunks costs linear time rather than one copy per chunk.
        if len(self._tail) > 2 * self._tail_limit:
            self._tail = self._last(self._tail)

    def result(self) -> tuple[str, bool]:
        tail = self._last(self._tail)
        omitted = self._total - len(self._head) - len(tail)
        if omitted == 0:
            return self._head + tail, False
        return f"{self._head}\n[... {omitted} characters omitted ...]\n{tail}", True

    def _last(self, text: str) -> str:
        return text[max(0, len(text) - self._tail_limit) :]


def _cap_text(text: str, limit: int) -> tuple[str, bool]:
    """Return ``text`` cut to about ``limit`` characters, and whether it was cut."""
    cap = _TextCap(limit)
    cap.add(text)
    return cap.result()


def _refusals_as_results(tool: Callable[_P, ToolResult]) -> Callable[_P, ToolResult]:
    """Make a tool return a refused path or an OS failure as an error result, so the run goes on.

    ``functools.wraps`` keeps the name, signature and docstring ADK declares to the model.
    """

    @functools.wraps(tool)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> ToolResult:
        try:
            return tool(*args, **kwargs)
        except WorkspaceError as exc:
            return _error(str(exc))
        except OSError as exc:
            return _error(f"{type(exc).__name__}: {exc.strerror or exc}")

    return guarded


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\0" in handle.read(_BINARY_SNIFF_BYTES)


def _tree(top: Path, recursive: bool) -> Iterator[tuple[Path, bool]]:
    """Yield ``(path, is_dir)`` under ``top`` in sorted order, lazily.

    Links to directories are listed but not entered, so a walk cannot leave
    the workspace or loop; recursion skips the noise directories.
    """
    if not recursive:
        for child in sorted(top.iterdir(), key=lambda child: child.name):
            yield child, child.is_dir()
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_DIRS)
        yield from ((Path(dirpath, d), True) for d in dirnames)
        yield from ((Path(dirpath, f), False) for f in sorted(filenames))


def _count_occurrences(text: str, sub: str) -> int:
    # Overlapping matches count too: "aa" in "aaa" is ambiguous for an edit.
    count = 0
    index = text.find(sub)
    while index != -1:
        count += 1
        index = text.find(sub, index + 1)
    return count


def _kill_process_group(transport: asyncio.SubprocessTransport) -> None:
    try:
        if sys.platform == "win32":
            transport.kill()
        else:
            # The program runs in its own session, so this also ends whatever it started.
            os.killpg(transport.get_pid(), signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # Everything in the group has already ended.


class _CommandProtocol(asyncio.SubprocessProtocol):
    """Collect a program's capped output; tell apart its exit and the closing of its pipes.

    ``asyncio.subprocess.Process.wait()`` returns only once the pipes are closed
    too, so a grandchild holding them would make it hang past any timeout.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self.output = {fd: _TextCap(MAX_COMMAND_OUTPUT_CHARS) for fd in (1, 2)}
        self._decoders = {fd: codecs.getincrementaldecoder("utf-8")(errors="replace") for fd in (1, 2)}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self.output[fd].add(self._decoders[fd].decode(data))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.output[fd].add(self._decoders.pop(fd).decode(b"", final=True))
        if not self._decoders:
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        self.exited.set_result(None)


class SoftwareEngineerTools:
    """The file and command tools of the software-engineer agent, bound to one workspace.

    Each public method is an ADK function tool: its name, typed parameters and
    docstring become the declaration the model sees. Each returns a dict with
    ``"status": "ok"`` and its data, or ``"status": "error"`` and an ``"error"``
    message; a refused request is such a result, never an exception.

    Writing and running commands are off by default. When off, their methods
    still exist (and return an error result) but :meth:`enabled_tools` does not
    offer them to the model.

    Args:
        workspace: The directory the tools may touch, or a :class:`Workspace`.
        allow_write: Offer ``write_file`` and ``edit_file``.
        allow_commands: Offer ``run_command``.
        allowed_commands: Program names ``run_command`` may start (bare names
            looked up on ``PATH``, not paths).
        command_timeout: Seconds a command may run before it is killed.

    Raises:
        WorkspaceError: If ``workspace`` is not a directory.
        ValueError: If ``command_timeout`` is not positive or an allowed command
            is not a bare program name.
        TypeError: If ``allowed_commands`` is a single string.

    Example:
        >>> import tempfile
        >>> tools = SoftwareEngineerTools(tempfile.mkdtemp())
        >>> tools.read_file("../etc/passwd")["status"]
        'error'
        >>> [tool.__name__ for tool in tools.enabled_tools()]
        ['list_files', 'read_file', 'search_files']
    """

    def __init__(
        self,
        workspace: Workspace | str | os.PathLike[str],
        *,
        allow_write: bool = False,
        allow_commands: bool = False,
        allowed_commands: Sequence[str] = DEFAULT_ALLOWED_COMMANDS,
        command_timeout: float = 30.0,
    ) -> None:
        if isinstance(allowed_commands, str):
            # A lone string would otherwise be taken as a sequence of one-letter programs.
            raise TypeError("allowed_commands must be a sequence of program names, not a str")
        for program in allowed_commands:
            if not program or program != os.path.basename(program) or program.strip() != program:
                raise ValueError(f"allowed command must be a bare program name: {program!r}")
        if not command_timeout > 0:
            raise ValueError(f"command_timeout must be positive, got {command_timeout!r}")
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.allow_write = allow_write
        self.allow_commands = allow_commands
        self.allowed_commands: tuple[str, ...] = tuple(dict.fromkeys(allowed_commands))
        self.command_timeout = command_timeout

    def enabled_tools(self) -> list[Callable[..., Any]]:
        """The tools to offer the model: reading always, writing and commands if enabled.

        Example:
            >>> import tempfile
            >>> tools = SoftwareEngineerTools(tempfile.mkdtemp(), allow_write=True)
            >>> [tool.__name__ for tool in tools.enabled_tools()]
            ['list_files', 'read_file', 'search_files', 'write_file', 'edit_file']
        """
        tools: list[Callable[..., Any]] = [self.list_files, self.read_file, self.search_files]
        if self.allow_write:
            tools += [self.write_file, self.edit_file]
        if self.allow_commands:
            tools.append(self.run_command)
        return tools

    # --- reading ------------------------------------------------------------

    @_refusals_as_results
    def list_files(self, path: str = ".", recursive: bool = False, max_entries: int = 200) -> ToolResult:
        """List the files and directories in a workspace directory.

        Directories end with "/". Paths are relative to the workspace root, ready
        to pass to the other tools. A recursive listing skips generated and
        vendored directories (.git, node_modules, __pycache__, .venv, ...); list
        one of them explicitly to see inside it.

        Args:
            path: Directory to list, relative to the workspace root.
            recursive: Also list the contents of subdirectories.
            max_entries: Most entries to return (at most 1000); "truncated" says
                whether there were more.

        Returns:
            {"status": "ok", "path": ..., "entries": [...], "truncated": bool}, or
            {"status": "error", "error": ...}.

        Example:
            list_files(path="src", recursive=True)
        """
        limit = min(max(max_entries, 1), _MAX_LIST_ENTRIES)
        top = self.workspace.resolve(path)
        if not top.is_dir():
            return _error(f"not a directory: {path!r}" + ("" if top.exists() else " (it does not exist)"))
        found = [
            self.workspace.relative(entry) + ("/" if is_dir else "")
            for entry, is_dir in itertools.islice(_tree(top, recursive), limit + 1)
        ]
        return {
            "status": "ok",
            "path": self.workspace.relative(top),
            "entries": found[:limit],
            "truncated": len(found) > limit,
        }

    @_refusals_as_results
    def read_file(self, path: str, start_line: int = 1, end_line: int | None = None) -> ToolResult:
        """Read a text file, or a range of its lines.

        Returns at most 65536 characters. When the file goes on past what was
        returned, "next_start_line" is where to continue; "truncated" is true when
        the size limit (not end_line) stopped the read. Binary files are refused.

        Args:
            path: File to read, relative to the workspace root.
            start_line: First line to return, counting from 1.
            end_line: Last line to return (inclusive); omit to read to the end.

        Returns:
            {"status": "ok", "path": ..., "start_line": ..., "end_line": ...,
            "content": ..., "truncated": bool, "next_start_line": int or null}, or
            {"status": "error", "error": ...}.

        Example:
            read_file(path="src/app.py", start_line=40, end_line=80)
        """
        if start_line < 1:
            return _error(f"start_line must be 1 or more, got {start_line}")
        if end_line is not None and end_line < start_line:
            return _error(f"end_line ({end_line}) is before start_line ({start_line})")
        file = self.workspace.resolve(path)
        if file.is_dir():
            return _error(f"{path!r} is a directory; use list_files")
        if _is_binary(file):
            return _error(f"{path!r} is a binary file")
        parts: list[str] = []
        size = 0
        last_line = start_line - 1
        lines_seen = 0
        truncated = False
        next_start_line: int | None = None
        # newline="" keeps "\r\n" as is, so the text matches what edit_file sees.
        with file.open(encoding="utf-8", errors="replace", newline="") as handle:
            for lines_seen, line in enumerate(handle, start=1):
                if lines_seen < start_line:
                    continue
                if truncated or (end_line is not None and lines_seen > end_line):
                    next_start_line = lines_seen
                    break
                if size + len(line) > MAX_READ_CHARS:
                    truncated = True
                    if parts:
                        next_start_line = lines_seen
                        break
                    # A single line longer than the limit (minified code): show its ends.
                    line, _ = _cap_text(line, MAX_READ_CHARS)
                parts.append(line)
                size += len(line)
                last_line = lines_seen
        if start_line > 1 and not parts:
            return _error(f"start_line {start_line} is past the end of {path!r} ({lines_seen} lines)")
        result: ToolResult = {
            "status": "ok",
            "path": self.workspace.relative(file),
            "start_line": start_line,
            "end_line": last_line,
            "content": "".join(parts),
            "truncated": truncated,
            "next_start_line": next_start_line,
        }
        if truncated:
            result["note"] = f"output limited to {MAX_READ_CHARS} characters"
        return result

    @_refusals_as_results
    def search_files(self, pattern: str, path: str = ".", max_results: int = 50) -> ToolResult:
        """Search text files for lines matching a regular expression (Python syntax).

        Searches one file, or every text file under a directory (skipping
        binary files, files over 1 MiB, and the directories a recursive
        list_files skips). Each match gives the file, the line number and the line.

        Args:
            pattern: Regular expression, e.g. "def \\w+_handler" or "TODO".
            path: File or directory to search, relative to the workspace root.
            max_results: Most matches to return (at most 500); "truncated" says
                whether there were more.

        Returns:
            {"status": "ok", "matches": [{"path": ..., "line": ..., "text": ...}],
            "truncated": bool, "files_searched": int, "files_skipped": int}, or
            {"status": "error", "error": ...}.

        Example:
            search_files(pattern="class \\w+Error", path="src")
        """
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            return _error(f"invalid regular expression {pattern!r}: {exc}")
        limit = min(max(max_results, 1), _MAX_SEARCH_RESULTS)
        top = self.workspace.resolve(path)
        if not top.exists():
            return _error(f"no such file or directory: {path!r}")
        candidates = (entry for entry, is_dir in _tree(top, recursive=True) if not is_dir) if top.is_dir() else [top]
        matches: list[dict[str, Any]] = []
        searched = skipped = 0
        for candidate in candidates:
            try:
                # A link inside the tree may point outside the workspace.
                file = self.workspace.resolve(candidate)
                if not file.is_file() or file.stat().st_size > _MAX_SEARCH_FILE_BYTES or _is_binary(file):
                    skipped += 1
                    continue
                with file.open(encoding="utf-8", errors="replace") as handle:
                    for number, line in enumerate(handle, start=1):
                        if regex.search(line):
                            text, _ = _cap_text(line.rstrip("\r\n"), _MAX_MATCH_LINE_CHARS)
                            matches.append({"path": self.workspace.relative(candidate), "line": number, "text": text})
                            if len(matches) > limit:
                                break
            except (WorkspaceError, OSError):
                skipped += 1
                continue
            searched += 1
            if len(matches) > limit:
                break
        return {
            "status": "ok",
            "pattern": pattern,
            "matches": matches[:limit],
            "truncated": len(matches) > limit,
            "files_searched": searched,
            "files_skipped": skipped,
        }

    # --- writing ------------------------------------------------------------

    @_refusals_as_results
    def write_file(self, path: str, content: str) -> ToolResult:
        """Create or overwrite a file with the given content.

        Missing parent directories are created. Prefer edit_file to change part
        of an existing file.

        Args:
            path: File to write, relative to the workspace root.
            content: The complete new content of the file.

        Returns:
            {"status": "ok", "path": ..., "created": bool, "characters": int}, or
            {"status": "error", "error": ...}.

        Example:
            write_file(path="tests/test_parser.py", content="def test_empty(): ...\\n")
        """
        if not self.allow_write:
            return _error("writing files is disabled for this agent (allow_write=False)")
        file = self.workspace.resolve(path)
        if file.is_dir():
            return _error(f"{path!r} is a directory")
        created = not file.exists()
        file.parent.mkdir(parents=True, exist_ok=True)
        with file.open("w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        return {"status": "ok", "path": self.workspace.relative(file), "created": created, "characters": len(content)}

    @_refusals_as_results
    def edit_file(self, path: str, old_text: str, new_text: str) -> ToolResult:
        """Replace one exact piece of text in a file.

        old_text must occur exactly once in the file, matching character for
        character (whitespace and indentation included); include enough
        surrounding lines to make it unique. Read the file first.

        Args:
            path: File to edit, relative to the workspace root.
            old_text: The current text to replace; must occur exactly once.
            new_text: The text to put in its place (may be empty to delete).

        Returns:
            {"status": "ok", "path": ..., "line": first line of the edit}, or
            {"status": "error", "error": ...}.

        Example:
            edit_file(path="src/app.py", old_text="    return a - b\\n", new_text="    return a + b\\n")
        """
        if not self.allow_write:
            return _error("editing files is disabled for this agent (allow_write=False)")
        if not old_text:
            return _error("old_text must not be empty")
        file = self.workspace.resolve(path)
        if not file.is_file():
            return _error(f"no such file: {path!r}")
        try:
            with file.open(encoding="utf-8", newline="") as handle:
                text = handle.read()
        except UnicodeDecodeError:
            return _error(f"{path!r} is not UTF-8 text; it cannot be edited safely")
        count = _count_occurrences(text, old_text)
        if count != 1:
            hint = "check it against read_file" if count == 0 else "include more surrounding text"
            return _error(f"old_text occurs {count} times in {path!r}; it must occur exactly once ({hint})")
        index = text.index(old_text)
        with file.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text[:index] + new_text + text[index + len(old_text) :])
        return {"status": "ok", "path": self.workspace.relative(file), "line": text.count("\n", 0, index) + 1}

    # --- commands -----------------------------------------------------------

    async def run_command(self, command: str) -> ToolResult:
        """Run one program in the workspace root and return its exit code and output.

        The command is split like a shell would split words, but no shell runs
        it: pipes, redirections, ";", "&&", globs and $variables are passed to
        the program as literal arguments. Only some programs are allowed, and a
        command that runs too long is killed. stdout and stderr are each limited
        to 16384 characters (the middle is dropped).

        Args:
            command: The program and its arguments, e.g. "pytest -q tests/test_api.py".

        Returns:
            {"status": "ok", "exit_code": int, "stdout": ..., "stderr": ...,
            "stdout_truncated": bool, "stderr_truncated": bool} when the program
            ran (whatever its exit code), or {"status": "error", "error": ...}.

        Example:
            run_command(command="git diff --stat")
        """
        # Not ADK's ExecuteBashTool (it asks a human to confirm every command) nor
        # LocalEnvironment.execute (it runs /bin/sh): see the module docstring.
        if not self.allow_commands:
            return _error("running commands is disabled for this agent (allow_commands=False)")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            return _error(f"cannot parse command: {exc}")
        if not argv:
            return _error("empty command")
        allowed = ", ".join(self.allowed_commands) or "none"
        if argv[0] not in self.allowed_commands:
            return _error(
                f"program {argv[0]!r} is not allowed (allowed: {allowed}); "
                "commands run without a shell, one program at a time"
            )
        executable = shutil.which(argv[0])
        if executable is None:
            return _error(f"program {argv[0]!r} is not installed (not found on PATH)")
        try:
            transport, protocol = await asyncio.get_running_loop().subprocess_exec(
                _CommandProtocol,
                executable,
                *argv[1:],
                cwd=self.workspace.root,
                # No input: a program waiting for it would only hang until the timeout.
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # Its own session: no terminal to prompt on, and one group to kill.
                start_new_session=True,
            )
        except OSError as exc:
            return _error(f"cannot start {argv[0]!r}: {exc.strerror or exc}")
        timed_out = False
        try:
            try:
                # Shielded: the timeout must not cancel the future awaited again below.
                await asyncio.wait_for(asyncio.shield(protocol.exited), self.command_timeout)
            except TimeoutError:
                timed_out = True
        finally:
            # Also reached when the agent run is cancelled: leave nothing running.
            _kill_process_group(transport)
            # Output may still be in the pipes; something that left the process
            # group may hold them open, so wait for them only briefly.
            await asyncio.wait([protocol.exited, protocol.pipes_closed], timeout=_PIPE_GRACE_SECONDS)
            transport.close()
        out, out_truncated = protocol.output[1].result()
        err, err_truncated = protocol.output[2].result()
        output = {"stdout": out, "stderr": err, "stdout_truncated": out_truncated, "stderr_truncated": err_truncated}
        if timed_out:
            return _error(f"command timed out after {self.command_timeout:g} s and was killed", **output)
        return {"status": "ok", "exit_code": transport.get_returncode(), **output}


def _instruction(tools: SoftwareEngineerTools) -> str:
    """The system prompt, naming only the tools this agent really has."""
    names = [tool.__name__ for tool in tools.enabled_tools()]
    limits = []
    if not tools.allow_write:
        limits.append(
            "Writing files is disabled: you cannot change files. Investigate and "
            "propose exact changes (file, location, new text) for the user to apply."
        )
    if tools.allow_commands:
        limits.append(
            "run_command starts one program without a shell (no pipes, redirection, "
            f"globs or chaining). Allowed programs: {', '.join(tools.allowed_commands)}."
        )
    else:
        limits.append(
            "Running commands is disabled: you cannot run tests or linters. Say which checks the user should run."
        )
    return "\n".join(
        [
            "You are a careful senior software engineer working in one code repository, "
            "the workspace. All paths are relative to the workspace root; nothing "
            "outside it can be reached.",
            "",
            f"Your tools: {', '.join(names)}.",
            *limits,
            "",
            "How to work:",
            "1. Explore before changing anything: list and search the repository, and "
            "read the relevant code, its callers and its tests.",
            "2. Make small, focused changes, one step at a time. Prefer edit_file with an "
            "exact, unique snippet of the current text over rewriting whole files; after a "
            "failed edit, read the file again.",
            "3. Verify each change: when commands are available, run the relevant tests and "
            "linters, and fix what you broke.",
            "4. Never claim a change you did not make or a check you did not run. When a "
            "tool returns an error, say so and adapt.",
            "5. End with a short report: each file you changed and why, the checks you ran "
            "and their results, and anything left to do.",
        ]
    )


def _as_list(callbacks: Any) -> list[Any]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, list) else [callbacks]


def create_enhanced_software_engineer_agent(
    model: str | BaseLlm | None = None,
    *,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    retry_policy: RetryPolicy | None = None,
    name: str = "software_engineer",
    allow_write: bool = False,
    allow_commands: bool = False,
    allowed_commands: Sequence[str] = DEFAULT_ALLOWED_COMMANDS,
    command_timeout: float = 30.0,
    **agent_kwargs: Any,
) -> LlmAgent:
    """Build a software-engineer ``LlmAgent`` whose model calls are retried.

    The agent can list, read and search the files of ``workspace``; with
    ``allow_write`` also write and edit them, and with ``allow_commands`` run the
    programs in ``allowed_commands`` there. Tools that are not enabled are not
    offered to the model at all. See :class:`SoftwareEngineerTools`.

    Args:
        model: A LiteLLM model name (wrapped in ``LiteLlm``) or any ``BaseLlm``,
            used as is. Default: ``$ADK_RETRY_MODEL``, else :data:`DEFAULT_MODEL`.
        workspace: The directory the agent works in; default the current
            directory. Resolved to an absolute real path now.
        retry_policy: How model calls are retried; ``None`` for the library's
            default policy.
        name: The agent's name (a Python identifier, as ADK requires).
        allow_write: Offer ``write_file`` and ``edit_file``.
        allow_commands: Offer ``run_command``. The allow-list limits which
            programs start, not what they do (``python`` runs any code).
        allowed_commands: Program names ``run_command`` may start.
        command_timeout: Seconds before a command is killed.
        **agent_kwargs: Passed on to ``LlmAgent``. ``instruction`` replaces the
            built-in prompt, ``tools`` are added after the built-in ones, and
            ``before_model_callback`` / ``after_model_callback`` (one callable or
            a list) run after the retry callbacks.

    Returns:
        The configured agent.

    Raises:
        WorkspaceError: If ``workspace`` is not a directory (a ``ValueError``).

    Example:
        >>> agent = create_enhanced_software_engineer_agent(  # doctest: +SKIP
        ...     "anthropic/claude-sonnet-4-5",
        ...     workspace="~/src/project",
        ...     allow_write=True,
        ...     allow_commands=True,
        ... )
    """
    tools = SoftwareEngineerTools(
        Path.cwd() if workspace is None else workspace,
        allow_write=allow_write,
        allow_commands=allow_commands,
        allowed_commands=allowed_commands,
        command_timeout=command_timeout,
    )
    if model is None:
        model = os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL
    if isinstance(model, str):
        # Imported here so that callers passing their own BaseLlm never load litellm.
        from google.adk.models.lite_llm import LiteLlm

        model = LiteLlm(model=model)
    instruction = agent_kwargs.pop("instruction", None) or _instruction(tools)
    agent_tools: list[ToolUnion] = [*tools.enabled_tools(), *agent_kwargs.pop("tools", [])]
    user_before = _as_list(agent_kwargs.pop("before_model_callback", None))
    user_after = _as_list(agent_kwargs.pop("after_model_callback", None))

    # Retry wiring: the retry callbacks come first so user callbacks see the final answer.
    callbacks = create_retry_callbacks(name, policy=retry_policy)
    agent = LlmAgent(
        name=name,
        model=model,
        instruction=instruction,
        tools=agent_tools,
        before_model_callback=[callbacks["before_model"], *user_before],
        after_model_callback=[callbacks["after_model"], *user_after],
        **agent_kwargs,
    )
    add_retry_capabilities_to_agent(agent, callbacks["retry_handler"])
    return agent
