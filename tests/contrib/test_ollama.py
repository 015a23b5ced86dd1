"""Ollama out-of-memory recovery, end to end against a fake Ollama server on 127.0.0.1.

The fake speaks Ollama's HTTP API (``/api/chat``, ``/api/generate``,
``/api/ps``, ``/api/show``) and keeps a simple memory model: loading a model
that does not fit next to the loaded ones answers HTTP 500 with Ollama's own
out-of-memory text. It runs in a thread with its own event loop, because
litellm queries ``/api/show`` synchronously for ``ollama/`` models.

Runs unchanged on google-adk 2.3.0 / litellm 1.83.14 (the failure is an
``APIConnectionError``) and on google-adk 2.13 / litellm 1.106 (an
``InternalServerError``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from google.adk.agents import Agent, LlmAgent

from adk_retry import ErrorRule, add_retry_capabilities_to_agent, create_retry_callbacks
from adk_retry.contrib.ollama import (
    DEFAULT_API_BASE,
    OllamaOOMRecovery,
    OllamaRecoveryResult,
    ollama_model_name,
    ollama_oom_rule,
)
from adk_retry.core._rules import RecoveryContext
from adk_retry.core._transient import error_class, is_out_of_memory
from adk_retry.testing import no_waits
from adk_retry.testing.turns import run_turn

CREATED_AT = "2024-06-04T14:38:31.837530Z"


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class FakeOllama:
    """An Ollama server with a memory model, on a free port of 127.0.0.1.

    ``sizes`` are the GiB each model needs; ``memory`` the GiB available.
    A chat or generate request for a model that is not loaded loads it when
    it fits next to the loaded ones, and answers Ollama's out-of-memory
    error otherwise. ``oom_next`` forces that error for the next requests
    whatever the memory (a model that is loaded but runs out at inference).
    An unloaded model stays listed by ``/api/ps`` (and in memory) for
    ``unload_polls`` more polls, as a real server takes a moment to let go.
    """

    def __init__(
        self,
        *,
        memory: float = 8.0,
        sizes: dict[str, float] | None = None,
        loaded: tuple[str, ...] = (),
        unload_polls: int = 1,
    ) -> None:
        self.memory = memory
        self.sizes = {_tagged(k): v for k, v in (sizes or {"big": 6.0, "small": 1.0, "other": 3.0}).items()}
        self.loaded: list[str] = [_tagged(name) for name in loaded]
        self.unloading: dict[str, int] = {}
        self.unload_polls = unload_polls
        self.oom_next = 0
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- what the tests look at ------------------------------------------------------------

    def calls(self) -> list[tuple[str, ...]]:
        """The requests seen, as (path, model[, "unload"]) tuples; litellm's ``/api/show`` left out."""
        seen: list[tuple[str, ...]] = []
        for _method, path, body in self.requests:
            if path == "/api/show":
                continue
            if path == "/api/ps":
                seen.append((path,))
            elif path == "/api/generate" and "prompt" not in body and body.get("keep_alive") == 0:
                seen.append((path, body["model"], "unload"))
            else:
                seen.append((path, body.get("model", "")))
        return seen

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [body for _method, p, body in self.requests if p == path]

    # -- the API ----------------------------------------------------------------------------

    def _used(self) -> float:
        return sum(self.sizes.get(name, 0.0) for name in self.loaded)

    def _run(self, model: str) -> web.Response | None:
        """Load ``model`` if needed; an error response when it cannot run, else None."""
        name = _tagged(model)
        if name not in self.sizes:
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        free = self.memory - self._used()
        if self.oom_next > 0:
            self.oom_next -= 1
            return self._oom(name, free)
        if name in self.loaded:
            return None
        if self.sizes[name] > free:
            return self._oom(name, free)
        self.loaded.append(name)
        return None

    def _oom(self, name: str, free: float) -> web.Response:
        error = f"model requires more system memory ({self.sizes[name]:.1f} GiB) than is available ({free:.1f} GiB)"
        return web.json_response({"error": error}, status=500)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append((request.method, request.path, body))
            failure = self._run(body["model"])
        if failure is not None:
            return failure
        answer = f"hello from {body['model']}"
        return web.json_response(
            {
                "model": body["model"],
                "created_at": CREATED_AT,
                "message": {"role": "assistant", "content": answer},
                "done_reason": "stop",
                "done": True,
                "total_duration": 5191566416,
                "load_duration": 2154458,
                "prompt_eval_count": 26,
                "prompt_eval_duration": 383809000,
                "eval_count": 5,
                "eval_duration": 4799921000,
            }
        )

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = body.get("model", "")
        with self._lock:
            self.requests.append((request.method, request.path, body))
            if "prompt" not in body and body.get("keep_alive") == 0:
                name = _tagged(model)
                if name in self.loaded:
                    if self.unload_polls <= 0:
                        self.loaded.remove(name)
                    else:
                        self.unloading[name] = self.unload_polls
                return web.json_response(
                    {"model": model, "created_at": CREATED_AT, "response": "", "done": True, "done_reason": "unload"}
                )
            failure = self._run(model)
        if failure is not None:
            return failure
        return web.json_response(
            {
                "model": model,
                "created_at": CREATED_AT,
                "response": f"hello from {model}",
                "done": True,
                "done_reason": "stop",
                "context": [1, 2, 3],
                "prompt_eval_count": 26,
                "eval_count": 5,
            }
        )

    async def _ps(self, request: web.Request) -> web.Response:
        with self._lock:
            self.requests.append((request.method, request.path, {}))
            for name, polls in list(self.unloading.items()):
                if polls <= 0:
                    del self.unloading[name]
                    self.loaded.remove(name)
                else:
                    self.unloading[name] = polls - 1
            models = [
                {
                    "name": name,
                    "model": name,
                    "size": int(self.sizes[name] * 2**30),
                    "digest": "2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
                    "details": {"format": "gguf", "family": "llama", "quantization_level": "Q4_0"},
                    "expires_at": "2024-06-04T14:43:31.83753-07:00",
                    "size_vram": int(self.sizes[name] * 2**30),
                }
                for name in self.loaded
            ]
        return web.json_response({"models": models})

    async def _show(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append((request.method, request.path, body))
        return web.json_response({"error": "not here"}, status=404)

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeOllama:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="FakeOllama", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake Ollama did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        assert self._thread is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_post("/api/chat", self._chat)
            app.router.add_post("/api/generate", self._generate)
            app.router.add_get("/api/ps", self._ps)
            app.router.add_post("/api/show", self._show)
            runner = web.AppRunner(app, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

        asyncio.run(main())


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    """A fake Ollama with 8 GiB, "other" (3 GiB) loaded: "big" (6 GiB) does not fit next to it."""
    with FakeOllama(loaded=("other",)) as fake:
        yield fake


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ollama_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="adk_retry")
    return caplog


def oom_agent(server: str, *, model: str = "ollama_chat/big", name: str = "assistant", **rule: Any) -> LlmAgent:
    """The README's integration: callbacks + add_retry_capabilities_to_agent, with the Ollama rule."""
    from google.adk.models.lite_llm import LiteLlm

    callbacks = create_retry_callbacks(name, retry_on="transient", rules=(ollama_oom_rule(**rule),))
    agent = Agent(
        name=name,
        model=LiteLlm(model=model, api_base=server),
        instruction="Answer briefly.",
        before_model_callback=[callbacks["before_model"]],
        after_model_callback=[callbacks["after_model"]],
    )
    return add_retry_capabilities_to_agent(agent, callbacks["retry_handler"])


FAST: dict[str, Any] = {"settle_timeout": 1, "poll_interval": 0.01}


# -- what litellm raises ------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("prefix", ["ollama_chat", "ollama"])
async def test_litellm_raises_an_out_of_memory_error_for_ollamas_answer(ollama: FakeOllama, prefix: str) -> None:
    import litellm

    with pytest.raises(Exception) as raised:  # noqa: PT011 - the type differs between litellm versions
        await litellm.acompletion(
            model=f"{prefix}/big", api_base=ollama.url, messages=[{"role": "user", "content": "hi"}]
        )
    error = raised.value
    # litellm >= 1.84: InternalServerError; 1.83: APIConnectionError (status_code 500 on both).
    assert isinstance(error, litellm.InternalServerError | litellm.APIConnectionError)
    assert "model requires more system memory (6.0 GiB) than is available (5.0 GiB)" in str(error)
    assert is_out_of_memory(error)
    assert error_class(error) == "out_of_memory"
    assert error.model == f"{prefix}/big"


# -- end to end through ADK ---------------------------------------------------------------------


@pytest.mark.e2e
async def test_oom_frees_memory_and_retries_with_the_fallback_model(ollama: FakeOllama, ollama_log: Any) -> None:
    agent = oom_agent(ollama.url, api_base=ollama.url, fallback_model="ollama_chat/small", **FAST)
    with no_waits():
        turn = await run_turn(agent, "hi")
    assert turn.text == "hello from small"
    assert ollama.calls() == [
        ("/api/chat", "big"),  # 6 GiB do not fit next to "other"
        ("/api/ps",),
        ("/api/generate", "other:latest", "unload"),
        ("/api/ps",),  # "other" still listed: the hook waits
        ("/api/ps",),
        ("/api/chat", "small"),  # the retry asks for the fallback
    ]
    assert all(body["stream"] is False for body in ollama.bodies("/api/chat"))
    assert ollama.loaded == ["small:latest"]
    stats = agent._retry_handler.stats
    assert stats.retries == 1
    assert stats.errors  # the OOM was counted
    lines = [r.getMessage() for r in ollama_log.records if r.name == "adk_retry.ollama"]
    assert "[assistant] Ollama out of memory with ollama_chat/big: retrying with ollama_chat/small" in lines
    assert any("Unloaded other:latest" in line for line in lines)


@pytest.mark.e2e
async def test_without_fallback_the_same_model_is_retried_once_memory_is_free(ollama: FakeOllama) -> None:
    agent = oom_agent(ollama.url, api_base=ollama.url, **FAST)
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "hello from big"
    assert ollama.calls() == [
        ("/api/chat", "big"),
        ("/api/ps",),
        ("/api/generate", "other:latest", "unload"),
        ("/api/ps",),
        ("/api/ps",),
        ("/api/chat", "big"),
    ]
    assert ollama.loaded == ["big:latest"]


@pytest.mark.e2e
async def test_unload_self_unloads_the_failing_model_and_keeps_the_others() -> None:
    # "big" is loaded but runs out of memory at inference: unload it, let Ollama load it afresh.
    with FakeOllama(loaded=("big", "small")) as fake:
        fake.oom_next = 1
        agent = oom_agent(fake.url, api_base=fake.url, unload_self=True, unload_others=False, **FAST)
        with no_waits():
            turn = await run_turn(agent)
    assert turn.text == "hello from big"
    assert fake.calls() == [
        ("/api/chat", "big"),
        ("/api/ps",),
        ("/api/generate", "big:latest", "unload"),
        ("/api/ps",),
        ("/api/ps",),
        ("/api/chat", "big"),
    ]
    assert fake.loaded == ["small:latest", "big:latest"]


@pytest.mark.e2e
async def test_an_unreachable_ollama_is_logged_and_the_retry_still_happens(
    ollama: FakeOllama, closed_port: int, ollama_log: Any
) -> None:
    agent = oom_agent(
        ollama.url, api_base=f"http://127.0.0.1:{closed_port}", fallback_model="ollama_chat/small", **FAST
    )
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "hello from small"  # "small" (1 GiB) fits next to "other" anyway
    assert ollama.calls() == [("/api/chat", "big"), ("/api/chat", "small")]
    warnings = [
        r.getMessage() for r in ollama_log.records if r.name == "adk_retry.ollama" and r.levelno == logging.WARNING
    ]
    assert any(
        f"Could not free memory on the Ollama server at http://127.0.0.1:{closed_port}" in w and "retrying anyway" in w
        for w in warnings
    )


@pytest.mark.e2e
async def test_the_server_is_found_from_the_agents_model_when_not_given(ollama: FakeOllama) -> None:
    # Found among the wrapped models by agent name (unique here) and model name.
    agent = oom_agent(ollama.url, name="finder", fallback_model="small", **FAST)  # a bare name keeps the prefix
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "hello from small"
    assert ("/api/generate", "other:latest", "unload") in ollama.calls()
    assert ollama.bodies("/api/chat")[-1]["model"] == "small"


@pytest.mark.e2e
async def test_generate_models_recover_too(ollama: FakeOllama) -> None:
    agent = oom_agent(ollama.url, model="ollama/big", api_base=ollama.url, fallback_model="ollama/small", **FAST)
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "hello from small"
    assert ollama.calls() == [
        ("/api/generate", "big"),
        ("/api/ps",),
        ("/api/generate", "other:latest", "unload"),
        ("/api/ps",),
        ("/api/ps",),
        ("/api/generate", "small"),
    ]


@pytest.mark.e2e
async def test_the_switch_holds_for_the_calls_later_retries_and_ends_with_the_call(ollama: FakeOllama) -> None:
    agent = oom_agent(ollama.url, api_base=ollama.url, fallback_model="ollama_chat/small", **FAST)
    ollama.oom_next = 2  # "big" fails, then "small" fails once too
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "hello from small"
    assert [c for c in ollama.calls() if c[0] == "/api/chat"] == [
        ("/api/chat", "big"),
        ("/api/chat", "small"),
        ("/api/chat", "small"),  # still the fallback: the snapshot does not restore the model
    ]
    # The next model call is a new request: it asks for the configured model again.
    ollama.requests.clear()
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "hello from big"  # "other" is gone, "small" + "big" fit
    assert ollama.calls() == [("/api/chat", "big")]


@pytest.mark.e2e
async def test_the_rules_retry_limit_applies(ollama: FakeOllama) -> None:
    import litellm

    agent = oom_agent(ollama.url, api_base=ollama.url, **FAST)
    ollama.oom_next = 10
    with no_waits(), pytest.raises((litellm.InternalServerError, litellm.APIConnectionError)):
        await run_turn(agent)
    assert [c for c in ollama.calls() if c[0] == "/api/chat"] == [("/api/chat", "big")] * 3  # max_retries=2


# -- the hook on its own ------------------------------------------------------------------------


class _OomError(Exception):
    model = "ollama_chat/big"


def _context(model: str | None = "ollama_chat/big") -> RecoveryContext:
    from google.adk.models.llm_request import LlmRequest

    return RecoveryContext(agent="a", attempt=1, llm_request=None if model is None else LlmRequest(model=model))


async def test_the_hook_reports_what_it_did(ollama: FakeOllama) -> None:
    hook = OllamaOOMRecovery(ollama.url + "/api/chat", fallback_model="ollama_chat/small", **FAST)
    context = _context()
    result = await hook(_OomError(), context)
    assert result == OllamaRecoveryResult(
        api_base=ollama.url,
        reachable=True,
        loaded=("other:latest",),
        unloaded=("other:latest",),
        settled=True,
        model="ollama_chat/small",
    )
    assert context.llm_request is not None
    assert context.llm_request.model == "ollama_chat/small"


async def test_a_loaded_fallback_is_kept() -> None:
    with FakeOllama(loaded=("small", "other")) as fake:
        hook = OllamaOOMRecovery(fake.url, fallback_model="ollama_chat/small", **FAST)
        result = await hook(_OomError(), _context())
    assert result.unloaded == ("other:latest",)
    assert fake.loaded == ["small:latest"]


async def test_settling_is_bounded(ollama: FakeOllama, ollama_log: Any) -> None:
    ollama.unload_polls = 10**9  # never lets go
    hook = OllamaOOMRecovery(ollama.url, settle_timeout=0.05, poll_interval=0.01)
    result = await hook(_OomError(), _context())
    assert result.unloaded == ("other:latest",)
    assert result.settled is False
    assert any("still lists other:latest after 0.05s" in r.getMessage() for r in ollama_log.records)


async def test_without_a_request_memory_is_freed_but_the_model_not_switched(ollama: FakeOllama) -> None:
    hook = OllamaOOMRecovery(ollama.url, fallback_model="ollama_chat/small", **FAST)
    result = await hook(_OomError(), _context(None))
    assert result.unloaded == ("other:latest",)
    assert result.model == "ollama_chat/big"


async def test_a_bad_answer_does_not_raise(closed_port: int, ollama_log: Any) -> None:
    async def not_ollama(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error</html>", status=502)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", not_ollama)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        result = await OllamaOOMRecovery(f"http://127.0.0.1:{port}", **FAST)(_OomError(), _context())
    finally:
        await runner.cleanup()
    assert result.reachable is False
    assert any("502" in r.getMessage() for r in ollama_log.records if r.name == "adk_retry.ollama")


async def test_a_session_factory_is_used_and_closed(ollama: FakeOllama) -> None:
    import aiohttp

    sessions: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        sessions.append(aiohttp.ClientSession(headers={"X-Test": "1"}))
        return sessions[-1]

    await OllamaOOMRecovery(ollama.url, session_factory=factory, **FAST)(_OomError(), _context())
    assert len(sessions) == 1
    assert sessions[0].closed


def test_the_api_base_falls_back_to_the_environment_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from adk_retry.contrib.ollama import _find_api_base

    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    assert _find_api_base(None) == DEFAULT_API_BASE
    monkeypatch.setenv("OLLAMA_API_BASE", "http://gpu-box:11434/")
    assert _find_api_base(None) == "http://gpu-box:11434"


def test_model_names() -> None:
    assert ollama_model_name("ollama_chat/llama3.2:1b") == "llama3.2:1b"
    assert ollama_model_name("ollama/hf.co/org/repo:Q4_K_M") == "hf.co/org/repo:Q4_K_M"
    assert ollama_model_name("llama3.2") == "llama3.2"
    hook = OllamaOOMRecovery(fallback_model="llama3.2:1b")
    assert hook._retry_model("ollama/big") == "ollama/llama3.2:1b"
    assert hook._retry_model("ollama_chat/big") == "ollama_chat/llama3.2:1b"


def test_the_rule() -> None:
    rule = ollama_oom_rule(api_base="http://127.0.0.1:1", fallback_model="ollama_chat/small")
    assert isinstance(rule, ErrorRule)
    assert (rule.match, rule.max_retries, rule.backoff, rule.base_delay) == ("out_of_memory", 2, "fixed", 2.0)
    assert isinstance(rule.recover, OllamaOOMRecovery)
    assert rule.recover.api_base == "http://127.0.0.1:1"
    assert rule.recover.fallback_model == "ollama_chat/small"


@pytest.mark.parametrize(
    "kwargs",
    [{"settle_timeout": -1}, {"poll_interval": 0}, {"request_timeout": 0}, {"fallback_model": " "}, {"api_base": ""}],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        OllamaOOMRecovery(**kwargs)
