"""adk-retry: make Google ADK agents survive the failures of the models behind them.

Three ways in:

- one agent: :func:`create_retry_callbacks` + :func:`add_retry_capabilities_to_agent`;
- a whole app: ``App(..., plugins=[RetryPlugin()])``;
- a ready agent: :func:`create_enhanced_software_engineer_agent`.

Everything is configured by one immutable :class:`RetryPolicy`. The edges
have named submodules: :mod:`adk_retry.guards` (state stores, Redis),
:mod:`adk_retry.observability` (metrics, aggregate views, the redaction
filter), :mod:`adk_retry.contrib.ollama`, :mod:`adk_retry.testing`.

Example:
    >>> from adk_retry import RetryPlugin, RetryPolicy
    >>> plugin = RetryPlugin(RetryPolicy.transient(max_retries=5))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adk_retry import _moved
from adk_retry.adapter._attach import add_retry_capabilities_to_agent, remove_retry_capabilities
from adk_retry.adapter._callbacks import create_retry_callbacks
from adk_retry.adapter._plugin import RetryPlugin
from adk_retry.core._breaker import CircuitBreaker
from adk_retry.core._budget import RetryBudget
from adk_retry.core._errors import (
    AdkRetryError,
    CircuitOpenError,
    EmptyResponseError,
    MalformedFunctionCallError,
    RateLimitedError,
)
from adk_retry.core._events import RetryEvent
from adk_retry.core._limit import RateLimit
from adk_retry.core._policy import LogTemplates, RetryPolicy
from adk_retry.core._rules import ErrorRule, RecoveryContext
from adk_retry.engine._loop import RetryHandler
from adk_retry.observability._stats import RetryStats

if TYPE_CHECKING:
    from adk_retry.agents.software_engineer import create_enhanced_software_engineer_agent

__all__ = [
    "AdkRetryError",
    "CircuitBreaker",
    "CircuitOpenError",
    "EmptyResponseError",
    "ErrorRule",
    "LogTemplates",
    "MalformedFunctionCallError",
    "RateLimit",
    "RateLimitedError",
    "RecoveryContext",
    "RetryBudget",
    "RetryEvent",
    "RetryHandler",
    "RetryPlugin",
    "RetryPolicy",
    "RetryStats",
    "add_retry_capabilities_to_agent",
    "create_enhanced_software_engineer_agent",
    "create_retry_callbacks",
    "remove_retry_capabilities",
]

_moved.install()


def __getattr__(name: str) -> Any:
    # The agent factory pulls in ADK's tool machinery; load it only when asked.
    if name == "create_enhanced_software_engineer_agent":
        from adk_retry.agents.software_engineer import create_enhanced_software_engineer_agent

        return create_enhanced_software_engineer_agent
    if (
        name not in _moved.NAMES and f"adk_retry.{name}" in _moved.MODULES
    ):  # `adk_retry.redis_store` after `import adk_retry`
        import importlib

        return importlib.import_module(f"adk_retry.{name}")
    return _moved.moved_name(name)
