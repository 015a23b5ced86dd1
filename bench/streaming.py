"""Sections 2 and 5: what adk_retry does to a stream's first chunk and to memory.

Both use :class:`~bench.fakes.StreamLlm`. Pass-through mode yields each
chunk as it arrives; ``stream_mode="buffer"`` holds a whole attempt until it
succeeded (all-or-nothing), so its first chunk comes with the last and every
chunk is kept in memory meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns

from adk_retry import RetryPolicy
from bench.fakes import Generate, StreamLlm, drain, make_request, with_retry
from bench.tables import Section, fmt, verdict
from bench.timing import summarize

__all__ = ["Streaming", "measure_memory", "measure_streaming"]

TARGET_TTFB = 1.05


@dataclass(frozen=True)
class Streaming:
    """Section 2's table and the headline's figure."""

    section: Section
    pass_through_ratio: float
    buffer_ratio: float


def stream_variants(chunks: int, gap: float) -> dict[str, tuple[str, Callable[[], Generate]]]:
    """The three ways a stream is read: bare, adk_retry pass-through, adk_retry buffer."""

    def build(policy: RetryPolicy | None, wrap: bool = True) -> Callable[[], Generate]:
        def make() -> Generate:
            model = StreamLlm(model="stream", chunks=chunks, gap=gap)
            return (with_retry(model, policy) if wrap else model).generate_content_async

        return make

    return {
        "bare": ("bare stream (no retry layer)", build(None, wrap=False)),
        "pass_through": ('adk_retry, `stream_mode="pass_through"` (default)', build(None)),
        "buffer": ('adk_retry, `stream_mode="buffer"`', build(RetryPolicy(stream_mode="buffer"))),
    }


async def _first_and_last(generate: Generate) -> tuple[float, float]:
    """Milliseconds to the first and to the last response of one streamed call."""
    start = perf_counter_ns()
    first = None
    async for _ in generate(make_request(), True):
        if first is None:
            first = perf_counter_ns() - start
    last = perf_counter_ns() - start
    return (first if first is not None else last) / 1e6, last / 1e6


async def measure_streaming(*, chunks: int, gap: float, rounds: int, streams: int) -> Streaming:
    """Time to first chunk, every variant streaming at the same time, ``rounds`` times."""
    variants = stream_variants(chunks, gap)
    generates = {key: make() for key, (_, make) in variants.items()}
    first: dict[str, list[float]] = {key: [] for key in variants}
    last: dict[str, list[float]] = {key: [] for key in variants}
    ratios: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(rounds):
        keys = [key for key in variants for _ in range(streams)]
        results = await asyncio.gather(*(_first_and_last(generates[key]) for key in keys))
        this_round = {key: [r for k, r in zip(keys, results, strict=True) if k == key] for key in variants}
        bare = statistics.median(r[0] for r in this_round["bare"])
        for key, values in this_round.items():
            first[key] += [r[0] for r in values]
            last[key] += [r[1] for r in values]
            ratios[key].append(statistics.median(r[0] for r in values) / bare)
    section = Section(
        "streaming",
        "2. Streaming: time to first chunk",
        f"A fake model streams {chunks} partial responses {fmt(gap * 1000, 0)} ms apart (the first after "
        f"{fmt(gap * 1000, 0)} ms), then the aggregated answer; `stream=True`. All variants stream at the "
        f"same time, {streams} streams each, {rounds} rounds; the ratio is taken per round against the bare "
        "stream of the same round.",
        [
            "variant",
            "first chunk ms (median)",
            "first chunk ms (min)",
            "x bare (median)",
            "x bare (max)",
            "last chunk ms (median)",
        ],
    )
    for key, (label, _) in variants.items():
        ttfb, ratio = summarize(first[key]), summarize(ratios[key])
        section.add(
            label,
            fmt(ttfb.median),
            fmt(ttfb.min),
            fmt(ratio.median, 3, "x"),
            fmt(max(ratios[key]), 3, "x"),
            fmt(summarize(last[key]).median, 1),
        )
    pass_through = summarize(ratios["pass_through"]).median
    buffer = summarize(ratios["buffer"]).median
    section.notes.append(
        f"Pass-through / bare: **{fmt(pass_through, 3)}x** (target <= {TARGET_TTFB}: "
        f"{verdict(pass_through, TARGET_TTFB)}). Buffer mode delivers the first chunk with the last one "
        f"({fmt(buffer, 1)}x): it is the price of all-or-nothing streams."
    )
    return Streaming(section, pass_through, buffer)


async def _peak_bytes(generate: Generate) -> int:
    """Peak traced bytes above the starting point while one stream is consumed and dropped."""
    gc.collect()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    await drain(generate, make_request(), True)
    return tracemalloc.get_traced_memory()[1] - base


async def measure_memory(*, chunks: int, rounds: int) -> Section:
    """Peak memory per streamed chunk (tracemalloc), pass-through against buffer."""
    variants = stream_variants(chunks, 0.0)
    generates = {key: make() for key, (_, make) in variants.items()}
    peaks: dict[str, list[int]] = {key: [] for key in variants}
    tracemalloc.start()
    try:
        for _ in range(rounds):
            for key, generate in generates.items():
                peaks[key].append(await _peak_bytes(generate))
    finally:
        tracemalloc.stop()
    section = Section(
        "memory",
        "5. Memory per streamed chunk",
        f"Peak memory traced by `tracemalloc` while one {chunks}-chunk stream (no delays) is consumed and "
        f"each chunk dropped by the caller, median of {rounds} rounds; per chunk = peak / {chunks}.",
        ["variant", "peak KiB", "bytes per chunk", "added bytes per chunk"],
    )
    bare = statistics.median(peaks["bare"])
    for key, (label, _) in variants.items():
        peak = statistics.median(peaks[key])
        section.add(label, fmt(peak / 1024, 1), fmt(peak / chunks, 0), fmt((peak - bare) / chunks, 0))
    section.notes.append(
        "The bare row is the fake model's own memory (it keeps the text for its final aggregated answer, "
        "as `LiteLlm` does). Buffer mode keeps every chunk of an attempt until the attempt ends; "
        "pass-through keeps none of them (it only holds back empty chunks until the first real one)."
    )
    return section
