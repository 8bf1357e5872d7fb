"""Ratios: quantile ratios (latency, TTFT) and ratios of sums (cost and tokens per call)."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pytest_modelgate.judge import largesample
from pytest_modelgate.judge.base import _JudgeBase
from pytest_modelgate.judge.columns import Floats, Ragged, SumColumns
from pytest_modelgate.judge.common import (
    _EPSILON,
    _LARGE_SAMPLE_CASES,
    _MIN_TAIL_SAMPLES,
    _QUANTILE_LEVELS,
    _QUANTILES,
    _Gather,
    _Result,
    _Slice,
    _Spec,
    _Statistic,
)
from pytest_modelgate.judge.inference import _cases_needed, _mde, _p_from_interval
from pytest_modelgate.judge.model import (
    MetricComparison,
    MetricStatus,
    Samples,
)
from pytest_modelgate.judge.quantiles import _median, _QuantileRatios
from pytest_modelgate.judge.resampling import (
    _Block,
    _bootstrap,
    _bootstrap_many,
    _IntSums,
    _RunMemo,
    _share,
    _shares,
)
from pytest_modelgate.judge.stats import (
    Interval,
    wilcoxon_signed_rank,
)


@dataclass(frozen=True)
class _RatioData:
    """What a ratio comparison is judged from, whatever the shape of its data."""

    stable: float
    candidate: float
    # The interval when it is already worked out, else the statistic to bootstrap it from.
    interval: Interval | _Statistic
    # The stable and the candidate figure of each case, for the rank test.
    per_case: tuple[Floats, Floats]
    samples: Samples
    # Whether the rank test on ``per_case`` speaks for this ratio.
    rank_test: bool
    n: int
    # Each case's (total, calls) on both arms, for the large-sample interval of a ratio of sums.
    sums: SumColumns | None = None


def _latency_data(stable: Ragged, candidate: Ragged, q: float, interval: Interval) -> _RatioData:
    """Quantile ``q`` of the paired cases' call latencies, pooled per arm."""
    return _RatioData(
        stable=largesample.pooled_quantile(stable.values, q),
        candidate=largesample.pooled_quantile(candidate.values, q),
        interval=interval,
        # A rank test on per-case medians speaks for the median only; a tail quantile's
        # significance comes from its own bootstrap distribution.
        per_case=(_medians(stable), _medians(candidate)) if q == 0.5 else _NO_CASES,
        samples=Samples(len(stable.values), len(candidate.values)),
        rank_test=q == 0.5,
        n=len(stable.counts),
    )


_NO_CASES: tuple[Floats, Floats] = (np.empty(0), np.empty(0))


def _medians(data: Ragged) -> Floats:
    """Each case's median value (one call per case: its value)."""
    if data.single:
        return data.values
    return np.asarray([_median(values) for values in data.lists()], dtype=np.float64)


def _ratio_of_sums(sums: SumColumns) -> _RatioData | None:
    """Cost or tokens per successful call from each case's (total, calls); None without calls."""
    sums = sums.take(np.flatnonzero((sums.s_calls > 0) & (sums.c_calls > 0)))
    if not len(sums.s_calls):
        return None
    s_tot, c_tot = sums.s_total.tolist(), sums.c_total.tolist()
    s_cnt, c_cnt = sums.s_calls.tolist(), sums.c_calls.tolist()
    return _RatioData(
        stable=_share(sum(s_tot), sum(s_cnt)),
        candidate=_share(sum(c_tot), sum(c_cnt)),
        # The bootstrap's statistic, built only where a bootstrap will run.
        interval=(
            _per_call_statistic(s_tot, s_cnt, c_tot, c_cnt)
            if len(s_cnt) < _LARGE_SAMPLE_CASES
            else _NOT_RESAMPLED
        ),
        per_case=(sums.s_total / sums.s_calls, sums.c_total / sums.c_calls),
        samples=Samples(sum(s_cnt), sum(c_cnt)),
        rank_test=True,
        n=len(s_cnt),
        sums=sums,
    )


def _not_resampled(s_gather: _Gather, c_gather: _Gather) -> float:
    raise AssertionError("a comparison of this many cases takes the large-sample interval")


_NOT_RESAMPLED: _Statistic = _not_resampled


def _per_call_statistic(
    s_tot: Sequence[float], s_cnt: Sequence[int], c_tot: Sequence[float], c_cnt: Sequence[int]
) -> _Statistic:
    """Candidate / stable cost or tokens per successful call on a resample.

    Whole-number totals (tokens, always) are summed as ints in one packed sum with the call
    counts: summed left to right as floats they are the same integers (every partial sum stays
    below 2**53), and int / int rounds like float / int. Other totals (prices) are summed as
    floats, left to right in draw order: that order is part of the result.
    """
    cases = len(s_tot)
    totals = (*s_tot, *c_tot)
    if all(t.is_integer() and t >= 0 for t in totals) and cases * max(totals) < 2**53:
        whole = ([int(t) for t in s_tot], s_cnt), ([int(t) for t in c_tot], c_cnt)
        return _WholePerCallRatio(_IntSums(*whole))
    # One successful call per case (the usual shape): the call count is the case count.
    counts = None if all(c == 1 for c in (*s_cnt, *c_cnt)) else _IntSums((s_cnt,), (c_cnt,))
    return _FloatPerCallRatio(tuple(s_tot), tuple(c_tot), counts, cases)


