"""``CircuitBreaker``: stop calling a model that keeps failing, and let calls wait for it to come back.

closed -> open after ``failure_threshold`` consecutive transient failures
(or at once when the server says how long to wait: a 429 with
``Retry-After`` opens it at least that long, up to the policy's
``max_hint_delay``). While open, nothing is sent
to the provider. When the open period ends, ONE probe call per scope is let
through (half-open; one across every process sharing a
:class:`~adk_retry.guards.RedisStore`): its success closes the circuit, its
failure opens it again for a longer period. The open periods follow a
growing schedule, :func:`probe_interval`: ``first_probe`` seconds, then
doubling up to ``cooldown`` (defaults: 0.25 s, then 0.5 s), each shortened by up to ``probe_jitter`` so
that circuits opened together do not probe together.

A call that meets an open circuit (at its start, or before a retry) and
still has time (what is left of the policy's ``timeout``, or ``max_wait``)
waits for the probe and goes as soon as it succeeds; a call whose time would
run out before the next probe fails at once: with
:class:`~adk_retry.CircuitOpenError` when it has made no attempt yet, with
its own last error when it has. The decisions are the pure functions below
(:func:`wait_limit`, :func:`circuit_wait`); the engine does the waiting.

Failures that are not transient (a 400, an authentication error) say
nothing about the provider's health and are not counted.

The defaults, against LiteLLM's Router cooldowns (litellm 1.106-1.110,
``Router(cooldown_time=None, allowed_fails=None)``): the Router takes a
deployment out for a fixed ``cooldown_time`` (default
``DEFAULT_COOLDOWN_TIME_SECONDS`` = 5 s, although its docstring says 1)
after more than ``allowed_fails`` failures in a minute (``litellm.allowed_fails``
= 3) or, by default, when over 50 % of at least 5 requests in the minute
failed; a model group with a single deployment is never cooled down that
way (only after 1000 requests a minute that all failed), and after the
cooldown every caller returns at once, with no probe. This breaker opens
after 5 consecutive transient failures, probes after 0.25 s, then every
0.5 s (never later than ``cooldown`` = 0.5 s, each period up to 20 % shorter),
one request per scope: a provider that comes back is probed within half a
second, and a dead one gets at most 2.5 requests per second (one per open
period of 0.4-0.5 s) from the whole fleet, however many callers wait
(LiteLLM's Router, where it cools a deployment down at all: no request for
5 s, then every caller at once).

Why 0.5 s and not 1 s: the time from a provider's recovery to the next probe
is spread evenly over one open period, so the cap is what a short outage
costs every waiting caller, on top of the time the released callers
themselves take (40 LiteLlm calls released together on a healthy provider:
half answered after 0.27-0.46 s on a 2-core machine). In the overload
bench's outage (40 waiting callers), half of them were answered 0.45-1.30 s
after recovery with a 1 s cap and 0.59-0.94 s with 0.5 s. A shorter cap would
cut that further only by sending more to a dead provider: 0.25 s is 4
requests per second per scope, 0.1 per caller per second for 40 callers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from adk_retry.core._scope import Scope

if TYPE_CHECKING:
    from adk_retry.core._store import CircuitView

__all__ = ["CircuitBreaker", "circuit_wait", "open_period", "probe_interval", "wait_limit"]


class CircuitBreaker(BaseModel):
    """Stop calling a model that is down, and let calls with time left wait for it. Off unless set on a policy.

    Fields:
        failure_threshold: consecutive transient failures that open it.
        first_probe: seconds the circuit stays open before its first probe
            (capped by ``cooldown``).
        cooldown: the longest open period: after each failed probe the
            period doubles from ``first_probe`` up to this. It bounds the
            goodput a provider that has come back loses (at most
            ``cooldown`` seconds until the probe) and sets the load on a dead
            one (one request per ``cooldown`` per scope, at most). LiteLLM's
            Router: a fixed 5 s ``cooldown_time``, then all callers at once.
        probe_jitter: each open period is shortened by up to this share,
            at random, so circuits opened together do not probe together.
        probe_timeout: seconds after which a probe that has not reported is
            presumed lost and another caller may probe.
        max_wait: the longest one call waits for an open circuit, in all.
            None: as long as the policy's ``timeout`` leaves; with neither,
            a call does not wait and fails fast. The policy's ``timeout``
            always bounds the wait.
        scope: which calls share the breaker (default: one per model).
        key: an explicit breaker name, shared by everything that names it.

    Example:
        >>> from adk_retry import RetryPolicy
        >>> policy = RetryPolicy(timeout=30, breaker=CircuitBreaker(failure_threshold=3))
        >>> policy.breaker.first_probe, policy.breaker.cooldown
        (0.25, 0.5)
        >>> CircuitBreaker(cooldown=30, first_probe=30).cooldown  # the 0.1 behaviour: 30 s, no growth
        30.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    first_probe: float = Field(default=0.25, gt=0.0, allow_inf_nan=False)
    cooldown: float = Field(default=0.5, gt=0.0, allow_inf_nan=False)
    probe_jitter: float = Field(default=0.2, ge=0.0, lt=1.0)
    probe_timeout: float = Field(default=10.0, gt=0.0, allow_inf_nan=False)
    max_wait: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    scope: Scope = "model"
    key: str | None = Field(default=None, min_length=1)


