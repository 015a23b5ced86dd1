"""An outage through the real stack (Runner, LiteLlm, litellm, HTTP, FaultServer): concurrent callers, one breaker.

``server.outage(0, 2)``: every request 503 for 2 s, then healthy. Callers with
time wait for the half-open probe instead of hammering the dead provider or
failing, and go as soon as it succeeds; a call whose deadline would pass
before the next probe fails at once with ``CircuitOpenError``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from google.adk.agents import LlmAgent

from adk_retry import CircuitBreaker, CircuitOpenError, RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.guards._store import MemoryStore
from adk_retry.testing.turns import run_turn

pytestmark = pytest.mark.e2e

CALLERS = 6
OUTAGE_SECONDS = 2.0


def agent_with(make_model, store: MemoryStore, *, timeout: float, name: str) -> LlmAgent:
    # The defaults under test: CircuitBreaker() (5 failures, probes after 0.25 s doubling to 1 s).
    policy = RetryPolicy.transient(timeout=timeout, breaker=CircuitBreaker(key="fault"), store=store)
    agent = LlmAgent(name=name, model=make_model())
    add_retry_capabilities_to_agent(agent, RetryHandler(policy, agent_name=name))
    return agent


async def test_callers_with_time_ride_out_an_outage_and_answer_right_after_recovery(server, make_model) -> None:
    store = MemoryStore()
    agent = agent_with(make_model, store, timeout=20.0, name="patient")
    impatient = agent_with(make_model, store, timeout=0.3, name="impatient")
    # The first call through litellm pays for its imports and clients (seconds): not in the outage.
    assert (await run_turn(agent)).text == "ok"
    assert (await run_turn(impatient)).text == "ok"
    server.clear()
    server.outage(0.0, OUTAGE_SECONDS)
    times = server.outage_times
    assert times is not None
    assert times[1] is not None
    recovered = times[1]
    answered: list[float] = []

    async def caller() -> None:
        turn = await run_turn(agent)
        assert turn.text == "ok"
        answered.append(time.monotonic())

    callers = [asyncio.create_task(caller()) for _ in range(CALLERS)]

    # Mid-outage, right after a failed probe (the circuit open for more than 0.3 s more): a call
    # with 0.3 s left cannot see the next probe and fails at once, sending nothing.
    circuit = store._circuits  # the state without admit()'s side effects
    while not ("key:fault" in circuit and circuit["key:fault"].open_until - time.time() > 0.45):
        await asyncio.sleep(0.005)
        assert time.monotonic() < recovered, "the circuit never opened for long enough"
    sent = len(server.requests)
    started = time.monotonic()
    with pytest.raises(CircuitOpenError):
        await run_turn(impatient)
    assert time.monotonic() - started < 0.15
    assert len(server.requests) == sent

    await asyncio.gather(*callers)
    dead = server.unavailable
    # Each caller's first request, the breaker's threshold, then one probe per open period:
    # far below the callers' own retries (transient() alone: 2-3 each in 2 s).
    per_caller_per_second = (dead - CALLERS) / CALLERS / OUTAGE_SECONDS
    assert per_caller_per_second <= 0.5, dead
    assert min(answered) >= recovered
    assert max(answered) - recovered < 1.0 + 0.5, "every caller answered within about a second of recovery"
