"""adk-retry: make Google ADK agents survive the failures of the models behind them.

Three ways in:

- one agent: :func:`create_retry_callbacks` + :func:`add_retry_capabilities_to_agent`;
- a whole app: ``Runner(..., plugins=[RetryPlugin()])``;
- a ready agent: :func:`create_enhanced_software_engineer_agent`.

Everything is configured by one immutable :class:`RetryPolicy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adk_retry.breaker import CircuitBreaker
from adk_retry.budget import RetryBudget
from adk_retry.callbacks import create_retry_callbacks
from adk_retry.errors import AdkRetryError, CircuitOpenError, EmptyResponseError, MalformedFunctionCallError
from adk_retry.events import RetryEvent
from adk_retry.handler import RetryHandler
from adk_retry.integration import add_retry_capabilities_to_agent, remove_retry_capabilities
from adk_retry.metrics import Metrics, enable_metrics, stats_by_agent, stats_by_model
from adk_retry.plugin import RetryPlugin
from adk_retry.policy import TRANSIENT, LogTemplates, RetryPolicy
from adk_retry.redact import RedactingFilter, redact
from adk_retry.rules import ErrorRule, RecoveryContext
from adk_retry.stats import RetryStats
from adk_retry.store import MemoryStore, StateStore

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
    "MemoryStore",
    "Metrics",
    "RecoveryContext",
    "RedactingFilter",
    "RetryBudget",
    "RetryEvent",
    "RetryHandler",
    "RetryPlugin",
    "RetryPolicy",
    "RetryStats",
    "StateStore",
    "TRANSIENT",
    "add_retry_capabilities_to_agent",
    "create_enhanced_software_engineer_agent",
    "create_retry_callbacks",
    "enable_metrics",
    "redact",
    "remove_retry_capabilities",
    "stats_by_agent",
    "stats_by_model",
]


def __getattr__(name: str) -> Any:
    # The agent factory pulls in ADK's tool machinery; load it only when asked.
    if name == "create_enhanced_software_engineer_agent":
        from adk_retry.agents.software_engineer import create_enhanced_software_engineer_agent

        return create_enhanced_software_engineer_agent
    raise AttributeError(f"module 'adk_retry' has no attribute {name!r}")
