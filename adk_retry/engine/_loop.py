"""The one attempt loop, and :class:`RetryHandler`, which runs it.

Why one loop: a model's ``generate_content_async`` is an async generator, a
plain ``await handler(fn)`` is a coroutine, and two loops with the same
skeleton drift apart. :func:`run_attempts` drives an async generator per
attempt; a coroutine is the one-response generator :func:`_awaited` makes of
it. The loop is written by hand rather than on tenacity: tenacity costs
~17 µs a call, and none of the retry libraries understands an async
generator that must never splice two attempts' output.

Around each failure the loop's per-call object, :class:`RetryCall`, reads the
failure once (:meth:`Plan.failure <adk_retry.core._plan.Plan.failure>`),
asks the breaker (store I/O), asks the pure :func:`~adk_retry.core._decide.decide`,
spends a budget token if a retry was allowed (store I/O), then logs, counts
and emits the event. The success path of a call without guards touches a few
counters and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from adk_retry.core import _clock as clock
from adk_retry.core._breaker import circuit_wait, probe_interval, wait_limit
from adk_retry.core._checks import require_timing
from adk_retry.core._decide import Failure, FallBack, GiveUp, decide
from adk_retry.core._errors import CircuitOpenError, RateLimitedError
from adk_retry.core._events import EventKind, RetryEvent, global_hooks
from adk_retry.core._hints import retry_after
from adk_retry.core._plan import Keys
from adk_retry.core._policy import PolicyLike, as_policy
from adk_retry.core._rules import ErrorRule, RecoveryContext
from adk_retry.core._transient import CIRCUIT_OPEN, FALLBACK_ONLY_CLASSES, RATE_LIMIT, error_class
from adk_retry.guards import _limiter
from adk_retry.guards._adaptive import failure_rates
from adk_retry.guards._failopen import fail_open
from adk_retry.guards._store import CircuitView, StateStore, default_store
from adk_retry.observability._log import describe, emit, logger
from adk_retry.observability._otel import instrument_on_first_use
from adk_retry.observability._stats import RetryStats
from adk_retry.observability._views import live_handlers

__all__ = ["AttemptObserver", "RetryCall", "RetryHandler", "log_success", "run_attempts"]

T = TypeVar("T")

# The last failure that counted against each circuit, in this process: it
# becomes the __cause__ of the CircuitOpenError that open circuit raises.
_circuit_causes: dict[str, BaseException] = {}


class _Wakeups:
    """Per circuit key and event loop, an event that wakes the calls waiting for that circuit.

    Set when a call in this process learns the circuit's fate (a probe that
    succeeded or failed, any success that closed it, a probe given up), so
    its waiters go, or recompute, at once instead of at their next poll.
    Waiters in other processes poll the store at the probe schedule. An
    event belongs to one loop: other loops' events are set through
    ``call_soon_threadsafe`` (ADK's sync ``Runner.run()`` runs a loop per thread).
    """

    def __init__(self) -> None:
        self._events: dict[str, dict[asyncio.AbstractEventLoop, asyncio.Event]] = {}
        self._lock = threading.Lock()

    async def wait(self, key: str, seconds: float) -> None:
        """Wait until ``key`` is woken or ``seconds`` pass (a cancellation propagates)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            per_loop = self._events.setdefault(key, {})
            event = per_loop.get(loop)
            if event is None:
                for closed in [other for other in per_loop if other.is_closed()]:
                    del per_loop[closed]
                event = per_loop[loop] = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await event.wait()
        except TimeoutError:
            pass

    def wake(self, key: str) -> None:
        """Wake every call waiting for ``key``, on every loop."""
        with self._lock:
            per_loop = self._events.pop(key, None)
        if not per_loop:
            return
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, event in per_loop.items():
            if loop is current:
                event.set()
            elif not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed meanwhile: nobody waits there any more
                    loop.call_soon_threadsafe(event.set)


_wakeups = _Wakeups()


class AttemptObserver(Protocol):
    """Whoever wants to see a call's attempt count as it runs (the adapter's per-call state).

    It may also have a ``log_ids()`` method returning the ids to put on the
    call's log records (ADK's ``invocation_id`` and ``session_id``); asked only
    when a record is written.
    """

    attempts: int
    model: str | None


def call_ids(observer: AttemptObserver) -> dict[str, Any]:
    """The ids ``observer`` offers for log records (its ``log_ids()``); none if it offers none or fails."""
    log_ids = getattr(observer, "log_ids", None)
    if log_ids is None:
        return {}
    try:
        ids: dict[str, Any] = log_ids()
    except Exception:  # a record's decoration must not replace the call's own failure
        return {}
    return ids


class RetryHandler:
    """Runs model calls under a :class:`~adk_retry.RetryPolicy` and counts what happens.

    ``await handler(model_call)`` calls the no-argument coroutine function
    ``model_call`` until it returns, retrying the failures the policy's
    ``retry_on`` accepts. When attempts run out, or a failure is not
    retriable, the original exception object propagates unchanged.
    Cancellation, ``KeyboardInterrupt`` and ``SystemExit`` are never retried,
    and a cancellation during a backoff sleep ends the call at once.

    Args:
        policy: the policy; ``RetryPolicy()`` (the seed's defaults) if None. A
            preset name or a dict of fields works too (see :meth:`RetryPolicy.of <adk_retry.RetryPolicy>`).
        agent_name: the name put in log lines.
        sleep: awaited with each delay (default ``asyncio.sleep``).
        clock: a monotonic clock for deadlines (default ``time.monotonic``).
        random: uniform numbers in [0, 1) for jitter (default ``random.random``).
        wall_clock: seconds since the epoch, for breaker state shared across
            processes (default ``time.time``).

    Example:
        >>> import asyncio
        >>> from adk_retry import RetryPolicy
        >>> delays = []
        >>> async def fake_sleep(seconds): delays.append(seconds)
        >>> handler = RetryHandler(RetryPolicy(jitter=0), sleep=fake_sleep)
        >>> answers = iter([ValueError("No message in response"), "hello"])
        >>> async def model_call():
        ...     answer = next(answers)
        ...     if isinstance(answer, Exception):
        ...         raise answer
        ...     return answer
        >>> asyncio.run(handler(model_call)), delays, handler.stats.retries
        ('hello', [1.0], 1)
    """

    __slots__ = ("__weakref__", "agent_name", "clock", "plan", "policy", "random", "sleep", "stats", "wall_clock")

    def __init__(
        self,
        policy: PolicyLike = None,
        *,
        agent_name: str = "agent",
        sleep: clock.Sleep | None = None,
        clock: clock.Clock | None = None,
        random: clock.Random | None = None,
        wall_clock: clock.Clock | None = None,
    ) -> None:
        # Checked here, not at the first retry, where a mistake would replace the call's own error.
        if not isinstance(agent_name, str):
            raise TypeError(f"RetryHandler: agent_name must be a string, got {type(agent_name).__name__}")
        require_timing("RetryHandler", sleep=sleep, clock=clock, random=random, wall_clock=wall_clock)
        self.policy = policy = as_policy(policy, owner="RetryHandler")
        self.plan = policy.plan
        self.agent_name = agent_name
        self.sleep = sleep
        self.clock = clock
        self.random = random
        self.wall_clock = wall_clock
        self.stats = RetryStats()
        live_handlers.add(self)
        instrument_on_first_use()

    def __repr__(self) -> str:
        return f"RetryHandler(agent_name={self.agent_name!r}, max_retries={self.policy.max_retries})"

    def begin(
        self,
        agent_name: str | None = None,
        model: str | None = None,
        model_stats: RetryStats | None = None,
        observer: AttemptObserver | None = None,
    ) -> RetryCall:
        """Start the bookkeeping of one call; :func:`run_attempts` then runs it.

        ``model_stats``, when given, also receives the call's outcome (the
        per-model view a wrapped model keeps); ``observer`` sees the attempt
        count as it grows.
        """
        return RetryCall(self, agent_name or self.agent_name, model, model_stats, observer)

    async def __call__(self, model_call: Callable[[], Awaitable[T]]) -> T:
        """Run ``model_call`` with retries and return its result."""
        results: list[T] = [result async for result in run_attempts(self.begin(), _awaited, (model_call,), True)]
        return results[0]


async def _awaited(model_call: Callable[[], Awaitable[T]]) -> AsyncGenerator[T, None]:
    """A coroutine function's one result, as a one-response attempt."""
    yield await model_call()


async def run_attempts(
    call: RetryCall,
    start: Callable[..., AsyncGenerator[T, None]],
    args: tuple[Any, ...],
    hold_all: bool,
    log: bool = True,
    models: Callable[[int, bool], AsyncGenerator[T, None]] | None = None,
    switch: Callable[[int], Awaitable[None]] | None = None,
) -> AsyncGenerator[T, None]:
    """Run ``call``'s attempts, each ``start(*args)``, until one answers; yield its responses.

    Args:
        call: the call's bookkeeping, from :meth:`RetryHandler.begin` (or a
            subclass: the adapter's knows what an empty answer is
            (:attr:`RetryCall.is_empty`), restores the request in
            :meth:`RetryCall.between`).
        start: starts one attempt: an async generator of responses.
        args: what ``start`` is called with (a tuple, not a ``functools.partial``
            made for every call: the model's own method and its arguments).
        hold_all: hold each attempt's responses until it ended well
            (non-streaming calls, ``stream_mode="buffer"``); otherwise
            responses pass through as they come, and a failure after the
            first one propagates (two attempts are never spliced).
        log: write the "succeeded on attempt N" line here (the adapter's
            after-model callback writes it instead when it watches the call).
        models: ``models(i, isolated)`` starts one attempt on model ``i`` of
            the call's chain (``call.chain``: 0 the primary, then the policy's
            ``fallbacks``); ``isolated`` asks for a private copy of the request
            (a hedge runs beside another attempt). Without it every attempt,
            hedges included, is ``start(*args)``.
        switch: awaited before the first attempt on model ``i`` > 0 (the
            adapter restores the request and points its ``model`` field there).

    The call's current model is ``call.index``: :meth:`RetryCall.failed` (a
    :class:`~adk_retry.core._decide.FallBack` decision) and
    :meth:`RetryCall.admit` (an open circuit) move it; the loop notices and
    starts the next attempts there, with no backoff wait. One loop for one
    model or many.
    """
    plan = call.plan
    # What the call's class says about responses: read once, not per response.
    is_empty = call.is_empty
    current = 0
    if plan.guarded:
        await call.admit()
    while True:
        if call.index != current:
            # Moved to another model (a fallback, or a hedge on it that won).
            current = call.index
            assert models is not None
            if switch is not None:
                await switch(current)
            start, args = models, (current, False)
        held: list[T] = []
        committed = False
        if plan.shaped:
            if plan.rate_limited:
                await call.take_admission()
            responses = start(*args)
            if plan.hedged:
                again = models if models is not None else _again(start, args)
                responses = _hedged(call, responses, again, is_empty)
            source = responses if not plan.limited else _bounded(responses, call, hold_all, is_empty)
        else:
            source = responses = start(*args)
        try:
            async for response in source:
                if hold_all or (not committed and is_empty is not None and is_empty(response)):
                    held.append(response)
                    continue
                committed = True
                if held:
                    for earlier in held:
                        yield earlier
                    held.clear()
                yield response
        except BaseException as exc:
            # Close the attempt, and so its HTTP connection, on every way out but
            # exhaustion (an error, a timeout, our consumer closing us mid-stream).
            try:
                if source is not responses:
                    await source.aclose()
                await responses.aclose()
            finally:
                # Even when closing raised: else the concurrency slot is held until its lease runs out.
                if plan.rate_limited:
                    await call.end_attempt(exc)
            if committed:
                await call.interrupted(exc)
                raise
            at = call.index  # a hedge that won on the next model may have moved the call already
            delay = await call.failed(exc)
            if delay is None:
                raise
        else:
            if plan.rate_limited:
                await call.end_attempt(None)
            # An attempt is an answer as soon as one response carries something: a
            # stream may end with empty bookkeeping responses after its text.
            error = None
            if is_empty is not None and not committed:
                for response in held:
                    if not is_empty(response):
                        break
                else:
                    candidate = call.empty_error(held[-1] if held else None)
                    if plan.retriable(candidate):
                        error = candidate
            if error is None:
                if call.attempt == 1 and not plan.chained:
                    # The common case, what call.succeeded() does for one attempt, inline:
                    # a Python call less on every answered call.
                    call.handler.stats.successes += 1
                    model_stats = call.model_stats
                    if model_stats is not None:
                        model_stats.calls += 1
                        model_stats.attempts += 1
                        model_stats.successes += 1
                else:
                    call.succeeded(log)
                if plan.guarded:
                    await call.settle_success()
                for response in held:
                    yield response
                return
            at = call.index
            delay = await call.failed(error)
            if delay is None:
                raise error
        if call.index == at:
            # Not moved by this failure (a fallback goes to its next model with no wait): back off.
            await call.wait(delay)
            await call.between()
        call.start_attempt()


def _again(
    start: Callable[..., AsyncGenerator[T, None]], args: tuple[Any, ...]
) -> Callable[[int, bool], AsyncGenerator[T, None]]:
    """One model, no chain: a hedge is ``start(*args)`` once more."""
    return lambda _index, _isolated: start(*args)


async def _head(responses: AsyncGenerator[T, None], is_empty: Callable[[T], bool] | None) -> tuple[list[T], bool]:
    """Drive ``responses`` until its first response with content; (what came, whether content came)."""
    early: list[T] = []
    async for response in responses:
        early.append(response)
        if is_empty is None or not is_empty(response):
            return early, True
    return early, False


async def _hedged(
    call: RetryCall,
    first: AsyncGenerator[T, None],
    again: Callable[[int, bool], AsyncGenerator[T, None]],
    is_empty: Callable[[T], bool] | None,
) -> AsyncGenerator[T, None]:
    """``first``, with a hedge attempt started beside it each ``hedge_after`` seconds it says nothing.

    Each attempt is driven to its first response with content in a task of
    its own; the first to get there wins and only its responses are yielded;
    the others are cancelled at once, so two answers never reach the caller,
    and closed (their HTTP connections with them) right after the winner's
    first response was yielded. While every attempt is
    still silent, another hedge starts ``hedge_after`` after the previous
    one, up to ``max_hedges`` (gRPC's hedging: one each ``hedgingDelay``).
    An attempt that fails or ends with nothing to say leaves the field to
    the others; when all do, the last failure (or an empty attempt) is the
    attempt's outcome, which the loop then judges as it would one attempt's.
    A cancellation of the caller cancels and closes them all. A hedge runs
    on the next model of the chain when there is one (on a private copy of
    the request), else on the same one; :meth:`RetryCall.hedge` says whether
    it may be made (attempts left, budget, limiter) and hands it its
    limiter ticket, which goes back when it loses (:meth:`RetryCall.hedge_settled`).

    Each model's generator is advanced from a task until its first content,
    then from the caller's task: an async generator may be resumed from any
    task, one at a time.
    """
    plan = call.plan
    after = plan.hedge_after
    assert after is not None
    learnt = None
    if plan.hedge_quantile is not None:
        learnt = plan.hedge_delays.get(call.model)
        if learnt is None:
            learnt = plan.hedge_delays[call.model] = _Latencies(plan.hedge_quantile)
        after = learnt.delay(after)
    loop = asyncio.get_running_loop()
    runs: list[_Run[T]] = []
    winner: AsyncGenerator[T, None] | None = None
    early: list[T] = []
    error: BaseException | None = None
    chosen: _Run[T] | None = None
    try:
        runs.append(_Run(asyncio.ensure_future(_head(first, is_empty)), first, call.index, None, loop.time()))
        pending = {runs[0].task}
        hedges = 0
        next_hedge = loop.time() + after
        spare: _Run[T] | None = None
        while chosen is None:
            if not pending:
                if spare is None:
                    assert error is not None
                    raise error
                chosen = spare
                break
            wait = max(0.0, next_hedge - loop.time()) if hedges < plan.max_hedges else None
            done, pending = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                made = await call.hedge(after)
                if made is None:
                    hedges = plan.max_hedges  # refused (attempts, budget, limiter): no more hedges
                    continue
                target, ticket = made
                try:
                    second = again(target, True)
                except Exception:
                    # A hedge is an extra: one that cannot be built (its request copied, its model
                    # resolved) must not fail a call whose first attempt may still answer.
                    await call.hedge_unsent(target, ticket)
                    hedges = plan.max_hedges
                    continue
                runs.append(_Run(asyncio.ensure_future(_head(second, is_empty)), second, target, ticket, loop.time()))
                pending.add(runs[-1].task)
                hedges += 1
                next_hedge = loop.time() + after
                continue
            for run in runs:  # in order: the first attempt wins a tie
                if run.task not in done:
                    continue
                exc = run.task.exception()
                if exc is not None:
                    run.error = exc
                    error = exc
                    continue
                got, content = run.task.result()
                if content:
                    chosen = run
                    chosen.early = got
                    if learnt is not None and run.index == runs[0].index:
                        learnt.add(loop.time() - run.started)
                    break
                if spare is None:
                    spare = run
                    spare.early = got
        early, winner = chosen.early, chosen.responses
        for run in runs:
            if run is not chosen:
                run.task.cancel()  # at once: a loser can never reach the caller (only the winner is read)
    except BaseException:
        await _close_losers(runs, None)
        if len(runs) > 1:
            await call.hedge_settled(runs, chosen, error)
        raise
    # The losers are closed (their connections with them) after the winner's first response
    # reached the caller, not before: closing a cancelled litellm stream took 50-140 ms of a
    # busy event loop (measured in bench/overload.py's tail scenario), all of it added to the
    # hedge's time to first chunk when it came first.
    settled = len(runs) == 1
    try:
        if not early and not settled:  # an empty attempt won by default: nothing to hurry for
            settled = True
            await _settle(call, runs, chosen, error)
        for response in early:
            yield response
            if not settled:
                settled = True
                await _settle(call, runs, chosen, error)
        async for response in winner:
            yield response
    finally:
        try:
            if not settled:
                await _settle(call, runs, chosen, error)
        finally:
            await winner.aclose()


async def _settle(call: RetryCall, runs: list[_Run[Any]], chosen: _Run[Any], error: BaseException | None) -> None:
    """Close a hedged attempt's losers, then settle its hedges (:meth:`RetryCall.hedge_settled`)."""
    await _close_losers(runs, chosen.responses)
    await call.hedge_settled(runs, chosen, error)


class _Run(Generic[T]):
    """One attempt of a hedged attempt: its task (to the first content), its responses, its model, its ticket."""

    __slots__ = ("closed", "early", "error", "index", "responses", "started", "task", "ticket")

    def __init__(
        self,
        task: asyncio.Task[tuple[list[T], bool]],
        responses: AsyncGenerator[T, None],
        index: int,
        ticket: tuple[str, _limiter.Ticket] | None,
        started: float,
    ) -> None:
        self.started = started
        self.task = task
        self.responses = responses
        self.index = index
        self.ticket = ticket  # a hedge's limiter ticket, with its scope's key (the first attempt's is the call's)
        self.early: list[T] = []
        self.error: BaseException | None = None
        self.closed = False


class _Latencies:
    """The latest times to first content of one model's attempts that answered (``hedge_quantile``).

    A ring of :attr:`SIZE`; the quantile is re-sorted every :attr:`EVERY`
    answers, not per call. Process-local: it follows this client's load too.
    """

    SIZE, WARM, EVERY = 200, 20, 10
    __slots__ = ("count", "quantile", "seen", "value", "window")

    def __init__(self, quantile: float) -> None:
        self.quantile = quantile
        self.window: list[float] = []
        self.count = 0
        self.seen = 0
        self.value: float | None = None

    def add(self, seconds: float) -> None:
        if len(self.window) < self.SIZE:
            self.window.append(seconds)
        else:
            self.window[self.count % self.SIZE] = seconds
        self.count += 1
        if len(self.window) >= self.WARM and self.count % self.EVERY == 0:
            ordered = sorted(self.window)
            self.value = ordered[min(len(ordered) - 1, max(0, math.ceil(self.quantile * len(ordered)) - 1))]

    def delay(self, default: float) -> float:
        """The learnt quantile, or ``default`` until enough attempts answered."""
        return default if self.value is None else self.value


async def _close_losers(runs: list[_Run[Any]], winner: AsyncGenerator[Any, None] | None) -> None:
    """Cancel and close every attempt but ``winner`` (all of them when it is None)."""
    for run in runs:
        if run.responses is winner or run.closed:
            continue
        run.closed = True
        if not run.task.done():
            run.task.cancel()
        try:
            await asyncio.gather(run.task, return_exceptions=True)
        finally:
            try:
                await run.responses.aclose()
            except Exception:  # a discarded attempt's cleanup must not replace the winner's answer
                logger.debug("A hedged attempt that lost failed to close", exc_info=True)


async def _bounded(
    responses: AsyncGenerator[T, None], call: RetryCall, whole: bool, is_empty: Callable[[T], bool] | None
) -> AsyncGenerator[T, None]:
    """``responses`` under the call's time limits.

    ``attempt_timeout`` bounds the whole attempt when ``whole`` (nothing
    reaches the caller before it ends), else the wait for its first response
    with content. The total ``timeout`` bounds everything: once the stream
    passes through, each wait for the next chunk is cut at the deadline
    (:func:`_until`), so a stream that stalls after its first chunk still
    ends on time. A limit cancels the waiting attempt in place; the loop then
    closes the model's generator, and its connection.
    """
    early: list[T] = []
    async with asyncio.timeout(call.attempt_limit()):
        if whole:
            early = [response async for response in responses]
        else:
            async for response in responses:
                early.append(response)
                if is_empty is None or not is_empty(response):
                    break
    for response in early:
        yield response
    if whole:
        return
    if not call.plan.timed:
        # attempt_timeout only: nothing bounds the rest of the stream (its documented meaning).
        async for response in responses:
            yield response
        return
    async for response in _until(responses, call.time_left()):
        yield response


async def _until(responses: AsyncGenerator[T, None], seconds: float) -> AsyncGenerator[T, None]:
    """``responses``, ended with ``TimeoutError`` once ``seconds`` have passed.

    Only a wait for the model is cut, never the caller's handling of a chunk:
    a timeout scope held across a ``yield`` would fire inside the caller. One
    timer for the whole stream, armed only while waiting, instead of an
    ``asyncio.timeout`` per chunk (a timer scheduled and cancelled per chunk
    cost ~30 µs a chunk on a fast stream; this adds ~0.1 µs).
    """
    task = asyncio.current_task()
    assert task is not None
    waiting = expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if waiting:
            task.cancel()  # lands in the await below: the task is suspended there

    timer = asyncio.get_running_loop().call_later(max(0.0, seconds), expire)
    try:
        while not expired:
            waiting = True
            try:
                response = await anext(responses)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Our own cancel becomes TimeoutError; anyone else's stays a cancellation.
                if expired and task.uncancel() == 0:
                    raise TimeoutError from None
                raise
            finally:
                waiting = False
            yield response
        raise TimeoutError
    finally:
        timer.cancel()


class RetryCall:
    """The state of one call under a handler: its attempt number and its guards' I/O.

    Not created directly: :meth:`RetryHandler.begin` makes one per call (the
    adapter makes its subclass, which also knows the model's request).
    """

    __slots__ = (
        "agent",
        "attempt",
        "chain",
        "cost",
        "failure",
        "handler",
        "index",
        "keys",
        "last_failure",
        "model",
        "model_stats",
        "observer",
        "plan",
        "probe",
        "probes_failed",
        "recovery",
        "rule_retries",
        "started",
        "ticket",
        "token",
        "tried",
        "used",
        "waited",
    )

    is_empty: Callable[[Any], bool] | None = None
    """Says a response has nothing to say: such responses are held back until the
    attempt shows whether it says anything else, and an attempt of nothing else
    is a failed attempt (:attr:`empty_error` of its last response) when the
    policy retries it. None: every response counts (``await handler(fn)``)."""

    empty_error: Callable[[Any], Exception] = ValueError
    """The failure an attempt of nothing but empty responses is (read only when :attr:`is_empty` is set)."""

    def __init__(
        self,
        handler: RetryHandler,
        agent: str,
        model: str | None,
        model_stats: RetryStats | None,
        observer: AttemptObserver | None,
    ) -> None:
        self.handler = handler
        self.plan = plan = handler.plan
        self.agent = agent
        self.model = model
        self.model_stats = model_stats
        self.attempt = 1  # the first attempt starts with the call
        self.observer = observer
        self.recovery: tuple[ErrorRule, BaseException] | None = None
        self.rule_retries: dict[int, int] | None = None
        # The models this call may use, by name: the adapter sets them for a policy with
        # fallbacks. ``index`` is the current one; ``tried`` counts attempts on earlier ones.
        self.chain: tuple[str | None, ...] = (model,) if plan.chained else ()
        self.index = 0
        self.tried = 0
        if plan.rate_limited:
            # Rate limiting (only read when plan.rate_limited): the request's estimated
            # model tokens (set by the adapter), the usage an attempt reported, the
            # admitted attempt's ticket, and the failure a refused retry gives up with.
            self.cost = 0.0
            self.used: float | None = None
            self.ticket: _limiter.Ticket | None = None
            self.last_failure: Failure | None = None
        # Read the clock only when a deadline needs it: the success path stays free of it.
        self.started = (handler.clock or clock.default_clock)() if plan.timed else 0.0
        stats = handler.stats
        stats.calls += 1
        if plan.guarded:
            self.token = False  # a budget token spent on the retry being waited for
            self.keys: Keys | None = plan.keys(model, agent)
            self.probe = 0.0  # when the store made this call the circuit's probe (0: it is not)
            self.waited = 0.0  # seconds waited for an open circuit so far
            self.probes_failed = 0  # attempts made as the circuit's probe that failed: not this call's retries
            self.failure: Failure | None = None  # the latest failure a retry was decided for
            # A guarded call counts its first attempt once the breaker admits it.
        else:
            self.keys = None
            stats.attempts += 1  # what _first_attempt() does, without the call
            if observer is not None:
                observer.attempts = 1

    # -- the success path ---------------------------------------------------------------

    def _first_attempt(self) -> None:
        self.handler.stats.attempts += 1
        if self.observer is not None:
            self.observer.attempts = 1

    async def between(self) -> None:
        """After a backoff, before the next attempt: run the recovery hook, if any.

        The adapter's call also puts the model's request back as the first
        attempt sent it.
        """
        await self.recover(None)

    def start_attempt(self) -> None:
        """Count the retry about to be made (the first attempt is counted when the call starts).

        Counted here, not when it is decided: a call cancelled during its
        backoff made no retry. A rate-limited retry is made once the limiter
        admits it: until then its budget token may still go back.
        """
        if not self.plan.rate_limited:
            self.token = False
        self.attempt += 1
        stats = self.handler.stats
        stats.attempts += 1
        stats.retries += 1
        if self.observer is not None:
            self.observer.attempts = self.attempt + self.tried
            self.observer.model = self.model  # for its "succeeded on attempt N" line; retries only

    def succeeded(self, log: bool) -> None:
        """Count a success; log it when it took a retry and ``log`` is set."""
        self.handler.stats.successes += 1
        if self.plan.chained:
            self._answered()
        if self.model_stats is not None:
            self._settle_model(None)
        if self.attempt > 1 or self.tried:
            if log:
                log_success(self.handler, self.agent, self.attempt + self.tried, self.model, self.observer)
            self._event("success_after_retry")

    def attempt_limit(self) -> float | None:
        """How long the next attempt may take: ``attempt_timeout``, cut to what is left of ``timeout``."""
        limit = self.plan.attempt_timeout
        if self.plan.timed:
            left = max(0.0, self.time_left())
            limit = left if limit is None else min(limit, left)
        return limit

    def time_left(self) -> float:
        """Seconds left of the policy's total ``timeout`` (only asked when one is set)."""
        timeout = self.plan.timeout
        assert timeout is not None
        return timeout - ((self.handler.clock or clock.default_clock)() - self.started)

    # -- guards (only when the policy asks for them) --------------------------------------

    async def admit(self) -> None:
        """Let the call through the model's circuit: wait for its probe if it has time, or move to
        a fallback model at once when it has one (``fallback_on`` names ``circuit_open``).

        Raises :class:`CircuitOpenError` (nothing sent) when the circuit is
        open and the call's time would run out before the probe.
        """
        if self.plan.breaker is not None and self.keys is not None and self.keys.circuit is not None:
            while True:
                if self._falls_back_on(CIRCUIT_OPEN):
                    error = await self._circuit_refuses()
                    if error is None:
                        break
                    # An open circuit on this model, and a next one to go to: no attempt was made here.
                    self.handler.stats.breaker_rejections += 1
                    self._move(error, CIRCUIT_OPEN, None, made_attempt=False)
                    continue
                refused = await self._through_circuit()
                if refused is None:
                    break
                keys = self.keys
                assert keys is not None
                assert keys.circuit is not None
                error = CircuitOpenError(self.model or keys.circuit, refused.open_until)
                self.attempt = 0  # refused: no attempt was made
                self.handler.stats.breaker_rejections += 1
                self._call_failed(error)
                raise error from _circuit_causes.get(keys.circuit)
        self._first_attempt()

    async def _through_circuit(self) -> CircuitView | None:
        """Wait until the circuit admits this call (None), or its time runs out (the store's last view).

        The decisions are :func:`~adk_retry.core._breaker.circuit_wait`'s; the
        wait is cancellable, bounded by the call's time, and ends early when a
        call in this process learns the circuit's fate. Under ``no_waits()``
        a call never waits: it is refused as one with no time would be.
        """
        breaker, keys = self.plan.breaker, self.keys
        assert breaker is not None
        assert keys is not None
        assert keys.circuit is not None
        store, key = self._store(), keys.circuit
        monotonic = self.handler.clock or clock.default_clock
        told = False
        while True:
            now = self._now()
            view = await _admit(store, key, now, breaker.probe_timeout)
            if view.allowed:
                if view.state == "half_open":
                    self.probe = now
                return None
            may_wait = (
                wait_limit(breaker, time_left=self.time_left() if self.plan.timed else None, waited=self.waited)
                if clock.waits_enabled()
                else 0.0
            )
            u = (self.handler.random or clock.default_random)()
            pause = circuit_wait(view, now=now, may_wait=may_wait, poll=probe_interval(breaker, view.probes, u))
            if pause is None:
                return view
            if not told:
                told = True
                logger.info(
                    "[%s] Circuit for %s is %s: waiting up to %.2fs for its probe",
                    self.agent,
                    self.model,
                    view.state,
                    may_wait,
                    extra={"agent": self.agent, "reason": "circuit wait"},
                )
            began = monotonic()
            try:
                await _wakeups.wait(key, pause)
            finally:
                self.waited += monotonic() - began

    async def _release_probe(self) -> None:
        """This call was the probe and ends without a verdict on the provider: let another probe at once."""
        keys = self.keys
        since, self.probe = self.probe, 0.0
        assert keys is not None
        assert keys.circuit is not None
        try:
            await self._store().release_probe(keys.circuit, since)
        except Exception:  # the store's own failure must not replace the call's outcome
            logger.warning("[%s] Could not release the circuit's probe", self.agent, exc_info=True)
        _wakeups.wake(keys.circuit)

    async def _circuit_refuses(self) -> CircuitOpenError | None:
        """The error for the current model's open circuit, or None when it admits a call."""
        breaker, keys = self.plan.breaker, self.keys
        if breaker is None or keys is None or keys.circuit is None:
            return None
        now = self._now()
        view = await _admit(self._store(), keys.circuit, now, breaker.probe_timeout)
        if view.allowed and view.state == "half_open":
            self.probe = now
        return None if view.allowed else CircuitOpenError(self.model or keys.circuit, view.open_until)

    # -- fallbacks and hedges (only when the policy asks for them) ------------------------------

    def _falls_back_on(self, kind: str | None) -> bool:
        """Whether the call has a next model and ``fallback_on`` names ``kind`` (None: any reason)."""
        plan = self.plan
        return plan.falls_back and self.index + 1 < len(self.chain) and (kind is None or kind in plan.fallback_on)

    def _move(self, error: BaseException, kind: str | None, reason: str | None, *, made_attempt: bool) -> None:
        """Move the call to its next model: log it, count it, emit the event; the loop starts it there."""
        to = self.chain[self.index + 1]
        fields = self._fields(error, reason=reason or kind)
        logger.warning(
            "[%s] Model %s failed (attempt %d/%d): %s. Falling back to %s (%s)",
            self.agent,
            self.model,
            self.attempt,
            self.plan.max_attempts,
            fields["error"],
            to,
            reason or kind,
            extra={"agent": self.agent, "reason": reason or kind},
        )
        self._event("fallback", error=error, reason=reason or kind, error_class=kind, to_model=to)
        self.handler.stats.fallbacks += 1
        if made_attempt:
            self.tried += self.attempt
            self.attempt = 0  # start_attempt() makes it 1 on the new model
        self._enter(self.index + 1)

    def _enter(self, index: int) -> None:
        """Make model ``index`` of the chain the current one: its own schedule, rules and guards."""
        self.index = index
        self.model = self.chain[index]
        self.rule_retries = None
        self.recovery = None  # a recovery hook prepared this model's next attempt, not another's
        if self.plan.guarded:
            self.keys = self.plan.keys(self.model, self.agent)

    async def _next_open_model(self, error: BaseException) -> bool:
        """After a move: skip models whose circuit is open; False when none is left (give up)."""
        while True:
            refused = await self._circuit_refuses()
            if refused is None:
                return True
            self.handler.stats.breaker_rejections += 1
            if not self._falls_back_on(None):
                return False
            self._move(refused, CIRCUIT_OPEN, None, made_attempt=False)

    async def hedge(self, after: float) -> tuple[int, tuple[str, _limiter.Ticket] | None] | None:
        """May a hedge attempt start now (``after`` seconds of silence)? Its chain index and limiter ticket, or None.

        A hedge is an attempt: it needs one of the current model's attempts
        left, a budget token when there is a budget, and, under a
        ``rate_limit``, an admission *at once* on the model it runs on (a
        hedge that waited for admission would come too late to help and
        would queue before calls of their own). It runs on the next model
        when the call has one whose circuit is closed, else on the same
        (never while the call is that model's half-open probe).
        """
        plan, stats = self.plan, self.handler.stats
        if self.attempt >= plan.max_attempts:
            return None
        target = self.index + 1 if self._falls_back_on(None) else self.index
        if target != self.index and plan.breaker is not None and not await self._circuit_closed(target):
            target = self.index  # nothing is sent to a model whose circuit is open: hedge here instead
        if target == self.index and plan.guarded and self.probe:
            return None  # this call is its circuit's one probe: a hedge would be a second
        budget, keys = plan.budget, self.keys
        token = False
        if budget is not None and keys is not None and keys.budget is not None:
            if not await self._store().take_token(keys.budget, max_tokens=budget.max_tokens):
                stats.budget_denials += 1
                return None
            token = True
        ticket: tuple[str, _limiter.Ticket] | None = None
        if plan.rate_limited:
            try:
                ticket = await self._hedge_admission(target)
            finally:
                # Refused, or cancelled with the call during the store's round trip: no hedge was sent.
                if ticket is None and token:
                    assert budget is not None
                    assert keys is not None
                    assert keys.budget is not None
                    await self._store().refund(keys.budget, 1.0, max_tokens=budget.max_tokens)
            if ticket is None:
                return None
        self.attempt += 1
        stats.attempts += 1
        stats.hedges += 1
        if self.observer is not None:
            self.observer.attempts = self.attempt + self.tried
        to = self.chain[target]
        logger.info(
            "[%s] No answer from %s after %gs: hedging on %s",
            self.agent,
            self.model,
            after,
            to,
            extra={"agent": self.agent, "reason": "hedge"},
        )
        self._event("hedge", reason=f"no answer after {after:g}s", to_model=to)
        return target, ticket

    async def hedge_unsent(self, target: int, ticket: tuple[str, _limiter.Ticket] | None) -> None:
        """The hedge :meth:`hedge` allowed could not be started: nothing was sent, so nothing is spent.

        Its limiter ticket and budget token go back, and it is not counted as an attempt or a hedge.
        """
        logger.warning(
            "[%s] Could not start a hedge on %s; the first attempt goes on alone",
            self.agent,
            self.chain[target],
            exc_info=True,
            extra={"agent": self.agent, "reason": "hedge"},
        )
        plan, stats, keys = self.plan, self.handler.stats, self.keys
        self.attempt -= 1
        stats.attempts -= 1
        stats.hedges -= 1
        if self.observer is not None:
            self.observer.attempts = self.attempt + self.tried
        if ticket is not None:
            await _limiter.release(self._store(), *ticket)
        if plan.budget is not None and keys is not None and keys.budget is not None:
            await self._store().refund(keys.budget, 1.0, max_tokens=plan.budget.max_tokens)

    async def _circuit_closed(self, target: int) -> bool:
        """Whether model ``target``'s circuit is closed (a hedge may go there); never takes its probe.

        A half-open circuit's one probe is for a call of that model's own,
        whose verdict is recorded: a hedge's is not, so one the store made the
        probe gives the slot straight back.
        """
        breaker = self.plan.breaker
        assert breaker is not None
        keys = self.plan.keys(self.chain[target], self.agent)
        if keys.circuit is None:
            return True
        store, now = self._store(), self._now()
        view = await _admit(store, keys.circuit, now, breaker.probe_timeout)
        if view.state == "closed":
            return True
        if view.allowed:
            await store.release_probe(keys.circuit, now)
        return False

    async def _hedge_admission(self, target: int) -> tuple[str, _limiter.Ticket] | None:
        """The rate limit's admission of a hedge on model ``target`` with no wait; None when refused."""
        limit = self.plan.rate_limit
        assert limit is not None
        keys = self.keys if target == self.index else self.plan.keys(self.chain[target], self.agent)
        assert keys is not None
        assert keys.limit is not None
        handler = self.handler
        try:
            ticket = await _limiter.admit(
                self._store(),
                keys.limit,
                limit,
                cost=self.cost,
                max_wait=0.0,
                u=(handler.random or clock.default_random)(),
                now=self._now,
                sleep=handler.sleep or clock.default_sleep,
            )
        except _limiter.Refused:
            logger.debug("[%s] No hedge: the rate limit of %s has no room now", self.agent, self.chain[target])
            return None
        return keys.limit, ticket

    async def hedge_settled(self, runs: list[Any], chosen: Any, error: BaseException | None) -> None:
        """A hedged attempt ended (``chosen``: the run that won, None when none did).

        Counts a hedge that won; gives the losing hedges' limiter tickets back
        (a loser that failed first tells the limit what it got; one cancelled
        here says nothing); a winning hedge's ticket becomes the call's, for
        the loop to end as it ends any attempt's. When no run won, the loop
        ends the call's ticket with the failure it sees (``error``, when it
        is the one raised), so that run's own ticket only goes back. A hedge
        on the next model that won moves the call there, on its first attempt.
        """
        first = runs[0]
        if chosen is not None and chosen is not first:
            self.handler.stats.hedge_wins += 1
        if self.plan.rate_limited:
            for run in runs[1:]:
                if run is chosen or run.ticket is None:
                    continue
                key, ticket = run.ticket
                if run.error is not None and (chosen is not None or run.error is not error):
                    await self._end_ticket(key, ticket, run.error)
                else:
                    await _limiter.release(self._store(), key, ticket)
            if chosen is not None and chosen is not first:
                ticket, self.ticket = self.ticket, chosen.ticket[1] if chosen.ticket is not None else None
                keys = self.keys
                if ticket is not None and keys is not None and keys.limit is not None:
                    if first.error is not None:
                        await self._end_ticket(keys.limit, ticket, first.error)
                    else:
                        await _limiter.release(self._store(), keys.limit, ticket)
        if chosen is not None and chosen.index != self.index:
            # The hedge on the next model answered: the call goes on there, on its first attempt.
            if self.plan.guarded and self.probe:
                await self._release_probe()  # the probe of the model it leaves lost, cancelled: no verdict
            self.tried += self.attempt - 1
            self.attempt = 1
            self._enter(chosen.index)

    def _answered(self) -> None:
        """Say which model answered (policies with fallbacks or hedges)."""
        name = self.model or "?"
        self.handler.stats.answered_by[name] += 1
        if self.model_stats is not None:
            self.model_stats.answered_by[name] += 1
        if self.index:
            logger.info(
                "[%s] Answered by fallback model %s",
                self.agent,
                name,
                extra={"agent": self.agent, "reason": "fallback"},
            )

    async def settle_success(self) -> None:
        """Close the circuit, refund the budget, lower the failure rate."""
        plan, keys = self.plan, self.keys
        assert keys is not None
        if keys.circuit is not None:
            self.probe = 0.0
            before, view = await self._store().record_success(keys.circuit)
            _circuit_causes.pop(keys.circuit, None)
            _wakeups.wake(keys.circuit)  # the calls waiting for this circuit go now
            self._transition(before, view.state, None)
        if plan.budget is not None and keys.budget is not None:
            await self._store().refund(keys.budget, plan.budget.token_ratio, max_tokens=plan.budget.max_tokens)
        if plan.adaptive:
            failure_rates.record(keys.rate, failed=False)

    async def _count_failure(self, failure: Failure) -> CircuitView | None:
        """Feed a retriable failure to the failure rate and the breaker; the circuit's view if it is now open."""
        keys = self.keys
        if keys is None:
            return None
        if self.plan.adaptive:
            failure_rates.record(keys.rate, failed=True)
        breaker = self.plan.breaker
        if breaker is None or failure.kind is None or keys.circuit is None or failure.kind in FALLBACK_ONLY_CLASSES:
            return None
        _circuit_causes[keys.circuit] = failure.error
        self.probe = 0.0  # a failure is the probe's verdict: the store frees its slot
        before, view = await self._store().record_failure(
            keys.circuit,
            self._now(),
            threshold=breaker.failure_threshold,
            cooldown=breaker.cooldown,
            hint=_held(failure.hint, self.plan.max_hint_delay),
            first_probe=breaker.first_probe,
            spread=breaker.probe_jitter * (self.handler.random or clock.default_random)(),
        )
        if before == "half_open":
            _wakeups.wake(keys.circuit)  # a failed probe: waiters see the new open period now
        self._transition(before, view.state, failure.error)
        return view if view.state == "open" else None

    # -- rate limiting (only when the policy has a RateLimit) -------------------------------

    async def take_admission(self) -> None:
        """Wait until the rate limit admits this attempt (see :mod:`adk_retry.guards._limiter`).

        Within the deadline (what is left of ``timeout``, else ``RateLimit.max_wait``);
        past it, a first attempt fails with :class:`RateLimitedError` and a retry gives
        up with the failure it was retrying, both with nothing sent.
        """
        limit, keys = self.plan.rate_limit, self.keys
        assert limit is not None
        assert keys is not None
        assert keys.limit is not None
        max_wait = limit.max_wait if not self.plan.timed else max(0.0, self.time_left())
        handler = self.handler
        refused: _limiter.Refused | None = None
        try:
            self.ticket = await _limiter.admit(
                self._store(),
                keys.limit,
                limit,
                cost=self.cost,
                max_wait=max_wait,
                u=(handler.random or clock.default_random)(),
                now=self._now,
                sleep=handler.sleep or clock.default_sleep,
            )
        except _limiter.Refused as error:
            refused = error
        except BaseException:
            await self._not_sent()  # cancelled while waiting: the retry was not made
            raise
        if refused is not None:
            # Raised here, outside the handler: the original failure's __context__ stays its own.
            await self._not_sent()
            self._refused(refused)
        assert self.ticket is not None
        self.token = False  # admitted: the retry it paid for is made
        handler.stats.rate_limit_waited += self.ticket.waited

    def _refused(self, refused: _limiter.Refused) -> None:
        stats = self.handler.stats
        stats.rate_limit_rejections += 1
        # The attempt was counted when it was scheduled; it was not made.
        stats.attempts -= 1
        reason = f"rate limit: no admission within the deadline ({refused.limit}, {refused.wait:.3f} s needed)"
        failure = self.last_failure
        if self.attempt > 1 and failure is not None:
            stats.retries -= 1
            self.attempt -= 1
            if self.observer is not None:
                self.observer.attempts = self.attempt
            self._give_up(failure, reason)
            raise failure.error
        keys = self.keys
        assert keys is not None
        assert keys.limit is not None
        error = RateLimitedError(self.model or keys.limit, refused.wait, refused.limit)
        self.attempt = 0  # refused: no attempt was made
        if self.observer is not None:
            self.observer.attempts = 0
        self._call_failed(error)
        emit(logging.ERROR, self.plan.templates.gave_up, self._fields(error, attempts=0, reason=reason))
        raise error from None

    async def end_attempt(self, exc: BaseException | None) -> None:
        """The attempt ended (``exc`` None: it answered): release its slot, tell the limit what happened."""
        ticket = self.ticket
        if ticket is None:
            return
        self.ticket = None
        keys = self.keys
        assert keys is not None
        assert keys.limit is not None
        await self._end_ticket(keys.limit, ticket, exc)

    async def _end_ticket(self, key: str, ticket: _limiter.Ticket, exc: BaseException | None) -> None:
        """Release ``ticket``'s slot in scope ``key``; tell the limit how its attempt ended (None: answered)."""
        limit = self.plan.rate_limit
        assert limit is not None
        store = self._store()
        throttled, hint, tokens = False, None, 0.0
        if exc is None:
            if self.used is not None:
                tokens = self.used - self.cost  # correct the estimate from the response's usage
        elif isinstance(exc, Exception):
            try:
                throttled = error_class(exc) == RATE_LIMIT
                hint = _held(retry_after(exc), self.plan.max_hint_delay) if throttled else None
            except Exception:  # an odd exception says nothing about the limit
                throttled = False
            if throttled:
                tokens = -self.cost  # a refused request used no tokens
        self.used = None
        try:
            # The hint is stored before the slot goes back, so the next caller waits for it.
            await _limiter.report(
                store, key, limit, self._now(), ticket=ticket, throttled=throttled, hint=hint, tokens=tokens
            )
        except Exception:  # the store's own failure must not replace the call's outcome
            logger.warning("[%s] Could not report to the rate limit", self.agent, exc_info=True)
        finally:
            await _limiter.release(store, key, ticket)

    # -- the failure path --------------------------------------------------------------------

    async def failed(self, exc: BaseException) -> float | None:
        """Decide what follows a failed attempt: a delay to wait, or None to give up.

        Logs the retry or the give-up; the caller re-raises on None.
        """
        plan = self.plan
        if not isinstance(exc, Exception):
            # Cancellation and interpreter exits end the call; they are not failures.
            if plan.guarded and self.probe:
                await self._release_probe()
            return None
        stats = self.handler.stats
        stats.last_error = exc
        stats.errors[type(exc).__name__] += 1
        failure = plan.failure(exc)
        can_fall_back = plan.falls_back and self.index + 1 < len(self.chain)
        if not failure.retriable and not can_fall_back:
            if plan.guarded and self.probe:
                await self._release_probe()  # a 400 says nothing about the provider's health
            self._call_failed(exc)
            return None
        if plan.rate_limited:
            self.last_failure = failure
        circuit_open = circuit_waits = False
        counted = self.attempt
        if plan.guarded and failure.retriable:
            was_probe = self.probe != 0.0
            view = await self._count_failure(failure)
            if was_probe and view is not None:
                # A failed probe is the breaker's request, made for every waiting call:
                # it does not use up the retries of the call that happened to carry it
                # (else the caller that probes a long outage most often gives up first).
                self.probes_failed += 1
            counted -= self.probes_failed
            self.failure = failure
            circuit_open = view is not None
            if view is not None and clock.waits_enabled():
                # Wait for the probe only if it can come before this call's time runs out.
                breaker = plan.breaker
                assert breaker is not None
                may_wait = wait_limit(breaker, time_left=self.time_left() if plan.timed else None, waited=self.waited)
                pause = circuit_wait(
                    view, now=self._now(), may_wait=may_wait, poll=probe_interval(breaker, view.probes)
                )
                circuit_waits = pause is not None
        rule = failure.rule
        decision = decide(
            plan,
            failure,
            attempt=counted,
            rule_retries=self._rule_retries(rule) if rule is not None else 0,
            time_left=self.time_left() if plan.timed else None,
            u=(self.handler.random or clock.default_random)(),
            failure_rate=failure_rates.get(self.keys.rate) if plan.adaptive and self.keys is not None else 0.0,
            circuit_open=circuit_open,
            circuit_waits=circuit_waits,
            can_fall_back=can_fall_back,
        )
        if isinstance(decision, FallBack):
            return await self._fall_back(failure, decision.reason)
        if isinstance(decision, GiveUp):
            if decision.reason is None:
                self._call_failed(exc)
            else:
                self._give_up(failure, decision.reason)
            return None
        budget, keys = plan.budget, self.keys
        if budget is not None and keys is not None and keys.budget is not None:
            if not await self._store().take_token(keys.budget, max_tokens=budget.max_tokens):
                stats.budget_denials += 1
                self._event("budget_denied", error=exc, reason="retry budget exhausted", error_class=failure.kind)
                if can_fall_back:
                    return await self._fall_back(failure, "retry budget exhausted")
                self._give_up(failure, "retry budget exhausted")
                return None
            self.token = True
        if rule is not None:
            self._count_rule(rule)
            if rule.recover is not None:
                self.recovery = (rule, exc)
        fields = self._fields(exc, delay=decision.delay, reason=decision.reason)
        emit(logging.WARNING, plan.templates.retrying, fields)
        if decision.hinted:
            emit(logging.INFO, plan.templates.hinted, fields)
        self._event("retry", delay=decision.delay, error=exc, reason=decision.reason, error_class=failure.kind)
        return decision.delay

    async def _fall_back(self, failure: Failure, reason: str) -> float | None:
        """Move to the next model whose circuit admits a call: no wait (0.0), or None to give up."""
        if self.plan.guarded and self.probe:
            # This call was the model's probe and leaves it with no verdict (a failure that says
            # nothing of its health, say a context window exceeded): its waiters probe at once.
            await self._release_probe()
        self._move(failure.error, failure.kind, reason, made_attempt=True)
        if self.plan.guarded and not await self._next_open_model(failure.error):
            # No attempt on the model it stopped at: the give-up counts the attempts made.
            self.attempt, self.tried = self.tried, 0
            self._give_up(failure, "every fallback's circuit is open")
            return None
        return 0.0

    async def interrupted(self, exc: BaseException) -> None:
        """Count how a call ended after output reached the caller; it is never retried then.

        A failure counts as one (and, for a guarded call, against the
        breaker); the caller closing the stream early counts as a success,
        since the provider did answer; a cancellation counts as neither.
        """
        if isinstance(exc, GeneratorExit):
            self.succeeded(False)
            if self.plan.guarded:
                await self.settle_success()
            return
        if not isinstance(exc, Exception):
            if self.plan.guarded and self.probe:
                await self._release_probe()
            return
        stats = self.handler.stats
        stats.last_error = exc
        stats.errors[type(exc).__name__] += 1
        self._call_failed(exc)
        if self.plan.guarded:
            failure = self.plan.failure(exc)
            if failure.retriable:
                await self._count_failure(failure)
            elif self.probe:
                await self._release_probe()

    async def wait(self, delay: float) -> None:
        """Wait ``delay`` seconds before the next attempt, then through the circuit (neither under ``no_waits``).

        A circuit that another call opened meanwhile is seen here, before the
        retry: the call waits for its probe if it has time, else gives up
        with its own last error ("circuit open"). A call cancelled here, or
        refused, made no retry: the budget token spent for it goes back.
        """
        self.handler.stats.slept += delay
        if not clock.waits_enabled():
            # Nothing slept, so no time passed for the circuit either: asking it
            # again would see the state this call has (virtually) waited out.
            return
        try:
            await (self.handler.sleep or clock.default_sleep)(delay)
            if self.plan.breaker is not None:
                await self._readmit()
        except BaseException:
            await self._return_token()
            raise

    async def _readmit(self) -> None:
        """Before a retry: through the circuit, to the next model, or give up with the call's last error.

        A circuit another call opened during this call's backoff is met here:
        with a next model and ``circuit_open`` in ``fallback_on`` the call moves
        there at once, as it would at its start (:meth:`admit`).
        """
        keys, failure = self.keys, self.failure
        if keys is None or keys.circuit is None or failure is None:
            return
        if self._falls_back_on(CIRCUIT_OPEN):
            error = await self._circuit_refuses()
            if error is None:
                return
            self.handler.stats.breaker_rejections += 1
            if await self._fall_back(failure, CIRCUIT_OPEN) is not None:
                return
            raise failure.error
        refused = await self._through_circuit()
        if refused is None:
            return
        self.handler.stats.breaker_rejections += 1
        self._give_up(failure, "circuit open")
        raise failure.error

    async def recover(self, llm_request: Any, model: Any = None) -> bool:
        """Run the recovery hook of the rule that scheduled this retry; True if one ran.

        A hook that fails is logged and the retry goes ahead: the call's own
        failure, not the hook's, is what the caller may eventually receive.
        """
        if self.recovery is None:
            return False
        rule, exc = self.recovery
        self.recovery = None
        assert rule.recover is not None
        context = RecoveryContext(agent=self.agent, attempt=self.attempt, llm_request=llm_request, model=model)
        try:
            await rule.recover(exc, context)
        except Exception as error:
            logger.warning("[%s] Recovery hook failed: %s", self.agent, describe(error), extra={"agent": self.agent})
        except BaseException:
            # Cancelled in the hook: the retry it prepared is not made.
            await self._not_sent()
            raise
        return True

    # -- helpers -----------------------------------------------------------------------------

    async def _not_sent(self) -> None:
        """The attempt the call was admitted for is not made (cancelled or refused before it was sent).

        Its budget token goes back, and so does the circuit's probe slot if the
        circuit made it the probe: no request, no verdict, and the calls
        waiting for that probe must not wait out ``probe_timeout`` instead.
        """
        await self._return_token()
        if self.plan.guarded and self.probe:
            await self._release_probe()

    async def _return_token(self) -> None:
        budget, keys = self.plan.budget, self.keys
        if budget is None or keys is None or keys.budget is None or not self.token:
            return
        self.token = False
        try:
            await self._store().refund(keys.budget, 1.0, max_tokens=budget.max_tokens)
        except Exception:  # the store's own failure must not replace the cancellation
            logger.warning("[%s] Could not return a retry-budget token", self.agent, exc_info=True)

    def _call_failed(self, error: BaseException) -> None:
        """Count the call as failed, in the handler's and the model's view."""
        self.handler.stats.failures += 1
        if self.model_stats is not None:
            self._settle_model(error)

    def _settle_model(self, error: BaseException | None) -> None:
        """Add this call's outcome to the model's view, once, when the call ends (``error`` None: success)."""
        stats = self.model_stats
        assert stats is not None
        stats.calls += 1
        attempts = self.attempt + self.tried
        stats.attempts += attempts
        if attempts > 1:
            stats.retries += attempts - 1
        if error is None:
            stats.successes += 1
        else:
            stats.failures += 1
            stats.last_error = error
            stats.errors[type(error).__name__] += 1

    def _rule_retries(self, rule: ErrorRule) -> int:
        return 0 if self.rule_retries is None else self.rule_retries.get(id(rule), 0)

    def _count_rule(self, rule: ErrorRule) -> None:
        if self.rule_retries is None:
            self.rule_retries = {}
        self.rule_retries[id(rule)] = self._rule_retries(rule) + 1

    def _transition(self, before: str, after: str, exc: BaseException | None) -> None:
        if before == after:
            return
        self.handler.stats.breaker_transitions[f"{before}->{after}"] += 1
        logger.log(
            logging.WARNING if after == "open" else logging.INFO,
            "[%s] Circuit for %s: %s -> %s",
            self.agent,
            self.model,
            before,
            after,
            extra={"agent": self.agent, "reason": f"{before}->{after}"},
        )
        self._event("breaker_change", error=exc, state=after, reason=f"{before}->{after}")

    def _give_up(self, failure: Failure, reason: str) -> None:
        """Log and count the end of the retries."""
        self._call_failed(failure.error)
        fields = self._fields(failure.error, attempts=self.attempt, reason=reason)
        emit(logging.ERROR, self.plan.templates.gave_up, fields)
        self._event("give_up", error=failure.error, reason=reason, error_class=failure.kind)

    def _store(self) -> StateStore:
        store = self.plan.store
        return default_store() if store is None else fail_open(store)

    def _now(self) -> float:
        return (self.handler.wall_clock or time.time)()

    def _event(self, kind: EventKind, **fields: Any) -> None:
        hooks = self.plan.hooks
        if not hooks and not global_hooks:
            return
        event = RetryEvent(kind, agent=self.agent, model=self.model, attempt=self.attempt, **fields)
        for hook in (*hooks, *global_hooks):
            try:
                hook(event)
            except Exception:  # a broken hook must not break the model call
                logger.warning("retry hook %r failed on a %s event", hook, kind, exc_info=True)

    def _fields(self, exc: BaseException, **more: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "agent": self.agent,
            "attempt": self.attempt,
            "max_attempts": self.plan.max_attempts,
            "error": describe(exc),
            "error_type": type(exc).__name__,
            "model": self.model,
        }
        if self.observer is not None:
            # ADK's ids, read here on the failure path from what the before-model callback kept.
            fields.update(call_ids(self.observer))
        fields.update(more)
        return fields


async def _admit(store: StateStore, key: str, now: float, probe_timeout: float) -> CircuitView:
    """``store.admit``; cancelled meanwhile, a probe it may have granted at ``now`` is given back.

    A remote store may have made this call the probe when the cancellation
    lands, before its reply was read: nobody would probe until ``probe_timeout``.
    """
    try:
        return await store.admit(key, now, probe_timeout=probe_timeout)
    except BaseException:
        await store.release_probe(key, now)  # nothing when another call holds the probe
        raise


def _held(hint: float | None, max_hint_delay: float) -> float | None:
    """How long a server's hint holds a whole scope (circuit, rate limit): at most ``max_hint_delay``.

    A hint past it is one the policy never waits for (the call gives up); held
    as it is, one 429 with a day's (or a misread date's) ``Retry-After`` would
    refuse every caller of the scope, in every process behind the store, for
    that long. Held for ``max_hint_delay``, one call then finds out again.
    """
    return hint if hint is None or hint <= max_hint_delay else max_hint_delay


def log_success(
    handler: RetryHandler,
    agent: str,
    attempt: int,
    model: str | None = None,
    observer: AttemptObserver | None = None,
) -> None:
    """Write the "succeeded on attempt N" line for a call that needed a retry."""
    fields: dict[str, Any] = {
        "agent": agent,
        "attempt": attempt,
        "max_attempts": handler.plan.max_attempts,
        "model": model,
    }
    if observer is not None:
        fields.update(call_ids(observer))
    emit(logging.INFO, handler.plan.templates.succeeded, fields)
