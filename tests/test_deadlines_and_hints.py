"""Server hints and the call deadline, through the handler (injected sleep and clock) and end to end."""

from __future__ import annotations

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


async def test_retry_after_replaces_the_computed_delay():
    clock = Clock()
    handler = RetryHandler(RetryPolicy(retry_on="transient"), sleep=clock.sleep, clock=clock, random=lambda: 0.0)
    assert await handler(failing(rate_limited("3"))) == "ok"
    assert clock.slept == [3.0]


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


@pytest.mark.e2e
async def test_attempt_timeout_cancels_a_hanging_attempt_and_retries(server, make_model):
    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from adk_retry.testing.turns import run_turn

    agent = LlmAgent(name="impatient", model=make_model())
    handler = RetryHandler(RetryPolicy(retry_on="transient", attempt_timeout=0.3), agent_name="impatient")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(Fault.delay(30.0, then=Fault.ok("too late")), Fault.ok("in time"))
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "in time"
    assert len(server.requests) == 2
    assert handler.stats.errors == {"TimeoutError": 1}


@pytest.mark.e2e
async def test_attempt_timeout_covers_a_stream_until_its_first_chunk(server, make_model):
    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from adk_retry.testing.turns import run_turn

    agent = LlmAgent(name="impatient", model=make_model())
    handler = RetryHandler(RetryPolicy(retry_on="transient", attempt_timeout=0.3), agent_name="impatient")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(Fault.delay(30.0), Fault.ok("streamed in time", chunks=3))
    with no_waits():
        turn = await run_turn(agent, streaming=True)
    assert turn.text == "streamed in time"
    assert len(server.requests) == 2


@pytest.mark.e2e
async def test_the_total_timeout_stops_retrying_when_the_budget_is_spent(server, make_model):
    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from adk_retry.testing.turns import run_turn

    agent = LlmAgent(name="deadlined", model=make_model())
    policy = RetryPolicy(retry_on="transient", attempt_timeout=0.2, timeout=0.5, base_delay=0.05, jitter=0.0)
    handler = RetryHandler(policy, agent_name="deadlined")
    add_retry_capabilities_to_agent(agent, handler)
    server.push(*Fault.delay(30.0).times(10))
    with pytest.raises(TimeoutError):
        await run_turn(agent)
    # 0.2 s attempt + 0.05 s wait + 0.2 s attempt = 0.45 s; a third would need 0.1 s more wait: past 0.5 s.
    assert len(server.requests) == 2
