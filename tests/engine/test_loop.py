"""RetryHandler: the retry loop, its delays, statistics, cancellation and log lines."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import pytest

from adk_retry.core import _clock as clock
from adk_retry.core._errors import NO_MESSAGE, EmptyResponseError
from adk_retry.core._policy import RetryPolicy
from adk_retry.engine._loop import RetryHandler
from adk_retry.testing import no_waits
from tests.fakes import scripted


class RecordingSleep:
    """An injected ``sleep`` that records each delay and yields to the loop once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def forbidden_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds}s although nothing was retried")


def no_message() -> ValueError:
    return ValueError(NO_MESSAGE)


def adk_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name.startswith("adk_retry")]


@pytest.fixture
def retry_caplog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="adk_retry")
    return caplog


# --- delays -------------------------------------------------------------------


async def test_success_on_first_attempt_returns_result_without_sleeping() -> None:
    handler = RetryHandler(sleep=forbidden_sleep)
    call, attempts = scripted("hello")
    assert await handler(call) == "hello"
    assert len(attempts) == 1


async def test_delays_are_exact_with_midpoint_random() -> None:
    sleep = RecordingSleep()
    handler = RetryHandler(sleep=sleep, random=lambda: 0.5)
    call, _ = scripted(no_message(), no_message(), no_message(), "ok")
    assert await handler(call) == "ok"
    assert sleep.delays == [1.0, 2.0, 4.0]


async def test_delays_use_lower_jitter_bound_with_zero_random() -> None:
    sleep = RecordingSleep()
    handler = RetryHandler(sleep=sleep, random=lambda: 0.0)
    call, _ = scripted(no_message(), no_message(), no_message(), "ok")
    await handler(call)
    assert sleep.delays == pytest.approx([0.8, 1.6, 3.2])


async def test_delays_are_capped_at_max_delay() -> None:
    sleep = RecordingSleep()
    handler = RetryHandler(RetryPolicy(max_retries=5), sleep=sleep, random=lambda: 0.5)
    call, _ = scripted(*[no_message()] * 5, "ok")
    await handler(call)
    assert sleep.delays == [1.0, 2.0, 4.0, 8.0, 8.0]


async def test_random_is_drawn_once_per_retry() -> None:
    draws = iter([0.0, 0.5, 0.999])
    sleep = RecordingSleep()
    handler = RetryHandler(sleep=sleep, random=lambda: next(draws))
    call, _ = scripted(no_message(), no_message(), no_message(), "ok")
    await handler(call)
    assert sleep.delays == pytest.approx([0.8, 2.0, 4.0 * (0.8 + 0.4 * 0.999)])


# --- giving up ------------------------------------------------------------------


async def test_gives_up_after_max_attempts_and_reraises_original_exception() -> None:
    cause = ConnectionError("socket closed")
    raised: list[ValueError] = []

    async def model_call() -> str:
        error = ValueError(NO_MESSAGE)
        raised.append(error)
        raise error from cause

    sleep = RecordingSleep()
    handler = RetryHandler(sleep=sleep, random=lambda: 0.5)
    with pytest.raises(ValueError, match=r"^No message in response$") as excinfo:
        await handler(model_call)
    assert len(raised) == 4
    assert excinfo.value is raised[-1]
    assert type(excinfo.value) is ValueError
    assert excinfo.value.__cause__ is cause
    assert any(entry.name == "model_call" for entry in excinfo.traceback)
    assert sleep.delays == [1.0, 2.0, 4.0]


async def test_max_retries_zero_makes_one_attempt() -> None:
    handler = RetryHandler(RetryPolicy(max_retries=0), sleep=forbidden_sleep)
    error = no_message()
    call, attempts = scripted(error, "never")
    with pytest.raises(ValueError, match="No message in response") as excinfo:
        await handler(call)
    assert excinfo.value is error
    assert len(attempts) == 1


async def test_non_retriable_error_propagates_after_one_attempt_without_sleep() -> None:
    handler = RetryHandler(sleep=forbidden_sleep)
    error = ValueError("some other value error")
    call, attempts = scripted(error, "never")
    with pytest.raises(ValueError, match="some other value error") as excinfo:
        await handler(call)
    assert excinfo.value is error
    assert len(attempts) == 1
    assert handler.stats.attempts == 1
    assert handler.stats.retries == 0
    assert handler.stats.failures == 1


# --- statistics ----------------------------------------------------------------


