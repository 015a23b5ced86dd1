"""One retry owner, end to end: the layers beneath adk-retry are off while it owns retries."""

from __future__ import annotations

import logging

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.lite_llm import LiteLlm
from google.genai import types

from adk_retry import RetryHandler, RetryPolicy, add_retry_capabilities_to_agent, remove_retry_capabilities
from adk_retry.testing import Fault, FaultServer, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import API_KEY, OUTAGE

pytestmark = pytest.mark.e2e


def sdk_default_model(server: FaultServer, **kwargs) -> LiteLlm:
    """A LiteLlm as users build it: the OpenAI SDK's own 2 retries left on."""
    return LiteLlm(model="openai/fault-model", api_base=server.url, api_key=API_KEY, **kwargs)


async def test_full_outage_sends_exactly_max_retries_plus_one_requests():
    with FaultServer(default=Fault.http_error(503)) as server:
        agent = LlmAgent(name="owner", model=sdk_default_model(server, num_retries=3))
        add_retry_capabilities_to_agent(agent, RetryHandler(RetryPolicy(retry_on="transient"), agent_name="owner"))
        with no_waits(), pytest.raises(Exception, match=OUTAGE):
            await run_turn(agent)
        assert len(server.requests) == 4


async def test_request_retry_options_are_set_aside_for_the_call_and_put_back():
    retry_options = types.HttpRetryOptions(attempts=2)
    config = types.GenerateContentConfig(http_options=types.HttpOptions(retry_options=retry_options))
    with FaultServer(default=Fault.http_error(503)) as server:
        agent = LlmAgent(name="owner", model=sdk_default_model(server), generate_content_config=config)
        add_retry_capabilities_to_agent(
            agent, RetryHandler(RetryPolicy(retry_on="transient", max_retries=1), agent_name="owner")
        )
        with no_waits(), pytest.raises(Exception, match=OUTAGE):
            await run_turn(agent)
        assert len(server.requests) == 2
    assert config.http_options.retry_options is retry_options


async def test_removal_restores_the_model_retry_settings(server):
    model = sdk_default_model(server, num_retries=3)
    agent = LlmAgent(name="owner", model=model)
    add_retry_capabilities_to_agent(agent, RetryHandler(RetryPolicy(retry_on="transient"), agent_name="owner"))
    assert model._additional_args["num_retries"] == 0
    assert model._additional_args["max_retries"] == 0
    remove_retry_capabilities(agent)
    assert model._additional_args["num_retries"] == 3
    assert "max_retries" not in model._additional_args


async def test_the_default_rule_leaves_the_lower_layers_alone(server):
    model = sdk_default_model(server, num_retries=3)
    add_retry_capabilities_to_agent(LlmAgent(name="seed", model=model), RetryHandler())
    assert model._additional_args["num_retries"] == 3


async def test_keep_lower_retries_keeps_them(server):
    model = sdk_default_model(server, num_retries=3)
    policy = RetryPolicy(retry_on="transient", keep_lower_retries=True)
    add_retry_capabilities_to_agent(LlmAgent(name="keeper", model=model), RetryHandler(policy))
    assert model._additional_args["num_retries"] == 3


async def test_429_with_retry_after_then_success_waits_the_hint(server):
    agent = LlmAgent(name="limited", model=sdk_default_model(server))
    handler = RetryHandler(RetryPolicy(retry_on="transient"), agent_name="limited", random=lambda: 0.0)
    add_retry_capabilities_to_agent(agent, handler)
    server.push(Fault.http_error(429, retry_after=1), Fault.ok("after the wait"))
    with no_waits():
        turn = await run_turn(agent)
    assert turn.text == "after the wait"
    assert len(server.requests) == 2, "the SDK did not retry beneath adk-retry"
    assert handler.stats.slept == pytest.approx(1.0)


def test_gemini_gets_a_single_attempt_and_a_fresh_client(monkeypatch):
    from google.adk.models.google_llm import Gemini

    from adk_retry.adapter import _layers as layers

    monkeypatch.setenv("GOOGLE_API_KEY", "test-key")
    model = Gemini(model="gemini-2.0-flash", retry_options=types.HttpRetryOptions(attempts=5))
    saved = layers.silence(model)
    assert model.retry_options.attempts == 1
    assert model.api_client._api_client._http_options.retry_options.attempts == 1
    layers.release(model, saved)
    assert model.retry_options.attempts == 5


def test_unreachable_layers_are_reported_once(caplog):
    from adk_retry.adapter import _layers as layers

    caplog.set_level(logging.WARNING, logger="adk_retry")
    agent = LlmAgent(name="noded", model="gemini-2.0-flash")
    object.__setattr__(agent, "retry_config", object())
    layers.warn_about_agent(agent)
    layers.warn_about_agent(agent)
    warnings = [r.getMessage() for r in caplog.records if "retry_config" in r.getMessage()]
    assert len(warnings) == 1


async def test_lower_layers_come_back_when_the_owning_agent_leaves_a_shared_model(server):
    model = sdk_default_model(server, num_retries=3)
    owner = LlmAgent(name="owner", model=model)
    seed = LlmAgent(name="seed", model=model)
    add_retry_capabilities_to_agent(owner, RetryHandler(RetryPolicy(retry_on="transient"), agent_name="owner"))
    add_retry_capabilities_to_agent(seed, RetryHandler(agent_name="seed"))
    assert model._additional_args["num_retries"] == 0
    remove_retry_capabilities(owner)
    assert model._additional_args["num_retries"] == 3, "the remaining agent does not own retries"
    assert "with_retry" in model.generate_content_async.__name__, "still wrapped for the remaining agent"


async def test_closing_the_plugin_gives_back_the_layers_even_when_an_agent_keeps_its_retry(server):
    from adk_retry import RetryPlugin

    model = sdk_default_model(server, num_retries=3)
    keeper = LlmAgent(name="keeper", model=model)
    add_retry_capabilities_to_agent(keeper, RetryHandler(agent_name="keeper"))
    plugin = RetryPlugin(RetryPolicy(retry_on="transient"))
    with no_waits():
        await run_turn(LlmAgent(name="visitor", model=model), plugins=[plugin])  # run_turn closes the runner
    assert model._additional_args["num_retries"] == 3
    assert "with_retry" in model.generate_content_async.__name__


def test_a_silenced_model_that_goes_away_leaves_nothing_behind():
    import gc

    from adk_retry.adapter import _layers as layers

    model = LiteLlm(model="openai/m", api_key="k")
    layers.silence(model)
    key = id(model)
    assert key in layers._holds
    del model
    gc.collect()
    assert key not in layers._holds, "the layers table holds models weakly"
