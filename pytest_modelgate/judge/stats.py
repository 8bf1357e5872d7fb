"""The statistics of a paired stable-vs-candidate comparison.

Pure and deterministic: standard library only (no pytest, numpy or scipy), and the same inputs give
the same outputs byte for byte; the bootstraps draw from ``random.Random(seed)`` with seeds derived
by ``seed_for`` from stable names. Every comparison is paired by case: the same cases run on both
models, so intervals and tests work on per-case differences, never on two independent samples.

What is here and why (see ``docs/`` and the statistics reference for the decision rule):

- rates: ``wilson_interval`` per arm, ``PairedTable`` with ``mcnemar_mid_p`` (the gate's test;
  ``mcnemar_exact`` is the conservative conditional one) and ``newcombe_paired_interval`` for the
  candidate-minus-stable difference;
- continuous metrics: ``wilcoxon_signed_rank`` and ``paired_bootstrap`` with the statistics
  ``mean_difference``, ``ratio_of_sums`` and ``quantile_ratio``;
- many slices: ``holm``, optionally weighted (the overall scope may hold more of alpha than a
  slice); planning: ``required_cases``, ``minimum_detectable_effect``, ``rule_of_three``;
  repeats: ``clustered_standard_error`` (and ``sample_variance``, the within-case part).

Conventions: an undefined statistic is ``math.nan`` (never an exception), impossible arguments
raise ``ValueError``, and ``confidence`` is two-sided.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from statistics import NormalDist
from typing import TypeAlias

__all__ = [
    "Interval",
    "PairedTable",
    "Statistic",
    "clustered_standard_error",
    "holm",
    "large_sample_mean_difference",
    "large_sample_quantile",
    "large_sample_quantile_ratio",
    "large_sample_rate_difference",
    "large_sample_ratio",
    "large_sample_ratio_of_sums",
    "mcnemar_exact",
    "mcnemar_mid_p",
    "mean_difference",
    "minimum_detectable_effect",
    "newcombe_paired_interval",
    "normal_quantile",
    "paired_bootstrap",
    "quantile",
    "quantile_ratio",
    "ratio_of_sums",
    "required_cases",
    "rule_of_three",
    "sample_variance",
    "seed_for",
    "wilcoxon_signed_rank",
    "wilson_interval",
]

Statistic: TypeAlias = Callable[[Sequence[float], Sequence[float]], float]
"""A paired statistic: ``statistic(stable, candidate)`` over equally long, case-aligned values."""

_STANDARD_NORMAL = NormalDist()

# Up to this many non-zero differences without ties, the Wilcoxon test uses its exact null
# distribution (as scipy's method="auto" does); beyond it, the normal approximation.
_WILCOXON_EXACT_MAX = 50


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[low, high]``; ``Interval(nan, nan)`` means "undefined"."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"interval low {self.low!r} is above high {self.high!r}")

    def contains(self, value: float) -> bool:
        """Whether ``low <= value <= high`` (never true for a nan interval or value)."""
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        """``high - low``."""
        return self.high - self.low


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")


def _check_count(value: int, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} must be a non-negative count, got {value!r}")


def _two_sided_z(confidence: float) -> float:
    _check_confidence(confidence)
    return normal_quantile(1.0 - (1.0 - confidence) / 2.0)


def normal_quantile(p: float) -> float:
    """The inverse standard normal CDF: the ``z`` with ``Phi(z) = p``, for ``0 < p < 1``.

    ``statistics.NormalDist.inv_cdf`` (Wichura's algorithm AS 241, accurate to about 1e-16).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p!r}")
    return _STANDARD_NORMAL.inv_cdf(p)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> Interval:
    """The Wilson score interval for a binomial proportion ``successes / n``.

    With ``p = successes / n`` and ``z`` the two-sided normal quantile of ``confidence``:
    ``(p + z^2/2n +- z * sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)`` (Wilson 1927; the interval
    statsmodels calls ``proportion_confint(method="wilson")``). Example: 45/50 -> [0.786, 0.957].
    No data says nothing: ``n == 0`` gives ``[0, 1]``.
    """
    _check_count(n, "n")
    _check_count(successes, "successes")
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    z = _two_sided_z(confidence)
    if n == 0:
        return Interval(0.0, 1.0)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denominator
    half_width = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    # The bounds at 0 and n are exactly 0 and 1; the subtraction would only approximate them.
    low = 0.0 if successes == 0 else max(0.0, center - half_width)
    high = 1.0 if successes == n else min(1.0, center + half_width)
    return Interval(low, high)


@dataclass(frozen=True)
class PairedTable:
    """The paired 2x2 table of a binary outcome (pass/fail) observed per case on both arms."""

    a: int
    """Cases both arms pass."""
    b: int
    """Cases only the stable arm passes."""
    c: int
    """Cases only the candidate arm passes."""
    d: int
    """Cases both arms fail."""

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d"):
            _check_count(getattr(self, name), name)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[bool, bool]]) -> PairedTable:
        """Count ``(stable_ok, candidate_ok)`` outcomes, one pair per case, into a table."""
        counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
        for stable_ok, candidate_ok in pairs:
            counts[bool(stable_ok), bool(candidate_ok)] += 1
        return cls(
            a=counts[True, True],
            b=counts[True, False],
            c=counts[False, True],
            d=counts[False, False],
        )

    @property
    def n(self) -> int:
        """The number of cases, ``a + b + c + d``."""
        return self.a + self.b + self.c + self.d

    @property
    def stable_rate(self) -> float:
        """The stable pass rate ``(a + b) / n`` (0.0 for an empty table)."""
        return (self.a + self.b) / self.n if self.n else 0.0

    @property
    def candidate_rate(self) -> float:
        """The candidate pass rate ``(a + c) / n`` (0.0 for an empty table)."""
        return (self.a + self.c) / self.n if self.n else 0.0

    @property
    def delta(self) -> float:
        """``candidate_rate - stable_rate``, computed as ``(c - b) / n`` (0.0 when empty)."""
        return (self.c - self.b) / self.n if self.n else 0.0


