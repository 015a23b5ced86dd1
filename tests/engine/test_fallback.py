"""Model fallback and hedging on scripted models (unit level): the engine's one loop over a chain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.adk.agents import LlmAgent
from google.adk.models.llm_request import LlmRequest

from adk_retry import (
    CircuitBreaker,
    RateLimit,
    RetryBudget,
    RetryHandler,
    RetryPolicy,
    add_retry_capabilities_to_agent,
)
from adk_retry.core._errors import CircuitOpenError
from adk_retry.core._events import RetryEvent
from adk_retry.engine._loop import _Latencies
from adk_retry.guards import MemoryStore
from adk_retry.testing import no_waits
from tests.adapter.test_attach_and_wrap import ScriptedLlm, nothing, request, said


class _Http(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


class Recording(ScriptedLlm):
    """A scripted model that edits the request as real models do, and notes whether its stream was closed."""

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        object.__setattr__(self, "closed", 0)

    async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False):
        inner = super().generate_content_async(llm_request, stream)
        try:
            async for response in inner:
                yield response
        finally:
            llm_request.contents.append(llm_request.contents[0].model_copy())  # an edit a retry must not inherit
            object.__setattr__(self, "closed", self.closed + 1)
            await inner.aclose()


def chain(*, fallbacks: int = 1, events: list[RetryEvent] | None = None, **policy: Any):
    primary = Recording(model="scripted/primary")
    backups = [Recording(model=f"scripted/backup{i}") for i in range(fallbacks)]
    hooks = (events.append,) if events is not None else ()
    handler = RetryHandler(RetryPolicy.transient(fallbacks=tuple(backups), hooks=hooks, **policy), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    return primary, backups, handler


async def texts(model: ScriptedLlm, req: LlmRequest | None = None, *, stream: bool = False) -> list[str]:
    req = req if req is not None else request()
    return [
        "".join(p.text or "" for p in (r.content.parts if r.content else []))
        async for r in model.generate_content_async(req, stream=stream)
    ]


async def test_retries_run_out_then_the_fallback_answers_on_the_restored_request():
    events: list[RetryEvent] = []
    primary, (backup,), handler = chain(max_retries=1, events=events)
    primary.scripts.extend([[_Http(503)], [_Http(503)]])
    backup.scripts.append([said("from backup")])
    req = request()
    with no_waits():
        assert await texts(primary, req) == ["from backup"]
    # Two attempts on the primary, one on the fallback; each saw the request as first sent.
    assert [r[1] for r in primary.requests] == [["hi"], ["hi"]]
    assert backup.requests == [("scripted/backup0", ["hi"])]
    stats = handler.stats
    assert (stats.attempts, stats.fallbacks, stats.successes, stats.failures) == (3, 1, 1, 0)
    assert stats.answered_by == {"scripted/backup0": 1}
    fallback = [e for e in events if e.kind == "fallback"]
    assert len(fallback) == 1
    assert fallback[0].model == "scripted/primary"
    assert fallback[0].to_model == "scripted/backup0"
    assert fallback[0].reason == "attempts exhausted"
    assert events[-1].kind == "success_after_retry"
    assert events[-1].model == "scripted/backup0"


async def test_each_new_call_starts_on_the_primary():
    primary, (backup,), _handler = chain(max_retries=0)
    primary.scripts.extend([[_Http(503)], [said("primary again")]])
    with no_waits():
        assert await texts(primary) == ["ok"]  # the backup's default answer
        assert await texts(primary) == ["primary again"]
    assert len(primary.requests) == 2
    assert len(backup.requests) == 1


async def test_fallback_on_moves_at_once_without_a_wait():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    primary, (_backup,), handler = chain(fallback_on=("rate_limit",))
    handler.sleep = sleep
    primary.scripts.append([_Http(429)])
    assert await texts(primary) == ["ok"]
    assert len(primary.requests) == 1
    assert slept == []


async def test_every_model_fails_the_caller_gets_the_last_models_error():
    primary, backups, handler = chain(max_retries=1, fallbacks=2)
    last = _Http(502)
    primary.scripts.extend([[_Http(503)], [_Http(503)]])
    backups[0].scripts.extend([[_Http(500)], [_Http(500)]])
    backups[1].scripts.extend([[_Http(503)], [last]])
    with no_waits(), pytest.raises(_Http) as raised:
        await texts(primary)
    assert raised.value is last
    assert handler.stats.attempts == 6
    assert handler.stats.fallbacks == 2
    assert handler.stats.failures == 1


async def test_a_failure_that_is_neither_retried_nor_in_fallback_on_does_not_move():
    primary, (backup,), _ = chain()
    error = _Http(400)
    primary.scripts.append([error])
    with pytest.raises(_Http) as raised:
        await texts(primary)
    assert raised.value is error
    assert backup.requests == []


async def test_never_falls_back_after_a_streamed_chunk():
    primary, (backup,), _handler = chain(fallback_on=("server_error",))
    cut = _Http(503)
    primary.scripts.append([said("Hel", partial=True), cut])
    seen: list[str] = []

    async def consume() -> None:
        async for response in primary.generate_content_async(request(), stream=True):
            seen.append(response.content.parts[0].text)

    with no_waits(), pytest.raises(_Http) as raised:
        await consume()
    assert raised.value is cut
    assert seen == ["Hel"]
    assert backup.requests == []


async def test_an_open_circuit_moves_the_call_to_the_fallback_before_any_attempt():
    store = MemoryStore()
    primary, (backup,), handler = chain(
        max_retries=0, breaker=CircuitBreaker(failure_threshold=1, cooldown=60), store=store
    )
    primary.scripts.append([_Http(503)])
    with no_waits():
        assert await texts(primary) == ["ok"]  # opens the primary's circuit, then the backup answers
        assert await texts(primary) == ["ok"]  # refused at once by the open circuit: straight to the backup
    assert len(primary.requests) == 1
    assert len(backup.requests) == 2
    assert handler.stats.breaker_rejections == 1
    assert handler.stats.answered_by == {"scripted/backup0": 2}


async def test_a_circuit_opened_during_the_backoff_moves_the_retry_to_the_fallback():
    primary, backup = Recording(model="scripted/primary"), Recording(model="scripted/backup0")
    meanwhile: list[list[str]] = []

    async def sleep(seconds: float) -> None:
        if not meanwhile:  # the first backoff: another call fails meanwhile and opens the circuit
            meanwhile.append(await texts(primary))

    breaker = CircuitBreaker(failure_threshold=2, cooldown=60)
    policy = RetryPolicy.transient(fallbacks=(backup,), breaker=breaker, store=MemoryStore())
    handler = RetryHandler(policy, agent_name="edge", sleep=sleep)
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.extend([[_Http(503)], [_Http(503)]])
    assert await texts(primary) == ["ok"]  # its retry met the open circuit: the backup answered
    assert meanwhile == [["ok"]]
    assert len(primary.requests) == 2
    assert len(backup.requests) == 2
    assert handler.stats.answered_by == {"scripted/backup0": 2}


async def test_without_fallback_on_circuit_open_the_refusal_stands():
    primary, (_backup,), _handler = chain(
        max_retries=0, breaker=CircuitBreaker(failure_threshold=1, cooldown=60), store=MemoryStore(), fallback_on=()
    )
    primary.scripts.append([_Http(503)])
    with no_waits():
        await texts(primary)
        with pytest.raises(CircuitOpenError):
            await texts(primary)


async def test_string_fallbacks_resolve_through_adks_registry(monkeypatch):
    from google.adk.models.registry import LLMRegistry

    backup = Recording(model="scripted/named")
    monkeypatch.setattr(LLMRegistry, "new_llm", staticmethod(lambda name: backup if name == "named" else None))
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(max_retries=0, fallbacks=("named",)), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.append([_Http(503)])
    assert await texts(primary) == ["ok"]
    assert backup.requests == [("scripted/named", ["hi"])]


async def test_a_wrapped_fallback_is_called_without_its_own_retry_loop():
    primary, (backup,), _handler = chain(max_retries=0)
    other = RetryHandler(RetryPolicy.transient(max_retries=5), agent_name="other")
    add_retry_capabilities_to_agent(LlmAgent(name="other", model=backup), other)
    primary.scripts.append([_Http(503)])
    backup.scripts.append([_Http(503)])
    with no_waits(), pytest.raises(_Http):
        await texts(primary)
    assert len(backup.requests) == 1
    assert other.stats.calls == 0


# -- hedging ---------------------------------------------------------------------------------


async def test_a_hedge_wins_on_a_slow_first_token_and_the_loser_is_closed():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.05), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.extend([[5.0, said("slow")], [said("fast", partial=True), said("fast!")]])
    req = request()
    assert await texts(primary, req, stream=True) == ["fast", "fast!"]
    assert primary.closed == 2  # the loser was cancelled and closed, the winner closed when done
    assert (handler.stats.hedges, handler.stats.hedge_wins, handler.stats.attempts) == (1, 1, 2)
    assert len(req.contents) == 2  # the hedge ran on a copy; only the stalled first attempt edited this one


async def test_the_loser_is_closed_after_the_winners_first_chunk_even_when_the_caller_stops_there():
    """Closing a cancelled litellm stream took 50-140 ms on a busy loop: not on the winner's first chunk."""
    primary, handler = hedging(hedge_after=0.02)
    primary.scripts.extend([[5.0, said("slow")], [said("fast", partial=True), said("fast!")]])
    stream = primary.generate_content_async(request(), stream=True)
    first = await anext(stream)
    assert first.content.parts[0].text == "fast"
    assert primary.closed == 0  # the loser is cancelled, its closing not yet paid
    await stream.aclose()
    assert primary.closed == 2  # the loser and the winner, though the caller read one chunk only
    assert handler.stats.hedge_wins == 1


