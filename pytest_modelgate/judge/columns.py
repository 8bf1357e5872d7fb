"""Per-case aggregates of a run's paired cases: one column per metric and arm, in numpy arrays.

The judge asks every metric in every scope (overall, each workflow, each language), and each
question once read every case's figures through its ``_CaseArm``: at 100,000 cases those
look-ups were most of the judgement. Here the figures are extracted once per run, in one pass
per case arm, into columns indexed by the case's position in the run's sorted case list; a
scope is an array of positions, and a metric of a scope is a gather of its columns.

The columns hold exactly the figures ``_CaseArm`` works out (``tests/unit/test_judge_columns.py``
compares them): the judge's small-sample path reads them back as the same Python numbers, so its
bootstrap sees the same data, bit for bit; its large-sample path works on the arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pytest_modelgate.calls.records import TestRecord
from pytest_modelgate.judge import largesample
from pytest_modelgate.judge.cases import _Case, _CaseArm, _cases, _has_budgets, _repeat_rates
from pytest_modelgate.judge.common import _CHECKS, _QUANTILES, _count, _Spec
from pytest_modelgate.judge.metrics import ArmMetrics
from pytest_modelgate.judge.model import CaseRef, paired_failures
from pytest_modelgate.judge.tables import (
    CHECK_ORDER,
    PASSED,
    SKIPPED,
    CallTable,
    TestTable,
    arm_metrics,
    tables_of_records,
)

Ints = NDArray[np.signedinteger[Any]]
Floats = NDArray[np.float64]
Flags = NDArray[np.bool_]
Objects = NDArray[np.object_]
Counts = NDArray[np.signedinteger[Any]]


@dataclass(frozen=True)
class Ragged:
    """Each case's values (its calls' latencies), flat in case order, and each case's count."""

    values: Floats
    counts: Ints

    @functools.cached_property
    def starts(self) -> Ints:
        """Where each case's values begin in ``values``."""
        starts = np.zeros(len(self.counts), dtype=np.int64)
        np.cumsum(self.counts[:-1], out=starts[1:])
        return starts

    @functools.cached_property
    def single(self) -> bool:
        """Every case has exactly one value (one call per case: the usual shape)."""
        return bool(np.all(self.counts == 1))

    def take(self, positions: Ints) -> Ragged:
        """The values of the cases at ``positions`` (sorted, distinct), in that order."""
        if _every(positions, len(self.counts)):
            return self
        if self.single:
            return Ragged(self.values[positions], self.counts[positions])
        counts = self.counts[positions]
        starts = self.starts[positions]
        # Each taken value's index: its case's start plus its rank within the case.
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
        index = offsets + np.arange(int(counts.sum()), dtype=np.int64)
        return Ragged(self.values[index], counts)

    def lists(self) -> list[list[float]]:
        """Each case's values as a Python list (for the bootstrap)."""
        flat = self.values.tolist()
        if self.single:
            return [[value] for value in flat]
        bounds = np.cumsum(self.counts).tolist()
        return [
            flat[end - count : end] for end, count in zip(bounds, self.counts.tolist(), strict=True)
        ]

    def case_terms(self, per_value: Floats) -> Floats:
        """The sum of ``per_value`` (aligned with ``values``) over each case's values."""
        if self.single:
            return per_value
        sums = np.zeros(len(self.counts), dtype=np.float64)
        np.add.at(sums, np.repeat(np.arange(len(self.counts)), self.counts), per_value)
        return sums


def _every(rows: Ints | Flags, n: int) -> bool:
    """Whether ``rows`` (sorted, distinct positions, or a mask) select all ``n`` rows in order:
    then a take is the columns themselves, not a copy (the overall scope of a million cases).
    Columns are only read after they are built, so sharing them is safe."""
    if rows.dtype == np.bool_:
        return len(rows) == n and bool(rows.all())
    return len(rows) == n