def mcnemar_exact(b: int, c: int) -> float:
    """The two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    Under the null each discordant pair is equally likely to go either way, so
    ``p = min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])``; 1.0 when ``b + c == 0``. This is
    statsmodels' ``mcnemar(table, exact=True).pvalue``, computed here in integer arithmetic.
    """
    tail, _ = _mcnemar_tail(b, c)
    return min(1.0, tail)


def mcnemar_mid_p(b: int, c: int) -> float:
    """The two-sided mid-p McNemar p-value: the exact one less the probability of what was seen.

    ``p = 2 * (P[X <= k] - P[X = k] / 2)`` with ``X ~ Binomial(b + c, 1/2)`` and ``k = min(b, c)``;
    1.0 when ``b == c``. The exact conditional test is conservative (its true size is well below
    alpha with few discordant pairs, because the binomial is discrete); the mid-p test keeps its
    size at or below alpha in practice and has the power the exact test wastes. Fagerland,
    Lydersen and Laake (BMC Med Res Methodol 13:91, 2013) recommend it for matched pairs.
    """
    tail, point = _mcnemar_tail(b, c)
    return min(1.0, tail - point)


def _mcnemar_tail(b: int, c: int) -> tuple[float, float]:
    """``2 * P[X <= k]`` and ``2 * P[X = k]`` for the McNemar binomial (1 and 0 when b == c)."""
    _check_count(b, "b")
    _check_count(c, "c")
    n = b + c
    k = min(b, c)
    if 2 * k >= n:
        # b == c (or no discordant pairs): the tail holds at least half the mass.
        return 1.0, 0.0
    # Sum C(n, i) for i = k, k-1, ... exactly; the terms shrink at least geometrically, so once
    # the next ones cannot reach 2^-64 of the total they are dropped (far below float precision)
    # and a large n costs O(sqrt(n)) terms instead of O(n).
    first = math.comb(n, k)
    term = first
    total = first
    for i in range(k, 0, -1):
        term = term * i // (n - i + 1)
        total += term
        if (term * (n + 1)) << 64 < total:
            break
    # Python divides the integers exactly: 2^n may be far beyond a float, the ratios are not.
    return total / (1 << (n - 1)), first / (1 << n)


