"""Capacity modes of :class:`~adk_retry.testing.server.FaultServer`: what an overloaded provider does.

Three independent modes sit in front of the fault script, checked in this order
for every chat request:

1. :class:`OutageWindow`: between ``start`` and ``end`` seconds every request
   gets an HTTP 503 (optionally with ``Retry-After``).
2. :class:`Capacity`: a token bucket admits ``rate`` requests per second with
   bursts of ``burst`` (and, optionally, ``tokens_per_minute`` estimated
   tokens); beyond it a 429 with ``Retry-After`` (whole seconds, rounded up)
   and ``retry-after-ms``, as OpenAI and Azure send them.
3. :class:`SlowFirstToken`: a seeded fraction ``p`` of the admitted requests
   stalls ``seconds`` before its answer starts (for a stream: before the
   first chunk).

A rejected request consumes no scripted fault and no bucket token. The gate
takes the time as an argument, so its decisions can be tested with an
injected clock (see :class:`CapacityGate`).

Example::

    with FaultServer(capacity=Capacity(rate=40, burst=5)) as server:
        server.outage(start=1.0, end=5.0)        # 503s from 1 s to 5 s from now
        server.slow_first_token(p=0.1, seconds=2.0, seed=7)
        ...
        print(server.admitted, server.rate_limited, server.unavailable)
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Literal

__all__ = ["Capacity", "CapacityGate", "Decision", "OutageWindow", "Outcome", "SlowFirstToken"]

Outcome = Literal["admitted", "rate_limited", "unavailable"]
"""What the capacity modes decided for one request."""


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class Capacity:
    """A token bucket: ``rate`` requests per second, ``burst`` at once, optionally ``tokens_per_minute``.

    The bucket starts full. Each admitted request takes one request token
    (and its estimated prompt tokens plus ``max_tokens``, if
    ``tokens_per_minute`` is set); a request that finds too few tokens gets a
    429 whose hints say when enough will be there.

    Example::

        Capacity(rate=40, burst=5)                        # 40 req/s, 5 at once
        Capacity(rate=10, burst=10, tokens_per_minute=30_000)
    """

    rate: float
    """Requests per second the bucket refills."""
    burst: int = 1
    """The bucket's size: how many requests may arrive at once."""
    tokens_per_minute: float | None = None
    """Estimated tokens per minute (about 4 characters a token); None: no token limit."""

    def __post_init__(self) -> None:
        _positive("Capacity.rate", self.rate)
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError(f"Capacity.burst must be an int >= 1, got {self.burst!r}")
        _positive("Capacity.tokens_per_minute", self.tokens_per_minute)


@dataclass(frozen=True)
class OutageWindow:
    """Every request fails with ``status`` from ``start`` to ``end`` seconds after the window is set.

    ``end=None`` lasts until :meth:`FaultServer.recover`. ``retry_after``
    (seconds) adds a ``Retry-After`` header to each error.

    Example::

        OutageWindow(start=0.0, end=4.0)                 # down for the first 4 s
        OutageWindow(start=2.0, end=None, status=502)    # down from 2 s on, until recover()
    """

    start: float = 0.0
    end: float | None = None
    status: int = 503
    retry_after: float | None = None

    def __post_init__(self) -> None:
        _positive("OutageWindow.start", self.start, allow_zero=True)
        _positive("OutageWindow.end", self.end, allow_zero=True)
        if self.end is not None and self.end < self.start:
            raise ValueError(f"OutageWindow.end ({self.end}) must not be before start ({self.start})")
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ValueError(f"OutageWindow.status must be an HTTP error status (400-599), got {self.status!r}")
        _positive("OutageWindow.retry_after", self.retry_after, allow_zero=True)


@dataclass(frozen=True)
class SlowFirstToken:
    """A fraction ``p`` of admitted requests stalls ``seconds`` before its answer starts.

    The draws come from ``random.Random(seed)``, one per admitted request in
    arrival order, so a run with the same arrival order stalls the same
    requests.

    Example::

        SlowFirstToken(p=0.1, seconds=2.0, seed=1)
    """

    p: float
    seconds: float
    seed: int = 0

    def __post_init__(self) -> None:
        _positive("SlowFirstToken.p", self.p, allow_zero=True)
        if self.p > 1:
            raise ValueError(f"SlowFirstToken.p must be a probability in [0, 1], got {self.p!r}")
        _positive("SlowFirstToken.seconds", self.seconds, allow_zero=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"SlowFirstToken.seed must be an int, got {self.seed!r}")


@dataclass(frozen=True)
class Decision:
    """The gate's answer for one request.

    Attributes:
        outcome: admitted, rate_limited (429) or unavailable (outage).
        status: the HTTP status to send when not admitted.
        headers: hint headers for a rejection; ``x-ratelimit-*`` for every answer under a capacity.
        message: the error message of a rejection.
        stall: seconds an admitted request waits before its answer starts.
    """

    outcome: Outcome
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    message: str = ""
    stall: float = 0.0


_ADMIT = Decision("admitted")


