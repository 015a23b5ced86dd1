"""Admission under a :class:`~adk_retry.core._limit.RateLimit`: the store I/O and the waiting.

The decisions are pure (:mod:`adk_retry.core._limit`); this module does what
they say, in order, for one attempt:

1. a concurrency slot (``max_concurrency``): taken from the store (shared by
   every process on it, with a lease so a dead process's slots come back).
   While none is free, callers of this process wait in a FIFO queue per
   scope: only the head asks the store, and a release here wakes it at once;
   slots released by *other* processes are seen by polling every
   :data:`POLL` seconds (Redis has no cheap wake-up we could rely on).
2. a place in the rate buckets (``rpm``, ``tpm``, a server hint, the learnt
   rate): one store operation reserves it and says how long to wait, which
   is then slept (not under ``no_waits``). A caller that slept looks at the
   scope's hint once more: one that arrived meanwhile holds it too.
3. the spacing between this process's *actual* releases: a busy event loop
   wakes sleepers late, and callers whose slots have all passed would reach
   the provider together (measured: 0.07 429s per success at exactly the
   capacity, where a pacer that spaces actual releases had none). So each
   release also waits until one interval of the rate in force after this
   process's previous release of the scope.

Whatever would end past the deadline is refused at once with :class:`Refused`
(the engine turns it into :class:`~adk_retry.core._errors.RateLimitedError`
or the original failure), with nothing spent; cancellation gives the slot
back. The slot goes back when the attempt ends (:func:`release`), and the
attempt's answer is folded into the limit (:func:`report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import uuid
from collections import deque
from dataclasses import dataclass

from adk_retry.core import _clock as clock
from adk_retry.core._limit import HORIZON, RateLimit
from adk_retry.core._store import StateStore

__all__ = ["POLL", "Refused", "Ticket", "admit", "release", "report"]

POLL = 0.05
"""Seconds between a waiting head's looks at the store for a slot freed by another process."""

_PROCESS = uuid.uuid4().hex[:12]
_holders = itertools.count(1)


class Refused(Exception):
    """Admission would end past the deadline: ``wait`` is what it would have needed.

    Internal: the engine raises :class:`~adk_retry.core._errors.RateLimitedError`
    (first attempt) or the original failure (a retry) instead.
    """

    def __init__(self, wait: float, limit: str) -> None:
        super().__init__(f"{limit}: {wait:.3f} s")
        self.wait = wait
        self.limit = limit


@dataclass(slots=True)
class Ticket:
    """One admitted attempt: its concurrency slot (if any), when its place was reserved, what it waited."""

    holder: str | None
    sent_at: float
    waited: float


