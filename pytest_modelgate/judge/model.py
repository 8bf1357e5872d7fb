"""Deciding whether the candidate regressed: the ``Judge`` protocol and the fixed-limit judge.

Pure: no pytest. A judge takes the test records of both arms (``RunData``) and returns a
``Judgement``: the verdict, the reasons for it in sentences, one ``MetricComparison`` per metric and
the regressions. ``FixedLimitJudge`` compares point estimates against the limits in ``GateLimits``;
a statistical judge implements the same protocol and returns the same ``Judgement``.

Verdict rules of the fixed-limit judge, first match wins:

1. no candidate arm: the run is a stable-only smoke run and passes when no stable test failed;
2. an arm that made no HTTP attempt, or none that succeeded: ``error`` (there is nothing to
   judge);
3. a stable arm whose pass rate is below ``min_stable_pass_rate``: ``error`` (the suite cannot
   vouch for anything);
4. any gated metric beyond its limit: ``fail``;
5. a gated metric with data on one arm but none on the other, or a candidate cost that is
   unknown while a cost limit is set: ``inconclusive``;
6. otherwise ``pass``.

A metric with no data on either arm is ``no_data``: not gated, and never counted as passing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pytest_modelgate.calls.records import TestRecord
from pytest_modelgate.judge.metrics import (
    METRICS,
    ArmMetrics,
    ChangeKind,
    MetricSpec,
    Unit,
    compute_arm_metrics,
    format_change,
    format_limit,
    format_value,
)

if TYPE_CHECKING:
    # Only read through attributes: the judge never needs the config module at run time.
    from pytest_modelgate.config.settings import GateLimits

__all__ = [
    "CaseRef",
    "FixedLimitJudge",
    "Judge",
    "Judgement",
    "MetricComparison",
    "MetricStatus",
    "Regression",
    "RunData",
    "Samples",
    "VerdictKind",
    "failed_cases",
    "judge_stable_only",
    "no_call_reasons",
    "paired_failures",
    "regressions_of",
    "stable_floor_reason",
]

VerdictKind = Literal["pass", "fail", "inconclusive", "error"]
MetricStatus = Literal["ok", "regressed", "improved", "inconclusive", "no_data", "not_gated"]

# Slack for float arithmetic: a candidate exactly at a limit (0.98 vs 1.0 against a 2-point
# drop, 492 ms vs 410 ms against x1.2) must be "ok", although 0.98 - 1.0 is -0.0200000000000018.
_EPSILON = 1e-9


@dataclass(frozen=True, kw_only=True)
class RunData:
    """The input of a judge: every test record of each arm, all repeats together.

    ``candidate`` is ``None`` for a stable-only smoke run (no candidate model configured).
    """

    stable: Sequence[TestRecord]
    candidate: Sequence[TestRecord] | None


@dataclass(frozen=True)
class Samples:
    """How many samples a metric rests on, per arm (``candidate`` is None in a stable-only run)."""

    stable: int
    candidate: int | None


@dataclass(frozen=True, kw_only=True)
class MetricComparison:
    """One metric on both arms, its change, its limit and what the judge made of it.

    ``change`` is in absolute percentage points (``change_kind == "points"``, rates) or a
    candidate/stable ratio (``"ratio"``: latency, cost, tokens). ``limit_value`` is in the same unit
    and signed as the worst allowed change: ``-2.0`` points for pass rate, ``1.2`` for a ratio.
    """

    name: str
    unit: Unit
    stable: float | None
    candidate: float | None
    change: float | None
    change_kind: ChangeKind
    # Human text of the limit ("-2.0 pts", "x1.20"); None when the metric is not gated.
    limit: str | None
    limit_value: float | None
    status: MetricStatus
    samples: Samples
    message: str
    # The statistical judge's evidence (None from the fixed-limit judge).
    # "overall", "workflow:<name>" or "language:<code>".
    scope: str = "overall"
    # Paired cases the comparison rests on.
    n: int | None = None
    stable_interval: tuple[float, float] | None = None
    candidate_interval: tuple[float, float] | None = None
    # The change's confidence interval, in the unit of ``change``.
    change_interval: tuple[float, float] | None = None
    # "mcnemar_mid_p+newcombe", "wilcoxon+paired_bootstrap", "budget+bootstrap", ...
    test: str | None = None
    p_value: float | None = None
    # After Holm's correction across the metric's gated comparisons in every scope.
    p_adjusted: float | None = None
    # The smallest change of this size the data could detect (80% power), in ``change``'s unit.
    min_detectable_change: float | None = None
    # For an inconclusive comparison: about how many paired cases in all would decide it.
    cases_needed: int | None = None
    # For an inconclusive comparison of a run with repeats: about how many repeats of each case
    # would decide it with the same cases (None: no repeats to tell from, or repeats alone would
    # not decide, since they shrink only the within-case part of the variance).
    repeats_needed: int | None = None


@dataclass(frozen=True, kw_only=True)
class Regression:
    """A metric the candidate made worse than its limit allows."""

    metric: str
    # "overall", "workflow:<name>" or "language:<code>".
    scope: str
    stable: float | None
    candidate: float | None
    limit: str
    message: str


@dataclass(frozen=True, order=True)
class CaseRef:
    """One case on one repeat: the unit the two arms are paired by."""

    case_id: str
    repeat: int


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """What a judge decided about a run, with everything needed to explain it."""

    verdict: VerdictKind
    # Sentences for people, most important first.
    reasons: tuple[str, ...]
    metrics: tuple[MetricComparison, ...]
    regressions: tuple[Regression, ...]
    stable: ArmMetrics
    candidate: ArmMetrics | None
    # Pairs (case_id, repeat) whose test failed (or errored): on both arms, on one arm only.
    cases_failed_both: tuple[CaseRef, ...] = ()
    cases_failed_candidate_only: tuple[CaseRef, ...] = ()
    cases_failed_stable_only: tuple[CaseRef, ...] = ()
    # The rollout the verdict allows (plan, rollback triggers, kill switch); None: not derived.
    rollout: Mapping[str, Any] | None = None


class Judge(Protocol):
    """Anything that turns the records of a run into a ``Judgement``.

    Implementations must be deterministic: the same records give the same judgement.
    """

    def judge(self, run: RunData) -> Judgement:
        """Judge one run."""
        ...


def failed_cases(records: Sequence[TestRecord]) -> frozenset[CaseRef]:
    """The (case_id, repeat) pairs whose test failed or errored on this arm."""
    return frozenset(
        CaseRef(record.case_id, record.repeat)
        for record in records
        if record.outcome in ("failed", "error")
    )


def paired_failures(
    stable: Sequence[TestRecord], candidate: Sequence[TestRecord]
) -> tuple[tuple[CaseRef, ...], tuple[CaseRef, ...], tuple[CaseRef, ...]]:
    """The failed cases on both arms, on the candidate only and on the stable arm only (sorted).

    What ``Judgement.cases_failed_both``, ``..._candidate_only`` and ``..._stable_only`` hold.
    """
    stable_failed = failed_cases(stable)
    candidate_failed = failed_cases(candidate)
    return (
        tuple(sorted(stable_failed & candidate_failed)),
        tuple(sorted(candidate_failed - stable_failed)),
        tuple(sorted(stable_failed - candidate_failed)),
    )


def no_call_reasons(stable: ArmMetrics, candidate: ArmMetrics) -> tuple[str, ...]:
    """Why a run cannot be judged for want of calls: one reason per arm that made no call, or
    whose every attempt failed.

    An arm with no successful attempt has no latency, no cost and no answer to check: every
    figure it gives is "no data" or a collapse, and neither is a judgement (Kayenta's rule: no
    data counts against, never for). A stable arm with no calls happens with `-k candidate`.
    """
    reasons: list[str] = []
    for arm, metrics in (("stable", stable), ("candidate", candidate)):
        if not metrics.attempts:
            reasons.append(f"the {arm} arm made no calls")
        elif metrics.failed_attempts >= metrics.attempts:
            kinds = ", ".join(f"{kind} x{count}" for kind, count in metrics.error_kinds)
            reasons.append(
                f"no call on the {arm} arm succeeded: all {metrics.attempts} attempts failed"
                + (f" ({kinds})" if kinds else "")
                + ", so there is nothing to compare"
            )
    return tuple(reasons)


def stable_floor_reason(stable: ArmMetrics, floor: float | None) -> str | None:
    """Why a stable arm that fails most of its tests cannot vouch for a candidate; None: it can.

    ``floor`` is ``GateLimits.min_stable_pass_rate`` (None: no floor). A suite that fails on the
    model in use measures the suite, not the models: 0% -> 0% is "no change", not a pass.
    """
    rate = stable.pass_rate.value
    if floor is None or rate is None or rate >= floor:
        return None
    decided = stable.passed + stable.failed + stable.error
    return (
        f"the stable arm passed only {stable.passed} of {decided} tests ({rate:.1%}), below "
        f"the {floor:.0%} floor (gate.min_stable_pass_rate): a suite that fails on the model "
        "in use cannot vouch for the candidate; fix the tests or their expectations"
    )


def regressions_of(comparisons: Sequence[MetricComparison]) -> tuple[Regression, ...]:
    """The ``regressed`` comparisons, in order, as the verdict lists them."""
    return tuple(
        Regression(
            metric=c.name,
            scope=c.scope,
            stable=c.stable,
            candidate=c.candidate,
            limit=c.limit or "",
            message=c.message,
        )
        for c in comparisons
        if c.status == "regressed"
    )


class FixedLimitJudge:
    """The first judge: compares point estimates of each metric against fixed limits.

    No statistics: a p95 over a few calls is compared as it is, and the sample counts in each
    ``MetricComparison`` say how much that number is worth.
    """

    def __init__(self, limits: GateLimits) -> None:
        self.limits = limits

    def __repr__(self) -> str:
        return f"FixedLimitJudge({self.limits!r})"

    def judge(self, run: RunData) -> Judgement:
        """Judge one run by the rules in this module's docstring."""
        stable = compute_arm_metrics(run.stable)
        if run.candidate is None:
            return judge_stable_only(stable)

        candidate = compute_arm_metrics(run.candidate)
        failed_both, failed_candidate_only, failed_stable_only = paired_failures(
            run.stable, run.candidate
        )

        outcomes = [self._compare(spec, stable, candidate) for spec in METRICS]
        comparisons = tuple(comparison for comparison, _ in outcomes)

        no_calls = no_call_reasons(stable, candidate)
        floor = stable_floor_reason(stable, getattr(self.limits, "min_stable_pass_rate", None))
        if no_calls or floor:
            return Judgement(
                verdict="error",
                reasons=no_calls or (floor or "",),
                metrics=comparisons,
                regressions=(),
                stable=stable,
                candidate=candidate,
                cases_failed_both=failed_both,
                cases_failed_candidate_only=failed_candidate_only,
                cases_failed_stable_only=failed_stable_only,
            )

        regressions = regressions_of(comparisons)
        undecided = tuple(reason for _, reason in outcomes if reason is not None)

        verdict: VerdictKind
        if regressions:
            verdict = "fail"
            reasons = tuple(regression.message for regression in regressions) + undecided
        elif undecided:
            verdict = "inconclusive"
            reasons = undecided
        elif not any(c.status in ("ok", "improved") for c in comparisons):
            # Never a pass on nothing: no gated metric had data on both arms.
            verdict = "inconclusive"
            reasons = ("no gated metric had data on both arms, so nothing was compared",)
        else:
            verdict = "pass"
            reasons = (_pass_reason(comparisons),)
        return Judgement(
            verdict=verdict,
            reasons=reasons,
            metrics=comparisons,
            regressions=regressions,
            stable=stable,
            candidate=candidate,
            cases_failed_both=failed_both,
            cases_failed_candidate_only=failed_candidate_only,
            cases_failed_stable_only=failed_stable_only,
        )

    def _limit(self, spec: MetricSpec) -> float | None:
        raw: object = getattr(self.limits, spec.limit_field)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise TypeError(f"GateLimits.{spec.limit_field} must be a number or None, got {raw!r}")
        return float(raw)

    def _compare(
        self, spec: MetricSpec, stable_arm: ArmMetrics, candidate_arm: ArmMetrics
    ) -> tuple[MetricComparison, str | None]:
        """Compare one metric; the second item is a reason the verdict cannot be a pass."""
        stable = stable_arm.measurement(spec.name)
        candidate = candidate_arm.measurement(spec.name)
        limit = self._limit(spec)
        limit_value = _signed_limit(spec, limit)
        limit_text = format_limit(spec.change_kind, limit_value)
        change = _change(spec.change_kind, stable.value, candidate.value)

        def comparison(status: MetricStatus, message: str) -> MetricComparison:
            return MetricComparison(
                name=spec.name,
                unit=spec.unit,
                stable=stable.value,
                candidate=candidate.value,
                change=change,
                change_kind=spec.change_kind,
                limit=limit_text,
                limit_value=limit_value,
                status=status,
                samples=Samples(stable.samples, candidate.samples),
                message=message,
            )

        if spec.name == "cost_per_call_usd" and limit is not None:
            unknown = candidate_arm.cost_unknown_calls
            if unknown:
                total = unknown + candidate_arm.cost_known_calls
                no_usage = candidate_arm.usage_missing_calls
                streamed = candidate_arm.usage_missing_streamed_calls
                why = "have no price"
                if no_usage:
                    # Not a missing price: the provider reported no usage to price.
                    why = (
                        f"have no cost ({no_usage} reported no usage"
                        + (
                            f", {streamed} of them streams: the server did not honour "
                            "stream_options.include_usage"
                            if streamed
                            else ""
                        )
                        + (f"; {unknown - no_usage} have no price" if unknown > no_usage else "")
                        + ")"
                    )
                message = (
                    f"cost per call is unknown on the candidate arm: {unknown} of {total} "
                    f"successful calls {why}, so the {limit_text} limit cannot be checked"
                )
                return comparison("no_data", message), message

        if stable.value is None or candidate.value is None:
            if stable.value is None and candidate.value is None:
                where = "either arm"
            elif candidate.value is None:
                where = "the candidate arm"
            else:
                where = "the stable arm"
            message = f"{spec.label} has no data on {where}"
            undecided = None
            if limit is not None and (stable.value is not None or candidate.value is not None):
                # Data on one arm only: no data counts against, never for.
                message += f", so the {limit_text} limit cannot be checked"
                undecided = message
            return comparison("no_data", message), undecided

        movement = _movement(spec, stable.value, candidate.value, change)
        if limit is None:
            return comparison("not_gated", f"{movement}; not gated"), None

        status = _status(spec, limit, stable.value, candidate.value, change)
        if status == "regressed":
            beyond = "beyond" if spec.higher_is_better else "above"
            return comparison(status, f"{movement}, {beyond} the {limit_text} limit"), None
        if status == "improved":
            return comparison(status, f"{movement}: improved"), None
        return comparison(status, f"{movement}, within the {limit_text} limit"), None