class CapacityGate:
    """The state of the three modes, shared by the server's requests; thread-safe.

    ``now`` is any monotonic clock in seconds (the server passes
    ``time.monotonic()``), so tests can drive it by hand.

    Example::

        gate = CapacityGate()
        gate.set_capacity(Capacity(rate=1, burst=1), now=0.0)
        assert gate.decide(0.0).outcome == "admitted"
        assert gate.decide(0.5).outcome == "rate_limited"   # next token at 1.0
        assert gate.decide(1.0).outcome == "admitted"
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._capacity: Capacity | None = None
        self._requests = 0.0
        self._tokens = 0.0
        self._last = 0.0
        self._outage: OutageWindow | None = None
        self._outage_origin = 0.0
        self._slow: SlowFirstToken | None = None
        self._draws: random.Random | None = None

    # -- configuration --------------------------------------------------------------

    def set_capacity(self, capacity: Capacity | None, *, now: float) -> None:
        """Install ``capacity`` (None: unlimited) with a full bucket."""
        if capacity is not None and not isinstance(capacity, Capacity):
            raise TypeError(f"expected Capacity or None, got {type(capacity).__name__}")
        with self._lock:
            self._capacity = capacity
            self._last = now
            if capacity is not None:
                self._requests = float(capacity.burst)
                self._tokens = capacity.tokens_per_minute or 0.0

    def set_outage(self, window: OutageWindow | None, *, now: float) -> None:
        """Install ``window``, its times counted from ``now`` (None: no outage)."""
        if window is not None and not isinstance(window, OutageWindow):
            raise TypeError(f"expected OutageWindow or None, got {type(window).__name__}")
        with self._lock:
            self._outage = window
            self._outage_origin = now

    def end_outage(self, *, now: float) -> None:
        """End the current outage at ``now``; a window that has not started yet is dropped."""
        with self._lock:
            window = self._outage
            if window is None:
                return
            start = self._outage_origin + window.start
            if now <= start:
                self._outage = None
            else:
                self._outage = OutageWindow(window.start, now - self._outage_origin, window.status, window.retry_after)

    def set_slow_first_token(self, slow: SlowFirstToken | None) -> None:
        """Install ``slow`` (None or ``p=0``: no stalls), restarting its seeded draws."""
        if slow is not None and not isinstance(slow, SlowFirstToken):
            raise TypeError(f"expected SlowFirstToken or None, got {type(slow).__name__}")
        with self._lock:
            self._slow = slow if slow is not None and slow.p > 0 else None
            self._draws = random.Random(self._slow.seed) if self._slow is not None else None

    def outage_times(self) -> tuple[float, float | None] | None:
        """The current outage as ``(start, end)`` on the gate's clock; None without one."""
        with self._lock:
            window = self._outage
            if window is None:
                return None
            end = None if window.end is None else self._outage_origin + window.end
            return self._outage_origin + window.start, end

    @property
    def counts_tokens(self) -> bool:
        """Whether a ``tokens_per_minute`` limit is on, so requests need their size estimated."""
        capacity = self._capacity
        return capacity is not None and capacity.tokens_per_minute is not None

    # -- decisions ------------------------------------------------------------------

    def decide(self, now: float, *, tokens: float = 0.0) -> Decision:
        """Admit or reject one request arriving at ``now`` whose estimated size is ``tokens``."""
        with self._lock:
            if self._in_outage(now):
                assert self._outage is not None
                window = self._outage
                headers = () if window.retry_after is None else (("Retry-After", _seconds(window.retry_after)),)
                return Decision("unavailable", window.status, headers, f"fault-injected outage: HTTP {window.status}")
            limited = self._take(now, tokens)
            if limited is not None:
                return limited
            stall = 0.0
            if self._slow is not None and self._draws is not None and self._draws.random() < self._slow.p:
                stall = self._slow.seconds
            if self._capacity is None and not stall:
                return _ADMIT
            return Decision("admitted", headers=self._limit_headers(), stall=stall)

    def _in_outage(self, now: float) -> bool:
        window = self._outage
        if window is None:
            return False
        elapsed = now - self._outage_origin
        return elapsed >= window.start and (window.end is None or elapsed < window.end)

    def _take(self, now: float, tokens: float) -> Decision | None:
        """Refill the buckets to ``now`` and take one request (and ``tokens``); a 429 if they cannot."""
        capacity = self._capacity
        if capacity is None:
            return None
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        self._requests = min(float(capacity.burst), self._requests + elapsed * capacity.rate)
        wait = 0.0 if self._requests >= 1.0 else (1.0 - self._requests) / capacity.rate
        what = f"requests: limit {capacity.rate:g}/s, burst {capacity.burst}"
        per_minute = capacity.tokens_per_minute
        if per_minute is not None:
            self._tokens = min(per_minute, self._tokens + elapsed * per_minute / 60)
            if tokens > per_minute:
                # Like OpenAI's "Request too large": no wait would help, so no hint either.
                return Decision(
                    "rate_limited", 429, (), f"Request too large: {tokens:.0f} tokens, limit {per_minute:g} per minute"
                )
            if self._tokens < tokens:
                token_wait = (tokens - self._tokens) / (per_minute / 60)
                if token_wait > wait:
                    wait, what = token_wait, f"tokens: limit {per_minute:g}/min, requested {tokens:.0f}"
        if wait > 0:
            headers = (
                ("Retry-After", str(max(1, math.ceil(wait)))),
                ("retry-after-ms", str(max(1, math.ceil(wait * 1000)))),
                *self._limit_headers(),
            )
            return Decision(
                "rate_limited",
                429,
                headers,
                f"Rate limit reached for {what}. Please try again in {math.ceil(wait * 1000)}ms.",
            )
        self._requests -= 1.0
        if per_minute is not None:
            self._tokens -= tokens
        return None

    def _limit_headers(self) -> tuple[tuple[str, str], ...]:
        """OpenAI-style ``x-ratelimit-*`` headers: the bucket's size, what is left, when it is full."""
        capacity = self._capacity
        if capacity is None:
            return ()
        reset = (capacity.burst - self._requests) / capacity.rate
        return (
            ("x-ratelimit-limit-requests", str(capacity.burst)),
            ("x-ratelimit-remaining-requests", str(max(0, math.floor(self._requests)))),
            ("x-ratelimit-reset-requests", f"{max(0, math.ceil(reset * 1000))}ms"),
        )


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
