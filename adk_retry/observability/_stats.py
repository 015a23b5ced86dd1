"""Counters a handler keeps about the calls it ran."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from adk_retry.core._empty import safe_text
from adk_retry.observability._redact import redact

__all__ = ["RetryStats"]


@dataclass(slots=True)
class RetryStats:
    """What a :class:`~adk_retry.RetryHandler` has seen since it was made.

    Updated only from the event loop, between awaits, so the counts stay
    exact however many calls run concurrently on one handler.

    Attributes:
        calls: model calls started.
        attempts: attempts made (first tries plus retries).
        retries: retries made (attempts after the first).
        successes: calls that ended with an answer.
        failures: calls that ended with an exception (given up, not retriable,
            or refused by an open circuit).
        errors: failed attempts counted by exception type name.
        slept: seconds of backoff scheduled (also counted under ``no_waits``).
        budget_denials: retries refused because the retry budget was empty.
        breaker_rejections: calls refused at once because the circuit was open
            (counted in ``failures`` too; they made no attempt).
        rate_limit_waited: seconds attempts waited for admission by a rate limit.
        rate_limit_rejections: calls and retries a rate limit could not admit before
            their deadline (a refused first attempt counts in ``failures`` too).
        breaker_transitions: breaker state changes seen, by ``"closed->open"`` etc.
        fallbacks: moves of a call to its next model (``RetryPolicy(fallbacks=...)``).
        hedges: hedge attempts started (``RetryPolicy(hedge_after=...)``).
        hedge_wins: calls whose hedge answered first.
        answered_by: successful calls by the model that answered (kept only
            for policies with ``fallbacks`` or ``hedge_after``).
        last_error: the most recent exception an attempt raised, if any.

    Example:
        >>> stats = RetryStats()
        >>> stats.calls, stats.retries
        (0, 0)
    """

    calls: int = 0
    attempts: int = 0
    retries: int = 0
    successes: int = 0
    failures: int = 0
    slept: float = 0.0
    budget_denials: int = 0
    breaker_rejections: int = 0
    rate_limit_waited: float = 0.0
    rate_limit_rejections: int = 0
    breaker_transitions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    fallbacks: int = 0
    hedges: int = 0
    hedge_wins: int = 0
    answered_by: Counter[str] = field(default_factory=Counter)
    last_error: BaseException | None = None

    def as_dict(self) -> dict[str, object]:
        """A plain, JSON-friendly copy of the counters.

        Example:
            >>> RetryStats(calls=2).as_dict()["calls"]
            2
        """
        error = self.last_error
        return {
            "calls": self.calls,
            "attempts": self.attempts,
            "retries": self.retries,
            "successes": self.successes,
            "failures": self.failures,
            "slept": round(self.slept, 6),
            "budget_denials": self.budget_denials,
            "breaker_rejections": self.breaker_rejections,
            "rate_limit_waited": round(self.rate_limit_waited, 6),
            "rate_limit_rejections": self.rate_limit_rejections,
            "breaker_transitions": dict(self.breaker_transitions),
            "errors": dict(self.errors),
            "fallbacks": self.fallbacks,
            "hedges": self.hedges,
            "hedge_wins": self.hedge_wins,
            "answered_by": dict(self.answered_by),
            "last_error": None if error is None else redact(f"{type(error).__name__}: {safe_text(error)}"),
        }
