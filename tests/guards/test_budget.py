"""Retry budget: an outage cannot multiply load (through Runner + LiteLlm + the fault server)."""

from __future__ import annotations

import logging

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.lite_llm import LiteLlm

from adk_retry import RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.core._budget import RetryBudget
from adk_retry.guards._store import MemoryStore
from adk_retry.testing import Fault, FaultServer, no_waits
from adk_retry.testing.turns import run_turn
from tests.conftest import API_KEY, OUTAGE, messages
from tests.fakes import scripted


def budgeted_agent(
    server: FaultServer, store: MemoryStore, budget: RetryBudget | None
) -> tuple[LlmAgent, RetryHandler]:
    # The SDK's own retries are left on: adk-retry turns them off ("one retry owner").
    model = LiteLlm(model="openai/fault-model", api_base=server.url, api_key=API_KEY)
    agent = LlmAgent(name="budgeted", model=model)
    handler = RetryHandler(RetryPolicy(retry_on="transient", budget=budget, store=store), agent_name="budgeted")
    add_retry_capabilities_to_agent(agent, handler)
    return agent, handler


@pytest.mark.e2e
async def test_full_outage_with_a_10_percent_budget_sends_at_most_1_1_requests_per_call(retry_log):
    # A bucket starts full (10 tokens), so N must be at least 10x its size: N = 100.
    calls = 100
    with FaultServer(default=Fault.http_error(503)) as server, no_waits():
        agent, handler = budgeted_agent(server, MemoryStore(), RetryBudget(max_tokens=10, token_ratio=0.1))
        for _ in range(calls):
            with pytest.raises(Exception, match=OUTAGE):
                await run_turn(agent)
        per_call = len(server.requests) / calls
    assert per_call <= 1.1
    assert handler.stats.retries == 10
    # Ten tokens: three calls make all their 3 retries (9 tokens), the fourth one retry; from
    # then on every call is refused its first retry. Only the first three were never refused.
    assert handler.stats.budget_denials == calls - 3
    assert any("retry budget exhausted" in str(r.__dict__.get("reason")) for r in retry_log.records)


@pytest.mark.e2e
async def test_without_a_budget_an_outage_costs_max_retries_plus_one():
    calls = 5
    with FaultServer(default=Fault.http_error(503)) as server, no_waits():
        agent, _ = budgeted_agent(server, MemoryStore(), None)
        for _ in range(calls):
            with pytest.raises(Exception, match=OUTAGE):
                await run_turn(agent)
        assert len(server.requests) == calls * 4


async def test_successes_refund_a_fraction_of_a_token():
    store = MemoryStore()
    policy = RetryPolicy(retry_on="all", budget=RetryBudget(max_tokens=2, token_ratio=0.5, key="shared"), store=store)
    handler = RetryHandler(policy, sleep=_no_sleep)
    call, _ = scripted(OSError("a"), "ok", OSError("b"), "ok")

    assert await handler(call) == "ok"
    assert await store.tokens("key:shared", max_tokens=2) == 1.5
    assert await handler(call) == "ok"
    assert await store.tokens("key:shared", max_tokens=2) == 1.0


async def test_an_empty_budget_propagates_the_original_error_at_once(caplog):
    caplog.set_level(logging.ERROR, logger="adk_retry")
    store = MemoryStore()
    policy = RetryPolicy(retry_on="all", budget=RetryBudget(max_tokens=1, key="k"), store=store)
    handler = RetryHandler(policy, sleep=_no_sleep)
    errors = [OSError(f"down {i}") for i in range(3)]
    pending = list(errors)

    async def call() -> str:
        raise pending.pop(0)

    with pytest.raises(OSError, match="down 1") as raised:
        await handler(call)
    assert raised.value is errors[1], "one retry (the only token), then the budget refuses the second"
    assert handler.stats.budget_denials == 1
    assert "failed after 2 attempts" in messages(caplog)[-1]


async def _no_sleep(seconds: float) -> None:
    return None


async def test_a_call_cancelled_during_its_backoff_gives_its_token_back():
    import asyncio

    store = MemoryStore()
    budget = RetryBudget(max_tokens=1, key="k")
    sleeping = asyncio.Event()

    async def stuck_sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    cancelled = RetryHandler(RetryPolicy(retry_on="all", budget=budget, store=store), sleep=stuck_sleep)

    async def down() -> str:
        raise OSError("down")

    task = asyncio.create_task(cancelled(down))
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.tokens("key:k", max_tokens=1) == 1.0, "no retry was made: the token is back"
    assert cancelled.stats.retries == 0

    # The next call's retry is not refused for the retry that never happened.
    nxt = RetryHandler(RetryPolicy(retry_on="all", budget=budget, store=store), sleep=_no_sleep)
    blip, _ = scripted(OSError("blip"), "ok")

    assert await nxt(blip) == "ok"
    assert nxt.stats.budget_denials == 0
