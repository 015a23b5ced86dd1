"""The README as a new user meets it: its commands are CI's, and every code block runs as written.

Each ```python block is run on its own, in a fresh namespace, as a user
pasting it into a new file would: nothing is substituted, and no block leans
on an earlier one. A block that needs a model names a real provider's model
("openai/gpt-4o-mini"); the test points that provider at a ``FaultServer``
through ``OPENAI_API_BASE`` / ``OPENAI_API_KEY`` (litellm reads them at call
time), so nothing leaves the machine. A block that leaves an ``agent`` or a
``runner`` behind is then driven through one turn whose first answer is
empty, which proves its retry is in place; a block that brings its own
``FaultServer`` checks itself. ```bash blocks name ADK commands whose
options, plugin classes and paths must exist (the two opening commands are
CI's own, checked separately); ```text blocks are output.

The block tests are end-to-end (``e2e``), so CI runs them on google-adk 2.3
as well as 2.13.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adk_retry.testing import Fault, FaultServer, no_waits
from tests.conftest import API_KEY, messages

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ANSWER = "Answered after an empty answer."
NUMBER = r"\d+(?:\.\d+)?"


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    lang: str
    code: str
    line: int
    """The README line of its opening fence, for test ids and tracebacks."""


def readme_blocks() -> list[Block]:
    """Every fenced block of the README, in order."""
    blocks: list[Block] = []
    lines = README.read_text().splitlines()
    opening: tuple[str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.startswith("```"):
            if opening is not None:
                body.append(line)
            continue
        if opening is None:
            opening, body = (line[3:].strip(), number), []
        else:
            blocks.append(Block(opening[0], "\n".join(body) + "\n", opening[1]))
            opening = None
    assert opening is None, f"README.md:{opening[1]}: a code block is never closed"
    return blocks


PYTHON = [block for block in readme_blocks() if block.lang == "python"]
BASH = [block for block in readme_blocks() if block.lang == "bash"]
CI_COMMAND = "python3 -m venv .venv &&"


def block_with(text: str) -> Block:
    """The one Python block containing ``text``."""
    (block,) = [block for block in PYTHON if text in block.code]
    return block


def test_ci_runs_the_readme_test_command():
    readme = README.read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in readme.splitlines() if line.startswith(CI_COMMAND)]
    assert len(commands) == 2, "the README opens with the demo and the test command"
    demo, tests = commands
    assert demo.endswith("adk-retry demo")
    assert tests in ci.splitlines()


def test_public_api_is_explicit_and_sorted():
    import adk_retry

    assert adk_retry.__all__ == sorted(adk_retry.__all__)
    for name in adk_retry.__all__:
        assert getattr(adk_retry, name).__doc__ or name.isupper(), f"{name} has no docstring"


def test_every_block_says_what_it_is():
    """Untagged blocks would escape the tests below."""
    untagged = [block.line for block in readme_blocks() if block.lang not in {"python", "bash", "text"}]
    assert not untagged, f"README.md lines {untagged}: tag each block python, bash or text"
    assert len(PYTHON) >= 10


def all_loggers() -> list[logging.Logger]:
    """The root logger and every logger created so far."""
    known = logging.Logger.manager.loggerDict.values()
    return [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]


@contextmanager
def logging_left_as_found() -> Iterator[None]:
    """Undo what a block does to logging (filters, the root's handlers and level), so blocks stay independent."""
    root = logging.getLogger()
    saved = {logger: list(logger.filters) for logger in all_loggers()}
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for logger in all_loggers():
            logger.filters[:] = saved.get(logger, [])
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def provider(server: FaultServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FaultServer:
    """The fault server standing in for the OpenAI API: an empty answer, then a real one."""
    monkeypatch.setenv("OPENAI_API_BASE", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("ADK_RETRY_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)  # a block working on "." gets an empty directory
    server.push(Fault.empty_choices(), Fault.ok(ANSWER))
    return server


def exec_block(block: Block) -> dict[str, Any]:
    """Run ``block`` as a fresh module would; returns what it defined."""
    namespace: dict[str, Any] = {"__name__": "readme_block"}
    exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
    return namespace


def run_block(block: Block) -> dict[str, Any]:
    """:func:`exec_block`, with logging put back as it was afterwards."""
    with logging_left_as_found():
        return exec_block(block)


async def drive(namespace: dict[str, Any], server: FaultServer) -> bool:
    """One turn through the ``runner`` or ``agent`` a block built; False if it built neither."""
    from google.adk.agents.llm_agent import LlmAgent
    from google.adk.runners import Runner

    from adk_retry.testing.turns import run_turn, run_turn_on

    if any(isinstance(value, FaultServer) for value in namespace.values()):
        return False  # the block talks to its own server and asserts what it saw
    runner, agent = namespace.get("runner"), namespace.get("agent")
    if isinstance(runner, Runner):
        try:
            turn = await run_turn_on(runner)
        finally:
            await runner.close()
    elif isinstance(agent, LlmAgent):
        turn = await run_turn(agent)
    else:
        return False
    assert turn.text == ANSWER
    assert len(server.requests) == 2, "the empty answer was retried once"
    return True


@pytest.mark.e2e
@pytest.mark.parametrize("block", PYTHON, ids=[f"line{block.line}" for block in PYTHON])
def test_python_block_runs_as_written(block: Block, provider: FaultServer):
    with no_waits():
        namespace = run_block(block)
        asyncio.run(drive(namespace, provider))


@pytest.mark.e2e
def test_the_agent_blocks_are_driven_through_the_fault_server(provider: FaultServer):
    """Guard the driver itself: the three ways in each build something it runs."""
    with no_waits():
        for text in (
            "add_retry_capabilities_to_agent(",
            "RetryPlugin(RetryPolicy(max_retries=5))",
            "create_enhanced_software_engineer_agent(",
        ):
            provider.clear()
            provider.push(Fault.empty_choices(), Fault.ok(ANSWER))
            assert asyncio.run(drive(run_block(block_with(text)), provider)), text


def verification_asserts() -> list[str]:
    """The seed's verification asserts, as the README's one-agent block writes them."""
    code = block_with("add_retry_capabilities_to_agent(").code
    asserts = [line for line in code.splitlines() if line.startswith("assert ")]
    assert len(asserts) == 3
    return asserts


def agent_of_kind(kind: str, server: FaultServer) -> Any:
    """An agent with retry whose model is an instance, a name string, or inherited."""
    from google.adk.agents import Agent
    from google.adk.models.lite_llm import LiteLlm

    from adk_retry import RetryHandler, add_retry_capabilities_to_agent

    instance = LiteLlm(model="openai/gpt-4o-mini", api_base=server.url, api_key=API_KEY)
    if kind == "instance":
        agent = Agent(name="my_agent", model=instance)
    elif kind == "string":
        agent = Agent(name="my_agent", model="openai/gpt-4o-mini")
    else:  # inherited from a parent, itself an instance or a name string
        agent = Agent(name="my_agent", instruction="Answer.")
        Agent(
            name="parent", model=instance if kind == "inherited instance" else "openai/gpt-4o-mini", sub_agents=[agent]
        )
    return add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="my_agent"))


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["instance", "string", "inherited instance", "inherited string"])
async def test_the_verification_asserts_hold_for_every_kind_of_model(kind: str, provider: FaultServer):
    """The README's asserts hold on 2.13 (string kept, instance cached) and 2.3 (instance pinned), and mean it."""
    from adk_retry.testing.turns import run_turn

    agent = agent_of_kind(kind, provider)
    for line in verification_asserts():
        exec(line, {"agent": agent})
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == ANSWER
    assert agent._retry_handler.stats.retries == 1
    assert len(provider.requests) == 2


@pytest.mark.e2e
def test_the_log_lines_are_the_ones_the_library_writes(provider: FaultServer, retry_log: pytest.LogCaptureFixture):
    """The README's log excerpt, numbers aside, from the one-agent block: a retried call, then a give-up."""
    from adk_retry.testing.turns import run_turn

    (excerpt,) = [block for block in readme_blocks() if block.lang == "text" and "[my_agent]" in block.code]
    with no_waits():
        namespace = run_block(block_with("add_retry_capabilities_to_agent("))
        agent = namespace["agent"]
        assert asyncio.run(run_turn(agent)).text == ANSWER
        provider.push(*Fault.empty_choices().times(4))
        with pytest.raises(ValueError, match="No message in response"):
            asyncio.run(run_turn(agent))
    written = [f"{record.levelname} - {record.getMessage()}" for record in retry_log.records]
    assert messages(retry_log)
    for line in excerpt.code.strip().splitlines():
        # The delays are jittered: any number stands for any number.
        pattern = NUMBER.join(map(re.escape, re.split(NUMBER, line)))
        assert any(re.fullmatch(pattern, record) for record in written), f"never written: {line}"


@pytest.mark.e2e
def test_the_redaction_block_keeps_the_key_out_of_every_line(server: FaultServer, capsys: pytest.CaptureFixture[str]):
    """Run first in a program, as the README's block is meant to be, it redacts ADK's own lines too."""
    from google.adk.agents import Agent
    from google.adk.models.lite_llm import LiteLlm

    from adk_retry.testing.turns import run_turn

    server.push(Fault.http_error(401, message=f"Incorrect API key provided: {API_KEY}"))
    with logging_left_as_found():
        logging.getLogger().handlers.clear()  # a fresh program: pytest's own handlers aside
        exec_block(block_with("RedactingFilter"))
        model = LiteLlm(model="openai/gpt-4o-mini", api_base=server.url, api_key=API_KEY, max_retries=0)
        with pytest.raises(Exception, match="Incorrect API key"):
            asyncio.run(run_turn(Agent(name="my_agent", model=model)))
    err = capsys.readouterr().err
    assert "[REDACTED]" in err, "ADK logged the failure, redacted"
    assert API_KEY not in err


def adk_commands() -> list[list[str]]:
    """The ``adk`` command lines of the README's bash blocks (CI's two commands aside)."""
    commands = []
    for block in BASH:
        for line in block.code.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.startswith(CI_COMMAND):
                continue
            words = shlex.split(line)
            assert words[0] == "adk", f"README.md:{block.line}: a bash line nothing checks: {line}"
            commands.append(words)
    return commands


def test_adk_commands_name_real_options_plugins_and_agents():
    """Each ``adk`` line's subcommand and options exist in the installed ADK, its plugins load as ADK loads them."""
    from google.adk.cli.cli_tools_click import main
    from google.adk.plugins.base_plugin import BasePlugin

    commands = adk_commands()
    assert {words[1] for words in commands} >= {"run", "web"}
    for words in commands:
        command = main.commands[words[1]]
        options = {opt: param for param in command.params for opt in param.opts}
        args = iter(words[2:])
        for word in args:
            if word.startswith("--"):
                param = options.get(word.split("=")[0])
                assert param is not None, f"adk {words[1]} has no option {word}"
                value = word.split("=", 1)[1] if "=" in word else (None if param.is_flag else next(args))
                if word.startswith("--extra_plugins"):
                    module, _, name = value.rpartition(".")
                    plugin = getattr(importlib.import_module(module), name)()  # ADK builds it with no arguments
                    assert isinstance(plugin, BasePlugin)
            elif not word.startswith("path/to/"):  # a placeholder for the user's own directory
                agent_dir = ROOT / word
                assert (agent_dir / "__init__.py").is_file() or (agent_dir / "agent.py").is_file(), word


def git(repo: Path, *args: str) -> str:
    """The output of ``git args`` in ``repo``."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def agent_modules() -> list[str]:
    """The modules ADK's loader imported for the example agent (it imports it as a top-level package)."""
    return [name for name in sys.modules if name.split(".")[0] == "software_engineer"]


@pytest.mark.e2e
def test_adk_run_of_the_ready_agent_leaves_nothing_untracked(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``adk run examples/software_engineer`` (ADK's own code, in process) in a clone with the project's .gitignore."""
    from google.adk.cli.cli import run_cli

    clone = tmp_path / "clone"
    example = clone / "examples" / "software_engineer"
    shutil.copytree(
        ROOT / "examples" / "software_engineer", example, ignore=shutil.ignore_patterns("__pycache__", ".adk")
    )
    shutil.copy(ROOT / ".gitignore", clone / ".gitignore")
    git(clone, "init", "-q")
    git(clone, "add", "-A")

    monkeypatch.setenv("OPENAI_API_BASE", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("ADK_RETRY_MODEL", raising=False)
    monkeypatch.delenv("ADK_RETRY_WORKSPACE", raising=False)
    monkeypatch.chdir(clone)
    monkeypatch.setattr(sys, "path", list(sys.path))  # ADK's loader adds the agents' directory
    for name in agent_modules():
        monkeypatch.delitem(sys.modules, name)
    typed = iter(["hello", "exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    server.push(Fault.empty_choices(), Fault.ok("Hello from the workspace."))
    try:
        with no_waits():
            asyncio.run(
                run_cli(
                    agent_parent_dir=str(clone / "examples"), agent_folder_name="software_engineer", save_session=False
                )
            )
    finally:
        for name in agent_modules():
            del sys.modules[name]

    assert len(server.requests) == 2, "the agent answered, after one retry"
    assert (example / ".adk" / "session.db").is_file(), "ADK wrote its sessions"
    assert git(clone, "ls-files", "--others", "--exclude-standard").split() == [], "adk run left untracked files"
