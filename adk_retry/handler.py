"""``RetryHandler``: the retry loop, its decisions and its bookkeeping.

The loop is written by hand rather than on tenacity: it costs about 0.2 µs a
call where tenacity costs ~17 µs, and it must also drive async generators
(see :mod:`adk_retry.integration`), which no retry library understands. Both
loops share one per-call object, :class:`RetryCall`, that makes every
decision, writes every log line, keeps the statistics and talks to the
budget and the breaker, so the two loops cannot drift apart.

The success path of a call without budget, breaker or adaptive delays
touches nothing but a few counters; everything else runs only on failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from adk_retry import clock
from adk_retry._checks import require_timing
from adk_retry.adaptive import failure_rates, stretch
from adk_retry.backoff import base_delay_for, jittered
from adk_retry.call_state import CallState
from adk_retry.errors import CircuitOpenError
from adk_retry.events import EventKind, RetryEvent, global_hooks
from adk_retry.hints import retry_after
from adk_retry.log import describe, emit, logger
from adk_retry.policy import PolicyLike, as_policy
from adk_retry.rules import ErrorRule, RecoveryContext
from adk_retry.scope import scope_key
from adk_retry.stats import RetryStats
from adk_retry.store import StateStore, default_store
from adk_retry.transient import error_class

__all__ = ["RetryCall", "RetryHandler"]

T = TypeVar("T")

live_handlers: weakref.WeakSet[RetryHandler] = weakref.WeakSet()
"""Every handler alive in the process, for aggregate views and metrics."""

# The last failure that counted against each circuit, in this process: it
# becomes the __cause__ of the CircuitOpenError that open circuit raises.
_circuit_causes: dict[str, BaseException] = {}


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
            preset name or a dict of fields works too (see :func:`~adk_retry.policy.as_policy`).
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

    __slots__ = (
        "__weakref__",
        "agent_name",
        "buffers_streams",
        "clock",
        "guarded",
        "limited",
        "owns_lower",
        "policy",
        "random",
        "sleep",
        "stats",
        "timed",
        "wall_clock",
    )

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
        # Read once: the policy is immutable, and these are asked on every call
        # (a pydantic private attribute costs ~2 µs to read).
        self.guarded = policy.budget is not None or policy.breaker is not None or policy.adaptive
        self.owns_lower = policy.owns_lower_retries
        self.timed = policy.timeout is not None
        self.limited = self.timed or policy.attempt_timeout is not None
        self.buffers_streams = policy.stream_mode == "buffer"
        self.agent_name = agent_name
        self.sleep = sleep
        self.clock = clock
        self.random = random
        self.wall_clock = wall_clock
        self.stats = RetryStats()
        live_handlers.add(self)

    def __repr__(self) -> str:
        return f"RetryHandler(agent_name={self.agent_name!r}, max_retries={self.policy.max_retries})"

    def begin(
        self,
        agent_name: str | None = None,
        model: str | None = None,
        model_stats: RetryStats | None = None,
        observer: CallState | None = None,
    ) -> RetryCall:
        """Start the bookkeeping of one call and its first attempt; the loops call this once per call.

        ``model_stats``, when given, also receives the call's outcome (the
        per-model view a wrapped model keeps); ``observer`` is the per-call
        state the callbacks read.
        """
        return RetryCall(self, agent_name or self.agent_name, model, model_stats, observer)

    async def __call__(self, model_call: Callable[[], Awaitable[T]]) -> T:
        """Run ``model_call`` with retries and return its result."""
        call = self.begin()
        if call.guarded:
            await call.admit()
        while True:
            try:
                if not self.limited:
                    result = await model_call()
                else:
                    async with asyncio.timeout(call.attempt_limit()):
                        result = await model_call()
            except BaseException as exc:
                delay = await call.failed(exc)
                if delay is None:
                    raise
            else:
                call.succeeded(log=True)
                if call.guarded:
                    await call.settle_success()
                return result
            # Sleep outside the except block, so a cancellation during the
            # backoff does not carry the failed attempt as its __context__.
            await call.wait(delay)
            await call.recover(None)
            call.start_attempt()


class RetryCall:
    """The state of one call under a handler: its attempt number and decisions.

    Not created directly: :meth:`RetryHandler.begin` makes one per call.
    """

    __slots__ = (
        "agent",
        "attempt",
        "guarded",
        "handler",
        "model",
        "model_stats",
        "observer",
        "recovery",
        "rule_retries",
        "started",
        "token",
    )

    def __init__(
        self,
        handler: RetryHandler,
        agent: str,
        model: str | None,
        model_stats: RetryStats | None,
        observer: CallState | None,
    ) -> None:
        self.handler = handler
        self.agent = agent
        self.model = model
        self.model_stats = model_stats
        self.attempt = 1  # the first attempt starts with the call
        self.guarded = handler.guarded
        # Mirrors the attempt number for after-model callbacks, which run in
        # another context and cannot see this object (see call_state).
        self.observer = observer
        self.recovery: tuple[ErrorRule, BaseException] | None = None
        self.rule_retries: dict[int, int] | None = None
        # The budget bucket a token was taken from for a retry not yet started:
        # given back if the call ends before that retry (see _abandon_retry).
        self.token: str | None = None
        # Read the clock only when a deadline needs it: the success path stays free of it.
        self.started = (handler.clock or clock.default_clock)() if handler.timed else 0.0
        handler.stats.calls += 1
        if not self.guarded:
            # A guarded call counts its first attempt once the breaker admits it.
            self._first_attempt()

    # -- the success path ---------------------------------------------------------------

    def _first_attempt(self) -> None:
        self.handler.stats.attempts += 1
        if self.observer is not None:
            self.observer.attempts = 1

    def start_attempt(self) -> None:
        """Count the retry about to be made (the first attempt is counted by the constructor).

        Counted here, not when it is decided: a call cancelled during its
        backoff made no retry. From here the retry's budget token is spent.
        """
        self.token = None
        self.attempt += 1
        stats = self.handler.stats
        stats.attempts += 1
        stats.retries += 1
        if self.observer is not None:
            self.observer.attempts = self.attempt

    def succeeded(self, *, log: bool) -> None:
        """Count a success; log it when it took a retry and ``log`` is set."""
        self.handler.stats.successes += 1
        model_stats = self.model_stats
        if self.attempt == 1:
            if model_stats is not None:  # the common case, kept to three increments
                model_stats.calls += 1
                model_stats.attempts += 1
                model_stats.successes += 1
            return
        if model_stats is not None:
            self._settle_model(success=True)
        if log:
            log_success(self.handler, self.agent, self.attempt)
        self._event("success_after_retry")

    def attempt_limit(self) -> float | None:
        """How long the next attempt may take: ``attempt_timeout``, cut to what is left of ``timeout``."""
        limit = self.handler.policy.attempt_timeout
        if self.handler.timed:
            left = max(0.0, self.time_left())
            limit = left if limit is None else min(limit, left)
        return limit

    # -- budget, breaker, adaptive delays (only when the policy asks for them) -------------

    async def admit(self) -> None:
        """Refuse the call with :class:`CircuitOpenError` while the model's circuit is open."""
        breaker = self.handler.policy.breaker
        if breaker is not None:
            key = self._key("circuit", breaker.scope, breaker.key)
            view = await self._store().admit(key, self._now(), probe_timeout=breaker.probe_timeout)
            if not view.allowed:
                error = CircuitOpenError(self.model or key, view.open_until)
                self.attempt = 0  # refused: no attempt was made
                self.handler.stats.breaker_rejections += 1
                self._call_failed(error)
                raise error from _circuit_causes.get(key)
        self._first_attempt()

    async def settle_success(self) -> None:
        """Close the circuit, refund the budget, lower the failure rate."""
        policy = self.handler.policy
        if policy.breaker is not None:
            key = self._key("circuit", policy.breaker.scope, policy.breaker.key)
            before, view = await self._store().record_success(key)
            _circuit_causes.pop(key, None)
            self._transition(before, view.state, None)
        if policy.budget is not None:
            key = self._key("budget", policy.budget.scope, policy.budget.key)
            await self._store().refund(key, policy.budget.token_ratio, max_tokens=policy.budget.max_tokens)
        if policy.adaptive:
            failure_rates.record(self._key("rate", "model", None), failed=False)

    # -- the failure path --------------------------------------------------------------------

    async def failed(self, exc: BaseException) -> float | None:
        """Decide what follows a failed attempt: a delay to wait, or None to give up.

        Logs the retry or the give-up; the caller re-raises on None.
        """
        handler = self.handler
        stats = handler.stats
        policy = handler.policy
        if not isinstance(exc, Exception):
            # Cancellation and interpreter exits end the call; they are not failures.
            return None
        stats.last_error = exc
        stats.errors[type(exc).__name__] += 1
        if not policy.retries(exc):
            self._call_failed(exc)
            return None
        kind = error_class(exc)
        hint = retry_after(exc)
        circuit_open = await self._count_failure(exc, kind, hint)
        rule = next((r for r in policy.rules if r.matches(exc, kind)), None)
        if self.attempt >= policy.max_attempts:
            return self._give_up(exc, kind, "attempts exhausted")
        if rule is not None and rule.max_retries is not None and self._rule_retries(rule) >= rule.max_retries:
            return self._give_up(exc, kind, "the matching rule's retries exhausted")
        u = (handler.random or clock.default_random)()
        if hint is None:
            delay = self._scheduled(rule, u)
            reason = "backoff"
        elif hint > policy.max_hint_delay:
            return self._give_up(exc, kind, f"server asked to wait {hint:g}s, over max_hint_delay")
        else:
            delay = hint + min(1.0, 0.1 * hint) * u
            reason = f"server asked to wait {hint:g}s"
        if policy.adaptive:
            delay = stretch(delay, failure_rates.get(self._key("rate", "model", None)))
        if policy.timeout is not None:
            left = self.time_left()
            if delay >= left:
                return self._give_up(exc, kind, f"deadline: {max(left, 0.0):.2f}s left, retry needs {delay:.2f}s")
        if circuit_open and hint is None:
            # Opened by consecutive failures: stop. Opened by the server's own
            # hint: the wait above honours it, and this call retries after it.
            return self._give_up(exc, kind, "circuit open")
        if policy.budget is not None:
            key = self._key("budget", policy.budget.scope, policy.budget.key)
            if not await self._store().take_token(key, max_tokens=policy.budget.max_tokens):
                stats.budget_denials += 1
                self._event("budget_denied", error=exc, reason="retry budget exhausted", error_class=kind)
                return self._give_up(exc, kind, "retry budget exhausted")
            # Taken now, as the last check before the wait, so an empty bucket gives up
            # without waiting; held (not spent) until the retry starts.
            self.token = key
        if rule is not None:
            self._count_rule(rule)
            if rule.recover is not None:
                self.recovery = (rule, exc)
        fields = self._fields(exc, delay=delay, reason=reason)
        emit(logging.WARNING, policy.log_templates.retrying, fields)
        if hint is not None:
            emit(logging.INFO, policy.log_templates.hinted, fields)
        self._event("retry", delay=delay, error=exc, reason=reason, error_class=kind)
        return delay

    async def interrupted(self, exc: BaseException) -> None:
        """Count how a call ended after output reached the caller; it is never retried then.

        A failure counts as one (and, for a guarded call, against the
        breaker); the caller closing the stream early counts as a success,
        since the provider did answer; a cancellation counts as neither.
        """
        if isinstance(exc, GeneratorExit):
            self.succeeded(log=False)
            if self.guarded:
                await self.settle_success()
            return
        if not isinstance(exc, Exception):
            return
        stats = self.handler.stats
        stats.last_error = exc
        stats.errors[type(exc).__name__] += 1
        self._call_failed(exc)
        if self.guarded and self.handler.policy.retries(exc):
            await self._count_failure(exc, error_class(exc), retry_after(exc))

    async def wait(self, delay: float) -> None:
        """Wait ``delay`` seconds before the next attempt (not under ``no_waits``).

        A call cancelled here makes no retry: the budget token taken for it is given back.
        """
        self.handler.stats.slept += delay
        if clock.waits_enabled():
            try:
                await (self.handler.sleep or clock.default_sleep)(delay)
            except BaseException:
                await self._abandon_retry()
                raise

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
            await self._abandon_retry()
            raise
        return True

    # -- helpers -----------------------------------------------------------------------------

    async def _abandon_retry(self) -> None:
        """The call ends before the retry it decided on: give back that retry's budget token."""
        key, self.token = self.token, None
        budget = self.handler.policy.budget
        if key is not None and budget is not None:
            try:
                await self._store().refund(key, 1.0, max_tokens=budget.max_tokens)
            except Exception:  # the call's own ending (a cancellation) is what must propagate
                logger.warning("[%s] Could not give back a retry budget token", self.agent, exc_info=True)

    def _scheduled(self, rule: ErrorRule | None, u: float) -> float:
        policy = self.handler.policy
        if rule is None:
            return policy.delay(self.attempt - 1, u)
        base = base_delay_for(
            self.attempt - 1,
            backoff=rule.backoff or policy.backoff,
            base=policy.base_delay if rule.base_delay is None else rule.base_delay,
            multiplier=policy.backoff_multiplier if rule.backoff_multiplier is None else rule.backoff_multiplier,
            cap=max(policy.max_delay if rule.max_delay is None else rule.max_delay, rule.base_delay or 0.0),
        )
        return jittered(base, policy.jitter, u)

    def _call_failed(self, error: BaseException) -> None:
        """Count the call as failed, in the handler's and the model's view."""
        self.handler.stats.failures += 1
        if self.model_stats is not None:
            self._settle_model(success=False, error=error)

    def time_left(self) -> float:
        """Seconds left of the policy's total ``timeout`` (only asked when one is set)."""
        timeout = self.handler.policy.timeout
        assert timeout is not None
        return timeout - ((self.handler.clock or clock.default_clock)() - self.started)

    def _settle_model(self, *, success: bool, error: BaseException | None = None) -> None:
        """Add this call's outcome to the model's view, once, when the call ends."""
        stats = self.model_stats
        assert stats is not None
        stats.calls += 1
        stats.attempts += self.attempt
        stats.retries += self.attempt - 1
        if success:
            stats.successes += 1
        else:
            stats.failures += 1
            stats.last_error = error
            if error is not None:
                stats.errors[type(error).__name__] += 1

    def _rule_retries(self, rule: ErrorRule) -> int:
        return 0 if self.rule_retries is None else self.rule_retries.get(id(rule), 0)

    def _count_rule(self, rule: ErrorRule) -> None:
        if self.rule_retries is None:
            self.rule_retries = {}
        self.rule_retries[id(rule)] = self._rule_retries(rule) + 1

    async def _count_failure(self, exc: BaseException, kind: str | None, hint: float | None) -> bool:
        """Feed a retriable failure to the breaker and the failure rate; True if the circuit is now open."""
        policy = self.handler.policy
        if policy.adaptive:
            failure_rates.record(self._key("rate", "model", None), failed=True)
        breaker = policy.breaker
        if breaker is None or kind is None:
            return False
        key = self._key("circuit", breaker.scope, breaker.key)
        _circuit_causes[key] = exc
        before, view = await self._store().record_failure(
            key, self._now(), threshold=breaker.failure_threshold, cooldown=breaker.cooldown, hint=hint
        )
        self._transition(before, view.state, exc)
        return view.state == "open"

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

    def _give_up(self, exc: BaseException, kind: str | None, reason: str) -> float | None:
        """Log and count the end of the retries; returns None, the "give up" decision."""
        self._call_failed(exc)
        fields = self._fields(exc, attempts=self.attempt, reason=reason)
        emit(logging.ERROR, self.handler.policy.log_templates.gave_up, fields)
        self._event("give_up", error=exc, reason=reason, error_class=kind)
        return None

    def _key(self, kind: str, scope: Any, key: str | None) -> str:
        return scope_key(kind, scope, key, model=self.model, agent=self.agent)

    def _store(self) -> StateStore:
        return self.handler.policy.store or default_store()

    def _now(self) -> float:
        return (self.handler.wall_clock or time.time)()

    def _event(self, kind: EventKind, **fields: Any) -> None:
        hooks = self.handler.policy.hooks
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
            "max_attempts": self.handler.policy.max_attempts,
            "error": describe(exc),
            "error_type": type(exc).__name__,
        }
        fields.update(more)
        return fields


def log_success(handler: RetryHandler, agent: str, attempt: int) -> None:
    """Write the "succeeded on attempt N" line for a call that needed a retry."""
    emit(
        logging.INFO,
        handler.policy.log_templates.succeeded,
        {"agent": agent, "attempt": attempt, "max_attempts": handler.policy.max_attempts},
    )
