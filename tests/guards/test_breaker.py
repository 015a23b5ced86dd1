"""Circuit breaker, end to end with the fault server and an injected wall clock."""

from __future__ import annotations

import pytest
from google.adk.agents import LlmAgent

from adk_retry import CircuitOpenError, RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.core._breaker import CircuitBreaker
from adk_retry.guards._store import MemoryStore
from adk_retry.testing import Fault, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import OUTAGE
from tests.fakes import WallClock

pytestmark = pytest.mark.e2e


def guarded(make_model, clock: WallClock, **breaker) -> tuple[LlmAgent, RetryHandler]:
    policy = RetryPolicy(
        retry_on="transient",
        max_retries=2,
        # A fixed 30 s open period (first_probe = cooldown, no jitter): these tests are about the states.
        breaker=CircuitBreaker(
            **{"failure_threshold": 3, "cooldown": 30.0, "first_probe": 30.0, "probe_jitter": 0, **breaker}
        ),
        store=MemoryStore(),
    )
    agent = LlmAgent(name="guarded", model=make_model())
    handler = RetryHandler(policy, agent_name="guarded", wall_clock=clock)
    add_retry_capabilities_to_agent(agent, handler)
    return agent, handler


async def test_opens_fails_fast_then_probes_and_closes(server, make_model):
    clock = WallClock()
    agent, handler = guarded(make_model, clock)
    server.push(*Fault.http_error(503).times(3))
    with no_waits():
        with pytest.raises(Exception, match=OUTAGE) as first:
            await run_turn(agent)
        assert len(server.requests) == 3

        with pytest.raises(CircuitOpenError) as refused:
            await run_turn(agent)
        assert len(server.requests) == 3, "an open circuit does not touch the network"
        assert refused.value.model == "openai/fault-model"
        assert refused.value.reopens_at == clock.now + 30.0
        assert refused.value.__cause__ is first.value

        clock.now += 31.0  # past the cool-down: one probe goes through
        server.push(Fault.ok("back"))
        assert (await run_turn(agent)).text == "back"
        assert (await run_turn(agent)).text == "ok", "closed again"
    assert handler.stats.breaker_rejections == 1
    assert handler.stats.breaker_transitions == {"closed->open": 1, "half_open->closed": 1}


async def test_a_failed_probe_opens_it_again(server, make_model):
    clock = WallClock()
    agent, _ = guarded(make_model, clock, failure_threshold=1)
    server.push(Fault.http_error(500))
    with no_waits():
        with pytest.raises(Exception, match=r"500|InternalServerError"):
            await run_turn(agent)
        clock.now += 31.0
        server.push(Fault.http_error(500))
        with pytest.raises(Exception, match=r"500|InternalServerError"):
            await run_turn(agent)
        with pytest.raises(CircuitOpenError):
            await run_turn(agent)
    assert len(server.requests) == 2


async def test_a_429_with_retry_after_opens_it_at_least_that_long(server, make_model):
    clock = WallClock()
    agent, _ = guarded(make_model, clock, failure_threshold=10, cooldown=5.0)
    server.push(*Fault.http_error(429, retry_after=60).times(3))
    with no_waits():
        with pytest.raises(Exception, match=r"429|RateLimit"):
            await run_turn(agent)  # waits 60 s (not really: no_waits) between attempts, then gives up
        failed_at = clock.now
        clock.now += 30.0  # longer than the 5 s cool-down, shorter than what the server asked
        with pytest.raises(CircuitOpenError) as refused:
            await run_turn(agent)
    assert refused.value.reopens_at == pytest.approx(failed_at + 60.0)
    assert len(server.requests) == 3


async def test_a_short_retry_after_is_waited_and_retried_not_given_up(server, make_model):
    clock = WallClock()
    agent, handler = guarded(make_model, clock)
    server.push(Fault.http_error(429, retry_after=1), Fault.ok("after a second"))
    with no_waits():
        assert (await run_turn(agent)).text == "after a second"
    assert len(server.requests) == 2
    assert handler.stats.slept >= 1.0


async def test_client_errors_do_not_count(server, make_model):
    clock = WallClock()
    agent, handler = guarded(make_model, clock, failure_threshold=1)
    server.push(Fault.http_error(400))
    with no_waits(), pytest.raises(Exception, match=r"400|BadRequest"):
        await run_turn(agent)
    assert (await run_turn(agent)).text == "ok"
    assert handler.stats.breaker_transitions == {}
