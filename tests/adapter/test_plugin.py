"""RetryPlugin on a multi-agent app, end to end through the fault server."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.tools.agent_tool import AgentTool

from adk_retry import RetryHandler, RetryPlugin, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.testing import Fault, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import OUTAGE, messages

pytestmark = pytest.mark.e2e


def app(model, *, string_model: str | None = None) -> tuple[LlmAgent, LlmAgent, LlmAgent]:
    """A coordinator with two sub-agents (one inheriting its model) and an AgentTool."""
    researcher = LlmAgent(name="researcher", model=model, instruction="Research.")
    helper = LlmAgent(name="helper", instruction="Help.")  # inherits the coordinator's model
    writer = LlmAgent(name="writer", model=string_model or model, instruction="Write.")
    coordinator = LlmAgent(
        name="coordinator",
        model=model,
        instruction="Coordinate.",
        sub_agents=[helper, writer],
        tools=[AgentTool(agent=researcher)],
    )
    return coordinator, helper, researcher


async def test_plugin_retries_sub_agents_and_agent_tools(server, make_model, retry_log):
    coordinator, _, _ = app(make_model())
    plugin = RetryPlugin()
    server.push(
        Fault.tool_call("researcher", {"request": "look it up"}),
        Fault.empty_choices(),  # researcher, inside the AgentTool
        Fault.ok("found it"),
        Fault.empty_choices(),  # coordinator, after the tool
        Fault.tool_call("transfer_to_agent", {"agent_name": "helper"}),
        Fault.empty_choices(),  # helper, with the coordinator's model
        Fault.ok("helper answer"),
    )
    with no_waits():
        turn = await run_turn(coordinator, "go", plugins=[plugin])
    assert "helper answer" in turn.text
    assert len(server.requests) == 7
    stats = plugin.stats
    assert stats["researcher"].retries == 1
    assert stats["coordinator"].retries == 1
    assert stats["helper"].retries == 1
    lines = messages(retry_log)
    for name in ("researcher", "coordinator", "helper"):
        assert f"[{name}] Model request succeeded on attempt 2" in lines


async def test_plugin_covers_string_models(server, monkeypatch):
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.models.registry import LLMRegistry

    LLMRegistry.register(LiteLlm)
    monkeypatch.setenv("OPENAI_API_BASE", server.url)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-env")
    agent = LlmAgent(name="named", model="openai/fault-model")
    plugin = RetryPlugin()
    server.push(Fault.empty_choices(), Fault.ok("from a string model"))
    with no_waits():
        turn = await run_turn(agent, plugins=[plugin])
    assert turn.text == "from a string model"
    assert plugin.stats["named"].retries == 1
    assert agent.model == "openai/fault-model", "closing the runner unpins"


async def test_plugin_does_not_touch_other_runners_of_a_shared_model(server, make_model):
    model = make_model()
    with_plugin = LlmAgent(name="with_plugin", model=model)
    without = LlmAgent(name="without", model=model)
    plugin = RetryPlugin()
    server.push(Fault.empty_choices(), Fault.ok("retried"))
    with no_waits():
        assert (await run_turn(with_plugin, plugins=[plugin])).text == "retried"
    server.push(Fault.null_message(), Fault.ok("not reached"))
    with pytest.raises(Exception, match="Invalid response object"):
        await run_turn(without)
    assert len(server.requests) == 3
    assert "generate_content_async" not in model.__dict__, "close() unwrapped the model"


async def test_plugin_leaves_agents_with_their_own_retry_alone(server, make_model):
    agent = LlmAgent(name="own", model=make_model())
    own = RetryHandler(RetryPolicy(max_retries=1), agent_name="own")
    add_retry_capabilities_to_agent(agent, own)
    plugin = RetryPlugin(RetryPolicy(max_retries=5))
    server.push(*Fault.empty_choices().times(6))
    with no_waits(), pytest.raises(ValueError, match="No message in response"):
        await run_turn(agent, plugins=[plugin])
    assert len(server.requests) == 2, "the agent's own policy (1 retry), not the plugin's"
    assert "own" not in plugin.stats


async def test_plugin_callbacks_never_raise(server, make_model):
    plugin = RetryPlugin()

    class Broken:
        @property
        def _invocation_context(self):
            raise RuntimeError("boom")

    assert await plugin.before_model_callback(callback_context=Broken(), llm_request=None) is None


@pytest.fixture
def default_model(make_model):
    """ADK's default model, set for the test and put back after it."""
    previous = LlmAgent._default_model
    model = make_model()
    LlmAgent.set_default_model(model)
    yield model
    LlmAgent._default_model = previous


