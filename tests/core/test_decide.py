"""The retry decision as a table: pure, no event loop, no clock, no store."""

from __future__ import annotations

import pytest

from adk_retry import CircuitBreaker, ErrorRule, RetryPolicy
from adk_retry.core._decide import Failure, GiveUp, Retry, decide


class _Http(Exception):
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = {} if retry_after is None else {"retry-after": retry_after}


EMPTY = ValueError("No message in response")
SEED = RetryPolicy(jitter=0)
TRANSIENT = RetryPolicy.transient(jitter=0)


def _failure(policy: RetryPolicy, exc: BaseException) -> Failure:
    return policy.plan.failure(exc)


CASES = [
    # (label, policy, error, keyword arguments, expected)
    ("seed: empty answer, first attempt", SEED, EMPTY, {}, Retry(1.0, "backoff")),
    ("seed: empty answer, third attempt", SEED, EMPTY, {"attempt": 3}, Retry(4.0, "backoff")),
    ("seed: capped at max_delay", RetryPolicy(jitter=0, max_retries=9), EMPTY, {"attempt": 6}, Retry(8.0, "backoff")),
    ("seed: attempts exhausted", SEED, EMPTY, {"attempt": 4}, GiveUp("attempts exhausted")),
    ("seed: a 503 is not retried", SEED, _Http(503), {}, GiveUp(None)),
    ("seed: a bug is not retried", SEED, TypeError("x"), {}, GiveUp(None)),
    ("transient: a 400 is not retried", TRANSIENT, _Http(400), {}, GiveUp(None)),
    ("transient: a 503 is", TRANSIENT, _Http(503), {}, Retry(1.0, "backoff")),
    ("transient: jitter from u", RetryPolicy.transient(jitter=0.2), _Http(503), {"u": 1.0}, Retry(1.2, "backoff")),
    ("hint wins over backoff", TRANSIENT, _Http(429, "3"), {"u": 0.0}, Retry(3.0, "server asked to wait 3s", True)),
    (
        "hint jitter is at most 10 %",
        TRANSIENT,
        _Http(429, "3"),
        {"u": 1.0},
        Retry(3.3, "server asked to wait 3s", True),
    ),
    ("hint jitter at most 1 s", TRANSIENT, _Http(429, "60"), {"u": 1.0}, Retry(61.0, "server asked to wait 60s", True)),
    (
        "hint over max_hint_delay gives up",
        RetryPolicy.transient(max_hint_delay=10),
        _Http(429, "30"),
        {},
        GiveUp("server asked to wait 30s, over max_hint_delay"),
    ),
    (
        "deadline: no time for the wait",
        TRANSIENT,
        _Http(503),
        {"time_left": 0.5},
        GiveUp("deadline: 0.50s left, retry needs 1.00s"),
    ),
    ("deadline: time enough", TRANSIENT, _Http(503), {"time_left": 1.5}, Retry(1.0, "backoff")),
    ("circuit open by failures", TRANSIENT, _Http(503), {"circuit_open": True}, GiveUp("circuit open")),
    (
        "circuit open, the call may wait: its probe replaces the backoff",
        TRANSIENT,
        _Http(503),
        {"circuit_open": True, "circuit_waits": True, "time_left": 0.5},
        Retry(0.0, "circuit open: waiting for its probe"),
    ),
    (
        "circuit open, waiting, but attempts exhausted",
        TRANSIENT,
        _Http(503),
        {"circuit_open": True, "circuit_waits": True, "attempt": 4},
        GiveUp("attempts exhausted"),
    ),
    (
        "circuit opened by the hint, waiting allowed: the hint still wins",
        TRANSIENT,
        _Http(429, "2"),
        {"circuit_open": True, "circuit_waits": True, "u": 0.0},
        Retry(2.0, "server asked to wait 2s", True),
    ),
    (
        "circuit opened by the hint: wait for it",
        TRANSIENT,
        _Http(429, "2"),
        {"circuit_open": True, "u": 0.0},
        Retry(2.0, "server asked to wait 2s", True),
    ),
    (
        "adaptive stretches",
        RetryPolicy.transient(jitter=0, adaptive=True),
        _Http(503),
        {"failure_rate": 0.5},
        Retry(1.5, "backoff"),
    ),
    (
        "adaptive never shrinks",
        RetryPolicy.transient(jitter=0, adaptive=True),
        _Http(503),
        {"failure_rate": -1},
        Retry(1.0, "backoff"),
    ),
    ("not adaptive ignores the rate", TRANSIENT, _Http(503), {"failure_rate": 1.0}, Retry(1.0, "backoff")),
]


@pytest.mark.parametrize(("label", "policy", "error", "kwargs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(label: str, policy: RetryPolicy, error: BaseException, kwargs: dict, expected: object) -> None:
    arguments = {"attempt": 1, **kwargs}
    decision = decide(policy.plan, _failure(policy, error), **arguments)
    if isinstance(expected, Retry):
        assert isinstance(decision, Retry), decision
        assert decision.delay == pytest.approx(expected.delay)
        assert (decision.reason, decision.hinted) == (expected.reason, expected.hinted)
    else:
        assert decision == expected


def test_a_rule_has_its_own_schedule_and_limit() -> None:
    rule = ErrorRule(match="timeout", backoff="linear", base_delay=2.0, max_retries=1)
    policy = RetryPolicy.transient(jitter=0, rules=(rule,))
    failure = _failure(policy, TimeoutError())
    assert failure.rule is rule
    assert decide(policy.plan, failure, attempt=1) == Retry(2.0, "backoff")
    assert decide(policy.plan, failure, attempt=2, rule_retries=0) == Retry(4.0, "backoff")
    assert decide(policy.plan, failure, attempt=2, rule_retries=1) == GiveUp("the matching rule's retries exhausted")


def test_the_breaker_is_read_at_the_edge_not_in_the_decision() -> None:
    policy = RetryPolicy.transient(jitter=0, breaker=CircuitBreaker())
    assert decide(policy.plan, _failure(policy, _Http(503)), attempt=1, circuit_open=False) == Retry(1.0, "backoff")


class _Hostile(Exception):
    """An exception whose every reading raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    @property
    def status_code(self) -> int:
        raise RuntimeError("no status either")

    @property
    def headers(self) -> dict[str, str]:
        raise RuntimeError("nor headers")


@pytest.mark.parametrize("policy", [SEED, TRANSIENT, RetryPolicy(retry_on="all")])
def test_reading_a_hostile_failure_never_raises(policy: RetryPolicy) -> None:
    error = _Hostile()
    failure = policy.plan.failure(error)
    assert failure.error is error
    decide(policy.plan, failure, attempt=1)


def test_a_predicate_that_raises_means_not_retriable() -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bug in the user's predicate")

    policy = RetryPolicy(retry_on=broken)
    assert policy.plan.failure(ValueError()).retriable is False
