"""Sections 6-9: an overloaded provider (issue 11), on the real stack (LiteLlm -> litellm -> SDK -> HTTP).

Four scenarios, each against :class:`~adk_retry.testing.FaultServer`'s capacity modes:

- ``rate``: a provider admitting ``rate`` requests/s (burst ``burst``), 429 with hints beyond;
  ``callers`` concurrent callers make ``calls_each`` calls one after the other.
- ``outage``: every request 503 for ``outage_seconds``, then healthy; each caller starts a call
  at most every second.
- ``tail``: a fraction of the requests stalls before its first chunk (streams): the case for hedging.
- ``fallback``: the primary is down for the whole run, a second server is healthy.

A configuration is a :class:`Variant`: a name and a function that builds the call path
(a ``generate_content_async``-like callable, :data:`bench.fakes.Generate`) from a
:class:`Target` (the servers' URLs, primary first, and the provider's capacity). To add one,
say adk_retry's limiter or hedging, append a ``Variant`` to :func:`variants` (or pass your
own list to :func:`measure_overload`); ``scenarios`` says which tables it joins.

The callers, the servers and the client share one process and two shared cores: every
figure is noisy, and rows are measured one after the other, not interleaved.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse

from adk_retry import RetryPolicy
from adk_retry.testing import Fault, FaultServer
from bench import features
from bench.fakes import Generate, answered, make_request, with_retry
from bench.stack import MODEL
from bench.tables import Section, fmt

__all__ = [
    "ALL",
    "FALLBACK",
    "OUTAGE",
    "RATE",
    "TAIL",
    "Overload",
    "OverloadSizes",
    "Target",
    "Variant",
    "measure_overload",
    "variants",
]

RATE, OUTAGE, TAIL, FALLBACK = "rate", "outage", "tail", "fallback"
ALL = frozenset({RATE, OUTAGE, TAIL, FALLBACK})


@dataclass(frozen=True)
class OverloadSizes:
    """How big each scenario is; :data:`FULL_OVERLOAD` is issue 11's, :data:`SMOKE_OVERLOAD` a few seconds."""

    rate: float = 40.0
    burst: int = 5
    callers: int = 80
    calls_each: int = 5
    outage_callers: int = 40
    outage_seconds: float = 4.0
    outage_run: float = 12.0
    """Seconds the outage scenario lasts, outage included: callers stop starting calls after it."""
    outage_phase: float = 1.0
    """Seconds over which the outage's callers start their first calls (seeded random offsets; 0: all at once).

    Independent agents do not start in the same millisecond; 40 tasks made in
    one loop iteration do, and then every caller's first request has left
    before any failure can come back, whatever the client does.
    """
    tail_calls: int = 200
    tail_concurrency: int = 10
    tail_p: float = 0.1
    tail_stall: float = 1.0
    fallback_calls: int = 60
    fallback_concurrency: int = 10
    call_timeout: float = 60.0
    """A call still running after this is cancelled and counted as failed, so no row can hang the run."""
    together: bool = False
    """Run a scenario's variants at the same time (the smoke run: quicker, and they load each other)."""


FULL_OVERLOAD = OverloadSizes()
SMOKE_OVERLOAD = OverloadSizes(
    rate=20.0,
    burst=2,
    callers=6,
    calls_each=2,
    outage_callers=4,
    outage_seconds=0.5,
    outage_run=1.5,
    outage_phase=0.25,
    tail_calls=10,
    tail_concurrency=5,
    tail_stall=0.2,
    fallback_calls=4,
    fallback_concurrency=4,
    call_timeout=2.5,
    together=True,
)


@dataclass(frozen=True)
class Target:
    """What a variant is built against.

    Attributes:
        urls: the servers' ``api_base`` URLs, primary first (two in the fallback scenario).
        rate: the provider's admitted requests per second in the rate scenario, else None.
        burst: the provider's burst in the rate scenario, else None.
    """

    urls: tuple[str, ...]
    rate: float | None = None
    burst: int | None = None


Build = Callable[[Target], Generate]
"""Builds a fresh call path (fresh model, fresh limiter/budget state) for one scenario run."""


@dataclass(frozen=True)
class Variant:
    """One configuration under test.

    Attributes:
        key: short name (stable: tests and plots use it).
        label: the table's row label (markdown).
        build: makes the call path from a :class:`Target`; called once per scenario run.
        scenarios: the tables this variant joins (subset of :data:`ALL`).
        why_missing: when set, the row says this instead of being measured.
        in_phase: in the outage scenario, start every caller at the same
            instant instead of spreading their starts over ``outage_phase``.
    """

    key: str
    label: str
    build: Build
    scenarios: Collection[str] = ALL
    why_missing: str = ""
    in_phase: bool = False


