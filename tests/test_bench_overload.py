"""The overload benchmark's own arithmetic: recovery times, percentiles, the pacer's spacing."""

from __future__ import annotations

import asyncio
import itertools
import math
import time

import pytest

from bench.overload import Call, OutageRun, Pacer, _percentile, variants


def test_percentile_is_nearest_rank() -> None:
    assert _percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0
    assert _percentile(list(range(1, 101)), 0.99) == 99
    assert math.isnan(_percentile([], 0.5))


def test_answered_after_counts_each_callers_first_answer_after_recovery() -> None:
    up = 10.0
    calls = [
        [Call(False, 0.0, 9.0), Call(True, 9.5, 10.2)],  # answered 0.2 s after recovery
        [Call(True, 0.0, 9.9), Call(True, 10.0, 11.0)],  # the answer before recovery does not count
        [Call(False, 0.0, 12.0)],  # never answered
    ]
    run = OutageRun(variants()[0], calls, dead_requests=6, down=4.0, up=up)

    assert run.answered_after(0.5) == pytest.approx(1.0)
    assert run.answered_after(0.3) == pytest.approx(0.2)
    assert run.answered_after(0.9) == math.inf
    assert run.dead_rate == pytest.approx(6 / 3 / 4.0)
    assert run.dead_rate_after_first == pytest.approx((6 - 3) / 3 / 4.0)  # each caller's first request left out
    assert run.success == pytest.approx(3 / 5)


@pytest.mark.asyncio
async def test_pacer_spaces_actual_releases() -> None:
    pacer = Pacer(rate=200)  # 5 ms apart: 4 gaps, 20 ms in all
    released: list[float] = []

    async def one() -> None:
        await pacer.wait()
        released.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(5)))

    gaps = [later - earlier for earlier, later in itertools.pairwise(released)]
    assert min(gaps) >= 0.005 - 1e-4


def test_every_variant_names_its_scenarios() -> None:
    keys = [variant.key for variant in variants()]
    assert len(keys) == len(set(keys))
    assert {"pacer", "router", "transient", "transient_budget"} <= set(keys)


def test_only_the_in_phase_row_starts_its_callers_together() -> None:
    in_phase = [variant.key for variant in variants() if variant.in_phase]
    assert in_phase == ["transient_breaker_wait_in_phase"]
