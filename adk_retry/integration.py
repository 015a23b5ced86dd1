"""Put retry on an agent's model: wrap the *instance's* ``generate_content_async``.

ADK looks ``generate_content_async`` up on the model instance at call time,
so an instance attribute set with ``object.__setattr__`` (models are Pydantic
objects that refuse unknown fields) replaces the method for that instance
only, leaves ``model_dump()`` unchanged, and is undone by deleting it.

One wrapper per model instance, whatever the number of agents using it: the
wrapper keeps a table of handlers by agent name and, on each call, picks the
calling agent's from the ``adk_agent_name`` label ADK puts on every request
(or from the per-call state a before-model callback or the plugin set).
Wrapping twice never stacks two retry loops.

The retry loop here is an async generator, because the model's method is
one: see :func:`add_retry_capabilities_to_agent` for what it guarantees.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from adk_retry import layers
from adk_retry.call_state import current_call
from adk_retry.classify import is_empty_response, is_malformed_function_call
from adk_retry.errors import EmptyResponseError, MalformedFunctionCallError
from adk_retry.handler import RetryCall, RetryHandler
from adk_retry.log import logger
from adk_retry.snapshot import restore, take
from adk_retry.stats import RetryStats

if TYPE_CHECKING:
    from google.adk.agents.llm_agent import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_request import LlmRequest
    from google.adk.models.llm_response import LlmResponse

__all__ = ["add_retry_capabilities_to_agent", "remove_retry_capabilities"]

AGENT_LABEL = "adk_agent_name"

ModelMethod = Callable[..., AsyncGenerator["LlmResponse", None]]


live_models: weakref.WeakSet[ModelRetry] = weakref.WeakSet()
"""Every model wrapper alive in the process, for the per-model view."""


class ModelRetry:
    """What adk-retry installed on one model instance.

    Attributes:
        model: the wrapped model.
        original: the method that was in place before (normally the bound method).
        previous: the instance attribute that was replaced, if there was one.
        handlers: the retry handler of each agent using this model, by agent name.
    """

    __slots__ = (
        "__weakref__",
        "handlers",
        "model",
        "original",
        "owners",
        "previous",
        "silenced",
        "snapshot_config",
        "stats",
    )

    def __init__(self, model: BaseLlm) -> None:
        self.model = model
        self.previous = model.__dict__.get("generate_content_async")
        self.original: ModelMethod = model.generate_content_async
        self.handlers: dict[str, RetryHandler] = {}
        # What adk_retry.layers turned off beneath this model, and the handlers
        # that want it off: the layers come back when the last of them leaves.
        self.silenced: dict[str, Any] | None = None
        self.owners: set[RetryHandler] = set()
        self.stats = RetryStats()
        """The calls made through this model, whatever the agent: the per-model view."""
        live_models.add(self)
        # LiteLlm edits only the contents; Gemini and unknown models may edit the config too.
        self.snapshot_config = not any(cls.__name__ == "LiteLlm" for cls in type(model).__mro__)

    def first_handler(self) -> RetryHandler | None:
        """The handler for a call with no agent label: the first registered one."""
        return next(iter(self.handlers.values()), None)


def installed(model: BaseLlm) -> ModelRetry | None:
    """The retry installed on ``model``, if any."""
    method = model.__dict__.get("generate_content_async")
    retry: ModelRetry | None = getattr(method, "adk_retry", None)
    return retry


def install(model: BaseLlm) -> ModelRetry:
    """Wrap ``model``'s ``generate_content_async`` once; later calls return the same wrapper's state."""
    retry = installed(model)
    if retry is None:
        retry = ModelRetry(model)
        wrapper = _make_wrapper(retry)
        wrapper.adk_retry = retry  # type: ignore[attr-defined]
        object.__setattr__(model, "generate_content_async", wrapper)
    return retry


def own_lower_retries(retry: ModelRetry, handler: RetryHandler) -> None:
    """Turn off the retry layers beneath ``retry``'s model if ``handler``'s policy owns retries."""
    if handler.owns_lower:
        retry.owners.add(handler)
        if retry.silenced is None:
            retry.silenced = layers.silence(retry.model)


def disown_lower_retries(retry: ModelRetry, handler: RetryHandler) -> None:
    """``handler`` no longer uses ``retry``'s model: put the layers back if no owner is left."""
    retry.owners.discard(handler)
    if not retry.owners and retry.silenced is not None:
        layers.release(retry.model, retry.silenced)
        retry.silenced = None


def uninstall(retry: ModelRetry) -> None:
    """Put back what :func:`install` replaced, and the retry layers it turned off."""
    model = retry.model
    if retry.silenced is not None:
        layers.release(model, retry.silenced)
        retry.silenced = None
    if retry.previous is not None:
        object.__setattr__(model, "generate_content_async", retry.previous)
    else:
        model.__dict__.pop("generate_content_async", None)


