"""Sections 3 and 4: the real stack under faults (LiteLlm + litellm + the fault server over HTTP).

Each configuration of retry layers is a :class:`Layer`; each measurement is
one job: a fresh :class:`~adk_retry.testing.FaultServer`, a fresh model, and
``calls`` model calls. A new configuration (one retry owner, a budget, ...)
is one more :class:`Layer` in :func:`layers`.

The OpenAI SDK's own backoff (0.375-8 s per retry) cannot be scaled down,
so layers that include it run many calls at a time; layers whose delays are
ours (a few ms) run one call at a time: the server shares the benchmark's
process (one GIL), so concurrency would not make them faster, only add
queueing to their latency.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from adk_retry import RetryPolicy
from adk_retry.testing import Fault, FaultServer
from bench import features
from bench.fakes import Generate, answered, make_request, with_retry
from bench.tables import Section, fmt, verdict

__all__ = ["Goodput", "Layer", "Outage", "layers", "measure_goodput", "measure_outage"]

MODEL = "openai/fault-model"
TINY_DELAYS: dict[str, Any] = {"retry_on": "transient", "base_delay": 0.001, "max_delay": 0.01}
"""adk_retry's "transient" preset with delays scaled down to milliseconds."""
SDK_OFF = {"max_retries": 0}
TARGET_BUDGET = 1.1
OK = Fault.ok("ok")
UNAVAILABLE = Fault.http_error(503)


@dataclass(frozen=True)
class Layer:
    """One configuration of retry layers: the ``LiteLlm`` arguments and adk_retry's policy, if any.

    Attributes:
        attempts: the most upstream requests one call can make on a persistent 503.
        sdk_backoff: the OpenAI SDK's real (unscaled) backoff is in the loop.
        goodput: also measured under partial faults (section 3), not only in an outage.
        capped: a retry budget may stop retries before ``attempts``: theory is an upper bound.
        why_missing: set when this checkout of adk_retry cannot express the layer.
    """

    key: str
    label: str
    litellm: Mapping[str, Any]
    policy: Callable[[], RetryPolicy] | None = None
    attempts: int = 1
    sdk_backoff: bool = False
    goodput: bool = True
    capped: bool = False
    why_missing: str = ""


def _policy(*extras: Callable[[], dict[str, Any] | None], **fields: Any) -> Callable[[], RetryPolicy] | None:
    """A factory of fresh policies (own budget or breaker state per job); None if a feature is missing."""
    if any(extra() is None for extra in extras):
        return None

    def make() -> RetryPolicy:
        merged = dict(fields)
        for extra in extras:
            merged.update(extra() or {})
        return RetryPolicy(**merged)

    return make


def _keep_lower() -> dict[str, Any] | None:
    return {"keep_lower_retries": True} if features.has_field("keep_lower_retries") else {}


def _optional(layer: Layer, feature: str) -> Layer:
    """``layer`` as it is, or a "not measured" row when its policy needs a missing feature."""
    if layer.policy is not None:
        return layer
    return Layer(
        layer.key,
        layer.label,
        layer.litellm,
        None,
        layer.attempts,
        goodput=layer.goodput,
        capped=layer.capped,
        why_missing=features.missing(feature),
    )


