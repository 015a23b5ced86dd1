"""The software-engineer agent: its tools, their limits, and how the agent is built."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.lite_llm import LiteLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import InMemoryRunner
from google.adk.tools.function_tool import FunctionTool
from google.genai import types as genai_types
from pydantic import Field

import adk_retry.agents as agents_package
from adk_retry.agents import (
    DEFAULT_ALLOWED_COMMANDS,
    DEFAULT_MODEL,
    Workspace,
    WorkspaceError,
    create_enhanced_software_engineer_agent,
    software_engineer,
)
from adk_retry.agents.software_engineer import (
    MAX_COMMAND_OUTPUT_CHARS,
    MAX_READ_CHARS,
    MODEL_ENV_VAR,
    SoftwareEngineerTools,
)
from adk_retry.core._policy import RetryPolicy

PYTHON = "python3"


# --- fixtures ---------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A small repository, with an "outside" directory beside it holding a secret."""
    repo = tmp_path / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "core.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "src" / "app.py").write_text("from pkg.core import add\n\nprint(add(1, 2))  # TODO fix\n")
    (repo / "README.md").write_text("# Demo\nTODO: docs\n")
    (repo / ".git").mkdir()
    (repo / ".git" / "config").write_text("TODO in git internals\n")
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "app.pyc").write_bytes(b"\0\1TODO")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TODO secret token\n")
    return repo


@pytest.fixture
def outside(root: Path) -> Path:
    return root.parent / "outside"


@pytest.fixture
def reader(root: Path) -> SoftwareEngineerTools:
    return SoftwareEngineerTools(root)


@pytest.fixture
def writer(root: Path) -> SoftwareEngineerTools:
    return SoftwareEngineerTools(root, allow_write=True)


@pytest.fixture
def runner_tools(root: Path) -> SoftwareEngineerTools:
    return SoftwareEngineerTools(root, allow_commands=True, command_timeout=10.0)


def _escape_paths(root: Path, outside: Path) -> list[str]:
    """Ways out of the workspace: dot-dot, absolute, and links to a file and to a directory."""
    (root / "out_file").symlink_to(outside / "secret.txt")
    (root / "out_dir").symlink_to(outside, target_is_directory=True)
    return ["../outside/secret.txt", "/etc/passwd", "src/../../outside/secret.txt", "out_file", "out_dir/secret.txt"]


# --- construction -----------------------------------------------------------


