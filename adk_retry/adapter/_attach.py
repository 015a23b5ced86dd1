"""Give an agent retry: the one attach/detach path of ``add_retry_capabilities_to_agent`` and ``RetryPlugin``.

Attaching resolves the model the agent calls (an instance, a name string, or
inherited from an ancestor), pins it on the agent where ADK would otherwise
build a new instance on every read (2.3), wraps it once
(:func:`adk_retry.adapter._wrap.install`) and, for a policy that owns retries,
turns off the retry layers beneath it. Detaching undoes each step once no
one else needs it. Nothing is changed until every step that can fail has
succeeded: a failed add leaves the agent as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adk_retry.adapter import _layers as layers
from adk_retry.adapter._wrap import disown_lower_retries, install, installed, own_lower_retries, uninstall
from adk_retry.engine._loop import RetryHandler
from adk_retry.observability._log import logger

if TYPE_CHECKING:
    from google.adk.agents.llm_agent import LlmAgent
    from google.adk.models.base_llm import BaseLlm

    from adk_retry.adapter._wrap import ModelRetry

__all__ = ["Attached", "add_retry_capabilities_to_agent", "attach", "detach", "remove_retry_capabilities", "resolve"]

_AGENT_ATTRIBUTES = (
    "_retry_handler",
    "_original_generate_content_async",
    "_retry_model",
    "_retry_unpinned_model",
    "_retry_deferred",
)


@dataclass(frozen=True, slots=True)
class Attached:
    """What :func:`attach` did to one agent: the wrapped model, and the model value it pinned over."""

    retry: ModelRetry
    model: BaseLlm
    pinned: bool
    unpinned: Any = None


def resolve(agent: LlmAgent, *, at_call: bool = False) -> tuple[BaseLlm | None, bool]:
    """The model ``agent`` calls, and whether it must be pinned on the agent.

    A model name string, or a model inherited from an ancestor, resolves
    through ``canonical_model``. ADK 2.13 caches that instance; ADK 2.3
    builds a new one on every read, so a wrapper on it would be lost unless
    the instance is pinned on the agent. An agent with no model and no
    ancestor would resolve to ADK's default model: before the agent runs
    (it may still get a parent) None is returned so that it is resolved
    later; ``at_call`` (its tree is final: it is calling now) resolves it.
    """
    from google.adk.agents.llm_agent import LlmAgent
    from google.adk.models.base_llm import BaseLlm

    if isinstance(agent.model, BaseLlm):
        return agent.model, False
    owner: Any = agent
    if not agent.model:
        owner = agent.parent_agent
        while owner is not None and not (isinstance(owner, LlmAgent) and owner.model):
            owner = owner.parent_agent
        if owner is None:
            if not at_call:
                return None, False
            owner = agent  # ADK's default model (LlmAgent.set_default_model or Gemini)
        elif isinstance(owner.model, BaseLlm):
            return owner.model, False
    model = owner.canonical_model
    return model, model is not owner.canonical_model


def attach(agent: LlmAgent, handler: RetryHandler, *, at_call: bool) -> Attached | None:
    """Wrap the model ``agent`` calls, for ``handler``; None when it is not known yet (see :func:`resolve`).

    The caller registers the handler (a table entry, or per-call state) and
    keeps the result for :func:`detach`.
    """
    model, pin = resolve(agent, at_call=at_call)
    return None if model is None else _attach_model(agent, handler, model, pin)


def _attach_model(agent: LlmAgent, handler: RetryHandler, model: BaseLlm, pin: bool) -> Attached:
    retry = install(model)
    try:
        own_lower_retries(retry, handler)
        if handler.plan.owns_lower:
            layers.warn_about_agent(agent)
    except BaseException:
        detach(model, (handler,))  # all or nothing
        raise
    attached = Attached(retry, model, pin, agent.model if pin else None)
    if pin:
        agent.model = model
    return attached


def detach(model: BaseLlm, handlers: Iterable[RetryHandler]) -> None:
    """``handlers`` no longer use ``model``: give back its lower retry layers and its method once no one does."""
    retry = installed(model)  # looked up again: it may have been replaced since
    if retry is None:
        return
    registered = set(retry.handlers.values())
    for handler in handlers:
        if handler not in registered:
            disown_lower_retries(retry, handler)
    if not retry.handlers and not retry.owners:
        uninstall(retry)


def add_retry_capabilities_to_agent(agent: LlmAgent, retry_handler: RetryHandler) -> LlmAgent:
    """Make every model call of ``agent`` retry under ``retry_handler``; returns ``agent``.

    The agent's model (an instance, a name string, or inherited from an
    ancestor) is resolved and its ``generate_content_async`` replaced, on
    that instance only, by ``generate_content_async_with_retry``. The agent
    gets ``_retry_handler`` and ``_original_generate_content_async``, so the
    seed's verification asserts hold.

    - Calling it again on the same agent swaps the handler; it never stacks
      a second retry loop.
    - A model shared by several agents is wrapped once; each call runs under
      the calling agent's handler and logs the calling agent's name.
    - A model name string on ADK 2.3 (a new instance on every read) is
      pinned on the agent; :func:`remove_retry_capabilities` unpins it.
    - An agent with no model and no parent yet is not given ADK's default
      model: resolution waits for its first model call.

    Example:
        >>> from google.adk.agents import LlmAgent
        >>> from google.adk.models.lite_llm import LiteLlm
        >>> agent = LlmAgent(name="demo", model=LiteLlm(model="openai/any", api_key="k"))
        >>> agent = add_retry_capabilities_to_agent(agent, RetryHandler(agent_name="demo"))
        >>> "with_retry" in agent.model.generate_content_async.__name__
        True
    """
    from google.adk.agents.llm_agent import LlmAgent

    if not isinstance(agent, LlmAgent):
        raise TypeError(f"add_retry_capabilities_to_agent needs an LlmAgent, got {type(agent).__name__}")
    if not isinstance(retry_handler, RetryHandler):
        raise TypeError(f"retry_handler must be a RetryHandler, got {type(retry_handler).__name__}")
    # First, before anything changes: an unknown model name raises here (a
    # half-applied retry would pass the seed's asserts and make the plugin skip the agent).
    model, pin = resolve(agent)
    state = agent.__dict__
    previous: RetryHandler | None = state.get("_retry_handler")
    old_model: BaseLlm | None = state.get("_retry_model")
    old_pin = "_retry_unpinned_model" in state
    if previous is not None:
        if old_pin and model is old_model:
            # The model pinned for the old handler: removing unpins it, attaching pins it again.
            pin = True
        remove_retry_capabilities(agent)
    try:
        _apply(agent, retry_handler, model, pin)
    except BaseException:
        if previous is not None:
            _put_back(agent, previous, old_model, old_pin)
        raise
    logger.info(
        "[%s] Retry capabilities integrated - model calls now include automatic retry with exponential backoff",
        agent.name,
        extra={"agent": agent.name},
    )
    return agent


def _apply(agent: LlmAgent, handler: RetryHandler, model: BaseLlm | None, pin: bool) -> None:
    """Put ``handler`` on ``agent``'s resolved ``model``, or defer it to the first call; all or nothing."""
    if model is None:
        deferred = _DeferredRetry(agent)
        agent.before_model_callback = [deferred, *_callbacks(agent.before_model_callback)]
        object.__setattr__(agent, "_original_generate_content_async", None)
        object.__setattr__(agent, "_retry_deferred", deferred)
    else:
        _register(agent, handler, _attach_model(agent, handler, model, pin))
    # Last: an agent with a handler counts as covered (RetryPlugin skips it), so only once it is.
    object.__setattr__(agent, "_retry_handler", handler)


