"""Guards: state shared by many calls that can refuse a retry or a call.

Where budgets and breakers keep their state (:class:`MemoryStore`, the
default; :class:`RedisStore`, shared across processes) and the moving
failure rates of adaptive delays. Their settings live in the core's policy;
the engine calls them around each decision.

Example:
    >>> from adk_retry import RetryBudget, RetryPolicy
    >>> from adk_retry.guards import MemoryStore
    >>> policy = RetryPolicy(budget=RetryBudget(), store=MemoryStore())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adk_retry.core._store import CircuitState, CircuitView, StateStore
from adk_retry.guards._store import MemoryStore, default_store

if TYPE_CHECKING:
    from adk_retry.guards._redis import RedisStore

__all__ = ["CircuitState", "CircuitView", "MemoryStore", "RedisStore", "StateStore", "default_store"]


def __getattr__(name: str) -> Any:
    # The Redis store needs the optional `redis` package: load it only when asked.
    if name == "RedisStore":
        from adk_retry.guards._redis import RedisStore

        return RedisStore
    raise AttributeError(f"module 'adk_retry.guards' has no attribute {name!r}")
