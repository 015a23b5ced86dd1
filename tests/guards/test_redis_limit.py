"""Rate limits in ``RedisStore`` against a real ``redis-server``: the same numbers as ``MemoryStore``,
and two processes holding one limit together."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adk_retry.guards._store import MemoryStore
from tests.redis_server import RedisServer

pytest.importorskip("redis.asyncio")
from adk_retry.guards._redis import RedisStore

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisStore]:
    built = RedisStore.from_url(redis_server.url, prefix=prefix)
    yield built
    assert not built.degraded, "Redis did not answer: the test ran on the fallback"
    await built.aclose()


# One script of operations, run on both stores: every number must be the same float.
SCRIPT: list[tuple[str, dict[str, object]]] = [
    ("reserve", {"now": 100.0, "rate": 2.0, "burst": 2.0, "token_rate": 10.0, "cost": 4.0, "u": 0.3}),
    ("reserve", {"now": 100.0, "rate": 2.0, "burst": 2.0, "token_rate": 10.0, "cost": 4.0, "u": 0.3}),
    ("reserve", {"now": 100.1, "rate": 2.0, "burst": 2.0, "token_rate": 10.0, "cost": 25.0, "u": 0.3}),
    ("feedback", {"now": 100.2, "throttled": False, "sent_at": 100.0, "hint": None, "tokens": 7.5}),
    ("feedback", {"now": 100.3, "throttled": True, "sent_at": 100.1, "hint": 1.25, "tokens": -4.0}),
    ("reserve", {"now": 100.4, "rate": 2.0, "burst": 2.0, "token_rate": 10.0, "cost": 1.0, "u": 0.7}),
    ("reserve", {"now": 100.4, "rate": 2.0, "burst": 2.0, "token_rate": 0.0, "cost": 1.0, "u": 0.7, "max_wait": 0.5}),
    ("hold", {}),
    ("reserve", {"now": 100.5, "rate": 2.0, "burst": 2.0, "token_rate": 0.0, "cost": 0.0, "u": 0.0, "horizon": 0.1}),
] + [  # adaptive: slow start (long enough to reach its ceiling), its end, CUBIC: answers across windows, throttles
    step
    for i in range(40)
    for step in (
        ("reserve", {"now": 200.0 + 0.07 * i - 0.05, "rate": 0.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0,
                     "u": 0.0, "adaptive": True, "horizon": 0.1}),
        # two more callers asking (unanswered here): demand above twice the answered rate, slow start's ceiling
        ("reserve", {"now": 200.0 + 0.07 * i - 0.04, "rate": 0.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0,
                     "u": 0.0, "adaptive": True, "horizon": 0.1}),
        ("reserve", {"now": 200.0 + 0.07 * i - 0.03, "rate": 0.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0,
                     "u": 0.0, "adaptive": True, "horizon": 0.1}),
        ("feedback", {"now": 200.0 + 0.07 * i, "throttled": i % 13 == 12, "sent_at": 200.0 + 0.07 * i - 0.05,
                      "hint": None, "tokens": 0.0, "adaptive": True}),
    )
] + [
    ("reserve", {"now": 203.0, "rate": 0.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0, "u": 0.0, "adaptive": True}),
    ("reserve", {"now": 203.0, "rate": 0.0, "burst": 1.0, "token_rate": 0.0, "cost": 0.0, "u": 0.0, "adaptive": True}),
]  # fmt: skip


async def _play(store: MemoryStore | RedisStore) -> list[object]:
    out: list[object] = []
    for op, args in SCRIPT:
        a = dict(args)
        if op == "reserve":
            reservation = await store.reserve(
                "k",
                a.pop("now"),  # type: ignore[arg-type]
                max_wait=a.pop("max_wait", 60.0),  # type: ignore[arg-type]
                adaptive=a.pop("adaptive", False),  # type: ignore[arg-type]
                horizon=a.pop("horizon", 60.0),  # type: ignore[arg-type]
                **a,  # type: ignore[arg-type]
            )
            out.append((reservation.admitted, reservation.wait, reservation.interval))
        elif op == "feedback":
            adaptive = bool(a.pop("adaptive", False))
            out.append(
                await store.rate_feedback(
                    "k",
                    a.pop("now"),  # type: ignore[arg-type]
                    adaptive=adaptive,
                    rate=0.0 if adaptive else 2.0,  # adaptive with nothing configured: no ceiling
                    burst=2.0,
                    **a,  # type: ignore[arg-type]
                )
            )
        else:
            out.append(await store.hold("k"))
    return out


async def test_redis_computes_exactly_what_memory_computes(store: RedisStore) -> None:
    memory = await _play(MemoryStore())
    redis = await _play(store)
    assert redis == memory
    assert any(isinstance(value, float) and value > 0 for value in memory[8:])  # a rate was learnt


async def test_redis_slots(store: RedisStore) -> None:
    assert await store.acquire_slot("k", "a", 10.0, limit=2, lease=5.0)
    assert await store.acquire_slot("k", "b", 10.0, limit=2, lease=5.0)
    assert not await store.acquire_slot("k", "c", 10.0, limit=2, lease=5.0)
    await store.release_slot("k", "a")
    assert await store.acquire_slot("k", "c", 10.0, limit=2, lease=5.0)
    assert await store.acquire_slot("k", "d", 15.0, limit=2, lease=5.0)  # the leases ran out
    client = store.client
    assert await client.pttl(store.slots_key("k")) > 0
    await store.reserve(
        "k", 1.0, rate=1.0, burst=1.0, token_rate=0.0, cost=0.0, max_wait=1.0, u=0.0, adaptive=False, horizon=1.0
    )
    assert 0 < await client.pttl(store.rate_key("k")) <= store.ttl * 1000


WORKER = """
import asyncio, json, sys, time
from adk_retry import RateLimit, RetryHandler, RetryPolicy
from adk_retry.guards._redis import RedisStore

