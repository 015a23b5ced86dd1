"""Server hints: how long the provider asked the caller to wait before retrying.

:func:`retry_after` reads the delay from, in order of precedence:

1. a ``retry-after-ms`` header (milliseconds; OpenAI and Azure send it);
2. a ``Retry-After`` header: delay-seconds, or an HTTP date;
3. Google's ``RetryInfo.retryDelay`` (``"53s"``) in a google-genai error's
   details, in an error body, or in the JSON text of the message;
4. the message itself: "Please retry in 53s", "try again in 1m30s",
   "retry after 2 seconds".

Headers are looked for on ``exc.litellm_response_headers`` (litellm: its
exceptions' own ``response`` is a stand-in with no headers), ``exc.headers``,
and ``exc.response.headers`` (openai SDK, httpx, google-genai). When ``exc``
itself carries no hint, its ``__cause__``, then its ``__context__``, is read
the same way (one level only).

How a retry handler uses the hint: the delay is the hint plus a small jitter
instead of the computed backoff, capped by ``max_hint_delay`` (120 s by
default). A hint longer than the cap means giving up at once: waiting less
than the server asked would only be refused again. No hint (``None``) means
the usual backoff.

Example:
    >>> retry_after(RuntimeError("Rate limit reached. Please try again in 1.5s."))
    1.5
    >>> retry_after(RuntimeError("nothing to see")) is None
    True
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Final

from adk_retry.core._empty import safe_attr, safe_text

__all__ = ["retry_after", "parse_duration", "parse_retry_after"]

_HEADER_ATTRIBUTES: Final = ("litellm_response_headers", "headers")
_BODY_ATTRIBUTES: Final = ("details", "response_json", "body")
_NUMBER: Final = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)\s*")
_GOOGLE_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")
_RETRY_DELAY_TEXT: Final = re.compile(r"""["']retryDelay["']\s*:\s*["'](\d+(?:\.\d+)?)s["']""")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT: Final = r"(?:ms|millis(?:econds?)?|msecs?|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)(?![a-z])"
_DURATION_PART: Final = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT})", re.IGNORECASE)
_PHRASE: Final = re.compile(
    rf"\b(?:retry|try\s+again)\s+(?:in|after)\s+((?:\d+(?:\.\d+)?\s*{_UNIT}\s*)+)",
    re.IGNORECASE,
)
_MAX_JSON_NODES: Final = 200


def retry_after(exc: BaseException, *, now: float | None = None) -> float | None:
    """The delay in seconds the server asked for before a retry, or ``None``.

    ``now`` is the wall-clock time (``time.time()``) an HTTP-date
    ``Retry-After`` is measured from; pass it to make the result
    reproducible. Negative, infinite or unparsable values are no hint.

    Example:
        >>> import httpx
        >>> class ProviderError(Exception):
        ...     def __init__(self, headers):
        ...         self.response = httpx.Response(429, headers=headers)
        >>> retry_after(ProviderError({"Retry-After": "3"}))
        3.0
        >>> retry_after(ProviderError({"Retry-After": "3", "retry-after-ms": "250"}))
        0.25
        >>> retry_after(ProviderError({"Retry-After": "Thu, 01 Jan 1970 00:01:00 GMT"}), now=30.0)
        30.0
        >>> retry_after(ProviderError({"Retry-After": "-1"})) is None
        True
    """
    try:
        for candidate in _self_and_causes(exc):
            delay = _hint_of(candidate, now)
            if delay is not None:
                return delay
    except Exception:  # an odd exception is no hint; it must never replace the error itself
        return None
    return None


