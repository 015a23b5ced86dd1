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

# Where a secret's value ends: whitespace, a quote, a backslash (an escaped
# quote in JSON inside a string), or what closes a dict, call, list or tag.
_VALUE = r"""(?!\[REDACTED\])(?:(?<=")[^"\\\n]+|(?<=')[^'\\\n]+|[^\s"',;&(){}\[\]<>\\]+)"""
# Between a name and its value: `: `, `=`, `": "`, `': '`, and `\": \"` (escaped JSON).
_SEPARATOR = r"""(?:\\*["'])?\s*[:=]\s*(?:\\*["'])?"""

# Field names whose value is a secret, whatever the value looks like. A name
# starts a word (so `\w*` runs once per word, not once per character) and
# ends where the separator begins ("max_tokens=5" is no `token`).
_SECRET_NAMES = (
    r"(?:proxy-)?authorization|x-goog-api-key|x-api-key|api[-_ ]?key(?:\s+(?:provided|given|used|supplied))?"
    r"|\w*(?:token|password|passwd|secret|_key|_key_id|(?:database|db)_url|connection_string|webhook_url)"
    r"|azure_username"
)

# Each pattern with the (lower-case) words a match must contain: a text that
# holds none of them skips the pattern for the price of a substring search,
# so ordinary error text costs a few microseconds, not a regex scan per shape.
# Bare shapes start with their literal (a leading \b would stop the regex
# engine from jumping to it); the lookbehind after it checks the word boundary.
_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = (
    # Whole blocks first: a PEM private key (to its END line, or to where the
    # text was cut), and a Google service-account JSON.
    (
        ("-----begin",),
        re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)"),
        REDACTED,
    ),
    (
        ("service_account",),
        re.compile(r"""\{[^{}]*\\*"type\\*"\s*:\s*\\*"service_account[^{}]*(?:\{[^{}]*\}[^{}]*)*\}"""),
        REDACTED,
    ),
    # Header and field forms, so the value is replaced whatever its shape; the
    # name and an auth scheme are kept, to show what was refused. The scheme
    # is atomic (?>...): once read it stays read, so "Bearer [REDACTED]" is
    # not taken for a new value.
    (
        ("auth", "key", "token", "pass", "secret", "_url", "connection_string", "username"),
        re.compile(rf"(?i)(?<![\w-])({_SECRET_NAMES})({_SEPARATOR})(?>((?:bearer|basic|token)\s+)?){_VALUE}"),
        r"\1\2\3" + REDACTED,
    ),
    # A credential name, a space, its value (litellm's own %s formatting).
    (
        ("client_secret", "azure_"),
        re.compile(rf"(?i)(?<!\w)(client_secret|azure_password|azure_username)(\s+){_VALUE}"),
        r"\1\2" + REDACTED,
    ),
    (
        ("bearer", "basic"),
        re.compile(r"(?i)\b(bearer|basic)\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}"),
        r"\1 " + REDACTED,
    ),
    # Query parameters a key or a signature travels in (`?key=AIza...`, Azure SAS `&sig=`).
    (("key=", "sig="), re.compile(r"(?i)(?<=[?&])(key|sig)=(?!\[REDACTED\])[^\s&'\"#]+"), r"\1=" + REDACTED),
    # Bare keys and tokens, by the shapes providers issue.
    (("sk-",), re.compile(r"sk-(?<!\wsk-)[A-Za-z0-9_*.-]{6,}"), REDACTED),  # OpenAI, Anthropic, DeepSeek, ...
    (("aiza",), re.compile(r"AIza[0-9A-Za-z_-]{20,}"), REDACTED),  # Google API keys
    (("ya29.",), re.compile(r"ya29\.(?<!\wya29\.)[A-Za-z0-9_.~+/-]+"), REDACTED),  # Google OAuth access tokens
    (
        ("gsk", "xai", "hf", "pplx", "r8"),
        re.compile(r"\b(?:gsk|xai|hf|pplx|r8)[_.-][A-Za-z0-9_.-]{10,}"),
        REDACTED,
    ),
    (("dapi",), re.compile(r"(?i)dapi(?<!\wdapi)[0-9a-f]{32}"), REDACTED),  # Databricks access tokens
    (("x-ak-",), re.compile(r"(?i)x-ak-(?<!\wx-ak-)[A-Za-z0-9_-]{20,}"), REDACTED),  # Anthropic internal keys
    (("akia", "asia"), re.compile(r"(?:AKIA|ASIA)[0-9A-Z]{16}"), REDACTED),  # AWS access key ids
    (("eyj",), re.compile(r"eyJ(?<!\weyJ)[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),  # JWTs
    # user:password@ in URLs, to the last @ (a password may hold one); length-capped so a long URL
    # cannot backtrack for long.
    (
        ("://",),
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s'\"/:@]{0,256}:[^\s'\"]{1,256}@"),
        r"\1" + REDACTED + "@",
    ),
)


def redact(text: str) -> str:
    """Replace API keys and auth header values in ``text`` with ``[REDACTED]``.

    Example:
        >>> redact("Incorrect API key provided: sk-proj-abc123def456")
        'Incorrect API key provided: [REDACTED]'
        >>> redact("Authorization: Bearer abcdefgh12345")
        'Authorization: Bearer [REDACTED]'
    """
    lowered = text.lower()
    for words, pattern, replacement in _PATTERNS:
        if any(word in lowered for word in words):
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