async def test_no_hedge_when_the_first_attempt_answers_in_time():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=5.0), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    assert await texts(primary) == ["ok"]
    assert handler.stats.hedges == 0
    assert len(primary.requests) == 1


async def test_the_first_attempt_wins_when_the_hedge_is_slower():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.02), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.extend([[0.1, said("first")], [5.0, said("hedge")]])
    assert await texts(primary) == ["first"]
    assert handler.stats.hedges == 1
    assert handler.stats.hedge_wins == 0
    assert primary.closed == 2


async def test_a_hedge_runs_on_the_next_model_and_the_call_continues_there():
    primary, (backup,), handler = chain(hedge_after=0.02)
    primary.scripts.append([5.0, said("slow")])
    backup.scripts.append([said("backup")])
    assert await texts(primary) == ["backup"]
    assert handler.stats.answered_by == {"scripted/backup0": 1}
    assert backup.requests[0][0] == "scripted/backup0"


async def test_hedge_then_first_fails_hedge_answers():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.02), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.extend([[0.05, _Http(503)], [0.1, said("hedge")]])
    assert await texts(primary) == ["hedge"]


async def test_a_hedge_needs_an_attempt_left():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.01, max_retries=0), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.append([0.05, said("alone")])
    assert await texts(primary) == ["alone"]
    assert handler.stats.hedges == 0


