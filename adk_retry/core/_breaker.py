"""``CircuitBreaker``: stop calling a model that keeps failing.

closed -> open after ``failure_threshold`` consecutive transient failures
(or at once when the server says how long to wait: a 429 with
``Retry-After`` opens it at least that long). While open, calls fail fast
with :class:`~adk_retry.CircuitOpenError` without touching the network.
After ``cooldown`` one probe call is let through (half-open): its success
closes the circuit, its failure opens it again.

Failures that are not transient (a 400, an authentication error) say
nothing about the provider's health and are not counted.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from adk_retry.core._scope import Scope

__all__ = ["CircuitBreaker"]


class CircuitBreaker(BaseModel):
    """Fail fast while a model is down. Off unless set on a policy.

    Fields:
        failure_threshold: consecutive transient failures that open it.
        cooldown: seconds it stays open before a probe is let through.
        probe_timeout: seconds after which a probe that has not reported is
            presumed lost and another caller may probe.
        scope: which calls share the breaker (default: one per model).
        key: an explicit breaker name, shared by everything that names it.

    Example:
        >>> from adk_retry import RetryPolicy
        >>> RetryPolicy(breaker=CircuitBreaker(failure_threshold=3, cooldown=10)).breaker.cooldown
        10.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    cooldown: float = Field(default=30.0, gt=0.0, allow_inf_nan=False)
    probe_timeout: float = Field(default=60.0, gt=0.0, allow_inf_nan=False)
    scope: Scope = "model"
    key: str | None = Field(default=None, min_length=1)
