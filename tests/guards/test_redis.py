"""``RedisStore`` against a real ``redis-server``: TTLs, atomicity across
clients and processes, and failing open while Redis is down.

The semantics shared with ``MemoryStore`` are tested in ``tests/guards/test_store.py``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from adk_retry.guards._store import CircuitView, MemoryStore
from tests.redis_server import RedisServer, free_port

redis_asyncio = pytest.importorskip("redis.asyncio")
redis_sync = pytest.importorskip("redis")
from adk_retry.guards._redis import RedisStore  # noqa: E402

pytestmark = pytest.mark.redis

MakeStore = Callable[..., RedisStore]

KEY = "openai/gpt-4o"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def stores(redis_server: RedisServer, prefix: str) -> AsyncIterator[list[RedisStore]]:
    """Stores to close after the test; a test appends the ones it builds."""
    built: list[RedisStore] = []
    yield built
    for store in built:
        await store.aclose()


@pytest.fixture
def make_store(redis_server: RedisServer, prefix: str, stores: list[RedisStore]) -> MakeStore:
    """Build a store on a new client (for this test's prefix; closed after the test)."""

    def build(url: str | None = None, **kwargs: Any) -> RedisStore:
        kwargs.setdefault("prefix", prefix)
        store = RedisStore.from_url(url or redis_server.url, **kwargs)
        stores.append(store)
        return store

    return build


def warnings_and_infos(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    records = [record for record in caplog.records if record.name == "adk_retry.redis"]
    return (
        [record.getMessage() for record in records if record.levelno == logging.WARNING],
        [record.getMessage() for record in records if record.levelno == logging.INFO],
    )


# -- configuration ------------------------------------------------------------------


def test_from_url_uses_short_timeouts_and_no_client_retries() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:6379/0")
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["socket_timeout"] == 0.5
    assert kwargs["retry"].get_retries() == 0
    assert (store.prefix, store.ttl, store.recheck_after, store.degraded) == ("adk_retry:", 3600.0, 1.0, False)
    assert isinstance(store.fallback, MemoryStore)
    custom = RedisStore.from_url("redis://127.0.0.1:6379/0", socket_timeout=2.0)
    assert custom.client.connection_pool.connection_kwargs["socket_timeout"] == 2.0


@pytest.mark.parametrize(
    "url",
    ["localhost:6379", "http://127.0.0.1:6379", "", "redis://user:hunter2@cache:notaport/0"],
)
def test_from_url_rejects_a_malformed_url_naming_it(url: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as caught:
        RedisStore.from_url(url)
    message = str(caught.value)
    assert "hunter2" not in message
    assert (url.replace("hunter2", "***") if url else "''") in message


def test_rejects_a_non_positive_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        RedisStore.from_url("redis://127.0.0.1:6379/0", ttl=0)


def test_adk_retry_imports_without_redis() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import adk_retry, adk_retry.store\n"
        "try:\n"
        "    import adk_retry.guards._redis\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    import subprocess

    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'adk-retry[redis]'" in done.stdout


# -- keys and TTLs -----------------------------------------------------------------------


async def test_every_key_is_prefixed_and_expires(make_store: MakeStore, prefix: str) -> None:
    store = make_store(ttl=60.0)
    client = store.client
    await store.take_token(KEY, max_tokens=3)
    await store.refund(KEY, 0.5, max_tokens=3)
    await store.record_failure(KEY, 1000.0, threshold=5, cooldown=10.0, hint=None)
    keys = sorted(key.decode() for key in await client.keys(f"{prefix}*"))
    assert keys == [f"{prefix}budget:{KEY}", f"{prefix}circuit:{KEY}"]
    for key in keys:
        assert 0 < await client.ttl(key) <= 60


async def test_a_circuit_lives_at_least_twice_its_open_time(make_store: MakeStore) -> None:
    store = make_store(ttl=60.0)
    key = store.circuit_key(KEY)
    await store.record_failure(KEY, 1000.0, threshold=1, cooldown=300.0, hint=None)
    assert 599 <= await store.client.ttl(key) <= 600
    await store.record_failure(KEY, 1000.0, threshold=1, cooldown=300.0, hint=1000.0)
    assert 1999 <= await store.client.ttl(key) <= 2000
    # A later, shorter opening never shortens the key's life.
    await store.record_failure(KEY, 1000.0, threshold=1, cooldown=10.0, hint=None)
    assert await store.client.ttl(key) >= 1999
    assert (await store.admit(KEY, 3000.0, probe_timeout=30.0)).allowed
    assert await store.client.ttl(key) >= 1999


async def test_abandoned_state_expires(make_store: MakeStore) -> None:
    store = make_store(ttl=0.2)
    assert await store.take_token(KEY, max_tokens=1)
    assert not await store.take_token(KEY, max_tokens=1)
    await store.record_failure(KEY, 1000.0, threshold=5, cooldown=0.05, hint=None)
    await asyncio.sleep(0.35)
    assert await store.tokens(KEY, max_tokens=1) == 1.0
    assert await store.admit(KEY, 1000.0, probe_timeout=30.0) == CircuitView("closed", 0.0, 0, True)


async def test_works_with_a_client_that_decodes_responses(redis_server: RedisServer, prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisStore(client, prefix=prefix)
    try:
        assert await store.take_token(KEY, max_tokens=2)
        assert await store.tokens(KEY, max_tokens=2) == 1.0
        _, view = await store.record_failure(KEY, 1000.0, threshold=1, cooldown=10.0, hint=None)
        assert view == CircuitView("open", 1010.0, 1)
        assert await store.admit(KEY, 1010.0, probe_timeout=30.0) == CircuitView("half_open", 1010.0, 1, True)
        assert await store.record_success(KEY) == ("half_open", CircuitView("closed", 0.0, 0))
        assert not store.degraded
    finally:
        await store.aclose()


# -- atomicity across clients and processes -------------------------------------------


async def test_two_clients_never_overspend_a_budget(make_store: MakeStore) -> None:
    first = make_store()
    second = make_store()
    assert first.client is not second.client
    results = await asyncio.gather(*((first, second)[i % 2].take_token(KEY, max_tokens=5) for i in range(20)))
    assert results.count(True) == 5
    assert await first.tokens(KEY, max_tokens=5) == 0.0


async def test_two_clients_never_both_probe(make_store: MakeStore) -> None:
    first = make_store()
    second = make_store()
    await first.record_failure(KEY, 1000.0, threshold=1, cooldown=10.0, hint=None)
    views = await asyncio.gather(*((first, second)[i % 2].admit(KEY, 1010.0, probe_timeout=30.0) for i in range(10)))
    assert [view.allowed for view in views].count(True) == 1


async def test_failures_in_one_process_open_the_circuit_for_another(
    redis_server: RedisServer, make_store: MakeStore, prefix: str
) -> None:
    store = make_store()
    assert (await store.admit(KEY, time.time(), probe_timeout=30.0)).allowed
    code = (
        "import asyncio, sys, time\n"
        "from adk_retry.guards._redis import RedisStore\n"
        "async def main():\n"
        "    store = RedisStore.from_url(sys.argv[1], prefix=sys.argv[2])\n"
        "    threshold = int(sys.argv[3])\n"
        "    for _ in range(threshold):\n"
        "        await store.record_failure(\n"
        "            'openai/gpt-4o', time.time(), threshold=threshold, cooldown=60.0, hint=None\n"
        "        )\n"
        "    assert not store.degraded, 'the other process fell back to memory'\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, redis_server.url, prefix, "3",
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()

    view = await store.admit(KEY, time.time(), probe_timeout=30.0)
    assert view.state == "open"
    assert not view.allowed
    assert view.failures == 3
    assert view.open_until > time.time() + 50


async def test_a_waiter_sees_another_processes_probe_succeed_at_its_next_poll(
    redis_server: RedisServer, make_store: MakeStore, prefix: str
) -> None:
    """One probe per scope across processes; the waiters of the others learn its outcome by polling."""
    from adk_retry import CircuitBreaker, RetryHandler, RetryPolicy

    store = make_store()
    breaker = CircuitBreaker(failure_threshold=1, first_probe=0.2, cooldown=0.2, probe_jitter=0, key="shared")
    await store.record_failure("key:shared", time.time(), threshold=1, cooldown=0.2, hint=None, first_probe=0.2)
    requests = []

    async def call() -> str:
        requests.append(time.monotonic())
        return "ok"

    guard = RetryHandler(RetryPolicy.transient(timeout=10.0, breaker=breaker, store=store, max_retries=0))
    # The other process takes the probe as soon as the circuit is half-open, holds it 0.5 s, then succeeds.
    code = (
        "import asyncio, sys, time\n"
        "from adk_retry.guards._redis import RedisStore\n"
        "async def main():\n"
        "    store = RedisStore.from_url(sys.argv[1], prefix=sys.argv[2])\n"
        "    while not (await store.admit('key:shared', time.time(), probe_timeout=30.0)).allowed:\n"
        "        await asyncio.sleep(0.005)\n"
        "    print('probing', flush=True)\n"
        "    await asyncio.sleep(0.5)\n"
        "    await store.record_success('key:shared')\n"
        "    print(time.monotonic(), flush=True)\n"
        "    assert not store.degraded\n"
        "    await store.aclose()\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, redis_server.url, prefix,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.strip() == b"probing", line
    # The other process holds the probe: this one's calls wait, polling at the probe schedule.
    waiters = [asyncio.create_task(guard(call)) for _ in range(3)]
    closed_at = float((await asyncio.wait_for(process.stdout.readline(), timeout=60)).strip())
    assert await asyncio.gather(*waiters) == ["ok"] * 3
    await process.wait()
    assert min(requests) >= closed_at, "no request while the other process's probe ran"
    assert max(requests) - closed_at < 0.2 + 0.15, "seen at the next poll (one probe interval)"


# -- failing open while Redis is down ------------------------------------------------


async def test_a_closed_port_falls_back_to_memory(make_store: MakeStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    fallback = MemoryStore()
    store = make_store(f"redis://127.0.0.1:{free_port()}/0", fallback=fallback)
    started = time.monotonic()
    assert await store.take_token(KEY, max_tokens=2)
    assert store.degraded
    assert await fallback.tokens(KEY, max_tokens=2) == 1.0
    assert await store.record_failure(KEY, 1000.0, threshold=1, cooldown=10.0, hint=None) == (
        "closed",
        CircuitView("open", 1010.0, 1),
    )
    assert not (await store.admit(KEY, 1001.0, probe_timeout=30.0)).allowed
    assert await store.record_success(KEY) == ("half_open", CircuitView("closed", 0.0, 0))
    assert time.monotonic() - started < 2.0
    warnings, infos = warnings_and_infos(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith("Redis state store unreachable (ConnectionError: ")
    assert warnings[0].endswith("using this process's memory until it answers again")
    assert infos == []


async def test_a_hanging_redis_costs_one_timeout_then_nothing(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    with socket.socket() as black_hole:  # accepts connections into its backlog, never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        url = f"redis://127.0.0.1:{black_hole.getsockname()[1]}/0"
        store = make_store(url)
        started = time.monotonic()
        assert await store.take_token(KEY, max_tokens=3)
        first = time.monotonic() - started
        for _ in range(10):
            await store.take_token(KEY, max_tokens=3)
            await store.admit(KEY, 1000.0, probe_timeout=30.0)
        total = time.monotonic() - started
    assert 0.3 < first < 1.5  # the 0.5 s socket timeout, once
    assert total - first < 0.2  # the others skip Redis during the back-off
    assert store.degraded
    warnings, _ = warnings_and_infos(caplog)
    assert len(warnings) == 1
    assert "TimeoutError" in warnings[0]


async def test_outage_and_recovery(tmp_path: Path, make_store: MakeStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adk_retry")
    server = RedisServer(tmp_path)
    server.start()
    try:
        store = make_store(server.url, recheck_after=0.5)
        assert await store.take_token(KEY, max_tokens=2)
        assert await store.tokens(KEY, max_tokens=2) == 1.0
        assert not store.degraded

        server.stop()
        started = time.monotonic()
        assert await store.take_token(KEY, max_tokens=2)  # the fallback's bucket starts full
        assert store.degraded
        assert await store.take_token(KEY, max_tokens=2)
        assert not await store.take_token(KEY, max_tokens=2)
        assert (await store.admit(KEY, 1000.0, probe_timeout=30.0)).allowed
        await asyncio.sleep(0.55)  # past the back-off: Redis is tried again, and is still down
        assert await store.tokens(KEY, max_tokens=2) == 0.0
        assert time.monotonic() - started < 2.0 + 0.55
        warnings, infos = warnings_and_infos(caplog)
        assert len(warnings) == 1
        assert infos == []

        server.start()  # same port, empty (no persistence)
        assert await store.tokens(KEY, max_tokens=2) == 0.0  # still inside the back-off: memory
        assert store.degraded
        await asyncio.sleep(0.55)
        assert await store.tokens(KEY, max_tokens=2) == 2.0  # Redis again
        assert not store.degraded
        warnings, infos = warnings_and_infos(caplog)
        assert len(warnings) == 1
        assert len(infos) == 1
        assert "answers again" in infos[0]

        server.stop()  # a second outage: a second warning, and the same memory as in the first
        assert await store.tokens(KEY, max_tokens=2) == 0.0
        assert store.degraded
        warnings, infos = warnings_and_infos(caplog)
        assert len(warnings) == 2
        assert len(infos) == 1
    finally:
        server.stop()


# -- through the real stack --------------------------------------------------------------


@pytest.mark.e2e
async def test_a_breaker_shared_through_redis_stops_a_second_worker(
    make_store: MakeStore, server: Any, make_model: Any
) -> None:
    """Two workers (own handlers, own Redis clients) share one circuit: A's outage fails B fast."""
    from google.adk.agents import LlmAgent

    from adk_retry import CircuitBreaker, CircuitOpenError, RetryHandler, RetryPolicy, add_retry_capabilities_to_agent
    from adk_retry.testing import Fault, no_waits
    from adk_retry.testing.turns import run_turn

    def worker(name: str) -> LlmAgent:
        policy = RetryPolicy(
            retry_on="transient", max_retries=2, breaker=CircuitBreaker(failure_threshold=3), store=make_store()
        )
        agent = LlmAgent(name=name, model=make_model())
        add_retry_capabilities_to_agent(agent, RetryHandler(policy, agent_name=name))
        return agent

    first, second = worker("worker_a"), worker("worker_b")
    server.push(*Fault.http_error(503).times(3))
    with no_waits():
        with pytest.raises(Exception, match=r"503|Service Unavailable|ServiceUnavailable"):
            await run_turn(first)
        with pytest.raises(CircuitOpenError):
            await run_turn(second)
    assert len(server.requests) == 3, "worker B never reached the provider"


# -- any event loop, any thread ------------------------------------------------------------


def no_store_warnings(caplog: pytest.LogCaptureFixture) -> None:
    warnings, _ = warnings_and_infos(caplog)
    assert warnings == [], "the store fell back to memory"


def test_one_store_serves_two_asyncio_runs(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each asyncio.run() is a new loop; the first one's connections died with it."""
    caplog.set_level(logging.INFO, logger="adk_retry")
    store = RedisStore.from_url(redis_server.url, prefix=prefix)

    async def spend() -> tuple[bool, CircuitView]:
        return await store.take_token(KEY, max_tokens=3), await store.admit(KEY, 1000.0, probe_timeout=30.0)

    try:
        assert asyncio.run(spend()) == (True, CircuitView("closed", 0.0, 0, True))
        assert asyncio.run(spend()) == (True, CircuitView("closed", 0.0, 0, True))
        assert not store.degraded
        assert asyncio.run(store.tokens(KEY, max_tokens=3)) == 1.0
        # In Redis itself, not in the fallback's memory.
        assert asyncio.run(store.fallback.tokens(KEY, max_tokens=3)) == 3.0
        no_store_warnings(caplog)
    finally:
        asyncio.run(store.aclose())


def test_a_closed_loops_client_is_dropped_when_the_next_loop_comes(redis_server: RedisServer, prefix: str) -> None:
    store = RedisStore.from_url(redis_server.url, prefix=prefix)
    try:
        for _ in range(5):
            asyncio.run(store.refund(KEY, 1.0, max_tokens=3))
        assert len(store._clients) == 1  # only the latest loop's; no client kept per turn
    finally:
        asyncio.run(store.aclose())
    assert store._clients == {}


def test_one_store_serves_two_threads_at_once(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two threads, each with its own loop, use the store at the same time and share one bucket."""
    caplog.set_level(logging.INFO, logger="adk_retry")
    store = RedisStore.from_url(redis_server.url, prefix=prefix)
    start = threading.Barrier(2)
    taken: list[bool] = []
    errors: list[BaseException] = []

    async def spend() -> None:
        start.wait(timeout=10)
        for _ in range(10):
            taken.append(await store.take_token(KEY, max_tokens=15))
            await store.admit(KEY, 1000.0, probe_timeout=30.0)

    def worker() -> None:
        try:
            asyncio.run(spend())
        except BaseException as exc:  # surfaced below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(2)]  # a hung one must not hang pytest
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert errors == []
        assert len(taken) == 20
        assert taken.count(True) == 15  # one bucket in Redis, never overspent
        assert not store.degraded
        no_store_warnings(caplog)
    finally:
        asyncio.run(store.aclose())


def test_a_given_client_is_copied_per_loop_with_its_settings(redis_server: RedisServer, prefix: str) -> None:
    client = redis_asyncio.Redis.from_url(redis_server.url, socket_timeout=1.5, decode_responses=True)
    store = RedisStore(client, prefix=prefix)

    async def use() -> Any:
        assert await store.take_token(KEY, max_tokens=2)
        return store._redis()

    try:
        first, second = asyncio.run(use()), asyncio.run(use())
        assert first is not second
        assert client not in (first, second)
        for built in (first, second):
            assert built.connection_pool is not client.connection_pool
            assert built.connection_pool.connection_kwargs["socket_timeout"] == 1.5
            assert built.connection_pool.connection_kwargs["decode_responses"] is True
        assert not store.degraded
    finally:
        asyncio.run(store.aclose())


def test_rejects_a_client_that_is_not_one() -> None:
    with pytest.raises(TypeError, match=r"client must be a redis\.asyncio\.Redis"):
        RedisStore("redis://127.0.0.1:6379/0")  # type: ignore[arg-type]


async def test_an_error_that_is_not_a_redis_error_fails_open_too(
    redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What a connection left on a closed loop raised: a RuntimeError, not a RedisError."""
    caplog.set_level(logging.INFO, logger="adk_retry")

    class LoopBound(redis_asyncio.Redis):  # type: ignore[misc]
        async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("Event loop is closed")

    store = RedisStore(LoopBound.from_url(redis_server.url), prefix=prefix)
    try:
        assert await store.take_token(KEY, max_tokens=2)
        assert (await store.admit(KEY, 1000.0, probe_timeout=30.0)).allowed
        assert store.degraded
        warnings, _ = warnings_and_infos(caplog)
        assert warnings == [
            "Redis state store unreachable (RuntimeError: Event loop is closed): "
            "using this process's memory until it answers again"
        ]
    finally:
        await store.aclose()


async def test_cancellation_is_not_a_store_error(redis_server: RedisServer, prefix: str) -> None:
    class Cancelling(redis_asyncio.Redis):  # type: ignore[misc]
        async def evalsha(self, *args: Any, **kwargs: Any) -> Any:
            raise asyncio.CancelledError

    store = RedisStore(Cancelling.from_url(redis_server.url), prefix=prefix)
    try:
        with pytest.raises(asyncio.CancelledError):
            await store.take_token(KEY, max_tokens=2)
        assert not store.degraded
        assert await store.fallback.tokens(KEY, max_tokens=2) == 2.0  # nothing spent in its place
    finally:
        await store.aclose()


# -- key names -----------------------------------------------------------------------------


async def test_keys_name_the_kind_once(make_store: MakeStore, prefix: str) -> None:
    """Through a handler: the scope key under the store's own ``budget:`` / ``circuit:`` namespace."""
    from adk_retry import CircuitBreaker, RetryBudget, RetryHandler, RetryPolicy

    store = make_store()
    policy = RetryPolicy(
        retry_on="transient",
        max_retries=1,
        budget=RetryBudget(max_tokens=3, key="shared"),
        breaker=CircuitBreaker(scope="agent", failure_threshold=5),
        store=store,
    )

    async def no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    handler = RetryHandler(policy, agent_name="planner", sleep=no_sleep)

    async def down() -> str:
        raise ConnectionResetError("down")  # transient: the breaker counts it

    with pytest.raises(ConnectionResetError, match="down"):
        await handler(down)
    keys = sorted(key.decode() for key in await store.client.keys(f"{prefix}*"))
    assert keys == [f"{prefix}budget:key:shared", f"{prefix}circuit:agent:planner"]
    assert await store.client.get(f"{prefix}budget:key:shared") == b"2"
    assert await store.client.hget(f"{prefix}circuit:agent:planner", "failures") == b"2"


# -- ADK's synchronous Runner.run(): a new thread and event loop every turn -------------------


def guarded_sync_runner(model: Any, store: RedisStore, **policy: Any) -> Any:
    """An InMemoryRunner over an agent whose handler has a breaker and a budget on ``store``."""
    from google.adk.agents import LlmAgent
    from google.adk.runners import InMemoryRunner

    from adk_retry import CircuitBreaker, RetryBudget, RetryHandler, RetryPolicy, add_retry_capabilities_to_agent

    retry_policy = RetryPolicy(
        retry_on="transient",
        max_retries=2,
        breaker=CircuitBreaker(failure_threshold=3),
        budget=RetryBudget(max_tokens=5, token_ratio=0.5),
        store=store,
        **policy,
    )
    agent = LlmAgent(name="sync_agent", model=model)
    add_retry_capabilities_to_agent(agent, RetryHandler(retry_policy, agent_name="sync_agent"))
    return InMemoryRunner(agent=agent, app_name="sync_app")


def sync_turn(runner: Any, session_id: str, message: str = "hello") -> str:
    """One turn through ``Runner.run()`` (which runs it on a thread and loop of its own); the final text."""
    from google.genai import types

    events = runner.run(
        user_id="user", session_id=session_id, new_message=types.Content(role="user", parts=[types.Part(text=message)])
    )
    return "".join(
        part.text
        for event in events
        if not event.partial and event.content and event.content.parts
        for part in event.content.parts
        if part.text
    )


def new_session(runner: Any) -> str:
    session = asyncio.run(runner.session_service.create_session(app_name="sync_app", user_id="user"))
    session_id: str = session.id
    return session_id


@pytest.mark.e2e
def test_sync_runner_turns_share_state_through_redis(
    redis_server: RedisServer, prefix: str, server: Any, make_model: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Two Runner.run() turns, each a 503 then an answer: both retried, the budget and circuit in Redis."""
    from adk_retry.testing import Fault, no_waits

    caplog.set_level(logging.INFO, logger="adk_retry")
    store = RedisStore.from_url(redis_server.url, prefix=prefix)
    runner = guarded_sync_runner(make_model(), store)
    bucket = f"{prefix}budget:model:openai/fault-model"
    try:
        session_id = new_session(runner)
        with no_waits():
            server.push(Fault.http_error(503), Fault.ok("first"))
            assert sync_turn(runner, session_id) == "first"
            server.push(Fault.http_error(503), Fault.ok("second"))
            assert sync_turn(runner, session_id) == "second"
        assert len(server.requests) == 4
        assert not store.degraded
        no_store_warnings(caplog)
        # Each turn spent a token for its retry and refunded half of one: 5 - 1 + 0.5 - 1 + 0.5.
        assert asyncio.run(store.tokens("model:openai/fault-model", max_tokens=5)) == 4.0
        with redis_sync.Redis.from_url(redis_server.url) as client:
            assert client.keys(f"{prefix}*") == [bucket.encode()]  # each success deleted the circuit's key
            assert client.get(bucket) == b"4"
    finally:
        asyncio.run(runner.close())
        asyncio.run(store.aclose())


@pytest.mark.e2e
def test_sync_runner_survives_a_redis_that_dies_and_comes_back(
    tmp_path: Path, server: Any, make_model: Any, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis is killed in the middle of a turn (between its failed attempt and the retry): every turn
    still answers, one warning for the outage, and once Redis is back the store shares state again."""
    from adk_retry.testing import Fault, no_waits

    caplog.set_level(logging.INFO, logger="adk_retry")
    redis = RedisServer(tmp_path)
    redis.start()
    store = RedisStore.from_url(redis.url, prefix=prefix, recheck_after=0.0)
    killed = threading.Event()

    def kill_redis_at_the_first_retry(event: Any) -> None:
        if event.kind == "retry" and not killed.is_set():
            killed.set()
            redis.stop()

    runner = guarded_sync_runner(make_model(), store, hooks=(kill_redis_at_the_first_retry,))
    try:
        session_id = new_session(runner)
        with no_waits():
            server.push(Fault.ok("before"))
            assert sync_turn(runner, session_id) == "before"
            assert not store.degraded

            server.push(Fault.http_error(503), Fault.ok("during"))  # Redis dies at the retry
            assert sync_turn(runner, session_id) == "during"
            assert store.degraded
            server.push(Fault.http_error(503), Fault.ok("still down"))
            assert sync_turn(runner, session_id) == "still down"
            warnings, infos = warnings_and_infos(caplog)
            assert len(warnings) == 1, warnings
            assert warnings[0].startswith("Redis state store unreachable (ConnectionError: ")
            assert infos == []

            redis.start()  # same port, empty (no persistence)
            server.push(Fault.http_error(503), Fault.ok("after"))
            assert sync_turn(runner, session_id) == "after"
        assert not store.degraded
        warnings, infos = warnings_and_infos(caplog)
        assert len(warnings) == 1
        assert len(infos) == 1
        assert "answers again" in infos[0]
        # The last turn's retry spent a token in the new Redis, and its success refunded half of one.
        assert asyncio.run(store.tokens("model:openai/fault-model", max_tokens=5)) == 4.5
        assert len(server.requests) == 7
    finally:
        asyncio.run(runner.close())
        asyncio.run(store.aclose())
        redis.stop()


def test_a_client_that_cannot_be_copied_is_used_as_it_is(redis_server: RedisServer, prefix: str) -> None:
    """A cluster client has no single connection pool to copy: one loop at a time uses it, and any
    error it raises from another loop fails open instead of failing the call."""

    class Wrapped:  # stands in for a RedisCluster: register_script, but not a redis.asyncio.Redis
        def __init__(self) -> None:
            self.inner = redis_asyncio.Redis.from_url(redis_server.url)

        def register_script(self, script: str) -> Any:
            return self.inner.register_script(script)

        async def evalsha(self, *args: Any) -> Any:
            return await self.inner.evalsha(*args)

        async def aclose(self) -> None:
            await self.inner.aclose()

    store = RedisStore(Wrapped(), prefix=prefix)  # type: ignore[arg-type]
    assert asyncio.run(store.take_token(KEY, max_tokens=3))
    assert asyncio.run(store.take_token(KEY, max_tokens=3))  # another loop: fails open, never raises
    asyncio.run(store.aclose())