@dataclass(frozen=True)
class _WholePerCallRatio:
    """Candidate / stable per call on a resample, from whole totals and call counts."""

    sums: _IntSums

    def __call__(self, s_gather: _Gather, c_gather: _Gather) -> float:
        s_total, s_calls, c_total, c_calls = self.sums(s_gather, c_gather)
        base = _share(s_total, s_calls)
        return _share(c_total, c_calls) / base if base > 0 else math.nan

    def on_block(self, block: _Block) -> Floats | None:
        sums = self.sums.on_block(block)
        if sums is None:
            return None
        s_total, s_calls, c_total, c_calls = sums.T
        return _per_base(_shares(c_total, c_calls), _shares(s_total, s_calls))


@dataclass(frozen=True)
class _FloatPerCallRatio:
    """Candidate / stable per call on a resample, from totals summed as floats in draw order.

    Left to right, one addition after another, on every Python version (3.12's ``sum`` of
    floats compensates; numpy's ``cumsum`` adds in order, ``sum`` pairwise): the order is part
    of the result, so both forms add in it.
    """

    s_tot: tuple[float, ...]
    c_tot: tuple[float, ...]
    counts: _IntSums | None
    cases: int

    def __call__(self, s_gather: _Gather, c_gather: _Gather) -> float:
        s_calls, c_calls = self.counts(s_gather, c_gather) if self.counts else (self.cases,) * 2
        base = _share(_in_order(s_gather(self.s_tot)), s_calls)
        return _share(_in_order(c_gather(self.c_tot)), c_calls) / base if base > 0 else math.nan

    def on_block(self, block: _Block) -> Floats | None:
        if self.counts is None:
            s_calls = c_calls = np.full(len(block.stable), float(self.cases))
        else:
            counts = self.counts.on_block(block)
            if counts is None:
                return None
            s_calls, c_calls = counts.T
        # Adding 0.0 makes a sum of negative zeros +0.0, as Python's sum (from int 0) gives.
        s_sums = np.cumsum(np.array(self.s_tot)[block.stable], axis=1)[:, -1] + 0.0
        c_sums = np.cumsum(np.array(self.c_tot)[block.candidate], axis=1)[:, -1] + 0.0
        return _per_base(_shares(c_sums, c_calls), _shares(s_sums, s_calls))


def _in_order(values: Sequence[float]) -> float:
    """The sum of ``values`` added left to right (no compensation), +0.0 for negative zeros."""
    return functools.reduce(operator.add, values, 0.0)


