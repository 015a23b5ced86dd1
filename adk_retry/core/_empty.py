"""What counts as a retriable failure: pure predicates over exceptions and responses.

The default rule is the ADK seed's, carried onto today's stack: only a
missing model message is retried, in each of the three forms it takes.

1. google-adk <= 2.3.0 raises ``ValueError("No message in response")``.
2. google-adk >= 2.4.0 yields an ``LlmResponse`` with no parts instead
   (:func:`is_empty_response`); adk-retry turns it into
   :class:`~adk_retry.core._errors.EmptyResponseError` so the same rule applies.
3. A choice whose ``message`` is ``null`` makes litellm raise
   ``InternalServerError("... Invalid response object ...")`` although the
   provider answered 200 (:func:`is_null_message_error`). Likewise, litellm
   up to 1.83 raises ``APIError("Error building chunks ...")`` at the end of
   a stream that carried no choice at all (:func:`is_empty_stream_error`).

Exception types from litellm, openai, httpx and google-genai are recognised
by module and class name along the MRO, so this module never imports those
(heavy, optional) libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adk_retry.core._errors import NO_MESSAGE

if TYPE_CHECKING:
    from google.adk.models.llm_response import LlmResponse

__all__ = [
    "has_type_named",
    "is_empty_response",
    "is_empty_stream_error",
    "is_no_message_error",
    "is_null_message_error",
    "safe_attr",
    "seed_default",
]

_NULL_MESSAGE_MARK = "Invalid response object"
_EMPTY_STREAM_MARK = "Error building chunks for logging/streaming usage calculation"
# google.genai's FinishReason is a str enum; comparing by value avoids an import
# on the hot path and works with every genai version.
_ANSWERLESS_FINISH_REASONS = frozenset({None, "STOP", "FINISH_REASON_UNSPECIFIED"})


def has_type_named(exc: BaseException, module_prefix: str, *names: str) -> bool:
    """Whether ``exc`` is an instance of a class ``names`` from ``module_prefix``.

    Walks the MRO, so subclasses match, without importing the library.

    Example:
        >>> has_type_named(ValueError(), "builtins", "ValueError")
        True
        >>> has_type_named(KeyError(), "builtins", "IndexError")
        False
    """
    return any(cls.__name__ in names and cls.__module__.startswith(module_prefix) for cls in type(exc).__mro__)


def safe_attr(obj: object, name: str) -> object:
    """``getattr(obj, name, None)`` that treats a raising property as absent.

    Exception objects from provider SDKs expose lazy properties (a response
    body, headers) that may raise when the response is missing.

    Example:
        >>> safe_attr(None, "headers") is None
        True
    """
    if obj is None:
        return None
    try:
        return getattr(obj, name, None)
    except Exception:  # a property that raises is no attribute
        return None


def is_no_message_error(exc: BaseException) -> bool:
    """The seed's rule: a ``ValueError`` whose message is exactly "No message in response".

    :class:`~adk_retry.core._errors.EmptyResponseError` satisfies it too.

    Example:
        >>> is_no_message_error(ValueError("No message in response"))
        True
        >>> is_no_message_error(ValueError("No message in response, at all"))
        False
    """
    return isinstance(exc, ValueError) and str(exc) == NO_MESSAGE


def is_null_message_error(exc: BaseException) -> bool:
    """litellm's ``InternalServerError`` for a 200 answer whose message is null.

    Matched as narrowly as the exception allows: litellm's own class *and* its
    "Invalid response object" text; a real 500 does not match.

    Example:
        >>> is_null_message_error(RuntimeError("Invalid response object"))
        False
    """
    return has_type_named(exc, "litellm", "InternalServerError") and _NULL_MESSAGE_MARK in str(exc)


def is_empty_stream_error(exc: BaseException) -> bool:
    """litellm's ``APIError`` for a stream that ended without a single choice (litellm <= 1.83).

    Example:
        >>> is_empty_stream_error(RuntimeError("Error building chunks for logging/streaming usage calculation"))
        False
    """
    return has_type_named(exc, "litellm", "APIError") and _EMPTY_STREAM_MARK in str(exc)


def seed_default(exc: BaseException) -> bool:
    """The default ``retry_on``: a missing model message, in any of its forms.

    Example:
        >>> seed_default(ValueError("No message in response"))
        True
        >>> seed_default(TimeoutError())
        False
    """
    return is_no_message_error(exc) or is_null_message_error(exc) or is_empty_stream_error(exc)


def is_empty_response(response: LlmResponse) -> bool:
    """Whether ``response`` is an empty answer rather than an answer.

    Empty means: no part carries anything (text, function call or response,
    data, code), no ``error_code``, and a finish reason of None or STOP. Any
    other finish reason (SAFETY, MAX_TOKENS, ...) is the provider's answer,
    not emptiness: on ADK 2.3 a content filter also yields no parts.

    Example:
        >>> from google.adk.models.llm_response import LlmResponse
        >>> from google.genai import types
        >>> is_empty_response(LlmResponse(content=types.Content(role="model", parts=[])))
        True
        >>> is_empty_response(LlmResponse(finish_reason=types.FinishReason.SAFETY))
        False
    """
    # Payload first: it is what a normal answer has, and it settles the question.
    content = response.content
    if content is not None and content.parts:
        for part in content.parts:
            if (
                part.text
                or part.function_call
                or part.function_response
                or part.inline_data
                or part.file_data
                or part.executable_code
                or part.code_execution_result
            ):
                return False
    if response.error_code is not None:
        return False
    reason = response.finish_reason
    return reason is None or getattr(reason, "value", reason) in _ANSWERLESS_FINISH_REASONS
