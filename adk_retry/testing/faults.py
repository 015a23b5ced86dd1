"""Scripted answers for :class:`adk_retry.testing.server.FaultServer`.

A :class:`Fault` describes how the server answers exactly one chat request:
a normal reply, a tool call, an HTTP error, a dropped connection, and so on.

Example::

    from adk_retry.testing.faults import Fault

    script = [*Fault.http_error(503).times(2), Fault.ok("recovered")]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from adk_retry.core._checks import require_callable, require_seconds, require_type

FaultKind = Literal[
    "answer",
    "reply",
    "empty_choices",
    "null_message",
    "http_error",
    "close_connection",
    "delay",
    "malformed_json",
    "stream_cut",
    "stall",
    "stream_unfinished",
]
"""What the server does; ``"answer"`` covers ok, finish and tool-call replies."""

ReplyFn = Callable[[dict[str, Any]], "Fault"]
"""Decides the fault from a request body, see :meth:`Fault.reply`."""


@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model asks for.

    Example::

        ToolCall(name="get_weather", arguments='{"city": "Paris"}', call_id="call_1")
    """

    name: str
    arguments: str
    """The arguments, already JSON-encoded, exactly as they go on the wire."""
    call_id: str | None = None


@dataclass(frozen=True)
class Fault:
    """How the fault server answers one ``POST /v1/chat/completions``.

    Build instances with the classmethods rather than the constructor.

    Example::

        server.push(Fault.http_error(429, retry_after=1), Fault.ok("hello"))
    """

    kind: FaultKind
    text: str | None = None
    """Assistant content; ``None`` sends ``"content": null``."""
    chunks: int | None = None
    """Streamed content chunks (``None``: up to four words); for ``stream_cut``, those sent before the cut."""
    finish_reason: str = "stop"
    tool: ToolCall | None = None
    status: int = 200
    message: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    then: Fault | None = None
    fn: ReplyFn | None = None

    def __post_init__(self) -> None:
        """Refuse a fault the server could only fail on, mid-test, with a confusing error."""
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"Fault: unknown kind {self.kind!r}; expected one of {', '.join(get_args(FaultKind))}")
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValueError(f"Fault: status must be an HTTP status code (100-599), got {self.status!r}")
        chunks = self.chunks
        if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 0):
            raise ValueError(f"Fault: chunks must be None or a whole number >= 0, got {self.chunks!r}")
        require_seconds("Fault", "seconds", self.seconds, zero_ok=True)
        require_type("Fault", "text", self.text, str, optional=True)
        require_type("Fault", "tool", self.tool, ToolCall, optional=True)
        require_type("Fault", "then", self.then, Fault, optional=True)
        require_callable("Fault", "fn", self.fn, arguments=1)
        if self.kind == "reply" and self.fn is None:
            raise ValueError("Fault: a reply fault needs fn")

    def times(self, n: int) -> tuple[Fault, ...]:
        """Repeat this fault ``n`` times, for :meth:`FaultServer.push`.

        Example::

            server.push(*Fault.http_error(503).times(3))
        """
        if n < 0:
            raise ValueError(f"times() needs n >= 0, got {n}")
        return (self,) * n

    @classmethod
    def ok(cls, text: str = "ok", *, chunks: int | None = None) -> Fault:
        """A normal assistant answer with ``text``, streamed over ``chunks`` chunks.

        Example::

            Fault.ok("hello world", chunks=2)
        """
        return cls("answer", text=text, chunks=chunks)

    @classmethod
    def reply(cls, fn: ReplyFn) -> Fault:
        """Let ``fn(body)`` pick the fault when the request arrives.

        Example::

            Fault.reply(lambda body: Fault.ok(body["messages"][-1]["content"]))
        """
        return cls("reply", fn=fn)

    @classmethod
    def empty_choices(cls) -> Fault:
        """HTTP 200 with ``"choices": []``; a stream carries no choice at all.

        Example::

            server.push(Fault.empty_choices())
        """
        return cls("empty_choices")

    @classmethod
    def null_message(cls) -> Fault:
        """HTTP 200 with one choice whose ``"message"`` is ``null``.

        Streams behave as :meth:`empty_choices`, as a chunk has no message.

        Example::

            server.push(Fault.null_message())
        """
        return cls("null_message")

    @classmethod
    def finish(cls, reason: str, text: str = "") -> Fault:
        """An answer ending with ``finish_reason=reason``; empty text is sent as null.

        Example::

            Fault.finish("content_filter")
            Fault.finish("length", "truncated answ")
        """
        return cls("answer", text=text or None, finish_reason=reason)

    @classmethod
    def http_error(
        cls,
        status: int,
        *,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """HTTP ``status`` with an OpenAI-style ``{"error": {...}}`` body.

        ``retry_after`` becomes ``Retry-After`` (seconds, or a string such as an
        HTTP date); ``retry_after_ms`` becomes ``retry-after-ms``.

        Example::

            Fault.http_error(429, retry_after=2)
            Fault.http_error(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
        """
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = _header_number(retry_after)
        if retry_after_ms is not None:
            extra["retry-after-ms"] = _header_number(retry_after_ms)
        return cls("http_error", status=status, message=message, headers=tuple(extra.items()))

    @classmethod
    def close_connection(cls) -> Fault:
        """Drop the TCP connection without sending any response.

        Example::

            server.push(Fault.close_connection())
        """
        return cls("close_connection")

    @classmethod
    def delay(cls, seconds: float, then: Fault | None = None) -> Fault:
        """Wait ``seconds``, then answer with ``then`` (default :meth:`ok`).

        Example::

            Fault.delay(0.5, then=Fault.http_error(504))
        """
        return cls("delay", seconds=seconds, then=then)

    @classmethod
    def malformed_json(cls) -> Fault:
        """HTTP 200, ``application/json``, with a body that is not valid JSON.

        Example::

            server.push(Fault.malformed_json())
        """
        return cls("malformed_json")

    @classmethod
    def stream_cut(cls, after_chunks: int = 2, text: str = "this stream is cut off before its end") -> Fault:
        """Stream the first ``after_chunks`` words of ``text``, one per chunk, then drop the connection.

        Texts with too few words are cut between characters instead. A
        non-streaming request just sees the connection dropped.

        Example::

            Fault.stream_cut(after_chunks=1)
        """
        return cls("stream_cut", text=text, chunks=after_chunks)

    @classmethod
    def stall(
        cls, after_chunks: int = 1, seconds: float = 3600.0, text: str = "this stream stalls mid-answer"
    ) -> Fault:
        """Stream the first ``after_chunks`` words of ``text``, send nothing for ``seconds``, then the rest.

        The connection stays open during the stall (no keep-alive, no error):
        the stream a stuck provider sends. If the client closes the connection
        during the stall, :attr:`FaultServer.client_closes` counts it. A
        non-streaming request waits ``seconds`` before the whole answer.

        Example::

            Fault.stall(after_chunks=1, seconds=30.0)
        """
        if after_chunks < 0 or seconds < 0:
            raise ValueError(f"stall() needs after_chunks >= 0 and seconds >= 0, got {after_chunks}, {seconds}")
        return cls("stall", text=text, chunks=after_chunks, seconds=seconds)

    @classmethod
    def stream_unfinished(cls, text: str = "", *, chunks: int | None = None) -> Fault:
        """A stream that ends cleanly (``[DONE]``) without ever sending a ``finish_reason``.

        The opening role-only chunk is sent, then ``text`` (none by default:
        the stream ends before any content). litellm 1.110 raises
        ``MidStreamFallbackError`` ("Stream ended before a finish_reason was
        received") for it, with ``generated_content`` set to the text sent;
        older versions end the stream normally (an empty answer without
        text). A non-streaming request gets the message with
        ``"finish_reason": null``.

        Example::

            server.push(Fault.stream_unfinished(), Fault.ok("answer"))
        """
        return cls("stream_unfinished", text=text, chunks=chunks)

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None) -> Fault:
        """An assistant message calling function ``name`` with ``arguments``.

        A string is sent as it is, so it may be invalid JSON: google-adk 2.13's
        ``LiteLlm`` reports such a call as ``MALFORMED_FUNCTION_CALL``.

        Example::

            Fault.tool_call("get_weather", {"city": "Paris"}, call_id="call_1")
            Fault.tool_call("get_weather", '{"city": "Par')  # malformed arguments
        """
        encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = ToolCall(name=name, arguments=encoded, call_id=call_id)
        return cls("answer", finish_reason="tool_calls", tool=call)


def _header_number(value: float | str) -> str:
    # ``str(2.0)`` would send "2.0", which strict Retry-After parsers reject.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
