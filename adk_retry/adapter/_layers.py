"""One retry owner: turn off the retry layers beneath adk-retry, and put them back.

Two layers already retry under ADK (measured, see the README): the OpenAI
SDK inside litellm (408/409/429/5xx and dropped connections, twice), and
litellm's own ``num_retries``, which ignores ``Retry-After`` and even retries
400s. ``Gemini(retry_options=...)`` has its own. A layer on top multiplies
them: 4 adk-retry attempts over the SDK's 3 make 12 upstream requests per
call in an outage. So when a policy retries HTTP errors, adk-retry becomes
the single owner, for the wrapped model only:

- ``LiteLlm``: ``num_retries=0`` on the model (which also sets the SDK's
  ``max_retries=0``), and, per call, the request's
  ``config.http_options.retry_options`` (which ``LiteLlm`` maps onto
  ``num_retries`` for that call) is set aside and put back afterwards;
- ``Gemini``: ``retry_options`` with a single attempt, and its cached
  per-event-loop client dropped so the next call builds one with it;
- layers it cannot reach are reported once, with what to do: a global
  ``litellm.num_retries``, a ``Gemini`` built with its own ``client``, model
  classes it does not know (ADK's own OpenAI model, which a plain
  ``"gpt-4o"`` string resolves to), and ADK's node-level
  ``LlmAgent.retry_config``, which re-runs the whole agent on any exception
  *above* the model call (so attempts multiply: ``retry_config.max_attempts``
  agent runs x ``max_retries + 1`` requests each).

``RetryPolicy(keep_lower_retries=True)`` leaves every layer as it is.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from adk_retry.observability._log import logger

if TYPE_CHECKING:
    from google.adk.models.base_llm import BaseLlm

__all__ = ["release", "silence", "warn_about_agent"]

_MISSING = object()
_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


def _is(model: BaseLlm, name: str) -> bool:
    return any(cls.__name__ == name and cls.__module__.startswith("google.adk") for cls in type(model).__mro__)


def silence(model: BaseLlm) -> dict[str, Any]:
    """Turn off the retries beneath ``model``'s wrapper; returns what :func:`release` needs.

    Example:
        >>> from google.adk.models.lite_llm import LiteLlm
        >>> model = LiteLlm(model="openai/m", api_key="k", num_retries=3)
        >>> saved = silence(model)
        >>> model._additional_args["num_retries"]
        0
        >>> release(model, saved)
        >>> model._additional_args["num_retries"]
        3
    """
    litellm = sys.modules.get("litellm")
    if litellm is not None and getattr(litellm, "num_retries", None):
        _warn_once(
            "litellm.num_retries",
            "litellm.num_retries=%s is set globally: it retries beneath adk-retry on every litellm call; "
            "set it to None and let adk-retry own retries",
            litellm.num_retries,
        )
    if _is(model, "LiteLlm"):
        args = model._additional_args  # type: ignore[attr-defined]
        saved = {name: args.get(name, _MISSING) for name in ("num_retries", "max_retries")}
        args["num_retries"] = 0
        args["max_retries"] = 0
        return saved
    if _is(model, "Gemini"):
        from google.genai import types

        if getattr(model, "client", None) is not None:
            _warn_once(
                f"gemini-client-{id(model)}",
                "Gemini model %s has a client of its own: its retry options win over adk-retry's; "
                "build that client with HttpRetryOptions(attempts=1)",
                model.model,
            )
        saved = {"retry_options": model.retry_options}  # type: ignore[attr-defined]
        model.retry_options = types.HttpRetryOptions(attempts=1)  # type: ignore[attr-defined]
        _drop_cached_clients(model)
        return saved
    _warn_once(
        f"class-{type(model).__qualname__}",
        "adk-retry cannot turn off the retries inside %s: requests may multiply under its own retry layer; "
        "use LiteLlm or Gemini, or RetryPolicy(keep_lower_retries=True) to accept it",
        type(model).__name__,
    )
    return {}


def release(model: BaseLlm, saved: dict[str, Any]) -> None:
    """Undo :func:`silence` on ``model``."""
    if _is(model, "LiteLlm"):
        args = model._additional_args  # type: ignore[attr-defined]
        for name, value in saved.items():
            if value is _MISSING:
                args.pop(name, None)
            else:
                args[name] = value
    elif _is(model, "Gemini") and "retry_options" in saved:
        model.retry_options = saved["retry_options"]  # type: ignore[attr-defined]
        _drop_cached_clients(model)


def _drop_cached_clients(model: BaseLlm) -> None:
    # 2.13 caches the client per event loop under "_per_loop_api_client"; 2.3
    # under "api_client" (a cached_property). Either way the next call rebuilds it.
    for name in ("_per_loop_api_client", "api_client"):
        model.__dict__.pop(name, None)


def warn_about_agent(agent: Any) -> None:
    """Warn once when ``agent`` also has ADK's node-level retry above the model."""
    config = getattr(agent, "retry_config", None)
    if config is not None:
        _warn_once(
            f"retry_config-{agent.name}",
            "[%s] LlmAgent.retry_config re-runs the whole agent on any exception, above adk-retry's model-level "
            "retry: attempts multiply (agent runs x model attempts); keep one of the two, or limit retry_config "
            "to non-model failures",
            agent.name,
        )
