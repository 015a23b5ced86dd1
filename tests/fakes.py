"""Small fakes shared by the unit tests: a scripted model call and an injectable wall clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def scripted(*outcomes: Any) -> tuple[Callable[[], Awaitable[Any]], list[Any]]:
    """A model call that raises or returns ``outcomes`` in order; also returns the list of attempts."""
    remaining = iter(outcomes)
    attempts: list[Any] = []

    async def model_call() -> Any:
        outcome = next(remaining)
        attempts.append(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return model_call, attempts


class WallClock:
    """A wall clock that stands still until a test moves ``now``."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now
