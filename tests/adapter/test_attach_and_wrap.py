"""End to end: Runner + LlmAgent + real LiteLlm + litellm over HTTP to the fault server.

Runs unchanged on google-adk 2.3.0 (empty answers raise "No message in
response") and on the newest (they come back as empty responses). The last
section drives the wrapper's edges with a scripted model instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from adk_retry import (
    EmptyResponseError,
    RetryHandler,
    RetryPolicy,
    add_retry_capabilities_to_agent,
    remove_retry_capabilities,
)
from adk_retry.testing import Fault, FaultServer, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import API_KEY, messages, retrying_agent, stream_turn

pytestmark = pytest.mark.e2e


def sent_messages(server: FaultServer) -> list[str]:
    return [json.dumps(body["messages"], sort_keys=True) for body in server.requests]


async def test_empty_choices_are_retried_until_an_answer(server, make_model, retry_log):
    agent = retrying_agent(make_model())
    server.push(Fault.empty_choices(), Fault.empty_choices(), Fault.ok("hello there"))
    with no_waits():
        turn = await run_turn(agent, "hi")
    assert turn.text == "hello there"
    assert len(server.requests) == 3
    lines = messages(retry_log)
    assert "[assistant] Model request failed (attempt 1/4): No message in response. Retrying in" in lines[2]
    assert "[assistant] Model request failed (attempt 2/4): No message in response. Retrying in" in lines[3]
    assert lines[-1] == "[assistant] Model request succeeded on attempt 3"
    assert agent._retry_handler.stats.retries == 2


async def test_null_message_is_retried(server, make_model):
    agent = retrying_agent(make_model())
    server.push(Fault.null_message(), Fault.ok("fine"))
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "fine"
    assert len(server.requests) == 2


async def test_bad_request_is_not_retried_and_propagates_unchanged(server, make_model):
    import litellm

    agent = retrying_agent(make_model())
    server.push(Fault.http_error(400, message="bad field"))
    with no_waits(), pytest.raises(litellm.BadRequestError) as raised:
        await run_turn(agent)
    assert len(server.requests) == 1
    assert raised.value is agent._retry_handler.stats.last_error
    assert agent._retry_handler.stats.retries == 0


async def test_content_filter_answer_is_an_answer_not_emptiness(server, make_model):
    agent = retrying_agent(make_model())
    server.push(Fault.finish("content_filter"))
    with no_waits():
        await run_turn(agent)
    assert len(server.requests) == 1
    assert agent._retry_handler.stats.retries == 0


async def test_giving_up_raises_no_message_in_response(server, make_model, retry_log):
    agent = retrying_agent(make_model())
    server.push(*Fault.empty_choices().times(4))
    with no_waits(), pytest.raises(ValueError, match=r"^No message in response$") as raised:
        await run_turn(agent)
    assert len(server.requests) == 4
    assert messages(retry_log)[-1] == "[assistant] Model request failed after 4 attempts: No message in response"
    if isinstance(raised.value, EmptyResponseError):  # google-adk >= 2.4
        assert raised.value.response is not None
        assert raised.value.response.content is None or not raised.value.response.content.parts
    assert raised.value is agent._retry_handler.stats.last_error


async def test_seed_verification_asserts_hold(make_model):
    agent = retrying_agent(make_model())
    assert hasattr(agent, "_retry_handler")
    assert agent._retry_handler is not None
    assert "with_retry" in agent.model.generate_content_async.__name__
    assert hasattr(agent, "_original_generate_content_async")


async def test_stream_empty_before_first_chunk_is_retried(server, make_model):
    agent = retrying_agent(make_model())
    server.push(Fault.empty_choices(), Fault.ok("streamed answer here", chunks=3))
    with no_waits():
        turn = await run_turn(agent, streaming=True)
    assert turn.text == "streamed answer here"
    assert len(server.requests) == 2
    partial_text = "".join(p.text for e in turn.events if e.partial for p in e.content.parts if p.text)
    assert partial_text == "streamed answer here"


async def test_stream_cut_after_chunks_is_not_retried_nor_duplicated(server, make_model):
    agent = retrying_agent(make_model(), retry_on="all")
    server.push(Fault.stream_cut(after_chunks=2, text="one two three four"), Fault.ok("never sent"))
    # litellm >= 1.84 raises MidStreamFallbackError; 1.83 ends the stream quietly
    events, error = await stream_turn(agent)
    assert len(server.requests) == 1, "a failure after the first chunk must not be retried"
    if error is not None:
        assert error is agent._retry_handler.stats.last_error
    streamed = [p.text for e in events if e.partial for p in e.content.parts if p.text]
    assert len(streamed) == len(set(streamed)) == 2


async def test_every_attempt_sends_the_same_messages(server, make_model):
    agent = retrying_agent(make_model())
    server.push(Fault.empty_choices(), Fault.null_message(), Fault.ok("done"))
    with no_waits():
        await run_turn(agent, "the question")
    sent = sent_messages(server)
    assert len(sent) == 3
    assert sent[0] == sent[1] == sent[2]


async def test_adding_twice_keeps_one_retry_loop(server, make_model):
    agent = retrying_agent(make_model())
    add_retry_capabilities_to_agent(agent, agent._retry_handler)
    add_retry_capabilities_to_agent(agent, agent._retry_handler)
    server.push(*Fault.empty_choices().times(10))
    with no_waits(), pytest.raises(ValueError, match="No message in response"):
        await run_turn(agent)
    assert len(server.requests) == 4


async def test_one_model_shared_by_two_agents(server, make_model, retry_log):
    model = make_model()
    first = retrying_agent(model, name="first")
    second = retrying_agent(model, name="second", max_retries=1)
    assert first.model is second.model
    server.push(Fault.empty_choices(), Fault.ok("a"))
    server.push(*Fault.empty_choices().times(2))
    with no_waits():
        assert (await run_turn(first)).text == "a"
        with pytest.raises(ValueError, match="No message in response"):
            await run_turn(second)
    assert len(server.requests) == 4
    lines = messages(retry_log)
    assert "[first] Model request succeeded on attempt 2" in lines
    assert "[second] Model request failed after 2 attempts: No message in response" in lines
    assert not any(line.startswith("[first]") and "after 2 attempts" in line for line in lines)
    assert first._retry_handler.stats.calls == 1
    assert second._retry_handler.stats.calls == 1


async def test_concurrent_sessions_each_log_their_own_attempts(server, make_model, retry_log):
    agent = retrying_agent(make_model())
    seen: dict[str, int] = {}

    def script(body: dict[str, Any]) -> Fault:
        # "fail N" asks for N empty answers before the real one, per session.
        text = body["messages"][-1]["content"]
        text = text if isinstance(text, str) else text[0]["text"]
        seen[text] = seen.get(text, 0) + 1
        return Fault.empty_choices() if seen[text] <= int(text.split()[1]) else Fault.ok(f"answer to {text}")

    server.set_default(Fault.reply(script)) if hasattr(server, "set_default") else None
    server.push(*Fault.reply(script).times(40))
    failures = [i % 3 for i in range(12)]
    with no_waits():
        turns = await asyncio.gather(*(run_turn(agent, f"fail {n} #{i}") for i, n in enumerate(failures)))
    assert [t.text for t in turns] == [f"answer to fail {n} #{i}" for i, n in enumerate(failures)]
    succeeded = sorted(int(line.rsplit(" ", 1)[1]) for line in messages(retry_log) if "succeeded on attempt" in line)
    assert succeeded == sorted(n + 1 for n in failures if n)
    stats = agent._retry_handler.stats
    assert (stats.calls, stats.retries, stats.successes) == (12, sum(failures), 12)


async def test_remove_retry_capabilities_restores_the_model(server, make_model):
    model = make_model()
    agent = retrying_agent(model)
    remove_retry_capabilities(agent)
    assert "generate_content_async" not in model.__dict__
    assert model.generate_content_async.__name__ == "generate_content_async"
    assert not hasattr(agent, "_retry_handler")
    server.push(Fault.empty_choices(), Fault.ok("never"))
    # Newer ADK: silently empty; google-adk 2.3 raises, unretried.
    with contextlib.suppress(ValueError):
        await run_turn(agent)
    assert len(server.requests) == 1


async def test_string_model_is_wrapped_where_adk_resolves_it(server):
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.models.registry import LLMRegistry

    LLMRegistry.register(LiteLlm)  # "openai/..." names resolve to LiteLlm
    agent = LlmAgent(name="named", model="openai/fault-model")
    add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="named"))
    resolved = agent.canonical_model
    assert "with_retry" in resolved.generate_content_async.__name__
    assert agent.canonical_model is resolved
    remove_retry_capabilities(agent)
    assert agent.model == "openai/fault-model"


async def test_swapping_the_handler_of_a_string_model_keeps_one_wrapped_instance(server):
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.models.registry import LLMRegistry

    from adk_retry.adapter._wrap import installed

    LLMRegistry.register(LiteLlm)
    agent = LlmAgent(name="named", model="openai/fault-model")
    add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="named"))
    second = RetryHandler(agent_name="named")
    add_retry_capabilities_to_agent(agent, second)
    resolved = agent.canonical_model
    assert agent.canonical_model is resolved, "pinned (ADK 2.3) or cached (2.13): one instance"
    assert installed(resolved).handlers == {"named": second}
    remove_retry_capabilities(agent)
    assert agent.model == "openai/fault-model"


async def test_agent_without_model_or_parent_is_not_given_the_default(server, make_model):
    child = LlmAgent(name="child", instruction="hi")
    add_retry_capabilities_to_agent(child, RetryHandler(agent_name="child"))
    assert child.model == ""
    parent = LlmAgent(name="parent", model=make_model(), sub_agents=[child])
    server.push(Fault.empty_choices(), Fault.ok("from parent"))
    with no_waits():
        turn = await run_turn(child)
    assert turn.text == "from parent"
    assert "with_retry" in parent.model.generate_content_async.__name__
    assert child._retry_handler.stats.retries == 1


async def test_api_key_in_an_error_never_reaches_the_retry_log(server, make_model, caplog):
    caplog.set_level(logging.DEBUG, logger="adk_retry")
    agent = retrying_agent(make_model(), retry_on="all", max_retries=1)
    echo = f"Incorrect API key provided: {API_KEY}. Authorization: Bearer {API_KEY}"
    server.push(*Fault.http_error(401, message=echo).times(2))
    with no_waits(), pytest.raises(Exception, match="Incorrect API key"):
        await run_turn(agent)
    records = [r for r in caplog.records if r.name.startswith("adk_retry")]
    assert any("Retrying" in r.getMessage() for r in records)
    for record in records:
        rendered = " ".join(
            [record.getMessage(), str(record.args), record.exc_text or "", *map(str, vars(record).values())]
        )
        assert API_KEY not in rendered


async def test_policy_max_retries_zero_makes_one_attempt(server, make_model):
    agent = retrying_agent(make_model(), max_retries=0)
    server.push(Fault.empty_choices(), Fault.ok("x"))
    with pytest.raises(ValueError, match="No message in response"):
        await run_turn(agent)
    assert len(server.requests) == 1


async def test_buffered_stream_mode_yields_only_the_successful_attempt(server, make_model):
    agent = retrying_agent(make_model(), policy=RetryPolicy(stream_mode="buffer", retry_on="all"))
    server.push(Fault.stream_cut(after_chunks=2, text="bad bad bad bad"), Fault.ok("good answer", chunks=2))
    with no_waits():
        turn = await run_turn(agent, streaming=True)
    if len(server.requests) == 1:
        pytest.skip("this litellm ends a cut stream quietly: there is no failed attempt to hide")
    assert turn.text == "good answer"
    assert not any("bad" in (p.text or "") for e in turn.events if e.content for p in e.content.parts or [])


# -- the wrapper's edges, on a scripted model (unit level) ----------------------------------


class ScriptedLlm(BaseLlm):
    """Each call plays the next script: LlmResponses to yield, exceptions to raise, floats to sleep."""

    model: str = "scripted/model"

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "scripts", [])
        object.__setattr__(self, "requests", [])

    async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False):
        self.requests.append((llm_request.model, [c.parts[0].text for c in llm_request.contents if c.parts]))
        for item in self.scripts.pop(0) if self.scripts else [said("ok")]:
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, float):
                await asyncio.sleep(item)
                continue
            yield item


def said(text: str, partial: bool | None = None) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]), partial=partial)


def nothing() -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[]))


def request(agent: str = "edge") -> LlmRequest:
    return LlmRequest(
        contents=[types.Content(role="user", parts=[types.Part(text="hi")])],
        config=types.GenerateContentConfig(labels={"adk_agent_name": agent}),
    )


def scripted(policy: RetryPolicy, **handler_options: Any) -> tuple[ScriptedLlm, RetryHandler]:
    model = ScriptedLlm()
    handler = RetryHandler(policy, agent_name="edge", **handler_options)
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=model), handler)
    return model, handler


async def collect(model: ScriptedLlm, *, stream: bool = False) -> list[str]:
    return [
        "".join(p.text or "" for p in (r.content.parts if r.content else []))
        async for r in model.generate_content_async(request(), stream=stream)
    ]


async def test_buffered_stream_ending_with_empty_bookkeeping_responses_is_an_answer():
    model, handler = scripted(RetryPolicy(stream_mode="buffer"))
    model.scripts.append([said("Hel", partial=True), said("Hello"), nothing(), nothing()])
    with no_waits():
        assert await collect(model, stream=True) == ["Hel", "Hello", "", ""]
    assert handler.stats.attempts == 1


async def test_a_recovery_hooks_edits_hold_for_the_retry():
    from adk_retry import ErrorRule

    async def trim(error: BaseException, context: Any) -> None:
        context.llm_request.model = "scripted/smaller"
        context.llm_request.contents[0].parts[0].text = "shorter"

    model, _ = scripted(RetryPolicy(retry_on="all", rules=(ErrorRule(match=lambda e: True, recover=trim),)))
    model.scripts.extend([[ConnectionError("down")], [ConnectionError("down")], [said("fine")]])
    with no_waits():
        assert await collect(model) == ["fine"]
    assert model.requests == [
        (None, ["hi"]),
        ("scripted/smaller", ["shorter"]),
        ("scripted/smaller", ["shorter"]),
    ]


async def test_the_deadline_bounds_a_buffered_stream_after_its_first_chunk():
    model, handler = scripted(RetryPolicy(retry_on="transient", stream_mode="buffer", timeout=0.3))
    model.scripts.append([said("a", partial=True), 30.0, said("ab")])
    with pytest.raises(TimeoutError):
        await collect(model, stream=True)
    assert handler.stats.attempts == 1


async def test_attempt_timeout_waits_past_held_back_empty_chunks_for_the_answer():
    model, handler = scripted(RetryPolicy(retry_on="transient", attempt_timeout=0.3))
    model.scripts.extend([[nothing(), 30.0, said("late")], [said("on time")]])
    with no_waits():
        assert await collect(model, stream=True) == ["on time"]
    assert handler.stats.retries == 1


async def test_a_circuit_refusal_counts_a_failed_call_and_no_attempt():
    from adk_retry import CircuitBreaker, CircuitOpenError
    from adk_retry.guards._store import MemoryStore

    policy = RetryPolicy(
        retry_on="all", max_retries=0, breaker=CircuitBreaker(failure_threshold=1), store=MemoryStore()
    )
    model, handler = scripted(policy, wall_clock=lambda: 1_000_000.0)
    model.scripts.append([ConnectionError("down")])
    with pytest.raises(ConnectionError, match="down"):
        await collect(model)
    with pytest.raises(CircuitOpenError):
        await collect(model)
    stats = handler.stats
    assert (stats.calls, stats.attempts, stats.failures, stats.breaker_rejections) == (2, 1, 2, 1)


async def test_a_probe_whose_stream_started_then_failed_reopens_the_circuit():
    from adk_retry import CircuitBreaker, CircuitOpenError
    from adk_retry.guards._store import MemoryStore

    clock = [1_000_000.0]
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10.0)
    policy = RetryPolicy(retry_on="all", max_retries=0, breaker=breaker, store=MemoryStore())
    model, handler = scripted(policy, wall_clock=lambda: clock[0])
    model.scripts.extend([[ConnectionError("down")], [said("par", partial=True), ConnectionError("cut")]])
    with pytest.raises(ConnectionError, match="down"):
        await collect(model)
    clock[0] += 11.0
    with pytest.raises(ConnectionError, match="cut"):
        await collect(model, stream=True)  # the probe: output, then a failure
    with pytest.raises(CircuitOpenError):
        await collect(model)
    assert handler.stats.breaker_transitions["half_open->open"] == 1


async def test_a_consumer_closing_a_started_stream_counts_a_success():
    model, handler = scripted(RetryPolicy())
    model.scripts.append([said("one", partial=True), said("two", partial=True), said("onetwo")])
    stream = model.generate_content_async(request(), stream=True)
    assert (await anext(stream)).content.parts[0].text == "one"
    await stream.aclose()
    assert (handler.stats.calls, handler.stats.successes, handler.stats.failures) == (1, 1, 0)


class StallingLlm(BaseLlm):
    """Streams one chunk, then waits forever (an Event nobody sets); records that its generator was closed."""

    model: str = "stalling/model"

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "closed", 0)
        object.__setattr__(self, "gap", None)

    async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False):
        try:
            yield said("first", partial=True)
            if self.gap is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(self.gap)
            yield said("first second")
        finally:
            object.__setattr__(self, "closed", self.closed + 1)


@pytest.mark.parametrize(
    "limits",
    [{"timeout": 0.2}, {"timeout": 0.2, "attempt_timeout": 0.1}, {"timeout": 0.2, "attempt_timeout": 5.0}],
    ids=["timeout", "attempt_timeout shorter", "attempt_timeout longer"],
)
async def test_the_total_timeout_ends_a_pass_through_stream_stalled_after_its_first_chunk(limits):
    # Small real timeouts: this tests a deadline, not a backoff wait.
    model = StallingLlm()
    handler = RetryHandler(RetryPolicy(retry_on="transient", **limits), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=model), handler)
    seen: list[str] = []

    async def consume() -> None:
        # The outer bound only guards against a hang (it raises TimeoutError too, hence the timing).
        async with asyncio.timeout(5):
            async for response in model.generate_content_async(request(), stream=True):
                seen.append(response.content.parts[0].text)

    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await consume()
    assert asyncio.get_running_loop().time() - started < 1.0, "the 0.2 s deadline did not end the stall"
    assert seen == ["first"]
    assert model.closed == 1, "the model's generator (its HTTP stream) was not closed"
    stats = handler.stats
    assert (stats.attempts, stats.retries, stats.failures, stats.successes) == (1, 0, 1, 0)


async def test_attempt_timeout_alone_does_not_cut_a_stream_after_its_first_chunk():
    model = StallingLlm()
    object.__setattr__(model, "gap", 0.3)
    handler = RetryHandler(RetryPolicy(attempt_timeout=0.1), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=model), handler)
    assert await collect(model, stream=True) == ["first", "first second"]  # type: ignore[arg-type]
    assert (handler.stats.successes, handler.stats.failures) == (1, 0)


# -- a failed add leaves nothing behind ----------------------------------------------------


def retry_attributes(agent: LlmAgent) -> set[str]:
    return {name for name in agent.__dict__ if name.startswith(("_retry", "_original_generate"))}


def test_a_model_that_cannot_be_resolved_leaves_the_agent_untouched():
    agent = LlmAgent(name="unknown", model="no-such-provider-xyz/some-model")
    callbacks_before = agent.before_model_callback
    with pytest.raises(ValueError, match="no-such-provider-xyz"):
        add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="unknown"))
    assert not hasattr(agent, "_retry_handler"), "the seed's asserts would pass on an agent without retry"
    assert retry_attributes(agent) == set()
    assert agent.model == "no-such-provider-xyz/some-model"
    assert agent.before_model_callback == callbacks_before


def failing_attach(monkeypatch: pytest.MonkeyPatch, doomed: RetryHandler) -> None:
    """Attaching ``doomed`` fails half-way (the model already wrapped); other handlers attach as usual."""
    import adk_retry.adapter._attach as integration

    real = integration.own_lower_retries

    def boom(retry: Any, handler: RetryHandler) -> None:
        if handler is doomed:
            raise RuntimeError("cannot turn off the layers below")
        real(retry, handler)

    monkeypatch.setattr(integration, "own_lower_retries", boom)


def test_a_failure_while_wrapping_undoes_the_wrapping(monkeypatch):
    from adk_retry.adapter._wrap import installed

    model = ScriptedLlm()
    agent = LlmAgent(name="edge", model=model)
    new = RetryHandler(agent_name="edge")
    failing_attach(monkeypatch, new)
    with pytest.raises(RuntimeError, match="cannot turn off"):
        add_retry_capabilities_to_agent(agent, new)
    assert retry_attributes(agent) == set()
    assert installed(model) is None
    assert "generate_content_async" not in model.__dict__


async def test_a_failed_swap_puts_the_previous_retry_back(monkeypatch):
    from adk_retry.adapter._wrap import installed

    model = ScriptedLlm()
    agent = LlmAgent(name="edge", model=model)
    old = RetryHandler(RetryPolicy(retry_on="all"), agent_name="edge")
    add_retry_capabilities_to_agent(agent, old)
    new = RetryHandler(agent_name="edge")
    failing_attach(monkeypatch, new)
    with pytest.raises(RuntimeError, match="cannot turn off"):
        add_retry_capabilities_to_agent(agent, new)
    monkeypatch.undo()
    assert agent._retry_handler is old
    retry = installed(model)
    assert retry is not None
    assert retry.handlers == {"edge": old}
    assert retry.owners == {old}, "the old handler still owns the layers below"
    model.scripts.extend([[ConnectionError("down")], [said("back")]])
    with no_waits():
        assert await collect(model) == ["back"]
    assert old.stats.retries == 1


def test_a_swap_to_a_model_that_cannot_be_resolved_changes_nothing():
    from adk_retry.adapter._wrap import installed

    model = ScriptedLlm()
    agent = LlmAgent(name="edge", model=model)
    old = RetryHandler(agent_name="edge")
    add_retry_capabilities_to_agent(agent, old)
    before = dict(agent.__dict__)
    agent.model = "no-such-provider-xyz/some-model"
    with pytest.raises(ValueError, match="no-such-provider-xyz"):
        add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="edge"))
    assert {k: agent.__dict__.get(k) for k in retry_attributes(agent)} == {
        k: before[k] for k in before if k.startswith(("_retry", "_original_generate"))
    }
    assert installed(model).handlers == {"edge": old}


@pytest.mark.parametrize("not_an_agent", [None, "agent", object()], ids=["None", "str", "object"])
def test_remove_retry_capabilities_needs_an_llm_agent(not_an_agent):
    with pytest.raises(TypeError, match="remove_retry_capabilities needs an LlmAgent, got"):
        remove_retry_capabilities(not_an_agent)


def test_remove_retry_capabilities_refuses_a_workflow_agent():
    import warnings

    from google.adk.agents import SequentialAgent

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ADK 2.13 deprecates it for Workflow
        steps = SequentialAgent(name="steps")
    with pytest.raises(TypeError, match="got SequentialAgent"):
        remove_retry_capabilities(steps)


async def test_a_cancellation_while_the_deadline_guards_a_stream_stays_a_cancellation():
    model = StallingLlm()
    handler = RetryHandler(RetryPolicy(timeout=30.0), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=model), handler)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in model.generate_content_async(request(), stream=True):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    await asyncio.sleep(0.01)  # now waiting for the stalled second chunk
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert model.closed == 1
    assert (handler.stats.successes, handler.stats.failures, dict(handler.stats.errors)) == (0, 0, {})


async def test_a_slow_stream_that_ends_before_the_deadline_is_an_answer():
    model = StallingLlm()
    object.__setattr__(model, "gap", 0.05)
    handler = RetryHandler(RetryPolicy(timeout=5.0), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=model), handler)
    assert await collect(model, stream=True) == ["first", "first second"]  # type: ignore[arg-type]
    assert (handler.stats.successes, handler.stats.failures) == (1, 0)