def layers() -> list[Layer]:
    """Every configuration, in table order; those needing a missing feature say so."""
    owner = features.has_field("keep_lower_retries")
    rows = [
        Layer("none", "no retry layer (`max_retries=0`: SDK off)", SDK_OFF),
        Layer("sdk", "litellm defaults (OpenAI SDK `max_retries=2`)", {}, attempts=3, sdk_backoff=True),
        Layer("num_retries", "litellm `num_retries=3`", {"num_retries": 3}, attempts=7, sdk_backoff=True),
        Layer("adk_default", "adk_retry default policy, SDK off", SDK_OFF, RetryPolicy),
        Layer("adk_transient", "**adk_retry `transient`**, SDK off", SDK_OFF, _policy(**TINY_DELAYS), attempts=4),
        _optional(
            Layer(
                "adk_budget",
                "adk_retry `transient` + retry budget, SDK off",
                SDK_OFF,
                _policy(features.budget, **TINY_DELAYS),
                attempts=4,
                capped=True,
            ),
            "budget",
        ),
        Layer(
            "adk_default_sdk",
            "adk_retry default over litellm defaults",
            {},
            RetryPolicy,
            attempts=3,
            sdk_backoff=True,
            goodput=False,
        ),
    ]
    if owner:
        rows.append(
            Layer(
                "adk_owner",
                "adk_retry `transient` over litellm defaults (one retry owner)",
                {},
                _policy(**TINY_DELAYS),
                attempts=4,
                sdk_backoff=True,
                goodput=False,
            )
        )
    rows += [
        Layer(
            "stacked",
            "naive stacking: adk_retry `transient` over litellm defaults"
            + (" (`keep_lower_retries=True`)" if owner else ""),
            {},
            _policy(_keep_lower, **TINY_DELAYS),
            attempts=12,
            sdk_backoff=True,
            goodput=False,
        ),
        _optional(
            Layer(
                "adk_breaker",
                "adk_retry `transient` + circuit breaker, SDK off",
                SDK_OFF,
                _policy(features.breaker, **TINY_DELAYS),
                attempts=4,
                goodput=False,
            ),
            "breaker",
        ),
    ]
    return rows


# -- running calls ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One model call: did it end with an answer, how long it took, how long the SDK chose to back off."""

    ok: bool
    seconds: float
    sdk_backoff: float = 0.0


_sdk_delays: ContextVar[list[float] | None] = ContextVar("bench_sdk_delays", default=None)


@contextmanager
def sdk_backoff_recorded() -> Iterator[bool]:
    """Record the delays the OpenAI SDK computes before its retries, per call; yields whether it could.

    The delays are only observed, never changed: the SDK's ``_calculate_retry_timeout``
    is wrapped to note its result in the calling task's :data:`_sdk_delays`.
    """
    try:
        from openai._base_client import BaseClient
    except ImportError:
        yield False
        return
    original = BaseClient.__dict__.get("_calculate_retry_timeout")
    if original is None:
        yield False
        return

    def recorded(self: Any, *args: Any, **kwargs: Any) -> float:
        delay: float = original(self, *args, **kwargs)
        noted = _sdk_delays.get()
        if noted is not None:
            noted.append(delay)
        return delay

    BaseClient._calculate_retry_timeout = recorded  # type: ignore[method-assign]
    try:
        yield True
    finally:
        BaseClient._calculate_retry_timeout = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class Job:
    """The outcomes of ``calls`` calls of one layer against one fault server."""

    layer: Layer
    outcomes: list[Outcome]
    requests: int
    concurrency: int

    @property
    def success(self) -> float:
        """Share of calls that ended with an answer."""
        return sum(o.ok for o in self.outcomes) / len(self.outcomes)

    @property
    def sdk_backoff_ms(self) -> float:
        """Mean time per call the OpenAI SDK chose to sleep before its retries, in milliseconds."""
        return 1000 * statistics.mean(o.sdk_backoff for o in self.outcomes)

    @property
    def requests_per_call(self) -> float:
        """Upstream requests the server saw, per model call."""
        return self.requests / len(self.outcomes)

    def latency_ms(self, stat: Callable[[list[float]], float] = statistics.mean) -> float:
        """``stat`` of the calls' durations, in milliseconds."""
        return 1000 * stat([o.seconds for o in self.outcomes])

    @property
    def run(self) -> str:
        """How the calls were run, for the table."""
        return "1 at a time" if self.concurrency == 1 else f"{self.concurrency} at a time"


def build(layer: Layer, url: str) -> Generate:
    """A fresh ``LiteLlm`` on the fault server, with adk_retry installed when the layer has a policy."""
    from google.adk.models.lite_llm import LiteLlm

    model = LiteLlm(model=MODEL, api_base=url, api_key="sk-bench", **layer.litellm)
    if layer.policy is not None:
        with_retry(model, layer.policy())
    return model.generate_content_async


async def _timed_call(generate: Generate, index: int) -> Outcome:
    request = make_request(f"bench call {index}", model=MODEL)
    delays: list[float] = []
    _sdk_delays.set(delays)  # this call's own task: its context is its own
    start = perf_counter()
    try:
        ok = answered([response async for response in generate(request)])
    except Exception:
        ok = False
    return Outcome(ok, perf_counter() - start, sum(delays))


