"""Where retry budgets and circuit breakers keep their state (the interface: :mod:`adk_retry.core._store`).

Two backends:

- :class:`MemoryStore` (the default): a dict in this process, no set-up;
- :class:`adk_retry.guards._redis.RedisStore` (``pip install adk-retry[redis]``):
  shared by every process that points at the same Redis, with atomic Lua
  updates and keys that expire.

Every operation is one atomic step, so two processes can never both take the
last token or both become the half-open probe. Times are wall-clock seconds
(``time.time()``), because they are compared across processes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from adk_retry.core import _limit
from adk_retry.core._breaker import open_period
from adk_retry.core._limit import RateState, Reservation
from adk_retry.core._store import CircuitState, CircuitView, StateStore, circuit_state

__all__ = ["CircuitState", "CircuitView", "MemoryStore", "StateStore", "circuit_state", "default_store"]


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    probing_since: float = 0.0
    probes: int = 0  # failed probes since it opened: where the growing schedule has got to


class MemoryStore:
    """Budget and breaker state in this process (the default store).

    Operations never await anything, so each runs atomically on its event
    loop; a lock makes them atomic across threads too (ADK's synchronous
    ``Runner.run()`` runs each turn on a thread of its own, all on the one
    default store). The state belongs to no event loop, so any loop may use it.

    Example:
        >>> import asyncio
        >>> store = MemoryStore()
        >>> asyncio.run(store.take_token("openai/gpt-4o", max_tokens=2))
        True
    """

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._circuits: dict[str, _Circuit] = {}
        self._rates: dict[str, RateState] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()  # uncontended: ~0.1 µs per operation

    async def take_token(self, key: str, *, max_tokens: float) -> bool:
        """See :meth:`StateStore.take_token`."""
        with self._lock:
            left = self._tokens.get(key, max_tokens)
            if left < 1.0:
                return False
            self._tokens[key] = left - 1.0
            return True

    async def refund(self, key: str, amount: float, *, max_tokens: float) -> None:
        """See :meth:`StateStore.refund`."""
        with self._lock:
            self._tokens[key] = min(max_tokens, self._tokens.get(key, max_tokens) + amount)

    async def tokens(self, key: str, *, max_tokens: float) -> float:
        """See :meth:`StateStore.tokens`."""
        return self._tokens.get(key, max_tokens)

    async def admit(self, key: str, now: float, *, probe_timeout: float) -> CircuitView:
        """See :meth:`StateStore.admit`."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None or not circuit.open_until:
                return CircuitView("closed", 0.0, 0 if circuit is None else circuit.failures)
            state = circuit_state(circuit.open_until, now)
            allowed = state == "half_open" and (
                not circuit.probing_since or now - circuit.probing_since >= probe_timeout
            )
            if allowed:
                circuit.probing_since = now
            return CircuitView(state, circuit.open_until, circuit.failures, allowed, circuit.probes)

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
        """See :meth:`StateStore.record_failure`."""
        with self._lock:
            circuit = self._circuits.setdefault(key, _Circuit())
            before = circuit_state(circuit.open_until, now)
            circuit.failures += 1
            # A failure while open was sent before the circuit opened (nothing is sent
            # while it is open): it says nothing new, and must not push the probe out.
            # Else 40 callers' first 503s, read one by one by a busy client, kept the
            # first probe 1 s away instead of first_probe. Its hint still counts.
            if before == "half_open" or (before == "closed" and circuit.failures >= threshold):
                circuit.probes = circuit.probes + 1 if before == "half_open" else 0
                period = open_period(cooldown if first_probe is None else first_probe, cooldown, circuit.probes, spread)
                circuit.open_until = max(circuit.open_until, now + max(period, hint or 0.0))
                circuit.probing_since = 0.0
            elif hint:
                # The server said how long it needs: nobody calls before that, but
                # not for a whole cool-down either (a routine 429 is not an outage).
                circuit.open_until = max(circuit.open_until, now + hint)
                circuit.probing_since = 0.0
            after = circuit_state(circuit.open_until, now)
            return before, CircuitView(after, circuit.open_until, circuit.failures, True, circuit.probes)

    async def release_probe(self, key: str, since: float) -> None:
        """See :meth:`StateStore.release_probe`."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is not None and circuit.probing_since == since:
                circuit.probing_since = 0.0

    async def record_success(self, key: str) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_success`."""
        with self._lock:
            circuit = self._circuits.pop(key, None)
            before: CircuitState = "closed"
            if circuit is not None and circuit.open_until:
                # Reported as half-open: normally the success is the probe's. A call
                # already in flight when the circuit opened may also end here; it
                # closes the circuit all the same (the provider answered).
                before = "half_open"
            return before, CircuitView("closed", 0.0, 0)

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
        """See :meth:`StateStore.reserve`."""
        with self._lock:
            state, reservation = _limit.reserve(
                self._rates.get(key, _NO_RATE),
                now,
                rate=rate,
                burst=burst,
                token_rate=token_rate,
                cost=cost,
                max_wait=max_wait,
                u=u,
                adaptive=adaptive,
                horizon=horizon,
            )
            self._rates[key] = state
            return reservation

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
        """See :meth:`StateStore.rate_feedback`."""
        with self._lock:
            state = self._rates[key] = _limit.feedback(
                self._rates.get(key, _NO_RATE),
                now,
                throttled=throttled,
                sent_at=sent_at,
                adaptive=adaptive,
                hint=hint,
                rate=rate,
                burst=burst,
                tokens=tokens,
            )
            return state.rate

    async def hold(self, key: str) -> tuple[float, float]:
        """See :meth:`StateStore.hold`."""
        state = self._rates.get(key, _NO_RATE)
        return state.not_before, state.spread

    def rate_state(self, key: str) -> RateState:
        """Rate limit ``key``'s whole state (for tests and diagnostics)."""
        return self._rates.get(key, _NO_RATE)

    async def acquire_slot(self, key: str, holder: str, now: float, *, limit: int, lease: float) -> bool:
        """See :meth:`StateStore.acquire_slot`."""
        with self._lock:
            holders = self._slots.setdefault(key, {})
            for stale in [name for name, until in holders.items() if until <= now]:
                del holders[stale]  # a holder that never released (its lease ran out)
            if len(holders) >= limit:
                return False
            holders[holder] = now + lease
            return True

    async def release_slot(self, key: str, holder: str) -> None:
        """See :meth:`StateStore.release_slot`."""
        with self._lock:
            holders = self._slots.get(key)
            if holders is not None:
                holders.pop(holder, None)
                if not holders:
                    del self._slots[key]


_NO_RATE = RateState()

_DEFAULT = MemoryStore()


def default_store() -> MemoryStore:
    """The process-wide store that budgets and breakers share unless given another.

    Example:
        >>> default_store() is default_store()
        True
    """
    return _DEFAULT