def _signed_limit(spec: MetricSpec, limit: float | None) -> float | None:
    """The limit in the unit of the change, signed as the worst allowed change."""
    if limit is None:
        return None
    if spec.change_kind == "points":
        points = limit * 100
        return -points if spec.higher_is_better else points
    return limit


def _change(kind: ChangeKind, stable: float | None, candidate: float | None) -> float | None:
    if stable is None or candidate is None:
        return None
    if kind == "points":
        return (candidate - stable) * 100
    if stable == 0:
        # A rise from zero is no finite ratio; no change at zero is a ratio of one.
        return 1.0 if candidate == 0 else None
    return candidate / stable


def _status(
    spec: MetricSpec, limit: float, stable: float, candidate: float, change: float | None
) -> Literal["ok", "regressed", "improved"]:
    """Where the candidate stands against the limit.

    "improved" needs an improvement as large as the degradation the limit allows (the limit
    mirrored), so ordinary run-to-run noise reads "ok" rather than "improved".
    """
    if spec.change_kind == "points":
        # Points limits are fractions: 0.02 allows a drop (or rise) of 2 points.
        worse = (stable - candidate) if spec.higher_is_better else (candidate - stable)
        if worse > limit + _EPSILON:
            return "regressed"
        if -worse > _EPSILON and -worse >= limit - _EPSILON:
            return "improved"
        return "ok"
    # Ratio limits bound candidate/stable, oriented so that above one is worse.
    if change is None:
        # stable is zero and candidate is not.
        oriented = 0.0 if spec.higher_is_better else float("inf")
    elif spec.higher_is_better:
        oriented = 1 / change if change else float("inf")
    else:
        oriented = change
    if oriented > limit * (1 + _EPSILON):
        return "regressed"
    if oriented < 1 - _EPSILON and (limit <= 0 or oriented * limit <= 1 + _EPSILON):
        return "improved"
    return "ok"