def _per_base(shares: Floats, bases: Floats) -> Floats:
    """``share / base`` where the base is positive, else nan, element by element."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bases > 0, shares / bases, math.nan)


def _ratio_status(
    change: float, interval: Interval, margin: float | None
) -> tuple[MetricStatus, bool]:
    """Status of a candidate / stable ratio (higher is worse) against ``margin``."""
    if margin is None:
        return "not_gated", False
    if interval.low > margin + _EPSILON:
        return "regressed", True
    if interval.high < 1 - _EPSILON:
        return "improved", False
    if interval.high <= margin + _EPSILON:
        return "ok", False
    return "inconclusive", False


class _RatioStatistics(_JudgeBase):
    """The ratios statistics of ``PairedJudge`` (see the module docstring)."""

    def _ratio(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        """Candidate / stable of a latency quantile, or of cost or tokens per call."""
        note: str | None = None
        if spec.name in _QUANTILES:
            data = self._latency(spec, piece, memo)
        else:
            sums = piece.columns.sums(spec.name).take(piece.positions)
            known = sums.s_known & sums.c_known
            if not bool(known.all()):
                gaps, price_missing = piece.columns.cost_gaps(piece.positions)
                if price_missing or not bool(known.any()):
                    # A cost is unknown on an arm: never "ok", and a gated cost cannot pass.
                    return self._unknown(spec, piece, margin, sums.pairs(), gaps)
                # Only usage is missing (a server that sends none on streams): judge the cases
                # whose every call has a cost on both arms, and say so. Never a mix within a case.
                note = (
                    f"judged on the {int(known.sum())} of {len(known)} cases with a cost on "
                    "both arms; " + gaps
                )
                sums = sums.take(known)
            data = _ratio_of_sums(sums)
        if data is None or not (data.stable > 0) or math.isnan(data.candidate):
            return None
        n = data.n
        change = data.candidate / data.stable
        interval, p_value = self._ratio_interval(data, change, piece, memo)
        status, worse_beyond = _ratio_status(change, interval, margin)
        if math.isnan(interval.low):
            status, worse_beyond = ("inconclusive" if margin is not None else "not_gated"), False
        log_half = (
            (math.log(interval.high) - math.log(interval.low)) / 2
            if interval.low > 0 and interval.high > 0
            else math.nan
        )
        mde = _mde(log_half, self.confidence) if not math.isnan(log_half) else None
        needed = None
        if status == "inconclusive" and margin is not None and not math.isnan(log_half):
            needed = _cases_needed(n, log_half, abs(math.log(change) - math.log(margin)))
        samples = data.samples
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=data.stable,
            candidate=data.candidate,
            change=change,
            change_kind="ratio",
            limit=None if margin is None else f"x{margin:.2f}",
            limit_value=margin,
            status=status,
            samples=samples,
            message="",
            scope=piece.scope,
            n=n,
            change_interval=(interval.low, interval.high),
            test=(
                ("wilcoxon+paired_bootstrap" if data.rank_test else "paired_bootstrap")
                if self.paired
                else "bootstrap"
            ),
            p_value=p_value,
            min_detectable_change=None if mde is None else math.exp(mde),
            cases_needed=needed,
        )
        tail = spec.name in _QUANTILES and _QUANTILES[spec.name] > 0.5
        if tail and min(samples.stable, samples.candidate or 0) < _MIN_TAIL_SAMPLES:
            # A p95 over a few dozen calls is its few slowest calls: report it, do not gate on it.
            return _Result(
                replace(comparison, cases_needed=None),
                False,
                False,
                f"a p95 over fewer than {_MIN_TAIL_SAMPLES} calls per arm rests on a handful "
                "of values",
                note,
            )
        gated = piece.gated and margin is not None
        return _Result(comparison, gated, worse_beyond, note=note, partial=note is not None)

    def _ratio_interval(
        self, data: _RatioData, change: float, piece: _Slice, memo: _RunMemo
    ) -> tuple[Interval, float]:
        """A ratio's interval (given, large-sample or bootstrap) and its p-value."""
        n = data.n
        if isinstance(data.interval, Interval):
            interval = data.interval
        elif n >= _LARGE_SAMPLE_CASES and data.sums is not None:
            sums = data.sums
            interval = largesample.ratio_of_sums(
                sums.s_total,
                sums.s_calls.astype(np.float64),
                sums.c_total,
                sums.c_calls.astype(np.float64),
                paired=self.paired,
                confidence=self.confidence,
            )
        else:
            interval = _bootstrap(
                n,
                data.interval,
                seed=piece.seed,
                resamples=self.resamples,
                confidence=self.confidence,
                paired=self.paired,
                memo=memo,
            )
        if self.paired and data.rank_test:
            stable, candidate = data.per_case
            if n >= _LARGE_SAMPLE_CASES:
                both = (stable > 0) & (candidate > 0)
                log_ratios = np.log(candidate[both] / stable[both])
                p_value = largesample.wilcoxon(log_ratios) if len(log_ratios) else 1.0
            else:
                logs = [
                    math.log(c / s)
                    for s, c in zip(stable.tolist(), candidate.tolist(), strict=True)
                    if s > 0 and c > 0
                ]
                p_value = wilcoxon_signed_rank(logs) if logs else 1.0
        elif change > 0 and interval.low > 0:
            p_value = _p_from_interval(
                math.log(change),
                Interval(math.log(interval.low), math.log(interval.high)),
                self.confidence,
            )
        else:
            p_value = 1.0
        return interval, p_value

    def _latency(self, spec: _Spec, piece: _Slice, memo: _RunMemo) -> _RatioData | None:
        """A latency quantile's figures; None when no case has a latency on both arms."""
        q = _QUANTILES[spec.name]
        s_all, c_all = piece.columns.values(spec.name)
        s_counts, c_counts = s_all.counts[piece.positions], c_all.counts[piece.positions]
        rows = piece.positions[(s_counts > 0) & (c_counts > 0)]
        if not len(rows):
            return None
        stable, candidate = s_all.take(rows), c_all.take(rows)
        key = (piece.scope, spec.name == "ttft_p95_ms", len(rows))
        if key not in memo.quantiles:
            memo.quantiles[key] = self._quantile_intervals(stable, candidate, piece, memo)
        return _latency_data(stable, candidate, q, memo.quantiles[key][q])

    def _quantile_intervals(
        self, stable: Ragged, candidate: Ragged, piece: _Slice, memo: _RunMemo
    ) -> dict[float, Interval]:
        """Every level's quantile-ratio interval: p50 and p95 of the same calls from one pass."""
        if len(stable.counts) >= _LARGE_SAMPLE_CASES:
            return {
                q: largesample.quantile_ratio(
                    stable, candidate, q, paired=self.paired, confidence=self.confidence
                )
                for q in _QUANTILE_LEVELS
            }
        intervals = _bootstrap_many(
            len(stable.counts),
            _QuantileRatios(stable.lists(), candidate.lists()),
            len(_QUANTILE_LEVELS),
            seed=piece.seed,
            resamples=self.resamples,
            confidence=self.confidence,
            paired=self.paired,
            memo=memo,
        )
        return dict(zip(_QUANTILE_LEVELS, intervals, strict=True))