async def test_cancelling_the_caller_cancels_and_closes_both_attempts():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.01), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.extend([[5.0, said("a")], [5.0, said("b")]])
    task = asyncio.ensure_future(texts(primary))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert primary.closed == 2
    assert len(primary.requests) == 2


async def test_an_empty_first_attempt_does_not_win_over_a_hedge_with_content():
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.02), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.extend([[0.05, nothing()], [0.1, said("content")]])
    assert await texts(primary) == ["content"]


async def test_the_coroutine_api_hedges_too():
    calls = 0

    async def model_call() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5.0 if calls == 1 else 0.0)
        return f"answer {calls}"

    handler = RetryHandler(RetryPolicy.transient(hedge_after=0.02))
    assert await handler(model_call) == "answer 2"


def hedging(**policy: Any) -> tuple[Recording, RetryHandler]:
    primary = Recording(model="scripted/primary")
    handler = RetryHandler(RetryPolicy.transient(**policy), agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    return primary, handler


async def test_a_second_hedge_when_the_first_hedge_stalls_too():
    primary, handler = hedging(hedge_after=0.03, max_hedges=2)
    primary.scripts.extend([[5.0, said("first")], [5.0, said("hedge 1")], [said("hedge 2")]])
    assert await texts(primary, stream=True) == ["hedge 2"]
    assert (handler.stats.hedges, handler.stats.hedge_wins, handler.stats.attempts) == (2, 1, 3)
    assert primary.closed == 3  # both stalled attempts cancelled and closed


@pytest.mark.parametrize(("max_hedges", "requests"), [(1, 2), (2, 3), (5, 4)])
async def test_hedges_stop_at_max_hedges_and_at_the_attempts_left(max_hedges: int, requests: int):
    # max_retries=3: four attempts in all, so at most three hedges whatever max_hedges says.
    primary, handler = hedging(hedge_after=0.01, max_hedges=max_hedges, max_retries=3)
    primary.scripts.extend([[0.15, said("first")], *([[5.0, said("hedge")]] * 4)])
    assert await texts(primary) == ["first"]
    assert len(primary.requests) == requests
    assert handler.stats.hedges == requests - 1


async def test_no_second_hedge_once_an_attempt_answered():
    primary, _ = hedging(hedge_after=0.05, max_hedges=3)
    primary.scripts.extend([[5.0, said("first")], [0.02, said("hedge")]])
    assert await texts(primary) == ["hedge"]
    await asyncio.sleep(0.12)  # past the next two hedge times: nothing more was sent
    assert len(primary.requests) == 2


def test_max_hedges_is_validated():
    with pytest.raises(ValueError, match="max_hedges"):
        RetryPolicy(hedge_after=0.1, max_hedges=0)
    assert RetryPolicy(hedge_after=0.1).plan.max_hedges == 1


async def test_a_hedge_needs_the_rate_limits_admission_at_once():
    """A concurrency cap of one is held by the stalled first attempt: no hedge, and nothing waits for one."""
    store = MemoryStore()
    primary, handler = hedging(hedge_after=0.01, rate_limit=RateLimit(max_concurrency=1), store=store)
    primary.scripts.append([0.1, said("first")])
    assert await texts(primary) == ["first"]
    assert handler.stats.hedges == 0
    assert len(primary.requests) == 1
    assert store._slots == {}  # the first attempt's slot went back


@pytest.mark.parametrize("hedge_wins", [True, False])
async def test_a_hedge_takes_a_limiter_slot_and_gives_it_back(hedge_wins: bool):
    store = MemoryStore()
    primary, handler = hedging(hedge_after=0.02, rate_limit=RateLimit(max_concurrency=2), store=store)
    slow, fast = [5.0, said("first")], [0.05, said("hedge")]
    primary.scripts.extend([slow, fast] if hedge_wins else [[0.1, said("first")], [5.0, said("hedge")]])
    seen: list[int] = []

    async def watch() -> None:
        await asyncio.sleep(0.04)  # after the hedge started, before anything answered
        seen.append(sum(len(holders) for holders in store._slots.values()))

    watcher = asyncio.ensure_future(watch())
    assert await texts(primary) == (["hedge"] if hedge_wins else ["first"])
    await watcher
    assert seen == [2]  # the hedge held a slot of its own
    assert handler.stats.hedges == 1
    assert store._slots == {}  # both slots back: the loser's at once, the winner's when it ended


async def test_a_hedge_spends_a_budget_token():
    budget = RetryBudget(max_tokens=1.0, token_ratio=0.01)
    primary, handler = hedging(hedge_after=0.01, budget=budget, store=MemoryStore())
    primary.scripts.extend([[0.1, said("first")], [5.0, said("hedge")], [0.1, said("second")]])
    assert await texts(primary) == ["first"]
    assert await texts(primary) == ["second"]  # the one token went on the first call's hedge
    assert (handler.stats.hedges, handler.stats.budget_denials) == (1, 1)


async def test_a_hedge_the_limiter_refuses_returns_its_budget_token():
    store = MemoryStore()
    budget = RetryBudget(max_tokens=1.0, token_ratio=0.01)
    primary, handler = hedging(hedge_after=0.01, budget=budget, rate_limit=RateLimit(max_concurrency=1), store=store)
    primary.scripts.append([0.05, said("first")])
    assert await texts(primary) == ["first"]
    assert handler.stats.hedges == 0
    key = handler.plan.keys("scripted/primary", "edge").budget
    assert key is not None
    assert await store.take_token(key, max_tokens=1.0)  # the token is back (a success refunds only 0.01)


async def test_a_fallback_with_the_primarys_name_has_its_own_circuit():
    """One model name behind two endpoints: the fallback's guards must not be the primary's."""
    primary, backup = Recording(model="scripted/same"), Recording(model="scripted/same")
    policy = RetryPolicy.transient(
        max_retries=1,
        fallbacks=(backup,),
        breaker=CircuitBreaker(failure_threshold=1, cooldown=60),
        store=MemoryStore(),
    )
    handler = RetryHandler(policy, agent_name="edge")
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=primary), handler)
    primary.scripts.append([_Http(503)])
    with no_waits():
        assert await texts(primary) == ["ok"]
        assert await texts(primary) == ["ok"]
    assert len(primary.requests) == 1
    assert len(backup.requests) == 2
    assert handler.stats.answered_by == {"scripted/same#1": 2}


