"""An exception too broken to print still reaches the caller as itself, and is counted.

A provider exception whose ``__str__`` raises (or whose attributes do) must
not make the classifier, the hint parser or the log line raise in its place:
the caller would get a different exception and the call would be counted as
neither a success nor a failure.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from adk_retry import RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.core._empty import safe_text, seed_default
from adk_retry.core._hints import retry_after
from adk_retry.core._transient import error_class
from adk_retry.observability._log import describe
from adk_retry.observability._stats import RetryStats
from adk_retry.testing import no_waits


class Unprintable:
    """Mixin: ``str()`` and every attribute a classifier reads raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # __notes__ and the like: tracebacks must still print
            raise AttributeError(name)
        raise RuntimeError(f"no {name} for you")  # status_code, response, headers, ...


class UnprintableValueError(Unprintable, ValueError):
    pass


class UnprintableConnectionError(Unprintable, ConnectionError):
    pass


class UnprintableProviderError(Unprintable, Exception):
    """Looks like litellm's 500, which the seed rule reads the text of."""


UnprintableProviderError.__name__ = "InternalServerError"
UnprintableProviderError.__module__ = "litellm.exceptions"


class StrReturnsBytes(ValueError):
    def __str__(self) -> Any:
        return b"not a str"


ODD = [UnprintableValueError, UnprintableConnectionError, UnprintableProviderError, StrReturnsBytes]


@pytest.mark.parametrize("cls", ODD, ids=[cls.__name__ for cls in ODD])
def test_classifying_hinting_and_describing_never_raise(cls: type[Exception]) -> None:
    exc = cls()
    assert safe_text(exc) == ""
    assert seed_default(exc) is False
    error_class(exc)  # a verdict, whatever it is
    assert retry_after(exc) is None
    assert describe(exc) == cls.__name__
    stats = RetryStats(last_error=exc)
    assert stats.as_dict()["last_error"] == f"{cls.__name__}: "


def test_an_unprintable_connection_error_is_still_a_connection_failure() -> None:
    assert error_class(UnprintableConnectionError()) == "connection"


# -- through RetryHandler ----------------------------------------------------------------


async def test_handler_hands_back_the_very_object_and_counts_a_failure(retry_log: Any) -> None:
    handler = RetryHandler()  # the seed rule reads the message: str() is called
    error = UnprintableValueError()

    async def model_call() -> str:
        raise error

    with pytest.raises(UnprintableValueError) as caught:
        await handler(model_call)
    assert caught.value is error
    assert (handler.stats.calls, handler.stats.failures, handler.stats.successes) == (1, 1, 0)


async def test_handler_retries_an_unprintable_transient_error_and_logs_it(retry_log: Any) -> None:
    handler = RetryHandler(RetryPolicy.transient(max_retries=1))
    error = UnprintableConnectionError()
    calls = 0

    async def model_call() -> str:
        nonlocal calls
        calls += 1
        raise error

    with no_waits(), pytest.raises(UnprintableConnectionError) as caught:
        await handler(model_call)
    assert caught.value is error
    assert calls == 2
    assert (handler.stats.retries, handler.stats.failures) == (1, 1)
    logged = [r.getMessage() for r in retry_log.records if r.levelno >= logging.WARNING]
    assert any("UnprintableConnectionError" in line for line in logged)


# -- through the model wrapper, on a fake model --------------------------------------------


class RaisingLlm(BaseLlm):
    """Raises each scripted error in turn, then answers."""

    model: str = "fake/odd"

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "errors", [])

    async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False):  # type: ignore[override]
        if self.errors:
            raise self.errors.pop(0)
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text="fine")]))


def wrapped(policy: RetryPolicy) -> tuple[RaisingLlm, RetryHandler]:
    model = RaisingLlm()
    handler = RetryHandler(policy, agent_name="odd")
    add_retry_capabilities_to_agent(LlmAgent(name="odd", model=model), handler)
    return model, handler


def request() -> LlmRequest:
    return LlmRequest(
        contents=[types.Content(role="user", parts=[types.Part(text="hi")])],
        config=types.GenerateContentConfig(labels={"adk_agent_name": "odd"}),
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_wrapper_hands_back_the_very_object_and_counts_a_failure(stream: bool) -> None:
    model, handler = wrapped(RetryPolicy())
    error = UnprintableValueError()
    model.errors.append(error)
    with pytest.raises(UnprintableValueError) as caught:
        async for _ in model.generate_content_async(request(), stream=stream):
            pass
    assert caught.value is error
    assert (handler.stats.calls, handler.stats.failures, handler.stats.successes) == (1, 1, 0)


async def test_wrapper_retries_an_unprintable_transient_error() -> None:
    model, handler = wrapped(RetryPolicy.transient())
    model.errors.append(UnprintableProviderError())  # litellm's 500: a server error
    with no_waits():
        texts = [r.content.parts[0].text async for r in model.generate_content_async(request())]
    assert texts == ["fine"]
    assert (handler.stats.retries, handler.stats.successes, handler.stats.failures) == (1, 1, 0)
