"""The ``StateStore`` contract: the same tests on ``MemoryStore`` and on ``RedisStore``.

The Redis runs start a real ``redis-server`` (skipped locally when it is not
installed, a failure when ``CI=true``); each test gets its own key prefix.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from adk_retry.guards._store import CircuitView, MemoryStore, StateStore, circuit_state, default_store
from tests.redis_server import RedisServer

KEY = "openai/gpt-4o"
NOW = 1_000.0


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from adk_retry.guards._redis import RedisStore

    server: RedisServer = request.getfixturevalue("redis_server")
    redis_store = RedisStore.from_url(server.url, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield redis_store
    finally:
        assert not redis_store.degraded, "the contract tests must run on Redis, not on the fallback"
        await redis_store.aclose()


def test_is_a_state_store(store: StateStore) -> None:
    assert isinstance(store, StateStore)


# -- retry budget ---------------------------------------------------------------


async def test_bucket_starts_full(store: StateStore) -> None:
    assert await store.tokens(KEY, max_tokens=3) == 3.0


async def test_take_until_empty(store: StateStore) -> None:
    assert [await store.take_token(KEY, max_tokens=3) for _ in range(4)] == [True, True, True, False]
    assert await store.tokens(KEY, max_tokens=3) == 0.0
    assert await store.take_token(KEY, max_tokens=3) is False


async def test_buckets_are_separate(store: StateStore) -> None:
    assert await store.take_token(KEY, max_tokens=1) is True
    assert await store.take_token(KEY, max_tokens=1) is False
    assert await store.take_token("anthropic/claude", max_tokens=1) is True


async def test_refund_is_capped_at_max(store: StateStore) -> None:
    await store.take_token(KEY, max_tokens=3)
    await store.take_token(KEY, max_tokens=3)
    await store.refund(KEY, 1.0, max_tokens=3)
    assert await store.tokens(KEY, max_tokens=3) == 2.0
    await store.refund(KEY, 5.0, max_tokens=3)
    assert await store.tokens(KEY, max_tokens=3) == 3.0


async def test_refund_of_an_untouched_bucket_keeps_it_full(store: StateStore) -> None:
    await store.refund(KEY, 0.5, max_tokens=2)
    assert await store.tokens(KEY, max_tokens=2) == 2.0


async def test_fractional_refunds_are_exact(store: StateStore) -> None:
    assert await store.take_token(KEY, max_tokens=1) is True
    for _ in range(3):
        await store.refund(KEY, 0.1, max_tokens=1)
    assert await store.tokens(KEY, max_tokens=1) == 0.1 + 0.1 + 0.1  # 0.30000000000000004, bit for bit
    assert await store.take_token(KEY, max_tokens=1) is False  # fewer than one token left
    await store.refund(KEY, 0.7, max_tokens=1)
    assert await store.tokens(KEY, max_tokens=1) == min(1.0, 0.1 + 0.1 + 0.1 + 0.7)
    assert await store.take_token(KEY, max_tokens=1) is True


async def test_concurrent_takes_never_overspend(store: StateStore) -> None:
    results = await asyncio.gather(*(store.take_token(KEY, max_tokens=5) for _ in range(20)))
    assert sum(results) == 5


# -- circuit breaker --------------------------------------------------------------


async def open_circuit(store: StateStore, *, threshold: int = 3, cooldown: float = 10.0) -> None:
    for _ in range(threshold):
        await store.record_failure(KEY, NOW, threshold=threshold, cooldown=cooldown, hint=None)


async def test_closed_circuit_admits(store: StateStore) -> None:
    assert await store.admit(KEY, NOW, probe_timeout=30.0) == CircuitView("closed", 0.0, 0, True)


async def test_failures_below_threshold_keep_it_closed(store: StateStore) -> None:
    for count in (1, 2):
        before, after = await store.record_failure(KEY, NOW, threshold=3, cooldown=10.0, hint=None)
        assert (before, after) == ("closed", CircuitView("closed", 0.0, count))
    assert await store.admit(KEY, NOW, probe_timeout=30.0) == CircuitView("closed", 0.0, 2, True)


async def test_threshold_consecutive_failures_open_it(store: StateStore) -> None:
    await store.record_failure(KEY, NOW, threshold=3, cooldown=10.0, hint=None)
    await store.record_failure(KEY, NOW, threshold=3, cooldown=10.0, hint=None)
    before, after = await store.record_failure(KEY, NOW, threshold=3, cooldown=10.0, hint=None)
    assert before == "closed"
    assert after == CircuitView("open", NOW + 10.0, 3)


async def test_open_circuit_denies_until_cooldown(store: StateStore) -> None:
    await open_circuit(store)
    view = await store.admit(KEY, NOW + 5.0, probe_timeout=30.0)
    assert view == CircuitView("open", NOW + 10.0, 3, allowed=False)


async def test_exactly_one_concurrent_admit_gets_the_probe(store: StateStore) -> None:
    await open_circuit(store)
    views = await asyncio.gather(*(store.admit(KEY, NOW + 10.0, probe_timeout=30.0) for _ in range(5)))
    assert [view.allowed for view in views].count(True) == 1
    assert {view.state for view in views} == {"half_open"}
    assert {view.open_until for view in views} == {NOW + 10.0}


async def test_a_second_probe_after_probe_timeout(store: StateStore) -> None:
    await open_circuit(store)
    assert (await store.admit(KEY, NOW + 10.0, probe_timeout=30.0)).allowed
    assert not (await store.admit(KEY, NOW + 39.9, probe_timeout=30.0)).allowed
    assert (await store.admit(KEY, NOW + 40.0, probe_timeout=30.0)).allowed
    assert not (await store.admit(KEY, NOW + 41.0, probe_timeout=30.0)).allowed


async def test_probe_failure_reopens(store: StateStore) -> None:
    await open_circuit(store, threshold=3)
    assert (await store.admit(KEY, NOW + 11.0, probe_timeout=30.0)).allowed
    before, after = await store.record_failure(KEY, NOW + 11.0, threshold=100, cooldown=10.0, hint=None)
    assert before == "half_open"
    assert after == CircuitView("open", NOW + 21.0, 4, probes=1)
    assert await store.admit(KEY, NOW + 15.0, probe_timeout=30.0) == CircuitView("open", NOW + 21.0, 4, False, 1)
    # Re-opening forgets the old probe: the next cool-down ends with a fresh probe at once.
    assert (await store.admit(KEY, NOW + 21.0, probe_timeout=30.0)).allowed


async def test_success_closes_and_reports_half_open(store: StateStore) -> None:
    await open_circuit(store)
    assert (await store.admit(KEY, NOW + 10.0, probe_timeout=30.0)).allowed
    before, after = await store.record_success(KEY)
    assert before == "half_open"
    assert after == CircuitView("closed", 0.0, 0)
    assert await store.admit(KEY, NOW + 10.0, probe_timeout=30.0) == CircuitView("closed", 0.0, 0, True)
    # Counting starts again from zero.
    _, view = await store.record_failure(KEY, NOW + 11.0, threshold=3, cooldown=10.0, hint=None)
    assert view == CircuitView("closed", 0.0, 1)


async def test_success_on_a_never_opened_circuit_reports_closed(store: StateStore) -> None:
    assert await store.record_success(KEY) == ("closed", CircuitView("closed", 0.0, 0))
    await store.record_failure(KEY, NOW, threshold=3, cooldown=10.0, hint=None)
    assert await store.record_success(KEY) == ("closed", CircuitView("closed", 0.0, 0))
    assert await store.admit(KEY, NOW, probe_timeout=30.0) == CircuitView("closed", 0.0, 0, True)


@pytest.mark.parametrize(("hint", "open_for"), [(30.0, 30.0), (2.0, 2.0)])
async def test_below_the_threshold_a_hint_opens_it_for_the_hint(
    store: StateStore, hint: float, open_for: float
) -> None:
    before, after = await store.record_failure(KEY, NOW, threshold=5, cooldown=10.0, hint=hint)
    assert before == "closed"
    assert after == CircuitView("open", NOW + open_for, 1)
    assert not (await store.admit(KEY, NOW + open_for - 0.5, probe_timeout=30.0)).allowed
    assert (await store.admit(KEY, NOW + open_for, probe_timeout=30.0)).allowed


async def test_a_zero_hint_does_not_open_it(store: StateStore) -> None:
    _, after = await store.record_failure(KEY, NOW, threshold=5, cooldown=10.0, hint=0.0)
    assert after == CircuitView("closed", 0.0, 1)


async def test_at_the_threshold_a_hint_lengthens_the_cooldown(store: StateStore) -> None:
    _, after = await store.record_failure(KEY, NOW, threshold=1, cooldown=10.0, hint=30.0)
    assert after == CircuitView("open", NOW + 30.0, 1)


async def test_open_until_never_shrinks(store: StateStore) -> None:
    await store.record_failure(KEY, NOW, threshold=5, cooldown=10.0, hint=60.0)
    before, after = await store.record_failure(KEY, NOW + 1.0, threshold=1, cooldown=10.0, hint=None)
    assert before == "open"
    assert after == CircuitView("open", NOW + 60.0, 2)


async def test_times_round_trip_exactly(store: StateStore) -> None:
    now = 1_700_000_000.123456
    _, view = await store.record_failure(KEY, now, threshold=1, cooldown=7.3, hint=None)
    assert view.open_until == now + 7.3
    assert (await store.admit(KEY, now + 7.3, probe_timeout=0.1)).allowed
    assert not (await store.admit(KEY, now + 7.3 + 0.05, probe_timeout=0.1)).allowed


# The growing schedule of open periods: (first_probe, cooldown cap, spread) -> open_until after
# opening and after each failed probe. Both stores compute adk_retry.core._breaker.open_period.
SCHEDULES = [
    ("the defaults", 0.25, 0.5, 0.0, [0.25, 0.5, 0.5, 0.5]),
    ("doubling to 1 s", 0.25, 1.0, 0.0, [0.25, 0.5, 1.0, 1.0, 1.0]),
    ("jittered down", 0.25, 1.0, 0.2, [0.2, 0.4, 0.8, 0.8]),
    ("no first_probe: fixed", None, 10.0, 0.0, [10.0, 10.0, 10.0]),
    ("first above the cap: the cap", 5.0, 2.0, 0.0, [2.0, 2.0]),
    ("a long growth", 0.5, 30.0, 0.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
]


@pytest.mark.parametrize(
    ("first", "cap", "spread", "periods"), [row[1:] for row in SCHEDULES], ids=[r[0] for r in SCHEDULES]
)
async def test_open_periods_grow_with_each_failed_probe(
    store: StateStore, first: float | None, cap: float, spread: float, periods: list[float]
) -> None:
    now = NOW
    for probes, period in enumerate(periods):
        if probes:
            assert (await store.admit(KEY, now, probe_timeout=30.0)).allowed  # the probe ...
        _, view = await store.record_failure(
            KEY, now, threshold=1, cooldown=cap, hint=None, first_probe=first, spread=spread
        )  # ... fails
        assert view.state == "open"
        assert view.probes == probes
        assert view.open_until == pytest.approx(now + period, abs=1e-9)
        assert (await store.admit(KEY, now, probe_timeout=30.0)).probes == probes
        now = view.open_until


# Failures recorded while the circuit is open were sent before it opened: (seconds after opening,
# hint) -> open_until after them. They neither count as probes nor push the probe out; a hint does.
WHILE_OPEN = [
    ("one straggler", [(0.1, None)], 0.25),
    ("forty stragglers read by a busy client", [(0.006 * n, None) for n in range(1, 41)], 0.25),
    ("a straggler's longer hint", [(0.1, 2.0)], 2.1),
    ("a straggler's shorter hint", [(0.1, 0.05)], 0.25),
]


@pytest.mark.parametrize(("failures", "until"), [r[1:] for r in WHILE_OPEN], ids=[r[0] for r in WHILE_OPEN])
async def test_failures_while_open_keep_the_schedule_where_it_is(
    store: StateStore, failures: list[tuple[float, float | None]], until: float
) -> None:
    await store.record_failure(KEY, NOW, threshold=1, cooldown=1.0, hint=None, first_probe=0.25)
    for after, hint in failures:
        before, view = await store.record_failure(
            KEY, NOW + after, threshold=1, cooldown=1.0, hint=hint, first_probe=0.25
        )
        assert before == "open"
    assert (view.state, view.probes, view.open_until) == ("open", 0, pytest.approx(NOW + until))
    assert (await store.admit(KEY, NOW + until, probe_timeout=30.0)).allowed  # the probe goes on time


async def test_a_success_resets_the_schedule(store: StateStore) -> None:
    await store.record_failure(KEY, NOW, threshold=1, cooldown=1.0, hint=None, first_probe=0.25)
    await store.admit(KEY, NOW + 0.25, probe_timeout=30.0)
    await store.record_failure(KEY, NOW + 0.25, threshold=1, cooldown=1.0, hint=None, first_probe=0.25)
    await store.record_success(KEY)
    _, view = await store.record_failure(KEY, NOW + 2.0, threshold=1, cooldown=1.0, hint=None, first_probe=0.25)
    assert (view.probes, view.open_until) == (0, NOW + 2.25)


async def test_a_released_probe_lets_another_probe_at_once(store: StateStore) -> None:
    await open_circuit(store)
    assert (await store.admit(KEY, NOW + 10.0, probe_timeout=30.0)).allowed
    assert not (await store.admit(KEY, NOW + 10.5, probe_timeout=30.0)).allowed
    await store.release_probe(KEY, NOW + 10.0)
    assert (await store.admit(KEY, NOW + 11.0, probe_timeout=30.0)).allowed


async def test_releasing_a_stale_probe_leaves_the_current_one(store: StateStore) -> None:
    await open_circuit(store)
    assert (await store.admit(KEY, NOW + 10.0, probe_timeout=1.0)).allowed
    assert (await store.admit(KEY, NOW + 11.0, probe_timeout=1.0)).allowed  # the first presumed lost
    await store.release_probe(KEY, NOW + 10.0)  # the lost one reports late
    assert not (await store.admit(KEY, NOW + 11.5, probe_timeout=1.0)).allowed


async def test_releasing_on_a_closed_circuit_does_nothing(store: StateStore) -> None:
    await store.release_probe(KEY, NOW)
    assert await store.admit(KEY, NOW, probe_timeout=30.0) == CircuitView("closed", 0.0, 0, True)


async def test_circuits_are_separate(store: StateStore) -> None:
    await open_circuit(store)
    assert (await store.admit("anthropic/claude", NOW, probe_timeout=30.0)).allowed


# -- helpers of the store module ----------------------------------------------------


def test_circuit_state() -> None:
    assert circuit_state(0.0, NOW) == "closed"
    assert circuit_state(NOW + 1, NOW) == "open"
    assert circuit_state(NOW, NOW) == "half_open"


def test_default_store_is_shared() -> None:
    assert default_store() is default_store()
    assert isinstance(default_store(), MemoryStore)


def test_memory_store_operations_are_atomic_across_threads() -> None:
    """ADK's sync ``Runner.run()`` runs each turn on a thread of its own, all sharing the default
    store: a thread switch in the middle of an operation must not let two threads take the last token."""
    import threading
    import time

    class SwitchingDict(dict[str, float]):
        def get(self, *args: object) -> object:  # type: ignore[override]
            value = super().get(*args)  # type: ignore[call-overload]
            time.sleep(0.01)  # hand the interpreter to the other thread mid-operation
            return value

    store = MemoryStore()
    store._tokens = SwitchingDict()
    start = threading.Barrier(2)
    taken: list[bool] = []

    def worker() -> None:
        start.wait(timeout=10)
        taken.append(asyncio.run(store.take_token(KEY, max_tokens=1)))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(taken) == [False, True]
