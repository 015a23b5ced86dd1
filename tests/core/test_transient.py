"""The transient classifier, against exceptions built from the real libraries and raised over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import litellm
import openai
import pytest
import yarl
from google.genai import errors as genai_errors
from multidict import CIMultiDict, CIMultiDictProxy

from adk_retry.core._errors import EmptyResponseError
from adk_retry.core._transient import (
    CONNECTION,
    EMPTY_RESPONSE,
    ERROR_CLASSES,
    OUT_OF_MEMORY,
    RATE_LIMIT,
    SERVER_ERROR,
    TIMEOUT,
    error_class,
    is_out_of_memory,
    is_transient,
    status_code,
)
from adk_retry.testing import Fault, FaultServer
from tests.conftest import raised_through_litellm

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
OLLAMA_OOM = "model requires more system memory (5.5 GiB) than is available (3.2 GiB)"


def response(code: int) -> httpx.Response:
    return httpx.Response(code, request=REQUEST)


def lite(name: str, message: str = "boom", **kwargs: Any) -> BaseException:
    """litellm.exceptions.<name>, skipped on a litellm that does not have it."""
    cls = getattr(litellm.exceptions, name, None)
    if cls is None:
        pytest.skip(f"this litellm has no {name}")
    kwargs.setdefault("llm_provider", "openai")
    kwargs.setdefault("model", "m")
    exc: BaseException = cls(message=message, **kwargs)
    return exc


def oai(cls: type[openai.APIStatusError], code: int) -> BaseException:
    return cls(f"Error code: {code}", response=response(code), body=None)


def google_error(cls: type[genai_errors.APIError], code: int, status: str) -> BaseException:
    return cls(code, {"error": {"code": code, "message": "m", "status": status}})


def resource_exhausted() -> BaseException:
    from google.adk.models.google_llm import _ResourceExhaustedError

    return _ResourceExhaustedError(
        genai_errors.ClientError(429, {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}})
    )


def aiohttp_response_error(code: int) -> BaseException:
    url = yarl.URL("http://127.0.0.1/v1")
    info = aiohttp.RequestInfo(url, "POST", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(info, (), status=code, message="m")


class WithStatus(Exception):
    def __init__(self, **attrs: Any) -> None:
        super().__init__("provider error")
        self.__dict__.update(attrs)


class KeyErrorWithStatus(KeyError):
    status_code = 503


def json_decode_error() -> BaseException:
    try:
        json.loads('{"city": "Par')
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("unreachable")


Case = tuple[str, Callable[[], BaseException], "str | None"]

CASES: list[Case] = [
    # -- litellm: retried
    ("litellm.RateLimitError", lambda: lite("RateLimitError"), RATE_LIMIT),
    ("litellm.ServiceUnavailableError", lambda: lite("ServiceUnavailableError"), SERVER_ERROR),
    ("litellm.InternalServerError", lambda: lite("InternalServerError"), SERVER_ERROR),
    ("litellm.BadGatewayError", lambda: lite("BadGatewayError"), SERVER_ERROR),
    ("litellm.Timeout", lambda: lite("Timeout"), TIMEOUT),
    ("litellm.APIConnectionError", lambda: lite("APIConnectionError"), CONNECTION),
    ("litellm.APIError(503)", lambda: lite("APIError", status_code=503), SERVER_ERROR),
    ("litellm.APIError(429)", lambda: lite("APIError", status_code=429), RATE_LIMIT),
    ("litellm.MidStreamFallbackError", lambda: lite("MidStreamFallbackError"), SERVER_ERROR),
    (
        "litellm.MidStreamFallbackError(RateLimitError)",
        lambda: lite("MidStreamFallbackError", original_exception=lite("RateLimitError")),
        RATE_LIMIT,
    ),
    (
        "litellm.MidStreamFallbackError(BadRequestError)",
        lambda: lite("MidStreamFallbackError", original_exception=lite("BadRequestError")),
        SERVER_ERROR,
    ),
    (
        "litellm.InternalServerError(null message)",
        lambda: lite("InternalServerError", "OpenAIException - Invalid response object Traceback ..."),
        EMPTY_RESPONSE,
    ),
    # -- litellm: Ollama out of memory, whatever class litellm picked
    (
        "litellm.APIConnectionError(ollama OOM)",
        lambda: lite("APIConnectionError", f"OllamaException - {OLLAMA_OOM}", llm_provider="ollama"),
        OUT_OF_MEMORY,
    ),
    (
        "litellm.InternalServerError(CUDA OOM)",
        lambda: lite("InternalServerError", "CUDA error: out of memory", llm_provider="ollama"),
        OUT_OF_MEMORY,
    ),
    (
        "litellm.BadRequestError(failed to allocate)",
        lambda: lite("BadRequestError", "llama runner: failed to allocate compute buffers", llm_provider="ollama"),
        OUT_OF_MEMORY,
    ),
    # -- litellm: never retried
    ("litellm.BadRequestError", lambda: lite("BadRequestError"), None),
    ("litellm.AuthenticationError", lambda: lite("AuthenticationError"), None),
    ("litellm.PermissionDeniedError", lambda: lite("PermissionDeniedError", response=response(403)), None),
    ("litellm.NotFoundError", lambda: lite("NotFoundError"), None),
    ("litellm.UnprocessableEntityError", lambda: lite("UnprocessableEntityError", response=response(422)), None),
    ("litellm.ContextWindowExceededError", lambda: lite("ContextWindowExceededError"), None),
    ("litellm.ContentPolicyViolationError", lambda: lite("ContentPolicyViolationError"), None),
    ("litellm.PaymentRequiredError", lambda: lite("PaymentRequiredError"), None),
    ("litellm.UnsupportedParamsError", lambda: lite("UnsupportedParamsError"), None),
    ("litellm.APIError(400)", lambda: lite("APIError", status_code=400), None),
    (
        "litellm.BudgetExceededError",
        lambda: litellm.exceptions.BudgetExceededError(current_cost=2.0, max_budget=1.0),
        None,
    ),
    # -- openai SDK
    ("openai.RateLimitError", lambda: oai(openai.RateLimitError, 429), RATE_LIMIT),
    ("openai.InternalServerError", lambda: oai(openai.InternalServerError, 500), SERVER_ERROR),
    ("openai.APITimeoutError", lambda: openai.APITimeoutError(request=REQUEST), TIMEOUT),
    ("openai.APIConnectionError", lambda: openai.APIConnectionError(request=REQUEST), CONNECTION),
    ("openai.APIStatusError(408)", lambda: oai(openai.APIStatusError, 408), TIMEOUT),
    ("openai.APIStatusError(502)", lambda: oai(openai.APIStatusError, 502), SERVER_ERROR),
    ("openai.APIStatusError(503)", lambda: oai(openai.APIStatusError, 503), SERVER_ERROR),
    ("openai.APIStatusError(504)", lambda: oai(openai.APIStatusError, 504), TIMEOUT),
    ("openai.APIStatusError(529)", lambda: oai(openai.APIStatusError, 529), SERVER_ERROR),
    ("openai.APIStatusError(501)", lambda: oai(openai.APIStatusError, 501), None),
    ("openai.APIStatusError(409)", lambda: oai(openai.APIStatusError, 409), None),
    ("openai.BadRequestError", lambda: oai(openai.BadRequestError, 400), None),
    ("openai.AuthenticationError", lambda: oai(openai.AuthenticationError, 401), None),
    ("openai.PermissionDeniedError", lambda: oai(openai.PermissionDeniedError, 403), None),
    ("openai.NotFoundError", lambda: oai(openai.NotFoundError, 404), None),
    ("openai.ConflictError", lambda: oai(openai.ConflictError, 409), None),
    ("openai.UnprocessableEntityError", lambda: oai(openai.UnprocessableEntityError, 422), None),
    (
        "openai.InternalServerError(ollama OOM)",
        lambda: openai.InternalServerError(OLLAMA_OOM, response=response(500), body=None),
        OUT_OF_MEMORY,
    ),
    # -- google-genai and google-adk
    ("genai.ServerError(500)", lambda: google_error(genai_errors.ServerError, 500, "INTERNAL"), SERVER_ERROR),
    ("genai.ServerError(503)", lambda: google_error(genai_errors.ServerError, 503, "UNAVAILABLE"), SERVER_ERROR),
    (
        "genai.ClientError(429)",
        lambda: google_error(genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        RATE_LIMIT,
    ),
    ("genai.ClientError(400)", lambda: google_error(genai_errors.ClientError, 400, "INVALID_ARGUMENT"), None),
    ("genai.ClientError(403)", lambda: google_error(genai_errors.ClientError, 403, "PERMISSION_DENIED"), None),
    ("genai.ClientError(404)", lambda: google_error(genai_errors.ClientError, 404, "NOT_FOUND"), None),
    ("adk._ResourceExhaustedError", resource_exhausted, RATE_LIMIT),
    ("genai.UnknownFunctionCallArgumentError", lambda: genai_errors.UnknownFunctionCallArgumentError("bad"), None),
    # -- httpx
    ("httpx.ConnectError", lambda: httpx.ConnectError("refused"), CONNECTION),
    ("httpx.ReadError", lambda: httpx.ReadError("reset"), CONNECTION),
    ("httpx.WriteError", lambda: httpx.WriteError("broken"), CONNECTION),
    ("httpx.RemoteProtocolError", lambda: httpx.RemoteProtocolError("peer closed"), CONNECTION),
    ("httpx.ProxyError", lambda: httpx.ProxyError("proxy down"), CONNECTION),
    ("httpx.ConnectTimeout", lambda: httpx.ConnectTimeout("slow"), TIMEOUT),
    ("httpx.ReadTimeout", lambda: httpx.ReadTimeout("slow"), TIMEOUT),
    ("httpx.PoolTimeout", lambda: httpx.PoolTimeout("busy"), TIMEOUT),
    ("httpx.LocalProtocolError", lambda: httpx.LocalProtocolError("bad header"), None),
    ("httpx.UnsupportedProtocol", lambda: httpx.UnsupportedProtocol("ftp"), None),
    (
        "httpx.HTTPStatusError(503)",
        lambda: httpx.HTTPStatusError("m", request=REQUEST, response=response(503)),
        SERVER_ERROR,
    ),
    ("httpx.HTTPStatusError(404)", lambda: httpx.HTTPStatusError("m", request=REQUEST, response=response(404)), None),
    # -- aiohttp (litellm's transport)
    ("aiohttp.ServerDisconnectedError", lambda: aiohttp.ServerDisconnectedError(), CONNECTION),
    ("aiohttp.ServerTimeoutError", lambda: aiohttp.ServerTimeoutError("slow"), TIMEOUT),
    ("aiohttp.ClientPayloadError", lambda: aiohttp.ClientPayloadError("cut"), CONNECTION),
    ("aiohttp.ClientResponseError(503)", lambda: aiohttp_response_error(503), SERVER_ERROR),
    ("aiohttp.ClientResponseError(400)", lambda: aiohttp_response_error(400), None),
    # -- builtins
    ("TimeoutError", TimeoutError, TIMEOUT),
    ("asyncio.TimeoutError", asyncio.TimeoutError, TIMEOUT),
    ("ConnectionResetError", ConnectionResetError, CONNECTION),
    ("ConnectionRefusedError", ConnectionRefusedError, CONNECTION),
    ("ConnectionAbortedError", ConnectionAbortedError, CONNECTION),
    ("BrokenPipeError", BrokenPipeError, CONNECTION),
    ("ValueError(No message in response)", lambda: ValueError("No message in response"), EMPTY_RESPONSE),
    ("EmptyResponseError", lambda: EmptyResponseError(None), EMPTY_RESPONSE),
    ("asyncio.CancelledError", asyncio.CancelledError, None),
    ("KeyboardInterrupt", KeyboardInterrupt, None),
    ("SystemExit", SystemExit, None),
    ("TypeError", lambda: TypeError("unsupported operand"), None),
    ("AttributeError", lambda: AttributeError("no attribute"), None),
    ("KeyError", lambda: KeyError("model"), None),
    ("NameError", lambda: NameError("undefined"), None),
    ("IndexError", lambda: IndexError("out of range"), None),
    ("ValueError", lambda: ValueError("bad value"), None),
    ("RuntimeError", lambda: RuntimeError("something"), None),
    ("OSError", lambda: OSError("disk"), None),
    ("MemoryError(local)", lambda: MemoryError("out of memory"), None),
    ("json.JSONDecodeError (malformed function call)", json_decode_error, None),
    # -- unknown types: HTTP status decides
    ("unknown(status_code=429)", lambda: WithStatus(status_code=429), RATE_LIMIT),
    ("unknown(code=503)", lambda: WithStatus(code=503), SERVER_ERROR),
    ("unknown(response.status_code=502)", lambda: WithStatus(response=response(502)), SERVER_ERROR),
    ("unknown(status_code=401)", lambda: WithStatus(status_code=401), None),
    ("unknown(code=1011 websocket)", lambda: WithStatus(code=1011), None),
    ("unknown(code=True)", lambda: WithStatus(code=True), None),
    ("KeyError subclass with status 503", KeyErrorWithStatus, None),
]


@pytest.mark.parametrize(("make", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_verdict_table(make: Callable[[], BaseException], expected: str | None) -> None:
    exc = make()
    assert error_class(exc) == expected
    assert is_transient(exc) is (expected is not None)
    assert expected is None or expected in ERROR_CLASSES


def test_status_code_sources() -> None:
    assert status_code(lite("RateLimitError")) == 429
    assert status_code(google_error(genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED")) == 429
    assert status_code(httpx.HTTPStatusError("m", request=REQUEST, response=response(503))) == 503
    assert status_code(aiohttp_response_error(502)) == 502
    assert status_code(WithStatus(code="429")) == 429
    assert status_code(WithStatus(code="rate_limit_exceeded")) is None
    assert status_code(ValueError("x")) is None


def test_broken_attributes_do_not_raise() -> None:
    class Broken(Exception):
        @property
        def status_code(self) -> int:
            raise RuntimeError("no")

        def __str__(self) -> str:
            raise RuntimeError("no str either")

    Broken.__module__ = "litellm.exceptions"
    assert error_class(Broken()) is None
    assert not is_out_of_memory(Broken())


def test_out_of_memory_needs_a_provider_exception() -> None:
    assert is_out_of_memory(lite("APIConnectionError", f"OllamaException - {OLLAMA_OOM}"))
    assert not is_out_of_memory(RuntimeError(OLLAMA_OOM))
    assert not is_out_of_memory(lite("InternalServerError", "fault-injected HTTP 500"))


def test_transient_preset() -> None:
    from adk_retry.core._policy import RetryPolicy

    policy = RetryPolicy(retry_on="transient")
    assert policy.retries(lite("RateLimitError"))
    assert not policy.retries(lite("ContextWindowExceededError"))


def test_a_429_is_classified_in_microseconds() -> None:
    exc = lite("RateLimitError")
    error_class(exc)
    runs = 2000
    per_call = timeit.timeit(lambda: error_class(exc), number=runs) / runs
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per call"


def test_classifying_imports_no_provider_library() -> None:
    """transient and hints import none of litellm, openai, httpx, aiohttp, google.genai."""
    package = Path(__file__).resolve().parents[2] / "adk_retry"
    script = f"""
