"""The benchmark page's met/missed verdicts for issue 11's targets: pure functions over a run's numbers."""

from __future__ import annotations

import math

import pytest

from bench.overload import Call, FallbackRun, Overload, TailRun, Variant
from bench.tables import Section
from bench.verdicts import (
    TARGETS,
    Check,
    fallback_checks,
    hedging_checks,
    hedging_floor,
    outage_checks,
    rate_checks,
    render,
    verdict_notes,
    with_verdicts,
)


def met(checks: list[Check]) -> list[bool | None]:
    return [check.met for check in checks]


@pytest.mark.parametrize(
    ("success", "goodput", "rejected", "expected"),
    [
        (1.0, 1.0, 0.0, [True, True, True]),
        (0.99, 0.95, 0.05, [True, True, True]),  # the bounds themselves are met
        (0.989, 0.949, 0.051, [False, False, False]),
        (0.5, 0.4, math.inf, [False, False, False]),  # no success at all: a miss, not n/a
        (math.nan, math.nan, math.nan, [None, None, None]),
    ],
)
def test_rate_targets(success: float, goodput: float, rejected: float, expected: list[bool | None]) -> None:
    assert met(rate_checks(success=success, goodput=goodput, rejected_per_success=rejected, pacer=1.0)) == expected


@pytest.mark.parametrize(
    ("dead", "half", "ninety", "failed", "expected"),
    [
        (0.1, 0.5, 1.0, 0, [True, True, True, True]),
        (0.11, 0.51, 1.01, 1, [False, False, False, False]),
        (0.0, math.inf, math.inf, 0, [True, False, False, True]),  # inf: never answered after recovery
    ],
)
def test_outage_targets(dead: float, half: float, ninety: float, failed: int, expected: list[bool]) -> None:
    checks = outage_checks(dead_rate=dead, half=half, ninety=ninety, failed_with_time_left=failed)
    assert met(checks) == expected


@pytest.mark.parametrize(("success", "expected"), [(1.0, True), (59 / 60, False), (math.nan, None)])
def test_fallback_target(success: float, expected: bool | None) -> None:
    assert met(fallback_checks(success=success)) == [expected]


@pytest.mark.parametrize(
    ("ratio", "extra", "expected"),
    [(1.2, 0.15, [True, True]), (1.21, 0.151, [False, False]), (0.9, 0.3, [True, False])],
)
def test_hedging_targets(ratio: float, extra: float, expected: list[bool]) -> None:
    assert met(hedging_checks(ratio=ratio, extra=extra)) == expected


def test_a_miss_says_why_from_the_editable_table_or_that_nobody_said() -> None:
    check = Check("hedging.ratio", "1.50 x", False)
    assert render("row", check, {"hedging.ratio": "because"}) == (
        f"Target {TARGETS['hedging.ratio']}, row: 1.50 x: **missed**; why: because."
    )
    assert "no reason recorded yet" in render("row", check, {})
    assert render("row", Check("hedging.ratio", "1.10 x", True), {}).endswith(": met")
    assert render("row", Check("hedging.ratio", "n/a x", None), {}).endswith("n/a (not measured)")


def _calls(firsts: list[float], ok: bool = True) -> list[Call]:
    return [Call(ok, 0.0, first + 0.1, first) for first in firsts]


def test_a_runs_numbers_become_lines_only_for_the_judged_rows() -> None:
    hedge, plain = Variant("hedge", "hedged", lambda _t: None), Variant("transient", "plain", lambda _t: None)  # type: ignore[arg-type,return-value]
    healthy, slow = _calls([0.1] * 100), _calls([0.1] * 98 + [0.5, 0.5])
    tail = [TailRun(v, healthy, slow, 100, 110, 10) for v in (hedge, plain)]
    chain = Variant("fallbacks", "chain", lambda _t: None)  # type: ignore[arg-type,return-value]
    down = _calls([0.1] * 9) + _calls([0.1], ok=False)
    overload = Overload([], tail=tail, fallback=[FallbackRun(chain, down, down, 10, 9)])

    notes = verdict_notes(overload, why={"fallback.success": "the primary's breaker"})

    # p99 of 100 by nearest rank is the 99th: 0.5 s against 0.1 s, 10 % extra.
    assert notes["overload-tail"] == [
        f"Target {TARGETS['hedging.ratio']}, hedged: 5.00 x: **missed**; why: no reason recorded yet "
        "(bench/verdicts.py, WHY).",
        f"Target {TARGETS['hedging.extra']}, hedged: 10.0 %: met",
        "The floor for any hedging client within 15 % extra requests, from this row's healthy first chunks "
        "(delay at their p94.4, plus a fresh attempt's p90, over their p99): 2.00 x.",
    ]
    assert notes["overload-fallback"] == [
        f"Target {TARGETS['fallback.success']}, chain: 90.0 %: **missed**; why: the primary's breaker."
    ]
    assert notes["overload-rate"] == notes["overload-outage"] == []

    section = Section("overload-tail", "8.", "", ["a"], notes=["first"])
    (annotated,) = with_verdicts([section], overload)
    assert annotated.notes[0] == "first"
    assert len(annotated.notes) == 4  # the note, two verdicts, the floor
    assert section.notes == ["first"]  # the run's own section is left as it was


@pytest.mark.parametrize(
    ("healthy", "stalled", "extra", "expected"),
    [
        ([float(t) for t in range(1, 101)], 0.1, 0.15, (95 + 90) / 99),  # evenly spread: near 1.9
        ([1.0] * 100, 0.1, 0.15, 2.0),  # identical attempts: a stall costs one delay plus one attempt
        ([1.0] * 90 + [10.0] * 10, 0.1, 0.15, 1.1),  # a heavy tail leaves room under 1.2
        ([float(t) for t in range(1, 101)], 0.1, 0.3, (78 + 90) / 99),  # more extra allowed: an earlier delay
        ([], 0.1, 0.15, math.nan),
        ([1.0, 2.0], 0.2, 0.15, math.nan),  # more stalls than the extra allowed: no hedging plan fits
    ],
)
def test_hedging_floor(healthy: list[float], stalled: float, extra: float, expected: float) -> None:
    floor = hedging_floor(healthy, stalled=stalled, extra=extra)
    if math.isnan(expected):
        assert math.isnan(floor)
    else:
        assert floor == pytest.approx(expected)
