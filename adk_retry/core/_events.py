"""What a handler tells hooks: one frozen event per noteworthy moment.

Hooks are plain callables ``(RetryEvent) -> object`` set on a policy
(``RetryPolicy(hooks=(my_hook,))``). They run on the failure path only
(a retry, a give-up, a success after retries, a breaker change, a budget
denial), never on a first-attempt success. A hook that raises is logged and
ignored: observability must not break the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["EventKind", "Hook", "RetryEvent", "global_hooks"]

EventKind = Literal["retry", "give_up", "success_after_retry", "breaker_change", "budget_denied", "fallback", "hedge"]


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One event of one model call.

    Attributes:
        kind: what happened.
        agent: the calling agent's name.
        model: the model's name, when known.
        attempt: the attempt number it concerns (from 1).
        delay: the wait before the next attempt (``retry`` only).
        error: the failure, when there is one.
        reason: why: ``"backoff"``, ``"server asked to wait 2s"``,
            ``"attempts exhausted"``, ``"retry budget exhausted"``, ...
        error_class: the transient class of the error (``"rate_limit"``, ...), if any.
        state: the breaker's new state (``breaker_change`` only).
        to_model: the model the call moves to (``fallback``) or hedges on (``hedge``).

    Example:
        >>> RetryEvent("retry", agent="a", model="m", attempt=1, delay=1.0).kind
        'retry'
    """

    kind: EventKind
    agent: str
    model: str | None
    attempt: int
    delay: float | None = None
    error: BaseException | None = None
    reason: str | None = None
    error_class: str | None = None
    state: str | None = None
    to_model: str | None = None


Hook = Callable[[RetryEvent], object]
"""A callable that receives every :class:`RetryEvent`."""


global_hooks: list[Hook] = []
"""Hooks that see the events of every handler in the process (the OpenTelemetry
exporter registers itself here); empty by default, which costs nothing."""
