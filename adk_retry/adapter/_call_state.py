"""Per-call state shared by the before-model callback, the wrapper and the after-model callback.

Why a mutable object in a ``ContextVar`` rather than values in one: ADK 2.13
iterates the model's generator in a *copy* of the context, so a
``ContextVar.set()`` inside the wrapper never reaches the after-model
callbacks. A value set by a before-model callback does reach the wrapper (on
2.3 and 2.13), so the callback creates the object, the wrapper updates it in
place, and the after-model callback reads it back. Each model call gets a
fresh object, so concurrent sessions never share one.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adk_retry.engine._loop import RetryHandler

__all__ = ["CallState", "current_call"]


@dataclass(slots=True)
class CallState:
    """One model call as seen by the callbacks.

    Attributes:
        agent: the calling agent's name.
        handler: the handler that will run the call.
        owner: who opened the state (a callback pair or a plugin), so only
            its own after-model callback reports on it.
        attempts: attempts made so far (updated by the wrapper).
        taken: set when a wrapper picked this state up; a stale state (one a
            later call finds still in the context) is never reused.
        reported: set once the after-model callback logged the outcome.
        context: ADK's ``CallbackContext`` of the call, kept as it is (no
            work on the success path); its ids are read by :meth:`log_ids`
            only when a log record is written.
        model: the model's name, set by the engine once the call retried.

    Example:
        >>> from adk_retry.engine._loop import RetryHandler
        >>> CallState("a", RetryHandler()).attempts
        0
    """

    agent: str
    handler: RetryHandler
    owner: object = None
    attempts: int = 0
    taken: bool = False
    reported: bool = False
    context: Any = None
    model: str | None = None

    def log_ids(self) -> dict[str, str]:
        """ADK's ``invocation_id`` and ``session_id`` of the call, for its log records (failure path only).

        Example:
            >>> from types import SimpleNamespace
            >>> from adk_retry.engine._loop import RetryHandler
            >>> context = SimpleNamespace(invocation_id="e-1", session=SimpleNamespace(id="s-1"))
            >>> CallState("a", RetryHandler(), context=context).log_ids()
            {'invocation_id': 'e-1', 'session_id': 's-1'}
        """
        context = self.context
        ids: dict[str, str] = {}
        if context is None:
            return ids
        invocation_id = getattr(context, "invocation_id", None)
        if isinstance(invocation_id, str):
            ids["invocation_id"] = invocation_id
        session_id = getattr(getattr(context, "session", None), "id", None)
        if isinstance(session_id, str):
            ids["session_id"] = session_id
        return ids


current_call: ContextVar[CallState | None] = ContextVar("adk_retry_current_call", default=None)
"""The state of the model call being made in this context, if a callback set one."""
