"""Delay arithmetic: the schedule formula, jitter bounds, the cap and overflow."""

from __future__ import annotations

import math

import pytest

from adk_retry.core._backoff import base_delay_for, jittered

# A grid standing in for a property-based check (hypothesis is not installed).
BASES = (0.1, 0.5, 1.0, 3.0)
MULTIPLIERS = (1.0, 1.5, 2.0, 3.0)
CAPS = (1.0, 8.0, 60.0)
U_VALUES = (0.0, 0.25, 0.5, 0.75, 0.999999)


@pytest.mark.parametrize(("k", "expected"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 8.0), (5, 8.0)])
def test_default_exponential_schedule(k: int, expected: float) -> None:
    assert base_delay_for(k) == expected


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("multiplier", MULTIPLIERS)
@pytest.mark.parametrize("cap", CAPS)
def test_exponential_is_min_of_growth_and_cap(base: float, multiplier: float, cap: float) -> None:
    for k in range(6):
        got = base_delay_for(k, base=base, multiplier=multiplier, cap=cap)
        assert got == min(base * multiplier**k, cap)
        assert got <= cap


def test_exponential_is_non_decreasing_up_to_the_cap() -> None:
    delays = [base_delay_for(k, base=0.5, multiplier=1.7, cap=30.0) for k in range(40)]
    assert delays == sorted(delays)
    assert delays[-1] == 30.0


@pytest.mark.parametrize("k", [1_024, 10_000, 10**9])
def test_huge_attempt_number_gives_cap_not_error(k: int) -> None:
    assert base_delay_for(k) == 8.0
    assert base_delay_for(k, base=0.5, multiplier=3.0, cap=42.0) == 42.0


def test_product_overflowing_to_inf_gives_cap() -> None:
    # 2.0 ** 1023 is finite, times 8 is inf: no OverflowError, still the cap.
    assert base_delay_for(1023, base=8.0, multiplier=2.0, cap=8.0) == 8.0


def test_integer_multiplier_overflow_gives_cap() -> None:
    assert base_delay_for(5_000, base=1.0, multiplier=2, cap=8.0) == 8.0


def test_zero_base_stays_zero_for_huge_attempt_numbers() -> None:
    assert base_delay_for(10, base=0.0) == 0.0
    assert base_delay_for(2_000, base=0.0, multiplier=2.0, cap=8.0) == 0.0


@pytest.mark.parametrize(("k", "expected"), [(0, 2.0), (1, 4.0), (2, 6.0), (3, 8.0), (4, 10.0), (10, 10.0)])
def test_linear_schedule(k: int, expected: float) -> None:
    assert base_delay_for(k, backoff="linear", base=2.0, multiplier=5.0, cap=10.0) == expected


@pytest.mark.parametrize("k", [0, 1, 5, 10**9])
def test_fixed_schedule_ignores_attempt_and_multiplier(k: int) -> None:
    assert base_delay_for(k, backoff="fixed", base=10.0, multiplier=3.0, cap=60.0) == 10.0


def test_fixed_schedule_is_capped() -> None:
    assert base_delay_for(0, backoff="fixed", base=10.0, cap=4.0) == 4.0


def test_jitter_lower_bound_at_u_zero() -> None:
    assert jittered(5.0, 0.2, 0.0) == pytest.approx(4.0)


def test_jitter_midpoint_is_the_delay() -> None:
    assert jittered(5.0, 0.2, 0.5) == 5.0


def test_jitter_upper_bound_approached_as_u_tends_to_one() -> None:
    assert jittered(5.0, 0.2, 0.999999) == pytest.approx(6.0)
    assert jittered(5.0, 0.2, 0.999999) < 6.0
    assert jittered(5.0, 0.2, math.nextafter(1.0, 0.0)) <= 6.0


def test_zero_jitter_returns_delay_for_any_u() -> None:
    assert {jittered(3.0, 0.0, u) for u in U_VALUES} == {3.0}


def test_jitter_is_applied_after_the_cap() -> None:
    capped = base_delay_for(10)
    assert capped == 8.0
    assert jittered(capped, 0.2, 0.0) == pytest.approx(6.4)
    assert jittered(capped, 0.2, math.nextafter(1.0, 0.0)) == pytest.approx(9.6)


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("u", U_VALUES)
@pytest.mark.parametrize("k", [0, 2, 3, 7])
def test_jittered_delay_lies_within_bounds(jitter: float, u: float, k: int) -> None:
    delay = base_delay_for(k)
    got = jittered(delay, jitter, u)
    assert delay * (1 - jitter) - 1e-12 <= got <= delay * (1 + jitter) + 1e-12
    assert got >= 0.0


def test_jitter_is_monotonic_in_u() -> None:
    values = [jittered(8.0, 0.2, u) for u in U_VALUES]
    assert values == sorted(values)
