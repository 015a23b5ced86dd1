"""The retry core: what to do about a failed model call, decided without side effects.

Policy as configuration (:class:`~adk_retry.RetryPolicy`, its presets, the
guards' settings :class:`~adk_retry.RetryBudget` and
:class:`~adk_retry.CircuitBreaker`, per-error :class:`~adk_retry.ErrorRule`),
backoff schedules, the classification of failures and empty answers, server
hints, the compiled plan and the one decision function. Modules here import
nothing of adk-retry outside this package, and nothing of ADK at import time:
no I/O, no event loop, no logging. See ``docs/architecture.md``.
"""