def parse_retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header value: delay-seconds or an HTTP date.

    A date is measured from ``now`` (default ``time.time()``); a date in the
    past, like a negative number, is no hint.

    Example:
        >>> parse_retry_after("120")
        120.0
        >>> parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0)
        30.0
        >>> parse_retry_after("soon") is None
        True
    """
    text = _text(value)
    if text is None:
        return _number(value)
    if _NUMBER.fullmatch(text):
        return _number(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = when.timestamp() - (time.time() if now is None else now)
    return delay if delay >= 0 else None


def parse_duration(text: str) -> float | None:
    """Seconds in a human or Go-style duration: ``"53s"``, ``"1.5 seconds"``, ``"1m30s"``, ``"250ms"``.

    Example:
        >>> parse_duration("1m30s")
        90.0
        >>> parse_duration("250ms")
        0.25
        >>> parse_duration("later") is None
        True
    """
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    total = 0.0
    for amount, unit in parts:
        total += float(amount) * _unit_seconds(unit)
    return total if math.isfinite(total) else None


def _hint_of(exc: BaseException, now: float | None) -> float | None:
    headers = list(_header_maps(exc))
    for value in _header_values(headers, "retry-after-ms"):
        millis = _number(value)
        if millis is not None:
            return millis / 1000.0
    for value in _header_values(headers, "retry-after"):
        seconds = parse_retry_after(value, now=now)
        if seconds is not None:
            return seconds
    for name in _BODY_ATTRIBUTES:
        delay = _retry_delay_in(safe_attr(exc, name))
        if delay is not None:
            return delay
    return _from_text(exc)


def _self_and_causes(exc: BaseException) -> Iterator[BaseException]:
    yield exc
    if exc.__cause__ is not None:
        yield exc.__cause__
    if exc.__context__ is not None and exc.__context__ is not exc.__cause__:
        yield exc.__context__


def _header_maps(exc: BaseException) -> Iterator[object]:
    for name in _HEADER_ATTRIBUTES:
        headers = safe_attr(exc, name)
        if headers is not None:
            yield headers
    headers = safe_attr(safe_attr(exc, "response"), "headers")
    if headers is not None:
        yield headers


def _header_values(maps: list[object], name: str) -> Iterator[object]:
    """Values of header ``name`` in each map, matched case-insensitively."""
    for headers in maps:
        try:
            value = headers.get(name)  # type: ignore[attr-defined]
            if value is None:
                value = next((v for k, v in headers.items() if _text(k, lower=True) == name), None)  # type: ignore[attr-defined]
        except Exception:  # not a mapping after all
            continue
        if value is not None:
            yield value


def _retry_delay_in(data: object) -> float | None:
    """``retryDelay`` of the first Google ``RetryInfo`` found in decoded JSON ``data``."""
    pending = [data]
    visited = 0
    while pending and visited < _MAX_JSON_NODES:
        node = pending.pop(0)
        visited += 1
        if isinstance(node, dict):
            if "retryDelay" in node:
                delay = _google_duration(node["retryDelay"])
                if delay is not None:
                    return delay
            pending.extend(node.values())
        elif isinstance(node, (list, tuple)):
            pending.extend(node)
    return None


def _google_duration(value: object) -> float | None:
    """A protobuf ``Duration`` in its JSON form, ``"1.5s"``, or as ``{"seconds": 1, "nanos": 5e8}``."""
    if isinstance(value, dict):
        seconds = _number(value.get("seconds", 0))
        nanos = _number(value.get("nanos", 0))
        if seconds is None or nanos is None:
            return None
        return seconds + nanos / 1e9
    text = _text(value)
    if text is None:
        return None
    match = _GOOGLE_DURATION.fullmatch(text)
    return _number(match.group(1)) if match else None


def _from_text(exc: BaseException) -> float | None:
    message = safe_text(exc)  # a broken __str__ is no hint
    match = _RETRY_DELAY_TEXT.search(message)
    if match:
        return _number(match.group(1))
    match = _PHRASE.search(message)
    return parse_duration(match.group(1)) if match else None


def _unit_seconds(unit: str) -> float:
    unit = unit.lower()
    if unit.startswith(("ms", "milli")):
        return _UNIT_SECONDS["ms"]
    return _UNIT_SECONDS[unit[0]]


def _number(value: object) -> float | None:
    """A finite, non-negative number of seconds from a number or numeric text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = _text(value)
        if text is None or not _NUMBER.fullmatch(text):
            return None
        number = float(text)
    return number if math.isfinite(number) and number >= 0 else None


def _text(value: object, *, lower: bool = False) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    return value.lower() if lower else value
