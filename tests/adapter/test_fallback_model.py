"""One retry owner over ADK's ``FallbackModel``: the layers of every delegate are off, then back.

``FallbackModel`` (google-adk 2.9+) tries each delegate once per call, so
under adk-retry a full outage must cost attempts x models requests, not
attempts x models x the retries inside each delegate.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any, ClassVar

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.lite_llm import LiteLlm
from google.genai import types

from adk_retry import (
    RetryHandler,
    RetryPlugin,
    RetryPolicy,
    add_retry_capabilities_to_agent,
    remove_retry_capabilities,
)
from adk_retry.adapter import _layers as layers
from adk_retry.core._hints import retry_after
from adk_retry.core._transient import error_class
from adk_retry.testing import Fault, FaultServer, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import API_KEY, OUTAGE, messages

try:
    from google.adk.models import FallbackModel
except ImportError:  # google-adk before 2.9
    pytest.skip("FallbackModel needs google-adk 2.9+", allow_module_level=True)


def delegate(server: FaultServer | None = None, name: str = "fault-model", **kwargs: Any) -> LiteLlm:
    """A LiteLlm as users build it: the OpenAI SDK's own 2 retries left on."""
    base = server.url if server is not None else "http://127.0.0.1:9/v1"
    return LiteLlm(model=f"openai/{name}", api_base=base, api_key=API_KEY, **kwargs)


def owning_agent(model: BaseLlm, **policy: Any) -> tuple[LlmAgent, RetryHandler]:
    agent = LlmAgent(name="owner", model=model)
    handler = RetryHandler(RetryPolicy.transient(**policy), agent_name="owner", random=lambda: 0.0)
    add_retry_capabilities_to_agent(agent, handler)
    return agent, handler


class Unknown(BaseLlm):
    """A model class adk-retry knows nothing about."""

    async def generate_content_async(self, llm_request: Any, stream: bool = False) -> AsyncGenerator[Any, None]:
        raise NotImplementedError
        yield


# --- silence / release, no network ---------------------------------------------------------------


def test_every_litellm_delegate_is_silenced_and_restored_exactly():
    models = [delegate(num_retries=3), delegate(max_retries=5), delegate()]
    before = [dict(model._additional_args) for model in models]
    fallback = FallbackModel(models=list(models))
    saved = layers.silence(fallback)
    for model in models:
        assert model._additional_args["num_retries"] == 0
        assert model._additional_args["max_retries"] == 0
    layers.release(fallback, saved)
    assert [model._additional_args for model in models] == before


def test_gemini_delegates_get_one_attempt_a_fresh_client_and_no_warning(monkeypatch, caplog):
    from google.adk.models.google_llm import Gemini

    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    caplog.set_level(logging.WARNING, logger="adk_retry")
    options = types.HttpRetryOptions(attempts=5)
    first = Gemini(model="gemini-2.0-flash", retry_options=options)
    second = Gemini(model="gemini-2.5-flash")
    fallback = FallbackModel(models=[first, second])
    cached = first.api_client  # a client built with 5 attempts, cached on the model
    saved = layers.silence(fallback)
    for model in (first, second):
        assert model.retry_options.attempts == 1
        assert model.api_client._api_client._http_options.retry_options.attempts == 1
    assert first.api_client is not cached
    assert messages(caplog) == [], "Gemini delegates are reachable: nothing to warn about"
    layers.release(fallback, saved)
    assert first.retry_options is options
    assert second.retry_options is None
    assert first.api_client._api_client._http_options.retry_options.attempts == 5


