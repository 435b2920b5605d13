"""Statistics of a safe rollout: is a candidate model version worse than its bounds?

A canary, shadow or A/B rollout watches a candidate model version on live traffic and
judges it against configured bounds (an error-rate ceiling, a p95-latency ceiling, the
accuracy it may lose against the baseline, the agreement it must keep with the baseline).
Live samples are noisy, so a gate is judged with statistics, not with raw counts:

- **skipped** when its bound is ``None`` (the value and its interval are still reported
  when there is data, with the sample count);
- **fail** when the data show at 95% confidence that the candidate is worse than the
  bound: the relevant end of the two-sided 95% confidence interval lies beyond the bound.
  That is a one-sided test at the 2.5% level, which is conservative: a candidate is
  stopped only when the evidence against it is strong. Failing does not wait for the
  minimum sample count, so a clearly bad candidate is stopped early;
- **pass** when it does not fail and the sample count has reached the gate's minimum;
- **inconclusive** otherwise: the rollout is held, and inconclusive never promotes.

The ends that decide a failure:

- error rate: the lower end of the Wilson interval of errors/requests is above
  ``max_error_rate``;
- p95 latency: the lower end of the distribution-free interval of the 95th percentile is
  above ``max_p95_ms`` (with too few requests to bound the p95 from below, it cannot fail);
- accuracy delta: the upper end of Newcombe's interval of candidate accuracy minus
  baseline accuracy is below ``min_delta`` (typically negative: -0.02 means "the candidate
  may be at most 2 points worse");
- agreement: the upper end of the Wilson interval of agreed/compared is below
  ``min_agreement``.

The intervals, in plain words:

- **Wilson score interval** of a proportion (E. B. Wilson, "Probable inference, the law
  of succession, and statistical inference", JASA 22:209-212, 1927): the proportions p
  that a z-test with the standard error computed at p itself would not reject. Unlike
  the textbook "p ± 1.96·SE", it never leaves [0, 1], is not degenerate at 0 or n
  successes, and keeps close to its nominal coverage for small n (L. D. Brown, T. T. Cai,
  A. DasGupta, "Interval estimation for a binomial proportion", Statistical Science
  16:101-133, 2001).
- **Newcombe's hybrid score interval** of a difference of two independent proportions
  ("method 10" of R. G. Newcombe, "Interval estimation for the difference between
  independent proportions: comparison of eleven methods", Statistics in Medicine
  17:873-890, 1998): each side of p1 - p2 is widened by combining, in quadrature, how far
  each proportion's Wilson interval reaches in the corresponding direction.
- **Order-statistic interval of a quantile** (W. J. Conover, *Practical Nonparametric
  Statistics*, 3rd ed., Wiley, 1999, §3.2): the number of observations below the true
  q-quantile is binomial(n, q), whatever the distribution, so a pair of order statistics
  (the r-th and s-th smallest values) brackets the quantile with a known probability. The
  ranks come from the normal approximation n·q ± z·sqrt(n·q·(1 - q)), the lower rounded
  down and the upper rounded up, which errs on the side of a wider interval (coverage of
  95% or a little more).

A caveat an operator should know: the 95% holds for one look at the data. A rollout that
re-evaluates its gates as traffic accumulates looks many times, so over a whole rollout a
good candidate is wrongly failed somewhat more often than 2.5% of the time (the usual
cost of sequential monitoring without an alpha-spending correction).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "GATES",
    "RESULTS",
    "Z95",
    "GateResult",
    "Interval",
    "accuracy_delta_gate",
    "agreement_gate",
    "combine",
    "error_rate_gate",
    "latency_gate",
    "newcombe_interval",
    "quantile_interval",
    "wilson_interval",
]

#: The two-sided 95% quantile of the standard normal distribution, Φ⁻¹(0.975).
Z95: Final = 1.959963984540054

#: A closed interval ``(lower, upper)``.
Interval = tuple[float, float]

#: The gate names, as :attr:`GateResult.gate`.
GATES: Final = ("max_error_rate", "max_latency_p95_ms", "min_accuracy_delta", "min_agreement")
#: The gate outcomes, as :attr:`GateResult.result`.
RESULTS: Final = ("pass", "fail", "inconclusive", "skipped")

#: Tolerance when q·n is an integer up to floating-point rounding (0.95 * 20 and the like).
_RANK_EPS = 1e-9
#: The en dash (U+2013) of ranges in reasons, as in "2.0<dash>4.6%".
_DASH = "\u2013"


# --------------------------------------------------------------------------- validation


def _count(name: str, value: int) -> int:
    """``value`` as a non-negative ``int``; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    try:
        count = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer count, got {value!r}") from None
    if count < 0:
        raise ValueError(f"{name} must not be negative, got {count}")
    return count


