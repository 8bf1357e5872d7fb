"""Rates: paired 2x2 tables (McNemar mid-p, Newcombe), the cluster bootstrap for the rest."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from pytest_modelgate.judge import largesample
from pytest_modelgate.judge.base import _JudgeBase
from pytest_modelgate.judge.columns import RateColumns
from pytest_modelgate.judge.common import _LARGE_SAMPLE_CASES, _Result, _Slice, _Spec
from pytest_modelgate.judge.inference import (
    _cases_needed,
    _mde,
    _newcombe_unpaired,
    _non_inferiority,
    _points,
    _repeats_needed,
    _two_proportion_p,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
    Samples,
)
from pytest_modelgate.judge.resampling import _bootstrap, _IntSums, _RateChange, _RunMemo
from pytest_modelgate.judge.stats import (
    Interval,
    PairedTable,
    mcnemar_mid_p,
    newcombe_paired_interval,
    wilcoxon_signed_rank,
    wilson_interval,
)


def _paired_table(columns: RateColumns) -> PairedTable:
    """The paired 2x2 table of one trial per case and arm: (stable, candidate) success."""
    stable, candidate = columns.s_events > 0, columns.c_events > 0
    return PairedTable(
        a=int(np.count_nonzero(stable & candidate)),
        b=int(np.count_nonzero(stable & ~candidate)),
        c=int(np.count_nonzero(~stable & candidate)),
        d=int(np.count_nonzero(~stable & ~candidate)),
    )


class _RateStatistics(_JudgeBase):
    """The rates statistics of ``PairedJudge`` (see the module docstring)."""

    def _rate(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        columns = piece.columns.rate(spec.name).take(piece.positions)
        both = (columns.s_trials > 0) & (columns.c_trials > 0)
        rows = np.flatnonzero(both)
        if not len(rows):
            return None
        columns = columns.take(rows)
        n = len(rows)
        totals = (
            int(columns.s_events.sum()),
            int(columns.s_trials.sum()),
            int(columns.c_events.sum()),
            int(columns.c_trials.sum()),
        )
        s_rate = totals[0] / totals[1]
        c_rate = totals[2] / totals[3]
        s_ci = wilson_interval(totals[0], totals[1], confidence=self.confidence)
        c_ci = wilson_interval(totals[2], totals[3], confidence=self.confidence)
        change = c_rate - s_rate
        binary = bool(np.all(columns.s_trials == 1) and np.all(columns.c_trials == 1))
        table = _paired_table(columns) if binary and self.paired else None
        if table is not None:
            interval = newcombe_paired_interval(table, confidence=self.confidence)
            p_value = mcnemar_mid_p(table.b, table.c)
            test = "mcnemar_mid_p+newcombe"
        else:
            interval, p_value, test = self._clustered_rate(
                columns, (s_rate, s_ci), (c_rate, c_ci), piece, memo
            )
        result = self._rate_result(
            spec,
            piece,
            margin,
            n,
            s_rate,
            c_rate,
            s_ci,
            c_ci,
            change,
            interval,
            p_value,
            test,
            Samples(totals[1], totals[3]),
        )
        if result.comparison.status != "inconclusive" or margin is None:
            return result
        needed = self._rate_cases_needed(spec, n, totals, table, margin)
        repeats = _repeats_needed(
            piece.columns.repeat_rates(spec.name, piece.positions[rows]),
            interval,
            abs(change + (margin if spec.higher_is_better else -margin)),
            needed,
        )
        return replace(
            result,
            comparison=replace(result.comparison, cases_needed=needed, repeats_needed=repeats),
        )

    def _clustered_rate(
        self,
        columns: RateColumns,
        stable: tuple[float, Interval],
        candidate: tuple[float, Interval],
        piece: _Slice,
        memo: _RunMemo,
    ) -> tuple[Interval, float, str]:
        """The interval, p-value and test of a rate with several trials per case (or unpaired).

        ``columns``: each case's stable events and trials, then the candidate's; ``stable`` and
        ``candidate``: each arm's pooled rate and Wilson interval.
        """
        s_rate, s_ci = stable
        c_rate, c_ci = candidate
        change = c_rate - s_rate
        n = len(columns.s_events)
        large = n >= _LARGE_SAMPLE_CASES
        if large:
            interval = largesample.rate_difference(
                columns.s_events.astype(np.float64),
                columns.s_trials.astype(np.float64),
                columns.c_events.astype(np.float64),
                columns.c_trials.astype(np.float64),
                paired=self.paired,
                confidence=self.confidence,
            )
        else:
            s_events, s_trials, c_events, c_trials = columns.lists()
            interval = _bootstrap(
                n,
                _RateChange(_IntSums((s_events, s_trials), (c_events, c_trials))),
                seed=piece.seed,
                resamples=self.resamples,
                confidence=self.confidence,
                paired=self.paired,
                memo=memo,
            )
        s_events_total, s_trials_total = int(columns.s_events.sum()), int(columns.s_trials.sum())
        c_events_total, c_trials_total = int(columns.c_events.sum()), int(columns.c_trials.sum())
        # A bootstrap cannot see beyond what happened: an arm with no event (or nothing but
        # events) is the same in every resample, so its own uncertainty drops out (0 errors
        # in 116 calls would count as a rate known to be 0). Newcombe's interval from the
        # Wilson intervals keeps the rule of three for that arm; the wider of the two holds.
        s_constant = s_events_total in (0, s_trials_total)
        c_constant = c_events_total in (0, c_trials_total)
        if math.isnan(interval.low) or interval.width <= 0 or (s_constant and c_constant):
            interval = _newcombe_unpaired(change, s_rate, s_ci, c_rate, c_ci)
        elif s_constant or c_constant:
            score = _newcombe_unpaired(change, s_rate, s_ci, c_rate, c_ci)
            interval = Interval(min(interval.low, score.low), max(interval.high, score.high))
        if not self.paired:
            p_value = _two_proportion_p(
                s_events_total, s_trials_total, c_events_total, c_trials_total
            )
            return interval, p_value, "z_test+bootstrap"
        if large:
            p_value = largesample.wilcoxon(
                columns.c_events / columns.c_trials - columns.s_events / columns.s_trials
            )
        else:
            s_events, s_trials, c_events, c_trials = columns.lists()
            p_value = wilcoxon_signed_rank(
                [
                    c / ct - s / st
                    for s, st, c, ct in zip(s_events, s_trials, c_events, c_trials, strict=True)
                ]
            )
        return interval, p_value, "wilcoxon+paired_bootstrap"

    def _rate_cases_needed(
        self,
        spec: _Spec,
        n: int,
        counts: tuple[int, int, int, int],
        table: PairedTable | None,
        margin: float,
    ) -> int | None:
        """About how many cases decide: the same proportions, scaled until the interval does.

        Scaling the counts (rather than assuming a 1/sqrt(n) half-width) stays right when no
        event happened at all, where the interval shrinks like 1/n (the rule of three).
        """
        sign = 1.0 if spec.higher_is_better else -1.0

        def decided(factor: float) -> bool:
            if table is not None:
                scaled = PairedTable(
                    *(round(x * factor) for x in (table.a, table.b, table.c, table.d))
                )
                interval = newcombe_paired_interval(scaled, confidence=self.confidence)
            else:
                se, st, ce, ct = (round(x * factor) for x in counts)
                s_rate, c_rate = se / st, ce / ct
                interval = _newcombe_unpaired(
                    c_rate - s_rate,
                    s_rate,
                    wilson_interval(se, st, confidence=self.confidence),
                    c_rate,
                    wilson_interval(ce, ct, confidence=self.confidence),
                )
            low, high = sorted((sign * interval.low, sign * interval.high))
            return low > -margin or high < -margin

        high_factor = 2.0
        while not decided(high_factor):
            high_factor *= 2
            if high_factor > 4096:
                return None  # the point estimate sits on the margin: no size decides
        low_factor = 1.0
        for _ in range(20):
            middle = (low_factor + high_factor) / 2
            if decided(middle):
                high_factor = middle
            else:
                low_factor = middle
        return math.ceil(n * high_factor)

    def _rate_result(
        self,
        spec: _Spec,
        piece: _Slice,
        margin: float | None,
        n: int,
        s_rate: float,
        c_rate: float,
        s_ci: Interval,
        c_ci: Interval,
        change: float,
        interval: Interval,
        p_value: float,
        test: str,
        samples: Samples,
    ) -> _Result:
        sign = 1.0 if spec.higher_is_better else -1.0
        # Oriented: lower is worse.
        low, high = sorted((sign * interval.low, sign * interval.high))
        point = sign * change
        status, worse_beyond = _non_inferiority(point, low, high, margin)
        half = (interval.high - interval.low) / 2
        mde = _mde(half, self.confidence)
        needed = _cases_needed(n, half, abs(point + margin)) if margin is not None else None
        limit_text = (
            None if margin is None else _points(-margin if spec.higher_is_better else margin)
        )
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=s_rate,
            candidate=c_rate,
            change=change * 100,
            change_kind="points",
            limit=limit_text,
            limit_value=None if margin is None else sign * -margin * 100,
            status=status,
            samples=samples,
            message="",
            scope=piece.scope,
            n=n,
            stable_interval=(s_ci.low, s_ci.high),
            candidate_interval=(c_ci.low, c_ci.high),
            change_interval=(interval.low * 100, interval.high * 100),
            test=test,
            p_value=p_value,
            min_detectable_change=None if mde is None else mde * 100,
            cases_needed=needed if status == "inconclusive" else None,
        )
        return _Result(comparison, piece.gated and margin is not None, worse_beyond)
