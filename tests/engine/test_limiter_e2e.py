"""Rate limiting through the real stack: Runner + LiteLlm + litellm + the fault server's capacity mode.

The provider admits 20 requests/s (burst 2) and answers 429 with ``Retry-After`` and
``retry-after-ms`` beyond that; 10 callers make 3 turns each, all at once.
"""

from __future__ import annotations

import asyncio

import pytest

from adk_retry import RateLimit, RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
from adk_retry.guards._store import MemoryStore
from adk_retry.testing import FaultServer
from adk_retry.testing.capacity import Capacity
from adk_retry.testing.turns import run_turn

pytestmark = pytest.mark.e2e

RATE, BURST, CALLERS, TURNS = 20.0, 2, 10, 3


async def _fleet(server: FaultServer, limit: RateLimit | None) -> tuple[int, RetryHandler]:
    from google.adk.agents import Agent
    from google.adk.models.lite_llm import LiteLlm

    model = LiteLlm(model="openai/fault-model", api_base=server.url, api_key="sk-test")
    agent = Agent(name="fleet", model=model)
    policy = RetryPolicy.transient(rate_limit=limit, store=MemoryStore(), max_retries=8, timeout=30.0)
    handler = RetryHandler(policy, agent_name="fleet")
    add_retry_capabilities_to_agent(agent, handler)

    async def turn() -> bool:
        try:
            return bool((await run_turn(agent, "hello")).text)
        except Exception:
            # Unlimited, a turn may run out of retries against the stampede: counted, not raised,
            # so the baseline's 429s are still measured (only the limited fleets must all answer).
            return False

    async def caller() -> list[bool]:
        return [await turn() for _ in range(TURNS)]

    # One turn first, then a full bucket: the first call pays for imports and clients, and
    # calls bunched up behind that one-off cost would reach the provider together.
    await run_turn(agent, "warm up")
    server.clear()
    server.capacity(RATE, BURST)
    handler.stats.rate_limit_waited = 0.0

    turns = [turn for turns in await asyncio.gather(*(caller() for _ in range(CALLERS))) for turn in turns]
    return sum(turns), handler


async def test_a_configured_limit_sends_nothing_the_provider_refuses() -> None:
    with FaultServer(capacity=Capacity(rate=RATE, burst=BURST)) as server:
        answered, handler = await _fleet(server, RateLimit(rpm=RATE * 60 * 0.95))
        assert answered == CALLERS * TURNS
        assert server.rate_limited <= 1  # ~none (a busy machine may bunch two sends)
        assert handler.stats.rate_limit_waited > 0.5


async def test_adaptive_learns_the_providers_rate_with_few_429s() -> None:
    with FaultServer(capacity=Capacity(rate=RATE, burst=BURST)) as server:
        _unlimited_answered, _ = await _fleet(server, None)
        unlimited = server.rate_limited
    with FaultServer(capacity=Capacity(rate=RATE, burst=BURST)) as server:
        answered, _handler = await _fleet(server, RateLimit(adaptive=True))
        adaptive = server.rate_limited
    assert answered == CALLERS * TURNS
    # The first wave of a stampede is refused either way; after it the learnt rate paces the fleet.
    assert adaptive < max(unlimited, 12) * 0.75, (adaptive, unlimited)
    assert adaptive <= CALLERS * TURNS * 0.5
