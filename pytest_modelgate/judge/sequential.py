"""Anytime-valid comparisons for a canary: confidence sequences that may be checked after every
request without raising the chance of a false alarm above ``alpha``.

A fixed-sample interval (a Wald or Wilson interval) checked again and again is wrong more and more
often: its 5% holds at one pre-planned look, and with a look after every request an A/A canary
crosses any fixed threshold sooner or later. A confidence sequence is a sequence of intervals
``C_t`` with ``P(exists t: theta not in C_t) <= alpha``: one error budget for all looks together.

The form here is the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and
Ramdas ("Time-uniform central limit theory and asymptotic confidence sequences", 2021/2024), the
one GrowthBook ships. With ``t`` observations of mean ``m`` and standard deviation ``s``, and
``rho2 > 0`` a tuning constant, the two-sided ``1 - alpha`` sequence is

    m +- s * sqrt( 2 (t rho2 + 1) / (t^2 rho2) * log( sqrt(t rho2 + 1) / alpha ) )

(Robbins' normal mixture boundary applied to the standardised sum). ``rho2`` only decides at which
``t`` the sequence is tightest; ``tuned_rho2(t_opt, alpha)`` puts that point at ``t_opt`` (the
paper's closed-form approximation). Validity is asymptotic (it rests on a strong approximation of
the sum by Brownian motion), so the monitor also asks for a minimum number of requests per arm and
regularises small-sample variances; the simulations in ``tests/unit/test_sequential.py`` and
``bench/canary_monitor.py`` check the false-alarm rate.

Two streams (canary and stable, unpaired, at unequal shares) are compared through the difference of
their means, ``d = m_c - m_s`` with variance ``V = s_c^2/n_c + s_s^2/n_s``: the sequence is run on
``N = n_c + n_s`` observations with per-observation variance ``N V`` (GrowthBook's construction).
Ratios (cost per call, mean latency) use the log of the ratio, with the delta-method variance.

Quantiles (a p95 latency) use the fixed-quantile sequence of Howard and Ramdas ("Sequential
estimation of quantiles with applications to A/B-testing and best-arm identification", 2022): at
the true quantile ``q_p`` the indicators ``1{X_i <= q_p}`` are Bernoulli(``p``), so a boundary
``u_t`` for their centred sum holds for every ``t`` with probability ``1 - alpha``, and the set
``{x: |#{X_i <= x} - t p| <= u_t}`` (an interval, the count being monotone in ``x``) covers
``q_p`` at every look. From a histogram the interval's ends are bucket edges (rounded outwards).

State is three sums per stream (count, sum, sum of squares), so it adds up exactly across threads,
processes and replicas (the shared-state backends store these). Pure: standard library only.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

__all__ = [
    "SequenceInterval",
    "StreamSums",
    "difference_sequence",
    "log_ratio_sequence",
    "mean_sequence",
    "mixture_margin",
    "quantile_sequence",
    "tuned_rho2",
]


@dataclass(frozen=True, slots=True)
class StreamSums:
    """The sufficient statistics of one stream of observations: count, sum, sum of squares."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> StreamSums:
        return StreamSums(self.n + 1, self.total + value, self.squares + value * value)

    def merged(self, other: StreamSums) -> StreamSums:
        return StreamSums(self.n + other.n, self.total + other.total, self.squares + other.squares)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """The sample variance (``n - 1`` in the denominator); nan below two observations."""
        if self.n < 2:
            return math.nan
        centred = self.squares - self.total * self.total / self.n
        return max(centred, 0.0) / (self.n - 1)


@dataclass(frozen=True, slots=True)
class SequenceInterval:
    """One interval of a confidence sequence at the current look."""

    estimate: float
    lower: float
    upper: float
    n: int

    def excludes(self, value: float) -> bool:
        return not self.lower <= value <= self.upper


