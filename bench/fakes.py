"""Fake models, realistic requests and the one way every variant is called.

Everything here is shared by the sections, so that every row of a table
calls its model the same way and differs only in the retry layer under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeAlias

from google.adk.agents.llm_agent import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from adk_retry import RetryHandler, RetryPolicy, add_retry_capabilities_to_agent

__all__ = [
    "AGENT",
    "Generate",
    "OneShotLlm",
    "StreamLlm",
    "answered",
    "drain",
    "make_request",
    "text_response",
    "with_retry",
]

AGENT = "bench_agent"
"""The calling agent's name, as ADK puts it in ``config.labels["adk_agent_name"]``."""

SYSTEM_INSTRUCTION = (
    "You are a careful software engineering assistant. Answer briefly, cite the files you "
    "read, and never invent an API that you have not seen in the repository."
)

Generate: TypeAlias = Callable[..., AsyncGenerator[LlmResponse, None]]
"""A model's ``generate_content_async`` (or a retry layer around it): ``(request, stream=False)``."""


def text_response(text: str, *, partial: bool = False) -> LlmResponse:
    """A model response carrying ``text``."""
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]), partial=partial)


_ANSWER = text_response("The retry loop lives in adk_retry/integration.py.")


class OneShotLlm(BaseLlm):
    """A model that answers at once with one prebuilt text response: only the layers around it cost."""

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """Yield the one answer."""
        yield _ANSWER


class StreamLlm(BaseLlm):
    """A model that streams ``chunks`` partial responses, ``gap`` seconds apart, then the full answer."""

    chunks: int = 20
    gap: float = 0.05

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """Yield the partial chunks (each after ``gap`` seconds), then the aggregated answer."""
        words = []
        for index in range(self.chunks):
            if self.gap:
                await asyncio.sleep(self.gap)
            word = f"token{index} "
            words.append(word)
            yield text_response(word, partial=True)
        yield text_response("".join(words))


def make_request(text: str = "Where is the retry loop?", *, model: str = "noop") -> LlmRequest:
    """A realistic request: a system instruction, a short conversation, the agent label."""
    contents = [
        types.Content(role="user", parts=[types.Part(text="Read adk_retry/handler.py and summarise it.")]),
        types.Content(role="model", parts=[types.Part(text="It defines RetryHandler and RetryCall.")]),
        types.Content(role="user", parts=[types.Part(text="And integration.py?")]),
        types.Content(role="model", parts=[types.Part(text="It wraps generate_content_async.")]),
        types.Content(role="user", parts=[types.Part(text=text)]),
    ]
    config = types.GenerateContentConfig(system_instruction=SYSTEM_INSTRUCTION, labels={"adk_agent_name": AGENT})
    return LlmRequest(model=model, contents=contents, config=config)


def with_retry(model: BaseLlm, policy: RetryPolicy | None = None) -> BaseLlm:
    """Install adk_retry on ``model`` the documented way (an ``LlmAgent`` named :data:`AGENT`); returns it."""
    agent = LlmAgent(name=AGENT, model=model)
    add_retry_capabilities_to_agent(agent, RetryHandler(policy, agent_name=AGENT))
    return model


async def drain(generate: Generate, request: LlmRequest, stream: bool = False) -> None:
    """Consume every response of one call, as ADK's flow does."""
    async for _ in generate(request, stream):
        pass


def answered(responses: list[Any]) -> bool:
    """Whether a call's responses end with an answer that has text."""
    if not responses:
        return False
    content = responses[-1].content
    return bool(content and content.parts and any(part.text for part in content.parts))
