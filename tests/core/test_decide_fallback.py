"""The fallback decision as a table: when a call moves to its next model, retries, or gives up."""

from __future__ import annotations

import pytest

from adk_retry import RetryPolicy
from adk_retry.core._decide import FallBack, GiveUp, Retry, decide
from adk_retry.core._transient import fallback_class


class _Http(Exception):
    def __init__(self, status: int, retry_after: str | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = {} if retry_after is None else {"retry-after": retry_after}


def _litellm(name: str) -> type[Exception]:
    cls = type(name, (Exception,), {})
    cls.__module__ = "litellm.exceptions"
    return cls


ContextWindowExceededError = _litellm("ContextWindowExceededError")
ContentPolicyViolationError = _litellm("ContentPolicyViolationError")

CHAIN = RetryPolicy.transient(jitter=0, fallbacks=("openai/backup",))
ON_RATE = RetryPolicy.transient(jitter=0, fallbacks=("openai/backup",), fallback_on=("rate_limit",))
ON_WINDOW = RetryPolicy.transient(jitter=0, fallbacks=("openai/backup",), fallback_on=("context_window_exceeded",))
ON_POLICY = RetryPolicy.transient(jitter=0, fallbacks=("openai/backup",), fallback_on=("content_policy",))

CASES = [
    # (label, policy, error, keyword arguments, expected)
    ("retries left: retry the same model", CHAIN, _Http(503), {"can_fall_back": True}, Retry(1.0, "backoff")),
    (
        "retries out: next model",
        CHAIN,
        _Http(503),
        {"attempt": 4, "can_fall_back": True},
        FallBack("attempts exhausted"),
    ),
    ("retries out, no next model: give up", CHAIN, _Http(503), {"attempt": 4}, GiveUp("attempts exhausted")),
    ("a 400: neither", CHAIN, _Http(400), {"can_fall_back": True}, GiveUp(None)),
    ("fallback_on rate_limit: at once", ON_RATE, _Http(429), {"can_fall_back": True}, FallBack("rate_limit")),
    ("fallback_on rate_limit, a 503: retry", ON_RATE, _Http(503), {"can_fall_back": True}, Retry(1.0, "backoff")),
    ("fallback_on without a next model: retry", ON_RATE, _Http(429), {}, Retry(1.0, "backoff")),
    (
        "context window: next model",
        ON_WINDOW,
        ContextWindowExceededError("too long"),
        {"can_fall_back": True},
        FallBack("context_window_exceeded"),
    ),
    ("context window, not chosen: give up", CHAIN, ContextWindowExceededError(), {"can_fall_back": True}, GiveUp(None)),
    (
        "content policy: next model",
        ON_POLICY,
        ContentPolicyViolationError(),
        {"can_fall_back": True},
        FallBack("content_policy"),
    ),
    (
        "hint over max_hint_delay: next model",
        CHAIN,
        _Http(429, "500"),
        {"can_fall_back": True},
        FallBack("server asked to wait 500s, over max_hint_delay"),
    ),
    (
        "the wait would pass the deadline: next model now",
        CHAIN,
        _Http(503),
        {"time_left": 0.5, "can_fall_back": True},
        FallBack("deadline: 0.50s left, retry needs 1.00s"),
    ),
    (
        "deadline passed: give up",
        ON_RATE,
        _Http(429),
        {"time_left": 0.0, "can_fall_back": True},
        GiveUp("deadline: 0.00s left"),
    ),
    (
        "circuit open: next model",
        CHAIN,
        _Http(503),
        {"circuit_open": True, "can_fall_back": True},
        FallBack("circuit open"),
    ),
]


@pytest.mark.parametrize(("label", "policy", "error", "kwargs", "expected"), CASES, ids=[c[0] for c in CASES])
def test_fallback_decisions(label, policy, error, kwargs, expected):
    arguments = {"attempt": 1, "u": 0.5, **kwargs}
    assert decide(policy.plan, policy.plan.failure(error), **arguments) == expected


def test_fallback_classes_by_type_name_only():
    assert fallback_class(ContextWindowExceededError()) == "context_window_exceeded"
    assert fallback_class(ContentPolicyViolationError()) == "content_policy"
    assert fallback_class(_Http(429)) == "rate_limit"
    assert fallback_class(KeyError("x")) is None
    assert fallback_class(type("ContextWindowExceededError", (Exception,), {})()) is None  # not litellm's


def test_policy_validates_fallback_fields():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="fallback_on"):
        RetryPolicy(fallback_on=("overloaded_somehow",))
    with pytest.raises(ValidationError, match="fallbacks"):
        RetryPolicy(fallbacks=(42,))
    with pytest.raises(ValidationError, match="hedge_after"):
        RetryPolicy(hedge_after=0)
    policy = RetryPolicy(fallbacks="openai/backup", fallback_on="rate_limit", hedge_after=0.5)
    assert policy.fallbacks == ("openai/backup",)
    assert policy.fallback_on == ("rate_limit",)
    assert policy.plan.falls_back
    assert policy.plan.hedged
    assert not RetryPolicy().plan.falls_back
    assert not RetryPolicy().plan.hedged
    hash(RetryPolicy(fallbacks=(type("M", (), {"generate_content_async": lambda self: None, "__hash__": None})(),)))
