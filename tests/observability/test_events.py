"""Hooks receive one frozen event per noteworthy moment."""

from __future__ import annotations

import dataclasses

import pytest

from adk_retry import RetryHandler, RetryPolicy
from adk_retry.core._events import RetryEvent


async def _no_sleep(seconds: float) -> None:
    return None


def failing(*outcomes):
    pending = list(outcomes)

    async def call():
        outcome = pending.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call


async def test_retry_and_success_after_retry_events():
    events: list[RetryEvent] = []
    handler = RetryHandler(RetryPolicy(retry_on="all", hooks=(events.append,)), agent_name="a", sleep=_no_sleep)
    error = ConnectionResetError("reset")
    assert await handler(failing(error, "ok")) == "ok"
    assert [e.kind for e in events] == ["retry", "success_after_retry"]
    retry = events[0]
    assert (retry.agent, retry.attempt, retry.error, retry.reason, retry.error_class) == (
        "a",
        1,
        error,
        "backoff",
        "connection",
    )
    assert retry.delay is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        retry.kind = "give_up"  # type: ignore[misc]


async def test_give_up_event_and_no_event_on_a_first_try_success():
    events: list[RetryEvent] = []
    handler = RetryHandler(RetryPolicy(retry_on="all", max_retries=1, hooks=(events.append,)), sleep=_no_sleep)
    assert await handler(failing("ok")) == "ok"
    assert events == []
    with pytest.raises(OSError, match="b"):
        await handler(failing(OSError("a"), OSError("b")))
    assert [e.kind for e in events] == ["retry", "give_up"]
    assert events[-1].reason == "attempts exhausted"


async def test_a_broken_hook_is_logged_and_ignored(caplog):
    def broken(event: RetryEvent) -> None:
        raise RuntimeError("hook bug")

    handler = RetryHandler(RetryPolicy(retry_on="all", hooks=(broken,)), sleep=_no_sleep)
    assert await handler(failing(OSError("a"), "ok")) == "ok"
    assert any("retry hook" in r.getMessage() for r in caplog.records)
