"""Recover from an Ollama server's out-of-memory answer before retrying.

A local Ollama server that cannot fit the requested model answers HTTP 500
``{"error": "model requires more system memory (5.5 GiB) than is available
(3.2 GiB)"}``. litellm turns that into ``litellm.InternalServerError``
(litellm >= 1.84) or ``litellm.APIConnectionError`` (1.83), both with the
server's text in the message, which :func:`adk_retry.core._transient.error_class`
names ``"out_of_memory"``. Retrying at once fails the same way: memory has to
be freed first, or a smaller model asked instead.

:class:`OllamaOOMRecovery` is a recovery hook (see
:class:`adk_retry.core._rules.ErrorRule`) that does both, for LiteLLM's ``ollama/``
and ``ollama_chat/`` models:

1. **Free memory.** It asks the server which models are loaded
   (``GET /api/ps``) and unloads every one except the model the retry needs
   (``POST /api/generate`` with ``{"model": name, "keep_alive": 0}``); with
   ``unload_self=True`` it unloads the failing model too, so that it is
   loaded again from scratch (what CodeWorm's ``_recover_from_oom`` does).
   Then it polls ``/api/ps`` until those models are gone, for at most
   ``settle_timeout`` seconds. An unreachable or misbehaving server is
   logged as a warning on the ``adk_retry.contrib.ollama`` logger and the retry goes
   ahead anyway: the hook never raises.
2. **Fall back to a smaller model** (optional). With ``fallback_model`` set,
   the hook points the request at it (``llm_request.model = fallback_model``).
   Both google-adk 2.3 and 2.13 send ``llm_request.model or self.model`` to
   litellm, with the ``LiteLlm``'s own arguments (``api_base`` among them), so
   the retry asks the same server for the smaller model. The request
   snapshot taken before the first attempt does not cover ``model``, so the
   switch holds for every later retry of that call; the agent's next model
   call is a new request and asks for the configured model again.

:func:`ollama_oom_rule` wraps the hook in a ready-made :class:`ErrorRule`.

Example:
    >>> from adk_retry import RetryPolicy
    >>> policy = RetryPolicy(
    ...     retry_on="transient",
    ...     rules=(ollama_oom_rule(fallback_model="ollama_chat/llama3.2:1b"),),
    ... )
    >>> policy.rules[0].match, policy.rules[0].max_retries
    ('out_of_memory', 2)
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

import aiohttp

from adk_retry.core._checks import require_callable, require_seconds, require_type
from adk_retry.core._rules import ErrorRule, RecoveryContext
from adk_retry.observability._log import describe, get_logger

__all__ = [
    "DEFAULT_API_BASE",
    "OllamaOOMRecovery",
    "OllamaRecoveryResult",
    "ollama_model_name",
    "ollama_oom_rule",
]

logger = get_logger("ollama")

DEFAULT_API_BASE: Final = "http://localhost:11434"
"""Where Ollama listens by default, and where litellm sends ``ollama/`` models without ``api_base``."""

_PREFIXES: Final = ("ollama_chat/", "ollama/")
_ENDPOINT_SUFFIXES: Final = ("/api/chat", "/api/generate")


@dataclass(frozen=True, slots=True)
class OllamaRecoveryResult:
    """What one run of :class:`OllamaOOMRecovery` did (the hook's return value).

    Attributes:
        api_base: the Ollama server asked.
        reachable: whether ``/api/ps`` answered.
        loaded: the models ``/api/ps`` listed before anything was unloaded.
        unloaded: the models the hook asked the server to unload.
        settled: whether ``/api/ps`` stopped listing them within
            ``settle_timeout`` (True when nothing was unloaded).
        model: the model the retry will ask for (None when unknown).

    Example:
        >>> OllamaRecoveryResult("http://localhost:11434", True, ("a:latest",), (), True, None).settled
        True
    """

    api_base: str
    reachable: bool
    loaded: tuple[str, ...]
    unloaded: tuple[str, ...]
    settled: bool
    model: str | None


class OllamaOOMRecovery:
    """A recovery hook that frees an Ollama server's memory, and may switch to a smaller model.

    Use it as the ``recover`` of an :class:`~adk_retry.core._rules.ErrorRule`
    matching ``"out_of_memory"`` (or through :func:`ollama_oom_rule`). Before
    each retry of such a failure it:

    1. unloads, on the Ollama server, every loaded model except the one the
       retry needs (``unload_others``), and the failing model itself when
       ``unload_self`` is set; then waits until ``/api/ps`` no longer lists
       them, for at most ``settle_timeout`` seconds;
    2. with ``fallback_model`` set, points the request at that model, for
       this retry and the later retries of the same call.

    The model "the retry needs" is ``fallback_model`` when set, else the
    failing model. With both ``unload_others=False`` and ``unload_self=False``
    nothing is unloaded and only the switch happens.

    Args:
        api_base: the Ollama server, e.g. ``"http://localhost:11434"``. When
            not given it is found as litellm finds it: ``litellm.api_base``,
            else the ``api_base`` of the wrapped ``LiteLlm`` model serving the
            failing agent (when the agent and model names tell it apart from
            the other wrapped models in the process),
            else the ``OLLAMA_API_BASE`` environment variable, else
            :data:`DEFAULT_API_BASE`. A trailing ``/api/chat`` or
            ``/api/generate`` is dropped.
        fallback_model: the model to retry with, e.g.
            ``"ollama_chat/llama3.2:1b"``. A bare name (no ``/``) gets the
            failing model's ``ollama/`` or ``ollama_chat/`` prefix. It is
            served by the same server (the ``LiteLlm``'s ``api_base``).
        unload_others: unload the loaded models other than the failing model
            and the fallback.
        unload_self: unload the failing model too (when it is loaded), so
            that Ollama loads it afresh for the retry.
        settle_timeout: seconds to wait for ``/api/ps`` to stop listing the
            unloaded models; 0 does not wait.
        poll_interval: seconds between two ``/api/ps`` polls.
        session_factory: a zero-argument callable returning a new
            ``aiohttp.ClientSession`` (for headers, a proxy, a custom
            connector); the hook closes it when done. Default: a plain session.
        request_timeout: seconds allowed for each HTTP request to Ollama.

    The hook never raises (cancellation aside): a server that cannot be
    reached, or answers oddly, is logged as a warning on the
    ``adk_retry.contrib.ollama`` logger and the retry proceeds. A recovery without a
    request (a call retried through ``RetryHandler.__call__``) still frees
    memory, with the model name taken from the error, but cannot switch
    models.

    Example:
        >>> from adk_retry import ErrorRule
        >>> hook = OllamaOOMRecovery("http://127.0.0.1:11434", fallback_model="ollama_chat/llama3.2:1b")
        >>> rule = ErrorRule(match="out_of_memory", max_retries=2, recover=hook)
        >>> hook.fallback_model
        'ollama_chat/llama3.2:1b'
    """

    __slots__ = (
        "api_base",
        "fallback_model",
        "poll_interval",
        "request_timeout",
        "session_factory",
        "settle_timeout",
        "unload_others",
        "unload_self",
    )

    def __init__(
        self,
        api_base: str | None = None,
        *,
        fallback_model: str | None = None,
        unload_others: bool = True,
        unload_self: bool = False,
        settle_timeout: float = 10.0,
        poll_interval: float = 0.5,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        owner = "OllamaOOMRecovery"
        for name, text in (("api_base", api_base), ("fallback_model", fallback_model)):
            require_type(owner, name, text, str, optional=True)
            if text is not None and not text.strip():
                raise ValueError(f"{owner}: {name} must not be empty")
        # "no" or 0 would read as a setting; only a bool says what is meant.
        require_type(owner, "unload_others", unload_others, bool)
        require_type(owner, "unload_self", unload_self, bool)
        require_callable(owner, "session_factory", session_factory, arguments=0)
        self.api_base = None if api_base is None else _clean_base(api_base)
        self.fallback_model = fallback_model
        self.unload_others = unload_others
        self.unload_self = unload_self
        self.settle_timeout = require_seconds(owner, "settle_timeout", settle_timeout, zero_ok=True)
        self.poll_interval = require_seconds(owner, "poll_interval", poll_interval, zero_ok=False)
        self.session_factory = session_factory
        self.request_timeout = require_seconds(owner, "request_timeout", request_timeout, zero_ok=False)

    def __repr__(self) -> str:
        return (
            f"OllamaOOMRecovery(api_base={self.api_base!r}, fallback_model={self.fallback_model!r}, "
            f"unload_others={self.unload_others}, unload_self={self.unload_self})"
        )

    async def __call__(self, error: BaseException, context: RecoveryContext) -> OllamaRecoveryResult:
        """Free memory on the Ollama server, then switch the request to the fallback model.

        Returns what was done; the retry loop ignores the value.
        """
        request = context.llm_request
        failing = _request_model(request) or _error_model(error)
        target = self._retry_model(failing)
        api_base = self.api_base or _find_api_base(context.model)
        result = await self._free_memory(api_base, failing, target)
        if target is not None and target != failing:
            if request is not None:
                request.model = target
                logger.warning(
                    "[%s] Ollama out of memory with %s: retrying with %s",
                    context.agent,
                    failing,
                    target,
                    extra={"agent": context.agent},
                )
            else:
                logger.warning(
                    "[%s] Ollama out of memory: no request to switch to %s",
                    context.agent,
                    target,
                    extra={"agent": context.agent},
                )
                target = failing
        return replace(result, model=target)

    # -- the steps ----------------------------------------------------------------------------

    def _retry_model(self, failing: str | None) -> str | None:
        """The model the retry will ask for: the fallback (prefixed like ``failing``), else ``failing``."""
        fallback = self.fallback_model
        if fallback is None:
            return failing
        if "/" not in fallback and failing is not None:
            prefix = next((p for p in _PREFIXES if failing.startswith(p)), "")
            return prefix + fallback
        return fallback

    async def _free_memory(self, api_base: str, failing: str | None, target: str | None) -> OllamaRecoveryResult:
        keep = {ollama_model_name(target)} if target is not None else set()
        failing_name = None if failing is None else ollama_model_name(failing)
        try:
            async with self._session() as session:
                loaded = await self._loaded(session, api_base)
                doomed = [name for name in loaded if self._unloads(name, failing_name, keep)]
                unloaded: list[str] = []
                for name in doomed:
                    if await self._unload(session, api_base, name):
                        unloaded.append(name)
                settled = await self._settle(session, api_base, unloaded)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning(
                "Could not free memory on the Ollama server at %s (%s: %s); retrying anyway",
                api_base,
                type(exc).__name__,
                describe(exc),
            )
            return OllamaRecoveryResult(api_base, False, (), (), False, target)
        if unloaded:
            logger.info("Unloaded %s from the Ollama server at %s", ", ".join(unloaded), api_base)
        return OllamaRecoveryResult(api_base, True, tuple(loaded), tuple(unloaded), settled, target)

    def _unloads(self, name: str, failing: str | None, keep: set[str]) -> bool:
        if failing is not None and _same_model(name, failing):
            return self.unload_self
        if any(_same_model(name, kept) for kept in keep):
            return False
        return self.unload_others

    async def _loaded(self, session: aiohttp.ClientSession, api_base: str) -> list[str]:
        """The names of the models loaded on the server, from ``GET /api/ps``."""
        async with session.get(f"{api_base}/api/ps", timeout=self._timeout()) as response:
            response.raise_for_status()
            body = await response.json(content_type=None)
        return list(_names(body))

    async def _unload(self, session: aiohttp.ClientSession, api_base: str, name: str) -> bool:
        """Ask the server to unload ``name`` now; False (and a warning) when it refuses."""
        payload = {"model": name, "keep_alive": 0}
        async with session.post(f"{api_base}/api/generate", json=payload, timeout=self._timeout()) as response:
            if response.status >= 400:
                text = (await response.text())[:200]
                logger.warning("Ollama at %s refused to unload %s: HTTP %d %s", api_base, name, response.status, text)
                return False
            await response.read()
        return True

    async def _settle(self, session: aiohttp.ClientSession, api_base: str, unloaded: list[str]) -> bool:
        """Poll ``/api/ps`` until none of ``unloaded`` is listed, for at most ``settle_timeout``."""
        if not unloaded:
            return True
        deadline = time.monotonic() + self.settle_timeout
        while True:
            still = [name for name in await self._loaded(session, api_base) if name in unloaded]
            if not still:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                logger.warning(
                    "Ollama at %s still lists %s after %gs; retrying anyway",
                    api_base,
                    ", ".join(still),
                    self.settle_timeout,
                )
                return False
            await asyncio.sleep(min(self.poll_interval, left))

    def _session(self) -> aiohttp.ClientSession:
        if self.session_factory is not None:
            return self.session_factory()
        return aiohttp.ClientSession(timeout=self._timeout())

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.request_timeout)


def ollama_oom_rule(
    api_base: str | None = None, *, max_retries: int = 2, base_delay: float = 2.0, **recovery_options: Any
) -> ErrorRule:
    """An :class:`ErrorRule` for Ollama out-of-memory failures, recovered by :class:`OllamaOOMRecovery`.

    The rule matches ``"out_of_memory"``, allows ``max_retries`` (2) retries
    of it per call, waits a fixed ``base_delay`` (2 s) before each (the
    policy's jitter applies), then runs the hook. ``api_base`` and
    ``recovery_options`` (``fallback_model``, ``unload_others``,
    ``unload_self``, ``settle_timeout``, ...) are the hook's. Put it in a
    policy's ``rules``; other failures keep the policy's own schedule.

    Example:
        >>> from adk_retry import RetryPolicy
        >>> rule = ollama_oom_rule(fallback_model="ollama_chat/llama3.2:1b")
        >>> rule.match, rule.backoff, rule.base_delay
        ('out_of_memory', 'fixed', 2.0)
        >>> policy = RetryPolicy(retry_on="transient", rules=(rule,))
        >>> type(policy.rules[0].recover).__name__
        'OllamaOOMRecovery'
    """
    hook = OllamaOOMRecovery(api_base, **recovery_options)
    return ErrorRule(
        match="out_of_memory", max_retries=max_retries, backoff="fixed", base_delay=base_delay, recover=hook
    )


def ollama_model_name(model: str) -> str:
    """The name Ollama knows a LiteLLM model by: without its ``ollama/`` or ``ollama_chat/`` prefix.

    Example:
        >>> ollama_model_name("ollama_chat/llama3.2:1b")
        'llama3.2:1b'
        >>> ollama_model_name("ollama/mistral")
        'mistral'
    """
    for prefix in _PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix) :]
    return model


# -- helpers ------------------------------------------------------------------------------------


def _tagged(name: str) -> str:
    """Ollama's full name: ``mistral`` is ``mistral:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _same_model(a: str, b: str) -> bool:
    return _tagged(a) == _tagged(b)


def _names(body: Any) -> Iterable[str]:
    """The model names in an ``/api/ps`` answer: ``{"models": [{"name": ..., "model": ...}, ...]}``."""
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise ValueError(f"unexpected /api/ps answer: {str(body)[:200]}")
    for entry in models:
        if isinstance(entry, dict):
            name = entry.get("name") or entry.get("model")
            if isinstance(name, str) and name:
                yield name


def _clean_base(api_base: str) -> str:
    base = api_base.strip().rstrip("/")
    for suffix in _ENDPOINT_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base.rstrip("/")


def _request_model(request: Any) -> str | None:
    model = getattr(request, "model", None) if request is not None else None
    return model if isinstance(model, str) and model else None


def _error_model(error: BaseException) -> str | None:
    """The model litellm names on its exceptions (``exc.model``), if any."""
    try:
        model = getattr(error, "model", None)
    except Exception:
        return None
    return model if isinstance(model, str) and model else None


def _find_api_base(model: Any) -> str:
    """The server litellm sent the failing request to, found as litellm finds it.

    ``litellm.api_base`` forced globally, then the wrapped model's own
    ``api_base`` (a ``LiteLlm`` keeps its litellm arguments in
    ``_additional_args``, ADK 2.3 and 2.13), then ``OLLAMA_API_BASE``.
    """
    litellm = sys.modules.get("litellm")
    forced = getattr(litellm, "api_base", None) if litellm is not None else None
    if isinstance(forced, str) and forced:
        return _clean_base(forced)
    args = getattr(model, "_additional_args", None)
    if isinstance(args, dict):
        base = args.get("api_base") or args.get("base_url")
        if isinstance(base, str) and base:
            return _clean_base(base)
    env = os.environ.get("OLLAMA_API_BASE")
    if env:
        return _clean_base(env)
    return DEFAULT_API_BASE
