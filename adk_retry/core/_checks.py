"""Argument checks shared by the public constructors.

A wrong argument must fail where it is written, naming the argument, not at
the first failing model call (when retry would silently be off, or a
``TypeError`` would replace the provider's error). These helpers answer the
questions the constructors ask of callables: is it callable at all, is it an
async function, does it take the arguments it will be called with.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any

__all__ = [
    "accepts_positional",
    "is_async_callable",
    "require_async",
    "require_callable",
    "require_seconds",
    "require_timing",
    "require_type",
]


def is_async_callable(value: Any) -> bool:
    """Whether calling ``value`` gives a coroutine: an ``async def``, or an object with an async ``__call__``.

    ``functools.partial`` objects are looked through, and ``AsyncMock`` counts.

    Example:
        >>> import asyncio, time
        >>> is_async_callable(asyncio.sleep), is_async_callable(time.sleep)
        (True, False)
    """
    while isinstance(value, functools.partial):
        value = value.func
    if inspect.iscoroutinefunction(value):
        return True
    if inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value) or isinstance(value, type):
        return False
    return callable(value) and inspect.iscoroutinefunction(type(value).__call__)


def accepts_positional(value: Any, count: int) -> bool:
    """Whether ``value`` can be called with ``count`` positional arguments.

    True when the signature cannot be read (some builtins): the benefit of
    the doubt, since a wrong guess would reject a working callable.

    Example:
        >>> accepts_positional(lambda exc: True, 1), accepts_positional(lambda: True, 1)
        (True, False)
    """
    try:
        signature = inspect.signature(value)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*(None,) * count)
    except TypeError:
        return False
    return True


def require_callable(
    owner: str, name: str, value: Any, *, arguments: int | None = None, error: type[Exception] = TypeError
) -> None:
    """Raise ``error`` naming ``owner``'s argument ``name`` unless ``value`` is callable (or None).

    With ``arguments``, it must also accept that many positional arguments.
    Pydantic validators pass ``error=ValueError``: pydantic turns only that
    into a ``ValidationError`` naming the field.

    Example:
        >>> require_callable("RetryHandler", "clock", 5)
        Traceback (most recent call last):
        ...
        TypeError: RetryHandler: clock must be callable, got int: 5
    """
    if value is None:
        return
    if not callable(value):
        raise error(f"{owner}: {name} must be callable, got {type(value).__name__}: {value!r}")
    if arguments is not None and not accepts_positional(value, arguments):
        plural = "argument" if arguments == 1 else "arguments"
        raise error(f"{owner}: {name} must accept {arguments} positional {plural}; {value!r} does not")


def require_async(owner: str, name: str, value: Any, *, arguments: int, error: type[Exception] = TypeError) -> None:
    """Like :func:`require_callable`, and ``value`` must be an async function (it is awaited).

    A plain function would run, return something that is not awaitable, and
    fail with a ``TypeError`` at the first retry instead of here.

    Example:
        >>> import time
        >>> require_async("RetryHandler", "sleep", time.sleep, arguments=1)
        Traceback (most recent call last):
        ...
        TypeError: RetryHandler: sleep must be an async function (it is awaited), got <built-in function sleep>
    """
    require_callable(owner, name, value, arguments=arguments, error=error)
    if value is not None and not is_async_callable(value):
        raise error(f"{owner}: {name} must be an async function (it is awaited), got {value!r}")


def require_timing(owner: str, *, sleep: Any, clock: Any, random: Any, wall_clock: Any) -> None:
    """Check the injectable side effects of a retry handler: ``sleep`` awaited with a delay, the rest called bare.

    Example:
        >>> require_timing("RetryPlugin", sleep=None, clock=None, random=lambda: 0.5, wall_clock=None)
    """
    require_async(owner, "sleep", sleep, arguments=1)
    require_callable(owner, "clock", clock, arguments=0)
    require_callable(owner, "random", random, arguments=0)
    require_callable(owner, "wall_clock", wall_clock, arguments=0)


def require_seconds(owner: str, name: str, value: Any, *, zero_ok: bool) -> float:
    """``value`` as a float number of seconds: ``TypeError`` unless a number, ``ValueError`` unless finite and in range.

    ``zero_ok`` allows 0; below it is never allowed. A bool is not a number here.

    Example:
        >>> require_seconds("RedisStore", "ttl", 5, zero_ok=False)
        5.0
        >>> require_seconds("RedisStore", "ttl", 0, zero_ok=False)
        Traceback (most recent call last):
        ...
        ValueError: RedisStore: ttl must be a positive number of seconds, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a number of seconds, got {type(value).__name__}: {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        wanted = "zero or more seconds" if zero_ok else "a positive number of seconds"
        raise ValueError(f"{owner}: {name} must be {wanted}, got {value!r}")
    return float(value)


def require_type(
    owner: str, name: str, value: Any, expected: type | tuple[type, ...], *, optional: bool = False
) -> None:
    """Raise ``TypeError`` naming ``owner``'s argument ``name`` unless ``value`` is an ``expected``.

    None passes too when ``optional``.

    Example:
        >>> require_type("OllamaOOMRecovery", "unload_self", "no", bool)
        Traceback (most recent call last):
        ...
        TypeError: OllamaOOMRecovery: unload_self must be bool, got str: 'no'
    """
    if optional and value is None:
        return
    if not isinstance(value, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise TypeError(f"{owner}: {name} must be {names}, got {type(value).__name__}: {value!r}")