async def test_statistics_after_mixed_runs() -> None:
    sleep = RecordingSleep()
    policy = RetryPolicy(max_retries=2, retry_on=("default", TimeoutError))
    handler = RetryHandler(policy, sleep=sleep, random=lambda: 0.5)
    # 1: success at once
    assert await handler(scripted("a")[0]) == "a"
    # 2: one retry then success
    assert await handler(scripted(TimeoutError("slow"), "b")[0]) == "b"
    # 3: not retriable
    with pytest.raises(KeyError):
        await handler(scripted(KeyError("k"))[0])
    # 4: retried until given up
    last = EmptyResponseError(None)
    with pytest.raises(EmptyResponseError):
        await handler(scripted(EmptyResponseError(None), EmptyResponseError(None), last)[0])

    stats = handler.stats
    assert stats.calls == 4
    assert stats.attempts == 1 + 2 + 1 + 3
    assert stats.retries == 0 + 1 + 0 + 2
    assert stats.successes == 2
    assert stats.failures == 2
    assert dict(stats.errors) == {"TimeoutError": 1, "KeyError": 1, "EmptyResponseError": 3}
    assert stats.slept == pytest.approx(1.0 + 1.0 + 2.0)
    assert stats.last_error is last
    assert sleep.delays == [1.0, 1.0, 2.0]


async def test_statistics_exact_under_fifty_concurrent_calls() -> None:
    rng = random.Random(20240601)
    failures_per_call = [rng.randint(0, 5) for _ in range(50)]
    max_retries = 3
    assert any(n > max_retries for n in failures_per_call)
    assert any(n <= max_retries for n in failures_per_call)

    def make_call(failures: int) -> Callable[[], Awaitable[int]]:
        count = 0

        async def model_call() -> int:
            nonlocal count
            count += 1
            await asyncio.sleep(0)
            if count <= failures:
                raise ValueError(NO_MESSAGE)
            return count

        return model_call

    sleep = RecordingSleep()
    handler = RetryHandler(RetryPolicy(max_retries=max_retries), sleep=sleep, random=lambda: 0.5)
    results = await asyncio.gather(*(handler(make_call(n)) for n in failures_per_call), return_exceptions=True)

    for n, result in zip(failures_per_call, results, strict=True):
        if n <= max_retries:
            assert result == n + 1
        else:
            assert isinstance(result, ValueError)

    retried = [min(n, max_retries) for n in failures_per_call]
    stats = handler.stats
    assert stats.calls == 50
    assert stats.attempts == sum(r + 1 for r in retried)
    assert stats.retries == sum(retried)
    assert stats.successes == sum(n <= max_retries for n in failures_per_call)
    assert stats.failures == sum(n > max_retries for n in failures_per_call)
    assert stats.errors["ValueError"] == sum(min(n, max_retries + 1) for n in failures_per_call)
    assert stats.slept == pytest.approx(sum(sum(2.0**k for k in range(r)) for r in retried))
    assert len(sleep.delays) == stats.retries


# --- cancellation and interruption ---------------------------------------------------


async def test_cancelled_error_from_call_is_not_retried() -> None:
    handler = RetryHandler(RetryPolicy(retry_on=BaseException), sleep=forbidden_sleep)
    call, attempts = scripted(asyncio.CancelledError(), "never")
    with pytest.raises(asyncio.CancelledError):
        await handler(call)
    assert len(attempts) == 1
    assert handler.stats.retries == 0
    assert handler.stats.failures == 0
    assert dict(handler.stats.errors) == {}


async def test_cancelling_during_backoff_sleep_ends_at_once_without_new_attempt() -> None:
    never = asyncio.Event()
    sleeping = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        sleeping.set()
        await never.wait()

    handler = RetryHandler(sleep=blocking_sleep, random=lambda: 0.5)
    call, attempts = scripted(no_message(), "would be the retry")
    task = asyncio.create_task(handler(call))
    await asyncio.wait_for(sleeping.wait(), 1)

    task.cancel()
    async with asyncio.timeout(1):
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(5):
        await asyncio.sleep(0)

    assert task.cancelled()
    assert len(attempts) == 1
    assert handler.stats.attempts == 1
    assert handler.stats.successes == 0


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_interpreter_exits_are_not_retried(interrupt: type[BaseException]) -> None:
    # Driven by hand, not on an event loop: asyncio re-raises these out of the loop.
    handler = RetryHandler(RetryPolicy(retry_on="all"), sleep=forbidden_sleep)
    call, attempts = scripted(interrupt(), "never")
    coroutine = handler(call)
    with pytest.raises(interrupt):
        coroutine.send(None)
    assert len(attempts) == 1
    assert handler.stats.attempts == 1
    assert handler.stats.retries == 0


# --- no_waits -------------------------------------------------------------------


