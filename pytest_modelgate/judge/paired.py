"""The paired statistical judge: non-inferiority per metric and scope, with an honest third answer.

Pure: no pytest; deterministic (every bootstrap is seeded from the metric, the scope and
the case ids, so the same records give the same judgement, byte for byte).

How a run is judged (see ``docs/statistics.md`` for the reasoning):

1. **Pairing.** Both arms ran the same cases. Records are grouped by ``case_id``; with repeats, a
   case's figures pool its K repeats, and cases (not calls) are what the bootstrap resamples.
2. **Metrics.** Rates (pass rate, JSON / schema validity, tool-call accuracy, language match,
   error rate, fallback rate), ratios (latency p50 / p95, TTFT p95, cost and tokens per call) and
   the numeric quality scores tests record with ``llm.score``.
3. **Statistics.** A rate whose every case holds one trial per arm is a paired 2x2 table: McNemar's
   test (mid-p: the exact conditional test is conservative with few discordant pairs) and
   Newcombe's hybrid score interval for the difference, Wilson intervals per arm.
   Other rates (repeats, several calls per case) use a paired cluster bootstrap of the difference
   of pooled rates and the Wilcoxon signed-rank test on the per-case differences; a bootstrap that
   cannot move (no event on either arm) falls back to Newcombe's interval from the two Wilson
   intervals, so "0 errors in 95 calls" never proves more than about 3/95. Latency quantiles and
   cost per call: the paired bootstrap of the ratio, Wilcoxon on the per-case log ratios.
4. **Non-inferiority.** With the change oriented so that lower is worse and a margin ``m``:
   ``regressed`` when the whole interval is worse than the margin allows *and* the difference is
   significant after Holm's correction across the metric's scopes (overall, every workflow and
   language: the same question asked many times; weighted, the overall scope holds half of alpha
   and the slices share the other half); ``ok`` when
   non-inferiority is shown; ``improved`` when the whole interval is better; ``inconclusive``
   otherwise, with the minimum detectable change and about how many cases would decide it.
5. **Scopes.** Overall, per workflow and per prompt language. A slice with fewer than
   ``min_cases`` paired cases is reported but not gated, and so is a p95 over fewer than 100
   calls per arm (a handful of slowest calls). Absolute budgets from markers bind the
   candidate of their workflow whatever its size: every case beyond the bound, or the whole
   interval, fails; too few cases to tell is inconclusive.
6. **Verdict.** ``fail`` if a gated comparison regressed, else ``inconclusive`` if one is
   inconclusive or has data on one arm only, else ``pass``. ``error`` when an arm made no
   call or none that succeeded, or the stable arm passed fewer than ``min_stable_pass_rate``
   of its tests. No data never counts for the candidate.
7. **Rollout.** ``pass``: a canary; ``inconclusive``: shadow traffic only; rollback triggers
   from figures the judge gated, clamped to each metric's range.
"""

from __future__ import annotations

import contextlib
import gc
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from pytest_modelgate.judge.budgets import _BudgetStatistics
from pytest_modelgate.judge.cases import _merge_budgets, _slice_margins
from pytest_modelgate.judge.columns import CaseAggregates, CaseColumns, aggregates_of_records
from pytest_modelgate.judge.common import (
    _CORE,
    _RATES,
    _RATIOS,
    Kind,
    Margins,
    _Result,
    _Slice,
    _Spec,
)
from pytest_modelgate.judge.inference import _cases_for_significance, _holm_weights, _mean_limit, _p
from pytest_modelgate.judge.means import _MeanStatistics
from pytest_modelgate.judge.messages import _message, metric_label
from pytest_modelgate.judge.metrics import (
    CustomMetric,
    compute_arm_metrics,
)
from pytest_modelgate.judge.model import (
    Judgement,
    MetricComparison,
    Regression,
    RunData,
    judge_stable_only,
    no_call_reasons,
    regressions_of,
    stable_floor_reason,
)
from pytest_modelgate.judge.rates import _RateStatistics
from pytest_modelgate.judge.ratios import _RatioStatistics
from pytest_modelgate.judge.resampling import _RunMemo, _unless_repeated
from pytest_modelgate.judge.rollout import rollout_plan
from pytest_modelgate.judge.stats import (
    holm,
)

