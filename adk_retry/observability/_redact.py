"""Keep API keys and auth headers out of logs.

Provider errors often echo the key that was refused ("Incorrect API key
provided: sk-..."), and litellm, openai and ADK log those errors themselves.
:func:`redact` scrubs a string; :class:`RedactingFilter` scrubs whole log
records and is attached to adk-retry's own ``adk_retry`` logger. Attach it to
other loggers to scrub what they log too::

    import logging
    from adk_retry import RedactingFilter

    for name in ("LiteLLM", "openai", "google_adk", "httpx"):
        logging.getLogger(name).addFilter(RedactingFilter())

A filter on a logger sees only the records logged *on that logger*; to cover
every child logger as well, add it to your handlers instead
(``handler.addFilter(RedactingFilter())``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "RedactingFilter", "redact"]

REDACTED = "[REDACTED]"
"""What a secret is replaced with."""

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header and field forms first, so the value is replaced whatever its shape.
    (
        re.compile(
            r"(?i)\b(authorization|proxy-authorization|x-api-key|api[-_]?key|x-goog-api-key|"
            r"access[-_]?token|secret[-_]?key|token)(['\"]?\s*[:=]\s*['\"]?)(bearer\s+|basic\s+)?[^\s\"',;&}]+"
        ),
        r"\1\2\3" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # Bare keys, by the shapes providers issue.
    (re.compile(r"\bsk-[A-Za-z0-9_*.-]{6,}"), REDACTED),  # OpenAI, Anthropic (sk-ant-), DeepSeek, ...
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), REDACTED),  # Google API keys
    (re.compile(r"\b(?:gsk|xai|hf|pplx|r8|ya29)[_.-][A-Za-z0-9_.-]{10,}"), REDACTED),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]+@"), r"\1" + REDACTED + "@"),  # user:pass@ in URLs
)


def redact(text: str) -> str:
    """Replace API keys and auth header values in ``text`` with ``[REDACTED]``.

    Example:
        >>> redact("Incorrect API key provided: sk-proj-abc123def456")
        'Incorrect API key provided: [REDACTED]'
        >>> redact("Authorization: Bearer abcdefgh12345")
        'Authorization: Bearer [REDACTED]'
    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value  # kept as they are, so %d and %.1f still format them
    if isinstance(value, str):
        return redact(value)
    # Anything else would be formatted by its str or repr, which may show what
    # it holds (an exception's message, headers, a partial's bound api_key).
    try:
        return redact(repr(value) if not isinstance(value, BaseException) else str(value))
    except Exception:
        return f"<{type(value).__name__}>"


class RedactingFilter(logging.Filter):
    """A ``logging.Filter`` that redacts secrets from every part of a record.

    Message, args (positional or mapping), string ``extra`` fields and the
    formatted ``exc_info`` traceback are all scrubbed in place; the record is
    never dropped.

    Example:
        >>> import logging
        >>> record = logging.LogRecord("x", logging.ERROR, __file__, 1, "key %s", ("sk-abcdefghijkl",), None)
        >>> RedactingFilter().filter(record), record.getMessage()
        (True, 'key [REDACTED]')
    """

    _STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place and keep it."""
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        elif isinstance(record.msg, BaseException):
            record.msg = redact(str(record.msg))
        if isinstance(record.args, Mapping):
            record.args = {key: _redact_value(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback once, redacted, and drop the live exception so
            # no formatter can render the unredacted message again.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        for key, value in list(record.__dict__.items()):
            if key not in self._STANDARD and isinstance(value, (str, BaseException)):
                setattr(record, key, _redact_value(value))
        return True