async def run_job(layer: Layer, fault: Fault, *, calls: int, concurrency: int) -> Job:
    """``calls`` calls of ``layer``, at most ``concurrency`` at a time, against a fresh server."""
    async with FaultServer(default=fault) as server:
        generate = build(layer, server.url)
        gate = asyncio.Semaphore(concurrency)

        async def one(index: int) -> Outcome:
            async with gate:
                return await _timed_call(generate, index)

        outcomes = await asyncio.gather(*(one(index) for index in range(calls)))
        return Job(layer, list(outcomes), len(server.requests), concurrency)


class FaultPlan:
    """``Fault.reply`` function: a 503 with probability ``rate``, else an answer.

    Attempt ``k`` of call ``i`` draws ``draws[i][k]``: every layer meets the
    same faults (common random numbers), so differences between rows are the
    layers', not the dice's. The calls are told apart by their text.
    """

    _CALL = re.compile(r"bench call (\d+)")

    def __init__(self, draws: Sequence[Sequence[float]], rate: float) -> None:
        self.draws = draws
        self.rate = rate
        self.seen: dict[int, int] = {}

    def __call__(self, body: dict[str, Any]) -> Fault:
        """Decide one request (runs in the server's thread, one request at a time)."""
        found = self._CALL.search(json.dumps(body.get("messages", [])))
        if found is None:
            return OK
        call = int(found.group(1))
        attempt = self.seen.get(call, 0)
        self.seen[call] = attempt + 1
        row = self.draws[call % len(self.draws)]
        return UNAVAILABLE if row[attempt % len(row)] < self.rate else OK


def draws(calls: int, seed: int) -> list[list[float]]:
    """The seeded uniform draws behind every :class:`FaultPlan`: 16 attempts per call."""
    rng = random.Random(seed)
    return [[rng.random() for _ in range(16)] for _ in range(calls)]


