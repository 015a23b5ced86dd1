"""adk-retry's logger and the one function that writes its retry records.

All records go to the ``adk_retry`` logger, with lazy ``%``-formatting over a
mapping of named fields (so a template may use them in any order) and the
same fields as ``extra`` attributes for structured handlers: ``agent``,
``model``, ``attempt``, ``max_attempts``, ``delay``, ``error_type``,
``reason``, ADK's ``invocation_id`` and ``session_id`` where the call has
them, and the current OpenTelemetry ``trace_id`` and ``span_id`` (32 and 16
lowercase hex digits, as exporters and log backends print them) when a span
is active, so a log line joins its trace. A
:class:`~adk_retry.observability._redact.RedactingFilter` sits on the logger, and error
texts are redacted before they are even put in a record.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from opentelemetry import trace as otel_trace

from adk_retry.core._empty import safe_text
from adk_retry.observability._redact import RedactingFilter, redact

__all__ = ["describe", "emit", "get_logger", "logger", "trace_ids"]


def get_logger(name: str = "") -> logging.Logger:
    """The ``adk_retry`` logger, or its child ``adk_retry.<name>``, with redaction attached.

    A filter on a logger sees only the records logged on that very logger,
    not its children's, so every logger the library writes to gets its own.

    Example:
        >>> get_logger("redis").name
        'adk_retry.redis'
    """
    named = logging.getLogger(f"adk_retry.{name}" if name else "adk_retry")
    if not any(isinstance(existing, RedactingFilter) for existing in named.filters):
        named.addFilter(RedactingFilter())
    return named


logger = get_logger()

_MAX_ERROR_TEXT = 300

_EXTRA_KEYS = (
    "agent",
    "model",
    "attempt",
    "max_attempts",
    "delay",
    "error_type",
    "reason",
    "invocation_id",
    "session_id",
)


def emit(level: int, templates: tuple[str, ...], fields: dict[str, Any]) -> None:
    """Log each template of ``templates`` at ``level`` with ``fields``.

    Example:
        >>> emit(logging.INFO, ("[%(agent)s] hello",), {"agent": "a"})
    """
    if not logger.isEnabledFor(level):
        return
    extra = {key: fields[key] for key in _EXTRA_KEYS if key in fields}
    extra.update(trace_ids())
    for template in templates:
        logger.log(level, template, fields, extra=extra)


def trace_ids() -> dict[str, str]:
    """The current span's ``trace_id`` and ``span_id`` in hex; empty outside any valid span.

    Read when a record is written (the failure path), never per call.

    Example:
        >>> trace_ids()  # no span here
        {}
    """
    context = otel_trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {
        "trace_id": otel_trace.format_trace_id(context.trace_id),
        "span_id": otel_trace.format_span_id(context.span_id),
    }


def describe(exc: BaseException) -> str:
    """A one-line, redacted, bounded text for ``exc``, for a log line.

    litellm puts whole tracebacks and response dumps into its messages; a
    retry line needs only the first sentence of it.

    Example:
        >>> describe(ValueError("No message in response"))
        'No message in response'
        >>> describe(RuntimeError("Invalid response object Traceback (most recent call last): ..."))
        'Invalid response object'
    """
    # A broken __str__ must not replace the error being reported: no text, the type's name.
    text = _api_error_text(exc)
    if text is None:
        text = safe_text(exc)
    text = text.split(" Traceback (most recent call last)", 1)[0].strip()
    # Redact before cutting: a key cut in half no longer matches the patterns.
    text = redact(text.splitlines()[0]) if text else type(exc).__name__
    if len(text) > _MAX_ERROR_TEXT:
        text = text[: _MAX_ERROR_TEXT - 3] + "..."
    return text


def _api_error_text(exc: BaseException) -> str | None:
    """``"<code> <status>: <message>"`` for a google-genai ``APIError``; None for anything else.

    Its ``str`` is the code, the status and the whole response dict on one
    line, and ADK's Gemini wraps a 429 in an error whose ``str`` starts with
    a paragraph of advice ("On how to mitigate this issue, please refer
    to:"), so the first line said nothing of what failed. The provider's own
    message does. google-genai is looked up, never imported: if it is not
    loaded, no such error exists.

    Example:
        >>> from google.genai.errors import ClientError
        >>> error = ClientError(429, {"error": {"code": 429, "message": "Quota hit.", "status": "RESOURCE_EXHAUSTED"}})
        >>> _api_error_text(error)
        '429 RESOURCE_EXHAUSTED: Quota hit.'
        >>> _api_error_text(ValueError("x")) is None
        True
    """
    errors = sys.modules.get("google.genai.errors")
    api_error = getattr(errors, "APIError", None)
    if api_error is None or not isinstance(exc, api_error):
        return None
    try:
        message = getattr(exc, "message", None)
        if not isinstance(message, str) or not message.strip():
            return None  # a websocket close, say: its str is all there is
        head = " ".join(str(part) for part in (getattr(exc, "code", None), getattr(exc, "status", None)) if part)
        return f"{head}: {message.strip()}" if head else message.strip()
    except Exception:  # whatever the error holds, describing it must not raise
        return None
