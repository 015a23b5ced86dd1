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
   a stream that carried no choice at all (:func:`is_empty_stream_error`),
   and litellm 1.110 raises ``MidStreamFallbackError("... Stream ended
   before a finish_reason was received ...")`` for a stream that ends with
   no content and no finish reason (:func:`is_unfinished_empty_stream_error`).

What an empty answer is follows google-adk's own rule (2.13 marks such a
final response ``MODEL_RETURNED_NO_CONTENT``): no part with a function call
or response, code, data, or text that is neither whitespace nor a thought.
Where ADK has that function (``has_meaningful_content``) it is used; where it
does not (2.3) the same rule is applied here.

Every predicate here is total: a provider exception whose ``__str__`` or
attributes raise is judged as if it had no text, never by raising, so the
caller always gets the original error.

Exception types from litellm, openai, httpx and google-genai are recognised
by module and class name along the MRO, so this module never imports those
(heavy, optional) libraries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from adk_retry.core._errors import MALFORMED_FUNCTION_CALL, NO_MESSAGE

if TYPE_CHECKING:
    from google.adk.models.llm_response import LlmResponse

__all__ = [
    "has_meaningful_content",
    "has_type_named",
    "is_empty_response",
    "is_empty_stream_error",
    "is_malformed_function_call",
    "is_no_message_error",
    "is_null_message_error",
    "is_unfinished_empty_stream_error",
    "safe_attr",
    "safe_text",
    "seed_default",
]

_NULL_MESSAGE_MARK = "Invalid response object"
_EMPTY_STREAM_MARK = "Error building chunks for logging/streaming usage calculation"
_NO_FINISH_MARK = "Stream ended before a finish_reason was received"
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


def safe_text(exc: BaseException) -> str:
    """``str(exc)``, or ``""`` when its ``__str__`` raises or returns no string.

    A classifier or a log line that called ``str()`` on a broken provider
    exception would raise in its place, and the caller would get that
    error instead of the original.

    Example:
        >>> class Broken(Exception):
        ...     def __str__(self): raise RuntimeError("no text")
        >>> safe_text(Broken()), safe_text(ValueError("boom"))
        ('', 'boom')
    """
    try:
        text = str(exc)
    except Exception:  # a broken __str__ is no text, not a new error
        return ""
    return text if isinstance(text, str) else ""


def is_no_message_error(exc: BaseException) -> bool:
    """The seed's rule: a ``ValueError`` whose message is exactly "No message in response".

    :class:`~adk_retry.core._errors.EmptyResponseError` satisfies it too.

    Example:
        >>> is_no_message_error(ValueError("No message in response"))
        True
        >>> is_no_message_error(ValueError("No message in response, at all"))
        False
    """
    return isinstance(exc, ValueError) and safe_text(exc) == NO_MESSAGE


def is_null_message_error(exc: BaseException) -> bool:
    """litellm's ``InternalServerError`` for a 200 answer whose message is null.

    Matched as narrowly as the exception allows: litellm's own class *and* its
    "Invalid response object" text; a real 500 does not match.

    Example:
        >>> is_null_message_error(RuntimeError("Invalid response object"))
        False
    """
    return has_type_named(exc, "litellm", "InternalServerError") and _NULL_MESSAGE_MARK in safe_text(exc)


def is_empty_stream_error(exc: BaseException) -> bool:
    """litellm's ``APIError`` for a stream that ended without a single choice (litellm <= 1.83).

    Example:
        >>> is_empty_stream_error(RuntimeError("Error building chunks for logging/streaming usage calculation"))
        False
    """
    return has_type_named(exc, "litellm", "APIError") and _EMPTY_STREAM_MARK in safe_text(exc)


def is_unfinished_empty_stream_error(exc: BaseException) -> bool:
    """litellm's ``MidStreamFallbackError`` for a stream that ended with no content and no finish reason.

    litellm 1.110 raises it where 1.106 yielded an empty answer. It is an
    empty answer only while litellm saw no content (``generated_content``
    is blank); a stream cut after some text is not. Whether anything already
    reached the caller is the retry loop's business: it never retries once
    a chunk was yielded.

    Example:
        >>> is_unfinished_empty_stream_error(RuntimeError("Stream ended before a finish_reason was received"))
        False
    """
    if not has_type_named(exc, "litellm", "MidStreamFallbackError"):
        return False
    generated = safe_attr(exc, "generated_content")
    if isinstance(generated, str) and generated.strip():
        return False
    return _NO_FINISH_MARK in safe_text(exc)