async def test_no_waits_computes_and_counts_delays_without_sleeping(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(RetryPolicy(retry_on="all", base_delay=5.0), random=lambda: 0.5)
    call, attempts = scripted(OSError("down"), OSError("down"), OSError("down"), OSError("down"))
    start = time.monotonic()
    with no_waits():
        assert not clock.waits_enabled()
        async with asyncio.timeout(2):
            with pytest.raises(OSError, match="down"):
                await handler(call)
    assert time.monotonic() - start < 1.0
    assert clock.waits_enabled()
    assert len(attempts) == 4
    assert handler.stats.slept == pytest.approx(5.0 + 8.0 + 8.0)
    warnings = [r for r in adk_records(retry_caplog) if r.levelno == logging.WARNING]
    assert [r.delay for r in warnings] == [5.0, 8.0, 8.0]  # type: ignore[attr-defined]
    assert "Retrying in 5.0s..." in warnings[0].getMessage()


def test_no_waits_restores_previous_setting_after_error() -> None:
    with pytest.raises(RuntimeError), no_waits():
        raise RuntimeError
    assert clock.waits_enabled()


# --- log records -----------------------------------------------------------------


async def test_retry_warning_text_is_exact(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(sleep=RecordingSleep(), random=lambda: 0.5)
    await handler(scripted(no_message(), no_message(), no_message(), "ok")[0])
    warnings = [r.getMessage() for r in adk_records(retry_caplog) if r.levelno == logging.WARNING]
    assert warnings == [
        "[agent] Model request failed (attempt 1/4): No message in response. Retrying in 1.0s...",
        "[agent] Model request failed (attempt 2/4): No message in response. Retrying in 2.0s...",
        "[agent] Model request failed (attempt 3/4): No message in response. Retrying in 4.0s...",
    ]


async def test_give_up_error_text_is_exact(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(sleep=RecordingSleep(), random=lambda: 0.5)
    with pytest.raises(ValueError, match="No message in response"):
        await handler(scripted(*[no_message()] * 4)[0])
    errors = [r.getMessage() for r in adk_records(retry_caplog) if r.levelno == logging.ERROR]
    assert errors == ["[agent] Model request failed after 4 attempts: No message in response"]


async def test_success_after_retry_logs_info_line(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(sleep=RecordingSleep(), random=lambda: 0.5)
    await handler(scripted(no_message(), "ok")[0])
    infos = [r.getMessage() for r in adk_records(retry_caplog) if r.levelno == logging.INFO]
    assert infos == ["[agent] Model request succeeded on attempt 2"]


async def test_success_without_retry_logs_nothing(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(sleep=forbidden_sleep)
    await handler(scripted("ok")[0])
    assert adk_records(retry_caplog) == []


async def test_non_retriable_failure_logs_nothing(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(sleep=forbidden_sleep)
    with pytest.raises(KeyError):
        await handler(scripted(KeyError("k"))[0])
    assert adk_records(retry_caplog) == []


async def test_log_lines_use_the_agent_name(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(RetryPolicy(max_retries=1), agent_name="writer", sleep=RecordingSleep(), random=lambda: 0.5)
    await handler(scripted(no_message(), "ok")[0])
    assert [r.getMessage() for r in adk_records(retry_caplog)] == [
        "[writer] Model request failed (attempt 1/2): No message in response. Retrying in 1.0s...",
        "[writer] Model request succeeded on attempt 2",
    ]


async def test_error_without_message_is_logged_by_type_name(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(RetryPolicy(retry_on="all"), sleep=RecordingSleep(), random=lambda: 0.5)
    await handler(scripted(RuntimeError(), "ok")[0])
    first = adk_records(retry_caplog)[0].getMessage()
    assert first == "[agent] Model request failed (attempt 1/4): RuntimeError. Retrying in 1.0s..."


async def test_logged_error_text_is_first_line_before_traceback(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(RetryPolicy(retry_on="all"), sleep=RecordingSleep(), random=lambda: 0.5)
    noisy = RuntimeError("Invalid response object Traceback (most recent call last):\n  File x\nKeyError: 'message'")
    await handler(scripted(noisy, "ok")[0])
    first = adk_records(retry_caplog)[0].getMessage()
    assert first == "[agent] Model request failed (attempt 1/4): Invalid response object. Retrying in 1.0s..."


async def test_records_carry_structured_extra_fields(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(RetryPolicy(max_retries=1), agent_name="a1", sleep=RecordingSleep(), random=lambda: 0.5)
    with pytest.raises(ValueError, match="No message in response"):
        await handler(scripted(no_message(), no_message())[0])
    warning, error = adk_records(retry_caplog)
    assert warning.levelno == logging.WARNING
    assert (warning.agent, warning.attempt, warning.max_attempts, warning.delay, warning.error_type) == (  # type: ignore[attr-defined]
        "a1",
        1,
        2,
        1.0,
        "ValueError",
    )
    assert error.levelno == logging.ERROR
    assert (error.agent, error.attempt, error.max_attempts, error.error_type) == ("a1", 2, 2, "ValueError")  # type: ignore[attr-defined]


async def test_records_come_from_adk_retry_logger(retry_caplog: pytest.LogCaptureFixture) -> None:
    handler = RetryHandler(sleep=RecordingSleep(), random=lambda: 0.5)
    await handler(scripted(no_message(), "ok")[0])
    records = [r for r in retry_caplog.records if "Model request" in r.getMessage()]
    assert len(records) == 2
    assert all(r.name.startswith("adk_retry") for r in records)