def _progress(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


# -- section 3: goodput -------------------------------------------------------------------


@dataclass(frozen=True)
class Goodput:
    """Section 3's table and the points of the plot."""

    section: Section
    jobs: dict[float, list[Job]]


async def measure_goodput(*, rates: Sequence[float], calls: int, sdk_concurrency: int, seed: int) -> Goodput:
    """Success rate and latency of every goodput layer at each fault rate."""
    table = draws(calls, seed)
    chosen = [layer for layer in layers() if layer.goodput]
    jobs: dict[float, list[Job]] = {}
    with sdk_backoff_recorded() as recorded:
        for rate in rates:
            jobs[rate] = []
            for layer in chosen:
                if layer.why_missing:
                    continue
                concurrency = sdk_concurrency if layer.sdk_backoff else 1
                job = await run_job(layer, Fault.reply(FaultPlan(table, rate)), calls=calls, concurrency=concurrency)
                _progress(f"goodput p={rate:.0%} {layer.key}: {job.success:.1%} ok, {job.latency_ms():.0f} ms")
                jobs[rate].append(job)
    section = Section(
        "goodput",
        "3. Goodput under faults (real stack)",
        f"`LiteLlm` -> litellm -> the OpenAI SDK -> HTTP -> the fault server, which answers each request "
        f"with a 503 with probability p, else at once; {calls:,} calls per row, called directly "
        "(`model.generate_content_async`). Attempt k of call i meets the same seeded draw in every row. "
        "adk_retry's delays are scaled down (`base_delay=0.001, max_delay=0.01`); the OpenAI SDK's own "
        f"backoff (0.375-8 s) cannot be, so rows that include it ran {sdk_concurrency} calls at a time "
        "(`asyncio.gather` under a semaphore), the others one at a time. Theoretical success: "
        "`1 - p**attempts`, attempts being the most requests the configuration makes for one call.",
        [
            "fault rate",
            "configuration",
            "success",
            "theory",
            "mean ms",
            "median ms",
            "SDK backoff ms",
            "mean ms one at a time",
            "requests/call",
            "run",
        ],
    )
    for rate, rate_jobs in jobs.items():
        per_request = _per_request_ms(rate_jobs)
        for job in rate_jobs:
            section.add(
                f"{rate:.0%}",
                job.layer.label,
                fmt(100 * job.success, 1, " %"),
                _theory(job.layer, rate),
                fmt(job.latency_ms(), 1),
                fmt(job.latency_ms(statistics.median), 1),
                fmt(job.sdk_backoff_ms, 1) if recorded else "n/a",
                _one_at_a_time(job, per_request),
                fmt(job.requests_per_call),
                job.run,
            )
    for layer in chosen:
        if layer.why_missing:
            section.add("all", layer.label, layer.why_missing, *[""] * 7)
    section.wins += _goodput_wins(jobs)
    section.notes += _goodput_notes(jobs)
    return Goodput(section, jobs)


def _theory(layer: Layer, rate: float) -> str:
    value = fmt(100 * (1 - rate**layer.attempts), 1, " %")
    return f"<= {value}" if layer.capped else value


def _per_request_ms(rate_jobs: Sequence[Job]) -> float:
    """Milliseconds one request takes when nothing else runs: the no-layer row's mean (one request a call)."""
    for job in rate_jobs:
        if job.layer.key == "none":
            return job.latency_ms()
    return float("nan")


def _one_at_a_time(job: Job, per_request_ms: float) -> str:
    """The mean latency without CPU queueing: measured for one-at-a-time rows, estimated for the others.

    Estimate: the SDK's chosen backoff plus requests per call times one request's time.
    """
    if job.concurrency == 1:
        return fmt(job.latency_ms(), 1)
    return "~" + fmt(job.sdk_backoff_ms + job.requests_per_call * per_request_ms, 1)


def _default_backoff_ms(rate: float, delays: Sequence[float] = (1.0, 2.0, 4.0)) -> float:
    """Expected sleep per call with ``delays`` after failed attempts 1, 2, 3 (attempt k fails with ``rate**k``)."""
    return 1000 * sum(rate ** (k + 1) * delay for k, delay in enumerate(delays))


def _goodput_wins(jobs: Mapping[float, list[Job]]) -> list[str]:
    """Rows that succeed more often than adk_retry `transient` at the same fault rate."""
    wins = []
    for rate, rate_jobs in jobs.items():
        by_key = {job.layer.key: job for job in rate_jobs}
        ours = by_key.get("adk_transient")
        if ours is None:
            continue
        for job in rate_jobs:
            if job.success > ours.success:
                wins.append(
                    f"Goodput: at p={rate:.0%}, {job.layer.label} succeeds more often than adk_retry `transient` "
                    f"({100 * job.success:.1f} % vs {100 * ours.success:.1f} %): it allows {job.layer.attempts} "
                    f"requests per call against 4, and spends {fmt(job.sdk_backoff_ms, 0)} ms per call in the SDK's "
                    "backoff on average."
                )
    return wins


def _goodput_notes(jobs: Mapping[float, list[Job]]) -> list[str]:
    """What the numbers say about the configurations."""
    return [
        "Latency of the SDK rows and of adk_retry's rows is not comparable here: adk_retry's delays are "
        "scaled down to milliseconds, the SDK's are not. With its default delays (1, 2, 4 s +-20 %), "
        "adk_retry `transient` would sleep on average "
        + ", ".join(f"{_default_backoff_ms(rate):,.0f} ms at p={rate:.0%}" for rate in jobs)
        + " per call: longer than the SDK's 0.5 s-based schedule. Pass a smaller `base_delay` for calls "
        "that must answer quickly.",
        "adk_retry's default policy retries only empty answers, never a 503: under these faults it is the "
        'same as no retry layer, by design. Use `retry_on="transient"` for HTTP errors.',
        "Rows run many at a time wait for the CPU behind each other (client and server share one process "
        'and one GIL), which inflates their measured latency. "mean ms one at a time" removes that: '
        "measured for the one-at-a-time rows; for the others (marked ~) estimated as the backoff the SDK "
        "chose (observed, not changed) plus requests per call times one request's time (the no-layer row's "
        "mean at the same fault rate).",
        "The retry budget (10 tokens, 0.1 refunded per success) caps retries near 10 % of successful "
        "calls: under heavy faults it deliberately gives up success rate to bound the load.",
    ]


# -- section 4: load amplification in an outage ---------------------------------------------


@dataclass(frozen=True)
class Outage:
    """Section 4's table, the bars of the plot and the headline's figure."""

    section: Section
    jobs: list[Job]
    best: Job | None


async def _outage_jobs(chosen: Sequence[Layer], calls: int, *, together: bool) -> dict[str, Job]:
    """One job per layer; with ``together``, the SDK-backoff rows all run at the same time."""
    # The SDK's real sleeps would make one-at-a-time calls take minutes: run those rows' calls at once.
    slow = [layer for layer in chosen if layer.sdk_backoff]
    by_key: dict[str, Job] = {}
    if together:
        jobs = await asyncio.gather(*(run_job(layer, UNAVAILABLE, calls=calls, concurrency=calls) for layer in slow))
        by_key.update((job.layer.key, job) for job in jobs)
    for layer in chosen:
        if layer.key not in by_key:
            concurrency = calls if layer.sdk_backoff else 1
            by_key[layer.key] = await run_job(layer, UNAVAILABLE, calls=calls, concurrency=concurrency)
    for key, job in by_key.items():
        _progress(f"outage {key}: {job.requests_per_call:.2f} requests/call")
    return by_key


async def measure_outage(*, calls: int, together: bool = False) -> Outage:
    """Upstream requests per model call when every request fails with 503.

    ``together`` runs the rows with the SDK's backoff at the same time as each other
    (the smoke run: faster, and their times then include each other's load).
    """
    every = layers()
    with sdk_backoff_recorded() as recorded:
        by_key = await _outage_jobs([layer for layer in every if not layer.why_missing], calls, together=together)
    section = Section(
        "outage",
        "4. Load amplification in a full outage",
        f"Every request gets a 503 (`FaultServer(default=Fault.http_error(503))`); {calls} calls per row. "
        "Requests per call = `len(server.requests) / calls`. Rows with the OpenAI SDK's real backoff ran all "
        'their calls at once, the others one at a time; "time to failure one at a time" is estimated for '
        "the former (marked ~) as in section 3.",
        [
            "configuration",
            "attempts allowed",
            "requests/call",
            "success",
            "mean time to failure ms",
            "SDK backoff ms",
            "time to failure one at a time ms",
            "run",
        ],
    )
    per_request = by_key["none"].latency_ms() if "none" in by_key else float("nan")
    jobs = []
    for layer in every:
        job = by_key.get(layer.key)
        if job is None:
            section.add(layer.label, layer.attempts, layer.why_missing, *[""] * 5)
            continue
        jobs.append(job)
        section.add(
            layer.label,
            layer.attempts,
            f"**{fmt(job.requests_per_call)}**",
            fmt(100 * job.success, 0, " %"),
            fmt(job.latency_ms(), 1),
            fmt(job.sdk_backoff_ms, 1) if recorded else "n/a",
            _one_at_a_time(job, per_request),
            job.run,
        )
    retrying = [job for job in jobs if job.layer.attempts > 1]
    best = min(retrying, key=lambda job: job.requests_per_call, default=None)
    section.notes += _outage_notes(by_key, calls)
    return Outage(section, jobs, best)


def _outage_notes(by_key: Mapping[str, Job], calls: int) -> list[str]:
    notes = []
    budget = by_key.get("adk_budget")
    if budget is not None:
        notes.append(
            f"Retry budget: **{fmt(budget.requests_per_call)}** requests per call (target <= {TARGET_BUDGET}: "
            f"{verdict(budget.requests_per_call, TARGET_BUDGET)}). The bucket holds 10 tokens and nothing "
            f"refills it in an outage, so over N calls it allows at most 10 retries: `1 + 10/N` ({calls} calls "
            "here); fewer calls show more."
        )
    else:
        notes.append(f"Retry budget: {features.missing('budget')}.")
    breaker = by_key.get("adk_breaker")
    if breaker is not None:
        notes.append(
            "Circuit breaker (5 consecutive failures, 30 s cooldown): once open, calls fail at once with "
            "`CircuitOpenError` without a request; its success rate is not better, the load is."
        )
    notes.append(
        "Naive stacking multiplies: each of adk_retry's 4 attempts is 3 SDK requests. litellm's "
        "`num_retries=3` also stacks two layers (the SDK's and litellm's own)."
    )
    return notes
