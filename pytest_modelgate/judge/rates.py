"""Rates: paired 2x2 tables (McNemar mid-p, Newcombe), the cluster bootstrap for the rest."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

from pytest_modelgate.judge.base import _JudgeBase
from pytest_modelgate.judge.cases import _repeat_rates
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
from pytest_modelgate.judge.resampling import _bootstrap, _IntSums, _rate_change, _RunMemo
from pytest_modelgate.judge.stats import (
    Interval,
    PairedTable,
    large_sample_rate_difference,
    mcnemar_mid_p,
    newcombe_paired_interval,
    wilcoxon_signed_rank,
    wilson_interval,
)


class _RateStatistics(_JudgeBase):
    """The rates statistics of ``PairedJudge`` (see the module docstring)."""

    def _rate(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        name = spec.name
        # Each case arm's counts looked up once: per case, metric and scope, these look-ups
        # were most of a judgement of 100,000 cases.
        rows = [
            (case, case.stable.counts(name), case.candidate.counts(name)) for case in piece.cases
        ]
        rows = [row for row in rows if row[1][1] and row[2][1]]
        if not rows:
            return None
        kept = [case for case, _, _ in rows]
        pairs = [(s, c) for _, s, c in rows]
        n = len(pairs)
        s_events = [s[0] for s, _ in pairs]
        s_trials = [s[1] for s, _ in pairs]
        c_events = [c[0] for _, c in pairs]
        c_trials = [c[1] for _, c in pairs]
        s_rate = sum(s_events) / sum(s_trials)
        c_rate = sum(c_events) / sum(c_trials)
        s_ci = wilson_interval(sum(s_events), sum(s_trials), confidence=self.confidence)
        c_ci = wilson_interval(sum(c_events), sum(c_trials), confidence=self.confidence)
        change = c_rate - s_rate
        binary = all(t == 1 for t in s_trials) and all(t == 1 for t in c_trials)
        if binary and self.paired:
            table = PairedTable.from_pairs(
                (bool(s), bool(c)) for s, c in zip(s_events, c_events, strict=True)
            )
            interval = newcombe_paired_interval(table, confidence=self.confidence)
            p_value = mcnemar_mid_p(table.b, table.c)
            test = "mcnemar_mid_p+newcombe"
        else:
            interval, p_value, test = self._clustered_rate(
                (s_events, s_trials, c_events, c_trials),
                (s_rate, s_ci),
                (c_rate, c_ci),
                piece,
                memo,
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
            Samples(sum(s_trials), sum(c_trials)),
        )
        if result.comparison.status != "inconclusive" or margin is None:
            return result
        counts = (sum(s_events), sum(s_trials), sum(c_events), sum(c_trials))
        paired_table = (
            PairedTable.from_pairs(
                (bool(s), bool(c)) for s, c in zip(s_events, c_events, strict=True)
            )
            if binary and self.paired
            else None
        )
        needed = self._rate_cases_needed(spec, n, counts, paired_table, margin)
        repeats = _repeats_needed(
            (
                (_repeat_rates(c.stable, spec.name), _repeat_rates(c.candidate, spec.name))
                for c in kept
            ),
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
        columns: tuple[list[int], list[int], list[int], list[int]],
        stable: tuple[float, Interval],
        candidate: tuple[float, Interval],
        piece: _Slice,
        memo: _RunMemo,
    ) -> tuple[Interval, float, str]:
        """The interval, p-value and test of a rate with several trials per case (or unpaired).

        ``columns``: each case's stable events and trials, then the candidate's; ``stable`` and
        ``candidate``: each arm's pooled rate and Wilson interval.
        """
        s_events, s_trials, c_events, c_trials = columns
        s_rate, s_ci = stable
        c_rate, c_ci = candidate
        change = c_rate - s_rate
        n = len(s_events)
        interval = (
            large_sample_rate_difference(
                s_events,
                s_trials,
                c_events,
                c_trials,
                paired=self.paired,
                confidence=self.confidence,
            )
            if n >= _LARGE_SAMPLE_CASES
            else _bootstrap(
                n,
                functools.partial(
                    _rate_change, _IntSums((s_events, s_trials), (c_events, c_trials))
                ),
                seed=piece.seed,
                resamples=self.resamples,
                confidence=self.confidence,
                paired=self.paired,
                memo=memo,
            )
        )
        # A bootstrap cannot see beyond what happened: an arm with no event (or nothing but
        # events) is the same in every resample, so its own uncertainty drops out (0 errors
        # in 116 calls would count as a rate known to be 0). Newcombe's interval from the
        # Wilson intervals keeps the rule of three for that arm; the wider of the two holds.
        s_constant = sum(s_events) in (0, sum(s_trials))
        c_constant = sum(c_events) in (0, sum(c_trials))
        if math.isnan(interval.low) or interval.width <= 0 or (s_constant and c_constant):
            interval = _newcombe_unpaired(change, s_rate, s_ci, c_rate, c_ci)
        elif s_constant or c_constant:
            score = _newcombe_unpaired(change, s_rate, s_ci, c_rate, c_ci)
            interval = Interval(min(interval.low, score.low), max(interval.high, score.high))
        if self.paired:
            differences = [
                c / ct - s / st
                for s, st, c, ct in zip(s_events, s_trials, c_events, c_trials, strict=True)
            ]
            p_value = wilcoxon_signed_rank(differences)
            test = "wilcoxon+paired_bootstrap"
        else:
            p_value = _two_proportion_p(sum(s_events), sum(s_trials), sum(c_events), sum(c_trials))
            test = "z_test+bootstrap"
        return interval, p_value, test

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