def _make_wrapper(retry: ModelRetry) -> ModelMethod:
    original = retry.original
    model_name = getattr(retry.model, "model", None) or type(retry.model).__name__

    async def generate_content_async_with_retry(
        llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        """The model's ``generate_content_async``, retried per the calling agent's policy.

        With ``stream=False`` (or ``stream_mode="buffer"``) each attempt's
        responses are held until the attempt succeeded, so a failed attempt
        never leaks a response. With ``stream=True`` in pass-through mode,
        chunks are yielded as they arrive: a failure before the first chunk
        is retried, one after it propagates, so two attempts are never
        spliced into one answer. Empty answers are held back until the
        attempt shows whether it has anything else to say.
        """
        config = llm_request.config
        labels = config.labels if config is not None else None
        agent = labels.get(AGENT_LABEL) if labels else None
        state = current_call.get()
        if state is not None and not state.taken and (agent is None or state.agent == agent):
            state.taken = True
            handler: RetryHandler | None = state.handler
            agent = state.agent
        else:
            state = None
            handler = retry.handlers.get(agent) if agent is not None else retry.first_handler()
        if handler is None:
            # An agent without retry that shares this model, or a runner
            # without the plugin: the model as it was.
            async with aclosing(original(llm_request, stream)) as plain:
                async for response in plain:
                    yield response
            return

        call = handler.begin(agent, model_name, retry.stats, state)
        if call.guarded:
            await call.admit()
        policy = handler.policy
        hold_all = not stream or handler.buffers_streams
        check_malformed = policy.retry_malformed_function_calls
        saved = take(llm_request, config=retry.snapshot_config)
        # LiteLlm maps a request's retry_options onto litellm's num_retries for
        # that call: an owner of retries sets them aside for the call.
        http = config.http_options if handler.owns_lower and config is not None else None
        request_retries = None if http is None else http.retry_options
        if request_retries is not None:
            http.retry_options = None  # type: ignore[union-attr]
        try:
            while True:
                held: list[LlmResponse] = []
                committed = False
                responses = original(llm_request, stream)
                try:
                    source = responses if not handler.limited else _within(responses, call, hold_all)
                    async for response in source:
                        if check_malformed and not committed and is_malformed_function_call(response):
                            # A failed attempt, like an empty answer: on to the failure path below.
                            raise MalformedFunctionCallError(response)
                        if hold_all or (not committed and is_empty_response(response)):
                            held.append(response)
                            continue
                        if held:
                            for earlier in held:
                                yield earlier
                            held.clear()
                        committed = True
                        yield response
                except BaseException as exc:
                    # Close the model's generator, and so its HTTP connection, on every way out
                    # but exhaustion (an error, a timeout, our consumer closing us mid-stream):
                    # cheaper than contextlib.aclosing on every attempt.
                    await responses.aclose()
                    if committed:
                        await call.interrupted(exc)
                        raise
                    delay = await call.failed(exc)
                    if delay is None:
                        raise
                else:
                    # An attempt is an answer as soon as one response carries something: a
                    # stream may end with empty bookkeeping responses after its text.
                    empty = not committed and all(map(is_empty_response, held))
                    if not empty or not policy.retries(error := EmptyResponseError(held[-1] if held else None)):
                        call.succeeded(log=state is None)
                        if call.guarded:
                            await call.settle_success()
                        for response in held:
                            yield response
                        return
                    delay = await call.failed(error)
                    if delay is None:
                        raise error
                await call.wait(delay)
                restore(llm_request, saved)
                if await call.recover(llm_request, retry.model):
                    # The hook's edits (a smaller model, a trimmed history) hold for every retry after it.
                    saved = take(llm_request, config=retry.snapshot_config)
                call.start_attempt()
        finally:
            if request_retries is not None:
                http.retry_options = request_retries  # type: ignore[union-attr]

    return generate_content_async_with_retry


async def _within(
    responses: AsyncGenerator[LlmResponse, None], call: RetryCall, whole: bool
) -> AsyncGenerator[LlmResponse, None]:
    """``responses`` under the call's time limits (only used when the policy sets one).

    ``call.attempt_limit()`` (``attempt_timeout``, cut to what is left of
    ``timeout``) bounds the whole attempt when ``whole``: buffered attempts,
    where nothing reaches the caller before the attempt ends. A pass-through
    stream is bounded by it until its first response with content, the empty
    ones before it included; after that only the total ``timeout`` applies,
    to each wait for the next chunk, so a stream that stalls mid-answer still
    ends at the call's deadline. ``asyncio.timeout`` cancels the waiting
    attempt in place (no new task), only while this generator waits on the
    model, never while the caller handles a chunk; the model's generator
    unwinds and the caller closes it, which closes its HTTP connection.
    """
    early: list[LlmResponse] = []
    async with asyncio.timeout(call.attempt_limit()):
        if whole:
            early = [response async for response in responses]
        else:
            async for response in responses:
                early.append(response)
                if not is_empty_response(response):
                    break
    for response in early:
        yield response
    if whole:
        return
    if not call.handler.timed:
        # attempt_timeout only: nothing bounds the rest of the stream (its documented meaning).
        async for response in responses:
            yield response
        return
    async for response in _until(responses, call.time_left()):
        yield response


async def _until(responses: AsyncGenerator[LlmResponse, None], seconds: float) -> AsyncGenerator[LlmResponse, None]:
    """``responses``, ended with ``TimeoutError`` once ``seconds`` have passed.

    Only a wait for the model is cut, never the caller's handling of a chunk:
    a timeout scope held across a ``yield`` would fire inside the caller. One
    timer for the whole stream, armed only while waiting, instead of an
    ``asyncio.timeout`` per chunk (a timer scheduled and cancelled per chunk
    cost ~30 µs a chunk on a fast stream; this adds ~0.1 µs).
    """
    task = asyncio.current_task()
    assert task is not None
    waiting = expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        if waiting:
            task.cancel()  # lands in the await below: the task is suspended there

    timer = asyncio.get_running_loop().call_later(max(0.0, seconds), expire)
    try:
        while not expired:
            waiting = True
            try:
                response = await anext(responses)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                # Our own cancel becomes TimeoutError; anyone else's stays a cancellation.
                if expired and task.uncancel() == 0:
                    raise TimeoutError from None
                raise
            finally:
                waiting = False
            yield response
        raise TimeoutError
    finally:
        timer.cancel()


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
    - A failed call leaves the agent as it was: a model that cannot be
      resolved raises before anything changes, and a failure while wrapping
      undoes what was done and puts back the retry the agent had before
      (its previous handler, on its previous model), then re-raises.

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
    # First, before anything changes: an unknown model name raises here.
    model, pin = resolve(agent)
    state = agent.__dict__
    previous: RetryHandler | None = state.get("_retry_handler")
    if previous is not None:
        old_model: BaseLlm | None = state.get("_retry_model")
        old_pin = "_retry_unpinned_model" in state
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
        _attach(agent, handler, model, pin)
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


def _attach(agent: LlmAgent, handler: RetryHandler, model: BaseLlm, pin: bool) -> None:
    """Register ``handler`` on ``model``'s wrapper; undoes its own steps if one fails."""
    retry = install(model)
    displaced = retry.handlers.get(agent.name)
    retry.handlers[agent.name] = handler
    try:
        own_lower_retries(retry, handler)
        if handler.owns_lower:
            layers.warn_about_agent(agent)
        if pin:
            unpinned = agent.model
            agent.model = model
    except BaseException:
        _release(retry, agent.name, handler, displaced)
        raise
    if pin:
        object.__setattr__(agent, "_retry_unpinned_model", unpinned)
    object.__setattr__(agent, "_original_generate_content_async", retry.original)
    object.__setattr__(agent, "_retry_model", model)


def _release(retry: ModelRetry, name: str, handler: RetryHandler | None, displaced: RetryHandler | None = None) -> None:
    """Take ``handler`` off ``retry``'s model for agent ``name``; unwrap the model once nobody uses it.

    ``displaced``: the handler ``name`` had there before (a failed attach puts it back).
    """
    if retry.handlers.get(name) is handler:
        if displaced is not None:
            retry.handlers[name] = displaced
        else:
            del retry.handlers[name]
    if handler is not None and handler not in retry.handlers.values():
        disown_lower_retries(retry, handler)
    if not retry.handlers and not retry.owners:
        uninstall(retry)


def remove_retry_capabilities(agent: LlmAgent) -> LlmAgent:
    """Undo :func:`add_retry_capabilities_to_agent`; returns ``agent``.

    The model's original method comes back once no other agent uses retry on
    it, a pinned model name is restored, and the agent's retry attributes are
    removed. Calling it on an agent without retry does nothing; anything but
    an ``LlmAgent`` raises ``TypeError``.

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
        if retry is not None:
            _release(retry, agent.name, handler)
    if "_retry_unpinned_model" in state:
        agent.model = state["_retry_unpinned_model"]
    deferred = state.get("_retry_deferred")
    if deferred is not None:
        agent.before_model_callback = [cb for cb in _callbacks(agent.before_model_callback) if cb is not deferred]
    for name in (
        "_retry_handler",
        "_original_generate_content_async",
        "_retry_model",
        "_retry_unpinned_model",
        "_retry_deferred",
    ):
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
        model, pin = resolve(agent, at_call=True)
        if model is not None:
            _attach(agent, handler, model, pin)
