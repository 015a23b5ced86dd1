"""Tools for testing code that uses adk-retry, and adk-retry itself.

- :class:`FaultServer`: a real OpenAI-compatible chat server on 127.0.0.1
  that answers from a queue of scripted :class:`Fault` s; its capacity modes
  (:class:`Capacity`, :class:`OutageWindow`, :class:`SlowFirstToken`) make it
  an overloaded provider.
- :func:`no_waits`: handlers compute, log and count their delays but do not
  sleep, as ``stamina.set_testing`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from adk_retry.core._clock import set_waits
from adk_retry.testing.capacity import Capacity, OutageWindow, SlowFirstToken
from adk_retry.testing.faults import Fault
from adk_retry.testing.server import FaultServer

__all__ = ["Capacity", "Fault", "FaultServer", "OutageWindow", "SlowFirstToken", "no_waits"]


@contextmanager
def no_waits() -> Iterator[None]:
    """Within this block, no handler sleeps; delays are still computed and logged.

    Example:
        >>> import asyncio
        >>> from adk_retry import RetryHandler, RetryPolicy
        >>> handler = RetryHandler(RetryPolicy(retry_on="all", base_delay=8.0))
        >>> answers = iter([OSError("down"), "up"])
        >>> async def call():
        ...     answer = next(answers)
        ...     if isinstance(answer, Exception):
        ...         raise answer
        ...     return answer
        >>> with no_waits():
        ...     asyncio.run(handler(call))
        'up'
    """
    previous = set_waits(False)
    try:
        yield
    finally:
        set_waits(previous)