async def test_agents_on_adk_default_model_get_retry_from_the_plugin(server, default_model):
    plugin = RetryPlugin()
    server.push(Fault.empty_choices(), Fault.ok("from the default model"))
    with no_waits():
        turn = await run_turn(LlmAgent(name="modelless"), plugins=[plugin])
    assert turn.text == "from the default model"
    assert plugin.stats["modelless"].retries == 1


async def test_agents_on_adk_default_model_get_their_own_retry_at_the_first_call(server, default_model):
    agent = LlmAgent(name="modelless")
    add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="modelless"))
    assert agent.model == "", "not resolved (nor pinned) before the agent runs"
    server.push(Fault.empty_choices(), Fault.ok("resolved at the call"))
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "resolved at the call"
    assert agent._retry_handler.stats.retries == 1


async def turn_on(runner: Any, session_id: str, message: str = "hello") -> str:
    """One turn of a long-lived runner (``run_turn`` builds and closes a runner per turn)."""
    from google.genai import types

    events = [
        event
        async for event in runner.run_async(
            user_id="user",
            session_id=session_id,
            new_message=types.Content(role="user", parts=[types.Part(text=message)]),
        )
    ]
    return "".join(part.text or "" for event in events if event.content for part in event.content.parts or ())


def test_a_long_lived_runner_does_not_keep_replaced_models_alive(server, make_model, monkeypatch):
    """The plugin used to keep every model it ever wrapped until close().

    Two things outside adk-retry keep old models alive for a while, plugin or
    not, and are set aside here: litellm's shared aiohttp connector holds
    timers whose contexts hold ADK's copy of the agent (so litellm's httpx
    transport is used), and a live loop's cancelled timers do the same until
    they are due (so each turn runs in its own loop, as ADK's synchronous
    ``Runner.run`` does).
    """
    import litellm
    from google.adk.runners import InMemoryRunner

    monkeypatch.setattr(litellm, "disable_aiohttp_transport", True)

    agent = LlmAgent(name="rotating", instruction="Answer.")
    plugin = RetryPlugin()
    runner = InMemoryRunner(agent=agent, app_name="leak", plugins=[plugin])
    session = asyncio.run(runner.session_service.create_session(app_name="leak", user_id="user"))
    old: list[weakref.ref[Any]] = []
    turns = 5
    try:
        for turn in range(turns):
            agent.model = make_model()  # a new model instance every turn, as some apps do
            old.append(weakref.ref(agent.model))
            server.push(Fault.empty_choices(), Fault.ok(f"answer {turn}"))
            with no_waits():
                assert asyncio.run(turn_on(runner, session.id)) == f"answer {turn}"
        live = agent.model
        gc.collect()
        assert [ref() is None for ref in old[:-1]] == [True] * (turns - 1), "the replaced models were freed"
        assert "generate_content_async" in live.__dict__, "the current model is still wrapped"
        assert plugin.stats["rotating"].retries == turns, "every turn was retried"
    finally:
        asyncio.run(runner.close())
    assert "generate_content_async" not in live.__dict__, "close() still undoes the live model"


async def test_a_preset_name_as_the_policy_retries_through_the_real_stack(server, make_model):
    """``RetryPlugin("transient")`` used to be stored as a string and leave every call without retry."""
    agent = LlmAgent(name="preset", model=make_model())
    plugin = RetryPlugin("transient")
    server.push(Fault.http_error(503), Fault.ok("after the outage"))
    with no_waits():
        turn = await run_turn(agent, plugins=[plugin])
    assert turn.text == "after the outage"
    assert len(server.requests) == 2
    assert plugin.stats["preset"].retries == 1


async def test_a_dict_as_the_policy_retries_through_the_real_stack(server, make_model):
    agent = LlmAgent(name="fields", model=make_model())
    plugin = RetryPlugin({"retry_on": "transient", "max_retries": 1})
    server.push(*Fault.http_error(503).times(3))
    with no_waits(), pytest.raises(Exception, match=OUTAGE):
        await run_turn(agent, plugins=[plugin])
    assert len(server.requests) == 2, "max_retries=1 from the dict: two attempts"
