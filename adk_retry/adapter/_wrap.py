"""Put retry on a model *instance*: replace its ``generate_content_async``.

ADK looks ``generate_content_async`` up on the model instance at call time,
so an instance attribute set with ``object.__setattr__`` (models are Pydantic
objects that refuse unknown fields) replaces the method for that instance
only, leaves ``model_dump()`` unchanged, and is undone by deleting it.

One wrapper per model instance, whatever the number of agents using it: the
wrapper keeps a table of handlers by agent name and, on each call, picks the
calling agent's from the ``adk_agent_name`` label ADK puts on every request
(or from the per-call state a before-model callback or the plugin set).
Wrapping twice never stacks two retry loops. The retries themselves are the
engine's one attempt loop (:func:`adk_retry.engine._loop.run_attempts`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from functools import partial
from typing import TYPE_CHECKING, Any

from adk_retry.adapter import _layers as layers
from adk_retry.adapter._call_state import current_call
from adk_retry.adapter._snapshot import Snapshot, copy_of, restore, take
from adk_retry.adapter._tokens import estimate_tokens, metered
from adk_retry.core._empty import is_empty_response, is_malformed_function_call
from adk_retry.core._errors import EmptyResponseError, MalformedFunctionCallError
from adk_retry.engine._loop import RetryCall, RetryHandler, run_attempts
from adk_retry.observability._semconv import note_model_class
from adk_retry.observability._stats import RetryStats
from adk_retry.observability._views import live_models

if TYPE_CHECKING:
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_request import LlmRequest
    from google.adk.models.llm_response import LlmResponse

__all__ = [
    "AGENT_LABEL",
    "ModelRetry",
    "install",
    "disown_lower_retries",
    "installed",
    "own_lower_retries",
    "uninstall",
]

AGENT_LABEL = "adk_agent_name"

ModelMethod = Callable[..., AsyncGenerator["LlmResponse", None]]


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
        "chains",
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
        # What adk_retry.adapter._layers turned off beneath this model, and the handlers
        # that want it off: the layers come back when the last of them leaves.
        self.silenced: dict[str, Any] | None = None
        self.owners: set[RetryHandler] = set()
        self.stats = RetryStats()
        """The calls made through this model, whatever the agent: the per-model view."""
        # The fallback chain of each handler whose policy has one, resolved at its first call.
        self.chains: dict[RetryHandler, _Chain] = {}
        live_models.add(self)
        self.snapshot_config = not _edits_contents_only(model)

    def first_handler(self) -> RetryHandler | None:
        """The handler for a call with no agent label: the first registered one."""
        return next(iter(self.handlers.values()), None)


def _name_of(model: BaseLlm) -> str:
    """The model's id (``"openai/gpt-4o"``), or its class name when it has none."""
    return getattr(model, "model", None) or type(model).__name__


def _edits_contents_only(model: BaseLlm) -> bool:
    """LiteLlm edits only a request's contents; Gemini and unknown models may edit its config too."""
    return any(cls.__name__ == "LiteLlm" for cls in type(model).__mro__)


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
    if handler.plan.owns_lower:
        retry.owners.add(handler)
        if retry.silenced is None:
            retry.silenced = layers.silence(retry.model)


def disown_lower_retries(retry: ModelRetry, handler: RetryHandler) -> None:
    """``handler`` no longer uses ``retry``'s model: put the layers back if no owner is left."""
    retry.owners.discard(handler)
    chain = retry.chains.pop(handler, None)
    if chain is not None:
        chain.release()
    if not retry.owners and retry.silenced is not None:
        layers.release(retry.model, retry.silenced)
        retry.silenced = None


def uninstall(retry: ModelRetry) -> None:
    """Put back what :func:`install` replaced, and the retry layers it turned off."""
    model = retry.model
    for chain in retry.chains.values():
        chain.release()
    retry.chains.clear()
    if retry.silenced is not None:
        layers.release(model, retry.silenced)
        retry.silenced = None
    if retry.previous is not None:
        object.__setattr__(model, "generate_content_async", retry.previous)
    else:
        model.__dict__.pop("generate_content_async", None)


