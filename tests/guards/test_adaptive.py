"""Adaptive delays stretch the schedule while a model keeps failing, never below it."""

from __future__ import annotations

from adk_retry import RetryHandler, RetryPolicy
from adk_retry.core._decide import stretch
from adk_retry.guards._adaptive import FailureRate, failure_rates


def test_stretch_never_goes_below_the_schedule():
    assert stretch(1.0, 0.0) == 1.0
    assert stretch(1.0, -5.0) == 1.0
    assert stretch(1.0, 0.25) == 1.25
    assert stretch(1.0, 7.0) == 2.0


def test_the_rate_rises_with_failures_and_falls_with_successes():
    rates = FailureRate()
    for _ in range(10):
        rates.record("m", failed=True)
    high = rates.get("m")
    for _ in range(10):
        rates.record("m", failed=False)
    assert high > 0.85
    assert rates.get("m") < 0.15 * high


async def test_delays_grow_while_the_model_keeps_failing():
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    policy = RetryPolicy(retry_on="all", adaptive=True, backoff="fixed", base_delay=1.0, max_delay=1.0, jitter=0.0)
    handler = RetryHandler(policy, agent_name="adaptive-test", sleep=sleep)
    outcomes = [OSError("down")] * 3 + ["ok"]

    async def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert await handler(call) == "ok"
    assert delays[0] > 1.0
    assert delays == sorted(delays), "each failure raises the rate, so each wait is longer"
    assert all(d >= 1.0 for d in delays)
    assert failure_rates.get("rate:model:adaptive-test") < 0.6, "the success pulled the rate down"
