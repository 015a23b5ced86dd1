"""Aggregate views: statistics summed by agent and by model, over everything alive in the process.

The engine adds every :class:`~adk_retry.RetryHandler` it makes to
:data:`live_handlers`, the adapter every wrapped model to :data:`live_models`;
both are weak sets, so a view never keeps a handler or a model alive. This
module needs neither of them: it reads any object with ``agent_name`` (or
``model``) and ``stats``.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from adk_retry.observability._stats import RetryStats

__all__ = ["live_handlers", "live_models", "merge", "stats_by_agent", "stats_by_model"]

_T = TypeVar("_T")


class _Counted(Protocol):
    """A retry handler, as the views see it."""

    agent_name: str
    stats: RetryStats


class _Wrapped(Protocol):
    """A wrapped model, as the views see it."""

    model: Any
    stats: RetryStats


live_handlers: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every retry handler alive in the process (each is a :class:`_Counted`)."""

live_models: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every model wrapper alive in the process (each is a :class:`_Wrapped`), for the per-model view."""


def merge(a: RetryStats, b: RetryStats) -> RetryStats:
    """A new :class:`~adk_retry.RetryStats` with the counts of ``a`` and ``b`` added.

    Counters and ``slept`` are summed, ``errors`` and ``breaker_transitions``
    added key by key; ``last_error`` is ``b``'s if it has one, else ``a``'s.
    Neither argument is changed.

    Example:
        >>> from collections import Counter
        >>> total = merge(RetryStats(calls=2, errors=Counter(ValueError=1)),
        ...               RetryStats(calls=1, errors=Counter(ValueError=2, KeyError=1)))
        >>> total.calls, dict(total.errors)
        (3, {'ValueError': 3, 'KeyError': 1})
    """
    errors: Counter[str] = Counter(a.errors)
    errors.update(b.errors)
    transitions: Counter[str] = Counter(a.breaker_transitions)
    transitions.update(b.breaker_transitions)
    answered: Counter[str] = Counter(a.answered_by)
    answered.update(b.answered_by)
    return RetryStats(
        calls=a.calls + b.calls,
        attempts=a.attempts + b.attempts,
        retries=a.retries + b.retries,
        successes=a.successes + b.successes,
        failures=a.failures + b.failures,
        slept=a.slept + b.slept,
        budget_denials=a.budget_denials + b.budget_denials,
        fallbacks=a.fallbacks + b.fallbacks,
        hedges=a.hedges + b.hedges,
        hedge_wins=a.hedge_wins + b.hedge_wins,
        answered_by=answered,
        breaker_rejections=a.breaker_rejections + b.breaker_rejections,
        rate_limit_waited=a.rate_limit_waited + b.rate_limit_waited,
        rate_limit_rejections=a.rate_limit_rejections + b.rate_limit_rejections,
        breaker_transitions=transitions,
        errors=errors,
        last_error=b.last_error if b.last_error is not None else a.last_error,
    )


def stats_by_agent() -> dict[str, RetryStats]:
    """The statistics of every live handler, summed by agent name.

    Several handlers may share an agent name (one per plugin, say, or a
    handler rebuilt): their counts are added. The values are fresh copies:
    changing them changes no handler.

    Example:
        >>> from adk_retry import RetryHandler
        >>> first, second = RetryHandler(agent_name="doc_twin"), RetryHandler(agent_name="doc_twin")
        >>> first.stats.calls, second.stats.calls = 2, 3
        >>> stats_by_agent()["doc_twin"].calls
        5
    """
    totals: dict[str, RetryStats] = {}
    for handler in _snapshot(live_handlers):
        name = handler.agent_name
        totals[name] = merge(totals.get(name) or RetryStats(), handler.stats)
    return totals


def stats_by_model() -> dict[str, RetryStats]:
    """The statistics of every wrapped model, summed by model name.

    Each model instance wrapped by :func:`~adk_retry.add_retry_capabilities_to_agent`
    or :class:`~adk_retry.RetryPlugin` keeps the calls made through it, whatever
    the agent. Instances with the same model name (``"openai/gpt-4o"``) are
    added; a model without a name is listed under its class name.

    Example:
        >>> from google.adk.agents import LlmAgent
        >>> from google.adk.models.lite_llm import LiteLlm
        >>> from adk_retry import RetryHandler, add_retry_capabilities_to_agent
        >>> agent = LlmAgent(name="doc_model", model=LiteLlm(model="openai/doc-model", api_key="k"))
        >>> agent = add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="doc_model"))
        >>> stats_by_model()["openai/doc-model"].calls
        0
    """
    totals: dict[str, RetryStats] = {}
    for retry in _snapshot(live_models):
        name = getattr(retry.model, "model", None) or type(retry.model).__name__
        totals[name] = merge(totals.get(name) or RetryStats(), retry.stats)
    return totals


def _snapshot(items: weakref.WeakSet[_T]) -> list[_T]:
    """A list of a weak set's members, safe while another thread adds to it."""
    for _ in range(8):
        try:
            return list(items)
        except RuntimeError:  # "Set changed size during iteration": a handler was created meanwhile
            continue
    return list(items)


# -- counts that survive their handlers ---------------------------------------------------------


@dataclass(slots=True)
class _Seen:
    agent: str
    stats: RetryStats


class _Ledger:
    """Cumulative counts by agent: the live handlers plus those gone since first observed.

    Observable counters must never go down. A handler that is garbage
    collected takes its counts with it, so each handler seen by a collection
    gets a finalizer that hands its last counts to ``retired``. (A handler
    created and dropped between two collections is never seen: its counts
    are lost to the observable counters, not to the event-driven ones.)
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: weakref.WeakKeyDictionary[Any, _Seen] = weakref.WeakKeyDictionary()
        self.retired: dict[str, RetryStats] = {}
        # Finalizers may run in any thread, during any allocation: they only append here.
        self.pending: deque[_Seen] = deque()

    def totals(self) -> dict[str, RetryStats]:
        with self.lock:
            while self.pending:
                gone = self.pending.popleft()
                self.retired[gone.agent] = merge(self.retired.get(gone.agent) or RetryStats(), gone.stats)
            totals = dict(self.retired)
            for handler in _snapshot(live_handlers):
                seen = self.seen.get(handler)
                if seen is None:
                    seen = self.seen[handler] = _Seen(handler.agent_name, handler.stats)
                    weakref.finalize(handler, self.pending.append, seen).atexit = False
                else:
                    seen.agent, seen.stats = handler.agent_name, handler.stats
                totals[seen.agent] = merge(totals.get(seen.agent) or RetryStats(), seen.stats)
            return totals


_ledger = _Ledger()
