"""Server hints and the call deadline, through the handler (injected sleep and clock) and end to end."""

from __future__ import annotations

import logging

import httpx
import pytest

from adk_retry import RetryHandler, RetryPolicy
from adk_retry.testing import Fault, no_waits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def rate_limited(seconds: str) -> Exception:
    import openai

    response = httpx.Response(429, headers={"retry-after": seconds}, request=httpx.Request("POST", "http://127.0.0.1"))
    return openai.RateLimitError("slow down", response=response, body=None)


def failing(*errors: Exception):
    pending = list(errors)

    async def call() -> str:
        if pending:
            raise pending.pop(0)
        return "ok"

    return call


async def test_retry_after_replaces_the_computed_delay_and_is_logged_as_the_reason(caplog):
    caplog.set_level(logging.INFO, logger="adk_retry")
    clock = Clock()
    handler = RetryHandler(
        RetryPolicy(retry_on="transient"), agent_name="a", sleep=clock.sleep, clock=clock, random=lambda: 0.0
    )
    assert await handler(failing(rate_limited("3"))) == "ok"
    assert clock.slept == [3.0]
    assert "[a] Retry delay set by the server: server asked to wait 3s" in [r.getMessage() for r in caplog.records]


async def test_a_hint_over_max_hint_delay_gives_up_at_once_without_sleeping():
    clock = Clock()
    error = rate_limited("600")
    handler = RetryHandler(RetryPolicy(retry_on="transient"), sleep=clock.sleep, clock=clock)
    with pytest.raises(type(error)) as raised:
        await handler(failing(error))
    assert raised.value is error
    assert clock.slept == []


async def test_no_retry_starts_that_cannot_finish_before_the_deadline():
    clock = Clock()
    policy = RetryPolicy(retry_on="all", timeout=2.5, jitter=0.0)
    handler = RetryHandler(policy, sleep=clock.sleep, clock=clock)
    errors = [OSError(f"down {i}") for i in range(4)]
    with pytest.raises(OSError, match="down 1") as raised:
        await handler(failing(*errors))
    assert clock.slept == [1.0], "the 2 s wait after the second failure would end past 2.5 s"
    assert raised.value is errors[1]


@pytest.fixture
async def warm(server, make_model):
    """One plain call first: litellm's first call in a process loads modules for seconds,
    which an attempt timeout would otherwise count against the attempt."""
    from google.adk.agents import LlmAgent

    from adk_retry.testing.turns import run_turn

    await run_turn(LlmAgent(name="warm_up", model=make_model()))
    server.clear()


@pytest.mark.e2e
@pytest.mark.usefixtures("warm")
@pytest.mark.parametrize("streaming", [False, True], ids=["whole answer", "stream until its first chunk"])
async def test_attempt_timeout_cancels_a_hanging_attempt_and_retries(server, make_model, streaming):
    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from adk_retry.testing.turns import run_turn

    agent = LlmAgent(name="impatient", model=make_model())
    handler = RetryHandler(RetryPolicy(retry_on="transient", attempt_timeout=1.0), agent_name="impatient")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(Fault.delay(30.0, then=Fault.ok("too late")), Fault.ok("answered in time", chunks=3))
    with no_waits():
        turn = await run_turn(agent, streaming=streaming)
    assert turn.text == "answered in time"
    assert len(server.requests) == 2
    assert handler.stats.errors == {"TimeoutError": 1}


@pytest.mark.e2e
@pytest.mark.usefixtures("warm")
async def test_the_total_timeout_cuts_the_running_attempt_and_starts_no_late_retry(server, make_model):
    import time

    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from adk_retry.testing.turns import run_turn

    agent = LlmAgent(name="deadlined", model=make_model())
    policy = RetryPolicy(retry_on="transient", attempt_timeout=1.0, timeout=2.5, base_delay=0.05, jitter=0.0)
    handler = RetryHandler(policy, agent_name="deadlined")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(*Fault.delay(30.0).times(10))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await run_turn(agent)
    # Attempts end at 1.0 s and 2.05 s (cut by attempt_timeout); the third starts at 2.15 s and is
    # cut at the 2.5 s deadline, after which no retry starts. Without the deadline: 30 s.
    assert time.monotonic() - started < 10
    assert handler.stats.attempts == 3
    assert handler.stats.retries == 2


@pytest.mark.e2e
@pytest.mark.usefixtures("warm")
async def test_the_total_timeout_ends_a_passed_through_stream_that_stalls_after_its_first_chunk(server, make_model):
    import asyncio
    import time

    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from adk_retry.testing.turns import run_turn

    agent = LlmAgent(name="stalled", model=make_model())
    # attempt_timeout bounds a stream only until its first chunk: here the chunk comes at once,
    # so only the total deadline can end the stall.
    policy = RetryPolicy(retry_on="transient", timeout=1.0, attempt_timeout=0.8)
    handler = RetryHandler(policy, agent_name="stalled")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(Fault.stall(after_chunks=1, seconds=30.0, text="one two three"))
    started = time.monotonic()
    # The outer bound only keeps a regression from hanging the suite.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(10):
            await run_turn(agent, streaming=True)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 + 2.0, f"the turn took {elapsed:.1f}s for a 1 s deadline"
    assert len(server.requests) == 1, "output reached the caller: never retried"
    for _ in range(100):  # the server notices the hang-up a moment later, in its own thread
        if server.client_closes:
            break
        await asyncio.sleep(0.02)
    assert server.client_closes == 1, "the HTTP connection was left open"
    assert (handler.stats.failures, handler.stats.errors) == (1, {"TimeoutError": 1})
