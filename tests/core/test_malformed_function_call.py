"""``retry_malformed_function_calls``: unparseable tool-call arguments as an opt-in retry reason."""

from __future__ import annotations

import json

import pydantic
import pytest
from google.adk.models.llm_response import LlmResponse

from adk_retry import ErrorRule, MalformedFunctionCallError, RetryPolicy
from adk_retry.core._transient import MALFORMED_FUNCTION_CALL, error_class
from adk_retry.testing import no_waits
from tests.adapter.test_attach_and_wrap import collect, request, said, scripted


def malformed() -> LlmResponse:
    """What google-adk 2.13's LiteLlm yields for tool-call arguments that are not a JSON object."""
    return LlmResponse(
        error_code="MALFORMED_FUNCTION_CALL",
        finish_reason="MALFORMED_FUNCTION_CALL",
        error_message="Arguments for the following function calls were not a valid JSON object: get_weather",
    )


def decode_error() -> json.JSONDecodeError:
    try:
        json.loads('{"city": "Par')
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("parsed")


def test_off_by_default() -> None:
    policy = RetryPolicy()
    assert policy.retry_malformed_function_calls is False
    assert not policy.retries(MalformedFunctionCallError(malformed()))
    assert not RetryPolicy.transient().retries(decode_error())


@pytest.mark.parametrize("retry_on", ["default", "transient", ValueError, "all"])
def test_the_opt_in_retries_both_forms_whatever_retry_on_says(retry_on: object) -> None:
    policy = RetryPolicy(retry_on=retry_on, retry_malformed_function_calls=True)
    assert policy.retries(MalformedFunctionCallError(malformed()))
    assert policy.retries(decode_error())  # google-adk 2.3's LiteLlm raises it
    assert policy.retries(ValueError("No message in response"))  # the rest of retry_on still holds
    assert not policy.retries(KeyError("x")) or retry_on == "all"


def test_a_bad_flag_fails_at_construction_naming_the_field() -> None:
    with pytest.raises(pydantic.ValidationError, match="retry_malformed_function_calls"):
        RetryPolicy(retry_malformed_function_calls="sometimes")


def test_its_error_class_can_have_its_own_rule() -> None:
    assert error_class(MalformedFunctionCallError(malformed())) == MALFORMED_FUNCTION_CALL
    ErrorRule(match=MALFORMED_FUNCTION_CALL, max_retries=1)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_malformed_answer_is_a_failed_attempt_when_opted_in(stream: bool) -> None:
    model, handler = scripted(RetryPolicy(retry_malformed_function_calls=True))
    model.scripts.extend([[malformed()], [said("fixed")]])
    with no_waits():
        assert await collect(model, stream=stream) == ["fixed"]
    assert (handler.stats.attempts, handler.stats.retries, handler.stats.successes) == (2, 1, 1)


async def test_out_of_retries_raises_the_clear_error_with_the_response() -> None:
    model, handler = scripted(RetryPolicy(retry_malformed_function_calls=True, max_retries=2))
    last = malformed()
    model.scripts.extend([[malformed()], [malformed()], [last]])
    with no_waits(), pytest.raises(MalformedFunctionCallError) as caught:
        await collect(model)
    assert caught.value.response is last
    assert (handler.stats.attempts, handler.stats.failures) == (3, 1)


async def test_a_rule_limits_its_retries() -> None:
    rule = ErrorRule(match=MALFORMED_FUNCTION_CALL, max_retries=1)
    model, handler = scripted(RetryPolicy(retry_malformed_function_calls=True, rules=(rule,)))
    model.scripts.extend([[malformed()], [malformed()], [said("never")]])
    with no_waits(), pytest.raises(MalformedFunctionCallError):
        await collect(model)
    assert handler.stats.attempts == 2


async def test_without_the_opt_in_the_response_reaches_adk_as_it_is() -> None:
    model, handler = scripted(RetryPolicy.transient())
    response = malformed()
    model.scripts.append([response])
    answers = [r async for r in model.generate_content_async(request())]
    assert answers == [response]
    assert (handler.stats.attempts, handler.stats.successes) == (1, 1)


async def test_after_text_reached_the_caller_it_is_never_retried() -> None:
    model, handler = scripted(RetryPolicy(retry_malformed_function_calls=True))
    model.scripts.append([said("Let me", partial=True), malformed()])
    with no_waits():
        assert await collect(model, stream=True) == ["Let me", ""]
    assert handler.stats.attempts == 1
