"""A store of the user's own that raises never fails the model call it guards."""

from __future__ import annotations

import asyncio
import logging

import pytest

from adk_retry import CircuitBreaker, RateLimit, RetryBudget, RetryHandler, RetryPolicy
from adk_retry.guards import MemoryStore
from adk_retry.guards._failopen import FailOpen, fail_open
from tests.fakes import scripted


class BrokenStore:
    """Every operation raises, as a store whose backend is down might."""

    calls = 0

    def __getattr__(self, name: str):
        async def operation(*args: object, **kwargs: object) -> None:
            BrokenStore.calls += 1
            raise ConnectionError(f"backend down in {name}")

        return operation


async def _no_sleep(_: float) -> None:
    return None


def test_a_broken_store_fails_open_and_warns_once_per_operation(caplog: pytest.LogCaptureFixture) -> None:
    store = BrokenStore()
    policy = RetryPolicy.transient(budget=RetryBudget(), breaker=CircuitBreaker(), store=store)  # type: ignore[arg-type]
    handler = RetryHandler(policy, sleep=_no_sleep)
    call, _ = scripted(ConnectionResetError("drop"), "ok", "ok again")

    with caplog.at_level(logging.WARNING, logger="adk_retry"):
        assert asyncio.run(handler(call)) == "ok"
        assert asyncio.run(handler(call)) == "ok again"
    assert BrokenStore.calls > 0
    warnings = [r.getMessage() for r in caplog.records if "State store BrokenStore failed" in r.getMessage()]
    assert len(warnings) == len(set(warnings)), "one warning per operation"
    assert handler.stats.successes == 2


@pytest.mark.parametrize(
    "limit",
    [RateLimit(rpm=600), RateLimit(max_concurrency=2), RateLimit(adaptive=True), RateLimit(tpm=1000, rpm=60)],
    ids=["rpm", "concurrency", "adaptive", "tpm"],
)
def test_a_broken_store_fails_open_under_a_rate_limit(limit: RateLimit) -> None:
    # The limiter's operations (reserve, hold, rate_feedback, acquire_slot, release_slot) too:
    # a store that is down admits every call, as if there were no limit.
    policy = RetryPolicy.transient(rate_limit=limit, breaker=CircuitBreaker(), store=BrokenStore())  # type: ignore[arg-type]
    handler = RetryHandler(policy, sleep=_no_sleep)
    call, _ = scripted(ConnectionResetError("drop"), "ok", "ok again")
    assert asyncio.run(handler(call)) == "ok"
    assert asyncio.run(handler(call)) == "ok again"
    assert handler.stats.successes == 2
    assert handler.stats.rate_limit_rejections == 0


def test_a_cancellation_in_the_store_is_not_swallowed() -> None:
    class Cancelling:
        async def take_token(self, key: str, *, max_tokens: float) -> bool:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(FailOpen(Cancelling()).take_token("k", max_tokens=1))


def test_the_built_in_stores_are_used_as_they_are() -> None:
    memory = MemoryStore()
    assert fail_open(memory) is memory
    other = BrokenStore()
    assert isinstance(fail_open(other), FailOpen)  # type: ignore[arg-type]
    assert fail_open(other) is fail_open(other)  # type: ignore[arg-type]
