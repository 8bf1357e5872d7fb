"""Inference helpers shared by the statistics: non-inferiority, Holm weights, p-values, the
minimum detectable change and the cases or repeats that would decide an inconclusive comparison."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from pytest_modelgate.judge.common import (
    _EPSILON,
    _MIN_BOOTSTRAP_CASES,
    _OVERALL_ALPHA_SHARE,
    _POWER,
    _REPEATS_WORTH,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
    MetricStatus,
)
from pytest_modelgate.judge.stats import (
    Interval,
    normal_quantile,
    sample_variance,
)


def _mean_limit(margin: float | None, higher_is_better: bool) -> float | None:
    """The worst change a mean's margin allows, signed: a drop, or a rise when lower is better."""
    if margin is None:
        return None
    return -margin if higher_is_better else margin


def _holm_weights(scopes: Sequence[str]) -> list[float]:
    """Each comparison's share of alpha in a Holm family, from the scopes it was asked in."""
    slices = sum(1 for scope in scopes if scope != "overall")
    if slices == 0 or slices == len(scopes):
        return [1 / len(scopes)] * len(scopes)
    overall = _OVERALL_ALPHA_SHARE / (len(scopes) - slices)
    rest = (1 - _OVERALL_ALPHA_SHARE) / slices
    return [overall if scope == "overall" else rest for scope in scopes]


def _p_from_interval(estimate: float, interval: Interval, confidence: float) -> float:
    """Two-sided p of "no change" from a symmetric-enough interval (normal approximation)."""
    if math.isnan(interval.low):
        return 1.0
    if interval.high <= interval.low:
        # Every resample agreed: a difference that never varies is as significant as it gets.
        return 0.0 if abs(estimate) > _EPSILON else 1.0
    z = normal_quantile(1 - (1 - confidence) / 2)
    se = (interval.high - interval.low) / (2 * z)
    return min(1.0, 2 * (1 - _phi(abs(estimate) / se)))


def _p(value: float | None) -> float:
    return 1.0 if value is None else value


def _cases_for_significance(n: int, p_value: float, alpha: float) -> int | None:
    """About how many cases make an effect of the same size significant at ``alpha``."""
    if n <= 0 or not 0 < p_value < 1:
        return None
    observed = normal_quantile(1 - p_value / 2)
    wanted = normal_quantile(1 - alpha / 2)
    if observed <= 0:
        return None
    return max(n + 1, math.ceil(n * (wanted / observed) ** 2))


def _non_inferiority(
    point: float, low: float, high: float, margin: float | None
) -> tuple[MetricStatus, bool]:
    """Status of an oriented difference (lower is worse) against ``-margin``."""
    if math.isnan(low) or math.isnan(high):
        return ("inconclusive" if margin is not None else "not_gated"), False
    if margin is None:
        return ("improved" if low > _EPSILON else "not_gated"), False
    if high < -margin - _EPSILON:
        return "regressed", True
    if low > _EPSILON:
        return "improved", False
    if low > -margin - _EPSILON:
        return "ok", False
    return "inconclusive", False


def _mde(half_width: float, confidence: float) -> float | None:
    """Smallest change detectable with 80% power, from an interval's half-width."""
    if math.isnan(half_width) or half_width <= 0:
        return None
    z = normal_quantile(1 - (1 - confidence) / 2)
    return (z + normal_quantile(_POWER)) * half_width / z


def _repeats_needed(
    per_case: Iterable[tuple[Sequence[float], Sequence[float]]],
    interval: Interval,
    distance: float,
    cases_needed: int | None,
) -> int | None:
    """About how many repeats of each case would decide, with the same cases.

    ``per_case``: each case's per-repeat values on (stable, candidate), read lazily: a run
    without repeats stops at its first case. The variance of a case's
    difference of means is a between-case part B, which repeats cannot shrink, plus a
    within-case part W = s_s^2 / K_s + s_c^2 / K_c (each arm's variance over its repeats of
    the case, averaged over cases), which K' repeats scale by K / K'. The interval's half-width
    goes with the square root of B + W: it decides once it is below ``distance`` (from the change
    to the margin). Needs at least two repeats of every case on both arms to tell W from B;
    None when it cannot tell, when even endless repeats would leave B too wide, or when the
    repeats would take more than ``_REPEATS_WORTH`` times the test runs of ``cases_needed``
    cases (repeats need no new case written, so they may cost more runs, but not that many).
    """
    half = interval.width / 2
    if distance <= _EPSILON or not half > distance:
        return None
    usable: list[tuple[Sequence[float], Sequence[float]]] = []
    for stable, candidate in per_case:
        if len(stable) < 2 or len(candidate) < 2:
            return None
        usable.append((stable, candidate))
    if len(usable) < _MIN_BOOTSTRAP_CASES:
        return None
    differences = [math.fsum(c) / len(c) - math.fsum(s) / len(s) for s, c in usable]
    mean = math.fsum(differences) / len(differences)
    total = math.fsum((d - mean) ** 2 for d in differences) / (len(differences) - 1)
    within = math.fsum(
        sample_variance(s) / len(s) + sample_variance(c) / len(c) for s, c in usable
    ) / len(usable)
    between = max(0.0, total - within)
    target = total * (distance / half) ** 2
    if within <= _EPSILON or target <= between:
        return None
    repeats = math.fsum(len(s) + len(c) for s, c in usable) / (2 * len(usable))
    needed = max(math.floor(repeats) + 1, math.ceil(repeats * within / (target - between)))
    if cases_needed is None or len(usable) * needed > _REPEATS_WORTH * cases_needed * repeats:
        return None
    return needed


def _cases_needed(n: int, half_width: float, distance: float) -> int | None:
    """About how many paired cases would shrink the interval to decide (half-width ~ 1/sqrt(n))."""
    if distance <= _EPSILON or math.isnan(half_width) or half_width <= 0:
        return None
    return max(n + 1, math.ceil(n * (half_width / distance) ** 2))


def _newcombe_unpaired(
    change: float, s_rate: float, s_ci: Interval, c_rate: float, c_ci: Interval
) -> Interval:
    """Newcombe's method 10 for independent arms (the paired form with zero correlation)."""
    low = change - math.sqrt((c_rate - c_ci.low) ** 2 + (s_ci.high - s_rate) ** 2)
    high = change + math.sqrt((c_ci.high - c_rate) ** 2 + (s_rate - s_ci.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))


def _two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x2 / n2 - x1 / n1) / se
    return min(1.0, 2 * (1 - _phi(z)))


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _points(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def _has_interval(comparison: MetricComparison) -> bool:
    interval = comparison.change_interval
    return interval is not None and not any(math.isnan(v) for v in interval)
