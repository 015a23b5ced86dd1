"""Observability: logs (redacted), statistics, aggregate views and OpenTelemetry metrics and spans.

Example:
    >>> from adk_retry.observability import stats_by_agent
    >>> isinstance(stats_by_agent(), dict)
    True
"""

from __future__ import annotations

from adk_retry.observability._otel import (
    INSTRUMENTS,
    SPAN_EVENT,
    SPAN_EVENTS,
    Metrics,
    enable_metrics,
    give_up_reason,
    span_attributes,
)
from adk_retry.observability._redact import REDACTED, RedactingFilter, redact
from adk_retry.observability._stats import RetryStats
from adk_retry.observability._views import merge, stats_by_agent, stats_by_model

__all__ = [
    "INSTRUMENTS",
    "REDACTED",
    "SPAN_EVENT",
    "SPAN_EVENTS",
    "Metrics",
    "RedactingFilter",
    "RetryStats",
    "enable_metrics",
    "give_up_reason",
    "merge",
    "redact",
    "span_attributes",
    "stats_by_agent",
    "stats_by_model",
]
