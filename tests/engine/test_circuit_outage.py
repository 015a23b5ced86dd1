"""An outage through the real stack (Runner, LiteLlm, litellm, HTTP, FaultServer): concurrent callers, one breaker.

``server.outage(0, 2)``: every request 503 for 2 s, then healthy. Callers with
time wait for the half-open probe instead of hammering the dead provider or
failing, and go as soon as it succeeds; a call whose deadline would pass
before the next probe fails at once with ``CircuitOpenError``.

Robust under load without loosening what is asserted: the breaker's jitter is
injected (``random=lambda: 0.0``, so the open periods are exactly 0.25 s, then
0.5 s), "fails at once" is read from what the call did (it logged no wait and
sent nothing) rather than from a wall-clock bound a busy machine can break, and
the recovery bound is the default cap plus the time the callers take.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from google.adk.agents import LlmAgent

from adk_retry import CircuitBreaker, CircuitOpenError, RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.guards._store import MemoryStore
from adk_retry.testing.turns import run_turn

pytestmark = pytest.mark.e2e

CALLERS = 6
OUTAGE_SECONDS = 2.0
IMPATIENT = 0.2  # the impatient caller's whole timeout: less than one open period after a failed probe


def agent_with(make_model, store: MemoryStore, *, timeout: float, name: str) -> LlmAgent:
    # The defaults under test: CircuitBreaker() (5 failures, probes after 0.25 s, then every 0.5 s),
    # without jitter so that the open periods are known.
    policy = RetryPolicy.transient(timeout=timeout, breaker=CircuitBreaker(key="fault"), store=store)
    agent = LlmAgent(name=name, model=make_model())
    add_retry_capabilities_to_agent(agent, RetryHandler(policy, agent_name=name, random=lambda: 0.0))
    return agent


async def test_callers_with_time_ride_out_an_outage_and_answer_right_after_recovery(
    server, make_model, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    store = MemoryStore()
    agent = agent_with(make_model, store, timeout=20.0, name="patient")
    impatient = agent_with(make_model, store, timeout=IMPATIENT, name="impatient")
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

    # Mid-outage, right after a failed probe (the circuit open for 0.5 s, more than IMPATIENT + 0.15 s
    # of it left): a call with IMPATIENT seconds in all cannot see the next probe and fails at once,
    # sending nothing and waiting for nothing.
    circuit = store._circuits  # the state without admit()'s side effects
    while not ("key:fault" in circuit and circuit["key:fault"].open_until - time.time() > IMPATIENT + 0.15):
        await asyncio.sleep(0.005)
        assert time.monotonic() < recovered, "the circuit never opened for long enough"
    sent = len(server.requests)
    caplog.clear()
    started = time.monotonic()
    with pytest.raises(CircuitOpenError):
        await run_turn(impatient)
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[impatient] Circuit for")]
    assert waits == [], "it failed at once, without waiting for the probe"
    assert time.monotonic() - started < 1.0  # and nothing held it (a Runner turn on a busy machine)
    assert len(server.requests) == sent

    await asyncio.gather(*callers)
    dead = server.unavailable
    # Each caller's first request, then one probe per open period (0.25 s, then 0.5 s: at most
    # 4 in 2 s): far below the callers' own retries (transient() alone: 2-3 each in 2 s).
    per_caller_per_second = (dead - CALLERS) / CALLERS / OUTAGE_SECONDS
    assert per_caller_per_second <= 4 / CALLERS / OUTAGE_SECONDS + 1e-9, dead
    assert min(answered) >= recovered
    # The probe comes at most `cooldown` (0.5 s) after recovery; the waiters go as soon as it
    # succeeds: the last one is answered within the cap plus a second for six Runner turns.
    assert max(answered) - recovered < 0.5 + 1.0, "every caller answered within about a second of recovery"
    # ... and the waiters reached the provider right after the probe's answer, not at a later poll.
    admitted = sorted(t for t, o in zip(server.request_times, server.request_outcomes, strict=True) if o == "admitted")
    assert admitted[-1] - admitted[0] < 0.5, admitted
