"""FaultServer, driven over real HTTP by litellm (and the raw OpenAI SDK where litellm hides the wire)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import litellm
import openai
import pytest

from adk_retry.testing.faults import Fault
from adk_retry.testing.server import FaultServer

API_KEY = "sk-test"
HELLO = [{"role": "user", "content": "hello"}]

# Before the fix for BerriAI/litellm#33404, litellm's aiohttp transport ended a
# cut stream quietly and synthesised finish_reason "stop" (seen on 1.83.14).
LITELLM_RAISES_ON_CUT_STREAMS = tuple(int(part) for part in version("litellm").split(".")[:2]) >= (1, 106)


async def complete(server: FaultServer, **kwargs: Any) -> Any:
    """One litellm call with every retry layer off, so one fault is one request."""
    kwargs.setdefault("messages", HELLO)
    return await litellm.acompletion(
        model="openai/fault-model",
        api_base=server.url,
        api_key=API_KEY,
        num_retries=0,
        max_retries=0,
        **kwargs,
    )


async def stream(server: FaultServer, **kwargs: Any) -> list[Any]:
    response = await complete(server, stream=True, **kwargs)
    return [chunk async for chunk in response]


async def drain(response: Any, into: list[str]) -> None:
    async for chunk in response:
        into.append(chunk.choices[0].delta.content or "")


def contents(chunks: list[Any]) -> list[str]:
    """The non-empty content deltas, in order."""
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def finish_reasons(chunks: list[Any]) -> list[str]:
    return [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]


# -- normal answers -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_ok_is_a_complete_chat_completion(server: FaultServer) -> None:
    server.push(Fault.ok("hello there"))

    response = await complete(server)

    assert response.choices[0].message.content == "hello there"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "fault-model"
    assert response.usage.prompt_tokens > 0
    assert response.usage.completion_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


@pytest.mark.asyncio
async def test_ok_streams_up_to_four_word_chunks_that_reassemble(server: FaultServer) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    server.push(Fault.ok(text))

    chunks = await stream(server, stream_options={"include_usage": True})

    assert len(contents(chunks)) == 4
    assert "".join(contents(chunks)) == text
    assert finish_reasons(chunks) == ["stop"]
    assert any(getattr(chunk, "usage", None) and chunk.usage.prompt_tokens > 0 for chunk in chunks)
    assert server.requests[0]["stream_options"] == {"include_usage": True}


@pytest.mark.asyncio
async def test_ok_stream_uses_the_requested_chunk_count(server: FaultServer) -> None:
    server.push(Fault.ok("abcdef", chunks=3), Fault.ok("one two", chunks=2))

    assert contents(await stream(server)) == ["ab", "cd", "ef"]
    assert contents(await stream(server)) == ["one ", "two"]


@pytest.mark.asyncio
async def test_finish_sends_the_reason_with_null_content(server: FaultServer) -> None:
    server.push(Fault.finish("content_filter"), Fault.finish("length", "cut sh"))

    filtered = await complete(server)
    chunks = await stream(server)

    assert filtered.choices[0].finish_reason == "content_filter"
    assert filtered.choices[0].message.content is None
    assert finish_reasons(chunks) == ["length"]
    assert "".join(contents(chunks)) == "cut sh"


@pytest.mark.asyncio
async def test_tool_call_as_json(server: FaultServer) -> None:
    server.push(Fault.tool_call("get_weather", {"city": "Paris", "days": 3}, call_id="call_1"))

    response = await complete(server)

    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_1", "function", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}


@pytest.mark.asyncio
async def test_tool_call_streams_argument_deltas(server: FaultServer) -> None:
    server.push(Fault.tool_call("get_weather", {"city": "Paris", "days": 3}))

    chunks = await stream(server)

    deltas = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather"
    assert deltas[0].id.startswith("call_")
    assert len(deltas) > 2  # the arguments really arrive in pieces
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris", "days": 3}
    assert finish_reasons(chunks) == ["tool_calls"]


# -- broken answers -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_empty_choices(server: FaultServer) -> None:
    server.push(Fault.empty_choices(), Fault.empty_choices())

    response = await complete(server)
    chunks = await stream(server)

    assert response.choices == []
    assert contents(chunks) == []


@pytest.mark.asyncio
async def test_null_message_is_an_internal_server_error_for_litellm(server: FaultServer) -> None:
    server.push(Fault.null_message(), Fault.null_message())

    with pytest.raises(litellm.InternalServerError, match="Invalid response object"):
        await complete(server)
    assert contents(await stream(server)) == []


@pytest.mark.asyncio
async def test_malformed_json(server: FaultServer) -> None:
    server.push(Fault.malformed_json(), Fault.malformed_json())

    with pytest.raises(litellm.InternalServerError, match="Unterminated string"):
        await complete(server)
    with pytest.raises(litellm.exceptions.MidStreamFallbackError, match="Unterminated string"):
        await stream(server)
    assert len(server.requests) == 2


@pytest.mark.asyncio
async def test_rate_limit_with_retry_after_headers(server: FaultServer) -> None:
    server.push(Fault.http_error(429, retry_after=2, retry_after_ms=1500, headers={"x-ratelimit-remaining": "0"}))

    with pytest.raises(litellm.RateLimitError) as caught:
        await complete(server)

    error = caught.value
    assert error.status_code == 429
    # litellm swaps in its own httpx.Response; the upstream headers live here instead.
    headers = error.litellm_response_headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1500"
    assert headers["x-ratelimit-remaining"] == "0"
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_retry_after_may_be_an_http_date(server: FaultServer) -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    server.push(Fault.http_error(503, retry_after=date, message="overloaded"))

    with pytest.raises(litellm.ServiceUnavailableError, match="overloaded") as caught:
        await complete(server)
    assert caught.value.litellm_response_headers["retry-after"] == date


@pytest.mark.asyncio
async def test_bad_request_carries_an_openai_error_body(server: FaultServer) -> None:
    server.push(Fault.http_error(400, message="bad tool schema"))

    with pytest.raises(litellm.BadRequestError, match="bad tool schema"):
        await complete(server)


@pytest.mark.asyncio
async def test_default_fault_makes_a_full_outage() -> None:
    async with FaultServer(default=Fault.http_error(503)) as server:
        for _ in range(2):
            with pytest.raises(litellm.ServiceUnavailableError):
                await complete(server)
        assert len(server.requests) == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("streaming", [False, True])
async def test_close_connection(server: FaultServer, streaming: bool) -> None:
    server.push(Fault.close_connection())

    # litellm wraps the SDK's APIConnectionError as a 500 InternalServerError.
    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        await complete(server, stream=streaming)
    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_stream_cut_sends_chunks_then_drops_the_connection(server: FaultServer) -> None:
    server.push(Fault.stream_cut(after_chunks=2, text="one two three four"))
    client = openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=0)

    response = await client.chat.completions.create(model="fault-model", messages=HELLO, stream=True)

    received: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        await drain(response, received)
    await client.close()

    assert [part for part in received if part] == ["one ", "two "]


@pytest.mark.asyncio
async def test_stream_cut_through_litellm(server: FaultServer) -> None:
    server.push(Fault.stream_cut(after_chunks=2, text="one two three four"))

    chunks: list[Any] = []
    error: Exception | None = None
    try:
        async for chunk in await complete(server, stream=True):
            chunks.append(chunk)
    except Exception as exc:
        error = exc

    assert contents(chunks) == ["one ", "two "]
    if LITELLM_RAISES_ON_CUT_STREAMS:
        assert isinstance(error, litellm.exceptions.MidStreamFallbackError)
        assert finish_reasons(chunks) == []
    else:
        assert error is None
        assert finish_reasons(chunks) == ["stop"]  # the truncation is invisible


@pytest.mark.asyncio
async def test_stream_cut_on_a_plain_request_drops_the_connection(server: FaultServer) -> None:
    server.push(Fault.stream_cut())

    with pytest.raises(litellm.InternalServerError, match="Connection error"):
        await complete(server)


# -- timing -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delay_then_answers(server: FaultServer) -> None:
    server.push(Fault.delay(0.05), Fault.delay(0.01, then=Fault.http_error(429)))

    started = time.monotonic()
    response = await complete(server)
    assert time.monotonic() - started >= 0.05
    assert response.choices[0].message.content == "ok"
    with pytest.raises(litellm.RateLimitError):
        await complete(server)


@pytest.mark.asyncio
async def test_delay_is_cancelled_when_the_client_gives_up(server: FaultServer) -> None:
    answered = threading.Event()

    def answer(body: dict[str, Any]) -> Fault:
        answered.set()
        return Fault.ok()

    server.push(Fault.delay(0.3, then=Fault.reply(answer)))

    with pytest.raises(litellm.Timeout):
        await complete(server, timeout=0.05)
    await asyncio.sleep(0.4)

    assert not answered.is_set()


@pytest.mark.asyncio
async def test_stop_is_quick_with_a_delayed_request_pending() -> None:
    arrived = threading.Event()

    def hold(body: dict[str, Any]) -> Fault:
        arrived.set()
        return Fault.delay(30)

    server = FaultServer(Fault.reply(hold)).start()
    call = asyncio.create_task(complete(server, timeout=30))
    assert await asyncio.to_thread(arrived.wait, 5)

    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    assert time.monotonic() - started < 0.5

    with pytest.raises(litellm.InternalServerError):
        await call
    server.stop()  # idempotent


# -- scripting and records --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reply_decides_from_the_request_body(server: FaultServer) -> None:
    def weather_or_summary(body: dict[str, Any]) -> Fault:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Fault.ok(f"It is {json.loads(last['content'])['sky']} in Paris.")
        return Fault.tool_call("get_weather", {"city": "Paris"}, call_id="call_7")

    server.push(Fault.reply(weather_or_summary), Fault.reply(weather_or_summary))

    first = await complete(server)
    call = first.choices[0].message.tool_calls[0]
    tool_result = {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny"})}
    second = await complete(server, messages=[*HELLO, first.choices[0].message.model_dump(), tool_result])

    assert second.choices[0].message.content == "It is sunny in Paris."
    assert server.requests[1]["messages"][-1]["tool_call_id"] == "call_7"


@pytest.mark.asyncio
async def test_requests_headers_and_times_are_recorded_in_order(server: FaultServer) -> None:
    server.push(Fault.ok("a"), Fault.ok("b"))

    for word in ("first", "second"):
        await complete(server, messages=[{"role": "user", "content": word}])

    assert [body["messages"][0]["content"] for body in server.requests] == ["first", "second"]
    assert [body["model"] for body in server.requests] == ["fault-model", "fault-model"]
    assert [headers["authorization"] for headers in server.request_headers] == [f"Bearer {API_KEY}"] * 2
    first, second = server.request_times
    assert first <= second <= time.monotonic()


@pytest.mark.asyncio
async def test_default_answers_once_the_queue_is_empty() -> None:
    async with FaultServer(Fault.ok("scripted"), default=Fault.ok("fallback")) as server:
        answers = [(await complete(server)).choices[0].message.content for _ in range(3)]
    assert answers == ["scripted", "fallback", "fallback"]


def test_push_clear_and_pending() -> None:
    server = FaultServer(Fault.ok())
    server.push(*Fault.http_error(503).times(3))
    assert server.pending == 4

    server.clear()
    assert (server.pending, server.requests, server.request_headers, server.request_times) == (0, [], [], [])
    with pytest.raises(TypeError, match="expected Fault"):
        server.push(Fault.ok().times(2))  # type: ignore[arg-type]


def test_sync_use_with_litellm_completion() -> None:
    with FaultServer(Fault.ok("from a script")) as server:
        response = litellm.completion(
            model="openai/fault-model",
            api_base=server.url,
            api_key=API_KEY,
            messages=HELLO,
            num_retries=0,
            max_retries=0,
        )
    assert response.choices[0].message.content == "from a script"


def test_path_without_v1_and_invalid_bodies(server: FaultServer) -> None:
    base = server.url.removesuffix("/v1")

    answer = httpx.post(f"{base}/chat/completions", json={"messages": HELLO})
    rejected = httpx.post(f"{server.url}/chat/completions", content=b"not json")

    assert answer.json()["choices"][0]["message"]["content"] == "ok"
    assert rejected.status_code == 400
    assert rejected.json()["error"]["type"] == "invalid_request_error"
    assert len(server.requests) == 1  # an unreadable body is neither recorded nor consumes a fault


def test_binds_loopback_only(server: FaultServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/v1"
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        pytest.skip("needs Linux /proc/net to list listening sockets")

    port = f"{server.port:04X}"
    listening = [
        line.split()[1]
        for table in (tcp, Path("/proc/net/tcp6"))
        if table.exists()
        for line in table.read_text().splitlines()[1:]
        if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"  # 0A: LISTEN
    ]
    assert listening == [f"0100007F:{port}"]  # 127.0.0.1, little-endian; nothing on 0.0.0.0 or IPv6


def test_stop_is_idempotent_and_start_twice_fails() -> None:
    server = FaultServer().start()
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.url + "/chat/completions", json={"messages": HELLO})


async def test_stall_sends_its_first_chunks_then_nothing_until_the_stall_ends(server: FaultServer) -> None:
    server.push(Fault.stall(after_chunks=1, seconds=0.3, text="one two three"))
    client = openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=0)
    response = await client.chat.completions.create(model="fault-model", messages=HELLO, stream=True)
    arrivals: list[tuple[float, str]] = []
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    await client.close()
    assert [text for _, text in arrivals] == ["one ", "two ", "three"]
    assert arrivals[1][0] - arrivals[0][0] >= 0.25, "the rest came before the stall ended"
    assert server.client_closes == 0


async def test_stall_counts_a_client_that_hangs_up_mid_stall(server: FaultServer) -> None:
    server.push(Fault.stall(after_chunks=1, seconds=30.0))
    client = openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=0)
    response = await client.chat.completions.create(model="fault-model", messages=HELLO, stream=True)
    await anext(aiter(response))
    await response.close()
    await client.close()
    for _ in range(100):
        if server.client_closes:
            break
        await asyncio.sleep(0.02)
    assert server.client_closes == 1


async def test_stall_delays_a_whole_answer(server: FaultServer) -> None:
    server.push(Fault.stall(seconds=0.2, text="all at once"))
    started = time.monotonic()
    answer = await complete(server)
    assert time.monotonic() - started >= 0.15
    assert answer.choices[0].message.content == "all at once"
