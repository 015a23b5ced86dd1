"""The side effects of waiting, at the edge and swappable.

A handler takes its ``sleep``, ``clock`` and ``random`` from here unless it is
given its own. :func:`adk_retry.testing.no_waits` flips the process-wide
switch below, in the spirit of ``stamina.set_testing``: delays are still
computed, logged and counted, but nothing sleeps. ``ADK_RETRY_NO_WAITS=1`` in
the environment starts a process with the switch off, for tests that run a
script in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

__all__ = ["Clock", "Random", "Sleep", "default_clock", "default_random", "default_sleep", "waits_enabled"]

Sleep: TypeAlias = Callable[[float], Awaitable[object]]
"""An ``asyncio.sleep``-like coroutine function."""
Clock: TypeAlias = Callable[[], float]
"""A monotonic clock in seconds, like ``time.monotonic``."""
Random: TypeAlias = Callable[[], float]
"""A source of uniform numbers in [0, 1), like ``random.random``."""

default_sleep: Sleep = asyncio.sleep
default_clock: Clock = time.monotonic
default_random: Random = _random.random

_waits = [os.environ.get("ADK_RETRY_NO_WAITS") != "1"]


def waits_enabled() -> bool:
    """False inside :func:`adk_retry.testing.no_waits`.

    Example:
        >>> waits_enabled()
        True
    """
    return _waits[0]


def set_waits(enabled: bool) -> bool:
    """Turn real waiting on or off; returns the previous setting."""
    previous = _waits[0]
    _waits[0] = enabled
    return previous