import sys, types
blocked = ("litellm", "openai", "httpx", "aiohttp", "google")
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
package = types.ModuleType("adk_retry")
package.__path__ = [{str(package)!r}]  # skip adk_retry/__init__.py
sys.modules["adk_retry"] = package
from adk_retry.core._transient import error_class
from adk_retry.core._hints import retry_after
assert error_class(TimeoutError()) == "timeout"
assert retry_after(RuntimeError("try again in 2s")) == 2.0
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# -- raised for real through litellm over HTTP ------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.http_error(429), RATE_LIMIT),
        (Fault.http_error(500), SERVER_ERROR),
        (Fault.http_error(502), SERVER_ERROR),
        (Fault.http_error(503), SERVER_ERROR),
        (Fault.http_error(504), TIMEOUT),
        (Fault.http_error(408), TIMEOUT),  # litellm raises BadRequestError(status_code=408)
        (Fault.http_error(400), None),
        (Fault.http_error(401), None),  # litellm raises BadRequestError(status_code=401)
        (Fault.http_error(403), None),
        (Fault.http_error(404), None),
        (Fault.http_error(422), None),
        (Fault.close_connection(), CONNECTION),  # litellm raises InternalServerError(500)
        (Fault.null_message(), EMPTY_RESPONSE),
        (Fault.http_error(500, message=OLLAMA_OOM), OUT_OF_MEMORY),
    ],
    ids=lambda value: f"{value.kind}-{value.status}" if isinstance(value, Fault) else str(value),
)
async def test_verdict_over_http(server: FaultServer, fault: Fault, expected: str | None) -> None:
    server.push(fault)
    exc = await raised_through_litellm(server)
    assert error_class(exc) == expected, repr(exc)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (Fault.http_error(429), RATE_LIMIT),
        (Fault.http_error(503), SERVER_ERROR),
        (Fault.close_connection(), CONNECTION),
    ],
    ids=["429", "503", "closed"],
)
async def test_verdict_over_http_streaming(server: FaultServer, fault: Fault, expected: str) -> None:
    server.push(fault)
    exc = await raised_through_litellm(server, stream=True)
    assert error_class(exc) == expected, repr(exc)


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc: BaseException | None = None
    try:
        await litellm.acompletion(
            model="openai/fault-model",
            api_base=f"http://127.0.0.1:{port}/v1",
            api_key="sk-x",
            messages=[{"role": "user", "content": "hi"}],
            max_retries=0,
        )
    except Exception as raised:
        exc = raised
    assert exc is not None
    assert error_class(exc) == CONNECTION, repr(exc)


