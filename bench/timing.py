"""Measuring helpers shared by every section: interleaved rounds, medians and minima.

The machine is shared and absolute times drift, so every figure the page
reports is a ratio or a difference between variants measured side by side:
each round runs every variant once (in a rotated order), and ratios are
taken per round before their median is.
"""

from __future__ import annotations

import gc
import statistics
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter_ns

__all__ = ["Summary", "interleaved", "ns_per_call", "paired", "summarize"]

Call = Callable[[], Awaitable[object]]
"""One call of a variant, with its arguments already bound."""


@dataclass(frozen=True)
class Summary:
    """The median and the minimum of a list of samples."""

    median: float
    min: float


def summarize(samples: Sequence[float]) -> Summary:
    """Median and minimum of ``samples`` (NaN for an empty list)."""
    if not samples:
        return Summary(float("nan"), float("nan"))
    return Summary(statistics.median(samples), min(samples))


async def ns_per_call(call: Call, iterations: int) -> float:
    """Mean nanoseconds per ``await call()`` over ``iterations`` back-to-back calls.

    The garbage collector is paused while timing, as ``timeit`` does, so a
    collection triggered by one variant is not billed to the next. What
    survives the collection before timing is frozen, so later collections
    skip the (large) heap of litellm and ADK and take microseconds.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        start = perf_counter_ns()
        for _ in range(iterations):
            await call()
        return (perf_counter_ns() - start) / iterations
    finally:
        gc.enable()


async def interleaved(
    variants: Mapping[str, Call],
    *,
    iterations: int | Mapping[str, int],
    rounds: int,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Nanoseconds per call of each variant, one sample per round.

    Each round times every variant once (``iterations`` calls, or the
    variant's own count when a mapping is given), starting from a different
    variant each round, so slow drifts of the machine hit all variants
    alike. The first ``warmup`` rounds are run and discarded.
    """
    names = list(variants)
    counts = {name: iterations if isinstance(iterations, int) else iterations[name] for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            value = await ns_per_call(variants[name], counts[name])
            if round_index >= warmup:
                samples[name].append(value)
    return samples


def paired(samples: Mapping[str, Sequence[float]], combine: Callable[[Sequence[float]], float]) -> list[float]:
    """Apply ``combine`` to each round's values (in ``samples`` order): one result per round."""
    columns = list(samples.values())
    return [combine([column[index] for column in columns]) for index in range(len(columns[0]))]
