"""Pairing: the records of both arms grouped by case, each case arm's figures worked out once."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from pytest_modelgate.calls.records import Budgets, CallRecord, TestRecord
from pytest_modelgate.judge.common import _CHECKS, Margins
from pytest_modelgate.judge.metrics import (
    call_tokens,
)

_Figure = TypeVar("_Figure")


def _memoised(
    figure: Callable[[_CaseArm, str], _Figure],
) -> Callable[[_CaseArm, str], _Figure]:
    """Work a case arm's figure out once per name (see _CaseArm)."""

    label = figure.__name__

    @functools.wraps(figure)
    def memoised(arm: _CaseArm, name: str) -> _Figure:
        key = (label, name)
        figures = arm.figures
        try:
            result: _Figure = figures[key]
        except KeyError:
            result = figures[key] = figure(arm, name)
        return result

    return memoised


@dataclass
class _CaseArm:
    """One case on one arm, its repeats pooled.

    Built by ``_cases``, only read afterwards: a case is judged in several slices (overall, its
    workflow, its language), so its figures are worked out once and kept. Callers must not
    mutate what they get.
    """

    tests: list[TestRecord] = field(default_factory=list)
    # The tests that were not skipped, kept as ``tests`` grows (see ``add``).
    ran: list[TestRecord] = field(default_factory=list)
    figures: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

    def add(self, test: TestRecord) -> None:
        """One more test (a repeat) of the case on this arm."""
        self.tests.append(test)
        if test.outcome != "skipped":
            self.ran.append(test)

    @functools.cached_property
    def repeats(self) -> list[_CaseArm]:
        """Each repeat that ran, as a case arm of its own."""
        return [_CaseArm(tests=[t], ran=[t]) for t in self.ran]

    @functools.cached_property
    def calls(self) -> list[CallRecord]:
        return [c for t in self.tests for c in t.calls]

    @functools.cached_property
    def ok_calls(self) -> list[CallRecord]:
        return [c for c in self.calls if c.ok]

    @_memoised
    def counts(self, metric: str) -> tuple[int, int]:
        """(events, trials) of a rate; "events" are successes for higher-is-better rates."""
        if metric == "pass_rate":
            ran = self.ran
            return sum(t.outcome == "passed" for t in ran), len(ran)
        if metric == "fallback_rate":
            ran = self.ran
            return sum(bool(t.fallbacks) for t in ran), len(ran)
        if metric == "error_rate":
            calls = self.calls
            return sum(not c.ok for c in calls), len(calls)
        if metric not in _CHECKS:
            # A rate a plugin added (pytest_modelgate_metrics): 1.0 / 0.0 per successful call.
            flags = [c.extra[metric] for c in self.ok_calls if metric in c.extra]
            return sum(v == 1.0 for v in flags), len(flags)
        check, attribute = _CHECKS[metric]
        values = [
            getattr(c, attribute)
            for c in self.ok_calls
            if check in c.checks and getattr(c, attribute) is not None
        ]
        return sum(bool(v) for v in values), len(values)

    @_memoised
    def values(self, metric: str) -> list[float]:
        """The call-level values behind a latency metric."""
        ok = self.ok_calls
        if metric == "ttft_p95_ms":
            return [c.ttft_ms for c in ok if c.streamed and c.ttft_ms is not None]
        return [c.latency_ms for c in ok if c.latency_ms is not None]

    @_memoised
    def sums(self, metric: str) -> tuple[float, int] | None:
        """(total, successful calls) for cost or tokens; None when a cost is unknown."""
        ok = self.ok_calls
        if metric == "cost_per_call_usd":
            if any(c.cost_usd is None for c in ok):
                return None
            billed = [c.cost_usd for c in self.calls if c.cost_usd is not None]
            return math.fsum(billed), len(ok)
        if metric != "tokens_per_call":
            # A mean or ratio a plugin added: (total, calls with a value).
            values = [c.extra[metric] for c in ok if metric in c.extra]
            return math.fsum(values), len(values)
        tokens = [call_tokens(c) for c in ok]
        known = [t for t in tokens if t is not None]
        return float(sum(known)), len(known)

    @_memoised
    def score(self, name: str) -> float | None:
        values = [v for t in self.tests for n, v in t.scores if n == name]
        return math.fsum(values) / len(values) if values else None


@dataclass
class _Case:
    case_id: str
    workflow: str
    language: str | None
    stable: _CaseArm = field(default_factory=_CaseArm)
    candidate: _CaseArm = field(default_factory=_CaseArm)


def _cases(stable: Sequence[TestRecord], candidate: Sequence[TestRecord]) -> list[_Case]:
    by_id: dict[str, _Case] = {}
    for is_stable, records in ((True, stable), (False, candidate)):
        for record in records:
            case = by_id.get(record.case_id)
            if case is None:
                case = by_id[record.case_id] = _Case(
                    record.case_id, record.workflow, record.language
                )
            if case.language is None:
                case.language = record.language
            (case.stable if is_stable else case.candidate).add(record)
    # Only cases both arms ran are paired; sorted so that every bootstrap sees the same order.
    return sorted(
        (c for c in by_id.values() if c.stable.ran and c.candidate.ran),
        key=operator.attrgetter("case_id"),
    )


def _has_budgets(cases: Sequence[_Case]) -> bool:
    return any(t.budgets is not None for c in cases for t in c.candidate.tests)


def _merge_budgets(cases: Sequence[_Case]) -> Budgets | None:
    """The strictest budget any test of the workflow declared, field by field."""
    found = [t.budgets for c in cases for t in (*c.stable.tests, *c.candidate.tests) if t.budgets]
    if not found:
        return None
    merged: dict[str, float] = {}
    for budgets in found:
        for name, value in budgets.model_dump().items():
            if value is None:
                continue
            # A minimum pass rate is strictest when highest; every other bound when lowest.
            if name == "min_pass_rate":
                merged[name] = max(merged.get(name, value), value)
            else:
                merged[name] = min(merged.get(name, value), value)
    return Budgets(**merged)


def _slice_margins(margins: Margins, budgets: Budgets | None) -> Margins:
    """A workflow's markers replace the run's margins for that workflow's slice."""
    if budgets is None:
        return margins
    updates: dict[str, Any] = {}
    if budgets.latency_max_ratio is not None:
        updates.update(
            latency_p50_ratio=budgets.latency_max_ratio,
            latency_p95_ratio=budgets.latency_max_ratio,
            ttft_p95_ratio=budgets.latency_max_ratio,
        )
    if budgets.cost_max_ratio is not None:
        updates["cost_per_call_ratio"] = budgets.cost_max_ratio
    if budgets.max_pass_rate_drop is not None:
        updates["pass_rate"] = budgets.max_pass_rate_drop
    return replace(margins, **updates)


def _repeat_rates(arm: _CaseArm, metric: str) -> list[float]:
    """The rate of each repeat of a case on one arm (repeats with no trial left out)."""
    return [events / trials for events, trials in (r.counts(metric) for r in arm.repeats) if trials]


def _repeat_scores(arm: _CaseArm, name: str) -> list[float]:
    """The score of each repeat of a case on one arm (repeats that recorded none left out)."""
    return [score for score in (r.score(name) for r in arm.repeats) if score is not None]