def newcombe_paired_interval(table: PairedTable, *, confidence: float = 0.95) -> Interval:
    """Newcombe's hybrid score interval (1998, method 10) for ``candidate_rate - stable_rate``.

    From the Wilson intervals ``[l_c, u_c]`` and ``[l_s, u_s]`` of the two rates ``p_c``, ``p_s``
    and ``theta = p_c - p_s``:

        L = theta - sqrt((p_c - l_c)^2 - 2 phi (p_c - l_c)(u_s - p_s) + (u_s - p_s)^2)
        U = theta + sqrt((u_c - p_c)^2 - 2 phi (u_c - p_c)(p_s - l_s) + (p_s - l_s)^2)

    with Newcombe's corrected correlation of the table: ``phi = (ad - bc - n/2) / sqrt(m)`` when
    ``ad - bc > n/2``, ``0`` when ``0 <= ad - bc <= n/2``, ``(ad - bc) / sqrt(m)`` when
    ``ad - bc < 0``, where ``m`` is the product of the four margins; ``phi = 0`` when a margin is
    0 (phi is undefined there). R. G. Newcombe, Statistics in Medicine 17:2635-2650 (1998).
    An empty table gives ``[-1, 1]``.
    """
    _check_confidence(confidence)
    n = table.n
    if n == 0:
        return Interval(-1.0, 1.0)
    stable_passes = table.a + table.b
    candidate_passes = table.a + table.c
    p_s = stable_passes / n
    p_c = candidate_passes / n
    stable = wilson_interval(stable_passes, n, confidence=confidence)
    candidate = wilson_interval(candidate_passes, n, confidence=confidence)
    phi = _newcombe_phi(table)
    theta = table.delta
    below_c, above_c = p_c - candidate.low, candidate.high - p_c
    below_s, above_s = p_s - stable.low, stable.high - p_s
    # max(0, ...): with |phi| <= 1 the radicands are >= 0 up to rounding.
    lower = theta - math.sqrt(
        max(0.0, below_c * below_c - 2.0 * phi * below_c * above_s + above_s * above_s)
    )
    upper = theta + math.sqrt(
        max(0.0, above_c * above_c - 2.0 * phi * above_c * below_s + below_s * below_s)
    )
    return Interval(max(-1.0, lower), min(1.0, upper))


def _newcombe_phi(table: PairedTable) -> float:
    margins = (table.a + table.b) * (table.c + table.d) * (table.a + table.c) * (table.b + table.d)
    if margins == 0:
        return 0.0
    cross = table.a * table.d - table.b * table.c
    n = table.n
    if cross > n / 2:
        return (cross - n / 2) / math.sqrt(margins)
    if cross >= 0:
        return 0.0
    return cross / math.sqrt(margins)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile by linear interpolation between order statistics (Hyndman-Fan type 7).

    With ``x`` sorted and ``h = (len(x) - 1) * q``:
    ``x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])``; numpy's default
    ``numpy.quantile(values, q)`` (method "linear"), including its rounding: the interpolation is
    anchored at the nearer order statistic. nan when a value is nan (as in numpy).
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q!r}")
    if not values:
        raise ValueError("the quantile of no values is undefined")
    if any(map(math.isnan, values)):
        return math.nan
    return _sorted_quantile(sorted(values), q)


