"""Absolute budgets from markers: bind the candidate of their workflow whatever its size."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

from pytest_modelgate.calls.records import Budgets
from pytest_modelgate.judge.base import _JudgeBase
from pytest_modelgate.judge.cases import _Case
from pytest_modelgate.judge.common import (
    _LARGE_SAMPLE_CASES,
    _MIN_BOOTSTRAP_CASES,
    _Gather,
    _Result,
    _Slice,
)
from pytest_modelgate.judge.metrics import (
    Unit,
    format_value,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
    MetricStatus,
    Samples,
)
from pytest_modelgate.judge.resampling import _bootstrap, _RunMemo
from pytest_modelgate.judge.stats import (
    Interval,
    large_sample_quantile,
    large_sample_ratio,
    quantile,
    wilson_interval,
)


class _BudgetStatistics(_JudgeBase):
    """The budgets statistics of ``PairedJudge`` (see the module docstring)."""

    def _budgets(self, piece: _Slice, budgets: Budgets, memo: _RunMemo) -> list[_Result]:
        """The workflow's absolute budgets on the candidate.

        A budget the user wrote binds whatever the slice's size (``min_cases`` does not apply):
        a clear breach (every case beyond the bound, or the whole interval) fails; a figure too
        few cases cannot place is inconclusive, saying why; a figure with no data blocks.
        """
        results: list[_Result] = []
        cases = piece.columns.members(piece.positions)
        checks = _latency_checks(cases, budgets, self.confidence)
        cost = _cost_checks(cases, budgets, self.confidence)
        if cost is not None:
            checks += cost
        else:
            gaps, _ = piece.columns.cost_gaps(piece.positions)
            for name, bound in (
                ("cost_per_call_usd", budgets.cost_usd_per_call),
                ("cost_per_test_usd", budgets.cost_usd_per_test),
            ):
                if bound is not None:
                    results.append(
                        self._budget_no_data(f"{name}:budget", "usd", piece, bound, True, gaps)
                    )
        for check in checks:
            if check[2] is not None:
                results.append(self._budget_check(check, piece, memo))
        if budgets.min_pass_rate is not None:
            result = self._pass_rate_budget(piece, budgets.min_pass_rate)
            if result is not None:
                results.append(result)
        return results

    def _budget_check(self, check: _Check, piece: _Slice, memo: _RunMemo) -> _Result:
        """One maximum budget: its figure over the slice, with an interval, against the bound."""
        name, unit, bound, statistic, per_case, large_sample = check
        assert bound is not None
        n = len(piece.positions)
        value = statistic(tuple)
        if math.isnan(value):
            return self._budget_no_data(
                f"{name}:budget", unit, piece, bound, True, "no data on the candidate arm"
            )
        interval = (
            large_sample()
            if n >= _LARGE_SAMPLE_CASES
            else _bootstrap(
                n,
                lambda s_gather, _c_gather, f=statistic: f(s_gather),  # type: ignore[misc]
                seed=piece.seed,
                resamples=self.resamples,
                confidence=self.confidence,
                paired=True,
                memo=memo,
            )
        )
        figures = [f for f in per_case if f is not None]
        every = bool(figures) and all(f > bound for f in figures)
        return self._budget_result(
            f"{name}:budget", unit, piece, n, value, interval, bound, True, every
        )

    def _pass_rate_budget(self, piece: _Slice, minimum: float) -> _Result | None:
        """The candidate's pass rate against a minimum (Wilson interval); None if nothing ran."""
        cases = piece.columns.members(piece.positions)
        passed = sum(sum(t.outcome == "passed" for t in c.candidate.ran) for c in cases)
        ran = sum(len(c.candidate.ran) for c in cases)
        if not ran:
            return None
        ci = wilson_interval(passed, ran, confidence=self.confidence)
        return self._budget_result(
            "pass_rate:budget",
            "rate",
            piece,
            len(cases),
            passed / ran,
            ci,
            minimum,
            False,
            passed == 0 and minimum > 0,
        )

    def _budget_result(
        self,
        name: str,
        unit: Unit,
        piece: _Slice,
        n: int,
        value: float,
        interval: Interval,
        bound: float,
        upper: bool,
        every_case_beyond: bool = False,
    ) -> _Result:
        """A candidate figure against an absolute bound: a maximum (``upper``) or a minimum.

        ``every_case_beyond``: each case's own figure is beyond the bound, so the pooled one is
        too, however few the cases.
        """
        note = None
        if every_case_beyond:
            status: MetricStatus = "regressed"
            beyond = True
            note = "every case is beyond the bound"
        elif math.isnan(interval.low):
            status = "inconclusive"
            beyond = False
            note = (
                f"too few cases for an interval ({n}, at least {_MIN_BOOTSTRAP_CASES}) and not "
                "every case is beyond the bound"
            )
        elif upper:
            beyond = interval.low > bound
            status = "regressed" if beyond else ("ok" if interval.high <= bound else "inconclusive")
        else:
            beyond = interval.high < bound
            status = "regressed" if beyond else ("ok" if interval.low >= bound else "inconclusive")
        comparison = MetricComparison(
            name=name,
            unit=unit,
            stable=None,
            candidate=value,
            change=None,
            change_kind="points" if unit == "rate" else "ratio",
            limit=("<= " if upper else ">= ") + format_value(unit, bound),
            limit_value=bound,
            status=status,
            samples=Samples(0, n),
            message="",
            scope=piece.scope,
            n=n,
            candidate_interval=(interval.low, interval.high),
            test="budget+bootstrap" if unit != "rate" else "budget+wilson",
            # A budget is a bound on one arm, not a paired difference: it is not part of
            # the Holm family (its interval alone decides).
            p_value=None,
        )
        # A budget binds whatever the slice's size: the user wrote it for this workflow.
        return _Result(comparison, True, beyond, note=note)

    def _budget_no_data(
        self, name: str, unit: Unit, piece: _Slice, bound: float, upper: bool, why: str
    ) -> _Result:
        """A budget whose figure the candidate has no data for: it cannot be checked, so it
        blocks a pass."""
        comparison = MetricComparison(
            name=name,
            unit=unit,
            stable=None,
            candidate=None,
            change=None,
            change_kind="points" if unit == "rate" else "ratio",
            limit=("<= " if upper else ">= ") + format_value(unit, bound),
            limit_value=bound,
            status="no_data",
            samples=Samples(0, 0),
            message="",
            scope=piece.scope,
            n=len(piece.positions),
            test=None,
        )
        return _Result(comparison, True, False, note=why)


