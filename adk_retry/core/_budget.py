"""``RetryBudget``: a token bucket that bounds retries relative to traffic.

Why a bucket refunded by successes (gRPC's retry throttling, A6) rather
than one filled by every request (Finagle, Envoy): in a full outage nothing
succeeds, so nothing refills the bucket and retries stop once the initial
tokens are spent; a per-request deposit would keep paying for ~10 % more
load for as long as the outage lasts. In normal operation each success
refunds ``token_ratio`` of a token, so retries stay below about
``token_ratio`` of successful calls, plus the initial burst.

In numbers: with ``max_tokens=10`` and a full outage of N calls, at most 10
retries happen in all, so upstream requests per call are at most
``1 + 10 / N``: 1.1 once N >= 100 (ten times the bucket size).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from adk_retry.core._scope import Scope

__all__ = ["RetryBudget"]


class RetryBudget(BaseModel):
    """Bound retries by a shared token bucket. Off unless set on a policy.

    Fields:
        max_tokens: the bucket's size and its content at start: the burst of
            retries allowed before any success refunds anything.
        token_ratio: tokens refunded by each successful call (0.1: retries
            stay under ~10 % of successful calls).
        scope: which calls share the bucket (default: one per model).
        key: an explicit bucket name, shared by everything that names it.

    When the bucket is empty, a failure propagates at once (the original
    exception), the reason is logged and ``stats.budget_denials`` counts it.

    Example:
        >>> from adk_retry import RetryPolicy
        >>> RetryPolicy(retry_on="transient", budget=RetryBudget(max_tokens=10, token_ratio=0.1)).budget.max_tokens
        10.0
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: float = Field(default=10.0, ge=1.0, allow_inf_nan=False)
    token_ratio: float = Field(default=0.1, gt=0.0, le=1.0)
    scope: Scope = "model"
    key: str | None = Field(default=None, min_length=1)
