"""The bench's rate scenario simulated on the pure decisions: an injected clock, no I/O, no noise.

80 callers make 5 calls each against a provider admitting 40 requests/s (token
bucket, burst 5) that answers 429 with the time until its next token beyond
it; each request takes ``latency`` (half there, half back, +-25 %). A caller
asks the adaptive limit for admission, waits what it says (asking again
after the horizon), and retries a 429 after its hint (+ up to 10 %), as the
engine does. Goodput is answers per second over the run / capacity.
"""

from __future__ import annotations

import heapq
import itertools
import random

import pytest

from adk_retry.core._limit import HORIZON, RateState, feedback, reserve

T0 = 1000.0


def simulate(
    latency: float, seed: int, *, callers: int = 80, calls: int = 5, capacity: float = 40.0
) -> tuple[float, float]:
    """(goodput / capacity, 429s per success) of one run."""
    rnd = random.Random(seed)
    state = RateState()
    burst, tokens, updated = 5.0, 5.0, T0
    events: list[tuple[float, int, str, int, float]] = []
    order = itertools.count()
    left = dict.fromkeys(range(callers), calls)
    sent: dict[int, float] = {}
    ok = rejected = 0
    end = T0

    def at(t: float, what: str, caller: int, hint: float = 0.0) -> None:
        heapq.heappush(events, (t, next(order), what, caller, hint))

    def trip() -> float:
        return latency / 2 * (1 + 0.5 * (rnd.random() - 0.5))

    for caller in range(callers):
        at(T0, "ask", caller)
    while events:
        now, _, what, caller, hint = heapq.heappop(events)
        if what == "ask":
            state, reservation = reserve(
                state, now, rate=0.0, burst=1.0, token_rate=0.0, cost=0.0, max_wait=60.0, u=rnd.random(),
                adaptive=True, horizon=HORIZON,
            )  # fmt: skip
            if reservation.admitted:
                sent[caller] = now
                at(now + reservation.wait + trip(), "arrive", caller)
            else:
                at(now + min(reservation.wait, HORIZON), "ask", caller)
        elif what == "arrive":
            tokens, updated = min(burst, tokens + (now - updated) * capacity), now
            if tokens >= 1.0:
                tokens -= 1.0
                at(now + trip(), "ok", caller)
            else:
                at(now + trip(), "429", caller, (1.0 - tokens) / capacity)
        else:
            throttled = what == "429"
            state = feedback(state, now, throttled=throttled, sent_at=sent[caller], adaptive=True, hint=hint or None)
            if throttled:
                rejected += 1
                at(now + hint * (1 + 0.1 * rnd.random()), "ask", caller)
            else:
                ok += 1
                end = max(end, now)
                left[caller] -= 1
                if left[caller]:
                    at(now, "ask", caller)
    return callers * calls / (end - T0) / capacity, rejected / ok


@pytest.mark.parametrize(
    ("latency", "goodput", "rejected"),
    [
        (0.02, 0.95, 0.04),  # a fast loopback provider: the targets (0.95, 0.05) are met
        (0.1, 0.92, 0.06),  # 100 ms a request: slow start and each cut take longer to be seen
    ],
)
def test_the_fleet_converges_without_a_stampede(latency: float, goodput: float, rejected: float) -> None:
    for seed in range(3):
        got_goodput, got_rejected = simulate(latency, seed)
        assert got_goodput >= goodput
        assert got_rejected <= rejected
