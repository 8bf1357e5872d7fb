"""The large-sample intervals and rank test on per-case columns, in numpy.

The same formulas as the pure-Python ``stats.large_sample_*`` functions (the delta method over
cases: each statistic linearised into one term per case, the terms' spread over cases is the
standard error a case resample has) and as ``stats.wilcoxon_signed_rank``, vectorised for the
comparisons of thousands of cases the judge sends here. Sums are numpy's (pairwise), so a figure
may differ from the pure-Python one in its last bits; ``tests/unit/test_judge_columns.py``
holds them to 1e-9.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pytest_modelgate.judge.quantiles import _interpolation
from pytest_modelgate.judge.stats import (
    _WILCOXON_EXACT_MAX,
    Interval,
    _signed_rank_normal_p,
    _two_sided_z,
    wilcoxon_signed_rank,
)

if TYPE_CHECKING:
    from pytest_modelgate.judge.columns import Floats, Ragged


def spread(terms: Floats) -> float:
    """The standard deviation of a sum of ``terms`` drawn with replacement (n draws of n)."""
    if not len(terms):
        return math.nan
    centred = terms - terms.mean()
    return math.sqrt(float(np.dot(centred, centred)))


def _combined(stable: Floats, candidate: Floats, paired: bool) -> float:
    if paired:
        return spread(candidate - stable)
    return math.hypot(spread(stable), spread(candidate))


def _log_interval(value: float, width: float, z: float) -> Interval:
    if not value > 0 or math.isnan(width):
        return Interval(math.nan, math.nan)
    return Interval(value * math.exp(-z * width), value * math.exp(z * width))


def rate_difference(
    s_events: Floats,
    s_trials: Floats,
    c_events: Floats,
    c_trials: Floats,
    *,
    paired: bool,
    confidence: float,
) -> Interval:
    """Interval of the difference of pooled rates, candidate minus stable."""
    z = _two_sided_z(confidence)
    s_total, c_total = float(s_trials.sum()), float(c_trials.sum())
    if not s_total or not c_total:
        return Interval(math.nan, math.nan)
    s_rate, c_rate = float(s_events.sum()) / s_total, float(c_events.sum()) / c_total
    stable = (s_events - s_rate * s_trials) / s_total
    candidate = (c_events - c_rate * c_trials) / c_total
    width = _combined(stable, candidate, paired)
    change = c_rate - s_rate
    return Interval(change - z * width, change + z * width)


def _ratio_terms(numerators: Floats, denominators: Floats) -> Floats | None:
    top, bottom = float(numerators.sum()), float(denominators.sum())
    if not top > 0 or not bottom > 0:
        return None
    terms: Floats = numerators / top - denominators / bottom
    return terms


def ratio_of_sums(
    s_num: Floats,
    s_den: Floats,
    c_num: Floats,
    c_den: Floats,
    *,
    paired: bool,
    confidence: float,
) -> Interval:
    """Interval of candidate / stable ``sum(num) / sum(den)`` (cost or tokens per call)."""
    z = _two_sided_z(confidence)
    stable, candidate = _ratio_terms(s_num, s_den), _ratio_terms(c_num, c_den)
    if stable is None or candidate is None:
        return Interval(math.nan, math.nan)
    value = (float(c_num.sum()) / float(c_den.sum())) / (float(s_num.sum()) / float(s_den.sum()))
    return _log_interval(value, _combined(stable, candidate, paired), z)


def mean_difference(
    stable: Floats, candidate: Floats, *, paired: bool, confidence: float
) -> Interval:
    """Interval of ``mean(candidate) - mean(stable)`` over cases (a quality score)."""
    n = len(stable)
    if not n or len(candidate) != n:
        return Interval(math.nan, math.nan)
    z = _two_sided_z(confidence)
    width = _combined(stable / n, candidate / n, paired)
    change = float(candidate.mean() - stable.mean())
    return Interval(change - z * width, change + z * width)


def pooled_quantile(values: Floats, q: float) -> float:
    """The judge's pooled quantile of ``values`` (``quantiles._sorted_quantile``), to the last bit.

    Only the two order statistics around the quantile are selected (``numpy.partition``, not a
    sort); the interpolation between them is the same Python float arithmetic.
    """
    size = len(values)
    if not size:
        return math.nan
    lower, upper, fraction = _interpolation(size, q)
    chosen = np.partition(values, (lower, upper))
    below, above = float(chosen[lower]), float(chosen[upper])
    return below + (above - below) * fraction


def _quantile_terms(data: Ragged, q: float, z: float) -> tuple[float, Floats] | None:
    """A pooled quantile and each case's term of its change on a case resample.

    As ``stats._quantile_terms`` (Woodruff's interval with the cases as clusters): a case's
    term is minus the slope of the sorted values at the quantile's rank times how many more of
    its values lie below the quantile than ``q`` of them.
    """
    values = data.values
    total = len(values)
    if not total or bool(np.isnan(values).any()):
        return None
    value = pooled_quantile(values, q)
    below = data.case_terms((values < value).astype(np.float64))
    offsets = below - q * data.counts
    reach = max(1, math.ceil(z * spread(offsets)))
    centre = round((total - 1) * q)
    low, high = max(0, centre - reach), min(total - 1, centre + reach)
    if high > low:
        chosen = np.partition(values, (low, high))
        slope = (float(chosen[high]) - float(chosen[low])) / (high - low)
    else:
        slope = 0.0
    terms: Floats = -slope * offsets
    return value, terms


def quantile_ratio(
    stable: Ragged, candidate: Ragged, q: float, *, paired: bool, confidence: float
) -> Interval:
    """Interval of candidate / stable pooled ``q``-quantile, cases paired by position."""
    z = _two_sided_z(confidence)
    s_found, c_found = _quantile_terms(stable, q, z), _quantile_terms(candidate, q, z)
    if s_found is None or c_found is None or not s_found[0] > 0 or not c_found[0] > 0:
        return Interval(math.nan, math.nan)
    (s_value, s_terms), (c_value, c_terms) = s_found, c_found
    width = _combined(s_terms / s_value, c_terms / c_value, paired)
    return _log_interval(c_value / s_value, width, z)


def wilcoxon(differences: Floats) -> float:
    """``stats.wilcoxon_signed_rank`` of paired differences, vectorised.

    A handful of non-zero differences without ties takes the exact null distribution; that is
    the pure-Python function's own path, so it is asked directly.
    """
    if bool(np.isnan(differences).any()):
        raise ValueError("differences must not contain nan")
    nonzero = differences[differences != 0]
    m = len(nonzero)
    if m == 0:
        return 1.0
    magnitudes = np.abs(nonzero)
    order = np.argsort(magnitudes, kind="stable")
    ordered = magnitudes[order]
    # Tie groups of equal magnitude: where each starts, and how many it holds.
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, m])
    if m <= _WILCOXON_EXACT_MAX and bool(np.all(sizes == 1)):
        return wilcoxon_signed_rank(nonzero.tolist())
    average = (2 * starts + 1 + sizes) / 2.0
    ranks = np.repeat(average, sizes)
    rank_plus = float(ranks[nonzero[order] > 0].sum())
    tie_correction = float((sizes.astype(np.float64) ** 3 - sizes).sum())
    return _signed_rank_normal_p(rank_plus, m, tie_correction)
