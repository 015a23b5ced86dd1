"""The exceptions adk-retry raises of its own.

adk-retry's rule is to hand the caller the *original* exception when it gives
up, so this module is small on purpose: it holds only the errors for which no
original exists.

- :class:`EmptyResponseError` stands in for the ``ValueError("No message in
  response")`` that google-adk up to 2.3.0 raised for an empty provider
  answer. Newer ADK returns an empty ``LlmResponse`` instead, so there is
  nothing to re-raise; this error keeps the old contract on every version.
- :class:`MalformedFunctionCallError` is raised when a model kept answering
  with tool-call arguments that do not parse (``MALFORMED_FUNCTION_CALL``)
  and ``RetryPolicy(retry_malformed_function_calls=True)`` ran out of
  retries: ADK reports that as a response, not an exception.
- :class:`CircuitOpenError` is raised instead of calling a model whose circuit
  is open (see :mod:`adk_retry.core._breaker`).
- :class:`RateLimitedError` is raised when a call's first attempt could not be
  admitted by its :class:`~adk_retry.core._limit.RateLimit` before its deadline
  (a retry that cannot be admitted gives up with the original error instead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from google.adk.models.llm_response import LlmResponse

__all__ = [
    "MALFORMED_FUNCTION_CALL",
    "NO_MESSAGE",
    "AdkRetryError",
    "CircuitOpenError",
    "EmptyResponseError",
    "MalformedFunctionCallError",
    "RateLimitedError",
]

NO_MESSAGE = "No message in response"
"""The message google-adk's ``LiteLlm`` raised for an empty answer (<= 2.3.0)."""

MALFORMED_FUNCTION_CALL = "MALFORMED_FUNCTION_CALL"
"""The ``error_code`` (and finish reason) of a response whose tool-call arguments did not parse."""


class AdkRetryError(Exception):
    """Base class of the errors adk-retry raises itself.

    Example:
        >>> issubclass(CircuitOpenError, AdkRetryError)
        True
    """


class EmptyResponseError(AdkRetryError, ValueError):
    """The model answered with nothing: no text, no tool call, no error.

    "Nothing" is google-adk's own rule (2.13 marks such an answer
    ``MODEL_RETURNED_NO_CONTENT``): whitespace-only text and thought-only
    parts are nothing too; see :func:`adk_retry.core._empty.is_empty_response`.

    It *is* a ``ValueError("No message in response")``, so code written for
    google-adk 2.3.0 (``except ValueError``) keeps working on newer versions
    that return an empty ``LlmResponse`` instead of raising.

    Attributes:
        response: the last (empty) response of the last attempt, or ``None``
            when the attempt yielded nothing at all (2.3.0 streaming).

    Example:
        >>> err = EmptyResponseError(None)
        >>> str(err), isinstance(err, ValueError)
        ('No message in response', True)
    """

    def __init__(self, response: LlmResponse | None) -> None:
        super().__init__(NO_MESSAGE)
        self.response = response


class MalformedFunctionCallError(AdkRetryError):
    """The model's tool-call arguments did not parse, on every attempt allowed.

    Raised only under ``RetryPolicy(retry_malformed_function_calls=True)``,
    which counts such a response as a failed attempt; by default the
    response reaches ADK as it is (and ADK's ``ReflectAndRetryModelPlugin``
    may re-prompt on it).

    Attributes:
        response: the last attempt's ``LlmResponse``, with ADK's
            ``error_code`` and ``error_message`` (the names of the calls).

    Example:
        >>> from google.adk.models.llm_response import LlmResponse
        >>> err = MalformedFunctionCallError(LlmResponse(error_code="MALFORMED_FUNCTION_CALL", error_message="bad"))
        >>> str(err), err.response.error_code
        ('MALFORMED_FUNCTION_CALL: bad', 'MALFORMED_FUNCTION_CALL')
    """

    def __init__(self, response: LlmResponse) -> None:
        detail = response.error_message or "tool-call arguments were not valid JSON"
        super().__init__(f"{MALFORMED_FUNCTION_CALL}: {detail}")
        self.response = response


class CircuitOpenError(AdkRetryError):
    """A call was refused because the model's circuit breaker is open.

    Nothing was sent to the provider. The failure that opened the circuit is
    chained as ``__cause__``.

    Attributes:
        model: the key of the model (or group of models) whose circuit is open.
        reopens_at: the wall-clock time (``time.time()``) at which a probe call
            will be let through.

    Example:
        >>> err = CircuitOpenError("openai/gpt-4o", reopens_at=0.0)
        >>> err.model
        'openai/gpt-4o'
    """

    def __init__(self, model: str, reopens_at: float) -> None:
        super().__init__(f"circuit open for model {model!r}; calls fail fast until {reopens_at:.3f}")
        self.model = model
        self.reopens_at = reopens_at


class RateLimitedError(AdkRetryError):
    """A call was not sent because its rate limit would not admit it before its deadline.

    Nothing was sent to the provider, and nothing of the limit was spent. The
    deadline is what is left of the policy's ``timeout`` (or
    ``RateLimit.max_wait`` when the policy has none): waiting past it would
    only have ended in a ``TimeoutError``, later. Raised for a call's first
    attempt; a retry that cannot be admitted in time gives up with the
    original failure, as every give-up does.

    Attributes:
        model: the key of the model (or group of models) whose limit refused the call.
        wait: the seconds the call would have had to wait for admission.
        limit: which limit refused it: ``"rate"`` (requests, tokens or a server
            hint) or ``"concurrency"``.

    Example:
        >>> err = RateLimitedError("openai/gpt-4o", wait=2.5)
        >>> str(err)
        "rate limit for model 'openai/gpt-4o' would admit this call in 2.500 s, past its deadline"
        >>> err.wait, isinstance(err, AdkRetryError)
        (2.5, True)
    """

    def __init__(self, model: str, wait: float, limit: str = "rate") -> None:
        what = "concurrency limit" if limit == "concurrency" else "rate limit"
        super().__init__(f"{what} for model {model!r} would admit this call in {wait:.3f} s, past its deadline")
        self.model = model
        self.wait = wait
        self.limit = limit