def seed_default(exc: BaseException) -> bool:
    """The default ``retry_on``: a missing model message, in any of its forms.

    Example:
        >>> seed_default(ValueError("No message in response"))
        True
        >>> seed_default(TimeoutError())
        False
    """
    return (
        is_no_message_error(exc)
        or is_null_message_error(exc)
        or is_empty_stream_error(exc)
        or is_unfinished_empty_stream_error(exc)
    )


def has_meaningful_content(response: LlmResponse) -> bool:
    """google-adk's rule for an answer, for versions that lack it (2.3): is any part meaningful?

    Meaningful: a function call or response, executable code or its result,
    inline or file data, or text that is neither whitespace-only nor a
    thought. A copy of ``has_meaningful_content`` in google-adk 2.13's
    ``flows/llm_flows/core/_finalizer.py``; :func:`is_empty_response` uses
    ADK's own function where it exists.

    Example:
        >>> from google.adk.models.llm_response import LlmResponse
        >>> from google.genai import types
        >>> has_meaningful_content(LlmResponse(content=types.Content(parts=[types.Part(text=" \\n")])))
        False
    """
    content = response.content
    if content is None or not content.parts:
        return False
    for part in content.parts:
        if (
            part.function_call is not None
            or part.function_response is not None
            or part.executable_code is not None
            or part.code_execution_result is not None
            or part.inline_data is not None
            or part.file_data is not None
        ):
            return True
        text = part.text
        if text and not getattr(part, "thought", False) and not text.isspace():
            return True
    return False


_meaningful: Callable[[LlmResponse], bool] | None = None


def _meaningful_rule() -> Callable[[LlmResponse], bool]:
    """ADK's ``has_meaningful_content`` if this google-adk has it, else ours; looked up once."""
    global _meaningful
    if _meaningful is None:
        try:
            from google.adk.flows.llm_flows.core._finalizer import (  # type: ignore[import-not-found,unused-ignore]
                has_meaningful_content as adk_rule,
            )
        except Exception:  # ADK 2.3 has no such module; a private path may also move
            adk_rule = None  # type: ignore[assignment,unused-ignore]
        _meaningful = adk_rule if callable(adk_rule) else has_meaningful_content
    return _meaningful


def is_empty_response(response: LlmResponse) -> bool:
    """Whether ``response`` is an empty answer rather than an answer.

    Empty means what google-adk 2.13 marks ``MODEL_RETURNED_NO_CONTENT``:
    no part carries anything meaningful (no parts at all, whitespace-only
    text, thought-only parts), no ``error_code``, and a finish reason of
    None or STOP. A function call, real text, or any other finish reason
    (SAFETY, MAX_TOKENS, ...) is the provider's answer, not emptiness: on
    ADK 2.3 a content filter also yields no parts.

    Example:
        >>> from google.adk.models.llm_response import LlmResponse
        >>> from google.genai import types
        >>> is_empty_response(LlmResponse(content=types.Content(role="model", parts=[])))
        True
        >>> is_empty_response(LlmResponse(content=types.Content(parts=[types.Part(text="  ")])))
        True
        >>> is_empty_response(LlmResponse(finish_reason=types.FinishReason.SAFETY))
        False
    """
    content = response.content
    if content is not None:
        parts = content.parts
        if parts:
            # Real text or a function call first: what nearly every answer and chunk
            # has, and either settles the question in ADK's rule too. The first part
            # alone, before a loop, settles nearly every answer.
            part = parts[0]
            text = part.text
            if text and not part.thought and not text.isspace():
                return False
            for part in parts:
                text = part.text
                if text:
                    if not text.isspace() and not part.thought:
                        return False
                elif part.function_call is not None:
                    return False
            if (_meaningful or _meaningful_rule())(response):
                return False
    if response.error_code is not None:
        return False
    reason = response.finish_reason
    return reason is None or getattr(reason, "value", reason) in _ANSWERLESS_FINISH_REASONS


def is_malformed_function_call(response: LlmResponse) -> bool:
    """Whether ``response`` reports tool-call arguments that did not parse (``MALFORMED_FUNCTION_CALL``).

    google-adk 2.13's ``LiteLlm`` drops such a call and sets ``error_code``
    and ``finish_reason`` to ``MALFORMED_FUNCTION_CALL``; Gemini reports it
    natively the same way. Retried only with
    ``RetryPolicy(retry_malformed_function_calls=True)``.

    Example:
        >>> from google.adk.models.llm_response import LlmResponse
        >>> is_malformed_function_call(LlmResponse(error_code="MALFORMED_FUNCTION_CALL"))
        True
        >>> is_malformed_function_call(LlmResponse(error_code="SAFETY"))
        False
    """
    for value in (response.error_code, response.finish_reason):
        if value is not None and getattr(value, "value", value) == MALFORMED_FUNCTION_CALL:
            return True
    return False
