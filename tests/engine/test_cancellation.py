"""Cancellation at every point of a call, in both loops: never retried, spends nothing, propagates.

"Spends nothing": no budget token is kept for a retry that was not made, the
breaker counts no failure for the cancellation, and the statistics count the
call as neither a success nor a failure. Failed attempts *before* the
cancellation are real failures and are counted as such.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.genai import types

from adk_retry import (
    CircuitBreaker,
    ErrorRule,
    RetryHandler,
    RetryPolicy,
    add_retry_capabilities_to_agent,
)
from adk_retry.adapter._wrap import installed
from adk_retry.core._budget import RetryBudget
from adk_retry.core._events import RetryEvent
from adk_retry.guards._store import CircuitView, MemoryStore

TOKENS = 10.0
BUDGET_KEY = "key:bucket"
CIRCUIT_KEY = "key:circuit"


class Gate:
    """Where the call under test blocks: ``entered`` is set when it gets there, and it never leaves."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def block(self) -> None:
        self.entered.set()
        await asyncio.Event().wait()


class GatedStore(MemoryStore):
    """A MemoryStore whose admission can block, as a remote store's round trip would."""

    def __init__(self, gate: Gate | None) -> None:
        super().__init__()
        self.gate = gate

    async def admit(self, key: str, now: float, *, probe_timeout: float) -> CircuitView:
        if self.gate is not None:
            await self.gate.block()
        return await super().admit(key, now, probe_timeout=probe_timeout)


@dataclass(frozen=True)
class Case:
    """Where the cancellation lands, and what the call had really done before it."""

    point: str  # "admission", "attempt", "after chunk" (stream only), "backoff", "recovery"
    failed_first: bool  # attempt 1 failed (retriably) before the cancellation
    retries: int  # retries started before the cancellation (each spent one token)

    @property
    def unplayed(self) -> int:
        """Scripted attempts never made: cancelled before the attempt that would block."""
        return 1 if self.point in ("admission", "backoff", "recovery") else 0


CASES = [
    Case("admission", failed_first=False, retries=0),
    Case("attempt", failed_first=False, retries=0),
    Case("backoff", failed_first=True, retries=0),
    Case("recovery", failed_first=True, retries=0),
    Case("attempt", failed_first=True, retries=1),  # the retry itself is cancelled
]
STREAM_CASES = [*CASES, Case("after chunk", failed_first=False, retries=0)]


def said(text: str) -> LlmResponse:
    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]), partial=True)


class GatedLlm(BaseLlm):
    """Plays ``script``, one step per attempt: an exception to raise, or a gate to block at."""

    model: str = "gated/model"

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "script", [])

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, tuple):  # ("chunk", gate): one chunk first
            yield said("partial")
            step = step[1]
        await step.block()
        yield said("never")  # pragma: no cover


def setup(case: Case, events: list[RetryEvent]) -> tuple[RetryPolicy, Gate, GatedStore, list[Any]]:
    gate = Gate()
    store = GatedStore(gate if case.point == "admission" else None)

    async def recover(error: BaseException, context: Any) -> None:
        await gate.block()

    rules = (ErrorRule(match=lambda e: True, recover=recover),) if case.point == "recovery" else ()
    policy = RetryPolicy(
        retry_on="all",
        budget=RetryBudget(max_tokens=TOKENS, key="bucket"),
        breaker=CircuitBreaker(failure_threshold=10, key="circuit"),
        store=store,
        rules=rules,
        hooks=(events.append,),
    )
    script: list[Any] = [ConnectionError("down")] if case.failed_first else []
    script.append(("chunk", gate) if case.point == "after chunk" else gate)
    return policy, gate, store, script


def handler_for(case: Case, policy: RetryPolicy, gate: Gate) -> RetryHandler:
    async def sleep(seconds: float) -> None:
        if case.point == "backoff":
            await gate.block()

    return RetryHandler(policy, agent_name="cancelled", sleep=sleep, random=lambda: 0.0)


async def cancel_at_gate(task: asyncio.Task[Any], gate: Gate) -> None:
    async with asyncio.timeout(5):
        await gate.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def assert_spent_nothing(case: Case, handler: RetryHandler, store: MemoryStore, events: list[RetryEvent]):
    stats = handler.stats
    assert (stats.successes, stats.failures) == (0, 0), "a cancellation is neither a success nor a failure"
    assert stats.retries == case.retries
    assert stats.attempts == (0 if case.point == "admission" else 1 + case.retries)
    assert dict(stats.errors) == ({"ConnectionError": 1} if case.failed_first else {})
    assert await store.tokens(BUDGET_KEY, max_tokens=TOKENS) == TOKENS - case.retries
    circuit = await MemoryStore.admit(store, CIRCUIT_KEY, 0.0, probe_timeout=1.0)
    assert circuit.failures == (1 if case.failed_first else 0), "only real failures reach the breaker"
    assert not [e.kind for e in events if e.kind in ("give_up", "success_after_retry")]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.point}, {c.retries} retries")
async def test_cancelling_the_handler_loop(case: Case) -> None:
    events: list[RetryEvent] = []
    policy, gate, store, script = setup(case, events)
    handler = handler_for(case, policy, gate)

    async def model_call() -> str:
        step = script.pop(0)
        if isinstance(step, BaseException):
            raise step
        await step.block()
        return "never"  # pragma: no cover

    await cancel_at_gate(asyncio.create_task(handler(model_call)), gate)
    await assert_spent_nothing(case, handler, store, events)
    assert len(script) == case.unplayed, "no attempt after the cancellation"


@pytest.mark.parametrize("stream", [False, True], ids=["whole answer", "stream"])
@pytest.mark.parametrize("case", STREAM_CASES, ids=lambda c: f"{c.point}, {c.retries} retries")
async def test_cancelling_the_model_wrapper(case: Case, stream: bool) -> None:
    if case.point == "after chunk" and not stream:
        pytest.skip("a whole answer yields nothing before it ends")
    events: list[RetryEvent] = []
    policy, gate, store, script = setup(case, events)
    handler = handler_for(case, policy, gate)
    model = GatedLlm()
    model.script.extend(script)
    add_retry_capabilities_to_agent(LlmAgent(name="cancelled", model=model), handler)
    request = LlmRequest(
        contents=[types.Content(role="user", parts=[types.Part(text="hi")])],
        config=types.GenerateContentConfig(labels={"adk_agent_name": "cancelled"}),
    )
    received: list[LlmResponse] = []

    async def consume() -> None:
        async for response in model.generate_content_async(request, stream=stream):
            received.append(response)
            gate.entered.set()  # "after chunk": the chunk reached the caller, cancel now

    await cancel_at_gate(asyncio.create_task(consume()), gate)
    await assert_spent_nothing(case, handler, store, events)
    assert len(model.script) == case.unplayed, "no attempt after the cancellation"
    assert len(received) == (1 if case.point == "after chunk" else 0)
    retry = installed(model)
    assert retry is not None
    assert (retry.stats.successes, retry.stats.failures) == (0, 0), "the per-model view counts neither"