def open_period(first: float, cap: float, probes: int, spread: float = 0.0) -> float:
    """How long a circuit stays open after ``probes`` failed probes: ``min(cap, first * 2**probes) * (1 - spread)``.

    The stores compute the same expression (the Redis one in Lua), so it
    lives here once, in the form both can follow. ``spread`` is
    ``probe_jitter * u``, drawn by the caller.

    Example:
        >>> [open_period(0.25, 1.0, n) for n in range(4)]
        [0.25, 0.5, 1.0, 1.0]
        >>> open_period(0.25, 1.0, 0, spread=0.2)
        0.2
    """
    return min(cap, first * 2.0 ** min(probes, 64)) * (1.0 - spread)


def probe_interval(breaker: CircuitBreaker, probes: int, u: float = 0.0) -> float:
    """The breaker's open period after ``probes`` failed probes (0: just opened), ``u`` in [0, 1) for jitter.

    Example:
        >>> breaker = CircuitBreaker()
        >>> [probe_interval(breaker, n) for n in range(4)], probe_interval(breaker, 0, u=0.5)
        ([0.25, 0.5, 0.5, 0.5], 0.225)
    """
    return open_period(min(breaker.first_probe, breaker.cooldown), breaker.cooldown, probes, breaker.probe_jitter * u)


def wait_limit(breaker: CircuitBreaker, *, time_left: float | None, waited: float) -> float:
    """Seconds a call may still wait for an open circuit.

    ``time_left``: what is left of the policy's ``timeout`` (None: no
    timeout); ``waited``: seconds this call has waited for the circuit
    already. With neither a timeout nor ``max_wait``, a call does not wait.

    Example:
        >>> wait_limit(CircuitBreaker(), time_left=None, waited=0.0)
        0.0
        >>> wait_limit(CircuitBreaker(), time_left=3.0, waited=1.0)
        3.0
        >>> wait_limit(CircuitBreaker(max_wait=2.0), time_left=None, waited=0.5)
        1.5
        >>> wait_limit(CircuitBreaker(max_wait=2.0), time_left=1.0, waited=0.0)
        1.0
    """
    limit = float("inf") if time_left is not None or breaker.max_wait is not None else 0.0
    if time_left is not None:
        limit = min(limit, time_left)
    if breaker.max_wait is not None:
        limit = min(limit, breaker.max_wait - waited)
    return max(0.0, limit)


def circuit_wait(view: CircuitView, *, now: float, may_wait: float, poll: float) -> float | None:
    """How long a call the circuit refused waits before asking again; None: fail now.

    ``view`` is what :meth:`StateStore.admit` answered (not ``allowed``);
    ``now`` the wall-clock time it was asked at; ``may_wait`` from
    :func:`wait_limit`; ``poll`` the current :func:`probe_interval`.

    - open: wait until the open period ends (then one waiter becomes the
      probe); if that is not before the call's time runs out, fail now;
    - half-open with another call probing: ask again after ``poll`` (a probe
      in this process wakes its waiters at once; one in another process is
      seen at the next poll), never past the call's time.

    Example:
        >>> from adk_retry.core._store import CircuitView
        >>> circuit_wait(CircuitView("open", 10.5, 5, False), now=10.0, may_wait=5.0, poll=0.25)
        0.5
        >>> circuit_wait(CircuitView("open", 10.5, 5, False), now=10.0, may_wait=0.5, poll=0.25) is None
        True
        >>> circuit_wait(CircuitView("half_open", 10.5, 5, False), now=11.0, may_wait=0.1, poll=0.25)
        0.1
    """
    if may_wait <= 0.0:
        return None
    if view.state == "open":
        until = view.open_until - now
        return None if until >= may_wait else max(0.0, until)
    return min(max(poll, 0.0), may_wait)