async def test_client_timeout(server: FaultServer) -> None:
    server.push(Fault.delay(2.0))
    exc = await raised_through_litellm(server, timeout=0.2)
    assert error_class(exc) == TIMEOUT, repr(exc)


async def test_openai_sdk_over_http(server: FaultServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.url, api_key="sk-x", max_retries=0)
    server.push(Fault.http_error(429), Fault.http_error(503), Fault.http_error(401), Fault.close_connection())
    verdicts = []
    for _ in range(4):
        try:
            await client.chat.completions.create(model="fault-model", messages=[{"role": "user", "content": "hi"}])
        except Exception as exc:
            verdicts.append(error_class(exc))
    await client.close()
    assert verdicts == [RATE_LIMIT, SERVER_ERROR, None, CONNECTION]


# -- httpx2: openai 3.x's transport, the same family as httpx ------------------------------

HTTPX_TWINS = [
    ("ConnectError", CONNECTION),
    ("ReadError", CONNECTION),
    ("WriteError", CONNECTION),
    ("CloseError", CONNECTION),
    ("RemoteProtocolError", CONNECTION),
    ("ProxyError", CONNECTION),
    ("ConnectTimeout", TIMEOUT),
    ("ReadTimeout", TIMEOUT),
    ("WriteTimeout", TIMEOUT),
    ("PoolTimeout", TIMEOUT),
    ("LocalProtocolError", None),
    ("UnsupportedProtocol", None),
    ("DecodingError", None),
    ("TooManyRedirects", None),
]


