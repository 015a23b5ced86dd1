"""Server hints: Retry-After headers, Google RetryInfo and "retry in Ns" messages."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import litellm
import openai
import pytest
from google.genai import errors as genai_errors

from adk_retry.core._hints import parse_duration, parse_retry_after, retry_after
from adk_retry.testing import Fault, FaultServer
from tests.conftest import raised_through_litellm

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()


def status_error(headers: dict[str, str], code: int = 429, message: str = "rate limited") -> openai.APIStatusError:
    """An openai SDK error whose response carries ``headers``."""
    return openai.RateLimitError(message, response=httpx.Response(code, headers=headers, request=REQUEST), body=None)


def litellm_rate_limit(message: str = "rate limited") -> Exception:
    exc: Exception = litellm.exceptions.RateLimitError(message=message, llm_provider="openai", model="m")
    return exc


def google_429(details: list[dict[str, Any]], message: str = "Resource exhausted.") -> genai_errors.ClientError:
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}
    return genai_errors.ClientError(429, body)


def retry_info(delay: Any) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


class WithAttrs(Exception):
    def __init__(self, message: str = "error", **attrs: Any) -> None:
        super().__init__(message)
        self.__dict__.update(attrs)


# -- headers --------------------------------------------------------------------------


def test_retry_after_seconds() -> None:
    assert retry_after(status_error({"Retry-After": "7"})) == 7.0


def test_retry_after_fractional_seconds() -> None:
    assert retry_after(status_error({"retry-after": "1.5"})) == 1.5


def test_retry_after_zero_is_a_hint() -> None:
    assert retry_after(status_error({"Retry-After": "0"})) == 0.0


def test_retry_after_ms() -> None:
    assert retry_after(status_error({"retry-after-ms": "250"})) == 0.25


def test_ms_beats_seconds() -> None:
    assert retry_after(status_error({"Retry-After": "3", "retry-after-ms": "1500"})) == 1.5


def test_unparsable_ms_falls_back_to_seconds() -> None:
    assert retry_after(status_error({"Retry-After": "3", "retry-after-ms": "soon"})) == 3.0


def test_http_date_with_injected_now() -> None:
    exc = status_error({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"})
    assert retry_after(exc, now=NOW) == 30.0


def test_http_date_defaults_to_wall_clock() -> None:
    later = datetime.now(UTC).timestamp() + 3600
    exc = status_error({"Retry-After": format_datetime(datetime.fromtimestamp(later, UTC), usegmt=True)})
    delay = retry_after(exc)
    assert delay is not None
    assert 3590 <= delay <= 3600


def test_http_date_in_the_past_is_no_hint() -> None:
    assert retry_after(status_error({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}), now=NOW) is None


@pytest.mark.parametrize("value", ["-5", "soon", "", "nan", "inf", "1e3", "1_000", "Wed, 99 Foo 2015", "3 s"])
def test_garbage_retry_after_is_no_hint(value: str) -> None:
    assert retry_after(status_error({"Retry-After": value}), now=NOW) is None


@pytest.mark.parametrize("value", ["-5", "soon", "nan"])
def test_garbage_retry_after_ms_is_no_hint(value: str) -> None:
    assert retry_after(status_error({"retry-after-ms": value})) is None


def test_litellm_response_headers() -> None:
    """litellm's own ``response`` has no headers; the real ones are on ``litellm_response_headers``."""
    exc = litellm_rate_limit()
    exc.litellm_response_headers = httpx.Headers({"Retry-After": "4"})  # type: ignore[attr-defined]
    assert retry_after(exc) == 4.0


def test_plain_dict_headers_match_case_insensitively() -> None:
    assert retry_after(WithAttrs(headers={"Retry-After": "6"})) == 6.0
    assert retry_after(WithAttrs(headers={"RETRY-AFTER-MS": "600"})) == 0.6


def test_headers_that_are_not_a_mapping_are_ignored() -> None:
    assert retry_after(WithAttrs(headers=["Retry-After: 6"], response=object())) is None


def test_no_headers_no_hint() -> None:
    assert retry_after(litellm_rate_limit()) is None
    assert retry_after(ValueError("No message in response")) is None


# -- Google RetryInfo -------------------------------------------------------------------


def test_google_retry_info_in_details() -> None:
    exc = google_429([{"@type": "type.googleapis.com/google.rpc.QuotaFailure"}, retry_info("53s")])
    assert retry_after(exc) == 53.0


def test_google_retry_info_fractional() -> None:
    assert retry_after(google_429([retry_info("0.5s")])) == 0.5


def test_google_retry_info_as_seconds_and_nanos() -> None:
    assert retry_after(google_429([retry_info({"seconds": "2", "nanos": 500000000})])) == 2.5


def test_google_retry_info_beats_the_message() -> None:
    exc = google_429([retry_info("53s")], message="Quota exceeded. Please retry in 53.071680s.")
    assert retry_after(exc) == 53.0


def test_google_retry_info_in_response_json_list() -> None:
    """genai unwraps a one-element list; ``response_json`` is read too, for other wrappers."""
    body = [{"error": {"code": 429, "details": [retry_info("9s")]}}]
    assert retry_after(genai_errors.ClientError(429, body)) == 9.0
    assert retry_after(WithAttrs(response_json=body)) == 9.0


