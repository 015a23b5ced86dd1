"""A store that fails open: an error of the store itself never fails the model call it guards.

:class:`~adk_retry.guards.RedisStore` already falls back to memory on its own
errors; a store of the user's own (any :class:`~adk_retry.core._store.StateStore`)
may not. So the engine talks to such a store through :class:`FailOpen`: an
operation that raises (not a cancellation) answers as if there were no guard
(a token is granted, the circuit is closed, the rate limit admits the call) and one warning per store and
operation says so. A provider hiccup must never become an outage of the
guard's making.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from adk_retry.core._limit import Reservation
from adk_retry.core._store import CircuitState, CircuitView, StateStore
from adk_retry.observability._log import describe, logger

__all__ = ["FailOpen", "fail_open"]

_CLOSED = CircuitView("closed", 0.0, 0, True)
_ADMITTED = Reservation(True, 0.0)


class FailOpen:
    """``store``'s operations, each answering "no guard" when the store raises.

    Example:
        >>> import asyncio
        >>> class Broken:
        ...     async def take_token(self, key, *, max_tokens):
        ...         raise ConnectionError("store down")
        >>> asyncio.run(FailOpen(Broken()).take_token("k", max_tokens=1))
        True
    """

    __slots__ = ("_warned", "store")

    def __init__(self, store: Any) -> None:
        self.store = store
        self._warned: set[str] = set()

    def _failed(self, operation: str, exc: Exception) -> None:
        with _lock:
            if operation in self._warned:
                return
            self._warned.add(operation)
        logger.warning(
            "State store %s failed in %s (%s); going on as if unguarded",
            type(self.store).__name__,
            operation,
            describe(exc),
        )

    async def _call(self, operation: str, unguarded: Any, *args: Any, **kwargs: Any) -> Any:
        """``store.<operation>(*args, **kwargs)``, or ``unguarded`` (and one warning) when it raises."""
        try:
            return await getattr(self.store, operation)(*args, **kwargs)
        except Exception as exc:
            self._failed(operation, exc)
            return unguarded

    async def take_token(self, key: str, *, max_tokens: float) -> bool:
        """See :meth:`StateStore.take_token`; True when the store fails."""
        return bool(await self._call("take_token", True, key, max_tokens=max_tokens))

    async def refund(self, key: str, amount: float, *, max_tokens: float) -> None:
        """See :meth:`StateStore.refund`."""
        await self._call("refund", None, key, amount, max_tokens=max_tokens)

    async def tokens(self, key: str, *, max_tokens: float) -> float:
        """See :meth:`StateStore.tokens`; a full bucket when the store fails."""
        return float(await self._call("tokens", max_tokens, key, max_tokens=max_tokens))

    async def admit(self, key: str, now: float, *, probe_timeout: float) -> CircuitView:
        """See :meth:`StateStore.admit`; a closed circuit when the store fails."""
        view: CircuitView = await self._call("admit", _CLOSED, key, now, probe_timeout=probe_timeout)
        return view

    async def record_failure(self, key: str, now: float, **settings: Any) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_failure`; nothing opens when the store fails."""
        result: tuple[CircuitState, CircuitView] = await self._call(
            "record_failure", ("closed", _CLOSED), key, now, **settings
        )
        return result

    async def release_probe(self, key: str, since: float) -> None:
        """See :meth:`StateStore.release_probe`."""
        await self._call("release_probe", None, key, since)

    async def record_success(self, key: str) -> tuple[CircuitState, CircuitView]:
        """See :meth:`StateStore.record_success`."""
        result: tuple[CircuitState, CircuitView] = await self._call("record_success", ("closed", _CLOSED), key)
        return result

    # The rate limit's operations: a store that is down admits every call at once, as if unlimited.

    async def reserve(self, key: str, now: float, **settings: Any) -> Reservation:
        """See :meth:`StateStore.reserve`; admitted at once when the store fails."""
        reservation: Reservation = await self._call("reserve", _ADMITTED, key, now, **settings)
        return reservation

    async def rate_feedback(self, key: str, now: float, **settings: Any) -> float:
        """See :meth:`StateStore.rate_feedback`; no learnt rate (NaN) when the store fails."""
        return float(await self._call("rate_feedback", math.nan, key, now, **settings))

    async def hold(self, key: str) -> tuple[float, float]:
        """See :meth:`StateStore.hold`; no hint in force when the store fails."""
        not_before, spread = await self._call("hold", (0.0, 0.0), key)
        return float(not_before), float(spread)

    async def acquire_slot(self, key: str, holder: str, now: float, *, limit: int, lease: float) -> bool:
        """See :meth:`StateStore.acquire_slot`; a slot when the store fails."""
        return bool(await self._call("acquire_slot", True, key, holder, now, limit=limit, lease=lease))

    async def release_slot(self, key: str, holder: str) -> None:
        """See :meth:`StateStore.release_slot`."""
        await self._call("release_slot", None, key, holder)

    def __getattr__(self, name: str) -> Any:
        # Operations added to the protocol later reach the store as they are.
        return getattr(self.store, name)


_lock = threading.Lock()
_wrapped: dict[int, tuple[Any, FailOpen]] = {}


def fail_open(store: StateStore) -> StateStore:
    """``store`` itself if it already fails open (the built-in stores), else its :class:`FailOpen` (cached)."""
    from adk_retry.guards._store import MemoryStore

    if isinstance(store, MemoryStore) or type(store).__name__ == "RedisStore":
        return store
    entry = _wrapped.get(id(store))
    if entry is None or entry[0] is not store:
        with _lock:
            if len(_wrapped) > 256:  # stores made on the fly must not pile up here
                _wrapped.clear()
            entry = _wrapped[id(store)] = (store, FailOpen(store))
    return entry[1]