__all__ = ["Margins", "PairedJudge", "metric_label", "rollout_plan"]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while judging; reference counting frees as usual.

    A judgement allocates a few container objects per case, and the collections those
    allocations set off walk every live object, the run's records (about a million pydantic
    objects at 100,000 cases) and the cases built so far, again and again: a third of a large
    judgement's time (``bench/judge_scale.py``). The judge makes no reference cycles of its
    own; any a caller's thread makes meanwhile are collected once judging ends. The previous
    state is restored, so a caller that had disabled collection keeps it disabled.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class PairedJudge(_RateStatistics, _RatioStatistics, _MeanStatistics, _BudgetStatistics):
    """Paired non-inferiority judge (see the module docstring); implements ``Judge``.

    ``confidence``: of every interval (two-sided); ``alpha = 1 - confidence`` is also the
    family-wise error of "regressed" after Holm. ``resamples``: bootstrap resamples.
    ``min_cases``: paired cases below which a workflow or language slice is reported, not gated.
    ``paired=False`` ignores the pairing (for comparison in ``bench/gate_accuracy.py``).
    ``min_stable_pass_rate``: a stable arm passing fewer of its tests makes the verdict
    ``error`` (None: no floor).
    """

    def __init__(
        self,
        margins: Margins | None = None,
        *,
        confidence: float = 0.95,
        resamples: int = 1000,
        min_cases: int = 20,
        paired: bool = True,
        min_stable_pass_rate: float | None = 0.5,
        custom_metrics: Sequence[CustomMetric] = (),
    ) -> None:
        if not 0.5 < confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
        if resamples < 100:
            raise ValueError(f"resamples must be >= 100, got {resamples}")
        self.margins = margins if margins is not None else Margins()
        self.confidence = confidence
        self.resamples = resamples
        self.min_cases = min_cases
        self.paired = paired
        self.min_stable_pass_rate = min_stable_pass_rate
        # Metrics plugins add (pytest_modelgate_metrics), judged after the built-in ones.
        self.custom_metrics = tuple(custom_metrics)

    def with_metrics(self, custom_metrics: Sequence[CustomMetric]) -> PairedJudge:
        """This judge, also comparing ``custom_metrics`` (see ``CustomMetric``)."""
        return PairedJudge(
            self.margins,
            confidence=self.confidence,
            resamples=self.resamples,
            min_cases=self.min_cases,
            paired=self.paired,
            min_stable_pass_rate=self.min_stable_pass_rate,
            custom_metrics=(*self.custom_metrics, *custom_metrics),
        )

    def __repr__(self) -> str:
        return (
            f"PairedJudge(confidence={self.confidence}, resamples={self.resamples}, "
            f"min_cases={self.min_cases}, paired={self.paired})"
        )

    def judge(self, run: RunData) -> Judgement:
        """Judge one run."""
        with _collector_paused():
            return self._judge(run)

    def judge_aggregates(self, run: CaseAggregates) -> Judgement:
        """Judge a run given as per-case aggregates (``modelgate analyze``), not records."""
        with _collector_paused():
            return self._paired(run)

    def _judge(self, run: RunData) -> Judgement:
        if run.candidate is None:
            return judge_stable_only(compute_arm_metrics(run.stable))
        return self._paired(aggregates_of_records(run.stable, run.candidate))

    def _paired(self, run: CaseAggregates) -> Judgement:
        stable_metrics, candidate_metrics = run.stable, run.candidate
        both, candidate_only, stable_only = run.failed
        base = Judgement(
            verdict="error",
            reasons=(),
            metrics=(),
            regressions=(),
            stable=stable_metrics,
            candidate=candidate_metrics,
            cases_failed_both=both,
            cases_failed_candidate_only=candidate_only,
            cases_failed_stable_only=stable_only,
        )
        no_calls = no_call_reasons(stable_metrics, candidate_metrics)
        if no_calls:
            return replace(base, reasons=no_calls)
        n_cases = run.columns.n
        if not n_cases:
            return replace(base, reasons=("no case ran on both arms: nothing can be paired",))

        memo = _RunMemo()
        results: list[_Result] = []
        for piece in self._slices(run.columns):
            results += self._judge_slice(piece, memo)
            memo.end_slice()
        comparisons = self._decide(results)
        floor = stable_floor_reason(stable_metrics, self.min_stable_pass_rate)
        if floor:
            # Whatever the comparisons say, a suite failing on the model in use measured the
            # suite: they are kept for diagnosis, the verdict is an error.
            return replace(base, reasons=(floor,), metrics=comparisons)
        regressions = regressions_of(comparisons)
        verdict, reasons = self._outcome(comparisons, results, regressions, n_cases)
        judgement = replace(
            base,
            verdict=verdict,
            reasons=tuple(reasons),
            metrics=comparisons,
            regressions=regressions,
        )
        return replace(judgement, rollout=rollout_plan(judgement, self.margins, run.stable_model))

    def _outcome(
        self,
        comparisons: Sequence[MetricComparison],
        results: Sequence[_Result],
        regressions: Sequence[Regression],
        n_cases: int,
    ) -> tuple[Literal["pass", "fail", "inconclusive"], list[str]]:
        """The verdict the comparisons give, and the reasons the verdict states."""
        gated = [c for c, r in zip(comparisons, results, strict=True) if r.gated]
        # A gated comparison with no data on an arm blocks a pass as an inconclusive one does:
        # no data counts against, never for.
        inconclusive = [c for c in gated if c.status in ("inconclusive", "no_data")]
        if regressions:
            verdict: Literal["pass", "fail", "inconclusive"] = "fail"
            reasons = [r.message for r in regressions]
        elif inconclusive:
            verdict = "inconclusive"
            # Budgets are what a user wrote for one workflow: each says why on its own line.
            reasons = [
                c.message
                for c in inconclusive
                if c.scope == "overall" or c.name.endswith(":budget")
            ]
            sliced = len(inconclusive) - len(reasons)
            if sliced:
                reasons.append(
                    f"{sliced} workflow or language slice comparison(s) inconclusive too "
                    "(see `slices` in the verdict)"
                )
        elif not any(c.status in ("ok", "improved") for c in gated):
            verdict = "inconclusive"
            reasons = ["no gated metric had data on both arms"]
        else:
            verdict = "pass"
            shown = sum(c.status in ("ok", "improved") for c in gated)
            reasons = [
                f"non-inferiority shown for all {shown} gated comparisons "
                f"({n_cases} paired cases, {self.confidence:.0%} intervals)"
            ]
        # A figure judged on part of the cases (cost without usage on some streams) says so in
        # the summary whatever the verdict: never a silent mix.
        reasons += [
            c.message
            for c, r in zip(comparisons, results, strict=True)
            if r.partial and c.scope == "overall" and c.message not in reasons
        ]
        return verdict, reasons

    def _slices(self, columns: CaseColumns) -> Iterable[_Slice]:
        yield _Slice("overall", None, True, columns, np.arange(columns.n, dtype=np.int64))
        by_workflow, by_language = columns.groups()
        # A budget is a workflow's: looked for per workflow only if the run declares one.
        declared = columns.budgets_declared

        def piece(scope: str, positions: list[int], budgets: bool) -> _Slice:
            at = np.asarray(positions, dtype=np.int64)
            return _Slice(
                scope,
                _merge_budgets(columns.members(at)) if budgets and declared else None,
                len(positions) >= self.min_cases,
                columns,
                at,
            )

        # A slice equal to the whole run says nothing new.
        if len(by_workflow) > 1 or columns.candidate_budgets:
            for name in sorted(by_workflow):
                yield piece(f"workflow:{name}", by_workflow[name], True)
        if len(by_language) > 1:
            for code in sorted(by_language):
                yield piece(f"language:{code}", by_language[code], False)

    def _judge_slice(self, piece: _Slice, memo: _RunMemo) -> list[_Result]:
        results: list[_Result] = []
        margins = _slice_margins(self.margins, piece.budgets)
        for spec in _RATES:
            margin = getattr(margins, spec.margin)
            result = self._rate(spec, piece, margin, memo)
            if result is None:
                result = self._no_data(
                    spec, piece, margin, piece.scope == "overall" and spec.name in _CORE
                )
            if result is not None:
                results.append(result)
        for spec in _RATIOS:
            margin = getattr(margins, spec.margin)
            result = self._ratio(spec, piece, margin, memo)
            if result is None:
                result = self._no_data(spec, piece, margin, piece.scope == "overall")
            if result is not None:
                results.append(result)
        for name in piece.columns.score_names(piece.positions):
            result = self._score(name, piece, margins.score_drop, memo)
            if result is not None:
                results.append(result)
        if piece.budgets is not None:
            results += self._budgets(piece, piece.budgets, memo)
        for metric in self.custom_metrics:
            result = self._custom(metric, piece, memo)
            if result is not None:
                results.append(replace(result, label=metric.label))
        return [_unless_repeated(piece, result, memo) for result in results]

    def _custom(self, metric: CustomMetric, piece: _Slice, memo: _RunMemo) -> _Result | None:
        """A plugin's metric, by the machinery of the built-in metric of its kind."""
        kind: Kind = "score" if metric.kind == "mean" else metric.kind
        spec = _Spec(
            metric.name,
            metric.label or metric.name,
            kind,
            metric.display_unit,
            metric.higher_is_better,
            "",
        )
        if kind == "rate":
            result = self._rate(spec, piece, metric.margin, memo)
        elif kind == "ratio":
            result = self._ratio(spec, piece, metric.margin, memo)
        else:
            result = self._mean(spec, piece, metric.margin, memo)
        if result is None:
            result = self._no_data(spec, piece, metric.margin, piece.scope == "overall")
            if result is not None and kind == "score":
                # A mean's change is a difference, its limit the drop (or rise) allowed.
                allowed = _mean_limit(metric.margin, metric.higher_is_better)
                result = replace(
                    result,
                    comparison=replace(
                        result.comparison,
                        change_kind="points",
                        limit=None if allowed is None else f"{allowed:+g}",
                        limit_value=allowed,
                    ),
                )
        return result

    def _decide(self, results: list[_Result]) -> tuple[MetricComparison, ...]:
        """Holm's correction across gated comparisons, then the final statuses and messages."""
        alpha = 1 - self.confidence
        # One family per metric: its comparisons across every scope (overall, each workflow,
        # each language). Each metric is its own question; its slices are where it is asked many
        # times over, which is what Holm's correction is for.
        families: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(results):
            if r.gated and r.comparison.p_value is not None:
                families[r.comparison.name].append(i)
        p_adjusted: dict[int, float] = {}
        alpha_share: dict[int, float] = {}
        for members in families.values():
            weights = _holm_weights([results[i].comparison.scope for i in members])
            # A p-value that underflowed to 0.0 is the most significant of all, not a missing one.
            adjusted = holm([_p(results[i].comparison.p_value) for i in members], weights)
            for i, value, weight in zip(members, adjusted, weights, strict=True):
                p_adjusted[i] = value
                alpha_share[i] = weight
        final: list[MetricComparison] = []
        for i, result in enumerate(results):
            comparison = result.comparison
            status = comparison.status
            p_adj = p_adjusted.get(i)
            needed = comparison.cases_needed
            # Worked out from the interval: it says nothing about Holm's correction.
            repeats = comparison.repeats_needed
            if status == "regressed" and p_adj is not None and p_adj >= alpha:
                # Beyond the margin by the interval, yet not significant once every comparison
                # of the run is accounted for: the data cannot tell yet.
                status = "inconclusive"
                needed = _cases_for_significance(
                    comparison.n or 0, _p(comparison.p_value), alpha * alpha_share.get(i, 1.0)
                )
                repeats = None
            if not result.gated and status != "no_data":
                status, needed, repeats = "not_gated", None, None
            elif status != "inconclusive":
                needed = repeats = None
            comparison = replace(
                comparison,
                status=status,
                p_adjusted=p_adj,
                cases_needed=needed,
                repeats_needed=repeats,
            )
            message = _message(comparison, status, result, self.confidence)
            final.append(replace(comparison, message=message))
        return tuple(final)
