"""``RateLimit``'s pure decisions as tables (injected times), its validation, and MemoryStore's limit operations."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from adk_retry import RateLimit, RetryPolicy
from adk_retry.core._limit import (
    BETA,
    FLOOR,
    MIN_RATE,
    SCALE,
    SLOW_START_GAIN,
    SLOW_START_SCALE,
    SS_BETA,
    START_RATE,
    WINDOW,
    RateState,
    clock_rate,
    cubic_rate,
    feedback,
    hold_after_hint,
    refill,
    reserve,
)
from adk_retry.guards._store import MemoryStore

# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rpm": 0}, "rpm"),
        ({"rpm": -1}, "rpm"),
        ({"tpm": math.inf}, "tpm"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"rpm": 60, "burst": 0.5}, "burst"),
        ({"rpm": 60, "scope": "planet"}, "scope"),
        ({"rpm": 60, "key": ""}, "key"),
        ({"rpm": 60, "max_wait": 0}, "max_wait"),
        ({"rpm": 60, "colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        RateLimit(**fields)  # type: ignore[arg-type]


def test_a_limit_of_nothing_is_refused() -> None:
    with pytest.raises(ValidationError, match="rpm, tpm, max_concurrency or adaptive=True"):
        RateLimit()


def test_frozen_and_on_the_policy() -> None:
    limit = RateLimit(rpm=120, max_concurrency=4)
    with pytest.raises(ValidationError):
        limit.rpm = 1  # type: ignore[misc]
    policy = RetryPolicy(rate_limit=limit)
    assert policy.plan.rate_limited
    assert policy.plan.guarded
    assert not RetryPolicy().plan.rate_limited
    assert limit.rate == 2.0
    assert limit.token_rate == 0.0
    assert not RateLimit(max_concurrency=2).metered
    assert RateLimit(adaptive=True).metered


def test_the_scope_key_follows_scope_and_key() -> None:
    plan = RetryPolicy(rate_limit=RateLimit(rpm=60, scope="provider")).plan
    assert plan.keys("openai/gpt-4o", "a").limit == "provider:openai"
    plan = RetryPolicy(rate_limit=RateLimit(rpm=60, key="shared")).plan
    assert plan.keys("openai/gpt-4o", "a").limit == "key:shared"


# -- the token bucket ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "updated", "now", "rate", "capacity", "expected"),
    [
        (0.0, 0.0, 50.0, 1.0, 3.0, 3.0),  # never used: full
        (0.0, 10.0, 10.0, 2.0, 3.0, 0.0),  # no time passed
        (0.0, 10.0, 10.5, 2.0, 3.0, 1.0),  # half a second at 2/s
        (0.0, 10.0, 20.0, 2.0, 3.0, 3.0),  # capped at the capacity
        (-4.0, 10.0, 11.0, 2.0, 3.0, -2.0),  # a debt is paid back at the rate
        (1.0, 10.0, 9.0, 2.0, 3.0, 1.0),  # a clock that ran backwards adds nothing
    ],
)
def test_refill(tokens: float, updated: float, now: float, rate: float, capacity: float, expected: float) -> None:
    assert refill(tokens, updated, now, rate, capacity) == pytest.approx(expected)


def _reserve(state: RateState, now: float, **kwargs: float | bool) -> tuple[RateState, float | None]:
    args: dict[str, float | bool] = {
        "rate": 0.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0, "max_wait": 60.0, "u": 0.0, "adaptive": False,
    }  # fmt: skip
    args.update(kwargs)
    state, reservation = reserve(state, now, **args)  # type: ignore[arg-type]
    return state, reservation.wait if reservation.admitted else None


@pytest.mark.parametrize(
    ("limits", "arrivals", "waits"),
    [
        # 2 requests/s, burst 1: evenly spaced, in arrival order (FIFO), however they bunch.
        ({"rate": 2.0}, [100.0, 100.0, 100.0, 100.0], [0.0, 0.5, 1.0, 1.5]),
        # burst 3: three at once, then the rate.
        ({"rate": 2.0, "burst": 3.0}, [100.0] * 5, [0.0, 0.0, 0.0, 0.5, 1.0]),
        # spaced arrivals never wait.
        ({"rate": 2.0}, [100.0, 100.5, 101.0], [0.0, 0.0, 0.0]),
        # past max_wait: refused (None), and the refusal takes nothing (the next one gets the same wait).
        ({"rate": 1.0, "max_wait": 1.5}, [100.0, 100.0, 100.0, 100.0, 100.0], [0.0, 1.0, None, None, None]),
        # tokens: 10/s, a 5-token call and then a 10-token one.
        ({"token_rate": 10.0, "cost": 5.0}, [100.0, 100.0, 100.0], [0.0, 0.0, 0.5]),
        # a request larger than the token bucket waits for a full bucket, then goes into debt.
        ({"token_rate": 10.0, "cost": 25.0}, [100.0, 100.0], [0.0, 2.5]),
        # requests and tokens together: the later of the two.
        ({"rate": 10.0, "token_rate": 10.0, "cost": 5.0}, [100.0, 100.0, 100.0], [0.0, 0.1, 0.5]),
        # a horizon: no place further ahead than it (None), the wait is reported all the same.
        ({"rate": 2.0, "horizon": 0.6}, [100.0] * 4, [0.0, 0.5, None, None]),
        # adaptive, nothing learnt yet: slow start, at START_RATE (5/s), not everyone at once.
        ({"adaptive": True}, [100.0, 100.0, 100.0], [0.0, 0.2, 0.4]),
        # ... under a configured rpm, when that is lower.
        ({"adaptive": True, "rate": 2.0}, [100.0, 100.0], [0.0, 0.5]),
    ],
)
def test_reserve(limits: dict[str, float], arrivals: list[float], waits: list[float | None]) -> None:
    state = RateState()
    got = []
    for now in arrivals:
        state, wait = _reserve(state, now, **limits)
        got.append(wait)
    assert got == pytest.approx(waits) if None not in waits else got[:2] == pytest.approx(waits[:2])
    assert [w is None for w in got] == [w is None for w in waits]


def test_a_refusal_says_how_long_it_would_have_waited_and_changes_nothing() -> None:
    state, _ = _reserve(RateState(), 100.0, rate=1.0)
    after, reservation = reserve(
        state, 100.0, rate=1.0, burst=1.0, token_rate=0.0, cost=0.0, max_wait=0.5, u=0.0, adaptive=False
    )
    assert not reservation.admitted
    assert reservation.wait == pytest.approx(1.0)
    assert after == state


@pytest.mark.parametrize(
    ("state", "now", "u", "expected"),
    [
        (RateState(not_before=105.0, spread=2.0), 100.0, 0.0, 5.0),  # held: wait for the hint
        (RateState(not_before=105.0, spread=2.0), 100.0, 0.5, 6.0),  # ... plus this caller's share of the spread
        (RateState(not_before=105.0, spread=2.0), 100.0, 0.99, 6.98),
        (RateState(not_before=95.0, spread=2.0), 100.0, 0.9, 0.0),  # a hint in the past holds nothing
    ],
)
def test_a_hint_holds_every_caller_spread(state: RateState, now: float, u: float, expected: float) -> None:
    _, wait = _reserve(state, now, u=u)
    assert wait == pytest.approx(expected)


@pytest.mark.parametrize(
    ("before", "now", "hint", "rate", "not_before", "spread", "tokens", "updated"),
    [
        (RateState(), 10.0, 2.0, 0.0, 12.0, 2.0, 0.0, 0.0),  # no bucket: just the hold
        (RateState(), 10.0, 2.0, 1.0, 12.0, 2.0, 1.0, 12.0),  # the bucket pauses until then, one token in it
        (RateState(tokens=-3.0, updated=10.0), 10.0, 2.0, 1.0, 12.0, 2.0, -3.0, 12.0),  # queued debt stays
        (RateState(not_before=20.0, spread=5.0), 10.0, 2.0, 1.0, 20.0, 5.0, 0.0, 0.0),  # a later hold wins
    ],
)
def test_hold_after_hint(
    before: RateState,
    now: float,
    hint: float,
    rate: float,
    not_before: float,
    spread: float,
    tokens: float,
    updated: float,
) -> None:
    after = hold_after_hint(before, now, hint, rate=rate, burst=5.0)
    assert (after.not_before, after.spread, after.tokens, after.updated) == pytest.approx(
        (not_before, spread, tokens, updated)
    )


def test_held_callers_come_back_at_the_rate_not_together() -> None:
    state = hold_after_hint(RateState(), 10.0, 1.0, rate=4.0, burst=1.0)
    waits = []
    for _ in range(4):
        state, wait = _reserve(state, 10.0, rate=4.0)
        waits.append(wait)
    assert waits == pytest.approx([1.0, 1.25, 1.5, 1.75])


# -- the measured rate and CUBIC ------------------------------------------------------------------


def test_clock_rate_counts_quarter_second_windows_smoothed() -> None:
    assert WINDOW == 0.25  # half botocore's, so the reading keeps up with slow start
    state = RateState()
    for t in [10.0 + 0.025 * i for i in range(10)]:  # 10 responses in [10.0, 10.25)
        state = clock_rate(state, t)
    assert state.measured == 0.0
    assert state.count == 10.0
    state = clock_rate(state, 10.25)  # the window closes: 11 in 0.25 s
    assert state.measured == pytest.approx(0.8 * 44.0)
    for t in (10.3, 10.35, 10.4, 10.45):
        state = clock_rate(state, t)
    state = clock_rate(state, 10.5)  # 5 in the next window: 20/s, smoothed
    assert state.measured == pytest.approx(0.8 * 20.0 + 0.2 * 0.8 * 44.0)


def test_cubic_curve_is_botocores() -> None:
    w_max = 10.0
    k = (w_max * (1 - BETA) / SCALE) ** (1 / 3)
    assert cubic_rate(w_max, k, 0.0) == pytest.approx(w_max * BETA)  # right after the cut
    assert cubic_rate(w_max, k, k) == pytest.approx(w_max)  # back at w_max after K seconds: a plateau
    assert cubic_rate(w_max, k, k + 1.0) == pytest.approx(w_max + SCALE)  # then probing beyond it


K2 = (2.0 / SCALE) ** (1 / 3)  # CUBIC's time back from 38 to 40


@pytest.mark.parametrize(
    ("state", "now", "throttled", "sent_at", "rate", "expected_rate", "expected_w_max"),
    [
        # slow start (w_max 0): an answer while the rate holds callers back (the bucket is in debt) adds the gain
        (RateState(rate=5.0, tokens=-2.0, updated=10.0), 10.0, False, 9.9, 0.0, 5.0 + SLOW_START_GAIN, 0.0),
        # ... but not when the rate held no one back (a full bucket): it proved nothing
        (RateState(rate=5.0, tokens=1.0, updated=9.0), 10.0, False, 9.9, 0.0, 5.0, 0.0),
        # ... at most to 2x the answered rate (a client too busy to send at its rate proves nothing, and past
        # the provider's rate the answers level off at it, so the overshoot before the first 429 is bounded) ...
        (RateState(rate=8.0, tokens=-2.0, updated=10.0, measured=5.0, window=10.0), 10.0, False, 9.9, 0.0,
         SLOW_START_SCALE * 5.0, 0.0),
        (RateState(rate=8.0, tokens=-2.0, updated=10.0, measured=20.0, window=10.0), 10.0, False, 9.9, 0.0,
         8.0 + SLOW_START_GAIN, 0.0),
        (RateState(rate=30.0, tokens=-2.0, updated=10.0, measured=5.0, window=10.0), 10.0, False, 9.9, 0.0, 30.0,
         0.0),
        # ... and never above a configured rpm
        (RateState(rate=5.0, tokens=-2.0, updated=10.0), 10.0, False, 9.9, 6.0, 6.0, 0.0),
        # the end of slow start: to 0.95 x the admitted rate (40/s), and CUBIC levels off at that rate
        (RateState(rate=60.0, measured=40.0, window=10.0), 10.0, True, 9.9, 0.0, FLOOR * 40.0, 40.0),
        # ... a far overshoot (100/s, 30 admitted): no deeper than SS_BETA of the rate in use; an admitted rate
        # below the new one is no reading of the provider (a busy client), so CUBIC aims at the rate in use
        (RateState(rate=100.0, measured=30.0, window=10.0), 10.0, True, 9.9, 0.0, SS_BETA * 100.0, 100.0),
        # ... a small one (45/s, 40 admitted): at least BETA of it
        (RateState(rate=45.0, measured=40.0, window=10.0), 10.0, True, 9.9, 0.0, BETA * 45.0, 40.0),
        # a later throttle: the larger of BETA x in use and 0.95 x admitted
        (RateState(rate=42.0, w_max=40.0, k=1.0, last_fail=5.0, measured=40.0, window=10.0), 10.0, True, 9.9, 0.0,
         FLOOR * 40.0, 40.0),
        (RateState(rate=42.0, w_max=40.0, k=1.0, last_fail=5.0, measured=20.0, window=10.0), 10.0, True, 9.9, 0.0,
         BETA * 42.0, 42.0),
        # a throttle sent before the latest cut: no second cut
        (RateState(rate=38.0, w_max=40.0, k=K2, last_fail=10.0, measured=40.0, window=10.0), 10.1, True, 9.95,
         0.0, 38.0, 40.0),
        # a success K seconds after the cut: back at w_max
        (RateState(rate=38.0, w_max=40.0, k=K2, last_fail=10.0, measured=40.0, window=11.5), 10.0 + K2, False,
         11.0, 0.0, 40.0, 40.0),
        # growth is capped at twice the measured rate ...
        (RateState(rate=8.0, w_max=20.0, k=0.0, last_fail=0.0, measured=5.0, window=100.0), 100.0, False, 99.0,
         0.0, 10.0, 20.0),
        # ... but an answer never lowers the rate (a lull in demand is no throttle)
        (RateState(rate=14.0, w_max=20.0, k=0.0, last_fail=0.0, measured=5.0, window=100.0), 100.0, False, 99.0,
         0.0, 14.0, 20.0),
        # the configured rpm is the ceiling
        (RateState(rate=14.0, w_max=20.0, k=0.0, last_fail=0.0, measured=50.0, window=100.0), 100.0, False, 99.0,
         12.0, 12.0, 20.0),
        # never below 0.5/s
        (RateState(rate=0.6, w_max=0.6, last_fail=9.0, measured=0.3, window=10.0), 10.0, True, 9.9, 0.0, MIN_RATE,
         0.6),
        # an answer before any admission asked: nothing started, no limit
        (RateState(), 10.0, False, 9.9, 0.0, 0.0, 0.0),
    ],
)  # fmt: skip
def test_adaptive_feedback(  # each row's window is the current one: the measured rate stays as given
    state: RateState,
    now: float,
    throttled: bool,
    sent_at: float,
    rate: float,
    expected_rate: float,
    expected_w_max: float,
) -> None:
    after = feedback(state, now, throttled=throttled, sent_at=sent_at, adaptive=True, rate=rate)
    assert after.rate == pytest.approx(expected_rate, rel=1e-6)
    assert after.w_max == pytest.approx(expected_w_max)


def test_throttles_do_not_count_as_admitted() -> None:
    state = RateState(rate=40.0, window=10.0)
    for i in range(10):
        state = feedback(state, 10.0 + 0.01 * i, throttled=False, sent_at=9.0, adaptive=True)
    counted = state.count
    state = feedback(state, 10.2, throttled=True, sent_at=10.15, adaptive=True)
    assert state.count == counted  # the measured rate is what the provider admitted


def test_slow_start_ends_at_the_first_throttle() -> None:
    state, first = reserve(
        RateState(), 100.0, rate=0.0, burst=1.0, token_rate=0.0, cost=0.0, max_wait=9.0, u=0.0, adaptive=True
    )
    assert (state.rate, state.w_max, first.wait) == (START_RATE, 0.0, 0.0)
    state = feedback(state, 100.05, throttled=True, sent_at=100.0, adaptive=True)
    assert state.w_max > 0.0  # CUBIC from now on: answers grow the rate along the curve, not by the gain
    assert state.rate == pytest.approx(SS_BETA * START_RATE)  # nothing admitted was measured: the deepest cut


def test_feedback_corrects_the_token_debt_and_holds_on_a_hint() -> None:
    state = feedback(RateState(ttokens=10.0), 5.0, throttled=False, sent_at=4.0, adaptive=False, tokens=30.0)
    assert state.ttokens == -20.0
    assert state.not_before == 0.0
    state = feedback(state, 5.0, throttled=True, sent_at=4.0, adaptive=False, hint=0.5, rate=2.0)
    assert state.not_before == 5.5
    assert state.spread == 0.5
    assert state.rate == 0.0  # not adaptive: nothing learnt


def test_a_fleet_converges_on_the_providers_rate() -> None:
    """Simulated: a provider admitting 40/s (burst 5) and an adaptive limiter with nothing configured."""
    now, provider_tokens, provider_updated = 1000.0, 5.0, 1000.0
    state = RateState()
    rejected = admitted = 0
    sent: list[float] = []
    for _ in range(4000):  # callers always waiting: each admission is sent at its reserved time
        state, reservation = reserve(
            state, now, rate=0.0, burst=1.0, token_rate=0.0, cost=0.0, max_wait=60.0, u=0.0, adaptive=True
        )
        now += max(reservation.wait, 0.002)  # the client sends at most 500/s
        provider_tokens = refill(provider_tokens, provider_updated, now, 40.0, 5.0)
        provider_updated = now
        ok = provider_tokens >= 1.0
        provider_tokens -= 1.0 if ok else 0.0
        admitted += ok
        rejected += not ok
        sent.append(now)
        state = feedback(state, now, throttled=not ok, sent_at=now, adaptive=True, hint=None)
    seconds = sent[-1] - sent[0]
    assert admitted / seconds > 0.8 * 40.0  # close to the capacity ...
    assert rejected / admitted < 0.25  # ... with few 429s, where a stampede has one per ~12 requests
    assert 20.0 < state.rate < 80.0


# -- MemoryStore ---------------------------------------------------------------------------------


async def test_memory_store_reserves_in_order_and_holds_on_a_hint() -> None:
    store = MemoryStore()
    kwargs = {"rate": 2.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0, "max_wait": 10.0, "u": 0.0}
    waits = [(await store.reserve("k", 100.0, adaptive=False, horizon=9.0, **kwargs)).wait for _ in range(3)]
    assert waits == [0.0, 0.5, 1.0]
    assert await store.hold("k") == (0.0, 0.0)
    await store.rate_feedback(
        "k", 100.0, throttled=True, sent_at=99.0, adaptive=False, hint=3.0, rate=2.0, burst=1.0, tokens=0.0
    )
    assert await store.hold("k") == (103.0, 3.0)
    assert (await store.reserve("other", 100.0, adaptive=False, horizon=9.0, **kwargs)).wait == 0.0  # keys are apart


async def test_memory_store_learns_a_rate() -> None:
    store = MemoryStore()
    rate = await store.rate_feedback(
        "k", 10.0, throttled=True, sent_at=9.0, adaptive=True, hint=None, rate=0.0, burst=1.0, tokens=0.0
    )
    assert rate == store.rate_state("k").rate > 0.0


async def test_memory_store_slots() -> None:
    store = MemoryStore()
    assert await store.acquire_slot("k", "a", 10.0, limit=2, lease=5.0)
    assert await store.acquire_slot("k", "b", 10.0, limit=2, lease=5.0)
    assert not await store.acquire_slot("k", "c", 10.0, limit=2, lease=5.0)
    await store.release_slot("k", "a")
    assert await store.acquire_slot("k", "c", 10.0, limit=2, lease=5.0)
    assert not await store.acquire_slot("k", "d", 14.0, limit=2, lease=5.0)
    assert await store.acquire_slot("k", "d", 15.0, limit=2, lease=5.0)  # b's and c's leases ran out
    await store.release_slot("k", "nobody")  # releasing nothing is fine
