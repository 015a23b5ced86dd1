"""The bench's rate scenario simulated on the pure decisions: an injected clock, no I/O, no noise.

80 callers make 5 calls each against a provider admitting 40 requests/s (token
bucket, burst 5) that answers 429 with the time until its next token beyond
it; each request takes ``latency`` (half there, half back, +-25 %). A caller
asks the adaptive limit for admission, waits what it says (asking again
after the horizon), and retries a 429 after its hint (+ up to 10 %), as the
engine does. Goodput is answers per second over the run / capacity.

``cpu`` models a client that is itself near its limit, as on the bench's
machine (the pacer reaches 0.96 x of 40/s there): each answer takes ``cpu``
seconds of one client CPU, in arrival order, before the limiter sees it.
Traced on the bench, answers took 0.15-0.25 s at 40/s and 0.5-0.9 s during
the slow start's overshoot (80 requests/s sent), so its 429s came back late.
"""

from __future__ import annotations

import heapq
import itertools
import random

import pytest

from adk_retry.core._limit import HORIZON, RateState, feedback, reserve

T0 = 1000.0


def simulate(
    latency: float, seed: int, *, callers: int = 80, calls: int = 5, capacity: float = 40.0, cpu: float = 0.0
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
    busy = T0  # when the client's CPU is free for the next answer

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
                at(now + trip(), "cpu ok", caller)
            else:
                at(now + trip(), "cpu 429", caller, (1.0 - tokens) / capacity)
        elif what.startswith("cpu "):  # the answer waits for the client's CPU
            busy = max(busy, now) + cpu
            at(busy, what[4:], caller, hint)
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
    ("latency", "cpu", "goodput", "rejected"),
    [
        (0.02, 0.0, 0.95, 0.03),  # a fast loopback provider: the targets (0.95, 0.05) are met
        (0.1, 0.0, 0.9, 0.03),  # 100 ms a request: slow start and each cut take longer to be seen
        # The bench's client (45 answers/s of CPU): the overshoot's 429s come back late. Slow start capped at
        # 2x the answered rate in quarter-second windows keeps it to 0.03-0.04 per success (0.040-0.060 on the
        # bench); the former 4x in half-second windows: 0.04-0.12 here, at goodput 0.91-0.93.
        (0.15, 0.022, 0.89, 0.05),
    ],
)
def test_the_fleet_converges_without_a_stampede(latency: float, cpu: float, goodput: float, rejected: float) -> None:
    for seed in range(3):
        got_goodput, got_rejected = simulate(latency, seed, cpu=cpu)
        assert got_goodput >= goodput
        assert got_rejected <= rejected
