"""What a request will cost in model tokens, for a ``RateLimit(tpm=...)``; and what it did cost.

The estimate is litellm's own count (``litellm.token_counter``, the model's
tokenizer when litellm knows it, else its default) of the request's text,
system instruction included, plus the ``max_output_tokens`` it asks for:
providers count a request's token budget the same way before answering.
The response's ``usage_metadata.total_token_count`` then corrects it
(:func:`metered`). litellm is imported on first use, never by the core.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse

from adk_retry.engine._loop import RetryCall

__all__ = ["estimate_tokens", "metered"]


def _messages(request: LlmRequest) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    config = request.config
    system = getattr(config, "system_instruction", None) if config is not None else None
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    for content in request.contents or ():
        text = " ".join(part.text for part in content.parts or () if part.text)
        messages.append({"role": "assistant" if content.role == "model" else "user", "content": text})
    return messages


def estimate_tokens(model: str, request: LlmRequest) -> float:
    """The request's prompt tokens by litellm's count plus its ``max_output_tokens``; never raises.

    Example:
        >>> from google.genai import types
        >>> request = LlmRequest(contents=[types.Content(role="user", parts=[types.Part(text="hello there")])])
        >>> 0 < estimate_tokens("openai/gpt-4o", request) < 20
        True
    """
    try:
        import litellm

        counted = float(litellm.token_counter(model=model.split("/", 1)[-1], messages=_messages(request)))
    except Exception:  # an unknown model or an odd request: about four characters a token
        counted = sum(len(message["content"]) for message in _messages(request)) / 4.0
    config = request.config
    limit = getattr(config, "max_output_tokens", None) if config is not None else None
    return counted + (float(limit) if isinstance(limit, int) else 0.0)


def metered(
    start: Callable[[], AsyncGenerator[LlmResponse, None]], call: RetryCall
) -> Callable[[], AsyncGenerator[LlmResponse, None]]:
    """``start``, whose attempts tell ``call`` the tokens their responses report having used."""

    async def attempt() -> AsyncGenerator[LlmResponse, None]:
        responses = start()
        try:
            async for response in responses:
                usage: Any = response.usage_metadata
                if usage is not None and usage.total_token_count:
                    call.used = float(usage.total_token_count)
                yield response
        except BaseException:
            await responses.aclose()
            raise

    return attempt
