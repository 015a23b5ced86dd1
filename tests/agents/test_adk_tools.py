"""Why the software-engineer agent keeps its own tools: ADK's, checked on the installed ADK.

``adk_retry/agents/software_engineer.py`` explains why ADK's ``ExecuteBashTool``,
``EnvironmentToolset`` and ``LocalEnvironment`` do not meet the agent's contract
(workspace-confined, unattended, no shell, allow-listed programs). These tests
pin those reasons on google-adk 2.3 and 2.13, so that when ADK changes one of
them, a failure here says it is time to look again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import google.adk
import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.environment import LocalEnvironment
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import InMemoryRunner
from google.adk.tools.bash_tool import BashToolPolicy, ExecuteBashTool
from google.adk.tools.environment import EnvironmentToolset
from google.genai import types as genai_types

from tests.agents.test_software_engineer import ScriptedLlm

ADK_VERSION = tuple(int(part) for part in google.adk.__version__.split(".")[:2])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A workspace with a secret beside it."""
    (tmp_path / "secret.txt").write_text("secret\n")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


async def _run_one_bash_call(root: Path, command: str, allowed: tuple[str, ...]) -> tuple[list[str], list[Any]]:
    """Let a scripted model call ``execute_bash`` once; return the calls and tool results seen."""
    call = genai_types.Part.from_function_call(name="execute_bash", args={"command": command})
    model = ScriptedLlm(
        model="scripted",
        responses=[
            LlmResponse(content=genai_types.Content(role="model", parts=[call])),
            LlmResponse(content=genai_types.Content(role="model", parts=[genai_types.Part(text="Done.")])),
        ],
    )
    tool = ExecuteBashTool(workspace=root, policy=BashToolPolicy(allowed_command_prefixes=allowed))
    runner = InMemoryRunner(agent=LlmAgent(name="coder", model=model, tools=[tool]), app_name="adk_tools")
    session = await runner.session_service.create_session(app_name="adk_tools", user_id="u")
    message = genai_types.Content(role="user", parts=[genai_types.Part(text="Go.")])
    calls: list[str] = []
    results: list[Any] = []
    async for event in runner.run_async(user_id="u", session_id=session.id, new_message=message):
        for part in (event.content.parts if event.content else None) or []:
            if part.function_call:
                calls.append(part.function_call.name or "")
            if part.function_response:
                results.append(part.function_response.response)
    return calls, results


@pytest.mark.asyncio
async def test_execute_bash_tool_waits_for_a_human(root: Path) -> None:
    # Even an allowed command is not run: the run ends asking the user to confirm it.
    calls, results = await _run_one_bash_call(root, "touch made.txt", allowed=("touch",))
    assert calls == ["execute_bash", "adk_request_confirmation"]
    assert results == [{"error": "This tool call requires confirmation, please approve or reject."}]
    assert not (root / "made.txt").exists()


@pytest.mark.asyncio
async def test_execute_bash_tool_allow_list_is_a_string_prefix_on_2_3(root: Path) -> None:
    # "ls" allowed: on 2.3 "lsof" passes the allow-list (and goes on to ask for
    # confirmation); 2.13 compares whole words and refuses it.
    _, results = await _run_one_bash_call(root, "lsof", allowed=("ls",))
    blocked = "Command blocked" in str(results[0].get("error"))
    assert blocked is (ADK_VERSION >= (2, 13))


@pytest.mark.asyncio
async def test_local_environment_runs_commands_through_a_shell(root: Path) -> None:
    environment = LocalEnvironment(working_dir=root)
    await environment.initialize()
    result = await environment.execute("echo $((6 * 7)) > out.txt && echo chained")
    assert (result.exit_code, result.stdout) == (0, "chained\n")
    assert (root / "out.txt").read_text() == "42\n"


@pytest.mark.asyncio
async def test_local_environment_confines_paths_only_on_newer_adk(root: Path) -> None:
    if ADK_VERSION not in {(2, 3), (2, 13)}:
        pytest.skip("checked on google-adk 2.3 and 2.13 only")
    environment = LocalEnvironment(working_dir=root)
    await environment.initialize()
    for path in ("../secret.txt", str(root.parent / "secret.txt")):
        if ADK_VERSION == (2, 3):
            assert await environment.read_file(path) == b"secret\n"
        else:
            with pytest.raises(ValueError, match="escapes working directory"):
                await environment.read_file(path)


@pytest.mark.asyncio
async def test_environment_toolset_always_offers_commands_and_writes(root: Path) -> None:
    toolset = EnvironmentToolset(environment=LocalEnvironment(working_dir=root))
    assert [tool.name for tool in await toolset.get_tools()] == ["Execute", "ReadFile", "EditFile", "WriteFile"]
