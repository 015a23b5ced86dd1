"""A real OpenAI-compatible chat server that answers from a script of faults.

:class:`FaultServer` listens on ``127.0.0.1`` in a background thread with its own
event loop, so sync scripts and async tests can both talk to it over real HTTP.
Each ``POST /v1/chat/completions`` consumes the next queued
:class:`~adk_retry.testing.faults.Fault`; once the queue is empty the ``default``
fault answers.

Example::

    with FaultServer(Fault.http_error(429, retry_after=1), Fault.ok("hi")) as server:
        litellm.completion(
            model="openai/fault-model", api_base=server.url, api_key="sk-test",
            messages=[{"role": "user", "content": "hello"}],
        )
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, NoReturn

from aiohttp import web

from adk_retry.testing.capacity import Capacity, CapacityGate, Decision, OutageWindow, Outcome, SlowFirstToken
from adk_retry.testing.faults import Fault, FaultKind

__all__ = ["FaultServer"]

_HOST = "127.0.0.1"
_DEFAULT_FAULT = Fault.ok("ok")
_DEFAULT_STREAM_CHUNKS = 4
# Bounds stop() if a connection somehow outlives the handler cancellation below.
_SHUTDOWN_TIMEOUT = 1.0
_START_TIMEOUT = 10.0

_Json = dict[str, Any]


class FaultServer:
    """Fault-injecting OpenAI-compatible chat server bound to ``127.0.0.1``.

    ``faults`` are answered in order, one per request; afterwards ``default``
    answers every request. Usable as a sync or async context manager.

    Attributes:
        default: the fault used once the queue is empty; may be reassigned live.
        model_name: the ``model`` reported in every answer.

    Example::

        async with FaultServer(*Fault.http_error(503).times(2)) as server:
            ...  # two calls to server.url fail with 503, later ones get "ok"
            assert server.pending == 0
    """

    def __init__(
        self,
        *faults: Fault,
        default: Fault = _DEFAULT_FAULT,
        model_name: str = "fault-model",
        capacity: Capacity | None = None,
        outage: OutageWindow | None = None,
        slow_first_token: SlowFirstToken | None = None,
    ) -> None:
        """Prepare a server; nothing listens until :meth:`start`.

        ``capacity``, ``outage`` and ``slow_first_token`` turn on the capacity
        modes (see :mod:`adk_retry.testing.capacity`); an ``outage`` given
        here counts its times from :meth:`start`.

        Example::

            server = FaultServer(Fault.ok("first"), default=Fault.ok("later"))
            limited = FaultServer(capacity=Capacity(rate=40, burst=5), outage=OutageWindow(0.0, 4.0))
        """
        (self.default,) = _checked((default,))
        if not isinstance(model_name, str) or not model_name:
            raise TypeError(f"FaultServer: model_name must be a non-empty string, got {model_name!r}")
        self.model_name = model_name
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque(_checked(faults))
        self._requests: list[_Json] = []
        self._headers: list[dict[str, str]] = []
        self._times: list[float] = []
        self._client_closes = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._port: int | None = None
        self._start_error: BaseException | None = None
        self._gate = CapacityGate()
        self._outcomes: list[Outcome] = []
        self._stalls = 0
        self._initial_outage = outage
        self._gate.set_capacity(capacity, now=time.monotonic())
        self._gate.set_slow_first_token(slow_first_token)

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FaultServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread.

        Example::

            server = FaultServer().start()
            try:
                print(server.url)
            finally:
                server.stop()
        """
        if self._thread is not None:
            raise RuntimeError("FaultServer is already running")
        ready = threading.Event()
        self._start_error = None
        thread = threading.Thread(target=self._run, args=(ready,), name="FaultServer", daemon=True)
        thread.start()
        if self._initial_outage is not None:
            self._gate.set_outage(self._initial_outage, now=time.monotonic())
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("FaultServer did not start in time")
        if self._start_error is not None:
            thread.join()
            raise RuntimeError("FaultServer failed to start") from self._start_error
        self._thread = thread
        return self

    def stop(self) -> None:
        """Cancel in-flight requests, close all sockets and join the thread.

        Safe to call more than once.

        Example::

            server.stop()
            server.stop()  # no-op
        """
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        # RuntimeError: the loop already ended on its own; joining is all that is left.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None
        self._loop = None
        self._stopping = None

    def __enter__(self) -> FaultServer:
        """Start the server: ``with FaultServer() as server: ...``."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server, even when the block raised."""
        self.stop()

    async def __aenter__(self) -> FaultServer:
        """Start the server without blocking the caller's event loop."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server without blocking the caller's event loop."""
        await asyncio.to_thread(self.stop)

    # -- public state ------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (raises if not started).

        Example::

            assert 0 < server.port < 65536
        """
        if self._port is None:
            raise RuntimeError("FaultServer is not started")
        return self._port

    @property
    def url(self) -> str:
        """The ``api_base`` for litellm / the OpenAI SDK.

        Example::

            litellm.completion(model="openai/fault-model", api_base=server.url, ...)
        """
        return f"http://{_HOST}:{self.port}/v1"

    def push(self, *faults: Fault) -> None:
        """Queue ``faults`` after those already waiting.

        Example::

            server.push(*Fault.http_error(503).times(2), Fault.ok("back"))
        """
        checked = _checked(faults)
        with self._lock:
            self._queue.extend(checked)

    def clear(self) -> None:
        """Forget queued faults and every recorded request.

        Example::

            server.clear()
            assert server.pending == 0 and server.requests == []
        """
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._headers.clear()
            self._times.clear()
            self._client_closes = 0
            self._outcomes.clear()
            self._stalls = 0

    @property
    def pending(self) -> int:
        """How many queued faults have not been used yet.

        Example::

            assert server.pending == 0  # the script was fully consumed
        """
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[_Json]:
        """JSON bodies of all chat requests received, oldest first (a copy).

        Example::

            assert server.requests[-1]["messages"][-1]["content"] == "hello"
        """
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Headers of each request (lower-case names), aligned with :attr:`requests`.

        Example::

            assert server.request_headers[0]["authorization"] == "Bearer sk-test"
        """
        with self._lock:
            return [dict(h) for h in self._headers]

    @property
    def request_times(self) -> list[float]:
        """``time.monotonic()`` at each request's arrival, aligned with :attr:`requests`.

        Example::

            gap = server.request_times[1] - server.request_times[0]
        """
        with self._lock:
            return list(self._times)

    @property
    def client_closes(self) -> int:
        """How many :meth:`Fault.stall` answers the client ended by closing the connection mid-stall.

        Example::

            assert server.client_closes == 1  # the caller gave up and hung up
        """
        with self._lock:
            return self._client_closes

    def _client_closed(self) -> None:
        with self._lock:
            self._client_closes += 1

    # -- capacity modes (see adk_retry.testing.capacity) ---------------------

    def capacity(self, rate: float | None, burst: int = 1, *, tokens_per_minute: float | None = None) -> None:
        """Admit ``rate`` requests per second, ``burst`` at once; 429 with hints beyond. None: unlimited.

        The bucket starts full now. A 429 carries ``Retry-After`` (whole
        seconds, rounded up), ``retry-after-ms`` and ``x-ratelimit-*``
        headers; admitted answers carry ``x-ratelimit-*`` too.

        Example::

            server.capacity(rate=40, burst=5)
            server.capacity(rate=10, burst=10, tokens_per_minute=30_000)
            server.capacity(None)   # unlimited again
        """
        chosen = None if rate is None else Capacity(rate, burst, tokens_per_minute)
        self._gate.set_capacity(chosen, now=time.monotonic())

    def outage(
        self, start: float = 0.0, end: float | None = None, *, status: int = 503, retry_after: float | None = None
    ) -> None:
        """Fail every request with ``status`` from ``start`` to ``end`` seconds from now (None: until :meth:`recover`).

        Requests in the window consume no scripted fault and no capacity.

        Example::

            server.outage(0.0, 4.0)     # 503 for the next 4 s, then healthy
            server.outage()             # down now ...
            server.recover()            # ... and up again
        """
        self._gate.set_outage(OutageWindow(start, end, status, retry_after), now=time.monotonic())

    def recover(self) -> None:
        """End the outage now (one that has not begun is cancelled).

        Example::

            server.outage()
            server.recover()
            assert server.outage_times is not None  # the past window, for measuring recovery
        """
        self._gate.end_outage(now=time.monotonic())

    @property
    def outage_times(self) -> tuple[float, float | None] | None:
        """The outage window as ``time.monotonic()`` values ``(start, end)``; None without one.

        Example::

            start, end = server.outage_times
        """
        return self._gate.outage_times()

    def slow_first_token(self, p: float, seconds: float, *, seed: int = 0) -> None:
        """Stall a seeded fraction ``p`` of admitted requests ``seconds`` before their answer starts.

        For a stream the stall comes before the response and its first chunk.
        ``p=0`` turns it off.

        Example::

            server.slow_first_token(p=0.1, seconds=2.0, seed=7)
        """
        self._gate.set_slow_first_token(SlowFirstToken(p, seconds, seed))

    @property
    def request_outcomes(self) -> list[Outcome]:
        """What the capacity modes decided for each request, aligned with :attr:`requests`.

        Example::

            assert server.request_outcomes.count("rate_limited") == server.rate_limited
        """
        with self._lock:
            return list(self._outcomes)

    @property
    def admitted(self) -> int:
        """Requests the capacity modes let through to the script (all of them when none is on)."""
        with self._lock:
            return self._outcomes.count("admitted")

    @property
    def rate_limited(self) -> int:
        """Requests answered 429 by :meth:`capacity` (not those a scripted fault answered 429)."""
        with self._lock:
            return self._outcomes.count("rate_limited")

    @property
    def unavailable(self) -> int:
        """Requests answered by the outage window (503 unless told otherwise)."""
        with self._lock:
            return self._outcomes.count("unavailable")

    @property
    def stalled(self) -> int:
        """Admitted requests that :meth:`slow_first_token` stalled."""
        with self._lock:
            return self._stalls

    @property
    def cpu_seconds(self) -> float:
        """CPU time the server's own thread has used; NaN where threads have no CPU clock.

        The server shares its process with the client under test, so a
        benchmark subtracts this from ``time.process_time()`` to get the
        client's share.

        Example::

            before = time.process_time() - server.cpu_seconds
        """
        thread = self._thread
        if thread is None or thread.ident is None:
            raise RuntimeError("FaultServer is not started")
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (AttributeError, OSError):  # no per-thread CPU clock on this platform
            return math.nan

    # -- server thread -----------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:  # handed to start(), which re-raises it
            self._start_error = exc
        finally:
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/chat/completions", self._handle)
        app.on_response_prepare.append(_add_capacity_headers)
        # handler_cancellation lets a client disconnect end a delayed handler.
        runner = web.AppRunner(
            app,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            access_log=None,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, _HOST, 0).start()
            self._port = int(runner.addresses[0][1])
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            ready.set()
            await self._stopping.wait()
            # Otherwise runner.cleanup() waits for delayed handlers to finish.
            for task in list(self._inflight):
                task.cancel()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return web.json_response(_error_body(400, "request body must be a JSON object"), status=400)
            with self._lock:
                self._requests.append(body)
                self._headers.append({k.lower(): v for k, v in request.headers.items()})
                self._times.append(now := time.monotonic())
                decision = self._gate.decide(now, tokens=_request_tokens(body) if self._gate.counts_tokens else 0.0)
                self._outcomes.append(decision.outcome)
                self._stalls += decision.stall > 0
                admitted = decision.outcome == "admitted"
                fault = (self._queue.popleft() if self._queue else self.default) if admitted else None
            if fault is None:
                return _rejection(decision)
            return await self._admit(request, body, fault, decision)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _admit(self, request: web.Request, body: _Json, fault: Fault, decision: Decision) -> web.StreamResponse:
        """Answer an admitted request after its stall, if any, with the capacity headers on it."""
        if decision.headers:
            request[_CAPACITY_HEADERS] = decision.headers
        if decision.stall:
            await asyncio.sleep(decision.stall)
        return await self._answer(request, body, fault)

    async def _answer(self, request: web.Request, body: _Json, fault: Fault) -> web.StreamResponse:
        if fault.kind == "reply":
            assert fault.fn is not None
            (chosen,) = _checked((fault.fn(body),))
            return await self._answer(request, body, chosen)
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return await self._answer(request, body, fault.then or _DEFAULT_FAULT)
        call = _Call(
            request=request, body=body, fault=fault, model=self.model_name, on_client_close=self._client_closed
        )
        return await _ANSWERS[fault.kind](call)


