"""Adaptive delays: wait longer while a model keeps failing.

The configured schedule assumes failures are rare and independent. When a
model's recent attempts mostly fail (an overloaded provider), retrying on
that schedule adds load exactly when it hurts. AWS's adaptive retry mode
slows the client's sending rate and LiteLLM's router cools a failing
deployment down; this is the smallest version of the same idea
(:func:`adk_retry.core._decide.stretch`):

    delay = scheduled_delay * (1 + failure_rate)

where ``failure_rate`` is an exponentially weighted moving average (weight
0.2 per attempt) of the model's recent attempt outcomes in this process.
With no recent failures the schedule is unchanged; with every recent
attempt failing, delays double. It never goes below the schedule.
"""

from __future__ import annotations

__all__ = ["FailureRate", "failure_rates"]

_WEIGHT = 0.2


class FailureRate:
    """Moving failure rates per key, updated by each attempt's outcome.

    Example:
        >>> rates = FailureRate()
        >>> for _ in range(3):
        ...     rates.record("m", failed=True)
        >>> round(rates.get("m"), 3)
        0.488
    """

    def __init__(self) -> None:
        self._rates: dict[str, float] = {}

    def record(self, key: str, *, failed: bool) -> None:
        """Fold one attempt's outcome into ``key``'s rate."""
        previous = self._rates.get(key, 0.0)
        self._rates[key] = previous + _WEIGHT * ((1.0 if failed else 0.0) - previous)

    def get(self, key: str) -> float:
        """``key``'s current failure rate (0 when unknown)."""
        return self._rates.get(key, 0.0)


failure_rates = FailureRate()
"""The process-wide rates that adaptive policies read and update."""