async def test_every_fallbacks_circuit_open_gives_up_with_the_primarys_error():
    events: list[RetryEvent] = []
    primary, (backup,), _handler = chain(
        max_retries=0, breaker=CircuitBreaker(failure_threshold=2, cooldown=60), store=MemoryStore(), events=events
    )
    primary.scripts.extend([[_Http(503)], [said("fine")], [_Http(503)]])
    backup.scripts.extend([[_Http(503)], [_Http(503)]])
    with no_waits():
        with pytest.raises(_Http):
            await texts(primary)  # one failure each
        await texts(primary)  # the primary recovers; the backup's failure still counts
        with pytest.raises(_Http):
            await texts(primary)  # the backup's second failure opens its circuit
        last = _Http(500)
        primary.scripts.append([last])
        with pytest.raises(_Http) as raised:
            await texts(primary)  # the primary fails; its only fallback is open: give up, no request there
    assert raised.value is last
    assert len(backup.requests) == 2
    assert events[-1].kind == "give_up"
    assert events[-1].reason == "every fallback's circuit is open"
    assert events[-1].attempt == 1


# -- a learnt hedge delay (hedge_quantile) ---------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "delay"),
    [
        ([], 0.5),  # nothing learnt yet: hedge_after
        ([0.01] * 19, 0.5),  # not warm yet
        ([0.01 * i for i in range(1, 21)], 0.19),  # nearest-rank p95 of 20: the 19th
        ([0.01] * 20 + [9.0] * 5, 0.01),  # re-sorted every 10 answers, not per call
        ([0.01] * 20 + [9.0] * 10, 9.0),  # 10 of 30 over the p95: it follows them
        ([9.0] * 200 + [0.02] * 200, 0.02),  # a ring of 200: old answers drop out
    ],
)
def test_the_learnt_delay_is_the_quantile_of_the_latest_answers(answers: list[float], delay: float):
    learnt = _Latencies(0.95)
    for seconds in answers:
        learnt.add(seconds)
    assert learnt.delay(0.5) == pytest.approx(delay)


