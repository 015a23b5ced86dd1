"""Shared fixtures. litellm must not try to download its cost map: no network here."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from adk_retry.observability._otel import instrument_on_first_use
from adk_retry.testing import FaultServer

# In an application the first RetryHandler enables the metrics on the global providers. Do it
# before any test, so that no test's own hook set-up is in place when it happens.
instrument_on_first_use()

API_KEY = "sk-test-SECRET0123456789"
OUTAGE = r"503|Service Unavailable|ServiceUnavailable"
"""What a 503 from the fault server looks like in litellm's error text."""


@pytest.fixture
def server() -> Iterator[FaultServer]:
    """A fresh fault server on a free loopback port."""
    with FaultServer() as fault_server:
        yield fault_server


@pytest.fixture
def make_model(server: FaultServer) -> Any:
    """Build a real ``LiteLlm`` pointed at the fault server.

    The OpenAI SDK's own retries are turned off (``max_retries=0``) unless a
    test asks for them, so each scripted fault is one upstream request.
    """
    from google.adk.models.lite_llm import LiteLlm

    def build(**kwargs: Any) -> LiteLlm:
        kwargs.setdefault("max_retries", 0)
        return LiteLlm(model="openai/fault-model", api_base=server.url, api_key=API_KEY, **kwargs)

    return build


@pytest.fixture
def retry_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture adk-retry's records at INFO and above."""
    caplog.set_level(logging.INFO, logger="adk_retry")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The formatted messages of adk-retry's records."""
    return [record.getMessage() for record in caplog.records if record.name.startswith("adk_retry")]


def retrying_agent(model: Any, name: str = "assistant", **policy: Any) -> Any:
    """The seed's manual integration, in the order that works: callbacks, the agent, then retry."""
    from google.adk.agents import Agent

    from adk_retry import add_retry_capabilities_to_agent, create_retry_callbacks

    callbacks = create_retry_callbacks(name, **policy)
    agent = Agent(
        name=name,
        model=model,
        instruction="Answer briefly.",
        before_model_callback=[callbacks["before_model"]],
        after_model_callback=[callbacks["after_model"]],
    )
    return add_retry_capabilities_to_agent(agent, callbacks["retry_handler"])


async def raised_through_litellm(server: FaultServer, *, stream: bool = False, **kwargs: Any) -> BaseException:
    """The exception litellm raises for the server's next scripted fault (the SDK's retries off)."""
    import litellm

    try:
        answer = await litellm.acompletion(
            model="openai/fault-model",
            api_base=server.url,
            api_key="sk-x",
            messages=[{"role": "user", "content": "hi"}],
            max_retries=0,
            stream=stream,
            **kwargs,
        )
        if stream:
            async for _ in answer:
                pass
    except Exception as exc:
        return exc
    raise AssertionError("the call succeeded")


async def stream_turn(agent: Any) -> tuple[list[Any], BaseException | None]:
    """Stream one turn, keeping the events that arrived before an error, and the error."""
    events: list[Any] = []
    error: BaseException | None = None
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    runner = InMemoryRunner(agent=agent, app_name="app")
    try:
        session = await runner.session_service.create_session(app_name="app", user_id="u")
        async for event in runner.run_async(
            user_id="u",
            session_id=session.id,
            new_message=types.Content(role="user", parts=[types.Part(text="hi")]),
            run_config=RunConfig(streaming_mode=StreamingMode.SSE),
        ):
            events.append(event)
    except Exception as exc:
        error = exc
    finally:
        await runner.close()
    return events, error
