"""The engine under a ``RateLimit``: admission before every attempt, refusals, hints for the scope, slots.

Time is injected (a fake wall clock that a fake sleep advances): no test waits out a limit.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from adk_retry import RateLimit, RateLimitedError, RetryHandler, RetryPolicy
from adk_retry.core._limit import START_RATE
from adk_retry.guards import _limiter
from adk_retry.guards._store import MemoryStore
from tests.fakes import scripted


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def rate_limited(retry_after_ms: str) -> Exception:
    import openai

    response = httpx.Response(
        429, headers={"retry-after-ms": retry_after_ms}, request=httpx.Request("POST", "http://127.0.0.1")
    )
    return openai.RateLimitError("slow down", response=response, body=None)


def handler(limit: RateLimit, clock: Clock, store: MemoryStore | None = None, **fields: object) -> RetryHandler:
    policy = RetryPolicy.transient(rate_limit=limit, store=store or MemoryStore(), jitter=0, **fields)  # type: ignore[arg-type]
    return RetryHandler(policy, sleep=clock.sleep, clock=clock, wall_clock=clock, random=lambda: 0.0)


async def ok() -> str:
    return "ok"


async def test_calls_are_spaced_at_the_rate_in_arrival_order() -> None:
    clock = Clock()
    retry = handler(RateLimit(rpm=120), clock)  # 2/s
    results = [await retry(ok) for _ in range(3)]
    assert results == ["ok"] * 3
    assert clock.slept == [0.5, 0.5]  # the first goes at once
    assert retry.stats.rate_limit_waited == pytest.approx(1.0)


async def test_a_call_that_cannot_be_admitted_in_time_fails_at_once_with_nothing_sent() -> None:
    clock = Clock()
    store = MemoryStore()
    first = handler(RateLimit(rpm=6), clock, store, timeout=5.0)  # one every 10 s
    assert await first(ok) == "ok"
    sent = []

    async def call() -> str:
        sent.append(1)
        return "ok"

    with pytest.raises(RateLimitedError) as caught:
        await first(call)
    assert caught.value.wait == pytest.approx(10.0)
    assert caught.value.model == "model:agent"  # no model name given: the scope key
    assert sent == []
    assert clock.slept == []
    assert first.stats.rate_limit_rejections == 1
    assert first.stats.failures == 1
    assert first.stats.attempts == 1  # only the first call's attempt


async def test_without_a_timeout_max_wait_bounds_the_wait() -> None:
    clock = Clock()
    retry = handler(RateLimit(rpm=1, max_wait=30.0), clock)
    await retry(ok)
    with pytest.raises(RateLimitedError, match=r"60\.000 s"):
        await retry(ok)


async def test_every_retry_takes_admission_too() -> None:
    clock = Clock()
    retry = handler(RateLimit(rpm=60), clock, base_delay=0.25)
    flaky, _ = scripted(ConnectionResetError("dropped"), "ok")

    assert await retry(flaky) == "ok"
    # backoff 0.25 s, then admission waits the rest of the 1 s spacing
    assert clock.slept == [0.25, 0.75]


async def test_a_retry_that_cannot_be_admitted_gives_up_with_the_original_error() -> None:
    clock = Clock()
    retry = handler(RateLimit(rpm=6), clock, base_delay=0.1, timeout=3.0)
    error = ConnectionResetError("dropped")

    async def failing() -> str:
        raise error

    with pytest.raises(ConnectionResetError) as caught:
        await retry(failing)
    assert caught.value is error
    assert error.__context__ is None  # the refusal left no trace on it
    assert retry.stats.attempts == 1
    assert retry.stats.retries == 0
    assert retry.stats.rate_limit_rejections == 1


async def test_a_retry_the_limiter_refuses_gives_its_budget_token_back() -> None:
    from adk_retry import RetryBudget

    clock = Clock()
    store = MemoryStore()
    retry = handler(RateLimit(rpm=6), clock, store, base_delay=0.1, timeout=3.0, budget=RetryBudget(max_tokens=5))

    async def failing() -> str:
        raise ConnectionResetError("dropped")

    with pytest.raises(ConnectionResetError):
        await retry(failing)
    assert retry.stats.rate_limit_rejections == 1
    # The retry was decided (a token taken), then never made: the bucket is full again.
    [bucket] = store._tokens
    assert await store.tokens(bucket, max_tokens=5) == 5


async def test_a_servers_hint_holds_the_whole_scope_spread_over_its_callers() -> None:
    clock = Clock()
    store = MemoryStore()
    limit = RateLimit(max_concurrency=10, rpm=6000)
    one = handler(limit, clock, store, max_retries=0)

    async def throttled() -> str:
        raise rate_limited("2000")

    with pytest.raises(Exception, match="slow down"):
        await one(throttled)
    not_before, spread = await store.hold("model:agent")
    assert (not_before, spread) == (pytest.approx(1002.0), pytest.approx(2.0))
    # Another handler (another agent) of the same scope waits for it, at its share of the spread.
    other = RetryHandler(
        RetryPolicy.transient(rate_limit=limit, store=store),
        sleep=clock.sleep,
        wall_clock=clock,
        random=lambda: 0.5,
    )
    assert await other(ok) == "ok"
    assert clock.slept == [pytest.approx(3.0)]  # 2 s hold + 0.5 x 2 s spread


async def test_a_cancelled_attempt_gives_its_slot_back() -> None:
    store = MemoryStore()
    retry = RetryHandler(RetryPolicy.transient(rate_limit=RateLimit(max_concurrency=1), store=store))
    started = asyncio.Event()

    async def hangs() -> str:
        started.set()
        await asyncio.sleep(3600)
        return "never"

    task = asyncio.create_task(retry(hangs))
    await started.wait()
    assert not await store.acquire_slot("model:agent", "probe", 0.0, limit=1, lease=1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.acquire_slot("model:agent", "probe", 0.0, limit=1, lease=1.0)


async def test_a_caller_cancelled_while_queued_leaves_the_queue_and_takes_nothing() -> None:
    store = MemoryStore()
    retry = RetryHandler(RetryPolicy.transient(rate_limit=RateLimit(max_concurrency=1), store=store))
    release = asyncio.Event()

    async def holds() -> str:
        await release.wait()
        return "first"

    first = asyncio.create_task(retry(holds))
    await asyncio.sleep(0)
    queued = asyncio.create_task(retry(ok))
    await asyncio.sleep(0.01)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    release.set()
    assert await first == "first"
    assert not _limiter._queues
    assert await retry(ok) == "ok"


async def test_concurrency_is_capped_and_waiters_go_first_come_first_served() -> None:
    store = MemoryStore()
    retry = RetryHandler(RetryPolicy.transient(rate_limit=RateLimit(max_concurrency=2), store=store))
    running = 0
    peak = 0
    order: list[int] = []

    async def work(number: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(number)
        await asyncio.sleep(0.01)
        running -= 1
        return number

    async def one(number: int) -> int:
        return await retry(lambda: work(number))

    tasks = []
    for number in range(8):
        tasks.append(asyncio.create_task(one(number)))
        await asyncio.sleep(0)  # arrive in order
    assert sorted(await asyncio.gather(*tasks)) == list(range(8))
    assert peak == 2
    assert order == list(range(8))


async def test_a_slot_never_comes_free_before_the_deadline() -> None:
    store = MemoryStore()
    limit = RateLimit(max_concurrency=1)
    holder = RetryHandler(RetryPolicy.transient(rate_limit=limit, store=store))
    retry = RetryHandler(RetryPolicy.transient(rate_limit=limit, store=store, timeout=0.2))
    gate = asyncio.Event()

    async def holds() -> str:
        await gate.wait()
        return "held"

    first = asyncio.create_task(holder(holds))
    await asyncio.sleep(0)
    with pytest.raises(RateLimitedError) as caught:
        await retry(ok)
    assert caught.value.limit == "concurrency"
    assert 0.15 < caught.value.wait < 1.0
    gate.set()
    assert await first == "held"


async def test_calls_without_a_limit_never_touch_the_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    async def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("admission asked for a call without a rate limit")

    monkeypatch.setattr(_limiter, "admit", forbidden)
    assert await RetryHandler(RetryPolicy.transient())(ok) == "ok"


async def test_adaptive_learns_from_429s_and_paces_the_scope() -> None:
    clock = Clock()
    store = MemoryStore()
    retry = handler(RateLimit(adaptive=True), clock, store, max_retries=0)

    async def throttled() -> str:
        clock.now += 0.01
        raise rate_limited("0")  # no usable hint: the rate alone must pace

    for _ in range(3):
        assert await retry(ok) == "ok"
        clock.now += 0.01
    # Nothing learnt yet: slow start paces from START_RATE (5/s) on, faster with each answer it held back.
    assert clock.slept
    assert 0.0 < sum(clock.slept) <= 2 * (1.0 / START_RATE - 0.01) + 1e-9
    slept = len(clock.slept)
    with pytest.raises(Exception, match="slow down"):
        await retry(throttled)
    learnt = store.rate_state("model:agent").rate
    assert learnt > 0.0
    await retry(ok)  # takes its place at the learnt rate
    rate = store.rate_state("model:agent").rate
    before = len(clock.slept)
    await retry(ok)  # at once after it: one interval of that rate (asked again after each horizon)
    assert len(clock.slept) > before > slept
    assert sum(clock.slept[before:]) == pytest.approx(1.0 / rate, rel=0.2)


async def test_callers_woken_together_by_a_late_loop_still_leave_one_interval_apart() -> None:
    clock = Clock()
    store = MemoryStore()
    # Both slots have passed by the time a lagging loop wakes their callers: they leave spaced anyway.
    waits = [await _limiter._spaced(store, "k", 0.25, clock, clock.sleep) for _ in range(2)]
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(0.25)
    clock.now += 10.0
    assert await _limiter._spaced(store, "k", 0.25, clock, clock.sleep) == 0.0  # spaced arrivals wait nothing


@pytest.mark.parametrize("outcome", ["cancelled", "refused"])
async def test_a_probe_that_never_gets_past_the_limiter_frees_the_circuits_probe_slot(outcome: str) -> None:
    # The circuit admits the call as its half-open probe, then the rate limit holds it: cancelled
    # there, or refused in time, the call sent nothing and has no verdict on the provider, so the
    # next caller must be able to probe at once, not after probe_timeout.
    from adk_retry import CircuitBreaker

    clock = Clock()
    store = MemoryStore()
    breaker = CircuitBreaker(failure_threshold=1, first_probe=2.0, cooldown=2.0, probe_jitter=0, probe_timeout=30.0)
    opener = RetryHandler(RetryPolicy.transient(breaker=breaker, store=store), wall_clock=clock)
    with pytest.raises(ConnectionResetError):
        await opener(scripted(ConnectionResetError("down"))[0])
    clock.now += 2.0  # half-open: the next call is the probe
    held = asyncio.Event()

    async def blocked_sleep(seconds: float) -> None:
        held.set()
        await asyncio.Event().wait()

    limit = RateLimit(rpm=1, max_wait=3600.0 if outcome == "cancelled" else 1.0)
    policy = RetryPolicy.transient(breaker=breaker, rate_limit=limit, store=store, timeout=None)
    await store.reserve(
        "model:agent",
        clock.now,
        rate=limit.rate,
        burst=1.0,
        token_rate=0.0,
        cost=0.0,
        max_wait=60.0,
        u=0.0,
        adaptive=False,
        horizon=float("inf"),
    )  # the bucket is spent
    probe = RetryHandler(policy, sleep=blocked_sleep, wall_clock=clock, random=lambda: 0.0)
    if outcome == "cancelled":
        task = asyncio.create_task(probe(ok))
        await held.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        with pytest.raises(RateLimitedError):
            await probe(ok)
    view = await store.admit("model:agent", clock.now, probe_timeout=30.0)
    assert view.allowed, "the probe slot was left taken: every waiter would wait out probe_timeout"


async def test_a_stream_whose_close_fails_still_gives_its_slot_back() -> None:
    # The caller stops reading after the first chunk; closing the model's stream raises (its
    # connection's close failed). The slot must go back now, not when its lease runs out (600 s).
    from adk_retry.engine._loop import run_attempts

    store = MemoryStore()
    retry = RetryHandler(RetryPolicy.transient(rate_limit=RateLimit(max_concurrency=1), store=store))

    async def model():  # type: ignore[no-untyped-def]
        try:
            yield "first"
            yield "second"
        finally:
            raise RuntimeError("close failed")

    responses = run_attempts(retry.begin(), model, (), False)
    assert await anext(responses) == "first"
    with pytest.raises(RuntimeError, match="close failed"):
        await responses.aclose()
    assert store._slots == {}


@pytest.mark.parametrize("hint_ms", ["86400000", "2300000000000"])  # a day; a date decades away
async def test_a_servers_hint_holds_the_scope_no_longer_than_max_hint_delay(hint_ms: str) -> None:
    # One 429 with an absurd hint (a daily quota, a proxy's misconfigured date) must not shut the
    # scope, every caller of every process behind the store, for longer than the policy would ever
    # wait for a server (max_hint_delay): after it, one call may find out whether it still holds.
    clock = Clock()
    store = MemoryStore()
    retry = handler(RateLimit(rpm=6000), clock, store, max_hint_delay=30.0)
    with pytest.raises(Exception, match="slow down"):
        await retry(scripted(rate_limited(hint_ms))[0])
    not_before, _ = await store.hold("model:agent")
    assert not_before <= clock.now + 30.0


async def test_a_caller_cancelled_while_the_store_takes_its_slot_does_not_keep_it() -> None:
    # A remote store (Redis) may have taken the slot when the cancellation lands, before its reply
    # is read: the caller never learns its holder, so the slot would stay taken until its lease.
    taken = asyncio.Event()

    class SlowReply(MemoryStore):
        async def acquire_slot(self, key: str, holder: str, now: float, *, limit: int, lease: float) -> bool:
            got = await super().acquire_slot(key, holder, now, limit=limit, lease=lease)
            taken.set()
            await asyncio.Event().wait()  # the reply never comes back
            return got  # pragma: no cover

    store = SlowReply()
    retry = RetryHandler(RetryPolicy.transient(rate_limit=RateLimit(max_concurrency=1), store=store))
    task = asyncio.create_task(retry(ok))
    await taken.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store._slots == {}