def _put_back(agent: LlmAgent, handler: RetryHandler, model: BaseLlm | None, pin: bool) -> None:
    """Restore the retry a failed swap removed; if even that fails, the agent is left cleanly without."""
    try:
        _apply(agent, handler, model, pin)
    except Exception:  # the swap's own error is the one the caller must get
        logger.warning(
            "[%s] Could not restore the previous retry after a failed add_retry_capabilities_to_agent; "
            "the agent now has none",
            agent.name,
            exc_info=True,
            extra={"agent": agent.name},
        )


def _register(agent: LlmAgent, handler: RetryHandler, attached: Attached) -> None:
    attached.retry.handlers[agent.name] = handler
    if attached.pinned:
        object.__setattr__(agent, "_retry_unpinned_model", attached.unpinned)
    object.__setattr__(agent, "_original_generate_content_async", attached.retry.original)
    object.__setattr__(agent, "_retry_model", attached.model)


def remove_retry_capabilities(agent: LlmAgent) -> LlmAgent:
    """Undo :func:`add_retry_capabilities_to_agent`; returns ``agent``.

    The model's original method comes back once no other agent uses retry on
    it, a pinned model name is restored, and the agent's retry attributes are
    removed. Calling it on an agent without retry does nothing.

    Example:
        >>> from google.adk.agents import LlmAgent
        >>> from google.adk.models.lite_llm import LiteLlm
        >>> agent = add_retry_capabilities_to_agent(
        ...     LlmAgent(name="demo", model=LiteLlm(model="openai/any", api_key="k")), RetryHandler())
        >>> agent = remove_retry_capabilities(agent)
        >>> agent.model.generate_content_async.__name__
        'generate_content_async'
    """
    from google.adk.agents.llm_agent import LlmAgent

    if not isinstance(agent, LlmAgent):
        raise TypeError(f"remove_retry_capabilities needs an LlmAgent, got {type(agent).__name__}")
    state = agent.__dict__
    handler = state.get("_retry_handler")
    model = state.get("_retry_model")
    if model is not None:
        retry = installed(model)
        if retry is not None and retry.handlers.get(agent.name) is handler:
            del retry.handlers[agent.name]
        detach(model, () if handler is None else (handler,))
    if "_retry_unpinned_model" in state:
        agent.model = state["_retry_unpinned_model"]
    deferred = state.get("_retry_deferred")
    if deferred is not None:
        agent.before_model_callback = [cb for cb in _callbacks(agent.before_model_callback) if cb is not deferred]
    for name in _AGENT_ATTRIBUTES:
        state.pop(name, None)
    return agent


def _callbacks(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class _DeferredRetry:
    """A before-model callback that wraps the model at the agent's first call.

    Before-model callbacks run before ADK resolves the model (2.3 and 2.13),
    so wrapping here takes effect for that very call.
    """

    def __init__(self, agent: LlmAgent) -> None:
        self.agent = agent

    def __call__(self, callback_context: Any, llm_request: Any) -> None:
        agent = self.agent
        handler = agent.__dict__.get("_retry_handler")
        if handler is None or agent.__dict__.get("_retry_model") is not None:
            return
        attached = attach(agent, handler, at_call=True)
        if attached is not None:
            _register(agent, handler, attached)
