"""RetryPlugin on a multi-agent app, end to end through the fault server."""

from __future__ import annotations

import pytest
from google.adk.agents import LlmAgent
from google.adk.tools.agent_tool import AgentTool

from adk_retry import RetryHandler, RetryPlugin, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.testing import Fault, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import messages

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