def test_enabled_tools_follow_the_flags(root: Path) -> None:
    def names(tools: SoftwareEngineerTools) -> list[str]:
        return [tool.__name__ for tool in tools.enabled_tools()]

    assert names(SoftwareEngineerTools(root)) == ["list_files", "read_file", "search_files"]
    assert names(SoftwareEngineerTools(root, allow_write=True))[3:] == ["write_file", "edit_file"]
    assert names(SoftwareEngineerTools(root, allow_commands=True))[3:] == ["run_command"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"allowed_commands": "git"}, TypeError),
        ({"allowed_commands": ("/bin/ls",)}, ValueError),
        ({"allowed_commands": ("",)}, ValueError),
        ({"command_timeout": 0}, ValueError),
    ],
)
def test_bad_settings_are_refused(root: Path, kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        SoftwareEngineerTools(root, **kwargs)


def test_accepts_a_workspace_object(root: Path) -> None:
    workspace = Workspace(root)
    assert SoftwareEngineerTools(workspace).workspace is workspace


# --- list_files -------------------------------------------------------------


def test_list_files_top_level(reader: SoftwareEngineerTools) -> None:
    result = reader.list_files()
    assert result == {
        "status": "ok",
        "path": ".",
        "entries": [".git/", "README.md", "__pycache__/", "src/"],
        "truncated": False,
    }


def test_list_files_recursive_skips_noise(reader: SoftwareEngineerTools) -> None:
    result = reader.list_files(".", recursive=True)
    assert result["entries"] == ["src/", "README.md", "src/pkg/", "src/app.py", "src/pkg/core.py"]
    assert reader.list_files(".git")["entries"] == [".git/config"]


def test_list_files_caps_entries(reader: SoftwareEngineerTools) -> None:
    result = reader.list_files(".", recursive=True, max_entries=2)
    assert result["entries"] == ["src/", "README.md"]
    assert result["truncated"] is True
    assert reader.list_files("src", max_entries=0)["entries"] == ["src/app.py"]


def test_list_files_errors(reader: SoftwareEngineerTools, root: Path, outside: Path) -> None:
    assert "not a directory" in reader.list_files("README.md")["error"]
    assert "does not exist" in reader.list_files("nope")["error"]
    for path in _escape_paths(root, outside):
        assert reader.list_files(path)["status"] == "error", path
    assert reader.list_files("out_dir")["status"] == "error"


# --- read_file --------------------------------------------------------------


def test_read_file_whole(reader: SoftwareEngineerTools) -> None:
    result = reader.read_file("src/pkg/core.py")
    assert result == {
        "status": "ok",
        "path": "src/pkg/core.py",
        "start_line": 1,
        "end_line": 2,
        "content": "def add(a, b):\n    return a - b\n",
        "truncated": False,
        "next_start_line": None,
    }


def test_read_file_line_range(root: Path, reader: SoftwareEngineerTools) -> None:
    (root / "lines.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    result = reader.read_file("lines.txt", start_line=3, end_line=4)
    assert result["content"] == "line 3\nline 4\n"
    assert (result["start_line"], result["end_line"], result["next_start_line"]) == (3, 4, 5)
    assert result["truncated"] is False
    tail = reader.read_file("lines.txt", start_line=9)
    assert tail["content"] == "line 9\nline 10\n"
    assert tail["next_start_line"] is None
    assert reader.read_file("lines.txt", start_line=10, end_line=99)["content"] == "line 10\n"


@pytest.mark.parametrize(
    ("start_line", "end_line", "message"),
    [(0, None, "start_line must be 1 or more"), (5, 4, "before start_line"), (3, None, "past the end")],
)
def test_read_file_bad_ranges(
    reader: SoftwareEngineerTools, start_line: int, end_line: int | None, message: str
) -> None:
    result = reader.read_file("src/pkg/core.py", start_line=start_line, end_line=end_line)
    assert result["status"] == "error"
    assert message in result["error"]


def test_read_file_caps_big_files(root: Path, reader: SoftwareEngineerTools) -> None:
    line = "x" * 99 + "\n"
    (root / "big.txt").write_text(line * 1000)
    result = reader.read_file("big.txt")
    assert result["truncated"] is True
    assert len(result["content"]) <= MAX_READ_CHARS
    assert result["content"] == line * (MAX_READ_CHARS // 100)
    assert result["next_start_line"] == MAX_READ_CHARS // 100 + 1
    assert "65536" in result["note"]
    rest = reader.read_file("big.txt", start_line=result["next_start_line"])
    assert rest["end_line"] == 1000


def test_read_file_cuts_a_single_huge_line(root: Path, reader: SoftwareEngineerTools) -> None:
    (root / "min.js").write_text("a" * (MAX_READ_CHARS * 2) + "\nsecond\n")
    result = reader.read_file("min.js")
    assert result["truncated"] is True
    assert result["end_line"] == 1
    assert result["next_start_line"] == 2
    assert "characters omitted" in result["content"]
    assert len(result["content"]) < MAX_READ_CHARS + 100


def test_read_file_keeps_crlf(root: Path, reader: SoftwareEngineerTools) -> None:
    (root / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    assert reader.read_file("win.txt")["content"] == "one\r\ntwo\r\n"


def test_read_file_refusals(root: Path, outside: Path, reader: SoftwareEngineerTools) -> None:
    (root / "blob.bin").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    assert "binary" in reader.read_file("blob.bin")["error"]
    assert "directory" in reader.read_file("src")["error"]
    assert "No such file" in reader.read_file("missing.py")["error"]
    for path in _escape_paths(root, outside):
        result = reader.read_file(path)
        assert result["status"] == "error", path
        assert "secret" not in str(result.get("content", ""))


def test_read_file_through_an_inside_symlink(root: Path, reader: SoftwareEngineerTools) -> None:
    (root / "core_link.py").symlink_to(root / "src" / "pkg" / "core.py")
    result = reader.read_file("core_link.py")
    assert result["status"] == "ok"
    assert result["path"] == "src/pkg/core.py"


# --- search_files -----------------------------------------------------------


def test_search_files_finds_lines(reader: SoftwareEngineerTools) -> None:
    result = reader.search_files(r"TODO")
    assert result["status"] == "ok"
    assert result["matches"] == [
        {"path": "README.md", "line": 2, "text": "TODO: docs"},
        {"path": "src/app.py", "line": 3, "text": "print(add(1, 2))  # TODO fix"},
    ]
    assert result["truncated"] is False
    # .git and __pycache__ are skipped entirely, not counted as searched files.
    assert result["files_searched"] == 3


def test_search_files_in_one_file_and_subdir(reader: SoftwareEngineerTools) -> None:
    assert [m["line"] for m in reader.search_files(r"^def \w+", "src/pkg/core.py")["matches"]] == [1]
    assert reader.search_files("TODO", "src")["matches"][0]["path"] == "src/app.py"


def test_search_files_skips_binary_and_outside_links(root: Path, outside: Path, reader: SoftwareEngineerTools) -> None:
    (root / "blob.bin").write_bytes(b"TODO\0binary")
    _escape_paths(root, outside)
    result = reader.search_files("TODO|secret")
    assert {m["path"] for m in result["matches"]} == {"README.md", "src/app.py"}
    assert result["files_skipped"] == 2  # blob.bin and the link to the outside file
    assert reader.search_files("secret", "out_dir")["status"] == "error"


def test_search_files_caps_results_and_lines(root: Path, reader: SoftwareEngineerTools) -> None:
    (root / "many.txt").write_text("hit " + "y" * 1000 + "\n" + "hit\n" * 20)
    result = reader.search_files("hit", "many.txt", max_results=5)
    assert len(result["matches"]) == 5
    assert result["truncated"] is True
    assert len(result["matches"][0]["text"]) < 400
    assert "characters omitted" in result["matches"][0]["text"]


def test_search_files_errors(reader: SoftwareEngineerTools) -> None:
    bad = reader.search_files("([unclosed")
    assert bad["status"] == "error"
    assert "invalid regular expression" in bad["error"]
    assert reader.search_files("x", "nope")["status"] == "error"
    assert reader.search_files("x", "../outside")["status"] == "error"


# --- write_file and edit_file -----------------------------------------------


def test_writing_is_refused_unless_enabled(root: Path, reader: SoftwareEngineerTools) -> None:
    result = reader.write_file("new.txt", "data")
    assert result["status"] == "error"
    assert "allow_write=False" in result["error"]
    assert not (root / "new.txt").exists()
    edit = reader.edit_file("src/pkg/core.py", "a - b", "a + b")
    assert "allow_write=False" in edit["error"]
    assert "a - b" in (root / "src" / "pkg" / "core.py").read_text()


def test_write_file_creates_parents(root: Path, writer: SoftwareEngineerTools) -> None:
    result = writer.write_file("docs/guide/intro.md", "# Intro\r\n")
    assert result == {"status": "ok", "path": "docs/guide/intro.md", "created": True, "characters": 9}
    assert (root / "docs" / "guide" / "intro.md").read_bytes() == b"# Intro\r\n"
    assert writer.write_file("docs/guide/intro.md", "v2")["created"] is False
    assert "directory" in writer.write_file("src", "x")["error"]


def test_write_file_cannot_escape(root: Path, outside: Path, writer: SoftwareEngineerTools) -> None:
    (root / "dangling").symlink_to(outside / "planted.txt")
    paths = [*_escape_paths(root, outside), "out_dir/planted.txt", "dangling", "../planted.txt"]
    for path in paths:
        assert writer.write_file(path, "pwned")["status"] == "error", path
    assert (outside / "secret.txt").read_text() == "TODO secret token\n"
    assert not (outside / "planted.txt").exists()
    assert not (root.parent / "planted.txt").exists()


def test_edit_file_replaces_exactly_once(root: Path, writer: SoftwareEngineerTools) -> None:
    result = writer.edit_file("src/pkg/core.py", "return a - b", "return a + b")
    assert result == {"status": "ok", "path": "src/pkg/core.py", "line": 2}
    assert (root / "src" / "pkg" / "core.py").read_text() == "def add(a, b):\n    return a + b\n"


@pytest.mark.parametrize(
    ("content", "old_text", "message"),
    [
        ("x = 1\n", "y = 2", "occurs 0 times"),
        ("x = 1\nx = 1\n", "x = 1", "occurs 2 times"),
        ("aaa", "aa", "occurs 2 times"),  # overlapping matches are ambiguous too
        ("x = 1\n", "", "must not be empty"),
    ],
)
def test_edit_file_ambiguous_or_missing(
    root: Path, writer: SoftwareEngineerTools, content: str, old_text: str, message: str
) -> None:
    (root / "f.py").write_text(content)
    result = writer.edit_file("f.py", old_text, "z")
    assert result["status"] == "error"
    assert message in result["error"]
    assert (root / "f.py").read_text() == content


def test_edit_file_refusals(root: Path, outside: Path, writer: SoftwareEngineerTools) -> None:
    (root / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    assert "not UTF-8" in writer.edit_file("latin1.txt", "caf", "tea")["error"]
    assert "no such file" in writer.edit_file("missing.py", "a", "b")["error"]
    for path in _escape_paths(root, outside):
        assert writer.edit_file(path, "secret", "pwned")["status"] == "error", path
    assert (outside / "secret.txt").read_text() == "TODO secret token\n"


# --- run_command ------------------------------------------------------------


@pytest.mark.asyncio
async def test_commands_are_refused_unless_enabled(reader: SoftwareEngineerTools) -> None:
    result = await reader.run_command("ls")
    assert result["status"] == "error"
    assert "allow_commands=False" in result["error"]


@pytest.mark.asyncio
async def test_run_command_runs_in_the_workspace(runner_tools: SoftwareEngineerTools) -> None:
    listing = await runner_tools.run_command("ls src")
    assert listing == {
        "status": "ok",
        "exit_code": 0,
        "stdout": "app.py\npkg\n",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
    }
    cwd = await runner_tools.run_command(f"{PYTHON} -c 'import os; print(os.getcwd())'")
    assert cwd["stdout"].strip() == str(runner_tools.workspace.root)


@pytest.mark.asyncio
async def test_run_command_reports_failure_and_stderr(runner_tools: SoftwareEngineerTools) -> None:
    result = await runner_tools.run_command(f"{PYTHON} -c 'import sys; sys.exit(\"boom\")'")
    assert result["status"] == "ok"
    assert result["exit_code"] == 1
    assert result["stderr"] == "boom\n"


@pytest.mark.asyncio
async def test_run_command_gives_no_input(runner_tools: SoftwareEngineerTools) -> None:
    # cat with no file reads stdin: it must see end of input, not wait for the timeout.
    result = await runner_tools.run_command("cat")
    assert result["status"] == "ok"
    assert result["stdout"] == ""


@pytest.mark.parametrize(
    "command",
    ["rm -rf src", "bash -c 'rm -rf src'", "sh", "/bin/ls", "./ls", "ls; rm -rf src", "env ls"],
)
@pytest.mark.asyncio
async def test_disallowed_programs_are_refused(root: Path, runner_tools: SoftwareEngineerTools, command: str) -> None:
    result = await runner_tools.run_command(command)
    assert result["status"] == "error"
    assert "is not allowed" in result["error"]
    assert (root / "src" / "app.py").exists()


@pytest.mark.parametrize(
    "command",
    ["ls ; rm -rf src", "ls && rm -rf src", "ls | rm -rf src", "ls $(rm -rf src)", "ls `rm -rf src`"],
)
@pytest.mark.asyncio
async def test_shell_syntax_is_not_interpreted(root: Path, runner_tools: SoftwareEngineerTools, command: str) -> None:
    result = await runner_tools.run_command(command)
    # ls ran, got the words as file names, and complained about the missing ones.
    assert result["status"] == "ok"
    assert result["exit_code"] != 0
    assert "rm" in result["stderr"]
    assert (root / "src" / "app.py").exists()


@pytest.mark.asyncio
async def test_redirection_is_not_interpreted(root: Path, runner_tools: SoftwareEngineerTools) -> None:
    await runner_tools.run_command("ls > listing.txt")
    assert not (root / "listing.txt").exists()


@pytest.mark.parametrize(("command", "message"), [("", "empty command"), ("ls 'unclosed", "cannot parse")])
@pytest.mark.asyncio
async def test_unusable_commands(runner_tools: SoftwareEngineerTools, command: str, message: str) -> None:
    result = await runner_tools.run_command(command)
    assert result["status"] == "error"
    assert message in result["error"]


@pytest.mark.asyncio
async def test_missing_program_is_reported(root: Path) -> None:
    tools = SoftwareEngineerTools(root, allow_commands=True, allowed_commands=("no-such-program-xyz",))
    result = await tools.run_command("no-such-program-xyz --help")
    assert "not found on PATH" in result["error"]


@pytest.mark.asyncio
async def test_run_command_times_out(root: Path) -> None:
    tools = SoftwareEngineerTools(root, allow_commands=True, command_timeout=0.3)
    started = time.monotonic()
    result = await tools.run_command(f'{PYTHON} -c "import time; time.sleep(5)"')
    assert time.monotonic() - started < 2.0
    assert result["status"] == "error"
    assert "timed out after 0.3 s" in result["error"]


@pytest.mark.asyncio
async def test_timeout_kills_what_the_program_started(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The grandchild holds the output pipes: unless it is killed with the program,
    # the tool would wait out the whole grace period for them to close.
    monkeypatch.setattr(software_engineer, "_PIPE_GRACE_SECONDS", 5.0)
    tools = SoftwareEngineerTools(root, allow_commands=True, command_timeout=1.0)
    script = (
        "import subprocess, time; "
        "child = subprocess.Popen(['sleep', '30']); "
        "open('child.pid', 'w').write(str(child.pid)); "
        "print('started', flush=True); time.sleep(30)"
    )
    started = time.monotonic()
    result = await tools.run_command(f'{PYTHON} -c "{script}"')
    assert time.monotonic() - started < 3.0
    assert "timed out after 1 s" in result["error"]
    assert result["stdout"] == "started\n"  # the output so far is kept
    assert await _process_ends(int((root / "child.pid").read_text()))


def _has_ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # An orphan killed outright may stay a zombie until init reaps it: it has ended.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] == "Z"


async def _process_ends(pid: int) -> bool:
    for _ in range(50):
        if _has_ended(pid):
            return True
        await asyncio.sleep(0.02)
    return False


@pytest.mark.asyncio
async def test_run_command_returns_when_the_program_exits(root: Path, runner_tools: SoftwareEngineerTools) -> None:
    # A background grandchild keeps the pipes open after the program itself exits:
    # the exit code counts, and the grandchild does not outlive the tool call.
    script = (
        "import subprocess; "
        "child = subprocess.Popen(['sleep', '30']); "
        "open('child.pid', 'w').write(str(child.pid)); print('done')"
    )
    started = time.monotonic()
    result = await runner_tools.run_command(f'{PYTHON} -c "{script}"')
    assert time.monotonic() - started < 1.5
    assert (result["status"], result["exit_code"], result["stdout"]) == ("ok", 0, "done\n")
    assert await _process_ends(int((root / "child.pid").read_text()))


@pytest.mark.asyncio
async def test_run_command_does_not_wait_for_escaped_pipes(
    runner_tools: SoftwareEngineerTools, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A grandchild in a session of its own is out of reach of the group kill and
    # holds the pipes: the tool still returns, after a short grace period.
    monkeypatch.setattr(software_engineer, "_PIPE_GRACE_SECONDS", 0.2)
    script = (
        "import subprocess; "
        "child = subprocess.Popen(['sleep', '30'], start_new_session=True); "
        "open('child.pid', 'w').write(str(child.pid))"
    )
    started = time.monotonic()
    result = await runner_tools.run_command(f'{PYTHON} -c "{script}"')
    try:
        assert time.monotonic() - started < 3.0
        assert (result["status"], result["exit_code"]) == ("ok", 0)
    finally:
        os.kill(int((root / "child.pid").read_text()), signal.SIGKILL)


@pytest.mark.asyncio
async def test_cancelling_the_call_kills_the_program(root: Path, runner_tools: SoftwareEngineerTools) -> None:
    script = "import os, time; open('own.pid', 'w').write(str(os.getpid())); time.sleep(30)"
    task = asyncio.ensure_future(runner_tools.run_command(f'{PYTHON} -c "{script}"'))
    pid_file = root / "own.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _process_ends(int(pid_file.read_text()))


@pytest.mark.asyncio
async def test_run_command_caps_output(runner_tools: SoftwareEngineerTools) -> None:
    script = "import sys; sys.stdout.write('A' * 100 + 'x' * 200000 + 'Z' * 100)"
    result = await runner_tools.run_command(f'{PYTHON} -c "{script}"')
    assert result["status"] == "ok"
    assert result["stdout_truncated"] is True
    assert result["stderr_truncated"] is False
    stdout = result["stdout"]
    assert len(stdout) < MAX_COMMAND_OUTPUT_CHARS + 100
    assert stdout.startswith("A" * 100)
    assert stdout.endswith("Z" * 100)
    assert f"[... {200200 - MAX_COMMAND_OUTPUT_CHARS} characters omitted ...]" in stdout


# --- the agent --------------------------------------------------------------


@dataclass
class FakeRetry:
    """Stands in for the retry library, recording how the factory wires it."""

    created: list[tuple[str, Any]] = field(default_factory=list)
    attached: list[tuple[LlmAgent, object]] = field(default_factory=list)
    handler: object = field(default_factory=object)

    @staticmethod
    def before_model(callback_context: Any, llm_request: LlmRequest) -> None:
        return None

    @staticmethod
    def after_model(callback_context: Any, llm_response: LlmResponse) -> None:
        return None

    def create_retry_callbacks(self, name: str, policy: Any = None) -> dict[str, Any]:
        self.created.append((name, policy))
        return {"before_model": self.before_model, "after_model": self.after_model, "retry_handler": self.handler}

    def add_retry_capabilities_to_agent(self, agent: LlmAgent, retry_handler: object) -> LlmAgent:
        self.attached.append((agent, retry_handler))
        return agent


@pytest.fixture(autouse=True)
def _model_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)


@pytest.fixture
def fake_retry(monkeypatch: pytest.MonkeyPatch) -> FakeRetry:
    fake = FakeRetry()
    monkeypatch.setattr(software_engineer, "create_retry_callbacks", fake.create_retry_callbacks)
    monkeypatch.setattr(software_engineer, "add_retry_capabilities_to_agent", fake.add_retry_capabilities_to_agent)
    return fake


class ScriptedLlm(BaseLlm):
    """A model that answers with prepared responses and records the requests."""

    responses: list[LlmResponse | Exception] = Field(default_factory=list)
    requests: list[LlmRequest] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        yield response


def _tool_names(agent: LlmAgent) -> list[str]:
    return [getattr(tool, "__name__", type(tool).__name__) for tool in agent.tools]


def test_agent_defaults(fake_retry: FakeRetry, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    agent = create_enhanced_software_engineer_agent()
    assert agent.name == "software_engineer"
    assert isinstance(agent.model, LiteLlm)
    assert agent.model.model == DEFAULT_MODEL
    assert _tool_names(agent) == ["list_files", "read_file", "search_files"]
    tools = agent.tools[0].__self__  # type: ignore[union-attr]
    assert isinstance(tools, SoftwareEngineerTools)
    assert tools.workspace.root == root.resolve()
    assert tools.allowed_commands == DEFAULT_ALLOWED_COMMANDS
    assert isinstance(agent.instruction, str)
    assert "Writing files is disabled" in agent.instruction
    assert "Running commands is disabled" in agent.instruction
    assert "{" not in agent.instruction  # ADK would read braces as session-state placeholders


def test_agent_model_choice(fake_retry: FakeRetry, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV_VAR, "anthropic/claude-sonnet-4-5")
    from_env = create_enhanced_software_engineer_agent(workspace=root)
    assert isinstance(from_env.model, LiteLlm)
    assert from_env.model.model == "anthropic/claude-sonnet-4-5"
    named = create_enhanced_software_engineer_agent("openai/gpt-4o", workspace=root)
    assert isinstance(named.model, LiteLlm)
    assert named.model.model == "openai/gpt-4o"
    instance = ScriptedLlm(model="scripted")
    assert create_enhanced_software_engineer_agent(instance, workspace=root).model is instance


def test_agent_with_everything_enabled(fake_retry: FakeRetry, root: Path) -> None:
    agent = create_enhanced_software_engineer_agent(
        workspace=str(root), allow_write=True, allow_commands=True, allowed_commands=("pytest",), command_timeout=5
    )
    assert _tool_names(agent) == ["list_files", "read_file", "search_files", "write_file", "edit_file", "run_command"]
    assert isinstance(agent.instruction, str)
    assert "disabled" not in agent.instruction
    assert "Allowed programs: pytest." in agent.instruction


def test_agent_workspace_must_be_a_directory(fake_retry: FakeRetry, root: Path) -> None:
    with pytest.raises(ValueError, match=r"README\.md"):
        create_enhanced_software_engineer_agent(workspace=root / "README.md")
    with pytest.raises(WorkspaceError, match="nowhere"):
        create_enhanced_software_engineer_agent(workspace=root / "nowhere")


def test_agent_wires_retry_first_then_user_callbacks(fake_retry: FakeRetry, root: Path) -> None:
    def user_before(callback_context: Any, llm_request: LlmRequest) -> None:
        return None

    def user_after(callback_context: Any, llm_response: LlmResponse) -> None:
        return None

    def extra_tool(query: str) -> dict[str, str]:
        """Look something up."""
        return {"status": "ok", "answer": query}

    policy = object()
    agent = create_enhanced_software_engineer_agent(
        workspace=root,
        name="coder",
        retry_policy=policy,  # type: ignore[arg-type]
        before_model_callback=user_before,
        after_model_callback=[user_after, user_after],
        tools=[extra_tool],
        description="Fixes bugs.",
    )
    assert fake_retry.created == [("coder", policy)]
    assert fake_retry.attached == [(agent, fake_retry.handler)]
    assert agent.before_model_callback == [FakeRetry.before_model, user_before]
    assert agent.after_model_callback == [FakeRetry.after_model, user_after, user_after]
    assert _tool_names(agent)[-1] == "extra_tool"
    assert agent.description == "Fixes bugs."


def test_agent_instruction_can_be_replaced(fake_retry: FakeRetry, root: Path) -> None:
    agent = create_enhanced_software_engineer_agent(workspace=root, instruction="Only review.")
    assert agent.instruction == "Only review."


@pytest.mark.asyncio
async def test_adk_declares_the_tools(fake_retry: FakeRetry, root: Path) -> None:
    agent = create_enhanced_software_engineer_agent(workspace=root, allow_write=True, allow_commands=True)
    declarations = {}
    for tool in await agent.canonical_tools():
        assert isinstance(tool, FunctionTool)
        declaration = tool._get_declaration()
        assert declaration is not None
        assert declaration.description
        declarations[tool.name] = declaration
    schemas = {
        name: declaration.parameters_json_schema or declaration.parameters.model_dump(exclude_none=True)  # type: ignore[union-attr]
        for name, declaration in declarations.items()
    }
    expected = {
        "list_files": ({"path", "recursive", "max_entries"}, []),
        "read_file": ({"path", "start_line", "end_line"}, ["path"]),
        "search_files": ({"pattern", "path", "max_results"}, ["pattern"]),
        "write_file": ({"path", "content"}, ["path", "content"]),
        "edit_file": ({"path", "old_text", "new_text"}, ["path", "old_text", "new_text"]),
        "run_command": ({"command"}, ["command"]),
    }
    assert {
        name: (set(schema["properties"]), sorted(schema.get("required", []))) for name, schema in schemas.items()
    } == {name: (props, sorted(required)) for name, (props, required) in expected.items()}


@pytest.mark.asyncio
async def test_a_refused_tool_call_does_not_end_the_run(fake_retry: FakeRetry, root: Path) -> None:
    call = genai_types.Part.from_function_call(name="read_file", args={"path": "../outside/secret.txt"})
    model = ScriptedLlm(
        model="scripted",
        responses=[
            LlmResponse(content=genai_types.Content(role="model", parts=[call])),
            LlmResponse(content=genai_types.Content(role="model", parts=[genai_types.Part(text="I cannot.")])),
        ],
    )
    agent = create_enhanced_software_engineer_agent(model, workspace=root)
    runner = InMemoryRunner(agent=agent, app_name="se_test")
    session = await runner.session_service.create_session(app_name="se_test", user_id="u")
    message = genai_types.Content(role="user", parts=[genai_types.Part(text="Show me the secret.")])
    events = [event async for event in runner.run_async(user_id="u", session_id=session.id, new_message=message)]
    responses = [
        part.function_response.response
        for event in events
        if event.content and event.content.parts
        for part in event.content.parts
        if part.function_response
    ]
    assert len(responses) == 1
    assert responses[0] is not None
    assert responses[0]["status"] == "error"
    assert "outside the workspace" in responses[0]["error"]
    assert events[-1].content is not None
    assert events[-1].content.parts is not None
    assert events[-1].content.parts[0].text == "I cannot."
    assert len(model.requests) == 2


@pytest.mark.asyncio
async def test_the_built_agent_retries_its_model_calls(root: Path) -> None:
    # The real retry wiring, no fakes: ADK 2.3's error for an empty answer is retried.
    model = ScriptedLlm(
        model="scripted",
        responses=[
            ValueError("No message in response"),
            LlmResponse(content=genai_types.Content(role="model", parts=[genai_types.Part(text="Done.")])),
        ],
    )
    policy = RetryPolicy(max_retries=2, base_delay=0.0, jitter=0.0)
    agent = create_enhanced_software_engineer_agent(model, workspace=root, retry_policy=policy)
    runner = InMemoryRunner(agent=agent, app_name="se_test")
    session = await runner.session_service.create_session(app_name="se_test", user_id="u")
    message = genai_types.Content(role="user", parts=[genai_types.Part(text="Hello.")])
    events = [event async for event in runner.run_async(user_id="u", session_id=session.id, new_message=message)]
    assert events[-1].content is not None
    assert events[-1].content.parts is not None
    assert events[-1].content.parts[0].text == "Done."
    assert len(model.requests) == 2


def test_tool_docs_state_the_real_limits() -> None:
    # The model learns the limits from the docstrings, which cannot interpolate the constants.
    assert str(MAX_READ_CHARS) in (SoftwareEngineerTools.read_file.__doc__ or "")
    assert str(MAX_COMMAND_OUTPUT_CHARS) in (SoftwareEngineerTools.run_command.__doc__ or "")
    assert str(software_engineer._MAX_LIST_ENTRIES) in (SoftwareEngineerTools.list_files.__doc__ or "")
    assert str(software_engineer._MAX_SEARCH_RESULTS) in (SoftwareEngineerTools.search_files.__doc__ or "")


def test_package_exports() -> None:
    assert sorted(agents_package.__all__) == agents_package.__all__
    for name in agents_package.__all__:
        value = getattr(agents_package, name)
        if callable(value):
            assert "Example" in (value.__doc__ or ""), name
