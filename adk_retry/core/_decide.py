"""The one place a retry decision is made: a pure function of the plan, the call and the failure.

Given what the policy says (a compiled :class:`~adk_retry.core._plan.Plan`),
how far the call has got, what failed, and a few facts read at the edges
(the time left, a uniform random number, the model's recent failure rate,
whether the circuit is open), :func:`decide` answers "retry after *d*
seconds, because ..." or "give up, because ...". It reads no clock, sleeps,
touches no store and logs nothing: the engine does all of that around it, so
every branch is tested as a row of a table, without an event loop.

The retry budget is the one guard asked *after* the decision: spending a
token is store I/O, and it must be spent only for a retry that the decision
has already allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adk_retry.core._backoff import base_delay_for, jittered

if TYPE_CHECKING:
    from adk_retry.core._plan import Plan
    from adk_retry.core._rules import ErrorRule

__all__ = ["FallBack", "Failure", "GiveUp", "Retry", "decide", "stretch"]


@dataclass(frozen=True, slots=True)
class Failure:
    """What is known about one failed attempt, read once by :meth:`Plan.failure`.

    Attributes:
        error: the exception the attempt raised (or the empty-answer error).
        retriable: whether the policy's ``retry_on`` accepts it.
        kind: its transient class (``"rate_limit"``, ...), or None.
        hint: the wait the server asked for, in seconds, or None.
        rule: the first :class:`~adk_retry.ErrorRule` that matches it, or None.
    """

    error: BaseException
    retriable: bool
    kind: str | None
    hint: float | None
    rule: ErrorRule | None


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry after ``delay`` seconds; ``reason`` is ``"backoff"`` or the server's hint.

    Example:
        >>> Retry(1.0, "backoff").hinted
        False
    """

    delay: float
    reason: str
    hinted: bool = False


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop retrying and raise the original error; ``reason`` is None when it was never retriable.

    Example:
        >>> GiveUp("attempts exhausted").reason
        'attempts exhausted'
    """

    reason: str | None


@dataclass(frozen=True, slots=True)
class FallBack:
    """Stop trying this model and start the next model of the chain now, with no wait.

    Only ever returned when the call has a next model to move to
    (``can_fall_back``); ``reason`` says why: the failure's class named in
    ``fallback_on``, or why this model's retries ended.

    Example:
        >>> FallBack("attempts exhausted").reason
        'attempts exhausted'
    """

    reason: str


NOT_RETRIABLE = GiveUp(None)


def stretch(delay: float, failure_rate: float) -> float:
    """The adaptive delay: ``delay * (1 + failure_rate)``, ``failure_rate`` clamped to [0, 1].

    With no recent failures the schedule is unchanged; with every recent
    attempt failing, delays double; never below the schedule.

    Example:
        >>> stretch(2.0, 0.0), stretch(2.0, 0.5), stretch(2.0, 3.0)
        (2.0, 3.0, 4.0)
    """
    return delay * (1.0 + min(max(failure_rate, 0.0), 1.0))


def decide(
    plan: Plan,
    failure: Failure,
    *,
    attempt: int,
    rule_retries: int = 0,
    time_left: float | None = None,
    u: float = 0.5,
    failure_rate: float = 0.0,
    circuit_open: bool = False,
    circuit_waits: bool = False,
    can_fall_back: bool = False,
) -> Retry | GiveUp | FallBack:
    """What follows failed attempt number ``attempt`` (from 1) of a call.

    Args:
        plan: the compiled policy.
        failure: the failure, as :meth:`Plan.failure` read it.
        attempt: the number of the attempt that failed.
        rule_retries: retries already made in this call under ``failure.rule``.
        time_left: seconds left of the call's total ``timeout`` (None: no deadline).
        u: a uniform number in [0, 1), for jitter.
        failure_rate: the model's recent failure rate (used when ``adaptive``).
        circuit_open: whether the model's circuit is open now.
        circuit_waits: whether this call may wait for the open circuit's
            probe (it has time: :func:`~adk_retry.core._breaker.wait_limit`).
        can_fall_back: whether the call has a next model (``fallbacks``) to
            move to. Then a failure whose class is in ``fallback_on`` moves on
            at once, and every reason to give up on this model (but the
            deadline passed and a failure that is neither retriable nor in
            ``fallback_on``) moves on instead of giving up.

    Example:
        >>> from adk_retry import RetryPolicy
        >>> plan = RetryPolicy(jitter=0).plan
        >>> failure = plan.failure(ValueError("No message in response"))
        >>> decide(plan, failure, attempt=1)
        Retry(delay=1.0, reason='backoff', hinted=False)
        >>> decide(plan, failure, attempt=4)
        GiveUp(reason='attempts exhausted')
        >>> decide(plan, plan.failure(KeyError("x")), attempt=1)
        GiveUp(reason=None)
        >>> decide(plan, failure, attempt=4, can_fall_back=True)
        FallBack(reason='attempts exhausted')
    """
    if can_fall_back:
        if time_left is not None and time_left <= 0.0:
            return GiveUp("deadline: 0.00s left")
        if failure.kind is not None and failure.kind in plan.fallback_on:
            return FallBack(failure.kind)
    if not failure.retriable:
        return NOT_RETRIABLE
    if attempt >= plan.max_attempts:
        return _end(can_fall_back, "attempts exhausted")
    rule = failure.rule
    if rule is not None and rule.max_retries is not None and rule_retries >= rule.max_retries:
        return _end(can_fall_back, "the matching rule's retries exhausted")
    hint = failure.hint
    if hint is None:
        delay = _scheduled(plan, rule, attempt, u)
        reason = "backoff"
    elif hint > plan.max_hint_delay:
        return _end(can_fall_back, f"server asked to wait {hint:g}s, over max_hint_delay")
    else:
        # Up to 10 % (at most 1 s) over the hint: callers told the same time do not return together.
        delay = hint + min(1.0, 0.1 * hint) * u
        reason = f"server asked to wait {hint:g}s"
    if circuit_open and hint is None:
        # Opened by consecutive failures: the circuit's probe schedule replaces
        # this call's backoff (the engine waits for the probe, and the call goes
        # as soon as it succeeds), or, with no time to wait, stop. Opened by the
        # server's own hint: the wait below honours it, and this call retries after it.
        if can_fall_back:
            return FallBack("circuit open")  # another model answers now; no need to wait for this one
        return Retry(0.0, "circuit open: waiting for its probe") if circuit_waits else GiveUp("circuit open")
    if plan.adaptive:
        delay = stretch(delay, failure_rate)
    if time_left is not None and delay >= time_left:
        # The next model needs no wait: with time left, it may still answer.
        return _end(can_fall_back, f"deadline: {max(time_left, 0.0):.2f}s left, retry needs {delay:.2f}s")
    return Retry(delay, reason, hint is not None)


def _end(can_fall_back: bool, reason: str) -> GiveUp | FallBack:
    """This model is done: the next one, if the call has one, else give up."""
    return FallBack(reason) if can_fall_back else GiveUp(reason)


def _scheduled(plan: Plan, rule: ErrorRule | None, attempt: int, u: float) -> float:
    policy = plan.policy
    if rule is None:
        return policy.delay(attempt - 1, u)
    base = base_delay_for(
        attempt - 1,
        backoff=rule.backoff or policy.backoff,
        base=policy.base_delay if rule.base_delay is None else rule.base_delay,
        multiplier=policy.backoff_multiplier if rule.backoff_multiplier is None else rule.backoff_multiplier,
        cap=max(policy.max_delay if rule.max_delay is None else rule.max_delay, rule.base_delay or 0.0),
    )
    return jittered(base, policy.jitter, u)