async def test_a_learnt_delay_hedges_sooner_than_hedge_after():
    primary, handler = hedging(hedge_after=5.0, hedge_quantile=0.95)
    primary.scripts.extend([[said("quick")]] * 20)
    for _ in range(20):
        assert await texts(primary) == ["quick"]
    assert handler.stats.hedges == 0
    primary.scripts.extend([[0.5, said("slow")], [said("hedge")]])
    started = asyncio.get_running_loop().time()
    assert await texts(primary) == ["hedge"]  # hedged after the learnt few ms, not after 5 s
    assert asyncio.get_running_loop().time() - started < 0.4
    assert (handler.stats.hedges, handler.stats.hedge_wins) == (1, 1)


def test_hedge_quantile_is_validated():
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="hedge_quantile"):
            RetryPolicy(hedge_after=0.1, hedge_quantile=bad)


@pytest.mark.parametrize("fields", [{"max_hedges": 2}, {"hedge_quantile": 0.95}])
def test_hedging_fields_need_hedge_after(fields: dict[str, Any]):
    with pytest.raises(ValueError, match="needs hedge_after"):
        RetryPolicy(**fields)


async def test_learnt_hedge_delays_live_and_die_with_their_policy():
    """A policy made per turn (a plugin, a factory) must not leave its learnt delays behind, nor pass
    them on to a later policy that happens to get the same id() (they were keyed by id(plan))."""
    import gc

    async def quick() -> str:
        return "quick"

    for _ in range(30):
        policy = RetryPolicy.transient(hedge_after=5.0, hedge_quantile=0.95)
        assert await RetryHandler(policy)(quick) == "quick"
    del policy
    gc.collect()
    assert [state for state in gc.get_objects() if isinstance(state, _Latencies)] == []