def _make_wrapper(retry: ModelRetry) -> ModelMethod:
    original = retry.original
    model_name = _name_of(retry.model)
    # Once per wrapped model: its class names the provider when its id does not (telemetry only).
    note_model_class(model_name, tuple(cls.__name__ for cls in type(retry.model).__mro__))

    def generate_content_async_with_retry(
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

        A plain function that returns the engine's async generator (the
        model's own, when no retry applies), rather than an async generator
        of its own: every response would otherwise pass through one more
        generator frame.
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
            return original(llm_request, stream)
        call = ModelCall(handler, agent or handler.agent_name, model_name, retry.stats, state)
        call.request = llm_request
        call.retry = retry
        call.saved = take(llm_request, config=retry.snapshot_config)
        plan = handler.plan
        if not plan.special:
            # The common case: each attempt is the model's own method, called as ADK called us.
            responses = run_attempts(
                call, original, (llm_request, stream), not stream or plan.buffers_streams, state is None
            )
        else:
            responses = _special_call(retry, handler, call, original, model_name, stream, state is None)
        # LiteLlm maps a request's retry_options onto litellm's num_retries for
        # that call: an owner of retries sets them aside for the call.
        if plan.owns_lower and config is not None and config.http_options is not None:
            http = config.http_options
            if http.retry_options is not None:
                return _retry_options_set_aside(http, responses)
        return responses

    return generate_content_async_with_retry


def _special_call(
    retry: ModelRetry,
    handler: RetryHandler,
    call: ModelCall,
    original: ModelMethod,
    model_name: str,
    stream: bool,
    log: bool,
) -> AsyncGenerator[LlmResponse, None]:
    """A call whose attempts start some other way: a malformed-call check, token metering, a chain."""
    plan = handler.plan
    llm_request = call.request
    if plan.malformed_calls:
        start: Callable[[], AsyncGenerator[LlmResponse, None]] = partial(
            _refusing_malformed_call, original, llm_request, stream
        )
    else:
        start = partial(original, llm_request, stream)
    if plan.counts_tokens:
        call.cost = estimate_tokens(model_name, llm_request)
        start = metered(start, call)
    if plan.chained:
        return _run_chain(retry, handler, call, start, stream, log)
    return run_attempts(call, start, (), not stream or plan.buffers_streams, log)


async def _retry_options_set_aside(
    http: Any, responses: AsyncGenerator[LlmResponse, None]
) -> AsyncGenerator[LlmResponse, None]:
    """``responses``, with the request's ``retry_options`` off while they run and put back when the call ends.

    Only for a request that carries ``retry_options`` (rare: ADK's evaluation
    plugins set them), so the common call pays no generator frame for it.
    """
    options = http.retry_options
    http.retry_options = None
    try:
        async with aclosing(responses):
            async for response in responses:
                yield response
    finally:
        http.retry_options = options


def _refusing_malformed_call(
    original: ModelMethod, llm_request: LlmRequest, stream: bool
) -> AsyncGenerator[LlmResponse, None]:
    return _refusing_malformed(original(llm_request, stream))


async def _refusing_malformed(responses: AsyncGenerator[LlmResponse, None]) -> AsyncGenerator[LlmResponse, None]:
    """``responses``, with a malformed tool call before any content made a failed attempt (opt-in).

    Only in front of content: after a chunk with something in it reached the
    caller, the response passes on as it is (never splice two attempts).
    """
    answered = False
    try:
        async for response in responses:
            if not answered:
                if is_malformed_function_call(response):
                    raise MalformedFunctionCallError(response)
                answered = not is_empty_response(response)
            yield response
    except BaseException:
        await responses.aclose()
        raise


def _run_chain(
    retry: ModelRetry,
    handler: RetryHandler,
    call: ModelCall,
    start: Callable[[], AsyncGenerator[LlmResponse, None]],
    stream: bool,
    log: bool,
) -> AsyncGenerator[LlmResponse, None]:
    """The engine's loop over the policy's chain of models (``fallbacks``) and hedges."""
    chain = retry.chains.get(handler)
    if chain is None:
        chain = retry.chains[handler] = _Chain(retry, handler)
    call.chain = chain.names
    if chain.snapshot_config and not retry.snapshot_config:
        call.saved = take(call.request, config=True)
    plan = handler.plan
    llm_request = call.request

    def models(index: int, isolated: bool) -> AsyncGenerator[LlmResponse, None]:
        if index == 0 and not isolated:
            return start()
        sent = llm_request
        if isolated:
            sent = copy_of(llm_request, call.saved)
            sent.model = chain.models[index].model
        responses = chain.method(index)(sent, stream)
        return _refusing_malformed(responses) if plan.malformed_calls else responses

    async def switch(index: int) -> None:
        # The request as the first attempt sent it, addressed to this model, as FallbackModel does.
        restore(llm_request, call.saved)
        llm_request.model = chain.models[index].model

    return run_attempts(call, start, (), not stream or plan.buffers_streams, log, models, switch)


class _Chain:
    """A policy's models for one wrapped model: the primary, then its ``fallbacks``, resolved.

    Names are resolved as ADK resolves them (``LLMRegistry.new_llm``, as
    ``FallbackModel._delegate`` does), once, at the first call that needs
    them, so a policy can name models whose classes core never imports. A
    fallback's retry layers are turned off as the primary's are when the
    policy owns retries (a ``FallbackModel`` fallback: its delegates'), and
    put back by :meth:`release`. Each attempt calls a model's *own* method:
    a fallback that is wrapped itself (another agent's primary) must not
    start a second retry loop inside this one.
    """

    __slots__ = ("models", "names", "silenced", "snapshot_config")

    def __init__(self, retry: ModelRetry, handler: RetryHandler) -> None:
        from google.adk.models.registry import LLMRegistry

        plan = handler.plan
        fallbacks: list[BaseLlm] = [
            LLMRegistry.new_llm(entry) if isinstance(entry, str) else entry  # type: ignore[misc]
            for entry in plan.fallbacks
        ]
        self.models: list[BaseLlm] = [retry.model, *fallbacks]
        # The guards' keys come from these names: one model name behind two endpoints or keys
        # (a second deployment) must not share the first one's circuit, so a repeat gets "#i".
        names: list[str] = []
        for index, model in enumerate(self.models):
            name = _name_of(model)
            names.append(f"{name}#{index}" if name in names else name)
        self.names: tuple[str | None, ...] = tuple(names)
        # Any model in the chain that may edit the config makes the whole chain save it.
        self.snapshot_config = not all(_edits_contents_only(model) for model in self.models)
        self.silenced: list[tuple[BaseLlm, dict[str, Any]]] = []
        if plan.owns_lower:
            self.silenced = [(model, layers.silence(model)) for model in fallbacks]

    def method(self, index: int) -> ModelMethod:
        model = self.models[index]
        wrapped = installed(model)
        return wrapped.original if wrapped is not None else model.generate_content_async

    def release(self) -> None:
        for model, saved in reversed(self.silenced):
            layers.release(model, saved)
        self.silenced = []


class ModelCall(RetryCall):
    """One call of a wrapped model: the engine's bookkeeping plus the model's request.

    The request is saved as the first attempt sent it (:mod:`._snapshot`) and
    restored before every retry. Its fields are set by the wrapper right after
    construction, not through an ``__init__`` of its own: one Python call less
    on every model call.
    """

    __slots__ = ("request", "retry", "saved")

    is_empty = staticmethod(is_empty_response)
    empty_error = EmptyResponseError

    request: LlmRequest
    retry: ModelRetry
    saved: Snapshot

    async def between(self) -> None:
        """Put the request back as it was sent, then run the recovery hook, if any."""
        restore(self.request, self.saved)
        if await self.recover(self.request, self.retry.model):
            # The hook's edits (a smaller model, a trimmed history) hold for every retry after it.
            self.saved = take(self.request, config=self.retry.snapshot_config)