def _successes(name: str, successes: int, n_name: str, n: int) -> tuple[int, int]:
    s = _count(name, successes)
    total = _count(n_name, n)
    if s > total:
        raise ValueError(f"{name} ({s}) must not exceed {n_name} ({total})")
    return s, total


def _is_number(x: object) -> bool:
    """A real number (numpy scalars included), not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _z(z: float) -> float:
    if not (_is_number(z) and math.isfinite(z) and z > 0):
        raise ValueError(f"z must be a positive finite number, got {z!r}")
    return float(z)


def _bound(name: str, bound: float | None, low: float, high: float) -> float | None:
    """``bound`` checked to lie in ``[low, high]`` (``None`` passes through)."""
    if bound is None:
        return None
    if not _is_number(bound):
        raise ValueError(f"{name} must be a number or None, got {bound!r}")
    if math.isnan(bound):
        raise ValueError(f"{name} must not be NaN")
    if not low <= bound <= high:
        raise ValueError(f"{name} must lie between {low:g} and {high:g}, got {bound!r}")
    return float(bound)


# ------------------------------------------------------------------------------ intervals


def wilson_interval(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of a binomial proportion.

    The proportions p for which ``|successes/n - p| <= z * sqrt(p * (1 - p) / n)``: the
    center ``(p̂ + z²/2n) / (1 + z²/n)`` plus or minus
    ``z * sqrt(p̂(1 - p̂)/n + z²/4n²) / (1 + z²/n)``, without continuity correction.

    Source: E. B. Wilson, "Probable inference, the law of succession, and statistical
    inference", Journal of the American Statistical Association 22:209-212 (1927).

    Args:
        successes: The number of successes (e.g. errors, agreements), ``0 <= successes <= n``.
        n: The number of trials (e.g. requests).
        z: The standard normal quantile of the two-sided level; the default :data:`Z95`
            gives a 95% interval.

    Returns:
        ``(lower, upper)``, within ``[0, 1]`` and containing ``successes / n``;
        ``(0.0, 1.0)`` when ``n == 0`` (no data bounds the proportion).

    Raises:
        ValueError: If a count is negative or not an integer, ``successes > n``, or ``z``
            is not a positive finite number.
    """
    s, total = _successes("successes", successes, "n", n)
    z = _z(z)
    if total == 0:
        return (0.0, 1.0)
    p = s / total
    z2 = z * z
    denominator = 1.0 + z2 / total
    center = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / total + z2 / (4.0 * total * total)) / denominator
    # Exact at the edges (the formula gives 0 and 1 there up to rounding), and never
    # excluding the estimate through rounding.
    lower = 0.0 if s == 0 else min(p, max(0.0, center - half))
    upper = 1.0 if s == total else max(p, min(1.0, center + half))
    return (lower, upper)


