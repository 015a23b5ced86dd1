"""The engine: the one attempt loop that runs the core's decisions, the guards' I/O and the logs.

:class:`~adk_retry.RetryHandler` runs a coroutine function or, through the
adapter, a model's async generator, with :func:`run_attempts`.
"""

from __future__ import annotations

from adk_retry.engine._loop import RetryCall, RetryHandler, run_attempts

__all__ = ["RetryCall", "RetryHandler", "run_attempts"]
