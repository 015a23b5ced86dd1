"""The circuit breaker's decisions as tables: the probe schedule, how long a call may wait, wait or fail.

Pure functions of their arguments (the wall-clock time is an argument): no
event loop, no clock, no store.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adk_retry import CircuitBreaker
from adk_retry.core._breaker import circuit_wait, open_period, probe_interval, wait_limit
from adk_retry.core._store import CircuitView

DEFAULT = CircuitBreaker()
NOW = 1_000.0


def test_the_defaults_probe_a_recovered_provider_within_half_a_second() -> None:
    assert (DEFAULT.failure_threshold, DEFAULT.first_probe, DEFAULT.cooldown) == (5, 0.25, 0.5)
    assert (DEFAULT.probe_jitter, DEFAULT.probe_timeout, DEFAULT.max_wait) == (0.2, 10.0, None)
    # However long the outage, the next probe is never more than `cooldown` away ...
    assert max(probe_interval(DEFAULT, n, u=u) for n in range(100) for u in (0.0, 0.5, 0.999)) == 0.5
    # ... and never closer than 0.4 s once the outage has lasted a probe: at most 2.5 requests
    # per second per scope to a dead provider, however many callers wait.
    assert min(probe_interval(DEFAULT, n, u=0.999) for n in range(1, 100)) >= 0.4


SCHEDULE = [
    # (label, breaker, failed probes, u, open period)
    ("defaults: just opened", DEFAULT, 0, 0.0, 0.25),
    ("defaults: one failed probe", DEFAULT, 1, 0.0, 0.5),
    ("defaults: two, at the cap", DEFAULT, 2, 0.0, 0.5),
    ("defaults: capped", DEFAULT, 50, 0.0, 0.5),
    ("defaults: a huge count does not overflow", DEFAULT, 10_000, 0.0, 0.5),
    ("jitter shortens, never lengthens", DEFAULT, 0, 0.999, 0.25 * (1 - 0.2 * 0.999)),
    ("jitter at the cap", DEFAULT, 5, 0.5, 0.45),
    ("the 1 s cap of the first waiting breaker", CircuitBreaker(cooldown=1.0), 2, 0.0, 1.0),
    ("no jitter", CircuitBreaker(probe_jitter=0), 0, 0.9, 0.25),
    ("first above the cap: the cap", CircuitBreaker(cooldown=0.1), 0, 0.0, 0.1),
    ("the 0.1 behaviour: fixed 30 s", CircuitBreaker(first_probe=30, cooldown=30, probe_jitter=0), 3, 0.5, 30.0),
    ("slow growth to a long cap", CircuitBreaker(first_probe=1, cooldown=60), 4, 0.0, 16.0),
]


@pytest.mark.parametrize(("breaker", "probes", "u", "period"), [r[1:] for r in SCHEDULE], ids=[r[0] for r in SCHEDULE])
def test_probe_schedule(breaker: CircuitBreaker, probes: int, u: float, period: float) -> None:
    assert probe_interval(breaker, probes, u) == pytest.approx(period)


def test_open_period_is_the_formula_the_stores_share() -> None:
    assert open_period(0.25, 1.0, 1, 0.1) == min(1.0, 0.25 * 2.0) * 0.9


LIMITS = [
    # (label, breaker, time_left, waited, may wait)
    ("no timeout, no max_wait: no waiting (fail fast)", DEFAULT, None, 0.0, 0.0),
    ("a timeout: what is left of it", DEFAULT, 12.5, 3.0, 12.5),
    ("a timeout spent: nothing", DEFAULT, -0.1, 0.0, 0.0),
    ("max_wait alone", CircuitBreaker(max_wait=5), None, 0.0, 5.0),
    ("max_wait minus what was waited", CircuitBreaker(max_wait=5), None, 4.0, 1.0),
    ("max_wait used up", CircuitBreaker(max_wait=5), None, 6.0, 0.0),
    ("the timeout bounds max_wait", CircuitBreaker(max_wait=5), 2.0, 0.0, 2.0),
    ("max_wait bounds the timeout", CircuitBreaker(max_wait=1), 20.0, 0.5, 0.5),
    ("max_wait=0: never wait", CircuitBreaker(max_wait=0), 20.0, 0.0, 0.0),
]


@pytest.mark.parametrize(
    ("breaker", "time_left", "waited", "expected"), [r[1:] for r in LIMITS], ids=[r[0] for r in LIMITS]
)
def test_wait_limit(breaker: CircuitBreaker, time_left: float | None, waited: float, expected: float) -> None:
    assert wait_limit(breaker, time_left=time_left, waited=waited) == pytest.approx(expected)


def open_until(seconds: float) -> CircuitView:
    return CircuitView("open", NOW + seconds, 5, allowed=False)


PROBING = CircuitView("half_open", NOW - 0.1, 5, allowed=False, probes=1)

WAITS = [
    # (label, view, may wait, poll, pause or None = fail now)
    ("open: wait for the open period to end", open_until(0.25), 10.0, 0.5, 0.25),
    ("open: the probe comes too late for the deadline", open_until(0.25), 0.25, 0.5, None),
    ("open: just in time", open_until(0.25), 0.26, 0.5, 0.25),
    ("open: no time at all", open_until(0.25), 0.0, 0.5, None),
    ("open: a long hint beyond the deadline", open_until(60.0), 30.0, 1.0, None),
    ("open, already past (clock skew): ask again now", open_until(-0.01), 1.0, 0.5, 0.0),
    ("half-open, another call probing: poll", PROBING, 10.0, 0.5, 0.5),
    ("half-open: never past the deadline", PROBING, 0.2, 0.5, 0.2),
    ("half-open: no time", PROBING, 0.0, 0.5, None),
]


@pytest.mark.parametrize(("view", "may_wait", "poll", "expected"), [r[1:] for r in WAITS], ids=[r[0] for r in WAITS])
def test_circuit_wait(view: CircuitView, may_wait: float, poll: float, expected: float | None) -> None:
    pause = circuit_wait(view, now=NOW, may_wait=may_wait, poll=poll)
    assert pause == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("field", "value"),
    [("first_probe", 0), ("cooldown", -1), ("probe_jitter", 1.0), ("max_wait", -1), ("probe_timeout", 0)],
)
def test_invalid_settings_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        CircuitBreaker(**{field: value})