def newcombe_interval(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> Interval:
    """Newcombe's hybrid score interval of ``p1 - p2`` for two independent proportions.

    With ``(l1, u1)`` and ``(l2, u2)`` the Wilson intervals of ``p1 = s1/n1`` and
    ``p2 = s2/n2`` and ``d = p1 - p2``::

        lower = d - sqrt((p1 - l1)² + (u2 - p2)²)
        upper = d + sqrt((u1 - p1)² + (p2 - l2)²)

    Source: R. G. Newcombe, "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Statistics in Medicine 17:873-890
    (1998), method 10.

    Args:
        s1: Successes in the first sample (e.g. the candidate's correct predictions).
        n1: Size of the first sample.
        s2: Successes in the second sample (e.g. the baseline's correct predictions).
        n2: Size of the second sample.
        z: The standard normal quantile of the two-sided level (default: 95%).

    Returns:
        ``(lower, upper)`` of ``p1 - p2``, within ``[-1, 1]`` and containing it;
        ``(-1.0, 1.0)`` when either sample is empty.

    Raises:
        ValueError: If a count is negative or not an integer, a sample has more successes
            than trials, or ``z`` is not a positive finite number.
    """
    s1, n1 = _successes("s1", s1, "n1", n1)
    s2, n2 = _successes("s2", s2, "n2", n2)
    z = _z(z)
    if n1 == 0 or n2 == 0:
        return (-1.0, 1.0)
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson_interval(s1, n1, z)
    l2, u2 = wilson_interval(s2, n2, z)
    d = p1 - p2
    lower = d - math.hypot(p1 - l1, u2 - p2)
    upper = d + math.hypot(u1 - p1, p2 - l2)
    return (max(-1.0, min(d, lower)), min(1.0, max(d, upper)))


def quantile_interval(
    values: Sequence[float], q: float, z: float = Z95
) -> tuple[float | None, float | None, float | None]:
    """Estimate and distribution-free interval of the q-quantile, from order statistics.

    Of n independent draws, the number below the true q-quantile is binomial(n, q) for
    any continuous distribution, so the r-th and s-th smallest values bracket the
    quantile with the probability that this binomial count lies in ``[r, s - 1]``. The
    ranks come from the normal approximation of that binomial,
    ``r = floor(n·q - z·sqrt(n·q·(1 - q)))`` and ``s = ceil(n·q + z·sqrt(n·q·(1 - q)))``
    (rounded outwards, so the coverage is the nominal level or a little more).

    Source: W. J. Conover, *Practical Nonparametric Statistics*, 3rd ed., Wiley (1999),
    §3.2 (confidence interval for a quantile).

    Args:
        values: The sample (e.g. request latencies in ms), in any order. Values must not
            be NaN.
        q: The quantile level, ``0 < q < 1`` (0.95 for the p95).
        z: The standard normal quantile of the two-sided level (default: 95%).

    Returns:
        ``(estimate, lower, upper)``, each a value of the sample. The estimate is the
        nearest-rank quantile, the ``ceil(q·n)``-th smallest value. ``lower`` is ``None``
        when ``r < 1`` (too few values to bound the quantile from below) and ``upper`` is
        ``None`` when ``s > n``. All three are ``None`` for an empty sample.

    Raises:
        ValueError: If ``q`` is not strictly between 0 and 1, a value is NaN, or ``z`` is
            not a positive finite number.
    """
    if not _is_number(q) or not 0.0 < q < 1.0:
        raise ValueError(f"q must lie strictly between 0 and 1, got {q!r}")
    z = _z(z)
    ordered = sorted(float(v) for v in values)
    if any(math.isnan(v) for v in ordered):
        raise ValueError("values must not contain NaN")
    n = len(ordered)
    if n == 0:
        return (None, None, None)

    def ceil_rank(x: float) -> int:
        nearest = round(x)
        return nearest if abs(x - nearest) < _RANK_EPS else math.ceil(x)

    def floor_rank(x: float) -> int:
        nearest = round(x)
        return nearest if abs(x - nearest) < _RANK_EPS else math.floor(x)

    mean = n * q
    spread = z * math.sqrt(n * q * (1.0 - q))
    k = min(n, max(1, ceil_rank(mean)))
    r = floor_rank(mean - spread)
    s = ceil_rank(mean + spread)
    lower = ordered[r - 1] if r >= 1 else None
    upper = ordered[s - 1] if s <= n else None
    return (ordered[k - 1], lower, upper)


# ---------------------------------------------------------------------------------- gates


@dataclass(frozen=True)
class GateResult:
    """The judgement of one rollout gate.

    Attributes:
        gate: Which gate: one of :data:`GATES`.
        result: ``"pass"``, ``"fail"``, ``"inconclusive"`` or ``"skipped"``.
        bound: The configured bound, in the gate's unit (a proportion, or ms for latency);
            ``None`` when not configured (the gate is skipped).
        value: The point estimate (error rate, p95 in ms, accuracy difference, agreement);
            ``None`` when there is no data.
        interval: The 95% interval of the value; ``None`` when there is no data or it
            cannot be computed. For latency, an end the data cannot bound (too few
            requests) is ``-inf`` or ``inf``.
        n: The number of samples the gate was judged on.
        reason: One plain-English sentence with the numbers, the bound and n.
    """

    gate: str
    result: str
    bound: float | None
    value: float | None
    interval: Interval | None
    n: int
    reason: str

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)}, got {self.result!r}")

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data.

        Returns:
            A dict of the fields; ``interval`` is a two-item list (an end that is not
            finite becomes ``None``) or ``None``.
        """
        interval = None if self.interval is None else [_finite_or_none(x) for x in self.interval]
        return {
            "gate": self.gate,
            "result": self.result,
            "bound": self.bound,
            "value": self.value,
            "interval": interval,
            "n": self.n,
            "reason": self.reason,
        }


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _pct(x: float) -> str:
    """A proportion as a percentage: ``0.031 -> "3.1%"``, ``0.0005 -> "0.05%"``."""
    value = 100.0 * x
    text = f"{value:.1f}" if value == 0 or abs(value) >= 1 else f"{value:.2f}"
    return f"{text}%"


def _pct_range(lower: float, upper: float) -> str:
    """An interval of proportions as "2.0<dash>4.6%" (en dash)."""
    return f"{_pct(lower)[:-1]}{_DASH}{_pct(upper)}"


def _points(x: float) -> str:
    """A difference of proportions in percentage points, signed: ``-0.021 -> "-2.1"``."""
    value = 100.0 * x
    text = f"{value:+.1f}" if value == 0 or abs(value) >= 1 else f"{value:+.2f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def _ms(x: float) -> str:
    if not math.isfinite(x):
        return "unbounded"
    if abs(x) >= 100:
        return f"{x:.0f} ms"
    return f"{x:.1f} ms" if abs(x) >= 1 else f"{x:.2f} ms"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _verdict(failing: bool, n: int, min_samples: int) -> str:
    if failing:
        return "fail"
    return "pass" if n >= min_samples else "inconclusive"


def _skipped(gate: str, name: str, measured: str | None, n: int, unit: str) -> str:
    if measured is None:
        return f"{gate} gate skipped: no {name} is configured (no data yet, {_plural(n, unit)})"
    return f"{gate} gate skipped: no {name} is configured; {measured}"


def _still_needed(n: int, min_samples: int, unit: str, where: str = "") -> str:
    more = _plural(min_samples - n, "more " + unit)
    return f"{more} needed{where} to pass (minimum {min_samples})"


def error_rate_gate(
    errors: int, requests: int, max_error_rate: float | None, min_samples: int
) -> GateResult:
    """Judge the candidate's error rate against a ceiling.

    Fails when the lower end of the 95% Wilson interval of ``errors / requests`` is above
    ``max_error_rate`` (the candidate errs more often than allowed, at 95% confidence,
    one-sided 2.5% test), whatever the number of requests; passes when not failing and
    ``requests >= min_samples``; otherwise inconclusive. See :func:`wilson_interval`.

    Args:
        errors: The candidate's failed requests.
        requests: The candidate's requests (``errors <= requests``).
        max_error_rate: The highest acceptable error rate, a proportion in ``[0, 1]``
            (0.01 for 1%); ``None`` skips the gate.
        min_samples: The requests needed before the gate can pass.

    Returns:
        The :class:`GateResult` of gate ``"max_error_rate"``, n = ``requests``.

    Raises:
        ValueError: If a count is negative or not an integer, ``errors > requests``, or
            ``max_error_rate`` is NaN or outside ``[0, 1]``.
    """
    gate = "max_error_rate"
    errors, requests = _successes("errors", errors, "requests", requests)
    min_samples = _count("min_samples", min_samples)
    bound = _bound("max_error_rate", max_error_rate, 0.0, 1.0)

    if requests == 0:
        value: float | None = None
        interval: Interval | None = None
        measured = None
    else:
        value = errors / requests
        interval = wilson_interval(errors, requests)
        measured = (
            f"candidate error rate {_pct(value)} (95% CI {_pct_range(*interval)}, "
            f"{_plural(requests, 'request')})"
        )

    if bound is None:
        reason = _skipped("error-rate", "max_error_rate", measured, requests, "request")
        return GateResult(gate, "skipped", None, value, interval, requests, reason)

    failing = interval is not None and interval[0] > bound
    result = _verdict(failing, requests, min_samples)
    if measured is None:
        reason = (
            f"no candidate requests yet: {_still_needed(0, min_samples, 'request')} "
            f"against the {_pct(bound)} error-rate bound"
            if min_samples > 0
            else f"no candidate requests, nothing shows an error rate above {_pct(bound)}"
        )
    elif result == "fail":
        reason = f"{measured} is above {_pct(bound)} at 95% confidence"
    else:
        reason = f"{measured} is not shown above {_pct(bound)} at 95% confidence"
        if value is not None and value > bound:
            reason += " (the estimate is above the bound, but not significantly)"
        if result == "pass":
            reason += f", with the {_plural(min_samples, 'request')} required"
        else:
            reason += f"; {_still_needed(requests, min_samples, 'request')}"
    return GateResult(gate, result, bound, value, interval, requests, reason)


def latency_gate(
    latencies_ms: Sequence[float], max_p95_ms: float | None, min_samples: int
) -> GateResult:
    """Judge the candidate's 95th-percentile latency against a ceiling.

    The p95 and its 95% interval come from the order statistics of the latencies (see
    :func:`quantile_interval`, q = 0.95). Fails when the interval's lower end is above
    ``max_p95_ms`` (the candidate's p95 is above the ceiling at 95% confidence, one-sided
    2.5% test), whatever the number of requests; with too few requests to bound the p95
    from below, it cannot fail. Passes when not failing and
    ``len(latencies_ms) >= min_samples``; otherwise inconclusive.

    Args:
        latencies_ms: The candidate's request latencies in milliseconds, any order; each
            finite and non-negative.
        max_p95_ms: The highest acceptable p95 latency in milliseconds, positive and
            finite; ``None`` skips the gate.
        min_samples: The requests needed before the gate can pass.

    Returns:
        The :class:`GateResult` of gate ``"max_latency_p95_ms"``, n = the number of
        latencies. An interval end the data cannot bound is ``-inf`` (lower) or ``inf``
        (upper); the interval is ``None`` when neither end is bounded.

    Raises:
        ValueError: If a latency is NaN, infinite or negative, ``max_p95_ms`` is not a
            positive finite number, or ``min_samples`` is negative.
    """
    gate = "max_latency_p95_ms"
    min_samples = _count("min_samples", min_samples)
    if max_p95_ms is not None and (
        not _is_number(max_p95_ms) or not math.isfinite(max_p95_ms) or max_p95_ms <= 0
    ):
        raise ValueError(f"max_p95_ms must be a positive finite number or None, got {max_p95_ms!r}")
    bound = None if max_p95_ms is None else float(max_p95_ms)
    values = [float(v) for v in latencies_ms]
    for v in values:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"latencies must be finite and non-negative, got {v!r}")
    n = len(values)

    estimate, low, high = quantile_interval(values, 0.95)
    interval: Interval | None = None
    measured = None
    if estimate is not None:
        if low is not None or high is not None:
            interval = (
                -math.inf if low is None else low,
                math.inf if high is None else high,
            )
        count = _plural(n, "request")
        if low is not None and high is not None:
            ci = f"95% CI {_ms(low)[:-3]}{_DASH}{_ms(high)}, {count}"
        elif low is not None:
            ci = f"95% CI {_ms(low)} to unbounded, {count}, too few to bound it above"
        elif high is not None:  # not with q = 0.95: the upper rank runs out first
            ci = f"95% CI unbounded to {_ms(high)}, {count}, too few to bound it below"
        else:
            ci = f"{count}, too few for a 95% CI"
        measured = f"candidate p95 latency {_ms(estimate)} ({ci})"

    if bound is None:
        reason = _skipped("latency", "max_p95_ms", measured, n, "request")
        return GateResult(gate, "skipped", None, estimate, interval, n, reason)

    failing = low is not None and low > bound
    result = _verdict(failing, n, min_samples)
    if measured is None:
        reason = (
            f"no candidate latencies yet: {_still_needed(0, min_samples, 'request')} "
            f"against the {_ms(bound)} p95 bound"
            if min_samples > 0
            else f"no candidate latencies, nothing shows a p95 above {_ms(bound)}"
        )
    elif result == "fail":
        reason = f"{measured} is above {_ms(bound)} at 95% confidence"
    else:
        if low is None:
            reason = f"{measured} cannot be shown above {_ms(bound)} with so few requests"
        else:
            reason = f"{measured} is not shown above {_ms(bound)} at 95% confidence"
        if estimate is not None and estimate > bound:
            reason += " (the estimate is above the bound, but not significantly)"
        if result == "pass":
            reason += f", with the {_plural(min_samples, 'request')} required"
        else:
            reason += f"; {_still_needed(n, min_samples, 'request')}"
    return GateResult(gate, result, bound, estimate, interval, n, reason)


def accuracy_delta_gate(
    candidate_correct: int,
    candidate_n: int,
    baseline_correct: int,
    baseline_n: int,
    min_delta: float | None,
    min_samples: int,
) -> GateResult:
    """Judge how much accuracy the candidate loses (or gains) against the baseline.

    The value is candidate accuracy minus baseline accuracy, with Newcombe's 95% hybrid
    score interval (see :func:`newcombe_interval`). Fails when the interval's upper end is
    below ``min_delta`` (the candidate is worse than allowed at 95% confidence, one-sided
    2.5% test), whatever the sample sizes; passes when not failing and
    ``min(candidate_n, baseline_n) >= min_samples``; otherwise inconclusive.

    Args:
        candidate_correct: The candidate's correct predictions among its labelled ones.
        candidate_n: The candidate's labelled predictions.
        baseline_correct: The baseline's correct predictions among its labelled ones.
        baseline_n: The baseline's labelled predictions.
        min_delta: The lowest acceptable difference of accuracies, a proportion in
            ``[-1, 1]``: -0.02 lets the candidate be at most 2 percentage points worse;
            ``None`` skips the gate.
        min_samples: The labelled predictions needed, on each side, before the gate can
            pass.

    Returns:
        The :class:`GateResult` of gate ``"min_accuracy_delta"``,
        n = ``min(candidate_n, baseline_n)``; value and interval are ``None`` while
        either side has no labelled prediction.

    Raises:
        ValueError: If a count is negative or not an integer, a side has more correct
            predictions than labelled ones, or ``min_delta`` is NaN or outside ``[-1, 1]``.
    """
    gate = "min_accuracy_delta"
    candidate_correct, candidate_n = _successes(
        "candidate_correct", candidate_correct, "candidate_n", candidate_n
    )
    baseline_correct, baseline_n = _successes(
        "baseline_correct", baseline_correct, "baseline_n", baseline_n
    )
    min_samples = _count("min_samples", min_samples)
    bound = _bound("min_delta", min_delta, -1.0, 1.0)
    n = min(candidate_n, baseline_n)

    value: float | None = None
    interval: Interval | None = None
    measured = None
    if n > 0:
        candidate_accuracy = candidate_correct / candidate_n
        baseline_accuracy = baseline_correct / baseline_n
        value = candidate_accuracy - baseline_accuracy
        interval = newcombe_interval(candidate_correct, candidate_n, baseline_correct, baseline_n)
        measured = (
            f"candidate accuracy {_pct(candidate_accuracy)} vs baseline "
            f"{_pct(baseline_accuracy)}: difference {_points(value)} points (95% CI "
            f"{_points(interval[0])} to {_points(interval[1])} points, "
            f"{candidate_n} vs {baseline_n} labelled predictions)"
        )

    if bound is None:
        reason = _skipped("accuracy-delta", "min_delta", measured, n, "labelled prediction")
        return GateResult(gate, "skipped", None, value, interval, n, reason)

    failing = interval is not None and interval[1] < bound
    result = _verdict(failing, n, min_samples)
    allowed = f"the allowed {_points(bound)} points"
    if measured is None:
        missing = "candidate" if candidate_n == 0 else "baseline"
        reason = (
            f"no labelled {missing} predictions yet: "
            f"{_still_needed(0, min_samples, 'labelled prediction', ' on each side')} "
            f"against {allowed}"
            if min_samples > 0
            else f"no labelled {missing} predictions, nothing shows a difference below {allowed}"
        )
    elif result == "fail":
        reason = f"{measured} is below {allowed} at 95% confidence"
    else:
        reason = f"{measured} is not shown below {allowed} at 95% confidence"
        if value is not None and value < bound:
            reason += " (the estimate is below the bound, but not significantly)"
        if result == "pass":
            reason += f", with the {_plural(min_samples, 'labelled prediction')} required"
        else:
            reason += f"; {_still_needed(n, min_samples, 'labelled prediction', ' on each side')}"
    return GateResult(gate, result, bound, value, interval, n, reason)


def agreement_gate(
    agreed: int, compared: int, min_agreement: float | None, min_samples: int
) -> GateResult:
    """Judge how often the candidate agrees with the baseline (e.g. in shadow mode).

    Fails when the upper end of the 95% Wilson interval of ``agreed / compared`` is below
    ``min_agreement`` (the candidate agrees less often than required at 95% confidence,
    one-sided 2.5% test), whatever the number compared; passes when not failing and
    ``compared >= min_samples``; otherwise inconclusive. See :func:`wilson_interval`.

    Args:
        agreed: The compared requests on which both versions gave the same answer.
        compared: The requests answered by both versions (``agreed <= compared``).
        min_agreement: The lowest acceptable agreement, a proportion in ``[0, 1]``;
            ``None`` skips the gate.
        min_samples: The compared requests needed before the gate can pass.

    Returns:
        The :class:`GateResult` of gate ``"min_agreement"``, n = ``compared``.

    Raises:
        ValueError: If a count is negative or not an integer, ``agreed > compared``, or
            ``min_agreement`` is NaN or outside ``[0, 1]``.
    """
    gate = "min_agreement"
    agreed, compared = _successes("agreed", agreed, "compared", compared)
    min_samples = _count("min_samples", min_samples)
    bound = _bound("min_agreement", min_agreement, 0.0, 1.0)

    value: float | None = None
    interval: Interval | None = None
    measured = None
    if compared > 0:
        value = agreed / compared
        interval = wilson_interval(agreed, compared)
        measured = (
            f"candidate agreement with the baseline {_pct(value)} (95% CI "
            f"{_pct_range(*interval)}, "
            f"{_plural(compared, 'compared request')})"
        )

    if bound is None:
        reason = _skipped("agreement", "min_agreement", measured, compared, "compared request")
        return GateResult(gate, "skipped", None, value, interval, compared, reason)

    failing = interval is not None and interval[1] < bound
    result = _verdict(failing, compared, min_samples)
    if measured is None:
        reason = (
            f"no compared requests yet: {_still_needed(0, min_samples, 'compared request')} "
            f"against the {_pct(bound)} agreement bound"
            if min_samples > 0
            else f"no compared requests, nothing shows an agreement below {_pct(bound)}"
        )
    elif result == "fail":
        reason = f"{measured} is below {_pct(bound)} at 95% confidence"
    else:
        reason = f"{measured} is not shown below {_pct(bound)} at 95% confidence"
        if value is not None and value < bound:
            reason += " (the estimate is below the bound, but not significantly)"
        if result == "pass":
            reason += f", with the {_plural(min_samples, 'compared request')} required"
        else:
            reason += f"; {_still_needed(compared, min_samples, 'compared request')}"
    return GateResult(gate, result, bound, value, interval, compared, reason)


def combine(results: Sequence[GateResult]) -> str:
    """The overall outcome of a set of gates.

    Args:
        results: The gate results (skipped gates count for nothing).

    Returns:
        ``"fail"`` if any gate failed, else ``"inconclusive"`` if any is inconclusive, else
        ``"pass"`` (also when every gate is skipped, or there is none).
    """
    outcomes = {r.result for r in results}
    if "fail" in outcomes:
        return "fail"
    if "inconclusive" in outcomes:
        return "inconclusive"
    return "pass"
