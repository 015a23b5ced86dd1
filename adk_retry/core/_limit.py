"""``RateLimit``: admit calls at the provider's rate, configured or learnt; the pure decisions behind it.

Why a client-side limiter at all: measured against a provider that admits 40
requests/s (issue 11), retrying 429s made things worse, not better: 80 callers
honouring a 25 ms ``retry-after-ms`` came back together and collided again,
and a retry budget then refused the retries that would have succeeded. A
pacer at exactly the capacity had 100 % success and no 429. So calls wait
for *admission* before each attempt (retries included), in arrival order.

Three limits, each optional, all kept per scope in the
:class:`~adk_retry.core._store.StateStore` (so every process behind one Redis
holds one limit together):

- ``rpm``: a token bucket of requests, refilled at ``rpm / 60`` per second,
  ``burst`` deep (1 by default: calls are spaced evenly, ``60 / rpm`` apart,
  which no shorter provider window can refuse);
- ``tpm``: a token bucket of model tokens, refilled at ``tpm / 60`` per
  second and one second deep (a request larger than that waits for a full
  bucket and then goes, leaving the bucket in debt). A request's cost is
  estimated before it is sent (the adapter counts it with litellm's
  ``token_counter``, plus ``max_output_tokens``) and corrected from the
  response's ``usage_metadata``;
- ``max_concurrency``: attempts in flight at once (a slot is held from
  admission until the attempt ends, however it ends).

Buckets *reserve*: a call takes its place at once and is told how long to
wait (Go's ``golang.org/x/time/rate`` ``Reserve``), so the queue is fair
(first come, first admitted) and costs one store operation per admission,
with no polling. :func:`reserve` is that decision, pure, with the time as an
argument. A call whose wait would end past its deadline (the policy's
``timeout``, else ``max_wait``) takes nothing and fails at once with
:class:`~adk_retry.core._errors.RateLimitedError`, never a hang.

Server hints are admission times for the whole scope, not one caller's
private sleep: a 429 with ``Retry-After`` sets the scope's *not before*
(:func:`hold_after_hint`) and every admission waits for it, each caller
spread uniformly over the ``hint`` that follows, so they do not return
together. A hint is held no longer than the policy's ``max_hint_delay``
(the longest it would wait for a server at all).

Adaptive mode (``RateLimit(adaptive=True)``, with nothing else configured)
learns the rate from the provider's 429s, after the AWS SDKs' "adaptive"
retry mode (botocore ``retries/adaptive.py`` ``ClientRateLimiter``,
``retries/throttling.py`` ``CubicCalculator``, ``retries/bucket.py``
``TokenBucket``) and TCP's slow start, with these defaults:

- **slow start**: the first admission starts the rate at :data:`START_RATE`
  (5 requests/s, burst 1), and each answer that is not a throttle adds
  :data:`SLOW_START_GAIN` (3/s) while the rate holds callers back (so it
  grows about e-fold every 1/3 s of answers, not at all while demand is
  below it, and to at most :data:`SLOW_START_SCALE` (2) x the answered
  rate, so a client too busy to send at its rate does not grow it far past
  the provider's and then send its backlog at once, and the overshoot
  before the first 429 is seen stays small). botocore sends unlimited until the first throttle; measured
  (issue 11), 80 callers starting together then send 80 requests before
  any 429 can be seen, and at 40 requests/s burst 5 75 of them are refused;
- the **admitted rate** is measured from the answers that were not
  throttled (botocore's ``RateClocker`` counts all responses, in
  half-second windows, the newest weighted 0.8; here quarter-second
  windows, :data:`WINDOW`, so the reading keeps up with slow start), since
  what the provider admits is the rate to learn;
- the **first throttle** ends slow start: the rate goes to :data:`FLOOR`
  (0.95) x the admitted rate, but no lower than :data:`SS_BETA` (0.5) and
  no higher than :data:`BETA` (0.7) x the rate in use (slow start may have
  run far past the provider's rate before the first 429 came back);
- **later throttles** cut to the larger of 0.7 x the rate in use
  (botocore) and 0.95 x the admitted rate (a provider that admits 40/s
  while we send 42/s needs a 5 % cut, not 30 %);
- CUBIC's ``w_max``, where the rate levels off, is the admitted rate (the
  rate in use when the reading is below the cut: answers held up by a busy
  client); each answer grows the rate along ``0.4 * (t - K)**3 + w_max``,
  ``K = cbrt((w_max - rate after the cut) / 0.4)``, at most to twice the
  admitted rate, and an answer never lowers it (a lull is no throttle);
  never below 0.5 requests/s; a configured ``rpm`` is the ceiling;
- as TCP CUBIC once per window: a throttle of a request admitted (its place
  reserved) *before* the latest cut does not cut again (with 80 callers in
  flight, 80 429s of one wave would otherwise cut the rate by 0.7**80);
- places are reserved at most :data:`HORIZON` (0.1 s) ahead, so a cut
  applies to the callers already waiting.

The rate lives in the store, so a fleet shares it (:func:`feedback`).

Example:
    >>> from adk_retry import RetryPolicy
    >>> RetryPolicy.transient(rate_limit=RateLimit(rpm=600, max_concurrency=8)).rate_limit.rpm
    600.0
    >>> RateLimit(adaptive=True).adaptive
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adk_retry.core._scope import Scope

__all__ = [
    "BETA",
    "MIN_RATE",
    "SCALE",
    "RateLimit",
    "RateState",
    "Reservation",
    "clock_rate",
    "cubic_rate",
    "feedback",
    "hold_after_hint",
    "refill",
    "reserve",
]

SCALE = 0.4
"""CUBIC's scale constant C (botocore's ``_SCALE_CONSTANT``)."""
BETA = 0.7
"""CUBIC's multiplicative decrease (botocore's ``_BETA``)."""
MIN_RATE = 0.5
"""The lowest rate adaptive mode goes down to, requests per second (botocore's ``TokenBucket._MIN_RATE``)."""
MAX_RATE_SCALE = 2.0
"""The adaptive rate stays below this times the measured rate (botocore's ``_MAX_RATE_ADJUST_SCALE``)."""
SMOOTHING = 0.8
"""Weight of the newest window in the measured rate (botocore's ``RateClocker._DEFAULT_SMOOTHING``)."""
WINDOW = 0.25
"""Seconds per window of the measured rate (botocore's ``RateClocker._TIME_BUCKET_RANGE`` is 0.5).

Half botocore's, so the reading lags less: slow start doubles the rate in about 0.23 s, and
:data:`SLOW_START_SCALE` can only be tight where the reading keeps up with the rate (measured on the
bench, with :data:`SLOW_START_SCALE` 2: 0.040-0.060 429s per success over 12 runs, where 0.5 s windows
and a scale of 4 gave 0.033-0.115 over 9, at the same goodput; 0.5 s windows with a scale of 2 slowed the
slow start down to 0.81-0.90 x the capacity).
"""
START_RATE = 5.0
"""Adaptive mode's first rate, requests per second (slow start begins here)."""
SLOW_START_GAIN = 3.0
"""Requests/s added per answer in slow start, while the rate holds callers back (it grows ``e``-fold per 1/3 s)."""
SS_BETA = 0.5
"""The deepest cut at the end of slow start (TCP halves its window there): the rate may have overshot.

The cut goes to :data:`FLOOR` times the admitted rate, but between this and :data:`BETA` times the rate in use.
"""
SLOW_START_SCALE = 2.0
"""Slow start keeps the rate below this times the answered rate (a client too busy to use it proves nothing).

It bounds the overshoot: a token bucket gives no sign before its burst is spent, and the first 429
comes back a round trip later, 0.5-0.9 s on the bench's busy client (not 0.2 s), while each answer
still adds :data:`SLOW_START_GAIN`; past the provider's rate the answers level off at it, so the rate
stops at this times the provider's (at 4, the bench's rate reached 90-100/s against 40/s: 12-15 429s
from that alone, against a budget of 20 for 400 calls).
"""
FLOOR = 0.95
"""A cut goes no lower than this times the admitted rate (the answers that were not throttled)."""
HORIZON = 0.1
"""Adaptive mode reserves no further ahead than this: a caller with a longer wait asks again after it.

A place reserved at a rate that has changed since would keep its old time
(measured: 80 places reserved at a first, low estimate kept the fleet at
2 requests/s for 30 s while the learnt rate had doubled). botocore's bucket
re-evaluates its waiters on every rate change for the same reason.
"""


class RateLimit(BaseModel):
    """Admit calls to a model at a rate, a token rate and a concurrency; or learn the rate. Off unless set.

    Fields:
        rpm: requests per minute (a token bucket of ``burst``, refilled at ``rpm / 60`` per second).
        tpm: model tokens per minute, estimated before the request and
            corrected from the response's usage (one second's worth at once).
        max_concurrency: attempts in flight at once.
        burst: requests let through at once beyond the steady rate (1: evenly spaced).
        adaptive: learn the rate from the provider's 429s: a slow start from
            5 requests/s until the first 429, then cuts to 0.95 x the rate the
            provider admitted and CUBIC growth back to it (after the AWS SDK's
            adaptive retry mode; see the module docstring for every default);
            ``rpm``, when also set, is the ceiling. ``RateLimit(adaptive=True)``
            alone is "nothing configured".
        max_wait: the longest a call waits for admission when its policy has
            no ``timeout`` (with one, the time left of it): past it, the call
            fails with :class:`~adk_retry.core._errors.RateLimitedError`.
        lease: seconds a concurrency slot is held at most, so the slots of a
            process that died come back.
        scope: which calls share the limit (default: one per model).
        key: an explicit limit name, shared by everything that names it.

    Example:
        >>> RateLimit(rpm=2400, burst=5).rate
        40.0
        >>> RateLimit()
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for RateLimit
          Value error, RateLimit needs rpm, tpm, max_concurrency or adaptive=True ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    tpm: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    max_concurrency: int | None = Field(default=None, ge=1)
    burst: float = Field(default=1.0, ge=1.0, allow_inf_nan=False)
    adaptive: bool = False
    max_wait: float = Field(default=60.0, gt=0.0, allow_inf_nan=False)
    lease: float = Field(default=600.0, gt=0.0, allow_inf_nan=False)
    scope: Scope = "model"
    key: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something_to_limit(self) -> RateLimit:
        if self.rpm is None and self.tpm is None and self.max_concurrency is None and not self.adaptive:
            raise ValueError("RateLimit needs rpm, tpm, max_concurrency or adaptive=True (it would limit nothing)")
        return self

    @property
    def rate(self) -> float:
        """Requests per second (``rpm / 60``); 0 when ``rpm`` is not set."""
        return 0.0 if self.rpm is None else self.rpm / 60.0

    @property
    def token_rate(self) -> float:
        """Tokens per second (``tpm / 60``); 0 when ``tpm`` is not set."""
        return 0.0 if self.tpm is None else self.tpm / 60.0

    @property
    def metered(self) -> bool:
        """Whether rate state (buckets, hints, the learnt rate) is kept: anything but a concurrency cap alone."""
        return self.rpm is not None or self.tpm is not None or self.adaptive


@dataclass(frozen=True, slots=True)
class RateState:
    """One scope's rate state, as the store keeps it (all times wall-clock seconds; 0 = never).

    Attributes:
        tokens / updated: the request bucket's content and when it was last computed.
        ttokens / tupdated: the same for the model-token bucket.
        not_before / spread: no admission before ``not_before`` (a server hint);
            each caller goes at ``not_before + u * spread``.
        rate: the adaptive rate in requests/s (0: not learnt yet, no limit).
        w_max / k / last_fail: CUBIC's rate at the last throttle, its time to
            regain it, and when that throttle was.
        measured / count / window: the measured response rate, the responses
            counted in the current window, and the window's start.
    """

    tokens: float = 0.0
    updated: float = 0.0
    ttokens: float = 0.0
    tupdated: float = 0.0
    not_before: float = 0.0
    spread: float = 0.0
    rate: float = 0.0
    w_max: float = 0.0
    k: float = 0.0
    last_fail: float = 0.0
    measured: float = 0.0
    count: float = 0.0
    window: float = 0.0


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :func:`reserve` decided: go after ``wait`` seconds (its place is taken), or not at all.

    Example:
        >>> Reservation(True, 0.25).wait
        0.25
    """

    admitted: bool
    wait: float
    interval: float = 0.0
    """Seconds between requests at the rate in force (0: no request rate)."""


def refill(tokens: float, updated: float, now: float, rate: float, capacity: float) -> float:
    """A bucket's content at ``now``: ``tokens`` at ``updated`` plus ``rate`` per second, at most ``capacity``.

    A bucket never computed (``updated == 0``) is full. Time that runs
    backwards (a clock step between processes) adds nothing.

    Example:
        >>> refill(0.0, 10.0, 10.5, 4.0, 5.0), refill(-3.0, 10.0, 11.0, 2.0, 5.0), refill(0.0, 0.0, 9.0, 1.0, 5.0)
        (2.0, -1.0, 5.0)
    """
    if not updated:
        return capacity
    return min(capacity, tokens + max(0.0, now - updated) * rate)


def _admission_rate(state: RateState, rate: float, adaptive: bool) -> float:
    """The request rate in force: the configured one, or the learnt one under it (0: no request limit)."""
    if adaptive and state.rate > 0.0:
        return state.rate if rate <= 0.0 else min(rate, state.rate)
    return rate


def reserve(
    state: RateState,
    now: float,
    *,
    rate: float,
    burst: float,
    token_rate: float,
    cost: float,
    max_wait: float,
    u: float,
    adaptive: bool,
    horizon: float = math.inf,
) -> tuple[RateState, Reservation]:
    """How long until this call may go; and, when that is within ``max_wait``, its place taken.

    The call goes at the latest of: now; the scope's ``not_before`` plus its
    share ``u`` of the spread; when the request bucket holds one token; when
    the token bucket holds ``min(cost, one second's worth)``. Admitted, it
    takes one request token and ``cost`` model tokens (buckets may go
    negative: the debt is what makes the next caller wait its turn). Refused,
    the state is unchanged and ``wait`` says what it would have needed.

    Args:
        rate: requests per second (0: no request limit unless adaptive mode learnt one).
        burst: the request bucket's size.
        token_rate: model tokens per second (0: no token limit).
        cost: the call's estimated model tokens.
        max_wait: the longest wait the caller accepts.
        u: the caller's uniform draw in [0, 1), for the spread after a hint.
        adaptive: use the learnt rate (``state.rate``) when there is one.
        horizon: take no place further ahead than this (:data:`HORIZON` in
            adaptive mode): a longer wait is reported, not admitted, and the
            caller asks again later (``wait <= max_wait`` tells it from a refusal).

    Example:
        >>> state, first = reserve(RateState(), 100.0, rate=2.0, burst=1.0, token_rate=0.0, cost=0.0,
        ...                        max_wait=9.0, u=0.0, adaptive=False)
        >>> _, second = reserve(state, 100.0, rate=2.0, burst=1.0, token_rate=0.0, cost=0.0,
        ...                     max_wait=9.0, u=0.0, adaptive=False)
        >>> first.wait, second.wait
        (0.0, 0.5)
    """
    if adaptive and state.rate <= 0.0:
        state = replace(state, rate=START_RATE if rate <= 0.0 else min(rate, START_RATE))  # slow start
    start = now
    if state.not_before > now:
        start = state.not_before + u * state.spread
    requests = _admission_rate(state, rate, adaptive)
    tokens, base = state.tokens, now
    if requests > 0.0:
        tokens, base, ready = _ready(state.tokens, state.updated, now, requests, burst, 1.0)
        start = max(start, ready)
    ttokens, tbase = state.ttokens, now
    if token_rate > 0.0:
        ttokens, tbase, ready = _ready(
            state.ttokens, state.tupdated, now, token_rate, token_rate, min(cost, token_rate)
        )
        start = max(start, ready)
    wait = start - now
    interval = 1.0 / requests if requests > 0.0 else 0.0
    if wait > max_wait or wait > horizon:
        return state, Reservation(False, wait, interval)
    if requests > 0.0:
        state = replace(state, tokens=tokens - 1.0, updated=base)
    if token_rate > 0.0:
        state = replace(state, ttokens=ttokens - cost, tupdated=tbase)
    return state, Reservation(True, wait, interval)


def _ready(
    tokens: float, updated: float, now: float, rate: float, capacity: float, need: float
) -> tuple[float, float, float]:
    """A bucket's content, the time it is computed at, and when it holds ``need``.

    The bucket is computed at ``now``, or at ``updated`` when that is later
    (a bucket paused by a hint refills only from then on).
    """
    base = max(now, updated) if updated else now
    tokens = refill(tokens, updated, base, rate, capacity)
    ready = now if tokens >= need else base + (need - tokens) / rate
    return tokens, base, ready


def hold_after_hint(state: RateState, now: float, hint: float, *, rate: float, burst: float) -> RateState:
    """The state after a server asked the whole scope to wait ``hint`` seconds.

    ``not_before`` moves to ``now + hint`` (never earlier than it was), and
    callers arriving meanwhile go spread over the ``hint`` seconds after it.
    The request bucket pauses until then (it refills from ``not_before`` on,
    holding at most one token), so the callers queued behind the hint are
    released at the rate, not all at once.

    Example:
        >>> held = hold_after_hint(RateState(), 10.0, 2.0, rate=1.0, burst=5.0)
        >>> held.not_before, held.spread, held.tokens, held.updated
        (12.0, 2.0, 1.0, 12.0)
    """
    until = now + hint
    if until <= state.not_before:
        return state
    state = replace(state, not_before=until, spread=hint)
    if rate > 0.0:
        tokens = min(1.0, refill(state.tokens, state.updated, now, rate, burst))
        state = replace(state, tokens=tokens, updated=until)
    return state


def clock_rate(state: RateState, now: float) -> RateState:
    """Count one response into the measured rate (botocore's ``RateClocker.record``).

    Responses are counted per :data:`WINDOW` (a quarter second); when a window
    closes, its rate is folded in with weight 0.8. Before the first window
    closes, the rate is the count over the time since the first response, so
    that the first throttle of a stampede sees how fast it was sent.

    Example:
        >>> state = RateState()
        >>> for t in (10.0, 10.05, 10.1, 10.15):
        ...     state = clock_rate(state, t)
        >>> state.count, state.window
        (4.0, 10.0)
        >>> round(clock_rate(state, 10.3).measured, 2)
        16.0
    """
    window = math.floor(now / WINDOW) * WINDOW
    if not state.window:
        return replace(state, count=1.0, window=window)
    if window > state.window:
        current = (state.count + 1.0) / (window - state.window)
        measured = current * SMOOTHING + state.measured * (1.0 - SMOOTHING)
        return replace(state, measured=measured, count=0.0, window=window)
    return replace(state, count=state.count + 1.0)


def _measured(state: RateState, now: float) -> float:
    """The measured rate; before any window closed, the count so far over the time it took."""
    if state.measured > 0.0:
        return state.measured
    if state.window and state.count:
        return state.count / max(WINDOW, now - state.window)
    return 0.0


def cubic_rate(w_max: float, k: float, since_fail: float) -> float:
    """CUBIC's rate ``since_fail`` seconds after the last throttle (botocore's ``success_received``).

    Example:
        >>> k = ((10.0 * (1 - BETA)) / SCALE) ** (1 / 3)
        >>> round(cubic_rate(10.0, k, 0.0), 6), round(cubic_rate(10.0, k, k), 6)
        (7.0, 10.0)
    """
    return SCALE * (since_fail - k) ** 3 + w_max


def feedback(
    state: RateState,
    now: float,
    *,
    throttled: bool,
    sent_at: float,
    adaptive: bool,
    hint: float | None = None,
    rate: float = 0.0,
    burst: float = 1.0,
    tokens: float = 0.0,
) -> RateState:
    """The state after one attempt's answer: a throttle (a 429) or anything else.

    - ``tokens``: model tokens to add to the token bucket's debt (the
      response's usage minus the estimate; negative gives some back).
    - ``hint``: a throttle's server hint holds the whole scope (:func:`hold_after_hint`).
    - adaptive (see the module docstring): an answer that is not a throttle
      is counted into the measured admitted rate and grows the rate (by
      :data:`SLOW_START_GAIN` in slow start, to at most :data:`SLOW_START_SCALE`
      times the admitted rate, else along the CUBIC curve, to at most
      :data:`MAX_RATE_SCALE` times it); a throttle of a request sent at or after
      the latest decrease (``sent_at``) ends slow start and cuts the rate to
      :data:`BETA` times the rate in use, but not below :data:`FLOOR` times
      the admitted rate (what the provider is seen to admit), and sets
      ``w_max`` (where CUBIC levels off) to the admitted rate.

    ``rate`` and ``burst`` are the configured request limits (the ceiling in adaptive mode).

    Example:
        >>> state = feedback(RateState(rate=30.0, measured=20.0, window=5.0), 5.0, throttled=True, sent_at=4.9,
        ...                  adaptive=True)
        >>> round(state.rate, 6), state.w_max, state.last_fail
        (19.0, 20.0, 5.0)
    """
    if tokens:
        state = replace(state, ttokens=state.ttokens - tokens)
    if throttled and hint is not None and hint > 0.0:
        learnt = state.rate if adaptive and state.rate > 0.0 else 0.0
        paced = learnt if rate <= 0.0 else (rate if not learnt else min(rate, learnt))
        state = hold_after_hint(state, now, hint, rate=paced, burst=burst)
    if not adaptive:
        return state
    if throttled:
        if state.rate > 0.0 and sent_at < state.last_fail:
            return state  # sent under the rate before the latest cut: that cut already answered it
        measured = _measured(state, now)
        in_use = state.rate if state.rate > 0.0 else (rate if rate > 0.0 else START_RATE)
        admitted = min(measured, in_use) if measured > 0.0 else 0.0
        if state.w_max:
            new = max(MIN_RATE, in_use * BETA, admitted * FLOOR)
        else:  # the end of slow start: the rate may have run far past the provider's
            new = max(MIN_RATE, min(in_use * BETA, max(in_use * SS_BETA, admitted * FLOOR)))
        if rate > 0.0:
            new = min(new, rate)
        # CUBIC levels off at what the provider was seen to admit; a reading below the new rate
        # (answers held up by a busy client, not by the provider) says nothing: botocore's rate in use.
        w_max = admitted if admitted >= new else in_use
        k = ((w_max - new) / SCALE) ** (1.0 / 3.0)
        return replace(state, rate=new, w_max=w_max, k=k, last_fail=now)
    state = clock_rate(state, now)
    if state.rate <= 0.0:
        return state  # not started (no admission asked yet): nothing to grow
    if not state.w_max:  # slow start: no throttle yet
        if refill(state.tokens, state.updated, now, state.rate, burst) >= 1.0:
            return state  # the rate did not hold anyone back: it proved nothing (TCP's cwnd validation)
        measured = _measured(state, now)
        # No faster than SLOW_START_SCALE times what was answered: a client too busy to send at the rate it has
        # would otherwise grow it far past the provider's, and send that backlog at once later; and past the
        # provider's rate the answers level off at it, so this bounds the overshoot the first 429 comes back to.
        ceiling = SLOW_START_SCALE * measured if measured > 0.0 else math.inf
        new = max(state.rate, min(state.rate + SLOW_START_GAIN, ceiling))
    else:
        measured = _measured(state, now)
        ceiling = MAX_RATE_SCALE * measured if measured > 0.0 else math.inf
        # Never lower on an answer (a lull in demand is no throttle), and no faster than the answers show.
        new = max(state.rate, min(cubic_rate(state.w_max, state.k, now - state.last_fail), ceiling))
    if rate > 0.0:
        new = min(new, rate)
    return replace(state, rate=max(MIN_RATE, new))
