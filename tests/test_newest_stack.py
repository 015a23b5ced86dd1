"""End to end on the stack a plain install gets, and on the pinned and oldest ones.

litellm 1.110 (openai 3.x) raises ``MidStreamFallbackError`` for a stream that
ends without a ``finish_reason``; 1.106 and 1.83 end it normally. Either way a
stream that ended before any content is an empty answer, retried under the
default policy, and one that ended after content reached the caller is not.
google-adk 2.13's ``LiteLlm`` reports unparseable tool-call arguments as
``MALFORMED_FUNCTION_CALL``: retried only when the policy opts in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.adk.agents import Agent
from google.adk.events.event import Event

from adk_retry import MalformedFunctionCallError, add_retry_capabilities_to_agent, create_retry_callbacks
from adk_retry.testing import Fault, FaultServer, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import retrying_agent, stream_turn

pytestmark = pytest.mark.e2e

MALFORMED_ARGUMENTS = '{"city": "Par'

try:  # google-adk 2.13 reports unparseable arguments as a response; 2.3's LiteLlm raises JSONDecodeError
    import google.adk.flows.llm_flows.core._finalizer  # noqa: F401

    MALFORMED_IS_A_RESPONSE = True
except ImportError:
    MALFORMED_IS_A_RESPONSE = False


def get_weather(city: str) -> dict[str, str]:
    """The weather in ``city``."""
    return {"city": city, "weather": "sunny"}


def weather_agent(model: Any, **policy: Any) -> Any:
    callbacks = create_retry_callbacks("weather", **policy)
    agent = Agent(
        name="weather",
        model=model,
        instruction="Use the tool.",
        tools=[get_weather],
        before_model_callback=[callbacks["before_model"]],
        after_model_callback=[callbacks["after_model"]],
    )
    return add_retry_capabilities_to_agent(agent, callbacks["retry_handler"])


def partial_text(events: list[Event]) -> str:
    return "".join(p.text for e in events if e.partial and e.content for p in e.content.parts or () if p.text)


async def test_a_stream_ending_without_finish_reason_before_content_is_retried(server, make_model):
    # litellm 1.110: MidStreamFallbackError before the first content chunk; older: an empty answer.
    agent = retrying_agent(make_model())
    server.push(Fault.stream_unfinished(), Fault.ok("streamed answer here", chunks=3))
    with no_waits():
        turn = await run_turn(agent, streaming=True)
    assert turn.text == "streamed answer here"
    assert len(server.requests) == 2
    assert agent._retry_handler.stats.retries == 1


@pytest.mark.parametrize("retry_on", ["default", "transient"])
async def test_a_stream_ending_without_finish_reason_after_content_is_never_spliced(server, make_model, retry_on):
    agent = retrying_agent(make_model(), retry_on=retry_on)
    server.push(Fault.stream_unfinished("one two three", chunks=3), Fault.ok("never sent"))
    with no_waits():
        events, error = await stream_turn(agent)
    assert len(server.requests) == 1
    assert partial_text(events) == "one two three"
    if error is not None:  # litellm 1.110; older versions end the stream as an answer
        assert type(error).__name__ == "MidStreamFallbackError"
    stats = agent._retry_handler.stats
    assert (stats.retries, stats.calls) == (0, 1)


async def test_malformed_tool_arguments_are_retried_when_the_policy_opts_in(server, make_model):
    agent = weather_agent(make_model(), retry_malformed_function_calls=True)
    server.push(
        Fault.tool_call("get_weather", MALFORMED_ARGUMENTS),
        Fault.tool_call("get_weather", {"city": "Paris"}),
        Fault.ok("It is sunny in Paris."),
    )
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "It is sunny in Paris."
    assert [(call.name, call.args) for call in turn.function_calls] == [("get_weather", {"city": "Paris"})]
    assert len(server.requests) == 3
    # The retry re-sent the very same request.
    assert json.dumps(server.requests[0]["messages"]) == json.dumps(server.requests[1]["messages"])
    assert agent._retry_handler.stats.retries == 1


async def test_malformed_tool_arguments_raise_a_clear_error_when_retries_run_out(server, make_model):
    agent = weather_agent(make_model(), retry_malformed_function_calls=True, max_retries=1)
    server.push(*Fault.tool_call("get_weather", MALFORMED_ARGUMENTS).times(2))
    with no_waits(), pytest.raises(MalformedFunctionCallError if MALFORMED_IS_A_RESPONSE else ValueError) as caught:
        await run_turn(agent)
    if MALFORMED_IS_A_RESPONSE:
        assert caught.value.response.error_code == "MALFORMED_FUNCTION_CALL"
        assert "get_weather" in str(caught.value)
    else:
        assert isinstance(caught.value, json.JSONDecodeError)  # the original error, as 2.3 raised it
    assert len(server.requests) == 2
    assert agent._retry_handler.stats.failures == 1


async def test_malformed_tool_arguments_are_not_retried_by_default(server: FaultServer, make_model):
    agent = weather_agent(make_model(), retry_on="transient")
    server.push(Fault.tool_call("get_weather", MALFORMED_ARGUMENTS), Fault.ok("never sent"))
    with no_waits():
        if MALFORMED_IS_A_RESPONSE:  # the response reaches ADK (and ReflectAndRetryModelPlugin) as it is
            turn = await run_turn(agent)
            assert [e.error_code for e in turn.events if e.error_code] == ["MALFORMED_FUNCTION_CALL"]
        else:
            with pytest.raises(json.JSONDecodeError):
                await run_turn(agent)
    assert len(server.requests) == 1
    assert agent._retry_handler.stats.retries == 0