# -- one helper per answer kind -----------------------------------------------


@dataclass
class _Call:
    """One request being answered, with the ids shared by all its chunks."""

    request: web.Request
    body: _Json
    fault: Fault
    model: str
    on_client_close: Callable[[], None] = lambda: None
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    async def stall(self, seconds: float) -> None:
        """Send nothing for ``seconds``; report a client that hangs up meanwhile."""
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client disconnects (the
            # transport is gone or closing then) and when the server stops (it is not).
            transport = self.request.transport
            if transport is None or transport.is_closing():
                self.on_client_close()
            raise

    @property
    def streaming(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and bool(options.get("include_usage"))

    def completion(self, choices: list[_Json], output: str = "") -> _Json:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(output),
        }

    def chunk(self, choices: list[_Json], usage: _Json | None = None) -> _Json:
        data: _Json = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            data["usage"] = usage
        return data

    def delta(self, delta: _Json, finish_reason: str | None = None) -> _Json:
        return self.chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def usage(self, output: str) -> _Json:
        prompt = _tokens(json.dumps(self.body.get("messages", [])))
        completion = _tokens(output)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


async def _answer_message(call: _Call) -> web.StreamResponse:
    fault, tool = call.fault, call.fault.tool
    output = tool.arguments if tool is not None else fault.text or ""
    if not call.streaming:
        message: _Json = {"role": "assistant", "content": fault.text}
        if tool is not None:
            message["tool_calls"] = [_tool_call_json(tool.name, tool.arguments, tool.call_id)]
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": fault.finish_reason,
        }
        return web.json_response(call.completion([choice], output))

    events: list[_Json]
    if tool is None:
        first: _Json = {"role": "assistant", "content": "" if fault.text is not None else None}
        events = [call.delta(first)]
        events += [call.delta({"content": part}) for part in _split(output, fault.chunks)]
    else:
        # Like OpenAI: the first delta names the call, later ones extend its arguments.
        opening = _tool_call_json(tool.name, "", tool.call_id)
        events = [call.delta({"role": "assistant", "content": None, "tool_calls": [opening]})]
        events += [
            call.delta({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
            for part in _split(output, fault.chunks)
        ]
    events.append(call.delta({}, finish_reason=fault.finish_reason))
    if call.include_usage:
        events.append(call.chunk([], usage=call.usage(output)))
    return await _send_stream(call.request, events)


async def _answer_empty_choices(call: _Call) -> web.StreamResponse:
    if call.streaming:
        return await _send_stream(call.request, [call.chunk([], usage=call.usage(""))])
    return web.json_response(call.completion([]))


async def _answer_null_message(call: _Call) -> web.StreamResponse:
    if call.streaming:
        return await _answer_empty_choices(call)
    choice = {"index": 0, "message": None, "logprobs": None, "finish_reason": "stop"}
    return web.json_response(call.completion([choice]))


async def _answer_http_error(call: _Call) -> web.StreamResponse:
    fault = call.fault
    message = fault.message or f"fault-injected HTTP {fault.status}"
    return web.json_response(_error_body(fault.status, message), status=fault.status, headers=dict(fault.headers))


async def _answer_close_connection(call: _Call) -> web.StreamResponse:
    _drop_connection(call.request)


async def _answer_malformed_json(call: _Call) -> web.StreamResponse:
    if call.streaming:
        # The OpenAI SDK skips a non-SSE body on a stream request without error,
        # so a stream gets its breakage inside an event instead.
        return await _send_stream(call.request, [_BROKEN_JSON])
    return web.Response(body=_BROKEN_JSON, content_type="application/json")


async def _answer_stream_cut(call: _Call) -> web.StreamResponse:
    if not call.streaming:
        _drop_connection(call.request)
    text, sent = call.fault.text or "", call.fault.chunks or 0
    # One word per chunk, so the cut falls at a predictable place in the text.
    parts = _split(text, max(sent + 1, len(_WORD_BOUNDARY.split(text))))[:sent]
    events = [call.delta({"role": "assistant", "content": ""})]
    events += [call.delta({"content": part}) for part in parts]
    await _send_stream(call.request, events, finish=False)
    _drop_connection(call.request)


async def _answer_stall(call: _Call) -> web.StreamResponse:
    fault = call.fault
    text, sent = fault.text or "", fault.chunks or 0
    if not call.streaming:
        await call.stall(fault.seconds)
        return await _answer_message(replace(call, fault=Fault.ok(text)))
    # One word per chunk, as for stream_cut, so the stall falls at a predictable place.
    parts = _split(text, max(sent + 1, len(_WORD_BOUNDARY.split(text))))
    events = [call.delta({"role": "assistant", "content": ""})]
    events += [call.delta({"content": part}) for part in parts[:sent]]
    response = await _send_stream(call.request, events, finish=False)
    await call.stall(fault.seconds)
    rest = [call.delta({"content": part}) for part in parts[sent:]]
    return await _send_stream(call.request, [*rest, call.delta({}, finish_reason="stop")], response=response)


async def _answer_stream_unfinished(call: _Call) -> web.StreamResponse:
    text = call.fault.text or ""
    if not call.streaming:
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "logprobs": None,
            "finish_reason": None,
        }
        return web.json_response(call.completion([choice], text))
    # The opening role-only delta every provider sends, then the content, then
    # [DONE] and a clean end; no chunk ever carries a finish_reason.
    events = [call.delta({"role": "assistant", "content": ""})]
    events += [call.delta({"content": part}) for part in _split(text, call.fault.chunks)]
    return await _send_stream(call.request, events)


def _rejection(decision: Decision) -> web.StreamResponse:
    """The 429 or outage error of a request the capacity modes turned away."""
    return web.json_response(
        _error_body(decision.status, decision.message), status=decision.status, headers=dict(decision.headers)
    )


# aiohttp 3.12+ warns on plain string keys in a request's storage (NotAppKeyWarning); 3.9-3.11
# (google-adk 2.3's stack) have no RequestKey.
_CAPACITY_HEADERS: Any = (
    web.RequestKey("adk_retry_capacity_headers", tuple) if hasattr(web, "RequestKey") else "adk_retry_capacity_headers"
)


async def _add_capacity_headers(request: web.Request, response: web.StreamResponse) -> None:
    # A signal, so that every answer kind (plain, stream, error) gets them without knowing.
    for name, value in request.get(_CAPACITY_HEADERS, ()):
        response.headers.setdefault(name, value)


def _request_tokens(body: _Json) -> float:
    """The tokens a capacity's tokens-per-minute limit charges: the prompt's estimate plus ``max_tokens``."""
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    extra = limit if isinstance(limit, int) and not isinstance(limit, bool) else 0
    return _tokens(json.dumps(body.get("messages", []))) + extra


_BROKEN_JSON = b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "mess'

_ANSWERS: dict[FaultKind, Callable[[_Call], Awaitable[web.StreamResponse]]] = {
    "answer": _answer_message,
    "empty_choices": _answer_empty_choices,
    "null_message": _answer_null_message,
    "http_error": _answer_http_error,
    "close_connection": _answer_close_connection,
    "malformed_json": _answer_malformed_json,
    "stream_cut": _answer_stream_cut,
    "stall": _answer_stall,
    "stream_unfinished": _answer_stream_unfinished,
}


# -- wire helpers -----------------------------------------------------------------


async def _send_stream(
    request: web.Request,
    events: Iterable[_Json | bytes],
    *,
    finish: bool = True,
    response: web.StreamResponse | None = None,
) -> web.StreamResponse:
    """Write ``events`` as SSE ``data:`` lines; bytes are sent as they are.

    ``response``: a stream already started (by an earlier, unfinished call), to continue.
    """
    if response is None:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
    for event in events:
        data = event if isinstance(event, bytes) else json.dumps(event).encode()
        await response.write(b"data: " + data + b"\n\n")
    if finish:
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
    return response


def _drop_connection(request: web.Request) -> NoReturn:
    if request.transport is not None:
        # close(), not abort(): chunks already written must still reach the client.
        request.transport.close()
    # aiohttp treats a cancelled handler as a client disconnect: no response is
    # written and nothing is logged as an error.
    raise asyncio.CancelledError


def _checked(faults: tuple[Fault, ...]) -> tuple[Fault, ...]:
    for fault in faults:
        if not isinstance(fault, Fault):
            # Catches push(fault.times(3)), which needs a star: push(*fault.times(3)).
            raise TypeError(f"expected Fault, got {type(fault).__name__}: {fault!r}")
    return faults


def _tool_call_json(name: str, arguments: str, call_id: str | None) -> _Json:
    return {
        "index": 0,
        "id": call_id or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _error_body(status: int, message: str) -> _Json:
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    kind, code = _ERROR_KINDS.get(status, default)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _tokens(text: str) -> int:
    # The usual ~4 characters per token estimate; only needs to be plausible.
    return math.ceil(len(text) / 4)


_WORD_BOUNDARY = re.compile(r"(?<=\s)(?=\S)")


def _split(text: str, chunks: int | None) -> list[str]:
    """Cut ``text`` into pieces that join back to it.

    ``None`` gives up to four word pieces; a number gives that many pieces, on
    word boundaries when there are enough words, else on characters.
    """
    if not text:
        return []
    words = _WORD_BOUNDARY.split(text)
    if chunks is None:
        chunks = min(_DEFAULT_STREAM_CHUNKS, len(words))
    units = words if len(words) >= chunks else list(text)
    count = max(1, min(chunks, len(units)))
    size, extra = divmod(len(units), count)
    pieces, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append("".join(units[start:end]))
        start = end
    return pieces