# -- the call paths -------------------------------------------------------------------------


def lite_llm(url: str, **kwargs: Any) -> Any:
    """A real ``LiteLlm`` on one fault server."""
    from google.adk.models.lite_llm import LiteLlm

    return LiteLlm(model=MODEL, api_base=url, api_key="sk-bench", **kwargs)


class Pacer:
    """A client-side token bucket with a burst of one: releases calls in FIFO order, ``1 / rate`` apart.

    The spacing is between actual releases, not planned slots: when the event
    loop lags (a busy client), waiters whose slots have passed would
    otherwise all wake at once and reach the provider together.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.last = -math.inf
        self.lock = asyncio.Lock()  # FIFO: callers are released in arrival order

    async def wait(self) -> None:
        """Wait for this caller's turn, at least ``1 / rate`` after the previous release."""
        async with self.lock:
            delay = self.last + self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.last = time.monotonic()


def paced(generate: Generate, pacer: Pacer) -> Generate:
    """``generate`` admitted through ``pacer``: each call waits for its slot before its request."""

    async def call(request: LlmRequest, stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
        await pacer.wait()
        async for response in generate(request, stream):
            yield response

    return call


def _pacer(target: Target) -> Generate:
    if target.rate is None:
        raise ValueError("the pacer needs the provider's rate")
    return paced(lite_llm(target.urls[0], max_retries=0).generate_content_async, Pacer(target.rate))


def router_client(router: Any, model: str) -> Any:
    """A ``LiteLLMClient`` (what ``LiteLlm``'s ``llm_client`` must be) sending every call through ``router``."""
    from google.adk.models.lite_llm import LiteLLMClient

    class RouterClient(LiteLLMClient):
        async def acompletion(self, model: Any, messages: Any, tools: Any, **kwargs: Any) -> Any:
            """Route the call to the router's model group (its deployments carry the URL and key)."""
            kwargs.pop("api_base", None)
            kwargs.pop("api_key", None)
            return await router.acompletion(model=group, messages=messages, tools=tools, **kwargs)

    group = model
    return RouterClient()


ROUTER_RETRIES = 3


def _router(target: Target) -> Generate:
    """litellm's Router: ``num_retries=3`` and a retry policy of 3 per error class; fallbacks to the next URL."""
    from google.adk.models.lite_llm import LiteLlm
    from litellm.router import Router
    from litellm.types.router import RetryPolicy as RouterRetryPolicy

    names = [f"deployment-{index}" for index in range(len(target.urls))]
    model_list = [
        {"model_name": name, "litellm_params": {"model": MODEL, "api_base": url, "api_key": "sk-bench"}}
        for name, url in zip(names, target.urls, strict=True)
    ]
    retries = {name: ROUTER_RETRIES for name in RouterRetryPolicy.model_fields if name.endswith("Retries")}
    fallbacks = [{names[0]: names[1:]}] if len(names) > 1 else []
    router = Router(
        model_list=model_list,
        num_retries=ROUTER_RETRIES,
        retry_policy=RouterRetryPolicy(**retries),
        fallbacks=fallbacks,
    )
    model = LiteLlm(model=MODEL, llm_client=router_client(router, names[0]))
    return model.generate_content_async


def _with_policy(policy: Callable[[], RetryPolicy | None]) -> Build:
    def build(target: Target) -> Generate:
        chosen = policy()
        if chosen is None:
            raise RuntimeError("this variant's feature is missing")  # filtered out by why_missing
        return with_retry(lite_llm(target.urls[0]), chosen).generate_content_async

    return build


def _transient_with(extra: Callable[[], dict[str, Any] | None]) -> Callable[[], RetryPolicy | None]:
    def make() -> RetryPolicy | None:
        fields = extra()
        return None if fields is None else RetryPolicy.transient(**fields)

    return make


def _adk_fallback(target: Target) -> Generate:
    """ADK's own ``FallbackModel`` over one bare ``LiteLlm`` per URL."""
    from google.adk.models import FallbackModel

    model = FallbackModel(models=[lite_llm(url) for url in target.urls])
    return model.generate_content_async


def _has_adk_fallback() -> str:
    try:
        from google.adk.models import FallbackModel  # noqa: F401
    except ImportError:
        return "not measured: this google-adk has no `FallbackModel`"
    return ""


HEDGE_AFTER = 0.1
"""``hedge_after`` of the hedging row: its delay until it has learnt one (``hedge_quantile``).

A fixed 0.1 s sat below the healthy p50-p90 of an attempt's time to first
chunk whenever the shared machine was busy (10 streams at a time cost
~90-300 ms each): up to 75 % of the healthy calls hedged, the hedges' load
slowed every call, which hedged more. The learnt p95 follows that load.
"""
HEDGE_QUANTILE = 0.95
"""Hedge after the p95 of the latest answered attempts' time to first chunk ("The Tail at Scale")."""
MAX_HEDGES = 2
"""One more hedge if the first one stalls too: one hedge leaves p**2 = 1 % of calls stalled, the p99 itself."""


def _hedging() -> RetryPolicy | None:
    if not features.has_field("hedge_quantile"):
        return RetryPolicy.transient(hedge_after=HEDGE_AFTER) if features.has_field("hedge_after") else None
    return RetryPolicy.transient(hedge_after=HEDGE_AFTER, max_hedges=MAX_HEDGES, hedge_quantile=HEDGE_QUANTILE)


def _hedging_label() -> str:
    if not features.has_field("hedge_quantile"):
        return f"adk_retry `transient(hedge_after={HEDGE_AFTER:g})`"
    return (
        f"adk_retry `transient(hedge_after={HEDGE_AFTER:g}, max_hedges={MAX_HEDGES}, "
        f"hedge_quantile={HEDGE_QUANTILE:g})`"
    )


def _fallbacks(**fields: Any) -> Build:
    """adk_retry over the primary with the second URL's ``LiteLlm`` as its fallback."""

    def build(target: Target) -> Generate:
        policy = RetryPolicy.transient(fallbacks=tuple(lite_llm(url) for url in target.urls[1:]), **fields)
        return with_retry(lite_llm(target.urls[0]), policy).generate_content_async

    return build


def _limited(target: Target) -> Generate:
    """adk_retry ``transient()`` with the limiter configured at exactly the provider's rate (its default burst, 1)."""
    if target.rate is None:
        raise ValueError("the configured limiter needs the provider's rate")
    fields = features.rate_limit(rpm=target.rate * 60.0)
    if fields is None:
        raise RuntimeError("this variant's feature is missing")  # filtered out by why_missing
    return with_retry(lite_llm(target.urls[0]), RetryPolicy.transient(**fields)).generate_content_async


def variants() -> list[Variant]:
    """The reference configurations, in table order. Add adk_retry's new ones here."""
    budget, breaker, waiting = features.budget(), features.breaker(), features.waiting_breaker()
    waiting_row = Variant(
        "transient_breaker_wait",
        "adk_retry transient + breaker (new defaults, waiting): `CircuitBreaker()`, `timeout=30`",
        _with_policy(_transient_with(features.waiting_breaker)),
        {OUTAGE},
        "" if waiting is not None else "not measured: this checkout's breaker cannot wait for its probe",
    )
    return [
        Variant("pacer", "client-side pacer at exactly the capacity (the limit), retries off", _pacer, {RATE}),
        Variant(
            "router",
            f"litellm `Router`, `num_retries={ROUTER_RETRIES}` + retry policy {ROUTER_RETRIES} (+ fallbacks)",
            _router,
        ),
        Variant(
            "num_retries",
            "litellm `num_retries=3`",
            lambda t: lite_llm(t.urls[0], num_retries=3).generate_content_async,
        ),
        Variant(
            "bare",
            "bare `LiteLlm`, defaults (OpenAI SDK `max_retries=2`)",
            lambda t: lite_llm(t.urls[0]).generate_content_async,
        ),
        Variant("transient", "adk_retry `RetryPolicy.transient()`", _with_policy(RetryPolicy.transient)),
        Variant(
            "transient_budget",
            "adk_retry `transient()` + `RetryBudget()`",
            _with_policy(_transient_with(features.budget)),
            {RATE, OUTAGE},
            "" if budget is not None else features.missing("budget"),
        ),
        Variant(
            "limiter",
            "adk_retry limiter (configured): `transient(rate_limit=RateLimit(rpm=60 * capacity))`",
            _limited,
            {RATE},
            "" if features.has_field("rate_limit") else features.missing("rate_limit"),
        ),
        Variant(
            "adaptive",
            "adk_retry adaptive (nothing configured): `transient(rate_limit=RateLimit(adaptive=True))`",
            _with_policy(_transient_with(lambda: features.rate_limit(adaptive=True))),
            {RATE},
            "" if features.has_field("rate_limit") else features.missing("rate_limit"),
        ),
        Variant(
            "transient_breaker",
            "adk_retry `transient()` + `CircuitBreaker()` (defaults, no timeout: fails fast while open)",
            _with_policy(_transient_with(features.breaker)),
            {OUTAGE},
            "" if breaker is not None else features.missing("breaker"),
        ),
        waiting_row,
        replace(waiting_row, key="transient_breaker_wait_in_phase", label="the same, callers in phase", in_phase=True),
        Variant(
            "fallbacks",
            'adk_retry `transient(fallbacks=(backup,), fallback_on=("server_error", "rate_limit"))`',
            _fallbacks(fallback_on=("server_error", "rate_limit", "circuit_open")),
            {FALLBACK},
            "" if features.has_field("fallbacks") else features.missing("fallbacks"),
        ),
        Variant(
            "fallbacks_after_retries",
            "adk_retry `transient(fallbacks=(backup,))` + `CircuitBreaker()` (after the retries, then the circuit)",
            _fallbacks(**(breaker or {})),
            {FALLBACK},
            "" if features.has_field("fallbacks") and breaker is not None else features.missing("fallbacks"),
        ),
        Variant(
            "hedge",
            _hedging_label(),
            _with_policy(_hedging),
            {TAIL},
            "" if features.has_field("hedge_after") else features.missing("hedge_after"),
        ),
        Variant(
            "adk_fallback",
            "ADK `FallbackModel` over two bare `LiteLlm`",
            _adk_fallback,
            {FALLBACK},
            _has_adk_fallback(),
        ),
    ]


# -- one call -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One model call, on :func:`time.monotonic`'s clock (the server's clock too)."""

    ok: bool
    start: float
    end: float
    first: float | None = None
    """When the first response (for a stream: the first chunk) arrived."""

    @property
    def seconds(self) -> float:
        """How long the call took."""
        return self.end - self.start


async def one_call(generate: Generate, index: int, *, limit: float, stream: bool = False) -> Call:
    """Run one call to its end; any failure (or running past ``limit`` seconds) is ``ok=False``, never raised."""
    request = make_request(f"overload call {index}", model=MODEL)
    start = time.monotonic()
    first: float | None = None
    responses: list[LlmResponse] = []
    try:
        async with asyncio.timeout(limit):
            async for response in generate(request, stream):
                if first is None:
                    first = time.monotonic()
                responses.append(response)
    except Exception:  # the benchmark counts failures; each variant's own error is not the point
        return Call(False, start, time.monotonic(), first)
    return Call(answered(responses), start, time.monotonic(), first)


async def warm_up(generate: Generate, *servers: FaultServer, stream: bool = False) -> None:
    """One call before measuring, then forget it: a variant's first call pays for imports and clients.

    Without it, the first calls of a run bunch up behind that one-off cost and
    reach the provider together, which a pacer in particular cannot undo.
    """
    await one_call(generate, -1, limit=30.0, stream=stream)
    for server in servers:
        server.clear()


async def warm_up_failure(server: FaultServer) -> None:
    """One failed call through a bare ``LiteLlm`` and one through adk_retry, on throwaway models.

    litellm's first error of a process imports and builds its failure path
    (about 170 ms of CPU here; adk_retry's first failure adds about 100 ms):
    an outage that starts with a process's first failure blocks the event
    loop that long, and the callers whose start fell in that time all leave
    together when it ends, which would measure the imports rather than the
    configuration. Every variant gets the same warm-up; the models are
    thrown away, so no circuit, budget or limiter remembers it.
    """
    for model in (lite_llm(server.url, max_retries=0), with_retry(lite_llm(server.url, max_retries=0), RetryPolicy())):
        server.push(Fault.http_error(503))
        await one_call(model.generate_content_async, -2, limit=30.0)
    server.clear()


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def _client_cpu(server: FaultServer) -> float:
    """Process CPU time not spent in the server's thread: the client's (litellm's threads included)."""
    return time.process_time() - server.cpu_seconds


def _percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- (a) a rate-limited provider --------------------------------------------------------------


@dataclass(frozen=True)
class RateRun:
    """One variant against the rate-limited provider."""

    variant: Variant
    calls: list[Call]
    seconds: float
    rate_limited: int
    requests: int
    client_cpu: float
    capacity: float

    @property
    def successes(self) -> int:
        """Calls that ended with an answer."""
        return sum(call.ok for call in self.calls)

    @property
    def success(self) -> float:
        """Share of calls that ended with an answer."""
        return self.successes / len(self.calls)

    @property
    def goodput(self) -> float:
        """Answers per second over the run, as a share of the provider's capacity."""
        return self.successes / self.seconds / self.capacity

    @property
    def rejected_per_success(self) -> float:
        """429s per answer."""
        return self.rate_limited / self.successes if self.successes else math.inf


async def run_rate(variant: Variant, sizes: OverloadSizes) -> RateRun:
    """``callers`` callers, ``calls_each`` calls each, one after the other, against a fresh limited server."""
    async with FaultServer() as server:
        generate = variant.build(Target((server.url,), sizes.rate, sizes.burst))
        await warm_up(generate, server)
        server.capacity(sizes.rate, sizes.burst)  # a full bucket, from now

        async def caller(number: int) -> list[Call]:
            return [
                await one_call(generate, number * sizes.calls_each + index, limit=sizes.call_timeout)
                for index in range(sizes.calls_each)
            ]

        cpu, started = _client_cpu(server), time.monotonic()
        results = await asyncio.gather(*(caller(number) for number in range(sizes.callers)))
        seconds, cpu = time.monotonic() - started, _client_cpu(server) - cpu
        return RateRun(
            variant,
            [call for calls in results for call in calls],
            seconds,
            server.rate_limited,
            len(server.requests),
            cpu,
            sizes.rate,
        )


def rate_section(runs: Sequence[RateRun], skipped: Sequence[Variant], sizes: OverloadSizes) -> Section:
    """Section 6's table."""
    total = sizes.callers * sizes.calls_each
    section = Section(
        "overload-rate",
        "6. Overload: a rate-limited provider",
        f"The fault server admits {sizes.rate:g} requests/s (token bucket, burst {sizes.burst}) and answers 429 "
        "with `Retry-After` (whole seconds, rounded up) and `retry-after-ms` beyond that "
        f"(`FaultServer(capacity=Capacity({sizes.rate:g}, {sizes.burst}))`); {sizes.callers} concurrent callers "
        f"make {sizes.calls_each} calls each, one after the other ({total} calls: ideally "
        f"{total / sizes.rate:.1f} s and no 429). Goodput = answers per second over the run / capacity. "
        "Client CPU = process CPU time minus the server thread's, over the run's wall time (100 % = one core).",
        [
            "configuration",
            "success",
            "goodput / capacity",
            "goodput / pacer's",
            "429s per success",
            "requests per call",
            "run s",
            "client CPU",
            "client CPU ms per call",
        ],
    )
    pacer = next((run.goodput for run in runs if run.variant.key == "pacer"), math.nan)
    for run in runs:
        section.add(
            run.variant.label,
            fmt(100 * run.success, 1, " %"),
            fmt(run.goodput),
            fmt(run.goodput / pacer),
            fmt(run.rejected_per_success),
            fmt(run.requests / len(run.calls)),
            fmt(run.seconds, 1),
            fmt(100 * run.client_cpu / run.seconds, 0, " %"),
            fmt(1000 * run.client_cpu / len(run.calls), 1),
        )
    for variant in skipped:
        section.add(variant.label, variant.why_missing, *[""] * 7)
    section.notes.append(
        "Issue 11's targets (adaptive and configured limiter): success >= 99 %, goodput >= 0.95 x "
        "capacity, <= 0.05 rejected requests per success."
    )
    section.notes.append(
        "The pacer is the physical limit on this machine: when its goodput is below 1.00 the client "
        "(sharing two cores with the server and other work) could not issue calls any faster, so "
        '"goodput / pacer\'s" is the fair comparison.'
    )
    return section


# -- (b) outage, then recovery -----------------------------------------------------------------


@dataclass(frozen=True)
class OutageRun:
    """One variant through an outage and its recovery."""

    variant: Variant
    calls: list[list[Call]]
    """Per caller, its calls in order."""
    dead_requests: int
    down: float
    up: float
    """When the outage ended (monotonic)."""

    @property
    def success(self) -> float:
        """Share of all calls that ended with an answer."""
        flat = [call for calls in self.calls for call in calls]
        return sum(call.ok for call in flat) / len(flat) if flat else math.nan

    @property
    def dead_rate(self) -> float:
        """Requests per caller per second sent to the dead provider."""
        return self.dead_requests / len(self.calls) / self.down

    @property
    def dead_rate_after_first(self) -> float:
        """:attr:`dead_rate` without one request per caller.

        When the callers start together (``in_phase``) their first requests
        (one per caller, ``1 / outage_seconds`` per caller per second: 0.25
        for 4 s) are all sent before any failure has come back: no client can
        spare them. What is left is what the configuration itself sends to a
        provider it has seen fail.
        """
        return max(0, self.dead_requests - len(self.calls)) / len(self.calls) / self.down

    def answered_after(self, share: float) -> float:
        """Seconds after recovery until ``share`` of the callers had an answer that ended after it."""
        firsts = []
        for calls in self.calls:
            ends = [call.end for call in calls if call.ok and call.end >= self.up]
            firsts.append(min(ends) - self.up if ends else math.inf)
        return _percentile(firsts, share)


async def run_outage(variant: Variant, sizes: OverloadSizes) -> OutageRun:
    """Callers starting a call at most every second, the first ``outage_seconds`` of a 503 outage."""
    async with FaultServer() as server:
        generate = variant.build(Target((server.url,)))
        await warm_up(generate, server)
        await warm_up_failure(server)
        server.outage(0.0, sizes.outage_seconds)
        started = time.monotonic()
        stop = started + sizes.outage_run

        phase = 0.0 if variant.in_phase else sizes.outage_phase
        phases = random.Random(7)
        offsets = [phases.uniform(0.0, phase) for _ in range(sizes.outage_callers)]

        async def caller(number: int) -> list[Call]:
            calls: list[Call] = []
            await asyncio.sleep(offsets[number])
            while (now := time.monotonic()) < stop:
                calls.append(await one_call(generate, number * 1000 + len(calls), limit=sizes.call_timeout))
                await asyncio.sleep(max(0.0, now + 1.0 - time.monotonic()))
            return calls

        results = await asyncio.gather(*(caller(number) for number in range(sizes.outage_callers)))
        times = server.outage_times
        assert times is not None
        assert times[1] is not None
        dead = server.unavailable
    return OutageRun(variant, list(results), dead, times[1] - times[0], times[1])


def outage_section(runs: Sequence[OutageRun], skipped: Sequence[Variant], sizes: OverloadSizes) -> Section:
    """Section 7's table."""
    section = Section(
        "overload-outage",
        "7. Overload: outage, then recovery",
        f"Every request gets a 503 for the first {sizes.outage_seconds:g} s (`server.outage(0, "
        f"{sizes.outage_seconds:g})`), then the provider is healthy; {sizes.outage_callers} callers each start a "
        f"call at most every second (the next one when the last has ended, and not before a second after it "
        f"started) for {sizes.outage_run:g} s, their first calls at seeded random times in the first "
        f"{sizes.outage_phase:g} s. Before it, one failed call through a throwaway bare `LiteLlm` and one through "
        "adk_retry pay for litellm's first-error imports, the same for every row (else the loop stalls about "
        '0.3 s at the first 503 and the callers due in that time all leave together). "Answered after recovery": '
        "seconds from the outage's end until half (90 %) of the callers had a successful call end after it.",
        [
            "configuration",
            "success",
            "requests per caller per second to the dead provider",
            "without one request per caller",
            "half answered after recovery s",
            "90 % answered after recovery s",
            "calls",
        ],
    )
    for run in runs:
        section.add(
            run.variant.label,
            fmt(100 * run.success, 1, " %"),
            fmt(run.dead_rate),
            fmt(run.dead_rate_after_first),
            fmt(run.answered_after(0.5)),
            fmt(run.answered_after(0.9)),
            sum(len(calls) for calls in run.calls),
        )
    for variant in skipped:
        section.add(variant.label, variant.why_missing, *[""] * 5)
    section.notes.append(
        f'"callers in phase": the same scenario with all {sizes.outage_callers} callers starting at the outage\'s '
        f"first instant: their first requests ({1 / sizes.outage_seconds:.2f} per caller per second) all leave "
        "before any failure is back, whatever the client does; the column beside shows what the configuration "
        "sends after them."
    )
    section.notes.append(
        "Issue 11's targets: <= 0.1 requests per caller per second to a dead provider, half the "
        "callers answered within 0.5 s of recovery and 90 % within 1 s, no call failed that had "
        'time left. "n/a": fewer callers than that share ever got an answer after recovery.'
    )
    return section


# -- (c) slow first token --------------------------------------------------------------------


@dataclass(frozen=True)
class TailRun:
    """One variant's streamed calls, healthy and with the slow tail."""

    variant: Variant
    healthy: list[Call]
    slow: list[Call]
    healthy_requests: int
    slow_requests: int
    stalled: int

    @staticmethod
    def p99(calls: Sequence[Call]) -> float:
        """p99 time to first chunk in ms (calls that never got one count as their whole duration)."""
        return 1000 * _percentile([(call.first or call.end) - call.start for call in calls], 0.99)

    @property
    def extra(self) -> float:
        """Requests beyond one per call with the slow tail, as a share of the calls."""
        return self.slow_requests / len(self.slow) - 1


async def _streams(variant: Variant, sizes: OverloadSizes, p: float) -> tuple[list[Call], int, int]:
    async with FaultServer() as server:
        generate = variant.build(Target((server.url,)))
        await warm_up(generate, server, stream=True)
        server.slow_first_token(p=p, seconds=sizes.tail_stall, seed=11)
        gate = asyncio.Semaphore(sizes.tail_concurrency)

        async def one(index: int) -> Call:
            async with gate:
                return await one_call(generate, index, limit=sizes.call_timeout, stream=True)

        calls = await asyncio.gather(*(one(index) for index in range(sizes.tail_calls)))
        return list(calls), len(server.requests), server.stalled


async def run_tail(variant: Variant, sizes: OverloadSizes) -> TailRun:
    """The same streamed calls with no stall and with ``tail_p`` of the requests stalled ``tail_stall`` s."""
    healthy, healthy_requests, _ = await _streams(variant, sizes, 0.0)
    slow, slow_requests, stalled = await _streams(variant, sizes, sizes.tail_p)
    return TailRun(variant, healthy, slow, healthy_requests, slow_requests, stalled)


def tail_section(runs: Sequence[TailRun], skipped: Sequence[Variant], sizes: OverloadSizes) -> Section:
    """Section 8's table."""
    section = Section(
        "overload-tail",
        "8. Overload: a slow first token (the case for hedging)",
        f"{sizes.tail_calls} streamed calls, {sizes.tail_concurrency} at a time; with the tail, "
        f"{100 * sizes.tail_p:g} % of the requests (seeded) stall {sizes.tail_stall:g} s before their answer starts "
        f"(`server.slow_first_token(p={sizes.tail_p:g}, seconds={sizes.tail_stall:g})`). Time to first chunk is "
        "from the call's start to its first yielded response.",
        [
            "configuration",
            "p99 first chunk, healthy ms",
            "p99 first chunk, slow tail ms",
            "ratio",
            "extra requests",
            "stalled requests",
            "success",
        ],
    )
    for run in runs:
        healthy, slow = run.p99(run.healthy), run.p99(run.slow)
        success = sum(call.ok for call in run.slow) / len(run.slow)
        section.add(
            run.variant.label,
            fmt(healthy, 1),
            fmt(slow, 1),
            fmt(slow / healthy),
            fmt(100 * run.extra, 1, " %"),
            run.stalled,
            fmt(100 * success, 1, " %"),
        )
    for variant in skipped:
        section.add(variant.label, variant.why_missing, *[""] * 5)
    section.notes.append(
        "Issue 11's target for hedging: p99 first chunk within 1.2 x the healthy p99 for <= 15 % extra requests."
    )
    return section


# -- (d) primary outage with a fallback chain --------------------------------------------------


@dataclass(frozen=True)
class FallbackRun:
    """One variant with the primary healthy and with the primary down."""

    variant: Variant
    healthy: list[Call]
    down: list[Call]
    primary_requests: int
    secondary_requests: int


async def _fallback_calls(variant: Variant, sizes: OverloadSizes, *, primary_down: bool) -> tuple[list[Call], int, int]:
    async with FaultServer() as primary, FaultServer() as secondary:
        generate = variant.build(Target((primary.url, secondary.url)))
        await warm_up(generate, primary, secondary)
        if primary_down:
            primary.outage()
        gate = asyncio.Semaphore(sizes.fallback_concurrency)

        async def one(index: int) -> Call:
            async with gate:
                return await one_call(generate, index, limit=sizes.call_timeout)

        calls = await asyncio.gather(*(one(index) for index in range(sizes.fallback_calls)))
        return list(calls), len(primary.requests), len(secondary.requests)


async def run_fallback(variant: Variant, sizes: OverloadSizes) -> FallbackRun:
    """``fallback_calls`` calls with a healthy primary, then with the primary in a full outage."""
    healthy, _, _ = await _fallback_calls(variant, sizes, primary_down=False)
    down, primary, secondary = await _fallback_calls(variant, sizes, primary_down=True)
    return FallbackRun(variant, healthy, down, primary, secondary)


def fallback_section(runs: Sequence[FallbackRun], skipped: Sequence[Variant], sizes: OverloadSizes) -> Section:
    """Section 9's table."""
    section = Section(
        "overload-fallback",
        "9. Overload: primary outage with a fallback chain",
        f"Two fault servers; the primary answers every request with 503 (`server.outage()`), the second is "
        f"healthy. {sizes.fallback_calls} calls, {sizes.fallback_concurrency} at a time; the same calls with a "
        "healthy primary give the baseline. Variants without a fallback chain use the primary only.",
        [
            "configuration",
            "success, primary down",
            "mean ms, primary healthy",
            "mean ms, primary down",
            "added latency ms",
            "requests to primary per call",
            "requests to fallback per call",
        ],
    )
    for run in runs:
        healthy = 1000 * statistics.mean(call.seconds for call in run.healthy)
        down = 1000 * statistics.mean(call.seconds for call in run.down)
        success = sum(call.ok for call in run.down) / len(run.down)
        section.add(
            run.variant.label,
            fmt(100 * success, 1, " %"),
            fmt(healthy, 1),
            fmt(down, 1),
            fmt(down - healthy, 1),
            fmt(run.primary_requests / len(run.down)),
            fmt(run.secondary_requests / len(run.down)),
        )
    for variant in skipped:
        section.add(variant.label, variant.why_missing, *[""] * 6)
    section.notes.append("Issue 11's target: 100 % success with the primary down.")
    return section


_Run = TypeVar("_Run")

# -- all four ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Overload:
    """The four sections' tables and the runs behind them."""

    sections: list[Section]
    rate: list[RateRun] = field(default_factory=list)
    outage: list[OutageRun] = field(default_factory=list)
    tail: list[TailRun] = field(default_factory=list)
    fallback: list[FallbackRun] = field(default_factory=list)


def _chosen(every: Sequence[Variant], scenario: str) -> tuple[list[Variant], list[Variant]]:
    joined = [variant for variant in every if scenario in variant.scenarios]
    return [v for v in joined if not v.why_missing], [v for v in joined if v.why_missing]


async def _each(
    chosen: Sequence[Variant],
    run: Callable[[Variant, OverloadSizes], Awaitable[_Run]],
    sizes: OverloadSizes,
    describe: Callable[[_Run], str],
) -> list[_Run]:
    """``run`` every variant, one after the other (or all at once with ``sizes.together``), in table order."""
    if sizes.together:
        results = list(await asyncio.gather(*(run(variant, sizes) for variant in chosen)))
        for variant, result in zip(chosen, results, strict=True):
            _progress(f"{variant.key}: {describe(result)}")
        return results
    results = []
    for variant in chosen:
        results.append(result := await run(variant, sizes))
        _progress(f"{variant.key}: {describe(result)}")
    return results


async def measure_overload(sizes: OverloadSizes, chosen: Sequence[Variant] | None = None) -> Overload:
    """Run every scenario for every variant that joins it; one table per scenario."""
    every = list(chosen) if chosen is not None else variants()
    rate_variants, rate_skipped = _chosen(every, RATE)
    rate = await _each(
        rate_variants,
        run_rate,
        sizes,
        lambda run: (
            f"rate: {run.success:.1%} ok, goodput {run.goodput:.2f}, {run.rejected_per_success:.2f} 429s/success, "
            f"{run.seconds:.1f} s"
        ),
    )
    outage_variants, outage_skipped = _chosen(every, OUTAGE)
    outage = await _each(
        outage_variants,
        run_outage,
        sizes,
        lambda down: (
            f"outage: {down.success:.1%} ok, {down.dead_rate:.2f} req/caller/s to the dead provider, half answered "
            f"{down.answered_after(0.5):.2f} s after recovery"
        ),
    )
    tail_variants, tail_skipped = _chosen(every, TAIL)
    tail = await _each(
        tail_variants,
        run_tail,
        sizes,
        lambda slow: f"tail: p99 first chunk {slow.p99(slow.healthy):.0f} -> {slow.p99(slow.slow):.0f} ms",
    )
    fallback_variants, fallback_skipped = _chosen(every, FALLBACK)
    fallback = await _each(
        fallback_variants,
        run_fallback,
        sizes,
        lambda chain: f"fallback: {sum(c.ok for c in chain.down)}/{len(chain.down)} ok with the primary down",
    )
    sections = [
        rate_section(rate, rate_skipped, sizes),
        outage_section(outage, outage_skipped, sizes),
        tail_section(tail, tail_skipped, sizes),
        fallback_section(fallback, fallback_skipped, sizes),
    ]
    return Overload(sections, rate, outage, tail, fallback)
