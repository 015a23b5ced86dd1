"""What counts as retriable: the seed's rule over exceptions and responses, and EmptyResponseError."""

from __future__ import annotations

from typing import Any

import litellm
import pytest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from adk_retry.core import _empty as classify
from adk_retry.core._empty import (
    has_meaningful_content,
    has_type_named,
    is_empty_response,
    is_empty_stream_error,
    is_malformed_function_call,
    is_no_message_error,
    is_null_message_error,
    is_unfinished_empty_stream_error,
    seed_default,
)
from adk_retry.core._errors import NO_MESSAGE, AdkRetryError, EmptyResponseError, MalformedFunctionCallError


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


def unfinished_stream_error(generated: str = "", message: str | None = None) -> Exception:
    """What litellm 1.110 raises for an SSE stream that ended without a finish_reason."""
    text = message or (
        "litellm.APIConnectionError: APIConnectionError: OpenAIException - "
        "Stream ended before a finish_reason was received"
    )
    return litellm.exceptions.MidStreamFallbackError(
        message=text, model="x", llm_provider="openai", generated_content=generated
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
        (unfinished_stream_error(), True),
        (unfinished_stream_error(generated=" \n"), True),
        (unfinished_stream_error(generated="half an answ"), False),
        (unfinished_stream_error(message="Connection error."), False),
        (RuntimeError("Stream ended before a finish_reason was received"), False),
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
        # google-adk 2.13's MODEL_RETURNED_NO_CONTENT: whitespace-only and thought-only answers
        (model_response(types.Part(text=" \n\t "), finish_reason=types.FinishReason.STOP), True),
        (model_response(types.Part(text="\u2003")), True),
        (model_response(types.Part(text="Let me think.", thought=True), finish_reason=types.FinishReason.STOP), True),
        (model_response(types.Part(text="Let me think.", thought=True), types.Part(text="  ")), True),
        (model_response(types.Part(text="Let me think.", thought=True), types.Part(text="Paris.")), False),
        (
            model_response(
                types.Part(text="Need the tool.", thought=True),
                types.Part(function_call=types.FunctionCall(name="tool", args={})),
            ),
            False,
        ),
        (model_response(types.Part(text=" "), types.Part(function_call=types.FunctionCall(name="t"))), False),
        (
            model_response(types.Part(executable_code=types.ExecutableCode(code="1", language="PYTHON"))),
            False,
        ),
        (
            model_response(
                types.Part(code_execution_result=types.CodeExecutionResult(outcome="OUTCOME_OK", output="1"))
            ),
            False,
        ),
        (model_response(types.Part(file_data=types.FileData(file_uri="gs://b/f", mime_type="text/plain"))), False),
        (model_response(types.Part(text=" "), finish_reason=types.FinishReason.SAFETY), False),
        (model_response(types.Part(text=" "), finish_reason=types.FinishReason.MAX_TOKENS), False),
        (model_response(types.Part(text=" "), error_code="MALFORMED_FUNCTION_CALL"), False),
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
        "whitespace-stop",
        "unicode-whitespace",
        "thought-only",
        "thought-and-whitespace",
        "thought-then-text",
        "thought-then-function-call",
        "whitespace-and-function-call",
        "executable-code",
        "code-execution-result",
        "file-data",
        "whitespace-safety",
        "whitespace-max-tokens",
        "malformed-function-call",
    ],
)
def test_is_empty_response(response: LlmResponse, expected: bool) -> None:
    assert is_empty_response(response) is expected


PART_SETS = [
    [],
    [types.Part()],
    [types.Part(text="")],
    [types.Part(text=" \n")],
    [types.Part(text="hi")],
    [types.Part(text="hmm", thought=True)],
    [types.Part(text="hmm", thought=True), types.Part(text=" ")],
    [types.Part(text="hmm", thought=True), types.Part(text="yes")],
    [types.Part(text="hmm", thought=False)],
    [types.Part(function_call=types.FunctionCall(name="t"))],
    [types.Part(function_response=types.FunctionResponse(name="t", response={}))],
    [types.Part(inline_data=types.Blob(mime_type="image/png", data=b"x"))],
    [types.Part(executable_code=types.ExecutableCode(code="1", language="PYTHON"))],
]


@pytest.mark.parametrize("parts", PART_SETS, ids=range(len(PART_SETS)))
def test_our_meaningful_content_rule_is_adks(parts: list[types.Part]) -> None:
    """The copy used on google-adk 2.3 agrees with 2.13's own function, part for part."""
    finalizer = pytest.importorskip("google.adk.flows.llm_flows.core._finalizer")
    response = model_response(*parts, finish_reason=types.FinishReason.STOP)
    assert has_meaningful_content(response) is finalizer.has_meaningful_content(response)
    assert is_empty_response(response) is not finalizer.has_meaningful_content(response)


def test_adks_own_rule_is_used_where_it_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(classify, "_meaningful", None)
    try:
        from google.adk.flows.llm_flows.core._finalizer import has_meaningful_content as adk_rule
    except ImportError:  # google-adk 2.3
        adk_rule = has_meaningful_content
    assert classify._meaningful_rule() is adk_rule
    assert classify._meaningful is adk_rule  # looked up once


def test_the_same_rule_applies_where_adk_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(classify, "_meaningful", None)
    monkeypatch.setitem(sys.modules, "google.adk.flows.llm_flows.core._finalizer", None)  # import fails
    assert classify._meaningful_rule() is has_meaningful_content
    assert is_empty_response(model_response(types.Part(text="hmm", thought=True)))
    assert is_empty_response(model_response(types.Part(text="\n")))
    assert not is_empty_response(model_response(types.Part(function_call=types.FunctionCall(name="t"))))


def test_unfinished_stream_error_needs_litellms_type() -> None:
    assert is_unfinished_empty_stream_error(unfinished_stream_error())
    assert not is_unfinished_empty_stream_error(ConnectionError("Stream ended before a finish_reason was received"))


# --- MALFORMED_FUNCTION_CALL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (LlmResponse(error_code="MALFORMED_FUNCTION_CALL", error_message="bad"), True),
        (LlmResponse(error_code=types.FinishReason.MALFORMED_FUNCTION_CALL), True),
        (LlmResponse(finish_reason=types.FinishReason.MALFORMED_FUNCTION_CALL), True),
        (LlmResponse(error_code="MODEL_RETURNED_NO_CONTENT"), False),
        (LlmResponse(finish_reason=types.FinishReason.STOP), False),
        (model_response(types.Part(function_call=types.FunctionCall(name="t", args={}))), False),
    ],
)
def test_is_malformed_function_call(response: LlmResponse, expected: bool) -> None:
    assert is_malformed_function_call(response) is expected


def test_malformed_function_call_error_carries_the_response() -> None:
    response = LlmResponse(error_code="MALFORMED_FUNCTION_CALL", error_message="Arguments ...: get_weather")
    error = MalformedFunctionCallError(response)
    assert isinstance(error, AdkRetryError)
    assert not isinstance(error, ValueError)  # not the seed's empty answer
    assert error.response is response
    assert str(error) == "MALFORMED_FUNCTION_CALL: Arguments ...: get_weather"
    assert not seed_default(error)
