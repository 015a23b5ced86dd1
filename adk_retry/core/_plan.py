"""A policy compiled once into what the attempt loop asks on every call.

Why: a :class:`~adk_retry.RetryPolicy` is a validated Pydantic model, and
reading its fields (private attributes above all) costs microseconds, while
the success path of a model call has about two to spend in all. So each
policy compiles itself, once, into a slotted :class:`Plan`: the retry
predicate, the flags the loop branches on, the guards' settings. A handler
keeps the plan; nothing on the hot path reads the policy again.

:meth:`Plan.failure` is the one reader of a failed attempt: retriable or not,
its transient class, the server's hint, the matching rule. It never raises,
whatever the exception does in its ``__str__`` or its properties, so the
caller always gets the original exception back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from adk_retry.core._decide import Failure
from adk_retry.core._hints import retry_after
from adk_retry.core._scope import scope_key
from adk_retry.core._transient import error_class, fallback_class

if TYPE_CHECKING:
    from adk_retry.core._breaker import CircuitBreaker
    from adk_retry.core._budget import RetryBudget
    from adk_retry.core._events import Hook
    from adk_retry.core._limit import RateLimit
    from adk_retry.core._policy import LogTemplates, Predicate, RetryPolicy
    from adk_retry.core._rules import ErrorRule
    from adk_retry.core._store import StateStore

__all__ = ["Keys", "Plan"]

_T = TypeVar("_T")


class Keys:
    """The store keys of one (model, agent) pair: budget bucket, circuit, failure rate, rate limit."""

    __slots__ = ("budget", "circuit", "limit", "rate")

    def __init__(self, plan: Plan, model: str | None, agent: str) -> None:
        budget, breaker = plan.budget, plan.breaker
        self.budget = (
            None if budget is None else scope_key("budget", budget.scope, budget.key, model=model, agent=agent)
        )
        self.circuit = (
            None if breaker is None else scope_key("circuit", breaker.scope, breaker.key, model=model, agent=agent)
        )
        self.rate = scope_key("rate", "model", None, model=model, agent=agent)
        limit = plan.rate_limit
        self.limit = None if limit is None else scope_key("rate", limit.scope, limit.key, model=model, agent=agent)


class Plan:
    """What the loop needs of a policy, read once. Made by the policy itself: ``policy.plan``.

    Example:
        >>> from adk_retry import RetryPolicy
        >>> plan = RetryPolicy(max_retries=2, timeout=30).plan
        >>> plan.max_attempts, plan.timed, plan.guarded
        (3, True, False)
    """

    __slots__ = (
        "_keys",
        "adaptive",
        "attempt_timeout",
        "breaker",
        "budget",
        "buffers_streams",
        "chained",
        "counts_tokens",
        "fallback_on",
        "fallbacks",
        "falls_back",
        "guarded",
        "hedge_after",
        "hedge_delays",
        "hedge_quantile",
        "hedged",
        "hooks",
        "limited",
        "malformed_calls",
        "max_attempts",
        "max_hedges",
        "max_hint_delay",
        "owns_lower",
        "policy",
        "rate_limit",
        "rate_limited",
        "retries",
        "rules",
        "shaped",
        "special",
        "store",
        "templates",
        "timed",
        "timeout",
    )

    policy: RetryPolicy
    retries: Predicate
    max_attempts: int
    max_hint_delay: float
    rules: tuple[ErrorRule, ...]
    budget: RetryBudget | None
    breaker: CircuitBreaker | None
    rate_limit: RateLimit | None
    rate_limited: bool
    adaptive: bool
    guarded: bool
    store: StateStore | None
    owns_lower: bool
    timeout: float | None
    attempt_timeout: float | None
    timed: bool
    limited: bool
    malformed_calls: bool
    buffers_streams: bool
    hooks: tuple[Hook, ...]
    templates: LogTemplates
    fallbacks: tuple[object, ...]
    fallback_on: frozenset[str]
    falls_back: bool
    hedge_after: float | None
    hedged: bool
    max_hedges: int
    hedge_quantile: float | None
    hedge_delays: dict[str | None, Any]
    chained: bool
    shaped: bool
    special: bool
    counts_tokens: bool

    def __init__(self, policy: RetryPolicy, retries: Predicate, owns_lower: bool) -> None:
        self.policy = policy
        self.retries = retries
        self.max_attempts = policy.max_retries + 1
        self.max_hint_delay = policy.max_hint_delay
        self.rules = policy.rules
        self.budget = policy.budget
        self.breaker = policy.breaker
        self.rate_limit = policy.rate_limit
        # The one flag the loop branches on before each attempt: calls without a limit pay nothing.
        self.rate_limited = policy.rate_limit is not None
        self.adaptive = policy.adaptive
        self.guarded = policy.budget is not None or policy.breaker is not None or policy.adaptive or self.rate_limited
        self.store = policy.store
        self.owns_lower = owns_lower
        self.timeout = policy.timeout
        self.attempt_timeout = policy.attempt_timeout
        self.timed = policy.timeout is not None
        self.limited = self.timed or policy.attempt_timeout is not None
        self.buffers_streams = policy.stream_mode == "buffer"
        self.malformed_calls = policy.retry_malformed_function_calls
        self.hooks = policy.hooks
        self.templates = policy.log_templates
        self.fallbacks = policy.fallbacks
        self.fallback_on = frozenset(policy.fallback_on)
        self.falls_back = bool(policy.fallbacks)
        self.hedge_after = policy.hedge_after
        self.hedged = policy.hedge_after is not None
        self.max_hedges = policy.max_hedges
        self.hedge_quantile = policy.hedge_quantile
        # The engine's learnt hedge delays (hedge_quantile), per model name: kept here, not in a
        # module dict keyed by id(plan), so they die with the policy and no later plan that gets
        # the same id() inherits them.
        self.hedge_delays = {}
        self.chained = self.falls_back or self.hedged
        # One flag per hot path instead of three: an attempt is shaped (admitted by the
        # limiter, hedged, or under a time limit); a call is special (its attempts are
        # started in some other way than calling the model).
        self.shaped = self.rate_limited or self.hedged or self.limited
        # A tokens-per-minute limit: each request's tokens are estimated, and its usage read.
        self.counts_tokens = policy.rate_limit is not None and policy.rate_limit.tpm is not None
        self.special = self.chained or self.malformed_calls or self.counts_tokens
        self._keys: dict[tuple[str | None, str], Keys] = {}

    def failure(self, exc: BaseException) -> Failure:
        """Read a failed attempt's exception once: never raises.

        Example:
            >>> from adk_retry import RetryPolicy
            >>> failure = RetryPolicy.transient().plan.failure(ConnectionResetError())
            >>> failure.retriable, failure.kind, failure.hint
            (True, 'connection', None)
        """
        if not self.retriable(exc):
            # A failure never retried may still move to a fallback (a context window exceeded).
            kind = _safely(lambda: fallback_class(exc), None) if self.falls_back else None
            return Failure(exc, False, kind, None, None)
        kind = _safely(lambda: (fallback_class if self.falls_back else error_class)(exc), None)
        hint = _safely(lambda: retry_after(exc), None)
        rule = _safely(lambda: next((r for r in self.rules if r.matches(exc, kind)), None), None)
        return Failure(exc, True, kind, hint, rule)

    def retriable(self, exc: BaseException) -> bool:
        """Whether ``retry_on`` accepts ``exc``; never raises (a predicate that raises says no)."""
        return isinstance(exc, Exception) and _safely(lambda: bool(self.retries(exc)), False)

    def keys(self, model: str | None, agent: str) -> Keys:
        """The guards' store keys for calls of ``agent`` to ``model`` (cached)."""
        keys = self._keys.get((model, agent))
        if keys is None:
            if len(self._keys) > 4096:  # names made on the fly must not grow this without bound
                self._keys.clear()
            keys = self._keys[(model, agent)] = Keys(self, model, agent)
        return keys


def _safely(read: Callable[[], _T], default: _T) -> _T:
    """``read()``, or ``default`` when reading the exception raised: the original error must survive."""
    try:
        return read()
    except Exception:
        return default
