"""What counts as retriable: the seed's rule over exceptions and responses, and EmptyResponseError."""

from __future__ import annotations

from typing import Any

import litellm
import pytest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from adk_retry.core._empty import (
    has_type_named,
    is_empty_response,
    is_empty_stream_error,
    is_no_message_error,
    is_null_message_error,
    seed_default,
)
from adk_retry.core._errors import NO_MESSAGE, AdkRetryError, EmptyResponseError


def null_message_error() -> Exception:
    return litellm.exceptions.InternalServerError(
        message="Invalid response object Traceback (most recent call last): ... choices[0].message is None",
        llm_provider="openai",
        model="x",
    )


def other_internal_server_error() -> Exception:
    return litellm.exceptions.InternalServerError(message="upstream exploded", llm_provider="openai", model="x")


def empty_stream_error() -> Exception:
    return litellm.exceptions.APIError(
        status_code=500,
        message="Error building chunks for logging/streaming usage calculation",
        llm_provider="openai",
        model="x",
    )


def model_response(*parts: types.Part, **fields: Any) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=list(parts)), **fields)


# --- errors ----------------------------------------------------------------------


def test_empty_response_error_is_value_error_with_seed_message() -> None:
    response = model_response()
    error = EmptyResponseError(response)
    assert isinstance(error, ValueError)
    assert isinstance(error, AdkRetryError)
    assert str(error) == "No message in response"
    assert error.args == ("No message in response",)
    assert error.response is response


def test_empty_response_error_accepts_no_response() -> None:
    assert EmptyResponseError(None).response is None


def test_no_message_constant_is_the_seed_text() -> None:
    assert NO_MESSAGE == "No message in response"


# --- is_no_message_error ------------------------------------------------------------------


def test_no_message_value_error_matches() -> None:
    assert is_no_message_error(ValueError("No message in response"))
    assert is_no_message_error(EmptyResponseError(None))


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("No message in response, at all"),
        ValueError("no message in response"),
        ValueError(" No message in response"),
        ValueError(),
        RuntimeError("No message in response"),
        KeyError("No message in response"),
    ],
)
def test_no_message_needs_exact_value_error(exc: BaseException) -> None:
    assert not is_no_message_error(exc)


# --- is_null_message_error -------------------------------------------------------------------


def test_real_litellm_invalid_response_object_matches() -> None:
    assert is_null_message_error(null_message_error())


def test_real_litellm_internal_server_error_with_other_text_does_not_match() -> None:
    assert not is_null_message_error(other_internal_server_error())


def test_other_exception_with_invalid_response_text_does_not_match() -> None:
    assert not is_null_message_error(RuntimeError("Invalid response object"))


def test_other_litellm_error_with_invalid_response_text_does_not_match() -> None:
    exc = litellm.exceptions.BadRequestError(message="Invalid response object", llm_provider="openai", model="x")
    assert not is_null_message_error(exc)


def test_subclass_of_litellm_internal_server_error_matches() -> None:
    class Custom(litellm.exceptions.InternalServerError):
        pass

    exc = Custom(message="Invalid response object", llm_provider="openai", model="x")
    assert is_null_message_error(exc)


# --- is_empty_stream_error -------------------------------------------------------------------


def test_real_litellm_empty_stream_api_error_matches() -> None:
    assert is_empty_stream_error(empty_stream_error())


def test_real_litellm_api_error_with_other_text_does_not_match() -> None:
    exc = litellm.exceptions.APIError(status_code=500, message="boom", llm_provider="openai", model="x")
    assert not is_empty_stream_error(exc)


def test_other_exception_with_empty_stream_text_does_not_match() -> None:
    assert not is_empty_stream_error(RuntimeError("Error building chunks for logging/streaming usage calculation"))


# --- has_type_named ---------------------------------------------------------------------


def test_has_type_named_walks_the_mro() -> None:
    exc = other_internal_server_error()
    assert has_type_named(exc, "openai", "APIStatusError")
    assert has_type_named(exc, "litellm", "InternalServerError", "RateLimitError")
    assert not has_type_named(exc, "httpx", "InternalServerError")
    assert not has_type_named(exc, "litellm", "RateLimitError")


# --- seed_default ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("No message in response"), True),
        (EmptyResponseError(None), True),
        (null_message_error(), True),
        (empty_stream_error(), True),
        (other_internal_server_error(), False),
        (ValueError("bad"), False),
        (TimeoutError(), False),
        (ConnectionError("reset"), False),
    ],
)
def test_seed_default(exc: BaseException, expected: bool) -> None:
    assert seed_default(exc) is expected


# --- is_empty_response ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (LlmResponse(), True),
        (LlmResponse(content=types.Content(role="model")), True),
        (model_response(), True),
        (model_response(types.Part(text="")), True),
        (model_response(types.Part(text=""), types.Part()), True),
        (model_response(types.Part(text="hi")), False),
        (model_response(types.Part(text=""), types.Part(text="late text")), False),
        (model_response(types.Part(function_call=types.FunctionCall(name="tool", args={}))), False),
        (
            model_response(types.Part(function_response=types.FunctionResponse(name="tool", response={"ok": 1}))),
            False,
        ),
        (model_response(types.Part(inline_data=types.Blob(mime_type="image/png", data=b"\x89PNG"))), False),
        (LlmResponse(error_code="RESOURCE_EXHAUSTED", error_message="quota"), False),
        (model_response(error_code="500"), False),
        (LlmResponse(finish_reason=types.FinishReason.SAFETY), False),
        (model_response(finish_reason=types.FinishReason.MAX_TOKENS), False),
        (model_response(finish_reason=types.FinishReason.RECITATION), False),
        (model_response(finish_reason=types.FinishReason.STOP), True),
        (model_response(finish_reason=None), True),
        (model_response(finish_reason=types.FinishReason.FINISH_REASON_UNSPECIFIED), True),
        (model_response(types.Part(text="answer"), finish_reason=types.FinishReason.STOP), False),
    ],
    ids=[
        "no-content",
        "content-without-parts",
        "empty-parts",
        "empty-text-part",
        "empty-text-and-blank-part",
        "text",
        "text-after-empty-part",
        "function-call",
        "function-response",
        "inline-data",
        "error-code-no-content",
        "error-code-empty-parts",
        "safety",
        "max-tokens",
        "recitation",
        "stop",
        "none",
        "unspecified",
        "text-stop",
    ],
)
def test_is_empty_response(response: LlmResponse, expected: bool) -> None:
    assert is_empty_response(response) is expected
