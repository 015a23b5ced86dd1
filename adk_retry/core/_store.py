"""The interface of the state store that budgets and breakers share (implementations: :mod:`adk_retry.guards`).

A budget or a breaker that lives in one process sees only that process's
slice of the traffic; agent fleets run many workers against one provider
quota. So their state sits behind this small interface. Every operation is
one atomic step, so two processes can never both take the last token or both
become the half-open probe. Times are wall-clock seconds (``time.time()``),
because they are compared across processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from adk_retry.core._limit import Reservation

__all__ = ["CircuitState", "CircuitView", "Reservation", "StateStore", "circuit_state"]

CircuitState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class CircuitView:
    """A breaker's state as one operation left it.

    Attributes:
        state: ``"closed"``, ``"open"`` or ``"half_open"``.
        open_until: when an open circuit lets a probe through (0 when closed).
        failures: consecutive transient failures counted so far.
        allowed: for :meth:`StateStore.admit`, whether this call may go ahead.
        probes: failed probes since the circuit opened (where its growing
            schedule of open periods has got to, :func:`~adk_retry.core._breaker.probe_interval`).

    Example:
        >>> CircuitView("closed", 0.0, 0, True).allowed
        True
    """

    state: CircuitState
    open_until: float
    failures: int
    allowed: bool = True
    probes: int = 0


@runtime_checkable
class StateStore(Protocol):
    """The operations a budget and a breaker need; each is atomic.

    Example:
        >>> from adk_retry.guards import MemoryStore
        >>> isinstance(MemoryStore(), StateStore)
        True
    """

    async def take_token(self, key: str, *, max_tokens: float) -> bool:
        """Spend one retry token of bucket ``key`` (which starts full); False when fewer than one is left."""
        ...

    async def refund(self, key: str, amount: float, *, max_tokens: float) -> None:
        """Put ``amount`` tokens back into bucket ``key``, never above ``max_tokens``."""
        ...

    async def tokens(self, key: str, *, max_tokens: float) -> float:
        """The tokens left in bucket ``key``."""
        ...

    async def admit(self, key: str, now: float, *, probe_timeout: float) -> CircuitView:
        """May a call go through circuit ``key`` now? Open: no. Past its cool-down: one probe at a time."""
        ...

    async def record_failure(
        self,
        key: str,
        now: float,
        *,
        threshold: int,
        cooldown: float,
        hint: float | None,
        first_probe: float | None = None,
        spread: float = 0.0,
    ) -> tuple[CircuitState, CircuitView]:
        """Count a transient failure; returns the state before and the view after.

        The circuit opens for ``max(period, hint)`` seconds when
        ``threshold`` consecutive failures are reached or a half-open probe
        fails, where ``period`` is
        :func:`~adk_retry.core._breaker.open_period` ``(first_probe, cooldown,
        probes, spread)`` and ``probes`` counts the failed probes since it
        opened (0 when it opens from closed; one more for each failed probe).
        ``first_probe`` None means ``cooldown`` (a fixed period). A failure
        while the circuit is already open (a request sent before it opened)
        leaves the open period where it is, unless its ``hint`` is longer.
        Below the threshold, a server ``hint`` (Retry-After) opens it for
        just ``hint`` seconds.
        """
        ...

    async def release_probe(self, key: str, since: float) -> None:
        """Give up the probe that :meth:`admit` granted at ``since`` without a verdict (cancelled, a 400).

        Another caller may probe at once. A probe granted later (after
        ``probe_timeout``) is not touched.
        """
        ...

    async def record_success(self, key: str) -> tuple[CircuitState, CircuitView]:
        """Close circuit ``key`` and reset its count; returns the state before and the view after."""
        ...

    async def reserve(
        self,
        key: str,
        now: float,
        *,
        rate: float,
        burst: float,
        token_rate: float,
        cost: float,
        max_wait: float,
        u: float,
        adaptive: bool,
        horizon: float,
    ) -> Reservation:
        """Take this call's place in rate limit ``key``: :func:`adk_retry.core._limit.reserve`, atomically."""
        ...

    async def rate_feedback(
        self,
        key: str,
        now: float,
        *,
        throttled: bool,
        sent_at: float,
        adaptive: bool,
        hint: float | None,
        rate: float,
        burst: float,
        tokens: float,
    ) -> float:
        """Fold one attempt's answer into rate limit ``key`` (:func:`adk_retry.core._limit.feedback`).

        Returns the learnt rate afterwards (requests/s; 0 when none is learnt).
        """
        ...

    async def hold(self, key: str) -> tuple[float, float]:
        """Rate limit ``key``'s ``(not_before, spread)``: (0, 0) when no server hint holds it."""
        ...

    async def acquire_slot(self, key: str, holder: str, now: float, *, limit: int, lease: float) -> bool:
        """Take one of ``limit`` concurrency slots of ``key`` for ``holder`` until ``now + lease``.

        False when all are taken (slots whose lease ran out are free again).
        """
        ...

    async def release_slot(self, key: str, holder: str) -> None:
        """Give ``holder``'s slot of ``key`` back (nothing when it holds none)."""
        ...


def circuit_state(open_until: float, now: float) -> CircuitState:
    """The state a circuit with ``open_until`` is in at ``now``.

    Example:
        >>> circuit_state(0.0, 5.0), circuit_state(10.0, 5.0), circuit_state(10.0, 15.0)
        ('closed', 'open', 'half_open')
    """
    if not open_until:
        return "closed"
    return "open" if now < open_until else "half_open"