async def test_a_call_cancelled_while_its_hedge_waits_for_the_store_gets_the_hedges_budget_token_back():
    """The hedge took a budget token, then its admission's store round trip (Redis) was cancelled with the
    call: no hedge was sent, so the token goes back (cancellation spends nothing)."""
    entered = asyncio.Event()

    class SlowSlots(MemoryStore):
        calls = 0

        async def acquire_slot(self, key: str, holder: str, now: float, *, limit: int, lease: float) -> bool:
            SlowSlots.calls += 1
            if SlowSlots.calls == 2:  # the hedge's
                entered.set()
                await asyncio.Event().wait()
            return await super().acquire_slot(key, holder, now, limit=limit, lease=lease)

    store = SlowSlots()
    budget = RetryBudget(max_tokens=5.0)
    primary, handler = hedging(hedge_after=0.01, budget=budget, rate_limit=RateLimit(max_concurrency=4), store=store)
    primary.scripts.append([5.0, said("first")])
    task = asyncio.ensure_future(texts(primary))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    key = handler.plan.keys("scripted/primary", "edge").budget
    assert key is not None
    assert await store.tokens(key, max_tokens=5.0) == 5.0
    assert handler.stats.hedges == 0
    assert store._slots == {}


@pytest.mark.parametrize("state", ["open", "half_open"])
async def test_a_hedge_never_goes_to_a_fallback_whose_circuit_is_open(state: str):
    """Each model keeps its own breaker: a hedge meant for the next model stays on the current one
    while that model's circuit is open (nothing is sent to it), and does not take its probe."""
    store = MemoryStore()
    breaker = CircuitBreaker(failure_threshold=1, first_probe=60, cooldown=60, probe_jitter=0)
    primary, (backup,), handler = chain(hedge_after=0.02, breaker=breaker, store=store, timeout=5)
    key = handler.plan.keys("scripted/backup0", "edge").circuit
    assert key is not None
    import time

    opened = time.time() - (120 if state == "half_open" else 0)
    await store.record_failure(key, opened, threshold=1, cooldown=60, hint=None, first_probe=60)
    primary.scripts.extend([[0.3, said("first")], [said("hedge")]])
    assert await texts(primary) == ["hedge"]
    assert backup.requests == []
    assert len(primary.requests) == 2
    view = await store.admit(key, time.time(), probe_timeout=10)
    assert view.allowed == (state == "half_open"), "the backup's probe is still free for a call of its own"


class ContextWindowExceededError(Exception):
    """Named and placed as litellm's: a fallback-only class (the request is too long for this model)."""


ContextWindowExceededError.__module__ = "litellm.exceptions"


@pytest.mark.parametrize("leaves_by", ["fallback_on a 400 class", "a hedge on the next model that won"])
async def test_a_probe_that_leaves_its_model_frees_that_models_probe_slot(leaves_by: str):
    """The call was the primary's half-open probe and moved to the fallback without a verdict on the
    primary: its waiters must get the probe at once, not after probe_timeout."""
    import time

    store = MemoryStore()
    breaker = CircuitBreaker(failure_threshold=1, first_probe=1, cooldown=1, probe_jitter=0, probe_timeout=30)
    fields: dict[str, Any] = {"hedge_after": 0.02} if leaves_by.startswith("a hedge") else {}
    primary, (backup,), handler = chain(
        breaker=breaker,
        store=store,
        timeout=5,
        fallback_on=("context_window_exceeded", "circuit_open"),
        **fields,
    )
    key = handler.plan.keys("scripted/primary", "edge").circuit
    assert key is not None
    await store.record_failure(key, time.time() - 10, threshold=1, cooldown=1, hint=None, first_probe=1)
    if fields:
        primary.scripts.append([5.0, said("too late")])
    else:
        primary.scripts.append([ContextWindowExceededError("too long for this model")])
    backup.scripts.append([said("from backup")])
    assert await texts(primary) == ["from backup"]
    assert len(primary.requests) == 1, "the call was the primary's probe"
    view = await store.admit(key, time.time(), probe_timeout=30)
    assert view.allowed, "the primary's probe slot was left taken"


