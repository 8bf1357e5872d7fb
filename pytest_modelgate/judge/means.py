"""Mean differences: quality scores (``llm.score``) and the plugins' mean and rate metrics."""

from __future__ import annotations

import math

from pytest_modelgate.judge import largesample
from pytest_modelgate.judge.base import _JudgeBase
from pytest_modelgate.judge.cases import _repeat_scores
from pytest_modelgate.judge.columns import Floats
from pytest_modelgate.judge.common import _LARGE_SAMPLE_CASES, _Result, _Slice, _Spec
from pytest_modelgate.judge.inference import (
    _cases_needed,
    _mde,
    _mean_limit,
    _non_inferiority,
    _p_from_interval,
    _repeats_needed,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
    Samples,
)
from pytest_modelgate.judge.resampling import _bootstrap, _RunMemo
from pytest_modelgate.judge.stats import (
    Interval,
    wilcoxon_signed_rank,
)


class _MeanStatistics(_JudgeBase):
    """The means statistics of ``PairedJudge`` (see the module docstring)."""

    def _mean(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        """The per-case mean of a plugin's per-call values: the paired difference, like scores."""

        # (total, calls with a value) per case and arm: never unknown for these.
        sums = piece.columns.sums(spec.name).take(piece.positions)
        both = (sums.s_calls > 0) & (sums.c_calls > 0)
        if not bool(both.any()):
            return None
        values = (
            sums.s_total[both] / sums.s_calls[both],
            sums.c_total[both] / sums.c_calls[both],
        )
        n = len(values[0])
        s_mean, c_mean, interval, p_value = self._mean_difference(values, piece, memo)
        change = c_mean - s_mean
        # Oriented so that lower is worse, as for the rates.
        sign = 1.0 if spec.higher_is_better else -1.0
        low, high = sorted((sign * interval.low, sign * interval.high))
        status, worse_beyond = _non_inferiority(sign * change, low, high, margin)
        half = (interval.high - interval.low) / 2
        mde = _mde(half, self.confidence)
        needed = None
        if status == "inconclusive" and margin is not None:
            needed = _cases_needed(n, half, abs(sign * change + margin))
        allowed = _mean_limit(margin, spec.higher_is_better)
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=s_mean,
            candidate=c_mean,
            change=change,
            change_kind="points",
            limit=None if allowed is None else f"{allowed:+g}",
            limit_value=allowed,
            status=status,
            samples=Samples(int(sums.s_calls.sum()), int(sums.c_calls.sum())),
            message="",
            scope=piece.scope,
            n=n,
            change_interval=(interval.low, interval.high),
            test="wilcoxon+paired_bootstrap" if self.paired else "bootstrap",
            p_value=p_value,
            min_detectable_change=mde,
            cases_needed=needed,
        )
        return _Result(comparison, piece.gated and margin is not None, worse_beyond)

    def _mean_difference(
        self, values: tuple[Floats, Floats], piece: _Slice, memo: _RunMemo
    ) -> tuple[float, float, Interval, float]:
        """Both arms' means of per-case values (stable, candidate), the interval of their
        difference (candidate - stable) and its p-value: for scores and plugins' mean metrics.
        """
        stable, candidate = values
        s_vals, c_vals = stable.tolist(), candidate.tolist()
        n = len(s_vals)
        s_mean, c_mean = math.fsum(s_vals) / n, math.fsum(c_vals) / n
        change = c_mean - s_mean
        if n >= _LARGE_SAMPLE_CASES:
            interval = largesample.mean_difference(
                stable, candidate, paired=self.paired, confidence=self.confidence
            )
            p_value = (
                largesample.wilcoxon(candidate - stable)
                if self.paired
                else _p_from_interval(change, interval, self.confidence)
            )
            return s_mean, c_mean, interval, p_value
        interval = _bootstrap(
            n,
            lambda s_gather, c_gather: (
                (math.fsum(c_gather(c_vals)) - math.fsum(s_gather(s_vals))) / n
            ),
            seed=piece.seed,
            resamples=self.resamples,
            confidence=self.confidence,
            paired=self.paired,
            memo=memo,
        )
        if self.paired:
            p_value = wilcoxon_signed_rank([c - s for s, c in zip(s_vals, c_vals, strict=True)])
        else:
            p_value = _p_from_interval(change, interval, self.confidence)
        return s_mean, c_mean, interval, p_value

    def _score(
        self, name: str, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        s_all, s_has, c_all, c_has = piece.columns.score(name)
        both = s_has[piece.positions] & c_has[piece.positions]
        rows = piece.positions[both]
        if not len(rows):
            return None
        values = (s_all[rows], c_all[rows])
        n = len(rows)
        s_mean, c_mean, interval, p_value = self._mean_difference(values, piece, memo)
        change = c_mean - s_mean
        status, worse_beyond = _non_inferiority(change, interval.low, interval.high, margin)
        half = (interval.high - interval.low) / 2
        mde = _mde(half, self.confidence)
        needed = repeats = None
        if status == "inconclusive" and margin is not None:
            needed = _cases_needed(n, half, abs(change + margin))
            repeats = _repeats_needed(
                (
                    (_repeat_scores(c.stable, name), _repeat_scores(c.candidate, name))
                    for c in piece.columns.members(piece.positions[rows])
                ),
                interval,
                abs(change + margin),
                needed,
            )
        comparison = MetricComparison(
            name=f"score:{name}",
            unit="number",
            stable=s_mean,
            candidate=c_mean,
            change=change,
            change_kind="points",
            limit=None if margin is None else f"-{margin:g}",
            limit_value=None if margin is None else -margin,
            status=status,
            samples=Samples(n, n),
            message="",
            scope=piece.scope,
            n=n,
            change_interval=(interval.low, interval.high),
            test="wilcoxon+paired_bootstrap" if self.paired else "bootstrap",
            p_value=p_value,
            min_detectable_change=mde,
            cases_needed=needed,
            repeats_needed=repeats,
        )
        return _Result(comparison, piece.gated and margin is not None, worse_beyond)
