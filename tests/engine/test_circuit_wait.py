"""Calls that wait for an open circuit's probe instead of failing: the engine's waiting.

Real (short) times on the monotonic clock, an injected wall clock where the
test must hold the circuit's state still. The decisions themselves are
tables in ``tests/core/test_breaker_decisions.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from adk_retry import CircuitBreaker, CircuitOpenError, RetryHandler, RetryPolicy
from adk_retry.guards._store import MemoryStore
from tests.fakes import WallClock


class Provider:
    """A model call that fails with a transient error while ``down``; ``gate`` holds its answers."""

    def __init__(self) -> None:
        self.down = True
        self.requests: list[float] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.requests.append(time.monotonic())
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionResetError("provider down")
        return "ok"


def handler(
    *,
    timeout: float | None = 5.0,
    wall_clock: Any = None,
    store: MemoryStore | None = None,
    policy: dict[str, Any] | None = None,
    **breaker: Any,
) -> RetryHandler:
    settings: dict[str, Any] = {"failure_threshold": 1, "first_probe": 0.05, "cooldown": 0.1, **breaker}
    return RetryHandler(
        RetryPolicy.transient(
            timeout=timeout, breaker=CircuitBreaker(**settings), store=store or MemoryStore(), **(policy or {})
        ),
        wall_clock=wall_clock,
    )


async def test_concurrent_callers_wait_out_an_outage_and_go_right_after_recovery() -> None:
    provider = Provider()
    guard = handler()
    calls = [asyncio.create_task(guard(provider)) for _ in range(8)]
    await asyncio.sleep(0.6)
    during = len(provider.requests)
    provider.down = False
    recovered = time.monotonic()
    assert await asyncio.gather(*calls) == ["ok"] * 8
    took = time.monotonic() - recovered
    # The first wave (8) and one probe per open period (<= 0.6 / 0.04 s), not 8 callers' retries.
    assert during <= 8 + 16
    assert took < 0.1 + 0.1, "every caller goes within one probe interval (cooldown) of the recovery"
    assert guard.stats.failures == 0
    assert guard.stats.breaker_transitions["half_open->closed"] == 1


async def test_a_probe_success_wakes_the_waiters_at_once() -> None:
    wall = WallClock()
    provider = Provider()
    store = MemoryStore()
    # Open periods of 2 s: a waiter that only polled would see the probe's success up to 2 s late.
    fixed: dict[str, Any] = {"wall_clock": wall, "first_probe": 2.0, "cooldown": 2.0, "probe_jitter": 0, "store": store}
    with pytest.raises(ConnectionResetError):
        await handler(timeout=None, **fixed)(provider)  # opens the circuit, no time to wait: gives up
    wall.now += 2.0  # the open period ends (on the store's clock)
    provider.down, provider.gate = False, asyncio.Event()
    guard = handler(**fixed)
    probe = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.05)  # admitted as the probe, held at the gate
    waiters = [asyncio.create_task(guard(provider)) for _ in range(3)]
    await asyncio.sleep(0.1)  # they find the probe in flight: half-open, waiting (polling every 2 s)
    assert len(provider.requests) == 2, "nobody else reaches the provider while the probe runs"
    released = time.monotonic()
    provider.gate.set()
    assert await asyncio.gather(probe, *waiters) == ["ok"] * 4
    assert time.monotonic() - released < 0.5, "woken by the probe's success, not by the next poll"
    assert len(provider.requests) == 5


async def test_a_call_whose_deadline_would_pass_fails_at_once_with_circuit_open_error() -> None:
    provider = Provider()
    guard = handler(timeout=1.0, first_probe=30.0, cooldown=30.0)
    with pytest.raises(ConnectionResetError):
        await handler(timeout=None)(provider)
    with pytest.raises(ConnectionResetError):
        await guard(provider)  # opens the circuit for 30 s, gives up: it cannot wait that long
    started = time.monotonic()
    with pytest.raises(CircuitOpenError) as refused:
        await guard(provider)
    assert time.monotonic() - started < 0.05
    assert len(provider.requests) == 2, "nothing sent"
    assert isinstance(refused.value.__cause__, ConnectionResetError)


async def test_without_a_timeout_or_max_wait_a_call_does_not_wait() -> None:
    provider = Provider()
    guard = handler(timeout=None)
    with pytest.raises(ConnectionResetError):
        await guard(provider)
    started = time.monotonic()
    with pytest.raises(CircuitOpenError):
        await guard(provider)
    assert time.monotonic() - started < 0.05
    assert len(provider.requests) == 1


async def test_max_wait_lets_a_call_without_a_timeout_wait() -> None:
    provider = Provider()
    guard = handler(timeout=None, max_wait=2.0)
    task = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.2)
    provider.down = False
    assert await task == "ok"
    assert guard.stats.attempts >= 2


async def test_max_wait_runs_out() -> None:
    provider = Provider()
    guard = handler(timeout=None, max_wait=0.3, policy={"max_retries": 100})
    started = time.monotonic()
    with pytest.raises(ConnectionResetError):
        await guard(provider)
    assert 0.2 < time.monotonic() - started < 0.5


async def test_a_call_backing_off_sees_the_circuit_another_call_opened() -> None:
    provider = Provider()
    slow = handler(
        timeout=1.0, failure_threshold=2, first_probe=30.0, cooldown=30.0, policy={"base_delay": 0.2, "jitter": 0}
    )
    # Its first failure counts 1 of 2; it backs off 0.2 s.
    backing_off = asyncio.create_task(slow(provider))
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectionResetError):
        await slow(provider)  # the second failure opens the circuit for 30 s
    started = time.monotonic()
    with pytest.raises(ConnectionResetError):
        await backing_off  # before its retry: open, and 30 s is past its deadline -> gives up, its own error
    assert time.monotonic() - started < 0.3
    assert len(provider.requests) == 2, "the backed-off call's retry was not sent to the open circuit"
    assert slow.stats.breaker_rejections == 1


async def test_a_call_backing_off_waits_for_the_probe_when_it_has_time() -> None:
    provider = Provider()
    guard = handler(
        timeout=3.0, failure_threshold=2, first_probe=0.3, cooldown=0.3, policy={"base_delay": 0.1, "jitter": 0}
    )
    backing_off = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.02)
    other = asyncio.create_task(guard(provider))  # its failure opens the circuit; it waits too
    await asyncio.sleep(0.15)
    provider.down = False
    assert await asyncio.gather(backing_off, other) == ["ok", "ok"]
    assert len(provider.requests) <= 4


async def test_cancelling_a_waiting_call_ends_it_at_once() -> None:
    provider = Provider()
    guard = handler(timeout=30.0, first_probe=30.0, cooldown=30.0)
    task = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.1)  # failed, opened the circuit, waiting for a probe in 30 s
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.05
    assert guard.stats.failures == 0


async def test_a_cancelled_probe_frees_the_slot_for_a_waiter() -> None:
    wall = WallClock()
    provider = Provider()
    fixed: dict[str, Any] = {
        "wall_clock": wall,
        "first_probe": 2.0,
        "cooldown": 2.0,
        "probe_jitter": 0,
        "store": MemoryStore(),
        "probe_timeout": 30.0,
    }
    with pytest.raises(ConnectionResetError):
        await handler(timeout=None, **fixed)(provider)
    wall.now += 2.0
    provider.down, provider.gate = False, asyncio.Event()
    guard = handler(**fixed)
    probe = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.05)  # the probe, held at the gate
    waiter = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.05)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    provider.gate.set()
    started = time.monotonic()
    assert await waiter == "ok"
    assert time.monotonic() - started < 0.5, "the waiter became the probe at once (not after probe_timeout)"
    assert len(provider.requests) == 3


async def test_a_probe_ending_in_a_client_error_frees_the_slot() -> None:
    wall = WallClock()
    provider = Provider()
    fixed: dict[str, Any] = {"wall_clock": wall, "first_probe": 2.0, "cooldown": 2.0, "probe_jitter": 0}
    fixed["store"] = MemoryStore()
    with pytest.raises(ConnectionResetError):
        await handler(timeout=None, **fixed)(provider)
    wall.now += 2.0
    gate = asyncio.Event()

    async def bad_request() -> str:
        await gate.wait()
        raise ValueError("400: bad request")  # not transient: no verdict on the provider

    guard = handler(**fixed)
    probe = asyncio.create_task(guard(bad_request))
    await asyncio.sleep(0.05)
    provider.down = False
    waiter = asyncio.create_task(guard(provider))
    await asyncio.sleep(0.05)
    gate.set()
    with pytest.raises(ValueError, match="bad request"):
        await probe
    started = time.monotonic()
    assert await waiter == "ok"
    assert time.monotonic() - started < 0.5


async def test_waiting_costs_nothing_on_a_closed_circuit() -> None:
    provider = Provider()
    provider.down = False
    guard = handler()
    assert await guard(provider) == "ok"
    assert guard.stats.attempts == 1
    assert guard.stats.breaker_rejections == 0


async def test_failed_probes_do_not_use_up_the_retries_of_the_call_that_carried_them() -> None:
    provider = Provider()
    guard = handler(timeout=3.0, first_probe=0.02, cooldown=0.02, policy={"max_retries": 1})
    task = asyncio.create_task(guard(provider))  # alone: it is the probe of every open period
    await asyncio.sleep(0.4)
    assert len(provider.requests) > 3, "it probed more often than its one retry"
    provider.down = False
    assert await task == "ok"


async def test_without_time_a_failed_probe_ends_the_call() -> None:
    provider = Provider()
    guard = handler(timeout=None, first_probe=0.02, cooldown=0.02, policy={"max_retries": 5})
    with pytest.raises(ConnectionResetError):
        await guard(provider)
    assert len(provider.requests) == 1


async def test_a_servers_hint_opens_the_circuit_no_longer_than_max_hint_delay() -> None:
    import httpx
    import openai

    wall = WallClock()
    store = MemoryStore()
    response = httpx.Response(429, headers={"retry-after": "86400"}, request=httpx.Request("POST", "http://127.0.0.1"))
    error = openai.RateLimitError("quota", response=response, body=None)

    async def refused() -> str:
        raise error

    guard = handler(timeout=None, wall_clock=wall, store=store, policy={"max_hint_delay": 30.0})
    with pytest.raises(openai.RateLimitError):
        await guard(refused)
    view = await store.admit("model:agent", wall.now, probe_timeout=10.0)
    assert view.state == "closed" or view.open_until <= wall.now + 30.0


@pytest.mark.parametrize("fallback", [False, True], ids=["waits", "may fall back"])
async def test_a_caller_cancelled_while_the_store_makes_it_the_probe_frees_the_probe(fallback: bool) -> None:
    # A remote store (Redis) may have granted the probe when the cancellation lands, before its
    # reply is read: nobody would probe until probe_timeout.
    from google.adk.agents import LlmAgent

    from adk_retry import add_retry_capabilities_to_agent
    from tests.adapter.test_attach_and_wrap import ScriptedLlm, request

    wall = WallClock()
    granted = asyncio.Event()

    class SlowReply(MemoryStore):
        hold = False

        async def admit(self, key: str, now: float, *, probe_timeout: float) -> Any:
            view = await super().admit(key, now, probe_timeout=probe_timeout)
            if self.hold:
                granted.set()
                await asyncio.Event().wait()  # the reply never comes back
            return view

    store = SlowReply()
    fixed: dict[str, Any] = {"wall_clock": wall, "first_probe": 2.0, "cooldown": 2.0, "probe_jitter": 0}
    key = "model:model" if fallback else "model:agent"
    await store.record_failure(key, wall.now, threshold=1, cooldown=2.0, hint=None, first_probe=2.0)
    wall.now += 2.0  # half-open: the next caller is the probe
    store.hold = True
    if fallback:
        primary = ScriptedLlm(model="model")  # named as the circuit's scope above
        guard = handler(store=store, probe_timeout=30.0, policy={"fallbacks": (ScriptedLlm(model="b"),)}, **fixed)
        add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), guard)

        async def consume() -> None:
            async for _ in primary.generate_content_async(request()):
                pass

        task = asyncio.create_task(consume())
    else:
        task = asyncio.create_task(handler(store=store, probe_timeout=30.0, **fixed)(Provider()))
    await asyncio.wait_for(granted.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.hold = False
    assert (await store.admit(key, wall.now, probe_timeout=30.0)).allowed