@dataclass(frozen=True)
class RateColumns:
    """(events, trials) of a rate per case on each arm; "events" are successes when higher is
    better (see ``_CaseArm.counts``)."""

    s_events: Ints
    s_trials: Ints
    c_events: Ints
    c_trials: Ints

    def take(self, rows: Ints | Flags) -> RateColumns:
        """The rows at ``rows`` (sorted, distinct positions or a mask)."""
        if _every(rows, len(self.s_events)):
            return self
        return RateColumns(
            self.s_events[rows], self.s_trials[rows], self.c_events[rows], self.c_trials[rows]
        )

    def lists(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """The columns as Python lists (for the bootstrap and the exact tests)."""
        return (
            self.s_events.tolist(),
            self.s_trials.tolist(),
            self.c_events.tolist(),
            self.c_trials.tolist(),
        )


@dataclass(frozen=True)
class SumColumns:
    """(total, calls) of cost or tokens per case on each arm; ``known`` false where a cost is
    unknown (see ``_CaseArm.sums``)."""

    s_total: Floats
    s_calls: Ints
    c_total: Floats
    c_calls: Ints
    s_known: Flags
    c_known: Flags

    def take(self, rows: Ints | Flags) -> SumColumns:
        """The rows at ``rows`` (sorted, distinct positions or a mask)."""
        if _every(rows, len(self.s_total)):
            return self
        return SumColumns(
            self.s_total[rows],
            self.s_calls[rows],
            self.c_total[rows],
            self.c_calls[rows],
            self.s_known[rows],
            self.c_known[rows],
        )

    def pairs(self) -> list[tuple[tuple[float, int] | None, tuple[float, int] | None]]:
        """Each case's ``(stable, candidate)`` sums as ``_CaseArm.sums`` gives them."""
        stable = _sum_pairs(self.s_total, self.s_calls, self.s_known)
        candidate = _sum_pairs(self.c_total, self.c_calls, self.c_known)
        return list(zip(stable, candidate, strict=True))


def _sum_pairs(total: Floats, calls: Ints, known: Flags) -> list[tuple[float, int] | None]:
    return [
        (t, c) if k else None
        for t, c, k in zip(total.tolist(), calls.tolist(), known.tolist(), strict=True)
    ]


# Figures of one case arm, in this order (see _counts): counts, then (events, trials) of each
# check in CHECK_ORDER.
(
    _PASSED,
    _RAN,
    _FELL_BACK,
    _ERRORS,
    _CALLS,
    _OK,
    _UNPRICED,
    _NO_USAGE_STREAMED,
    _NO_USAGE_PLAIN,
) = range(9)
_CHECK_BASE = 9
_WIDTH = _CHECK_BASE + 2 * len(CHECK_ORDER)
_BUILT_IN_RATES = {
    "pass_rate": (_PASSED, _RAN),
    "fallback_rate": (_FELL_BACK, _RAN),
    "error_rate": (_ERRORS, _CALLS),
}


@dataclass(frozen=True)
class ArmColumns:
    """One arm's built-in figures, one entry per case (``arm_columns``)."""

    counts: Counts  # (cases, _WIDTH): the integer figures
    latency: Ragged
    ttft: Ragged
    cost: Floats
    cost_known: Flags
    tokens: Floats
    token_calls: Ints
    scores: dict[str, tuple[Floats, Flags]]
    # Each test's case, grouped by case, and its own counts (a repeat's figures).
    test_case: Ints
    test_counts: Counts


class CaseColumns:
    """Every paired case's figures per metric and arm, extracted once per run.

    Cases are the run's paired cases in their sorted order; a scope passes the positions of its
    cases in that list. Two sources:

    * ``CaseColumns(cases)``: the gate's records, paired by ``_cases``. Built-in metrics are
      extracted in one pass per case arm when first asked for; a plugin's metric
      (``pytest_modelgate_metrics``), a score's repeats and a budget read the records.
    * ``CaseColumns.of_arms(...)``: per-case aggregates an engine computed without records
      (``modelgate analyze``); built-in metrics only.
    """

    def __init__(self, cases: Sequence[_Case]) -> None:
        self.n = len(cases)
        self._rates: dict[str, RateColumns] = {}
        self._sums: dict[str, SumColumns] = {}
        self._arms: tuple[ArmColumns, ArmColumns] | None = None
        self._labels: tuple[Sequence[str], Sequence[str], Sequence[str | None]] | None = None
        self._records: Callable[[], Sequence[_Case]] | None = lambda: cases
        # Whether any test of the cases declares a budget; whether a candidate test does.
        self.budgets_declared = any(
            t.budgets for c in cases for t in (*c.stable.tests, *c.candidate.tests)
        )
        self.candidate_budgets = _has_budgets(cases)

    @classmethod
    def of_arms(
        cls,
        case_ids: Sequence[str],
        workflows: Sequence[str],
        languages: Sequence[str | None],
        stable: ArmColumns,
        candidate: ArmColumns,
        *,
        records: Callable[[], Sequence[_Case]] | None = None,
        budgets: tuple[bool, bool] = (False, False),
    ) -> CaseColumns:
        """Columns of aggregates already computed: each case's id, workflow and language (in
        sorted case-id order) and each arm's ``arm_columns``. ``records``: makes the cases'
        ``_Case`` records when a budget, a plugin's metric or a score's repeats need them;
        ``budgets``: whether any test of the cases declares a budget, and any candidate test."""
        n = len(case_ids)
        if not (len(workflows) == len(languages) == len(stable.counts) == n):
            raise ValueError("case ids, workflows, languages and arm columns differ in length")
        if len(candidate.counts) != n:
            raise ValueError("case ids, workflows, languages and arm columns differ in length")
        columns = cls(())
        columns.n = n
        columns._arms = (stable, candidate)
        columns._labels = (case_ids, workflows, languages)
        columns._records = records
        columns.budgets_declared, columns.candidate_budgets = budgets
        return columns

    @property
    def has_records(self) -> bool:
        """Whether the cases' records are at hand (a budget or a plugin's metric needs them)."""
        return self._records is not None

    @functools.cached_property
    def cases(self) -> Sequence[_Case]:
        """The paired cases' records, in case order (made when first asked for)."""
        if self._records is None:
            return ()
        cases = self._records()
        if len(cases) != self.n:
            raise ValueError(f"{len(cases)} cases' records for {self.n} cases")
        return cases

    @functools.cached_property
    def _stable(self) -> ArmColumns:
        if self._arms is not None:
            return self._arms[0]
        return _arm_columns([case.stable for case in self.cases])

    @functools.cached_property
    def _candidate(self) -> ArmColumns:
        if self._arms is not None:
            return self._arms[1]
        return _arm_columns([case.candidate for case in self.cases])

    @functools.cached_property
    def case_ids(self) -> Sequence[str]:
        """Each case's id, in case order."""
        if self._labels is not None:
            return self._labels[0]
        return [case.case_id for case in self.cases]

    def groups(self) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """The positions of each workflow's cases and of each language's (cases without a
        language are in none)."""
        if self._labels is not None:
            workflows, languages = self._labels[1], self._labels[2]
        else:
            workflows = [case.workflow for case in self.cases]
            languages = [case.language for case in self.cases]
        by_workflow: dict[str, list[int]] = {}
        by_language: dict[str, list[int]] = {}
        for position, (workflow, language) in enumerate(zip(workflows, languages, strict=True)):
            by_workflow.setdefault(workflow, []).append(position)
            if language is not None:
                by_language.setdefault(language, []).append(position)
        return by_workflow, by_language

    def members(self, positions: Ints) -> list[_Case]:
        """The records of the cases at ``positions`` (``has_records`` only)."""
        if not self.has_records:
            raise ValueError("these columns were built from aggregates: no records to read")
        return [self.cases[p] for p in positions.tolist()]

    def repeat_rates(
        self, metric: str, positions: Ints
    ) -> Iterator[tuple[list[float], list[float]]]:
        """Each case's per-repeat rates on (stable, candidate), repeats that ran with a trial
        (``_repeat_rates``), lazily: ``_repeats_needed`` stops at the first case with fewer
        than two."""
        where = self._rate_columns(metric)
        if where is None:
            for case in self.members(positions):
                yield _repeat_rates(case.stable, metric), _repeat_rates(case.candidate, metric)
            return
        events, trials = where
        arms = (self._stable, self._candidate)
        bounds = [np.searchsorted(arm.test_case, positions) for arm in arms]
        ends = [np.searchsorted(arm.test_case, positions, side="right") for arm in arms]
        for index in range(len(positions)):
            rates: list[list[float]] = []
            for arm, start, end in zip(arms, bounds, ends, strict=True):
                rows = arm.test_counts[int(start[index]) : int(end[index])]
                rows = rows[(rows[:, _RAN] > 0) & (rows[:, trials] > 0)]
                rates.append((rows[:, events] / rows[:, trials]).tolist())
            yield rates[0], rates[1]

    def cost_gaps(self, positions: Ints) -> tuple[str, bool]:
        """Which successful calls of the cases at ``positions`` have no cost, per arm and why;
        and whether a price is missing.

        A call with usage but no cost lacks a price; a call without usage was never billed as
        far as we can tell, typically a stream from a server that ignores
        ``stream_options.include_usage`` (llama.cpp's server).
        """
        parts: list[str] = []
        price_missing = False
        for arm, columns in (("stable", self._stable), ("candidate", self._candidate)):
            totals = columns.counts[positions].sum(axis=0)
            streamed, plain = int(totals[_NO_USAGE_STREAMED]), int(totals[_NO_USAGE_PLAIN])
            unpriced = int(totals[_UNPRICED])
            reasons = []
            if streamed:
                reasons.append(
                    f"{_count(streamed, 'streamed call')} reported no usage (the server did not "
                    "honour stream_options.include_usage), so no cost"
                )
            if plain:
                reasons.append(f"{_count(plain, 'call')} reported no usage, so no cost")
            if unpriced:
                reasons.append(
                    f"{_count(unpriced, 'call')} with usage but no price (a price is missing)"
                )
                price_missing = True
            if reasons:
                parts.append(f"on the {arm} arm " + " and ".join(reasons))
        return "; ".join(parts), price_missing

    def rate(self, metric: str) -> RateColumns:
        """The (events, trials) columns of a rate, every case."""
        found = self._rates.get(metric)
        if found is None:
            found = self._rates[metric] = self._rate(metric)
        return found

    @staticmethod
    def _rate_columns(metric: str) -> tuple[int, int] | None:
        """The (events, trials) columns of a built-in rate; None for a plugin's."""
        if metric in _CHECKS:
            first = _CHECK_BASE + 2 * CHECK_ORDER.index(metric)
            return first, first + 1
        return _BUILT_IN_RATES.get(metric)

    def _rate(self, metric: str) -> RateColumns:
        where = self._rate_columns(metric)
        if where is None:
            cases = self.members(np.arange(self.n))
            s_e, s_t = _generic(cases, "stable", lambda arm: arm.counts(metric))
            c_e, c_t = _generic(cases, "candidate", lambda arm: arm.counts(metric))
            return RateColumns(_ints(s_e), _ints(s_t), _ints(c_e), _ints(c_t))
        events, trials = where
        stable, candidate = self._stable.counts, self._candidate.counts
        return RateColumns(
            stable[:, events], stable[:, trials], candidate[:, events], candidate[:, trials]
        )

    def values(self, metric: str) -> tuple[Ragged, Ragged]:
        """Each case's call latencies (or times to first token) on (stable, candidate)."""
        if metric == "ttft_p95_ms":
            return self._stable.ttft, self._candidate.ttft
        return self._stable.latency, self._candidate.latency

    def ok_calls(self, arm: str) -> Ints:
        """Each case's successful calls on ``arm``."""
        return self._arm(arm).counts[:, _OK]

    def sums(self, metric: str) -> SumColumns:
        """The (total, calls) columns of cost, tokens or a plugin's mean or ratio metric."""
        found = self._sums.get(metric)
        if found is None:
            found = self._sums[metric] = self._sum(metric)
        return found

    def _sum(self, metric: str) -> SumColumns:
        stable, candidate = self._stable, self._candidate
        if metric == "cost_per_call_usd":
            return SumColumns(
                stable.cost,
                stable.counts[:, _OK],
                candidate.cost,
                candidate.counts[:, _OK],
                stable.cost_known,
                candidate.cost_known,
            )
        if metric == "tokens_per_call":
            known = np.ones(self.n, dtype=np.bool_)
            return SumColumns(
                stable.tokens,
                stable.token_calls,
                candidate.tokens,
                candidate.token_calls,
                known,
                known,
            )
        cases = self.members(np.arange(self.n))
        s_tot, s_cnt = _generic(cases, "stable", lambda arm: arm.sums(metric) or (0.0, 0))
        c_tot, c_cnt = _generic(cases, "candidate", lambda arm: arm.sums(metric) or (0.0, 0))
        known = np.ones(self.n, dtype=np.bool_)
        return SumColumns(_floats(s_tot), _ints(s_cnt), _floats(c_tot), _ints(c_cnt), known, known)

    def score(self, name: str) -> tuple[Floats, Flags, Floats, Flags]:
        """A quality score per case: (stable, has one, candidate, has one); 0.0 where none."""
        empty = (np.zeros(self.n, dtype=np.float64), np.zeros(self.n, dtype=np.bool_))
        s_values, s_has = self._stable.scores.get(name, empty)
        c_values, c_has = self._candidate.scores.get(name, empty)
        return s_values, s_has, c_values, c_has

    def score_names(self, positions: Ints) -> list[str]:
        """The score names any stable test of the scope recorded, sorted."""
        return sorted(
            name for name, (_, has) in self._stable.scores.items() if bool(has[positions].any())
        )

    def arm_figure(self, spec: _Spec, positions: Ints, arm: str) -> tuple[float | None, int]:
        """One arm's figure of a metric over the cases at ``positions``, unpaired, and how many
        values it rests on. Only for comparisons that could not be paired (``_no_data``)."""
        stable = arm == "stable"
        if spec.kind == "rate":
            rates = self.rate(spec.name)
            events = rates.s_events if stable else rates.c_events
            trials = int((rates.s_trials if stable else rates.c_trials)[positions].sum())
            return (int(events[positions].sum()) / trials if trials else None), trials
        if spec.name in _QUANTILES:
            values = self.values(spec.name)[0 if stable else 1].take(positions).values
            if not len(values):
                return None, 0
            return largesample.pooled_quantile(values, _QUANTILES[spec.name]), len(values)
        sums = self.sums(spec.name).take(positions)
        known = sums.s_known if stable else sums.c_known
        if not bool(known.all()):
            return None, int(self.ok_calls(arm)[positions].sum())
        calls = int((sums.s_calls if stable else sums.c_calls).sum())
        total = math.fsum((sums.s_total if stable else sums.c_total).tolist())
        return (total / calls if calls else None), calls

    def _arm(self, arm: str) -> ArmColumns:
        return self._stable if arm == "stable" else self._candidate


@dataclass(frozen=True)
class CaseAggregates:
    """A run as the paired judge needs it: per-case columns and each arm's whole-run figures.

    ``failed``: the cases failed on both arms, on the candidate only and on the stable arm
    only (``model.paired_failures``); ``stable_model``: the model the rollout plan starts from.
    """

    columns: CaseColumns
    stable: ArmMetrics
    candidate: ArmMetrics
    failed: tuple[tuple[CaseRef, ...], tuple[CaseRef, ...], tuple[CaseRef, ...]]
    stable_model: str | None


def aggregates_of_records(
    stable: Sequence[TestRecord], candidate: Sequence[TestRecord]
) -> CaseAggregates:
    """A run's records as the paired judge takes them: one pass over each arm's records makes
    its tables, which give the arm's whole-run figures and its per-case columns; the ``_Case``
    records are made only if a budget, a plugin's metric or a score's repeats ask for them.

    Pairing as ``cases._cases``: the cases that ran (a test not skipped) on both arms, sorted by
    id; a case's workflow is its first record's, its language the first one recorded.
    """
    ran = [
        {r.case_id for r in records if r.outcome != "skipped"} for records in (stable, candidate)
    ]
    ids = sorted(ran[0] & ran[1])
    case_of = {case: position for position, case in enumerate(ids)}
    workflow: dict[str, str] = {}
    language: dict[str, str | None] = {}
    for record in (*stable, *candidate):
        case = record.case_id
        workflow.setdefault(case, record.workflow)
        if language.get(case) is None:
            language[case] = record.language
    arms = []
    for records in (stable, candidate):
        tests, calls = tables_of_records(records, case_of)
        paired = [r for r in records if r.case_id in case_of]
        scores = _scores(paired, tests.case[tests.case >= 0], len(ids))
        arms.append((arm_metrics(tests, calls), arm_columns(tests, calls, len(ids), scores)))
    paired_tests = [r for r in (*stable, *candidate) if r.case_id in case_of]
    columns = CaseColumns.of_arms(
        ids,
        [workflow[case] for case in ids],
        [language[case] for case in ids],
        arms[0][1],
        arms[1][1],
        records=lambda: _cases(stable, candidate),
        budgets=(
            any(r.budgets for r in paired_tests),
            any(r.budgets for r in candidate if r.case_id in case_of),
        ),
    )
    return CaseAggregates(
        columns=columns,
        stable=arms[0][0],
        candidate=arms[1][0],
        failed=paired_failures(stable, candidate),
        stable_model=stable[0].model if stable else None,
    )


def _generic(
    cases: Sequence[_Case], arm: str, figure: Callable[[_CaseArm], tuple[float, int]]
) -> tuple[list[float], list[int]]:
    """A plugin's metric per case, through ``_CaseArm``: (totals or events, trials or calls)."""
    pairs = [figure(getattr(case, arm)) for case in cases]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _ints(values: Sequence[float]) -> Ints:
    return np.asarray(values, dtype=np.int64)


def _floats(values: Sequence[float]) -> Floats:
    return np.asarray(values, dtype=np.float64)


def _arm_columns(arms: Sequence[_CaseArm]) -> ArmColumns:
    """Every built-in figure of one arm's paired cases (``arms``, in case order)."""
    tests = [test for arm in arms for test in arm.tests]
    case_of: dict[str, int] = {}
    for position, arm in enumerate(arms):
        for test in arm.tests:
            case_of.setdefault(test.case_id, position)
    test_table, call_table = tables_of_records(tests, case_of)
    scores = _scores(tests, test_table.case, len(arms))
    return arm_columns(test_table, call_table, len(arms), scores)


def arm_columns(
    tests: TestTable,
    calls: CallTable,
    n: int,
    scores: dict[str, tuple[Floats, Flags]] | None = None,
) -> ArmColumns:
    """Every built-in figure of one arm per case (the run's ``n`` paired cases), as
    ``_CaseArm`` works them out, from the arm's tables.

    Tests of no paired case (``case`` -1) are left out. Counts are summed per case by
    ``numpy.bincount``; a sum of floats (a case's cost) is ``math.fsum``'s, as
    ``_CaseArm.sums`` has it. The per-test counts (each repeat's, for ``repeats_needed``) are
    kept too.
    """
    paired = tests.case >= 0
    if not bool(paired.all()):
        tests, calls = _paired_only(tests, calls, paired)
    if len(tests) and bool(np.any(np.diff(tests.case) < 0)):
        tests, calls = _by_case(tests, calls)
    test_counts = _counts(tests, calls, np.arange(len(tests), dtype=np.int64), len(tests))
    if len(tests) == n and bool(np.all(tests.case == np.arange(n))):
        # One test per case (the usual shape): a case's figures are its test's.
        counts = test_counts = _narrow(test_counts)
    else:
        counts = np.zeros((n, test_counts.shape[1]), dtype=test_counts.dtype)
        np.add.at(counts, tests.case, test_counts)
        counts, test_counts = _narrow(counts), _narrow(test_counts)
    call_case = tests.case[calls.test]
    ok = calls.ok
    latency = _ragged(calls.latency, ok, call_case, n)
    ttft = _ragged(calls.ttft, ok & calls.streamed, call_case, n)
    cost, cost_known = _costs(calls.cost, ok, call_case, n)
    has_tokens = ok & ~np.isnan(calls.tokens)
    tokens = np.bincount(call_case[has_tokens], weights=calls.tokens[has_tokens], minlength=n)
    return ArmColumns(
        counts=counts,
        latency=latency,
        ttft=ttft,
        cost=cost,
        cost_known=cost_known,
        tokens=tokens.astype(np.float64),
        token_calls=np.bincount(call_case[has_tokens], minlength=n).astype(np.int64),
        scores=scores or {},
        test_case=tests.case,
        test_counts=test_counts,
    )


def _narrow(counts: Counts) -> Counts:
    """``counts`` in 16 bits when every figure is far below 2**15 (a million shadow cases of one
    pair each: a quarter of 64-bit counts' memory). Sums and ratios of them are 64-bit as
    numpy computes them; the margin keeps a sum of two figures within 16 bits too."""
    if counts.size and int(counts.max()) < 2**13:
        return counts.astype(np.int16)
    return counts


def _counts(tests: TestTable, calls: CallTable, group: Ints, n: int) -> Counts:
    """The integer figures (``_PASSED``... ``_NO_USAGE_PLAIN``) per group of tests (``group``:
    each test's group)."""
    ran = tests.outcome != SKIPPED
    passed = tests.outcome == PASSED
    call_group = group[calls.test]

    def per(which: Ints, weights: Flags | None = None) -> Counts:
        return np.bincount(which, weights=weights, minlength=n).astype(np.int32)

    ok = calls.ok
    # 32 bits: a count per case or test is far below 2**31, and a million cases' 18 figures
    # take half the memory of 64-bit ones (sums and ratios of them are 64-bit, as numpy does).
    counts = np.zeros((n, _WIDTH), dtype=np.int32)
    counts[:, _PASSED] = per(group, passed & ran)
    counts[:, _RAN] = per(group, ran)
    counts[:, _FELL_BACK] = per(group, tests.fell_back & ran)
    counts[:, _CALLS] = per(call_group)
    counts[:, _OK] = per(call_group, ok)
    counts[:, _ERRORS] = counts[:, _CALLS] - counts[:, _OK]
    # Successful calls without a cost, by why (see ``cost_gaps``).
    unbilled = ok & np.isnan(calls.cost)
    counts[:, _UNPRICED] = per(call_group, unbilled & calls.has_usage)
    counts[:, _NO_USAGE_STREAMED] = per(call_group, unbilled & ~calls.has_usage & calls.streamed)
    counts[:, _NO_USAGE_PLAIN] = per(call_group, unbilled & ~calls.has_usage & ~calls.streamed)
    for offset in range(len(CHECK_ORDER)):
        checked = ok & calls.asked[:, offset]
        counts[:, _CHECK_BASE + 2 * offset] = per(call_group, checked & calls.good[:, offset])
        counts[:, _CHECK_BASE + 2 * offset + 1] = per(call_group, checked)
    return counts


def _paired_only(tests: TestTable, calls: CallTable, keep: Flags) -> tuple[TestTable, CallTable]:
    """The tables' rows of the tests in ``keep`` (and their calls), renumbered."""
    new_row = np.cumsum(keep) - 1
    kept_calls = keep[calls.test]
    return TestTable(tests.case[keep], tests.outcome[keep], tests.fell_back[keep]), _calls_at(
        calls, np.flatnonzero(kept_calls), new_row[calls.test[kept_calls]]
    )


def _by_case(tests: TestTable, calls: CallTable) -> tuple[TestTable, CallTable]:
    """The tables with the tests grouped by case (a stable sort: repeats keep their order)."""
    order = np.argsort(tests.case, kind="stable")
    new_row = np.empty(len(order), dtype=np.int64)
    new_row[order] = np.arange(len(order), dtype=np.int64)
    call_order = np.argsort(new_row[calls.test], kind="stable")
    sorted_tests = TestTable(tests.case[order], tests.outcome[order], tests.fell_back[order])
    return sorted_tests, _calls_at(calls, call_order, new_row[calls.test[call_order]])


def _calls_at(calls: CallTable, rows: Ints, test: Ints) -> CallTable:
    return CallTable(
        test=test,
        ok=calls.ok[rows],
        error_kind=calls.error_kind[rows],
        latency=calls.latency[rows],
        ttft=calls.ttft[rows],
        streamed=calls.streamed[rows],
        cost=calls.cost[rows],
        has_usage=calls.has_usage[rows],
        tokens=calls.tokens[rows],
        asked=calls.asked[rows],
        good=calls.good[rows],
        logical_calls=calls.logical_calls,
    )


def _ragged(values: Floats, keep: Flags, case: Ints, n: int) -> Ragged:
    """The kept calls' non-missing values per case, in call order."""
    present = keep & ~np.isnan(values)
    counts = np.bincount(case[present], minlength=n).astype(np.int64)
    return Ragged(values[present], counts)


def _costs(costs: Floats, ok: Flags, case: Ints, n: int) -> tuple[Floats, Flags]:
    """Each case's billed cost (``math.fsum`` of every call with a cost, failed ones too), and
    whether every successful call has one."""
    billed = ~np.isnan(costs)
    known = np.bincount(case[ok & ~billed], minlength=n) == 0
    billed_case = case[billed]
    amounts = costs[billed]
    total = np.zeros(n, dtype=np.float64)
    if bool(np.all(np.bincount(billed_case, minlength=n) <= 1)):
        # At most one billed call per case (the usual shape): its amount is its fsum.
        total[billed_case] = amounts
    else:
        by_case: dict[int, list[float]] = {}
        for index, amount in zip(billed_case.tolist(), amounts.tolist(), strict=True):
            by_case.setdefault(index, []).append(amount)
        for index, found in by_case.items():
            total[index] = math.fsum(found)
    total[~known] = 0.0
    return total, known


def _scores(tests: Sequence[TestRecord], case: Ints, n: int) -> dict[str, tuple[Floats, Flags]]:
    """Each score name's per-case mean over the case's tests (``_CaseArm.score``)."""
    scores: dict[str, dict[int, list[float]]] = {}
    for index, test in zip(case.tolist(), tests, strict=True):
        for name, value in test.scores:
            scores.setdefault(name, {}).setdefault(index, []).append(value)
    columns: dict[str, tuple[Floats, Flags]] = {}
    for name, by_case in scores.items():
        values = np.zeros(n, dtype=np.float64)
        has = np.zeros(n, dtype=np.bool_)
        for index, found in by_case.items():
            values[index] = math.fsum(found) / len(found)
            has[index] = True
        columns[name] = (values, has)
    return columns