def _movement(spec: MetricSpec, stable: float, candidate: float, change: float | None) -> str:
    """The change in words: "p95 latency rose from 410 ms to 620 ms (x1.51)"."""
    before = format_value(spec.unit, stable)
    after = format_value(spec.unit, candidate)
    if candidate == stable:
        return f"{spec.label} unchanged at {after}"
    direction = "rose" if candidate > stable else "fell"
    text = f"{spec.label} {direction} from {before} to {after}"
    if change is not None:
        text += f" ({format_change(spec.change_kind, change)})"
    return text


def _pass_reason(comparisons: Sequence[MetricComparison]) -> str:
    checked = [c for c in comparisons if c.status in ("ok", "improved")]
    text = f"all {len(checked)} gated metrics with data on both arms are within their limits"
    missing = [c.name for c in comparisons if c.status == "no_data"]
    if missing:
        text += f"; not compared for lack of data: {', '.join(missing)}"
    return text


def _stable_only_message(label: str, unit: Unit, value: float | None) -> str:
    if value is None:
        return f"{label}: no data on the stable arm; stable-only run, nothing to compare with"
    shown = format_value(unit, value)
    return f"{label} {shown} on the stable arm; stable-only run, nothing to compare with"


def judge_stable_only(stable: ArmMetrics) -> Judgement:
    """The judgement of a stable-only smoke run: ``pass`` unless a stable test failed."""
    """A smoke run of the stable model: ordinary pytest semantics, no comparison."""
    comparisons = tuple(
        MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=stable.measurement(spec.name).value,
            candidate=None,
            change=None,
            change_kind=spec.change_kind,
            limit=None,
            limit_value=None,
            status="not_gated",
            samples=Samples(stable.measurement(spec.name).samples, None),
            message=_stable_only_message(
                spec.label, spec.unit, stable.measurement(spec.name).value
            ),
        )
        for spec in METRICS
    )
    broken = stable.failed + stable.error
    errors = "error" if stable.error == 1 else "errors"
    counts = (
        f"{stable.passed} passed, {stable.failed} failed, {stable.error} {errors}, "
        f"{stable.skipped} skipped"
    )
    if broken:
        verdict: VerdictKind = "fail"
        reason = f"stable-only run: {broken} of {stable.n_tests} tests failed ({counts})"
    else:
        verdict = "pass"
        reason = f"stable-only run: no test failed ({counts})"
    return Judgement(
        verdict=verdict,
        reasons=(reason,),
        metrics=comparisons,
        regressions=(),
        stable=stable,
        candidate=None,
    )
