"""create_retry_callbacks: its dict, the callbacks' ADK signatures, its log line and its policy."""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import Any

import pytest
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types
from pydantic import ValidationError

from adk_retry.adapter._call_state import current_call
from adk_retry.adapter._callbacks import create_retry_callbacks
from adk_retry.core._policy import RetryPolicy
from adk_retry.engine._loop import RetryHandler


def run_isolated(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run in a copied context, so a callback's ContextVar never leaks into other tests."""
    return contextvars.copy_context().run(function, *args, **kwargs)


def answer(*, partial: bool | None = None) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text="ok")]), partial=partial)


def adk_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("adk_retry")]


def test_returns_exactly_the_three_keys() -> None:
    callbacks = create_retry_callbacks("agent")
    assert set(callbacks) == {"retry_handler", "before_model", "after_model"}
    assert isinstance(callbacks["retry_handler"], RetryHandler)
    assert callbacks["retry_handler"].agent_name == "agent"


def test_before_model_has_adk_signature() -> None:
    params = list(inspect.signature(create_retry_callbacks("a")["before_model"]).parameters)
    assert params == ["callback_context", "llm_request"]


def test_after_model_has_adk_signature() -> None:
    params = list(inspect.signature(create_retry_callbacks("a")["after_model"]).parameters)
    assert params == ["callback_context", "llm_response"]


def test_callbacks_are_plain_functions_not_coroutines() -> None:
    callbacks = create_retry_callbacks("a")
    assert not inspect.iscoroutinefunction(callbacks["before_model"])
    assert not inspect.iscoroutinefunction(callbacks["after_model"])


def test_callbacks_return_none_when_called_by_keyword() -> None:
    callbacks = create_retry_callbacks("a")

    def both() -> tuple[Any, Any]:
        before = callbacks["before_model"](callback_context=object(), llm_request=LlmRequest())
        after = callbacks["after_model"](callback_context=object(), llm_response=answer())
        return before, after

    assert run_isolated(both) == (None, None)


def test_after_model_without_before_model_returns_none() -> None:
    callbacks = create_retry_callbacks("a")
    assert run_isolated(callbacks["after_model"], None, answer()) is None


def test_before_model_opens_call_state_for_its_handler() -> None:
    callbacks = create_retry_callbacks("writer")

    def opened() -> Any:
        callbacks["before_model"](None, LlmRequest())
        return current_call.get()

    state = run_isolated(opened)
    assert state is not None
    assert state.agent == "writer"
    assert state.handler is callbacks["retry_handler"]
    assert state.attempts == 0


def test_after_model_logs_success_once_at_first_complete_response(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    callbacks = create_retry_callbacks("writer")
    caplog.clear()

    def one_call() -> None:
        callbacks["before_model"](None, LlmRequest())
        state = current_call.get()
        assert state is not None
        state.attempts = 3
        callbacks["after_model"](None, answer(partial=True))
        callbacks["after_model"](None, answer())
        callbacks["after_model"](None, answer())

    run_isolated(one_call)
    assert adk_messages(caplog) == ["[writer] Model request succeeded on attempt 3"]


def test_after_model_logs_nothing_for_first_attempt_success(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    callbacks = create_retry_callbacks("writer")
    caplog.clear()

    def one_call() -> None:
        callbacks["before_model"](None, LlmRequest())
        current_call.get().attempts = 1  # type: ignore[union-attr]
        callbacks["after_model"](None, answer())

    run_isolated(one_call)
    assert adk_messages(caplog) == []


def test_creation_logs_info_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    create_retry_callbacks("my_agent")
    records = [r for r in caplog.records if r.name.startswith("adk_retry")]
    assert [r.getMessage() for r in records] == [
        "[my_agent] Creating retry callbacks with max_retries=3, base_delay=1.0s, max_delay=8.0s"
    ]
    assert records[0].levelno == logging.INFO
    assert records[0].agent == "my_agent"  # type: ignore[attr-defined]


def test_creation_log_line_shows_given_values(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    create_retry_callbacks("b", max_retries=5, base_delay=0.25, max_delay=30.0)
    assert adk_messages(caplog) == ["[b] Creating retry callbacks with max_retries=5, base_delay=0.2s, max_delay=30.0s"]


def test_positional_seed_arguments_build_the_policy() -> None:
    policy = create_retry_callbacks("a", 5, 0.5, 20.0, 3.0)["retry_handler"].policy
    assert (policy.max_retries, policy.base_delay, policy.max_delay, policy.backoff_multiplier) == (5, 0.5, 20.0, 3.0)
    assert policy.jitter == 0.2
    assert policy.retry_on == "default"


def test_defaults_give_the_default_policy() -> None:
    assert create_retry_callbacks("a")["retry_handler"].policy == RetryPolicy()


def test_extra_policy_fields_pass_through() -> None:
    policy = create_retry_callbacks("a", jitter=0.1, retry_on="transient", stream_mode="buffer", backoff="linear")[
        "retry_handler"
    ].policy
    assert policy.jitter == 0.1
    assert policy.retry_on == "transient"
    assert policy.stream_mode == "buffer"
    assert policy.backoff == "linear"


def test_retry_on_type_passes_through_and_is_used() -> None:
    policy = create_retry_callbacks("a", retry_on=(TimeoutError, "default"))["retry_handler"].policy
    assert policy.retries(TimeoutError())
    assert not policy.retries(KeyError())


def test_policy_is_used_as_given() -> None:
    given = RetryPolicy(max_retries=7, base_delay=0.5, jitter=0.0, retry_on="all")
    assert create_retry_callbacks("a", policy=given)["retry_handler"].policy == given


def test_explicit_arguments_override_policy() -> None:
    given = RetryPolicy(max_retries=7, base_delay=0.5, max_delay=30.0, jitter=0.0)
    policy = create_retry_callbacks("a", max_retries=1, max_delay=10.0, policy=given)["retry_handler"].policy
    assert policy.max_retries == 1
    assert policy.max_delay == 10.0
    assert policy.base_delay == 0.5
    assert policy.jitter == 0.0


def test_extra_fields_override_policy() -> None:
    given = RetryPolicy(jitter=0.0, retry_on="all")
    policy = create_retry_callbacks("a", jitter=0.5, policy=given)["retry_handler"].policy
    assert policy.jitter == 0.5
    assert policy.retry_on == "all"


def test_explicit_argument_equal_to_default_overrides_policy() -> None:
    given = RetryPolicy(max_retries=7, base_delay=2.0, max_delay=30.0)
    policy = create_retry_callbacks("a", max_retries=3, base_delay=1.0, policy=given)["retry_handler"].policy
    assert policy.max_retries == 3
    assert policy.base_delay == 1.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": -1}, "max_retries"),
        ({"base_delay": -1.0}, "base_delay"),
        ({"base_delay": 10.0}, "max_delay"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"jitter": 2.0}, "jitter"),
        ({"retry_on": "sometimes"}, "retry_on"),
        ({"stream_mode": "replay"}, "stream_mode"),
        ({"max_retrys": 3}, "max_retrys"),
    ],
)
def test_bad_values_raise_validation_error(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        create_retry_callbacks("a", **kwargs)
    assert (field,) in [tuple(error["loc"]) for error in excinfo.value.errors()]


def test_explicit_value_conflicting_with_policy_raises() -> None:
    with pytest.raises(ValidationError):
        create_retry_callbacks("a", max_delay=0.5, policy=RetryPolicy(base_delay=2.0, max_delay=10.0))
