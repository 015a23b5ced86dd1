"""RetryPolicy: defaults, immutability, validation and the retry_on rule."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from adk_retry.core._errors import EmptyResponseError
from adk_retry.core._policy import LogTemplates, RetryPolicy

NO_MESSAGE = ValueError("No message in response")


def error_locs(excinfo: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(error["loc"]) for error in excinfo.value.errors()]


def test_defaults_are_the_seeds() -> None:
    policy = RetryPolicy()
    assert policy.max_retries == 3
    assert policy.base_delay == 1.0
    assert policy.max_delay == 8.0
    assert policy.backoff_multiplier == 2.0
    assert policy.jitter == 0.2
    assert policy.backoff == "exponential"
    assert policy.stream_mode == "pass_through"
    assert policy.retry_on == "default"
    assert policy.log_templates == LogTemplates()


def test_max_attempts_is_retries_plus_one() -> None:
    assert RetryPolicy().max_attempts == 4
    assert RetryPolicy(max_retries=0).max_attempts == 1


def test_delay_uses_schedule_and_jitter() -> None:
    policy = RetryPolicy()
    assert [policy.delay(k, u=0.5) for k in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(3, u=0.0) == pytest.approx(6.4)


def test_delay_honours_linear_backoff() -> None:
    policy = RetryPolicy(backoff="linear", base_delay=2.0, max_delay=5.0, jitter=0.0)
    assert [policy.delay(k, u=0.9) for k in range(4)] == [2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize(("field", "value"), [("max_retries", 5), ("jitter", 0.0), ("retry_on", "all")])
def test_policy_is_immutable(field: str, value: Any) -> None:
    policy = RetryPolicy()
    with pytest.raises(ValidationError):
        setattr(policy, field, value)
    assert getattr(policy, field) == getattr(RetryPolicy(), field)


def test_log_templates_are_immutable() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy().log_templates.retrying = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"base_delay": -0.5}, "base_delay"),
        ({"max_delay": -1.0}, "max_delay"),
        ({"base_delay": 9.0}, "max_delay"),
        ({"base_delay": 3.0, "max_delay": 2.0}, "max_delay"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": float("nan")}, "jitter"),
        ({"base_delay": float("inf")}, "base_delay"),
        ({"backoff": "quadratic"}, "backoff"),
        ({"stream_mode": "replay"}, "stream_mode"),
        ({"retry_on": "sometimes"}, "retry_on"),
        ({"retry_on": int}, "retry_on"),
        ({"retry_on": 42}, "retry_on"),
        ({"retry_on": ()}, "retry_on"),
        ({"retry_on": []}, "retry_on"),
        ({"retry_on": (ValueError, "sometimes")}, "retry_on"),
        ({"retry_on": (ValueError, 42)}, "retry_on"),
        ({"max_retrys": 3}, "max_retrys"),
    ],
)
def test_invalid_value_raises_validation_error_naming_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        RetryPolicy(**kwargs)
    assert (field,) in error_locs(excinfo)


def test_base_delay_equal_to_max_delay_is_valid() -> None:
    assert RetryPolicy(base_delay=8.0, max_delay=8.0).delay(0, u=0.5) == 8.0


def test_zero_retries_and_zero_delays_are_valid() -> None:
    policy = RetryPolicy(max_retries=0, base_delay=0.0, max_delay=0.0, jitter=0.0, backoff_multiplier=1.0)
    assert policy.delay(2, u=0.3) == 0.0


def test_default_rule_retries_only_the_missing_message() -> None:
    policy = RetryPolicy()
    assert policy.retries(ValueError("No message in response"))
    assert policy.retries(EmptyResponseError(None))
    assert not policy.retries(ValueError("bad value"))
    assert not policy.retries(TimeoutError())


def test_retry_on_exception_type_matches_subclasses() -> None:
    policy = RetryPolicy(retry_on=OSError)
    assert policy.retries(OSError("x"))
    assert policy.retries(ConnectionResetError())
    assert not policy.retries(NO_MESSAGE)


def test_retry_on_predicate() -> None:
    policy = RetryPolicy(retry_on=lambda exc: "503" in str(exc))
    assert policy.retries(RuntimeError("HTTP 503"))
    assert not policy.retries(RuntimeError("HTTP 400"))


def test_retry_on_all_retries_every_exception() -> None:
    policy = RetryPolicy(retry_on="all")
    assert policy.retries(RuntimeError())
    assert policy.retries(NO_MESSAGE)


def test_retry_on_tuple_mixes_preset_type_and_predicate() -> None:
    def flaky(exc: BaseException) -> bool:
        return isinstance(exc, RuntimeError) and "flaky" in str(exc)

    policy = RetryPolicy(retry_on=("default", KeyError, flaky))
    assert policy.retries(NO_MESSAGE)
    assert policy.retries(KeyError("k"))
    assert policy.retries(RuntimeError("flaky backend"))
    assert not policy.retries(RuntimeError("broken"))
    assert not policy.retries(TypeError())


def test_retry_on_list_is_stored_as_tuple() -> None:
    policy = RetryPolicy(retry_on=[KeyError, "all"])
    assert policy.retry_on == (KeyError, "all")
    assert policy.retries(RuntimeError())


@pytest.mark.parametrize(
    "retry_on",
    ["all", "default", "transient", BaseException, Exception, lambda exc: True, ("all", BaseException)],
)
@pytest.mark.parametrize("exc", [asyncio.CancelledError(), KeyboardInterrupt(), SystemExit(1), GeneratorExit()])
def test_interruptions_are_never_retried(retry_on: Any, exc: BaseException) -> None:
    assert not RetryPolicy(retry_on=retry_on).retries(exc)


def test_async_hooks_are_refused_at_configuration() -> None:
    async def hook(event: object) -> None:
        return None

    with pytest.raises(ValidationError, match="hooks"):
        RetryPolicy(hooks=(hook,))