def test_string_delegates_are_resolved_like_fallback_model_and_the_silenced_instance_is_used(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    fallback = FallbackModel(models=["openai/primary", "gemini-2.0-flash"])
    saved = layers.silence(fallback)
    litellm_delegate = fallback._delegate("openai/primary")
    gemini_delegate = fallback._delegate("gemini-2.0-flash")
    assert isinstance(litellm_delegate, LiteLlm)
    assert litellm_delegate._additional_args["num_retries"] == 0, "the instance FallbackModel calls is the silenced one"
    assert gemini_delegate.retry_options.attempts == 1
    layers.release(fallback, saved)
    assert fallback._delegate("openai/primary") is litellm_delegate, "still the one instance, as after a first call"
    assert "num_retries" not in litellm_delegate._additional_args
    assert "max_retries" not in litellm_delegate._additional_args
    assert gemini_delegate.retry_options is None


def test_unknown_delegate_classes_and_unbuildable_entries_are_warned_not_raised(caplog):
    caplog.set_level(logging.WARNING, logger="adk_retry")
    known = delegate(num_retries=2)
    fallback = FallbackModel(models=[known, Unknown(model="custom"), "no-such-provider-model-xyz"])
    saved = layers.silence(fallback)
    assert known._additional_args["num_retries"] == 0, "the known delegate is still silenced"
    warnings = messages(caplog)
    assert any("Unknown" in message for message in warnings)
    assert any("no-such-provider-model-xyz" in message for message in warnings)
    assert not any("inside FallbackModel" in message for message in warnings)
    layers.release(fallback, saved)
    assert known._additional_args["num_retries"] == 2


def test_nested_fallback_models_and_repeated_delegates_are_silenced_once_and_restored():
    inner_models = [delegate(num_retries=1), delegate(num_retries=2)]
    outer_only = delegate(num_retries=3)
    inner = FallbackModel(models=list(inner_models))
    outer = FallbackModel(models=[inner, outer_only, inner_models[0]])
    saved = layers.silence(outer)
    assert all(model._additional_args["num_retries"] == 0 for model in [*inner_models, outer_only])
    layers.release(outer, saved)
    assert [model._additional_args["num_retries"] for model in [*inner_models, outer_only]] == [1, 2, 3]


@pytest.mark.parametrize("first_out", ["direct", "fallback"])
def test_a_delegate_also_wrapped_on_its_own_keeps_its_layers_off_until_both_let_go(first_out):
    shared = delegate(num_retries=3)
    fallback = FallbackModel(models=[shared, delegate()])
    direct_saved = layers.silence(shared)
    fallback_saved = layers.silence(fallback)
    holders = [(shared, direct_saved), (fallback, fallback_saved)]
    if first_out == "fallback":
        holders.reverse()
    layers.release(*holders[0])
    assert shared._additional_args["num_retries"] == 0, "the other holder still owns retries"
    layers.release(*holders[1])
    assert shared._additional_args["num_retries"] == 3
    assert "max_retries" not in shared._additional_args


# --- end to end: Runner + FallbackModel of real LiteLlm delegates + the fault server ----------------


@pytest.mark.e2e
async def test_full_outage_sends_attempts_times_models_requests_then_recovers():
    with FaultServer(default=Fault.http_error(503)) as first, FaultServer(default=Fault.http_error(503)) as second:
        primary, backup = delegate(first, "primary"), delegate(second, "backup")
        agent, handler = owning_agent(FallbackModel(models=[primary, backup]))
        attempts = handler.policy.max_attempts
        with no_waits(), pytest.raises(Exception, match=OUTAGE) as raised:
            await run_turn(agent)
        assert (len(first.requests), len(second.requests)) == (attempts, attempts)
        assert attempts == 4, "RetryPolicy.transient(): 4 attempts x 2 models = 8 requests, not 24"
        assert error_class(raised.value) == "server_error", "the backup's own error, classified as such"

        first.default = second.default = Fault.ok("back again")
        with no_waits():
            turn = await run_turn(agent)
        assert turn.text == "back again"
        assert (len(first.requests), len(second.requests)) == (attempts + 1, attempts)

        remove_retry_capabilities(agent)
    assert [set(model._additional_args) for model in (primary, backup)] == [{"api_base", "api_key"}] * 2


@pytest.mark.e2e
async def test_a_primary_outage_fails_over_at_once_with_no_retries_beneath():
    with (
        FaultServer(default=Fault.http_error(503)) as first,
        FaultServer(default=Fault.ok("from the backup")) as second,
    ):
        agent, handler = owning_agent(FallbackModel(models=[delegate(first, "primary"), delegate(second, "backup")]))
        with no_waits():
            turn = await run_turn(agent)
    assert turn.text == "from the backup"
    assert (len(first.requests), len(second.requests)) == (1, 1), "the OpenAI SDK did not retry the primary"
    assert handler.stats.retries == 0


@pytest.mark.e2e
async def test_the_backups_rate_limit_hint_is_honoured_through_fallback_model():
    with FaultServer() as server:
        # One server for both delegates: the primary's 429, then the backup's 429 with its hint, then the primary.
        server.push(Fault.http_error(429), Fault.http_error(429, retry_after=2), Fault.ok("after the hint"))
        agent, handler = owning_agent(FallbackModel(models=[delegate(server, "primary"), delegate(server, "backup")]))
        with no_waits():
            turn = await run_turn(agent)
    assert turn.text == "after the hint"
    assert [request["model"] for request in server.requests] == ["primary", "backup", "primary"]
    assert handler.stats.slept == pytest.approx(2.0)


@pytest.mark.e2e
async def test_the_plugin_silences_the_delegates_for_the_run_and_gives_them_back():
    with FaultServer(default=Fault.http_error(503)) as server:
        primary, backup = delegate(server, "primary", num_retries=2), delegate(server, "backup")
        agent = LlmAgent(name="visitor", model=FallbackModel(models=[primary, backup]))
        plugin = RetryPlugin(RetryPolicy.transient(max_retries=1))
        with no_waits(), pytest.raises(Exception, match=OUTAGE):
            await run_turn(agent, plugins=[plugin])  # run_turn closes the runner, and so the plugin
        assert len(server.requests) == 2 * 2
    assert primary._additional_args["num_retries"] == 2
    assert "max_retries" not in primary._additional_args
    assert set(backup._additional_args) == {"api_base", "api_key"}


def test_the_error_a_fallback_model_raises_is_the_last_delegates_own_object():
    """What the classifier and the hint parser see through FallbackModel: nothing to unwrap."""
    import asyncio

    from google.adk.models.llm_request import LlmRequest

    class Refusing(BaseLlm):
        error: Any = None

        async def generate_content_async(self, llm_request: Any, stream: bool = False) -> AsyncGenerator[Any, None]:
            raise self.error
            yield

    class Limited(Exception):
        status_code = 429
        headers: ClassVar[dict[str, str]] = {"retry-after": "7"}

    errors = [Limited("primary"), Limited("backup")]
    fallback = FallbackModel(models=[Refusing(model="a", error=errors[0]), Refusing(model="b", error=errors[1])])

    async def call() -> None:
        async for _ in fallback.generate_content_async(LlmRequest()):
            pass

    with pytest.raises(Limited) as raised:
        asyncio.run(call())
    assert raised.value is errors[1]
    assert error_class(raised.value) == "rate_limit"
    assert retry_after(raised.value) == 7.0


@pytest.mark.e2e
async def test_request_retry_options_are_set_aside_for_every_delegate():
    retry_options = types.HttpRetryOptions(attempts=2)
    config = types.GenerateContentConfig(http_options=types.HttpOptions(retry_options=retry_options))
    with FaultServer(default=Fault.http_error(503)) as server:
        fallback = FallbackModel(models=[delegate(server, "primary"), delegate(server, "backup")])
        agent = LlmAgent(name="owner", model=fallback, generate_content_config=config)
        add_retry_capabilities_to_agent(agent, RetryHandler(RetryPolicy.transient(max_retries=1), agent_name="owner"))
        with no_waits(), pytest.raises(Exception, match=OUTAGE):
            await run_turn(agent)
        assert len(server.requests) == 2 * 2, "LiteLlm did not map the request's attempts onto num_retries"
    assert config.http_options.retry_options is retry_options