def _sorted_quantile(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    if position >= len(ordered) - 1:
        return ordered[-1]
    index = math.floor(position)
    fraction = position - index
    below, above = ordered[index], ordered[index + 1]
    step = above - below
    # numpy's _lerp: from the lower neighbour below the midpoint, from the upper one above it.
    if fraction >= 0.5:
        return above - step * (1.0 - fraction)
    return below + step * fraction


def wilcoxon_signed_rank(differences: Sequence[float]) -> float:
    """The two-sided p-value of the Wilcoxon signed-rank test of paired differences.

    Zero differences are dropped (Wilcoxon's method). The ``m`` non-zero ``|d_i|`` are ranked
    (ties get their average rank) and ``R+`` is the rank sum of the positive ones. With ``m <= 50``
    and no ties, ``p = min(1, 2 * P[W <= min(R+, R-)])`` under the exact null distribution of
    ``W`` (each rank's sign a fair coin). Otherwise the normal approximation with tie and
    continuity correction: ``sigma^2 = (m(m+1)(2m+1) - sum(t^3 - t)/2) / 24`` over tie groups of
    size ``t``, ``z = (R+ - m(m+1)/4) / sigma``, ``z -= sign(z) * 0.5 / sigma``,
    ``p = 2 * Phi(-|z|)``. This is ``scipy.stats.wilcoxon(d, zero_method="wilcox",
    correction=True)`` with ``method="exact"`` or ``"asymptotic"`` chosen that way. Returns 1.0
    when every difference is 0 (or there are none).
    """
    if any(map(math.isnan, differences)):
        raise ValueError("differences must not contain nan")
    nonzero = [value for value in differences if value != 0]
    m = len(nonzero)
    if m == 0:
        return 1.0
    ordered = sorted(nonzero, key=abs)
    rank_plus = 0.0
    tie_correction = 0
    has_ties = False
    start = 0
    while start < m:
        magnitude = abs(ordered[start])
        end = start + 1
        while end < m and abs(ordered[end]) == magnitude:
            end += 1
        size = end - start
        if size > 1:
            has_ties = True
            tie_correction += size * size * size - size
        average_rank = (start + 1 + end) / 2.0
        rank_plus += average_rank * sum(1 for value in ordered[start:end] if value > 0)
        start = end
    if m <= _WILCOXON_EXACT_MAX and not has_ties:
        # Without ties every rank is an integer, and so is R+.
        smaller = min(int(rank_plus), m * (m + 1) // 2 - int(rank_plus))
        return min(1.0, 2 * _signed_rank_cdf(smaller, m) / (1 << m))
    return _signed_rank_normal_p(rank_plus, m, tie_correction)


def _signed_rank_normal_p(rank_plus: float, m: int, tie_correction: float) -> float:
    """The normal approximation of the signed-rank p-value, with tie and continuity correction
    (``tie_correction``: the sum of ``t^3 - t`` over tie groups of size ``t``)."""
    mean = m * (m + 1) * 0.25
    sigma = math.sqrt((m * (m + 1) * (2 * m + 1) - tie_correction / 2) / 24)
    z = (rank_plus - mean) / sigma
    if z != 0:
        # Like scipy, the continuity correction moves z by half a unit of R+ towards 0.
        z -= math.copysign(0.5, z) / sigma
    return math.erfc(abs(z) / math.sqrt(2.0))


def _signed_rank_cdf(k: int, m: int) -> int:
    """The number of subsets of ``{1, ..., m}`` whose sum is at most ``k``."""
    counts = [1] + [0] * k
    for rank in range(1, min(m, k) + 1):
        for total in range(k, rank - 1, -1):
            counts[total] += counts[total - rank]
    return sum(counts)


def holm(p_values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order; weighted when ``weights`` are given.

    Unweighted, with the ``m`` p-values sorted ascending as ``p_(1) <= ... <= p_(m)``:
    ``adjusted_(i) = min(1, max_{j <= i} (m - j + 1) * p_(j))`` (Holm 1979). This equals
    statsmodels ``multipletests(p_values, method="holm")[1]``.

    Weighted (Holm 1979, section 5): hypothesis ``i`` gets the share ``w_i`` of alpha. They are
    sorted by ``p_i / w_i`` and step ``j`` multiplies ``p_(j)`` by ``W_j / w_(j)``, where ``W_j`` is
    the total weight of the hypotheses not yet rejected (``(j)`` and every later one), so
    ``adjusted_(j) = min(1, max_{k <= j} p_(k) * W_k / w_(k))``. Equal weights give the unweighted
    procedure. Either way, rejecting where the adjusted value is ``<= alpha`` controls the
    family-wise error at ``alpha`` whatever the dependence between the tests.
    """
    for p in p_values:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be between 0 and 1, got {p!r}")
    m = len(p_values)
    if weights is None:
        # Weights of 1: W_j / w_(j) is m - j + 1 exactly, so the products are statsmodels' bits.
        weights = [1.0] * m
    if len(weights) != m:
        raise ValueError(f"{len(weights)} weights for {m} p-values")
    for w in weights:
        if not (w > 0 and math.isfinite(w)):
            raise ValueError(f"weights must be positive and finite, got {w!r}")
    # Ties in p / w keep the input order, so the result does not depend on sort stability.
    order = sorted(range(m), key=lambda i: (p_values[i] / weights[i], i))
    remaining = math.fsum(weights)
    adjusted = [0.0] * m
    running = 0.0
    for index in order:
        running = max(running, p_values[index] * remaining / weights[index])
        adjusted[index] = min(1.0, running)
        remaining -= weights[index]
    return adjusted


def seed_for(*parts: str) -> int:
    """A 64-bit seed from the SHA-256 of ``parts``, so a bootstrap is named, not random.

    Each part is UTF-8 encoded and prefixed with its length, so ``("ab", "c")`` and
    ``("a", "bc")`` give different seeds; the seed is the first 8 bytes of the digest, big-endian.
    """
    digest = hashlib.sha256()
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return int.from_bytes(digest.digest()[:8], "big")


def paired_bootstrap(
    stable: Sequence[float],
    candidate: Sequence[float],
    statistic: Statistic,
    *,
    seed: int,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> Interval:
    """The paired percentile bootstrap interval of ``statistic(stable, candidate)``.

    Each resample draws ``n`` case indexes with replacement
    (``random.Random(seed).choices(range(n), k=n)``) and applies the same indexes to both arms,
    which keeps the pairing; the interval is the ``(1 - confidence)/2`` and
    ``(1 + confidence)/2`` quantiles (``quantile``, type 7) of the resampled statistics
    (Efron & Tibshirani 1993, ch. 13). A statistic undefined on a resample returns nan (or raises
    ``ZeroDivisionError``): such resamples are dropped, and when more than half are dropped, or
    there are no cases, the interval is ``Interval(nan, nan)``. Deterministic for a given seed.
    """
    n = len(stable)
    if len(candidate) != n:
        raise ValueError(
            f"paired samples must have equal lengths, got {n} stable and {len(candidate)} candidate"
        )
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")
    _check_confidence(confidence)
    if n == 0:
        return Interval(math.nan, math.nan)
    stable_values = tuple(stable)
    candidate_values = tuple(candidate)
    rng = random.Random(seed)
    cases = range(n)
    estimates: list[float] = []
    for _ in range(resamples):
        indexes = rng.choices(cases, k=n)
        # itemgetter gathers in C; with a single index it returns the bare item.
        if n == 1:
            stable_sample: Sequence[float] = (stable_values[indexes[0]],)
            candidate_sample: Sequence[float] = (candidate_values[indexes[0]],)
        else:
            gather = itemgetter(*indexes)
            stable_sample = gather(stable_values)
            candidate_sample = gather(candidate_values)
        try:
            value = statistic(stable_sample, candidate_sample)
        except ZeroDivisionError:
            continue
        if not math.isnan(value):
            estimates.append(value)
    if 2 * len(estimates) < resamples:
        return Interval(math.nan, math.nan)
    estimates.sort()
    tail = (1.0 - confidence) / 2.0
    return Interval(_sorted_quantile(estimates, tail), _sorted_quantile(estimates, 1.0 - tail))


def mean_difference(stable: Sequence[float], candidate: Sequence[float]) -> float:
    """``mean(candidate) - mean(stable)``; nan when either is empty."""
    if not stable or not candidate:
        return math.nan
    return math.fsum(candidate) / len(candidate) - math.fsum(stable) / len(stable)


def ratio_of_sums(stable: Sequence[float], candidate: Sequence[float]) -> float:
    """``sum(candidate) / sum(stable)`` (for example total cost); nan when ``sum(stable) == 0``."""
    denominator = math.fsum(stable)
    if denominator == 0:
        return math.nan
    return math.fsum(candidate) / denominator


def quantile_ratio(q: float) -> Statistic:
    """The statistic ``quantile(candidate, q) / quantile(stable, q)`` (e.g. the p95 ratio).

    Uses ``quantile`` (type 7); the statistic is nan when the stable quantile is 0 or a sample
    is empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q!r}")

    def ratio(stable: Sequence[float], candidate: Sequence[float]) -> float:
        if not stable or not candidate:
            return math.nan
        denominator = quantile(stable, q)
        if denominator == 0:
            return math.nan
        return quantile(candidate, q) / denominator

    ratio.__name__ = ratio.__qualname__ = f"quantile_ratio({q!r})"
    return ratio


def _one_sided_power_z(alpha: float, power: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be strictly between 0 and 1, got {power!r}")
    return normal_quantile(1.0 - alpha) + normal_quantile(power)


def required_cases(
    sigma_d: float, margin: float, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """The number of paired cases to detect a shift of ``margin`` with the given power.

    ``n = ceil((z_(1-alpha) + z_(power))^2 * sigma_d^2 / margin^2)`` with one-sided ``alpha``
    and ``sigma_d`` the standard deviation of the per-case differences; at least 1. With 10%
    discordant pairs (``sigma_d^2 ~ 0.10``), a 5-point margin, alpha 0.05 and power 0.8 the
    formula gives 247.3, so 248 cases.
    """
    if not sigma_d >= 0.0:
        raise ValueError(f"sigma_d must be non-negative, got {sigma_d!r}")
    if not margin > 0.0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    z = _one_sided_power_z(alpha, power)
    return max(1, math.ceil(z * z * sigma_d * sigma_d / (margin * margin)))


def minimum_detectable_effect(
    sigma_d: float, n: int, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest shift ``n`` paired cases detect with the given power (one-sided ``alpha``).

    ``(z_(1-alpha) + z_(power)) * sigma_d / sqrt(n)``, the inverse of ``required_cases``; with 10%
    discordant pairs and 50 cases about 0.11 (11 points). ``inf`` when ``n == 0``.
    """
    if not sigma_d >= 0.0:
        raise ValueError(f"sigma_d must be non-negative, got {sigma_d!r}")
    _check_count(n, "n")
    z = _one_sided_power_z(alpha, power)
    if n == 0:
        return math.inf
    return z * sigma_d / math.sqrt(n)


def clustered_standard_error(case_scores: Sequence[Sequence[float]]) -> float:
    """The standard error of the mean of case means when each case is sampled ``K`` times.

    ``sqrt((Var(case means) + E[within-case variance] / K) / n)`` over ``n`` cases (Miller 2024,
    "Adding Error Bars to Evals", the clustered form): variances are sample variances
    (``ddof = 1``), a case with one sample has within-case variance 0, and ``K`` is the mean
    number of samples per case. nan with fewer than two cases; an empty case is a ``ValueError``.
    """
    n = len(case_scores)
    for index, scores in enumerate(case_scores):
        if not scores:
            raise ValueError(f"case {index} has no scores")
    if n < 2:
        return math.nan
    means: list[float] = []
    within: list[float] = []
    for scores in case_scores:
        k = len(scores)
        mean = math.fsum(scores) / k
        means.append(mean)
        within.append(sample_variance(scores) if k > 1 else 0.0)
    between = sample_variance(means)
    mean_within = math.fsum(within) / n
    mean_k = sum(len(scores) for scores in case_scores) / n
    return math.sqrt((between + mean_within / mean_k) / n)


def sample_variance(values: Sequence[float]) -> float:
    """The sample variance (``ddof = 1``); nan with fewer than two values."""
    if len(values) < 2:
        return math.nan
    mean = math.fsum(values) / len(values)
    return math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1)


def rule_of_three(n: int) -> float:
    """The approximate 95% upper bound ``3 / n`` of a rate with 0 events in ``n`` trials.

    The exact one-sided bound is ``1 - 0.05^(1/n) ~ -ln(0.05)/n ~ 3/n``; "0 invalid JSON in 50"
    bounds the rate at 6%. Capped at 1.0, and 1.0 when ``n == 0``.
    """
    _check_count(n, "n")
    if n == 0:
        return 1.0
    return min(1.0, 3.0 / n)


# --------------------------------------------------------------------------------------------
# Large-sample intervals (the delta method over cases)
#
# With thousands of cases a percentile bootstrap is a normal interval to within its own
# resampling noise, at a cost of cases x resamples. These are the intervals it converges to:
# each statistic is linearised into one term per case (its influence), the terms of a
# resample add up, and their spread over cases gives the standard error a case resample has.
# Plug-in variances (over n, as a bootstrap has), no small-sample correction: meant for
# thousands of cases, never for a handful.


def _spread(terms: Iterable[float]) -> float:
    """The standard deviation of a sum of ``terms`` drawn with replacement (n draws of n)."""
    values = list(terms)
    if not values:
        return math.nan
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((t - mean) ** 2 for t in values))


def _log_interval(value: float, spread: float, z: float) -> Interval:
    if not value > 0 or math.isnan(spread):
        return Interval(math.nan, math.nan)
    return Interval(value * math.exp(-z * spread), value * math.exp(z * spread))


def _ratio_terms(numerators: Sequence[float], denominators: Sequence[float]) -> list[float] | None:
    """Per-case terms of ``log(sum(numerators) / sum(denominators))``; None if a sum is 0."""
    top, bottom = math.fsum(numerators), math.fsum(denominators)
    if not top > 0 or not bottom > 0:
        return None
    return [a / top - b / bottom for a, b in zip(numerators, denominators, strict=True)]


def large_sample_ratio_of_sums(
    s_num: Sequence[float],
    s_den: Sequence[float],
    c_num: Sequence[float],
    c_den: Sequence[float],
    *,
    paired: bool = True,
    confidence: float = 0.95,
) -> Interval:
    """Interval of ``(sum(c_num) / sum(c_den)) / (sum(s_num) / sum(s_den))`` (cost per call).

    The delta method on the log ratio, per case; symmetric on the log scale. nan when a sum is 0.
    """
    z = _two_sided_z(confidence)
    stable, candidate = _ratio_terms(s_num, s_den), _ratio_terms(c_num, c_den)
    if stable is None or candidate is None:
        return Interval(math.nan, math.nan)
    value = (math.fsum(c_num) / math.fsum(c_den)) / (math.fsum(s_num) / math.fsum(s_den))
    if paired:
        spread = _spread(c - s for s, c in zip(stable, candidate, strict=True))
    else:
        spread = math.hypot(_spread(stable), _spread(candidate))
    return _log_interval(value, spread, z)


def large_sample_ratio(
    numerators: Sequence[float], denominators: Sequence[float], *, confidence: float = 0.95
) -> Interval:
    """Interval of ``sum(numerators) / sum(denominators)`` over cases (one arm's cost per call)."""
    terms = _ratio_terms(numerators, denominators)
    if terms is None:
        # Nothing spent on any call: every resample's figure is 0 too.
        free = math.fsum(numerators) == 0 and math.fsum(denominators) > 0
        return Interval(0.0, 0.0) if free else Interval(math.nan, math.nan)
    value = math.fsum(numerators) / math.fsum(denominators)
    return _log_interval(value, _spread(terms), _two_sided_z(confidence))


def large_sample_rate_difference(
    s_events: Sequence[int],
    s_trials: Sequence[int],
    c_events: Sequence[int],
    c_trials: Sequence[int],
    *,
    paired: bool = True,
    confidence: float = 0.95,
) -> Interval:
    """Interval of the difference of pooled rates ``sum(c_events) / sum(c_trials) - ...``."""
    z = _two_sided_z(confidence)
    s_total, c_total = sum(s_trials), sum(c_trials)
    if not s_total or not c_total:
        return Interval(math.nan, math.nan)
    s_rate, c_rate = sum(s_events) / s_total, sum(c_events) / c_total
    stable = [(e - s_rate * t) / s_total for e, t in zip(s_events, s_trials, strict=True)]
    candidate = [(e - c_rate * t) / c_total for e, t in zip(c_events, c_trials, strict=True)]
    if paired:
        spread = _spread(c - s for s, c in zip(stable, candidate, strict=True))
    else:
        spread = math.hypot(_spread(stable), _spread(candidate))
    change = c_rate - s_rate
    return Interval(change - z * spread, change + z * spread)


def large_sample_mean_difference(
    stable: Sequence[float],
    candidate: Sequence[float],
    *,
    paired: bool = True,
    confidence: float = 0.95,
) -> Interval:
    """Interval of ``mean(candidate) - mean(stable)`` over cases (a quality score)."""
    n = len(stable)
    if not n or len(candidate) != n:
        return Interval(math.nan, math.nan)
    z = _two_sided_z(confidence)
    if paired:
        spread = _spread((c - s) / n for s, c in zip(stable, candidate, strict=True))
    else:
        spread = math.hypot(_spread(s / n for s in stable), _spread(c / n for c in candidate))
    change = (math.fsum(candidate) - math.fsum(stable)) / n
    return Interval(change - z * spread, change + z * spread)


def _quantile_terms(
    lists: Sequence[Sequence[float]], q: float, z: float
) -> tuple[float, list[float]] | None:
    """A pooled quantile and each case's term of its change on a case resample.

    The pooled ``q``-quantile (``quantile``, type 7) over every case's values moves, on a
    resample, by minus the slope of the sorted values at its rank times how many more resampled
    values lie below it than ``q`` of them: a sum of one term per case, ``below - q * count``
    (Woodruff's interval, with the cases as clusters). The slope is measured over the ranks a
    resample's quantile strays across (``z`` standard deviations either side).
    """
    pooled = [v for values in lists for v in values]
    if not pooled or any(map(math.isnan, pooled)):
        return None
    ordered = sorted(pooled)
    total = len(ordered)
    value = _sorted_quantile(ordered, q)
    offsets = [sum(v < value for v in values) - q * len(values) for values in lists]
    reach = max(1, math.ceil(z * _spread(offsets)))
    centre = round((total - 1) * q)
    low, high = max(0, centre - reach), min(total - 1, centre + reach)
    slope = (ordered[high] - ordered[low]) / (high - low) if high > low else 0.0
    return value, [-slope * t for t in offsets]


def large_sample_quantile(
    lists: Sequence[Sequence[float]], q: float, *, confidence: float = 0.95
) -> Interval:
    """Interval of the pooled ``q``-quantile of every case's values (one arm's p95)."""
    z = _two_sided_z(confidence)
    found = _quantile_terms(lists, q, z)
    if found is None:
        return Interval(math.nan, math.nan)
    value, terms = found
    spread = _spread(terms)
    return Interval(value - z * spread, value + z * spread)


def large_sample_quantile_ratio(
    s_lists: Sequence[Sequence[float]],
    c_lists: Sequence[Sequence[float]],
    q: float,
    *,
    paired: bool = True,
    confidence: float = 0.95,
) -> Interval:
    """Interval of candidate / stable pooled ``q``-quantile, cases paired by position.

    Each arm's quantile is linearised as in :func:`large_sample_quantile`, then the delta method
    on the log ratio; symmetric on the log scale. nan when the stable quantile is not positive.
    """
    z = _two_sided_z(confidence)
    stable, candidate = _quantile_terms(s_lists, q, z), _quantile_terms(c_lists, q, z)
    if stable is None or candidate is None or not stable[0] > 0 or not candidate[0] > 0:
        return Interval(math.nan, math.nan)
    (s_value, s_terms), (c_value, c_terms) = stable, candidate
    s_log = [t / s_value for t in s_terms]
    c_log = [t / c_value for t in c_terms]
    if paired:
        spread = _spread(c - s for s, c in zip(s_log, c_log, strict=True))
    else:
        spread = math.hypot(_spread(s_log), _spread(c_log))
    return _log_interval(c_value / s_value, spread, z)
