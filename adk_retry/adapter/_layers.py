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
- ``FallbackModel`` (google-adk 2.9+, which tries each delegate once per
  call): the layers of every ``LiteLlm`` and ``Gemini`` delegate, nested
  ``FallbackModel`` ones included, string delegates resolved and pinned the
  way it resolves them; a full outage then costs attempts x models requests.
  An instance reached twice (wrapped on its own and a delegate too) gets its
  settings back when the last holder lets go;
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
import weakref
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

    A ``FallbackModel`` has no retry of its own: the layers are those of its
    delegates, each turned off in turn (string delegates resolved the way
    ``FallbackModel`` resolves them, see :func:`_delegates`), so that an
    outage costs attempts x models requests.

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
    held: list[BaseLlm] = []
    _silence_tree(model, held, set())
    return {"held": held}


def release(model: BaseLlm, saved: dict[str, Any]) -> None:
    """Undo :func:`silence` on ``model`` (and on the delegates it reached)."""
    for layer in reversed(saved.get("held", ())):
        _let_go(layer)


class _Hold:
    """One model whose layers are off: what they were, and how many holders want them off."""

    __slots__ = ("count", "ref", "saved")

    def __init__(self, ref: weakref.ref[BaseLlm], saved: dict[str, Any]) -> None:
        self.ref = ref
        self.saved = saved
        self.count = 1


_holds: dict[int, _Hold] = {}
"""The models whose layers are off, by ``id``, held weakly.

Counted because one instance can be reached twice: a ``LiteLlm`` wrapped for
one agent and also a delegate of another agent's ``FallbackModel``, or one
``FallbackModel`` inside another. Its settings are saved the first time and
put back only when the last holder lets go, so the second holder never saves
(and later restores) the silenced values as if they were the user's.
"""


def _silence_tree(model: BaseLlm, held: list[BaseLlm], seen: set[int]) -> None:
    if id(model) in seen:  # the same delegate listed twice, or a FallbackModel inside itself
        return
    seen.add(id(model))
    if _is(model, "FallbackModel"):
        for delegate in _delegates(model):
            _silence_tree(delegate, held, seen)
        return
    if not (_is(model, "LiteLlm") or _is(model, "Gemini")):
        _warn_once(
            f"class-{type(model).__qualname__}",
            "adk-retry cannot turn off the retries inside %s: requests may multiply under its own retry layer; "
            "use LiteLlm or Gemini, or RetryPolicy(keep_lower_retries=True) to accept it",
            type(model).__name__,
        )
        return
    key = id(model)
    hold = _holds.get(key)
    if hold is not None and hold.ref() is model:
        hold.count += 1
    else:
        _holds[key] = _Hold(weakref.ref(model, lambda ref: _forget(key, ref)), _turn_off(model))
    held.append(model)


def _forget(key: int, ref: weakref.ref[BaseLlm]) -> None:
    # A model collected while held: drop its entry, unless its id already names a newer one.
    hold = _holds.get(key)
    if hold is not None and hold.ref is ref:
        del _holds[key]


def _let_go(model: BaseLlm) -> None:
    hold = _holds.get(id(model))
    if hold is None or hold.ref() is not model:
        return
    hold.count -= 1
    if hold.count == 0:
        del _holds[id(model)]
        _turn_on(model, hold.saved)


def _delegates(fallback: BaseLlm) -> list[BaseLlm]:
    """The instances ``fallback`` (a ``FallbackModel``) will call, strings resolved.

    ``FallbackModel._delegate`` builds a string entry with
    ``LLMRegistry.new_llm`` once and caches the instance in ``_resolved``
    (shared by ``model_copy()`` copies), so resolving through it now pins the
    very instance later calls use: the silenced one. It stays cached after
    :func:`release` (with its layers back), as it would have after the first
    call. An entry the registry cannot build is left to ``FallbackModel``,
    which raises on it when it gets there.
    """
    resolve = getattr(fallback, "_delegate", None)
    delegates: list[BaseLlm] = []
    for entry in getattr(fallback, "models", ()):
        if not isinstance(entry, str):
            delegates.append(entry)
        elif resolve is None:
            _warn_once(
                f"fallback-strings-{type(fallback).__qualname__}",
                "adk-retry cannot reach the string delegates of this %s: their retry layers stay on; "
                "list model instances instead of names",
                type(fallback).__name__,
            )
        else:
            try:
                delegates.append(resolve(entry))
            except Exception as exc:  # a configuration error: FallbackModel raises it itself at call time
                _warn_once(
                    f"fallback-entry-{entry}",
                    "FallbackModel delegate %r cannot be built (%s): its retry layers are left as they are",
                    entry,
                    type(exc).__name__,
                )
    return delegates


def _turn_off(model: BaseLlm) -> dict[str, Any]:
    """Turn off the layers of one ``LiteLlm`` or ``Gemini``; returns what :func:`_turn_on` needs."""
    if _is(model, "LiteLlm"):
        args = model._additional_args  # type: ignore[attr-defined]
        saved = {name: args.get(name, _MISSING) for name in ("num_retries", "max_retries")}
        args["num_retries"] = 0
        args["max_retries"] = 0
        return saved
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


def _turn_on(model: BaseLlm, saved: dict[str, Any]) -> None:
    """Undo :func:`_turn_off` on one model."""
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