# (name, unit, bound, statistic, each case's own figure or None, the large-sample interval of the
# statistic).
_Check = tuple[
    str,
    Unit,
    "float | None",
    Callable[[_Gather], float],
    "list[float | None]",
    Callable[[], Interval],
]


def _quantile_of(lists: list[list[float]], q: float) -> Callable[[_Gather], float]:
    """The ``q`` quantile of the pooled values of a resample of ``lists``."""

    def statistic(gather: _Gather) -> float:
        values = list(itertools.chain.from_iterable(gather(lists)))
        return quantile(values, q) if values else math.nan

    return statistic


def _latency_checks(cases: Sequence[_Case], budgets: Budgets, confidence: float) -> list[_Check]:
    """The latency and time-to-first-token budgets' checks (a bound of None is not checked)."""
    latency_lists = [c.candidate.values("latency_p95_ms") for c in cases]
    ttft_lists = [c.candidate.values("ttft_p95_ms") for c in cases]
    # A latency quantile is beyond a maximum for sure when every call is: a case "counts" by
    # its fastest call.
    fastest = [min(v) if v else None for v in latency_lists]
    first_tokens = [min(v) if v else None for v in ttft_lists]
    checks: list[_Check] = []
    for name, bound, lists, q, own in (
        ("latency_p50_ms", budgets.latency_p50_ms, latency_lists, 0.5, fastest),
        ("latency_p95_ms", budgets.latency_p95_ms, latency_lists, 0.95, fastest),
        ("ttft_p95_ms", budgets.ttft_p95_ms, ttft_lists, 0.95, first_tokens),
    ):
        checks.append(
            (
                name,
                "ms",
                bound,
                _quantile_of(lists, q),
                own,
                functools.partial(large_sample_quantile, lists, q, confidence=confidence),
            )
        )
    return checks


def _cost_checks(
    cases: Sequence[_Case], budgets: Budgets, confidence: float
) -> list[_Check] | None:
    """The cost budgets' checks; None when a case lacks a cost (the budgets then have no data)."""
    sums = [c.candidate.sums("cost_per_call_usd") for c in cases]
    if not all(s is not None for s in sums):
        return None
    totals = [s[0] if s is not None else 0.0 for s in sums]
    counts = [s[1] if s is not None else 0 for s in sums]
    tests = [len(c.candidate.ran) for c in cases]

    def cost_per_call(gather: _Gather) -> float:
        calls = sum(gather(counts))
        return math.fsum(gather(totals)) / calls if calls else math.nan

    def cost_per_test(gather: _Gather) -> float:
        ran = sum(gather(tests))
        return math.fsum(gather(totals)) / ran if ran else math.nan

    # A pooled per-call (per-test) cost lies between the cases' own: beyond a maximum for sure
    # when every case's is.
    per_call = [t / c if c else None for t, c in zip(totals, counts, strict=True)]
    per_test = [t / r if r else None for t, r in zip(totals, tests, strict=True)]
    return [
        (
            "cost_per_call_usd",
            "usd",
            budgets.cost_usd_per_call,
            cost_per_call,
            per_call,
            functools.partial(large_sample_ratio, totals, counts, confidence=confidence),
        ),
        (
            "cost_per_test_usd",
            "usd",
            budgets.cost_usd_per_test,
            cost_per_test,
            per_test,
            functools.partial(large_sample_ratio, totals, tests, confidence=confidence),
        ),
    ]
