"""adk_retry features that may or may not exist yet in the checkout being measured.

The retry budget, the circuit breaker and "one retry owner"
(``keep_lower_retries``) are newer than the benchmark: each row that needs
one asks here first, and a missing feature becomes a row that says so
instead of an error.
"""

from __future__ import annotations

from typing import Any

from adk_retry import RetryPolicy

__all__ = ["breaker", "budget", "has_field", "missing", "rate_limit", "waiting_breaker"]


def has_field(name: str) -> bool:
    """Whether ``RetryPolicy`` has the field ``name``."""
    return name in RetryPolicy.model_fields


def missing(name: str) -> str:
    """The note for a row whose ``RetryPolicy`` field does not exist in this checkout."""
    return f"not measured: `RetryPolicy` has no `{name}` field in this checkout"


def _fresh_store() -> dict[str, Any]:
    """A private state store, so that no two rows share a bucket or a breaker."""
    if not has_field("store"):
        return {}
    from adk_retry.guards._store import MemoryStore

    return {"store": MemoryStore()}


def budget() -> dict[str, Any] | None:
    """``RetryPolicy`` keyword arguments for the default retry budget, or None if there is none."""
    if not has_field("budget"):
        return None
    from adk_retry.core._budget import RetryBudget

    return {"budget": RetryBudget(), **_fresh_store()}


def breaker() -> dict[str, Any] | None:
    """``RetryPolicy`` keyword arguments for the default circuit breaker, or None if there is none."""
    if not has_field("breaker"):
        return None
    from adk_retry.core._breaker import CircuitBreaker

    return {"breaker": CircuitBreaker(), **_fresh_store()}


def waiting_breaker() -> dict[str, Any] | None:
    """``RetryPolicy`` keyword arguments for a default breaker whose calls wait for its probe (issue 11 part 3).

    ``CircuitBreaker()`` as it is now (probes after 0.25 s, then every 0.5 s), and a
    ``timeout`` so that calls have time to wait; None where the breaker cannot wait.
    """
    if not has_field("breaker"):
        return None
    from adk_retry.core._breaker import CircuitBreaker

    if "max_wait" not in CircuitBreaker.model_fields:
        return None
    return {"breaker": CircuitBreaker(), "timeout": 30.0, **_fresh_store()}


def rate_limit(**fields: Any) -> dict[str, Any] | None:
    """``RetryPolicy`` keyword arguments for ``RateLimit(**fields)``, or None if there is no limiter."""
    if not has_field("rate_limit"):
        return None
    from adk_retry.core._limit import RateLimit

    return {"rate_limit": RateLimit(**fields), **_fresh_store()}