async def main():
    url, prefix, start, calls = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    store = RedisStore.from_url(url, prefix=prefix)
    limit = RateLimit(rpm=1200, key="shared")  # 20 requests/s for both processes together
    handler = RetryHandler(RetryPolicy(rate_limit=limit, store=store), agent_name="worker")
    sent = []

    async def call():
        sent.append(time.time())
        return "ok"

    await asyncio.sleep(max(0.0, start - time.time()))
    await asyncio.gather(*(handler(call) for _ in range(calls)))
    assert not store.degraded, "fell back to memory"
    await store.aclose()
    print(json.dumps(sent))

asyncio.run(main())
"""


async def test_two_processes_hold_one_limit_together(redis_server: RedisServer, prefix: str) -> None:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO)}
    start = time.time() + 4.0  # both are running (imports done) by then
    calls = 10
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WORKER,
            redis_server.url,
            prefix,
            repr(start),
            str(calls),
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    sent: list[float] = []
    for process in processes:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
        assert process.returncode == 0, stderr.decode()
        sent += json.loads(stdout)
    sent.sort()
    assert len(sent) == 2 * calls
    # One limit of 20/s for both: 20 calls take 19 intervals of 50 ms, 0.95 s (alone, each would take 0.45 s;
    # a process woken late by the busy machine shortens one interval, never the limit's schedule).
    assert sent[-1] - sent[0] >= 0.8
    # and no half-second holds more than its share (10) plus the burst of one and some scheduling slack.
    for first in sent:
        assert sum(first <= t < first + 0.5 for t in sent) <= 12


async def test_a_slot_released_while_redis_does_not_answer_is_released_there_once_it_answers(
    redis_server: RedisServer, prefix: str
) -> None:
    # A partition, not a restart: Redis keeps its data while this process cannot reach it. The slot
    # taken there before must not stay taken until its lease runs out (600 s by default) because
    # its release went to the fallback: a max_concurrency=1 scope would be shut for ten minutes.
    store = RedisStore.from_url(redis_server.url, prefix=prefix, recheck_after=0.2)
    admin = store.client
    try:
        assert await store.acquire_slot("k", "first", time.time(), limit=1, lease=600.0)
        await admin.execute_command("CLIENT", "PAUSE", "700", "ALL")  # nothing answers for 0.7 s
        await store.release_slot("k", "first")  # times out: goes to the fallback
        assert store.degraded
        await asyncio.sleep(0.8)  # the pause is over, and the back-off too
        assert await store.acquire_slot("k", "second", time.time(), limit=1, lease=600.0)
        assert not store.degraded
        assert await admin.zrange(store.slots_key("k"), 0, -1) == [b"second"]
    finally:
        await store.aclose()


async def test_a_slot_taken_in_the_fallback_and_released_after_redis_came_back_is_free_in_the_next_outage(
    redis_server: RedisServer, prefix: str
) -> None:
    store = RedisStore.from_url(redis_server.url, prefix=prefix, recheck_after=0.2)
    admin = store.client
    try:
        await admin.execute_command("CLIENT", "PAUSE", "700", "ALL")
        assert await store.acquire_slot("k", "during", time.time(), limit=1, lease=600.0)  # the fallback's
        assert store.degraded
        await asyncio.sleep(0.8)
        await store.release_slot("k", "during")  # Redis answers again: released there (where it never was)
        assert not store.degraded
        await admin.execute_command("CLIENT", "PAUSE", "700", "ALL")  # a second outage
        assert await store.acquire_slot("k", "next", time.time(), limit=1, lease=600.0)
        assert store.degraded
    finally:
        await asyncio.sleep(0.8)
        await store.aclose()
