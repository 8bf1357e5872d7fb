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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pytest_modelgate.calls.records import TestRecord
from pytest_modelgate.judge import largesample
from pytest_modelgate.judge.cases import _Case, _CaseArm
from pytest_modelgate.judge.common import _CHECKS, _QUANTILES, _Spec
from pytest_modelgate.judge.metrics import call_tokens

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Flags = NDArray[np.bool_]
Objects = NDArray[np.object_]


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
        """The values of the cases at ``positions``, in that order."""
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


@dataclass(frozen=True)
class RateColumns:
    """(events, trials) of a rate per case on each arm; "events" are successes when higher is
    better (see ``_CaseArm.counts``)."""

    s_events: Ints
    s_trials: Ints
    c_events: Ints
    c_trials: Ints

    def take(self, rows: Ints | Flags) -> RateColumns:
        """The rows at ``rows`` (positions or a mask)."""
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
        """The rows at ``rows`` (positions or a mask)."""
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


# The check rates in a fixed order: the column of each in the extracted figures.
_CHECK_ORDER = tuple(_CHECKS)

# Figures of one case arm, in this order (see _arm_figures).
_PASSED, _RAN, _FELL_BACK, _ERRORS, _CALLS, _OK = range(6)
_CHECK_BASE = 6


@dataclass(frozen=True)
class _ArmColumns:
    """One arm's built-in figures, one entry per case."""

    counts: Ints  # (cases, _CHECK_BASE + 2 * checks): the integer figures
    latency: Ragged
    ttft: Ragged
    cost: Floats
    cost_known: Flags
    tokens: Floats
    token_calls: Ints
    scores: dict[str, tuple[Floats, Flags]]


class CaseColumns:
    """Every paired case's figures per metric and arm, extracted once per run.

    ``cases`` are the run's paired cases in their sorted order; a scope passes the positions of
    its cases in that list. Built-in metrics are extracted in one pass per case arm when first
    asked for; a plugin's metric (``pytest_modelgate_metrics``) is read through ``_CaseArm``.
    """

    def __init__(self, cases: Sequence[_Case]) -> None:
        self.cases = cases
        self.n = len(cases)
        self._rates: dict[str, RateColumns] = {}
        self._sums: dict[str, SumColumns] = {}

    @functools.cached_property
    def _stable(self) -> _ArmColumns:
        return _arm_columns([case.stable for case in self.cases])

    @functools.cached_property
    def _candidate(self) -> _ArmColumns:
        return _arm_columns([case.candidate for case in self.cases])

    def rate(self, metric: str) -> RateColumns:
        """The (events, trials) columns of a rate, every case."""
        found = self._rates.get(metric)
        if found is None:
            found = self._rates[metric] = self._rate(metric)
        return found

    def _rate(self, metric: str) -> RateColumns:
        columns = {
            "pass_rate": (_PASSED, _RAN),
            "fallback_rate": (_FELL_BACK, _RAN),
            "error_rate": (_ERRORS, _CALLS),
        }
        if metric in _CHECKS:
            first = _CHECK_BASE + 2 * _CHECK_ORDER.index(metric)
            columns[metric] = (first, first + 1)
        if metric not in columns:
            s_e, s_t = _generic(self.cases, "stable", lambda arm: arm.counts(metric))
            c_e, c_t = _generic(self.cases, "candidate", lambda arm: arm.counts(metric))
            return RateColumns(_ints(s_e), _ints(s_t), _ints(c_e), _ints(c_t))
        events, trials = columns[metric]
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
        s_tot, s_cnt = _generic(self.cases, "stable", lambda arm: arm.sums(metric) or (0.0, 0))
        c_tot, c_cnt = _generic(self.cases, "candidate", lambda arm: arm.sums(metric) or (0.0, 0))
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

    def _arm(self, arm: str) -> _ArmColumns:
        return self._stable if arm == "stable" else self._candidate


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


