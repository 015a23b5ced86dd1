"""Per-error policies: different failures deserve different handling.

A rate limit wants a longer, server-guided wait; a dropped connection a
quick retry; an out-of-memory answer from a local Ollama server wants the
server to free memory first (CodeWorm unloads the model). An
:class:`ErrorRule` gives one class of errors its own backoff, its own
retry limit, and an optional async recovery hook that runs before the
retry. The first rule that matches a failure applies; failures no rule
matches use the policy's own schedule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from adk_retry.core._backoff import Backoff
from adk_retry.core._checks import require_async, require_callable
from adk_retry.core._transient import ERROR_CLASSES

if TYPE_CHECKING:
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_request import LlmRequest

__all__ = ["ErrorRule", "Recovery", "RecoveryContext"]


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    """What a recovery hook may look at, and change, before the retry.

    Attributes:
        agent: the calling agent.
        attempt: the attempt that failed (from 1).
        llm_request: the request about to be retried, when the call is a
            model call: a hook may point it at another model
            (``llm_request.model = "ollama/llama3.2:1b"``), and that change
            is kept for the retries that follow.
        model: the model instance being retried, when the call is a model
            call (a hook can read its settings, e.g. a ``LiteLlm``'s api_base).

    Example:
        >>> RecoveryContext(agent="a", attempt=1, llm_request=None).attempt
        1
    """

    agent: str
    attempt: int
    llm_request: LlmRequest | None
    model: BaseLlm | None = None


Recovery: TypeAlias = Callable[[BaseException, RecoveryContext], Awaitable[object]]
"""An async hook ``(error, context) -> Any`` run after the backoff, before the retry."""


class ErrorRule(BaseModel):
    """How one class of failures is retried.

    Fields:
        match: an error class name (``"rate_limit"``, ``"server_error"``,
            ``"timeout"``, ``"connection"``, ``"empty_response"``,
            ``"out_of_memory"``) or a predicate ``(exc) -> bool``.
        max_retries: retries allowed for failures of this class within one
            call (None: the policy's ``max_retries``). The policy's total
            still applies.
        backoff, base_delay, max_delay, backoff_multiplier: this class's
            schedule (None: the policy's).
        recover: an async hook ``(error, context)`` run before each retry of
            this class; a plain (synchronous) function is refused, since it
            would only fail when the first retry awaits it.

    A predicate that cannot take the exception, ``max_delay`` below
    ``base_delay``, or a synchronous ``recover`` fail here, as a
    ``ValidationError`` naming the field.

    Example:
        >>> rule = ErrorRule(match="timeout", backoff="linear", base_delay=2.0, max_retries=2)
        >>> rule.backoff
        'linear'
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    match: str | Callable[[BaseException], bool]
    max_retries: int | None = Field(default=None, ge=0)
    backoff: Backoff | None = None
    base_delay: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    max_delay: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    backoff_multiplier: float | None = Field(default=None, ge=1.0, allow_inf_nan=False)
    recover: Recovery | None = None

    @field_validator("match")
    @classmethod
    def _check_match(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in ERROR_CLASSES:
                raise ValueError(f"unknown error class {value!r}; expected one of {', '.join(ERROR_CLASSES)}")
        else:
            # Called with the exception: a predicate that cannot take it would
            # raise TypeError at the first failure, in place of that failure.
            require_callable("ErrorRule", "match", value, arguments=1, error=ValueError)
        return value

    @field_validator("max_delay")
    @classmethod
    def _check_max_delay(cls, value: float | None, info: ValidationInfo) -> float | None:
        base = info.data.get("base_delay")
        if value is not None and base is not None and value < base:
            raise ValueError(f"max_delay ({value}) must not be below base_delay ({base})")
        return value

    @field_validator("recover")
    @classmethod
    def _check_recover(cls, value: Any) -> Any:
        require_async("ErrorRule", "recover", value, arguments=2, error=ValueError)
        return value

    def matches(self, exc: BaseException, error_class: str | None) -> bool:
        """Whether this rule applies to ``exc`` (whose transient class is ``error_class``)."""
        if isinstance(self.match, str):
            return self.match == error_class
        return bool(self.match(exc))