async def test_a_losers_failing_close_never_reaches_the_caller_nor_keeps_its_slot():
    """Both attempts get their content in the same turn of the loop: the first wins, and the hedge,
    suspended after its first response, is closed; its close raises. The caller still gets the
    winner's answer, and every slot goes back."""
    from google.adk.models.base_llm import BaseLlm

    gate = asyncio.Event()

    class Gated(BaseLlm):
        model: str = "gated/model"

        async def generate_content_async(self, llm_request: LlmRequest, stream: bool = False):
            try:
                await gate.wait()
                yield said("answer")
                yield said(" more")
            finally:
                if llm_request is not first_request[0]:  # the hedge (a copy of the request)
                    raise RuntimeError("close failed")

    store = MemoryStore()
    model = Gated()

    def on_hedge(event: RetryEvent) -> None:
        if event.kind == "hedge":
            gate.set()  # the first attempt and the hedge get their content in the same turn

    handler = RetryHandler(
        RetryPolicy.transient(
            hedge_after=0.01, rate_limit=RateLimit(max_concurrency=4), store=store, hooks=(on_hedge,)
        ),
        agent_name="edge",
    )
    add_retry_capabilities_to_agent(LlmAgent(name="edge", model=model), handler)
    req = request()
    first_request = [req]

    assert await texts(model, req, stream=True) == ["answer", " more"]
    assert handler.stats.hedges == 1
    assert store._slots == {}


async def test_the_circuits_probe_is_not_hedged_on_its_own_model():
    """One probe per scope: while a call is the half-open circuit's probe, a hedge on the same model
    would be a second request to a provider that may still be down."""
    import time

    store = MemoryStore()
    breaker = CircuitBreaker(failure_threshold=1, first_probe=1, cooldown=1, probe_jitter=0)
    primary, handler = hedging(hedge_after=0.02, breaker=breaker, store=store, timeout=5)
    key = handler.plan.keys("scripted/primary", "edge").circuit
    assert key is not None
    await store.record_failure(key, time.time() - 10, threshold=1, cooldown=1, hint=None, first_probe=1)
    primary.scripts.append([0.2, said("back")])
    assert await texts(primary) == ["back"]
    assert (len(primary.requests), handler.stats.hedges) == (1, 0)
    assert await texts(primary) == ["ok"]  # closed again: later calls hedge as before


async def test_a_retry_after_a_hedge_moved_the_call_to_the_next_model_waits_its_backoff():
    """Both attempts answered nothing; the hedge on the next model was first, so the call goes on
    there. Its retry is a retry like any other (the log says "Retrying in 1.0s"): it waits for it."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    primary, (backup,), handler = chain(hedge_after=0.02, max_retries=2, jitter=0)
    handler.sleep = sleep
    primary.scripts.append([0.1, nothing()])
    backup.scripts.extend([[nothing()], [nothing()], [said("third")]])
    assert await texts(primary) == ["third"]
    assert slept == [1.0, 2.0]
    assert handler.stats.slept == 3.0


async def test_a_hedge_that_cannot_be_built_leaves_the_first_attempt_to_answer_and_spends_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    """A hedge is an extra: when its private copy of the request cannot be made, the call is not
    failed (its first attempt may still answer), and the hedge's budget token and limiter ticket go back."""
    from adk_retry.adapter import _wrap

    def broken_copy(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot copy this request")

    monkeypatch.setattr(_wrap, "copy_of", broken_copy)
    store = MemoryStore()
    budget = RetryBudget(max_tokens=5.0)
    primary, (backup,), handler = chain(
        hedge_after=0.01, budget=budget, rate_limit=RateLimit(max_concurrency=4), store=store
    )
    primary.scripts.append([0.1, said("first")])
    assert await texts(primary) == ["first"]
    assert backup.requests == []
    stats = handler.stats
    assert (stats.attempts, stats.hedges, stats.successes) == (1, 0, 1)
    key = handler.plan.keys("scripted/primary", "edge").budget
    assert key is not None
    assert await store.tokens(key, max_tokens=5.0) == 5.0
    assert store._slots == {}  # the first attempt's slot and the hedge's both went back
    assert "Could not start a hedge on scripted/backup0" in caplog.text
