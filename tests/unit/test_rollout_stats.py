"""The statistics of safe rollouts: intervals against published values and scipy, and the
pass / fail / inconclusive / skipped rule of every gate."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest

from aiweb.rollout.stats import (
    Z95,
    GateResult,
    accuracy_delta_gate,
    agreement_gate,
    combine,
    error_rate_gate,
    latency_gate,
    newcombe_interval,
    quantile_interval,
    wilson_interval,
)

# ------------------------------------------------------------------------------ intervals


def test_z95_is_the_normal_quantile() -> None:
    assert math.erf(Z95 / math.sqrt(2)) == pytest.approx(0.95, abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 17, 30, 100, 1000, 12345])
def test_wilson_matches_scipy(n: int) -> None:
    ks = sorted({0, 1, 2, n // 3, n // 2, n - 1, n} & set(range(n + 1)))
    for k in ks:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        lower, upper = wilson_interval(k, n)
        assert lower == pytest.approx(ci.low, abs=1e-12), (k, n)
        assert upper == pytest.approx(ci.high, abs=1e-12), (k, n)


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        # R. G. Newcombe, Statistics in Medicine 17:857 (1998), Table I, method 3 (Wilson)
        (81, 263, (0.2553, 0.3662)),
        (15, 148, (0.0624, 0.1605)),
        (0, 20, (0.0, 0.1611)),
        (1, 29, (0.0061, 0.1718)),
    ],
)
def test_wilson_published_values(successes: int, n: int, expected: tuple[float, float]) -> None:
    assert wilson_interval(successes, n) == pytest.approx(expected, abs=5e-5)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lower, upper = wilson_interval(0, 50)
    assert lower == 0.0
    assert 0 < upper < 0.1
    lower, upper = wilson_interval(50, 50)
    assert upper == 1.0
    assert 0.9 < lower < 1
    # a wider level gives a wider interval
    narrow, wide = wilson_interval(10, 40, z=1.0), wilson_interval(10, 40, z=3.0)
    assert wide[0] < narrow[0] < 0.25 < narrow[1] < wide[1]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # R. G. Newcombe, Statistics in Medicine 17:873 (1998), Table II, method 10
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
        ((0, 10, 0, 20), (-0.1611, 0.2775)),
        ((10, 10, 0, 20), (0.6791, 1.0)),
    ],
)
def test_newcombe_published_values(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    assert newcombe_interval(*counts) == pytest.approx(expected, abs=5e-5)


def test_newcombe_empty_sample() -> None:
    assert newcombe_interval(0, 0, 5, 10) == (-1.0, 1.0)
    assert newcombe_interval(5, 10, 0, 0) == (-1.0, 1.0)


counts = st.integers(min_value=1, max_value=100_000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


@given(counts)
@settings(max_examples=300, deadline=None)
def test_wilson_properties(sn: tuple[int, int]) -> None:
    s, n = sn
    lower, upper = wilson_interval(s, n)
    assert 0.0 <= lower <= s / n <= upper <= 1.0
    assert lower < upper


@given(counts, st.integers(min_value=2, max_value=20))
@settings(max_examples=300, deadline=None)
def test_wilson_shrinks_with_more_data(sn: tuple[int, int], k: int) -> None:
    s, n = sn
    small = wilson_interval(s, n)
    large = wilson_interval(k * s, k * n)
    assert large[1] - large[0] < small[1] - small[0]
    # both ends move towards the (same) estimate
    assert small[0] <= large[0] <= s / n <= large[1] <= small[1]


@given(counts, counts)
@settings(max_examples=300, deadline=None)
def test_newcombe_properties(a: tuple[int, int], b: tuple[int, int]) -> None:
    (s1, n1), (s2, n2) = a, b
    d = s1 / n1 - s2 / n2
    lower, upper = newcombe_interval(s1, n1, s2, n2)
    assert -1.0 <= lower <= d <= upper <= 1.0
    assert lower < upper
    # swapping the samples mirrors the interval
    mirrored = newcombe_interval(s2, n2, s1, n1)
    assert mirrored == pytest.approx((-upper, -lower), abs=1e-12)


@given(counts, counts, st.integers(min_value=2, max_value=20))
@settings(max_examples=300, deadline=None)
def test_newcombe_shrinks_with_more_data(a: tuple[int, int], b: tuple[int, int], k: int) -> None:
    (s1, n1), (s2, n2) = a, b
    small = newcombe_interval(s1, n1, s2, n2)
    large = newcombe_interval(k * s1, k * n1, k * s2, k * n2)
    assert large[1] - large[0] < small[1] - small[0]


def test_quantile_nearest_rank_estimate_and_ranks() -> None:
    values = [float(v) for v in range(1, 201)]
    random.Random(7).shuffle(values)  # order does not matter
    # n·q = 190; z·sqrt(200·0.95·0.05) = 6.04: ranks floor(183.96) = 183, ceil(196.04) = 197
    assert quantile_interval(values, 0.95) == (190.0, 183.0, 197.0)
    assert quantile_interval(values, 0.951)[0] == 191.0  # ceil(190.2)
    # q·n integral up to rounding (0.95 * 20 == 19.000000000000004 in some orders)
    assert quantile_interval([float(v) for v in range(1, 21)], 0.95)[0] == 19.0
    assert quantile_interval([float(v) for v in range(1, 11)], 0.9)[0] == 9.0
    median = quantile_interval([float(v) for v in range(1, 101)], 0.5)
    assert median == (50.0, 40.0, 60.0)  # 50 ± 9.8 -> ranks floor(40.2), ceil(59.8)


def test_quantile_unbounded_ends() -> None:
    assert quantile_interval([], 0.95) == (None, None, None)
    assert quantile_interval([12.0], 0.95) == (12.0, None, None)
    # 10 values: the lower rank is 8, the upper one (11) is past the last value
    estimate, lower, upper = quantile_interval([float(v) for v in range(10, 0, -1)], 0.95)
    assert (estimate, lower, upper) == (10.0, 8.0, None)
    # a low quantile runs out at the bottom instead: 0.5 ± 1.35 -> ranks -1 and 2
    estimate, lower, upper = quantile_interval([float(v) for v in range(1, 11)], 0.05)
    assert (estimate, lower, upper) == (1.0, None, 2.0)


@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=300),
    st.floats(min_value=0.01, max_value=0.99),
)
@settings(max_examples=300, deadline=None)
def test_quantile_interval_properties(values: list[float], q: float) -> None:
    estimate, lower, upper = quantile_interval(values, q)
    assert estimate in values
    if lower is not None:
        assert lower in values
        assert lower <= estimate
    if upper is not None:
        assert upper in values
        assert estimate <= upper
    # the estimate is the nearest-rank quantile: at least q·n values are <= it
    n = len(values)
    assert sum(v <= estimate for v in values) >= q * n - 1e-9
    assert sum(v < estimate for v in values) < q * n + 1e-9


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_quantile_ranks_have_at_least_nominal_exact_coverage(q: float) -> None:
    # With values 1..n the interval's ends are its ranks r and s; the exact coverage is
    # P(r <= Binomial(n, q) <= s - 1). Rounding the ranks outwards keeps it near or above
    # 95% (the normal approximation of a skewed binomial costs up to half a point).
    checked = 0
    for n in range(20, 1001, 7):
        _, lower, upper = quantile_interval([float(v) for v in range(1, n + 1)], q)
        if lower is None or upper is None:
            continue
        r, s = int(lower), int(upper)
        coverage = binom.cdf(s - 1, n, q) - binom.cdf(r - 1, n, q)
        assert 0.945 <= coverage <= 0.99, (n, r, s, coverage)
        checked += 1
    assert checked > 50


def test_quantile_interval_covers_the_true_p95_by_simulation() -> None:
    rng = random.Random(20240601)
    n, draws = 200, 2000
    true_p95 = math.log(20.0)  # exponential(1): F(x) = 1 - exp(-x) = 0.95
    covered = 0
    for _ in range(draws):
        estimate, lower, upper = quantile_interval([rng.expovariate(1.0) for _ in range(n)], 0.95)
        assert estimate is not None
        assert lower is not None
        assert upper is not None
        covered += lower <= true_p95 <= upper
    coverage = covered / draws
    # Exact coverage of ranks 183 and 197 at n = 200 is 97.9% (the outward rounding is
    # conservative); the simulation must agree within sampling error (sd 0.3 point).
    exact = binom.cdf(196, n, 0.95) - binom.cdf(182, n, 0.95)
    assert abs(coverage - exact) < 4 * math.sqrt(exact * (1 - exact) / draws)
    assert 0.93 <= coverage <= 0.99


# ---------------------------------------------------------------------------------- gates


def _json_ready(result: GateResult) -> dict[str, Any]:
    data = result.as_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    return data


class TestErrorRateGate:
    def test_clearly_bad_candidate_fails_before_min_samples(self) -> None:
        result = error_rate_gate(10, 50, max_error_rate=0.01, min_samples=500)
        assert result.result == "fail"
        assert result.n == 50
        assert result.value == pytest.approx(0.2)
        assert result.interval is not None
        assert result.interval[0] > 0.01
        assert "20.0%" in result.reason
        assert "1.0%" in result.reason
        assert "50 requests" in result.reason
        assert "above" in result.reason

    def test_good_candidate_passes_exactly_at_min_samples(self) -> None:
        passed = error_rate_gate(2, 500, max_error_rate=0.01, min_samples=500)
        assert passed.result == "pass"
        held = error_rate_gate(2, 499, max_error_rate=0.01, min_samples=500)
        assert held.result == "inconclusive"
        assert "1 more request needed" in held.reason
        assert "499 requests" in held.reason

    def test_borderline_estimate_above_bound_does_not_fail(self) -> None:
        # 1.4% observed against a 1% ceiling, but the interval reaches well below 1%
        result = error_rate_gate(7, 500, max_error_rate=0.01, min_samples=500)
        assert result.value is not None
        assert result.value > 0.01
        assert result.interval is not None
        assert result.interval[0] < 0.01
        assert result.result == "pass"
        assert "not significantly" in result.reason
        assert error_rate_gate(7, 400, 0.01, min_samples=500).result == "inconclusive"

    def test_single_request_error_is_significant_against_a_tight_bound(self) -> None:
        # One error in one request: the Wilson lower bound is 1 / (1 + z²) = 20.7%
        result = error_rate_gate(1, 1, max_error_rate=0.01, min_samples=500)
        assert result.interval == pytest.approx((1 / (1 + Z95**2), 1.0))
        assert result.result == "fail"
        assert error_rate_gate(1, 1, max_error_rate=0.25, min_samples=500).result == (
            "inconclusive"
        )

    def test_no_requests(self) -> None:
        result = error_rate_gate(0, 0, max_error_rate=0.01, min_samples=100)
        assert (result.result, result.value, result.interval, result.n) == (
            "inconclusive",
            None,
            None,
            0,
        )
        assert "100 more requests needed" in result.reason
        assert error_rate_gate(0, 0, 0.01, min_samples=0).result == "pass"

    def test_none_bound_is_skipped_with_the_numbers(self) -> None:
        result = error_rate_gate(300, 400, max_error_rate=None, min_samples=10)
        assert result.result == "skipped"
        assert result.bound is None
        assert result.value == pytest.approx(0.75)
        assert result.interval == wilson_interval(300, 400)
        assert result.n == 400
        empty = error_rate_gate(0, 0, None, 10)
        assert (empty.result, empty.value, empty.interval) == ("skipped", None, None)

    def test_as_dict(self) -> None:
        result = error_rate_gate(5, 100, 0.01, 50)
        data = _json_ready(result)
        assert data["gate"] == "max_error_rate"
        assert data["interval"] == list(wilson_interval(5, 100))
        assert data["n"] == 100
        assert data["bound"] == 0.01


class TestLatencyGate:
    def test_clearly_slow_candidate_fails_before_min_samples(self) -> None:
        latencies = [300.0 + i for i in range(50)]
        result = latency_gate(latencies, max_p95_ms=200.0, min_samples=500)
        assert result.result == "fail"
        assert result.n == 50
        assert result.interval is not None
        assert result.interval[0] > 200
        assert "200 ms" in result.reason
        assert "50 requests" in result.reason

    def test_fails_on_few_requests_when_the_lower_end_is_known(self) -> None:
        # 10 requests: the p95 is bounded from below (8th value) but not from above
        result = latency_gate([1000.0] * 10, max_p95_ms=200.0, min_samples=500)
        assert result.result == "fail"
        assert result.interval == (1000.0, math.inf)
        assert _json_ready(result)["interval"] == [1000.0, None]
        assert "unbounded" in result.reason

    def test_cannot_fail_without_a_lower_bound(self) -> None:
        result = latency_gate([10_000.0], max_p95_ms=200.0, min_samples=500)
        assert result.result == "inconclusive"
        assert result.value == 10_000.0
        assert result.interval is None
        assert "499 more requests needed" in result.reason
        assert _json_ready(result)["interval"] is None

    def test_good_candidate_passes_exactly_at_min_samples(self) -> None:
        latencies = [10.0 + (i % 90) for i in range(500)]
        random.Random(3).shuffle(latencies)
        assert latency_gate(latencies, 200.0, min_samples=500).result == "pass"
        held = latency_gate(latencies[:-1], 200.0, min_samples=500)
        assert held.result == "inconclusive"
        assert "1 more request needed" in held.reason

    def test_borderline_p95_just_over_the_bound_does_not_fail(self) -> None:
        latencies = [2.16 * i for i in range(1, 101)]  # p95 = 205.2 ms, lower end 194.4 ms
        result = latency_gate(latencies, max_p95_ms=200.0, min_samples=100)
        assert result.value == pytest.approx(205.2)
        assert result.interval is not None
        assert result.interval[0] == pytest.approx(194.4)
        assert result.result == "pass"
        assert "not significantly" in result.reason
        assert latency_gate(latencies, 200.0, min_samples=101).result == "inconclusive"

    def test_none_bound_is_skipped(self) -> None:
        latencies = [float(v) for v in range(1, 201)]
        result = latency_gate(latencies, max_p95_ms=None, min_samples=10)
        assert result.result == "skipped"
        assert (result.value, result.interval, result.n) == (190.0, (183.0, 197.0), 200)
        empty = latency_gate([], None, 10)
        assert (empty.result, empty.value, empty.interval, empty.n) == ("skipped", None, None, 0)

    def test_no_latencies(self) -> None:
        result = latency_gate([], 200.0, min_samples=20)
        assert (result.result, result.value, result.interval) == ("inconclusive", None, None)
        assert "20 more requests needed" in result.reason


class TestAccuracyDeltaGate:
    def test_clearly_worse_candidate_fails_before_min_samples(self) -> None:
        result = accuracy_delta_gate(60, 100, 900, 1000, min_delta=-0.02, min_samples=400)
        assert result.result == "fail"
        assert result.n == 100
        assert result.value == pytest.approx(-0.3)
        assert result.interval is not None
        assert result.interval[1] < -0.02
        assert "-30.0 points" in result.reason
        assert "-2.0 points" in result.reason
        assert "100 vs 1000" in result.reason

    def test_equal_candidate_passes_exactly_at_min_samples(self) -> None:
        assert accuracy_delta_gate(360, 400, 360, 400, -0.02, min_samples=400).result == "pass"
        # n is the smaller side
        held = accuracy_delta_gate(359, 399, 900, 1000, -0.02, min_samples=400)
        assert held.n == 399
        assert held.result == "inconclusive"
        assert "1 more labelled prediction needed on each side" in held.reason

    def test_borderline_loss_beyond_the_allowance_does_not_fail(self) -> None:
        # 3 points worse against a 2-point allowance, but the interval reaches above -2
        result = accuracy_delta_gate(348, 400, 360, 400, -0.02, min_samples=400)
        assert result.value == pytest.approx(-0.03)
        assert result.interval is not None
        assert result.interval[1] > -0.02
        assert result.result == "pass"
        assert "not significantly" in result.reason

    def test_empty_side(self) -> None:
        result = accuracy_delta_gate(0, 0, 90, 100, -0.02, min_samples=50)
        assert (result.result, result.value, result.interval, result.n) == (
            "inconclusive",
            None,
            None,
            0,
        )
        assert "candidate" in result.reason

    def test_none_bound_is_skipped(self) -> None:
        result = accuracy_delta_gate(10, 100, 90, 100, None, min_samples=50)
        assert result.result == "skipped"
        assert result.value == pytest.approx(-0.8)
        assert result.interval == newcombe_interval(10, 100, 90, 100)
        assert result.n == 100

    def test_positive_min_delta_requires_a_proven_gain_to_not_fail(self) -> None:
        # min_delta > 0: "must be at least 5 points better"; equal accuracy on many samples
        # shows it is not
        result = accuracy_delta_gate(9000, 10000, 9000, 10000, 0.05, min_samples=100)
        assert result.result == "fail"


class TestAgreementGate:
    def test_clearly_disagreeing_candidate_fails_before_min_samples(self) -> None:
        result = agreement_gate(40, 50, min_agreement=0.95, min_samples=500)
        assert result.result == "fail"
        assert result.interval is not None
        assert result.interval[1] < 0.95
        assert "80.0%" in result.reason
        assert "95.0%" in result.reason
        assert "50 compared requests" in result.reason

    def test_good_candidate_passes_exactly_at_min_samples(self) -> None:
        assert agreement_gate(490, 500, 0.95, min_samples=500).result == "pass"
        held = agreement_gate(489, 499, 0.95, min_samples=500)
        assert held.result == "inconclusive"
        assert "1 more compared request needed" in held.reason

    def test_borderline_agreement_just_under_the_bound_does_not_fail(self) -> None:
        result = agreement_gate(470, 500, 0.95, min_samples=500)
        assert result.value == pytest.approx(0.94)
        assert result.interval is not None
        assert result.interval[1] > 0.95
        assert result.result == "pass"
        assert agreement_gate(470, 500, 0.95, min_samples=501).result == "inconclusive"

    def test_none_bound_is_skipped(self) -> None:
        result = agreement_gate(1, 100, None, min_samples=10)
        assert (result.result, result.value, result.n) == ("skipped", 0.01, 100)
        assert result.interval == wilson_interval(1, 100)


# ------------------------------------------------------------------------------ validation

nan = float("nan")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wilson_interval(-1, 10), "successes must not be negative"),
        (lambda: wilson_interval(11, 10), "must not exceed"),
        (lambda: wilson_interval(1, -1), "n must not be negative"),
        (lambda: wilson_interval(1.5, 10), "integer"),  # type: ignore[arg-type]
        (lambda: wilson_interval(1, 10, z=0.0), "z must be"),
        (lambda: newcombe_interval(1, 10, 11, 10), "s2 .11. must not exceed n2"),
        (lambda: quantile_interval([1.0], 0.0), "q must lie"),
        (lambda: quantile_interval([1.0], 1.0), "q must lie"),
        (lambda: quantile_interval([1.0, nan], 0.5), "NaN"),
        (lambda: error_rate_gate(-1, 10, 0.01, 10), "errors must not be negative"),
        (lambda: error_rate_gate(11, 10, 0.01, 10), "must not exceed"),
        (lambda: error_rate_gate(1, 10, nan, 10), "NaN"),
        (lambda: error_rate_gate(1, 10, 1.5, 10), "between 0 and 1"),
        (lambda: error_rate_gate(1, 10, -0.1, 10), "between 0 and 1"),
        (lambda: error_rate_gate(1, 10, 0.01, -1), "min_samples must not be negative"),
        (lambda: latency_gate([1.0, -2.0], 100.0, 10), "non-negative"),
        (lambda: latency_gate([1.0, nan], 100.0, 10), "finite"),
        (lambda: latency_gate([1.0], 0.0, 10), "positive"),
        (lambda: latency_gate([1.0], nan, 10), "positive"),
        (lambda: latency_gate([1.0], math.inf, 10), "positive"),
        (lambda: latency_gate([1.0], 100.0, -5), "min_samples"),
        (lambda: accuracy_delta_gate(11, 10, 5, 10, -0.02, 10), "candidate_correct"),
        (lambda: accuracy_delta_gate(5, 10, -1, 10, -0.02, 10), "baseline_correct"),
        (lambda: accuracy_delta_gate(5, 10, 5, 10, -1.5, 10), "between -1 and 1"),
        (lambda: accuracy_delta_gate(5, 10, 5, 10, nan, 10), "NaN"),
        (lambda: agreement_gate(5, 4, 0.9, 10), "agreed"),
        (lambda: agreement_gate(5, 10, 1.01, 10), "between 0 and 1"),
        (lambda: agreement_gate(5, 10, nan, 10), "NaN"),
    ],
)
def test_invalid_inputs_raise_value_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_bounds_at_the_ends_of_their_range_are_valid() -> None:
    assert error_rate_gate(0, 10, 0.0, 10).result == "pass"  # lower end 0 is not above 0
    assert error_rate_gate(10, 10, 1.0, 10).result == "pass"
    assert agreement_gate(10, 10, 1.0, 10).result == "pass"
    assert accuracy_delta_gate(0, 10, 10, 10, -1.0, 10).result == "pass"


def test_gate_result_rejects_unknown_results() -> None:
    with pytest.raises(ValueError, match="result must be one of"):
        GateResult("min_agreement", "maybe", 0.9, 0.95, (0.9, 1.0), 10, "")


# --------------------------------------------------------------------------------- combine


def _result(outcome: str) -> GateResult:
    return GateResult("min_agreement", outcome, 0.9, None, None, 0, outcome)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["pass", "inconclusive", "fail", "skipped"], "fail"),
        (["fail", "pass"], "fail"),
        (["pass", "inconclusive", "skipped"], "inconclusive"),
        (["inconclusive"], "inconclusive"),
        (["pass", "skipped", "pass"], "pass"),
        (["skipped"], "pass"),
        ([], "pass"),
    ],
)
def test_combine(outcomes: list[str], expected: str) -> None:
    assert combine([_result(o) for o in outcomes]) == expected


def test_combine_real_gates() -> None:
    gates = [
        error_rate_gate(2, 500, 0.01, 500),
        latency_gate([50.0] * 500, 200.0, 500),
        agreement_gate(489, 499, 0.95, 500),
    ]
    assert [g.result for g in gates] == ["pass", "pass", "inconclusive"]
    assert combine(gates) == "inconclusive"
    assert combine([*gates, accuracy_delta_gate(60, 100, 900, 1000, -0.02, 400)]) == "fail"
