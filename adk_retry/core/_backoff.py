"""Delay arithmetic: pure functions, no clock, no randomness of their own.

Randomness comes in as ``u``, a number in ``[0, 1)`` drawn by the caller, so
every schedule can be tested exactly without sleeping or seeding a global
generator.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Backoff", "base_delay_for", "jittered"]

Backoff = Literal["exponential", "linear", "fixed"]
"""How the delay grows with the attempt number.

- ``"exponential"``: ``base * multiplier ** k`` (the ADK seed's schedule)
- ``"linear"``: ``base * (k + 1)`` (CodeWorm's ``retry_delay * (attempt + 1)``)
- ``"fixed"``: ``base`` every time (SwarmSDK's 10 s)
"""


def base_delay_for(
    failed_attempt: int,
    *,
    backoff: Backoff = "exponential",
    base: float = 1.0,
    multiplier: float = 2.0,
    cap: float = 8.0,
) -> float:
    """The delay before the retry that follows failed attempt ``failed_attempt``.

    ``failed_attempt`` counts from 0 (the first call). The result is capped at
    ``cap``; an exponent too large for a float gives ``cap``, never an error.

    Example:
        >>> [base_delay_for(k) for k in range(5)]
        [1.0, 2.0, 4.0, 8.0, 8.0]
        >>> base_delay_for(10_000)
        8.0
        >>> base_delay_for(1, backoff="linear", base=2.0, cap=60.0)
        4.0
    """
    if backoff == "fixed":
        delay = base
    elif backoff == "linear":
        delay = base * (failed_attempt + 1)
    else:
        try:
            delay = base * multiplier**failed_attempt
        except OverflowError:
            return cap if base > 0 else 0.0
    return min(delay, cap)


def jittered(delay: float, jitter: float, u: float) -> float:
    """Spread ``delay`` uniformly over ``delay * (1 ± jitter)``.

    Jitter is applied after the cap, as in the ADK seed, so a capped 8 s delay
    with 20 % jitter lies in 6.4-9.6 s.

    Example:
        >>> jittered(8.0, 0.2, 0.0), jittered(8.0, 0.2, 0.5)
        (6.4, 8.0)
    """
    return delay * (1.0 - jitter + 2.0 * jitter * u)