def test_google_retry_info_in_message_json() -> None:
    """litellm's Gemini / Vertex exceptions carry the error body as JSON text."""
    message = (
        'litellm.RateLimitError: VertexAIException - {\n  "error": {\n    "code": 429,\n'
        '    "details": [\n      {\n        "@type": "type.googleapis.com/google.rpc.RetryInfo",\n'
        '        "retryDelay": "17s"\n      }\n    ]\n  }\n}\n'
    )
    assert retry_after(litellm_rate_limit(message)) == 17.0


def test_bad_retry_delay_is_no_hint() -> None:
    assert retry_after(google_429([retry_info("soon")], message="quota")) is None
    assert retry_after(google_429([retry_info("-3s")], message="quota")) is None


# -- messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Please retry in 53s.", 53.0),
        ("Quota exceeded. Please retry in 53.071680s.", 53.07168),
        ("Please retry in 1.5 seconds", 1.5),
        ("Rate limit reached for gpt-4o. Please try again in 20s. Visit ...", 20.0),
        ("Please try again in 6ms.", 0.006),
        ("Please try again in 1m30s.", 90.0),
        ("Please try again in 2m59.5s", 179.5),
        ("Requests have exceeded the rate limit. Please retry after 2 seconds.", 2.0),
        ("Try again in 1 minute", 60.0),
        ("RETRY AFTER 3 SECS", 3.0),
    ],
)
def test_message_phrases(message: str, expected: float) -> None:
    assert retry_after(litellm_rate_limit(message)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "message",
    ["Please try again later.", "retry in a moment", "retry after 2", "retrying in 5s failed", "we try again in -2s"],
)
def test_messages_without_a_hint(message: str) -> None:
    assert retry_after(RuntimeError(message)) is None


def test_header_beats_retry_info_beats_message() -> None:
    exc = google_429([retry_info("53s")], message="Please retry in 10s.")
    exc.response = httpx.Response(429, headers={"Retry-After": "5"}, request=REQUEST)
    assert retry_after(exc) == 5.0
    exc.response = httpx.Response(429, request=REQUEST)
    assert retry_after(exc) == 53.0


# -- chained exceptions ---------------------------------------------------------------


def raise_from(inner: BaseException, *, chain: bool) -> None:
    try:
        raise inner
    except Exception as exc:
        if chain:
            raise RuntimeError("model call failed") from exc
        raise RuntimeError("model call failed") from None


def test_hint_on_the_cause() -> None:
    with pytest.raises(RuntimeError) as caught:
        raise_from(status_error({"Retry-After": "8"}), chain=True)
    assert retry_after(caught.value) == 8.0


def test_hint_on_the_context() -> None:
    with pytest.raises(RuntimeError) as caught:
        raise_from(status_error({"Retry-After": "8"}), chain=False)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is not None
    assert retry_after(caught.value) == 8.0


def test_own_hint_beats_the_cause() -> None:
    outer = status_error({"Retry-After": "1"})
    outer.__cause__ = status_error({"Retry-After": "8"})
    assert retry_after(outer) == 1.0


def test_only_one_level_is_followed() -> None:
    middle = RuntimeError("middle")
    middle.__cause__ = status_error({"Retry-After": "8"})
    outer = RuntimeError("outer")
    outer.__cause__ = middle
    assert retry_after(outer) is None


def test_broken_exception_is_no_hint() -> None:
    class Broken(Exception):
        @property
        def response(self) -> Any:
            raise RuntimeError("no")

        def __str__(self) -> str:
            raise RuntimeError("no")

    assert retry_after(Broken()) is None


# -- the parsers ------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(b"2") == 2.0
    assert parse_retry_after(3) == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 -0000", now=NOW) == 30.0
    assert parse_retry_after("-1") is None
    assert parse_retry_after(None) is None


def test_parse_duration() -> None:
    assert parse_duration("1h2m3s") == 3723.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1.5 seconds") == 1.5
    assert parse_duration("soon") is None


# -- over HTTP, through litellm -------------------------------------------------------


async def test_real_429_retry_after_through_litellm(server: FaultServer) -> None:
    server.push(Fault.http_error(429, retry_after=1))
    exc = await raised_through_litellm(server)
    assert isinstance(exc, litellm.exceptions.RateLimitError)
    assert retry_after(exc) == 1.0


async def test_real_429_retry_after_streaming(server: FaultServer) -> None:
    server.push(Fault.http_error(429, retry_after=1))
    assert retry_after(await raised_through_litellm(server, stream=True)) == 1.0


async def test_real_429_retry_after_ms_through_litellm(server: FaultServer) -> None:
    server.push(Fault.http_error(429, retry_after=3, retry_after_ms=1500))
    assert retry_after(await raised_through_litellm(server)) == 1.5


async def test_real_503_http_date_through_litellm(server: FaultServer) -> None:
    server.push(Fault.http_error(503, retry_after="Wed, 21 Oct 2015 07:28:30 GMT"))
    assert retry_after(await raised_through_litellm(server), now=NOW) == 30.0


async def test_real_429_message_hint_through_litellm(server: FaultServer) -> None:
    server.push(Fault.http_error(429, message="Rate limit reached. Please try again in 2.5s."))
    assert retry_after(await raised_through_litellm(server)) == 2.5


async def test_real_429_without_hint(server: FaultServer) -> None:
    server.push(Fault.http_error(429))
    assert retry_after(await raised_through_litellm(server)) is None


async def test_real_429_through_the_openai_sdk(server: FaultServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url, api_key="sk-x", max_retries=0)
    server.push(Fault.http_error(429, retry_after=2))
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="fault-model", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert retry_after(caught.value) == 2.0