def fake_httpx2(name: str, module: str = "httpx2._exceptions") -> type[Exception]:
    """A stand-in with httpx2's module and httpx's hierarchy (httpx2 may not be installed)."""
    twin = getattr(httpx, name)
    bases = tuple(fake_httpx2(base.__name__, module) for base in twin.__bases__ if base.__module__.startswith("httpx"))
    return type(name, bases or (Exception,), {"__module__": module})


def httpx2_classes(name: str) -> list[type[Exception]]:
    classes = [fake_httpx2(name)]
    try:
        import httpx2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return classes
    return [*classes, getattr(httpx2, name)]


@pytest.mark.parametrize(("name", "expected"), HTTPX_TWINS, ids=[name for name, _ in HTTPX_TWINS])
def test_httpx2_errors_classify_exactly_as_their_httpx_twins(name: str, expected: str | None) -> None:
    assert error_class(getattr(httpx, name)("x")) == expected
    for cls in httpx2_classes(name):
        assert error_class(cls("x")) == expected, cls.__module__


def test_httpx2_status_error_is_judged_by_its_status() -> None:
    try:
        import httpx2  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pytest.skip("httpx2 is not installed")
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    for code, expected in ((503, SERVER_ERROR), (429, RATE_LIMIT), (404, None)):
        exc = httpx2.HTTPStatusError("m", request=request, response=httpx2.Response(code, request=request))
        assert error_class(exc) == expected


def test_the_family_is_httpx_and_httpx2_not_any_module_starting_with_httpx() -> None:
    assert error_class(fake_httpx2("ConnectError", module="httpx2")("x")) == CONNECTION
    assert error_class(fake_httpx2("ConnectError", module="httpx_mock")("x")) is None
    assert error_class(fake_httpx2("ReadTimeout", module="httpx22")("x")) is None


def test_openai_connection_error_over_httpx2_is_a_connection_failure() -> None:
    """openai 3.x's own errors keep their names; the cause in the chain is an httpx2 error."""
    error = litellm.exceptions.InternalServerError(message="Connection error.", llm_provider="openai", model="x")
    error.__cause__ = httpx2_classes("ConnectError")[-1]("refused")
    assert error_class(error) == CONNECTION