def _check(alpha: float, t_opt: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    if not t_opt >= 1.0:
        raise ValueError(f"t_opt must be at least 1, got {t_opt!r}")


def tuned_rho2(t_opt: float, alpha: float) -> float:
    """The ``rho2`` that makes the sequence tightest near ``t_opt`` observations."""
    _check(alpha, t_opt)
    log_term = -2.0 * math.log(alpha)
    return (log_term + math.log(log_term + 1.0)) / t_opt


def mixture_margin(t: float, rho2: float, alpha: float) -> float:
    """The half-width of the sequence for unit variance after ``t`` observations."""
    if t <= 0:
        return math.inf
    tr = t * rho2 + 1.0
    return math.sqrt(2.0 * tr / (t * t * rho2) * math.log(math.sqrt(tr) / alpha))


def mean_sequence(stream: StreamSums, *, alpha: float, t_opt: float) -> SequenceInterval:
    """The sequence for one stream's mean (``s`` is the sample standard deviation)."""
    rho2 = tuned_rho2(t_opt, alpha)
    if stream.n < 2:
        return SequenceInterval(stream.mean, -math.inf, math.inf, stream.n)
    half = math.sqrt(stream.variance) * mixture_margin(stream.n, rho2, alpha)
    return SequenceInterval(stream.mean, stream.mean - half, stream.mean + half, stream.n)


def _two_stream(
    estimate: float, variance: float, n: int, *, alpha: float, t_opt: float
) -> SequenceInterval:
    rho2 = tuned_rho2(t_opt, alpha)
    half = math.sqrt(n * variance) * mixture_margin(n, rho2, alpha)
    return SequenceInterval(estimate, estimate - half, estimate + half, n)


def difference_sequence(
    candidate: StreamSums,
    stable: StreamSums,
    *,
    alpha: float,
    t_opt: float,
    variance_floor: float = 0.0,
) -> SequenceInterval:
    """The sequence for ``mean(candidate) - mean(stable)`` from two independent streams.

    ``variance_floor`` is the smallest per-observation variance used for either stream: a
    stream whose observations are all equal so far (no error seen yet) must not claim certainty.
    """
    n = candidate.n + stable.n
    if candidate.n < 2 or stable.n < 2:
        return SequenceInterval(candidate.mean - stable.mean, -math.inf, math.inf, n)
    variance = max(candidate.variance, variance_floor) / candidate.n + (
        max(stable.variance, variance_floor) / stable.n
    )
    return _two_stream(candidate.mean - stable.mean, variance, n, alpha=alpha, t_opt=t_opt)


def log_ratio_sequence(
    candidate: StreamSums, stable: StreamSums, *, alpha: float, t_opt: float
) -> SequenceInterval:
    """The sequence for ``log(mean(candidate) / mean(stable))`` (positive means), delta method."""
    n = candidate.n + stable.n
    if candidate.n < 2 or stable.n < 2 or candidate.mean <= 0 or stable.mean <= 0:
        return SequenceInterval(math.nan, -math.inf, math.inf, n)
    variance = candidate.variance / (candidate.n * candidate.mean**2) + stable.variance / (
        stable.n * stable.mean**2
    )
    estimate = math.log(candidate.mean / stable.mean)
    return _two_stream(estimate, variance, n, alpha=alpha, t_opt=t_opt)


def quantile_sequence(
    histogram: Sequence[tuple[float, float, int]], p: float, *, alpha: float, t_opt: float
) -> SequenceInterval:
    """The sequence for the ``p`` quantile of a stream held as a histogram.

    ``histogram`` is ``(lower edge, upper edge, count)`` per bucket, sorted by edge, buckets not
    overlapping. ``estimate`` is the upper edge of the bucket holding the empirical quantile;
    ``lower`` / ``upper`` are the edges the boundary reaches (``-inf`` / ``inf`` while it reaches
    past the data).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    cumulative = list(accumulate(count for _, _, count in histogram))
    n = cumulative[-1] if cumulative else 0
    if n < 2:
        return SequenceInterval(math.nan, -math.inf, math.inf, n)
    rho2 = tuned_rho2(t_opt, alpha)
    # The boundary of the centred Bernoulli(p) sum: the mean's half-width times t.
    slack = n * math.sqrt(p * (1.0 - p)) * mixture_margin(n, rho2, alpha)
    low_rank, high_rank = n * p - slack, n * p + slack
    # q_p >= x wherever #{X <= x} < n p - u: the first bucket whose cumulative count reaches
    # n p - u bounds q_p below by its lower edge; q_p <= x once #{X <= x} > n p + u.
    lower = -math.inf
    if low_rank > 0:
        lower = histogram[bisect_left(cumulative, low_rank)][0]
    estimate = histogram[min(bisect_left(cumulative, n * p), len(histogram) - 1)][1]
    high = bisect_right(cumulative, high_rank)
    upper = histogram[high][1] if high < len(histogram) else math.inf
    return SequenceInterval(estimate, lower, upper, n)