def _arm_columns(arms: Sequence[_CaseArm]) -> _ArmColumns:
    """Every built-in figure of one arm, per case, as ``_CaseArm`` works them out.

    Column-wise: one table of the arm's tests and one of its calls (each row tagged with its
    case's position), each field read by one C-level ``attrgetter`` pass, then summed per case
    (``numpy.bincount``). Counts are exact; a sum of floats (a case's cost) is ``math.fsum``'s,
    as ``_CaseArm.sums`` has it.
    """
    n = len(arms)
    tests = [test for arm in arms for test in arm.tests]
    test_case = np.repeat(np.arange(n, dtype=np.int64), [len(arm.tests) for arm in arms])
    outcomes = [test.outcome for test in tests]
    ran = np.fromiter((o != "skipped" for o in outcomes), dtype=np.bool_, count=len(tests))
    passed = np.fromiter((o == "passed" for o in outcomes), dtype=np.bool_, count=len(tests))
    fell_back = np.fromiter(
        (bool(test.fallbacks) for test in tests), dtype=np.bool_, count=len(tests)
    )
    calls = [call for test in tests for call in test.calls]
    call_case = np.repeat(test_case, [len(test.calls) for test in tests])
    # One array per field, of the calls' own values (no object made per call), compared
    # element-wise in C.
    column = {
        name: np.fromiter([getattr(call, name) for call in calls], dtype=object, count=len(calls))
        for name in _CALL_FIELDS
    }

    def per_case(case: Ints, weights: Flags | None = None) -> Ints:
        found = np.bincount(case, weights=weights, minlength=n)
        return found.astype(np.int64)

    ok: Flags = column["error_kind"] == None  # noqa: E711 (element-wise)
    counts = np.zeros((n, _CHECK_BASE + 2 * len(_CHECK_ORDER)), dtype=np.int64)
    counts[:, _PASSED] = per_case(test_case, passed & ran)
    counts[:, _RAN] = per_case(test_case, ran)
    counts[:, _FELL_BACK] = per_case(test_case, fell_back & ran)
    counts[:, _CALLS] = per_case(call_case)
    counts[:, _OK] = per_case(call_case, ok)
    counts[:, _ERRORS] = counts[:, _CALLS] - counts[:, _OK]
    # A suite has a handful of distinct ``checks`` tuples: membership is worked out per tuple.
    kinds: dict[tuple[str, ...], int] = {}
    kind = np.fromiter(
        (kinds.setdefault(c, len(kinds)) for c in column["checks"]),
        dtype=np.int64,
        count=len(calls),
    )
    for offset, name in enumerate(_CHECK_ORDER):
        check, attribute = _CHECKS[name]
        members = np.asarray([check in c for c in kinds] or [False], dtype=np.bool_)
        values = column[attribute]
        checked = ok & members[kind] & (values != None)  # noqa: E711 (element-wise)
        counts[:, _CHECK_BASE + 2 * offset] = per_case(call_case, checked & values.astype(np.bool_))
        counts[:, _CHECK_BASE + 2 * offset + 1] = per_case(call_case, checked)
    latency = _ragged(column["latency_ms"], ok, call_case, n)
    streamed = column["streamed"].astype(np.bool_)
    ttft = _ragged(column["ttft_ms"], ok & streamed, call_case, n)
    cost, cost_known = _costs(column["cost_usd"], ok, call_case, n)
    usage = [call_tokens(c) for c in (calls[i] for i in np.flatnonzero(ok).tolist())]
    token_counts = np.asarray([t if t is not None else -1 for t in usage], dtype=np.int64)
    token_case = call_case[ok]
    has_tokens = token_counts >= 0
    tokens = np.bincount(token_case[has_tokens], weights=token_counts[has_tokens], minlength=n)
    return _ArmColumns(
        counts=counts,
        latency=latency,
        ttft=ttft,
        cost=cost,
        cost_known=cost_known,
        tokens=tokens.astype(np.float64),
        token_calls=per_case(token_case, has_tokens),
        scores=_scores(tests, test_case, n),
    )


# The call fields the built-in figures read, in one attrgetter.
_CALL_FIELDS = (
    "error_kind",
    "checks",
    "latency_ms",
    "streamed",
    "ttft_ms",
    "cost_usd",
    *(attribute for _, attribute in (_CHECKS[name] for name in _CHECK_ORDER)),
)


def _ragged(values: Objects, keep: Flags, case: Ints, n: int) -> Ragged:
    """The kept calls' non-missing values per case, in call order."""
    present = keep & (values != None)  # noqa: E711 (element-wise)
    counts = np.bincount(case[present], minlength=n).astype(np.int64)
    return Ragged(values[present].astype(np.float64), counts)


def _costs(costs: Objects, ok: Flags, case: Ints, n: int) -> tuple[Floats, Flags]:
    """Each case's billed cost (``math.fsum`` of every call with a cost, failed ones too), and
    whether every successful call has one."""
    billed: Flags = costs != None  # noqa: E711 (element-wise)
    known = np.bincount(case[ok & ~billed], minlength=n) == 0
    billed_case = case[billed]
    amounts = costs[billed].astype(np.float64)
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