@dataclass(slots=True, eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    event: asyncio.Event

    def wake(self) -> None:
        # The queue is shared by every thread's loop (sync Runner turns): wake on the waiter's own.
        with contextlib.suppress(RuntimeError):  # its loop has closed: nobody is waiting there any more
            self.loop.call_soon_threadsafe(self.event.set)


_queues: dict[tuple[int, str], deque[_Waiter]] = {}
_released: dict[tuple[int, str], float] = {}
"""Per (store, scope): the wall time this process's latest admitted request was released at."""


async def _slot(store: StateStore, key: str, limit: RateLimit, max_wait: float, now: clock.Clock) -> tuple[str, float]:
    """A concurrency slot of ``key``, in arrival order within this process; returns (holder, seconds waited)."""
    assert limit.max_concurrency is not None
    holder = f"{_PROCESS}:{next(_holders)}"
    queue = _queues.get((id(store), key))
    if not queue and await _acquire(store, key, holder, limit, now):
        return holder, 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    queue = _queues.setdefault((id(store), key), deque())
    me = _Waiter(loop, asyncio.Event())
    queue.append(me)
    try:
        while True:
            if queue[0] is me and await _acquire(store, key, holder, limit, now):
                return holder, loop.time() - started
            left = max_wait - (loop.time() - started)
            if left <= 0.0:
                raise Refused(loop.time() - started, "concurrency")
            me.event.clear()
            try:
                async with asyncio.timeout(min(POLL, left)):
                    await me.event.wait()
            except TimeoutError:
                pass
    finally:
        head = queue[0] is me
        queue.remove(me)
        if not queue:
            _queues.pop((id(store), key), None)
        elif head:
            queue[0].wake()  # the next in line asks now, not at its next poll


async def _acquire(store: StateStore, key: str, holder: str, limit: RateLimit, now: clock.Clock) -> bool:
    """One try at a slot for ``holder``; cancelled meanwhile, the slot is given back.

    A remote store may have taken it when the cancellation lands, before its
    reply was read: the slot would stay taken until its lease ran out.
    """
    assert limit.max_concurrency is not None
    try:
        return await store.acquire_slot(key, holder, now(), limit=limit.max_concurrency, lease=limit.lease)
    except BaseException:
        await store.release_slot(key, holder)  # nothing when it holds none
        raise


def _wake_next(store: StateStore, key: str) -> None:
    queue = _queues.get((id(store), key))
    if queue:
        queue[0].wake()


async def admit(
    store: StateStore,
    key: str,
    limit: RateLimit,
    *,
    cost: float,
    max_wait: float,
    u: float,
    now: clock.Clock,
    sleep: clock.Sleep,
) -> Ticket:
    """Wait for one attempt's admission under ``limit`` (see the module docstring).

    Raises:
        Refused: admission would take longer than ``max_wait`` seconds; nothing is spent.
    """
    holder: str | None = None
    waited = 0.0
    if limit.max_concurrency is not None:
        holder, waited = await _slot(store, key, limit, max_wait, now)
    # When its place was reserved, at the rate in force then: a throttle of a request reserved
    # before the latest cut was paced by the old rate, and must not cut the new one again.
    reserved_at = now()
    try:
        if limit.metered:
            placed, reserved_at = await _place(
                store, key, limit, cost=cost, max_wait=max_wait - waited, u=u, now=now, sleep=sleep
            )
            waited += placed
    except BaseException:
        # Refused, cancelled, or the store failed: the slot is not used.
        if holder is not None:
            await _give_back(store, key, holder)
        raise
    return Ticket(holder, reserved_at, waited)


async def _place(
    store: StateStore,
    key: str,
    limit: RateLimit,
    *,
    cost: float,
    max_wait: float,
    u: float,
    now: clock.Clock,
    sleep: clock.Sleep,
) -> tuple[float, float]:
    """Reserve a place in the rate buckets and wait for it; returns the seconds waited and when it was reserved.

    Adaptive mode reserves at most :data:`~adk_retry.core._limit.HORIZON`
    ahead: a caller told to wait longer sleeps that long and asks again, so a
    rate learnt meanwhile applies to it.
    """
    horizon = HORIZON if limit.adaptive else math.inf
    asked = 0.0
    while True:
        reserved_at = now()  # a caller that asks again is paced by the rate of its last ask
        reservation = await store.reserve(
            key,
            reserved_at,
            rate=limit.rate,
            burst=limit.burst,
            token_rate=limit.token_rate,
            cost=cost,
            max_wait=max(0.0, max_wait - asked),
            u=u,
            adaptive=limit.adaptive,
            horizon=horizon,
        )
        if reservation.admitted:
            break
        if reservation.wait > max_wait - asked:
            raise Refused(asked + reservation.wait, "rate")
        if not clock.waits_enabled():
            return asked + reservation.wait, reserved_at  # under no_waits nothing waits, nothing is reserved
        later = min(reservation.wait, horizon)
        await sleep(later)
        asked += later
    wait = reservation.wait
    if not clock.waits_enabled():
        return asked + wait, reserved_at
    if wait > 0.0:
        await sleep(wait)
        # A hint that came while this caller slept holds it too (its place was taken before it).
        not_before, spread = await store.hold(key)
        more = not_before + u * spread - now()
        if not_before and more > 0.0:
            if wait + more > max_wait:
                raise Refused(wait + more, "rate")
            await sleep(more)
            wait += more
    if reservation.interval > 0.0:
        wait += await _spaced(store, key, reservation.interval, now, sleep)
    return asked + wait, reserved_at


async def _spaced(store: StateStore, key: str, interval: float, now: clock.Clock, sleep: clock.Sleep) -> float:
    """Wait until ``interval`` after this process's previous release of ``key``; returns the seconds waited.

    The turn is taken before sleeping, so callers woken together leave one interval apart.
    """
    scope = (id(store), key)
    at = now()
    turn = max(at, _released.get(scope, -math.inf) + interval)
    if len(_released) > 4096:  # scopes made on the fly must not grow this without bound
        _released.clear()
    _released[scope] = turn
    if turn <= at:
        return 0.0
    await sleep(turn - at)
    return turn - at


async def _give_back(store: StateStore, key: str, holder: str) -> None:
    try:
        await store.release_slot(key, holder)
    finally:
        _wake_next(store, key)


async def release(store: StateStore, key: str, ticket: Ticket) -> None:
    """The attempt ended: give its concurrency slot back and wake the next caller of this process."""
    if ticket.holder is not None:
        holder, ticket.holder = ticket.holder, None
        await _give_back(store, key, holder)


async def report(
    store: StateStore,
    key: str,
    limit: RateLimit,
    now: float,
    *,
    ticket: Ticket,
    throttled: bool,
    hint: float | None,
    tokens: float,
) -> float:
    """Fold one attempt's answer into the limit (hint, learnt rate, token correction); returns the learnt rate.

    Only what changes something reaches the store: a success of a
    configured ``rpm`` limit with nothing to correct costs nothing.
    """
    if not limit.metered or not (throttled or limit.adaptive or tokens):
        return math.nan
    return await store.rate_feedback(
        key,
        now,
        throttled=throttled,
        sent_at=ticket.sent_at,
        adaptive=limit.adaptive,
        hint=hint if throttled else None,
        rate=limit.rate,
        burst=limit.burst,
        tokens=tokens,
    )
