"""FaultServer's capacity modes: the token bucket, the outage window, the slow first token.

The gate's decisions are tables on an injected clock; the wire is checked
over real HTTP on 127.0.0.1 with small rates, never by sleeping out a wait.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import litellm
import pytest

from adk_retry.testing import Capacity, Fault, FaultServer, OutageWindow, SlowFirstToken
from adk_retry.testing.capacity import CapacityGate

BODY = {"model": "fault-model", "messages": [{"role": "user", "content": "hello"}]}


def gate_with(capacity: Capacity | None = None, outage: OutageWindow | None = None) -> CapacityGate:
    gate = CapacityGate()
    gate.set_capacity(capacity, now=0.0)
    gate.set_outage(outage, now=0.0)
    return gate


# -- decisions on an injected clock ----------------------------------------------------------


@pytest.mark.parametrize(
    ("arrivals", "expected"),
    [
        # burst 2, 1 req/s: two at once, the third waits for the refill at t=1.
        ([0.0, 0.0, 0.0], ["admitted", "admitted", "rate_limited"]),
        ([0.0, 0.0, 0.5, 1.0], ["admitted", "admitted", "rate_limited", "admitted"]),
        # The bucket never holds more than its burst, however long it rested.
        ([0.0, 10.0, 10.0, 10.0], ["admitted", "admitted", "admitted", "rate_limited"]),
        # Rejections take no token: a rejected caller does not push the next one back.
        (
            [0.0, 0.0, 0.1, 0.2, 0.3, 1.0],
            ["admitted", "admitted", "rate_limited", "rate_limited", "rate_limited", "admitted"],
        ),
    ],
)
def test_token_bucket_decisions(arrivals: list[float], expected: list[str]) -> None:
    gate = gate_with(Capacity(rate=1, burst=2))

    assert [gate.decide(now).outcome for now in arrivals] == expected


@pytest.mark.parametrize(
    ("rate", "now", "retry_after", "retry_after_ms"),
    [
        (40, 0.0, "1", "25"),  # 25 ms to the next token: whole seconds round up to 1
        (40, 0.01, "1", "15"),
        (0.4, 0.0, "3", "2500"),
        (1, 0.5, "1", "500"),
    ],
)
def test_rejection_hints(rate: float, now: float, retry_after: str, retry_after_ms: str) -> None:
    gate = gate_with(Capacity(rate=rate, burst=1))
    assert gate.decide(0.0).outcome == "admitted"

    decision = gate.decide(now)

    headers = dict(decision.headers)
    assert (decision.status, headers["Retry-After"], headers["retry-after-ms"]) == (429, retry_after, retry_after_ms)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert f"try again in {retry_after_ms}ms" in decision.message


def test_tokens_per_minute_limits_large_requests_first() -> None:
    gate = gate_with(Capacity(rate=100, burst=100, tokens_per_minute=600))  # 10 tokens a second

    assert gate.decide(0.0, tokens=500).outcome == "admitted"
    small_enough = gate.decide(0.0, tokens=100)
    too_many_now = gate.decide(0.0, tokens=100)
    too_large = gate.decide(0.0, tokens=601)

    assert small_enough.outcome == "admitted"
    assert too_many_now.outcome == "rate_limited"
    assert dict(too_many_now.headers)["retry-after-ms"] == "10000"  # 100 tokens at 10 a second
    assert too_large.outcome == "rate_limited"
    assert too_large.headers == ()
    assert "Request too large" in too_large.message
    assert gate.decide(10.0, tokens=100).outcome == "admitted"


@pytest.mark.parametrize(
    ("window", "now", "outcome"),
    [
        (OutageWindow(1.0, 4.0), 0.99, "admitted"),
        (OutageWindow(1.0, 4.0), 1.0, "unavailable"),
        (OutageWindow(1.0, 4.0), 3.99, "unavailable"),
        (OutageWindow(1.0, 4.0), 4.0, "admitted"),
        (OutageWindow(0.0, None), 1e6, "unavailable"),
    ],
)
def test_outage_window(window: OutageWindow, now: float, outcome: str) -> None:
    assert gate_with(outage=window).decide(now).outcome == outcome


def test_outage_comes_before_the_bucket_and_spends_none_of_it() -> None:
    gate = gate_with(Capacity(rate=1, burst=1), OutageWindow(0.0, 1.0, status=502, retry_after=2))

    during = gate.decide(0.5)

    assert (during.outcome, during.status, dict(during.headers)) == ("unavailable", 502, {"Retry-After": "2"})
    assert gate.decide(1.0).outcome == "admitted"


def test_end_outage_closes_the_window_at_that_time_and_cancels_a_future_one() -> None:
    gate = gate_with(outage=OutageWindow(0.0, None))
    gate.end_outage(now=2.5)
    assert gate.outage_times() == (0.0, 2.5)
    assert gate.decide(2.5).outcome == "admitted"

    gate.set_outage(OutageWindow(5.0, 6.0), now=10.0)
    gate.end_outage(now=12.0)
    assert gate.outage_times() is None


def test_slow_first_token_is_seeded_and_hits_about_p() -> None:
    def stalls(seed: int) -> list[float]:
        gate = CapacityGate()
        gate.set_slow_first_token(SlowFirstToken(p=0.1, seconds=2.0, seed=seed))
        return [gate.decide(0.0).stall for _ in range(2000)]

    first = stalls(7)

    assert first == stalls(7)
    assert first != stalls(8)
    assert set(first) == {0.0, 2.0}
    assert 0.07 < first.count(2.0) / len(first) < 0.13


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Capacity(rate=0), "Capacity.rate must be > 0"),
        (lambda: Capacity(rate=float("inf")), "Capacity.rate must be a finite number"),
        (lambda: Capacity(rate=40, burst=0), "Capacity.burst must be an int >= 1"),
        (lambda: Capacity(rate=40, burst=2.5), "Capacity.burst must be an int >= 1"),
        (lambda: Capacity(rate=40, tokens_per_minute=-1), "Capacity.tokens_per_minute must be > 0"),
        (lambda: OutageWindow(-1.0, 2.0), "OutageWindow.start must be >= 0"),
        (lambda: OutageWindow(3.0, 2.0), r"OutageWindow.end \(2.0\) must not be before start \(3.0\)"),
        (lambda: OutageWindow(0.0, 1.0, status=200), "OutageWindow.status must be an HTTP error status"),
        (lambda: SlowFirstToken(p=1.5, seconds=1.0), r"SlowFirstToken.p must be a probability in \[0, 1\]"),
        (lambda: SlowFirstToken(p=0.1, seconds=-1.0), "SlowFirstToken.seconds must be >= 0"),
        (lambda: SlowFirstToken(p=0.1, seconds=1.0, seed="x"), "SlowFirstToken.seed must be an int"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_refused_naming_the_field(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_server_methods_validate_too() -> None:
    server = FaultServer()
    with pytest.raises(ValueError, match=r"Capacity\.burst"):
        server.capacity(rate=40, burst=0)
    with pytest.raises(ValueError, match=r"OutageWindow\.end"):
        server.outage(2.0, 1.0)
    with pytest.raises(ValueError, match=r"SlowFirstToken\.p"):
        server.slow_first_token(p=-0.1, seconds=1.0)


# -- over real HTTP ------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, server: FaultServer) -> httpx.Response:
    return await client.post(f"{server.url}/chat/completions", json=BODY)


@pytest.mark.asyncio
async def test_capacity_answers_429_with_hints_beyond_the_burst() -> None:
    # 0.5 req/s: the bucket cannot refill within the test, so the count is exact.
    async with FaultServer(capacity=Capacity(rate=0.5, burst=3)) as server, httpx.AsyncClient() as client:
        answers = await asyncio.gather(*(post(client, server) for _ in range(5)))

        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 200, 200, 429, 429]
        limited = next(answer for answer in answers if answer.status_code == 429)
        assert limited.headers["retry-after"] == "2"
        assert 1000 < int(limited.headers["retry-after-ms"]) <= 2000
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        ok = next(answer for answer in answers if answer.status_code == 200)
        assert ok.headers["x-ratelimit-limit-requests"] == "3"
        assert (server.admitted, server.rate_limited, server.unavailable) == (3, 2, 0)
        assert sorted(server.request_outcomes) == ["admitted"] * 3 + ["rate_limited"] * 2
        assert len(server.request_times) == 5


@pytest.mark.asyncio
async def test_rejected_requests_do_not_consume_the_script() -> None:
    async with FaultServer(Fault.ok("first"), capacity=Capacity(rate=0.5, burst=1)) as server:
        async with httpx.AsyncClient() as client:
            first, second = await post(client, server), await post(client, server)

        assert first.json()["choices"][0]["message"]["content"] == "first"
        assert second.status_code == 429
        assert server.pending == 0
        server.capacity(None)
        async with httpx.AsyncClient() as client:
            assert (await post(client, server)).status_code == 200


@pytest.mark.asyncio
async def test_litellm_sees_a_rate_limit_error_with_the_hints() -> None:
    async with FaultServer(capacity=Capacity(rate=0.5, burst=1)) as server:
        await litellm.acompletion(
            model="openai/fault-model",
            api_base=server.url,
            api_key="sk-test",
            messages=BODY["messages"],
            max_retries=0,
            num_retries=0,
        )
        with pytest.raises(litellm.RateLimitError) as caught:
            await litellm.acompletion(
                model="openai/fault-model",
                api_base=server.url,
                api_key="sk-test",
                messages=BODY["messages"],
                max_retries=0,
                num_retries=0,
            )

    headers = caught.value.litellm_response_headers
    assert headers["retry-after"] == "2"
    assert "retry-after-ms" in headers


@pytest.mark.asyncio
async def test_outage_method_then_recover() -> None:
    async with FaultServer() as server, httpx.AsyncClient() as client:
        server.outage()
        down = await post(client, server)
        server.recover()
        up = await post(client, server)

        assert (down.status_code, up.status_code) == (503, 200)
        assert server.unavailable == 1
        assert server.admitted == 1
        times = server.outage_times
        assert times is not None
        assert times[1] is not None
        assert server.request_times[0] < times[1] <= server.request_times[1]


@pytest.mark.asyncio
async def test_outage_window_from_the_constructor_counts_from_start() -> None:
    # A window far in the future: the first request comes before it.
    async with FaultServer(outage=OutageWindow(60.0, 61.0)) as server, httpx.AsyncClient() as client:
        assert (await post(client, server)).status_code == 200
        times = server.outage_times
        assert times is not None
        assert 59.0 < times[0] - time.monotonic() <= 60.0


@pytest.mark.asyncio
async def test_slow_first_token_stalls_a_stream_before_its_first_chunk() -> None:
    async with FaultServer() as server:
        server.slow_first_token(p=1.0, seconds=0.2)
        started = time.perf_counter()
        response = await litellm.acompletion(
            model="openai/fault-model",
            api_base=server.url,
            api_key="sk-test",
            messages=BODY["messages"],
            stream=True,
            max_retries=0,
        )
        first = None
        async for _chunk in response:
            first = first or time.perf_counter() - started
        assert first is not None
        assert first >= 0.2
        server.slow_first_token(p=0.0, seconds=0.2)
        started = time.perf_counter()
        await litellm.acompletion(
            model="openai/fault-model", api_base=server.url, api_key="sk-test", messages=BODY["messages"], max_retries=0
        )
        assert time.perf_counter() - started < 0.2
        assert server.stalled == 1
        assert server.admitted == 2


@pytest.mark.asyncio
async def test_clear_forgets_the_counters() -> None:
    async with FaultServer(capacity=Capacity(rate=0.5, burst=1)) as server, httpx.AsyncClient() as client:
        await post(client, server)
        await post(client, server)
        server.clear()
        assert (server.admitted, server.rate_limited, server.request_outcomes) == (0, 0, [])


def test_cpu_seconds_of_the_server_thread() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FaultServer().cpu_seconds
    with FaultServer() as server:
        assert 0.0 <= server.cpu_seconds < time.process_time() + 1e-3
