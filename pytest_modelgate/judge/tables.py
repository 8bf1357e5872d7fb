"""One arm's tests and calls as flat tables of numpy columns: what the judge's figures are made of.

Two sources fill them: the gate's test records (``tables_of_records``) and an engine that reads
a log without building a record per line (``modelgate analyze``: DuckDB or the streaming reader
of ``verdict/shadow.py``). From the tables come the per-case aggregates the paired judge
compares (``columns.arm_columns``) and the arm's whole-run figures (``arm_metrics``), one
definition of each whatever the source.

A missing number is NaN in a float column (a call without latency, cost or tokens); a check
that was not asked, or whose answer could not be told, is ``asked`` false.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pytest_modelgate.calls.records import TestRecord
from pytest_modelgate.judge.common import _CHECKS
from pytest_modelgate.judge.metrics import ArmMetrics, Measurement

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Flags = NDArray[np.bool_]
Objects = NDArray[np.object_]

# Test outcomes as codes (TestTable.outcome).
PASSED, FAILED, SKIPPED, ERROR = range(4)
OUTCOME_CODES = {"passed": PASSED, "failed": FAILED, "skipped": SKIPPED, "error": ERROR}

# The built-in check rates in a fixed order (CallTable.asked and .good).
CHECK_ORDER = tuple(_CHECKS)


@dataclass(frozen=True)
class TestTable:
    """One arm's tests, a row each.

    ``case``: the position of the test's case among the run's paired cases, -1 for a test whose
    case the other arm did not run. Rows of a case keep the order they came in (its repeats).
    """

    __test__ = False  # not a pytest test class

    case: Ints
    outcome: Ints
    fell_back: Flags

    def __len__(self) -> int:
        return len(self.case)


@dataclass(frozen=True)
class CallTable:
    """The tests' HTTP attempts, a row each, in test order.

    ``asked[:, k]``: check ``CHECK_ORDER[k]`` was asked of the call and told; ``good[:, k]``
    its answer. ``logical_calls``: the distinct (test, repeat, call index) of the attempts.
    """

    test: Ints
    ok: Flags
    error_kind: Objects
    latency: Floats
    ttft: Floats
    streamed: Flags
    cost: Floats
    has_usage: Flags
    tokens: Floats
    asked: Flags
    good: Flags
    logical_calls: int

    def __len__(self) -> int:
        return len(self.test)


# The call fields the tables read, each by one C-level ``attrgetter`` pass over the calls.
_CALL_FIELDS = (
    "error_kind",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "streamed",
    "usage",
    "checks",
    "test_id",
    "repeat",
    "call_index",
    *(attribute for _, attribute in (_CHECKS[name] for name in CHECK_ORDER)),
)


def tables_of_records(
    records: Sequence[TestRecord], case_of: Mapping[str, int] | None = None
) -> tuple[TestTable, CallTable]:
    """The tables of one arm's records; ``case_of`` maps a case id to its paired position
    (a case missing from it is -1; None: every record is case -1).

    Column-wise: one ``attrgetter`` pass per table reads every field of every row as a tuple,
    ``zip`` turns the rows into columns, and each column becomes an array without a Python
    object made per value (a hundred thousand cases' records in a fraction of a second).
    """
    n_tests = len(records)
    test_fields = _columns(records, ("case_id", "outcome", "fallbacks"))
    positions = case_of or {}
    case = np.fromiter(
        map(positions.get, test_fields["case_id"], itertools.repeat(-1)),
        dtype=np.int64,
        count=n_tests,
    )
    outcome = np.fromiter(
        map(OUTCOME_CODES.__getitem__, test_fields["outcome"]), dtype=np.int64, count=n_tests
    )
    fell_back = np.fromiter(map(bool, test_fields["fallbacks"]), dtype=np.bool_, count=n_tests)
    calls = [call for record in records for call in record.calls]
    n = len(calls)
    test = np.repeat(np.arange(n_tests, dtype=np.int64), [len(r.calls) for r in records])
    column = _columns(calls, _CALL_FIELDS)
    asked = np.zeros((n, len(CHECK_ORDER)), dtype=np.bool_)
    good = np.zeros((n, len(CHECK_ORDER)), dtype=np.bool_)
    # A suite has a handful of distinct ``checks`` tuples: membership is worked out per tuple.
    kinds = {checks: index for index, checks in enumerate(set(column["checks"]))}
    kind = np.fromiter(map(kinds.__getitem__, column["checks"]), dtype=np.int64, count=n)
    for offset, name in enumerate(CHECK_ORDER):
        check, attribute = _CHECKS[name]
        members = np.zeros(max(len(kinds), 1), dtype=np.bool_)
        for checks, index in kinds.items():
            members[index] = check in checks
        values = _objects(column[attribute])
        told: Flags = values != None  # noqa: E711 (element-wise)
        asked[:, offset] = members[kind] & told
        good[:, offset] = told & values.astype(np.bool_)
    error_kind = _objects(column["error_kind"])
    usage = column["usage"]
    has_usage = np.fromiter(
        map(operator.is_not, usage, itertools.repeat(None)), dtype=np.bool_, count=n
    )
    return TestTable(case, outcome, fell_back), CallTable(
        test=test,
        ok=error_kind == None,  # noqa: E711 (element-wise)
        error_kind=error_kind,
        latency=_floats(column["latency_ms"]),
        ttft=_floats(column["ttft_ms"]),
        streamed=np.fromiter(column["streamed"], dtype=np.bool_, count=n),
        cost=_floats(column["cost_usd"]),
        has_usage=has_usage,
        tokens=_tokens(usage, has_usage),
        asked=asked,
        good=good,
        logical_calls=len(
            set(zip(column["test_id"], column["repeat"], column["call_index"], strict=True))
        ),
    )


def _columns(rows: Sequence[Any], fields: tuple[str, ...]) -> dict[str, tuple[Any, ...]]:
    """Each field of ``rows`` as a tuple of values in row order."""
    if not rows:
        return {name: () for name in fields}
    values = zip(*map(operator.attrgetter(*fields), rows), strict=True)
    return dict(zip(fields, values, strict=True))


def _objects(values: Sequence[Any]) -> Objects:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _floats(values: Sequence[float | None]) -> Floats:
    """Numbers with NaN for None."""
    array = _objects(values)
    array[array == None] = math.nan  # noqa: E711 (element-wise)
    return array.astype(np.float64)


def _tokens(usage: Sequence[Any], present: Flags) -> Floats:
    """``metrics.call_tokens`` of each call: prompt plus completion tokens, or the reported
    total when a part is missing; NaN without usage or a total. (The usage objects stay in a
    tuple: numpy would probe each model for an array interface.)"""
    tokens = np.full(len(usage), math.nan, dtype=np.float64)
    if not bool(present.any()):
        return tokens
    fields = ("prompt_tokens", "completion_tokens", "total_tokens")
    parts = _columns(list(itertools.compress(usage, present.tolist())), fields)
    prompt, completion = _floats(parts["prompt_tokens"]), _floats(parts["completion_tokens"])
    both = prompt + completion
    tokens[present] = np.where(np.isnan(both), _floats(parts["total_tokens"]), both)
    return tokens


def arm_metrics(tests: TestTable, calls: CallTable) -> ArmMetrics:
    """One arm's whole-run figures (every test, paired or not), as ``compute_arm_metrics``
    works them out from the records (``tests/unit/test_judge_tables.py`` compares them)."""
    outcomes = np.bincount(tests.outcome, minlength=4)
    passed, failed, skipped, errored = (int(v) for v in outcomes[:4])
    ok = calls.ok
    n_ok = int(ok.sum())
    failed_calls = len(calls) - n_ok
    ran = tests.outcome != SKIPPED
    with_fallback = int((tests.fell_back & ran).sum())
    latencies = np.sort(calls.latency[ok & ~np.isnan(calls.latency)])
    ttfts = np.sort(calls.ttft[ok & calls.streamed & ~np.isnan(calls.ttft)])
    billed = ~np.isnan(calls.cost)
    known_costs = int((ok & billed).sum())
    cost_unknown = n_ok - known_costs
    total_cost: float | None = None
    cost_per_call: float | None = None
    if cost_unknown == 0:
        # Failed attempts are mostly unbilled; when one was billed, it is part of the arm's cost.
        total_cost = fsum(calls.cost[billed])
        if n_ok:
            cost_per_call = total_cost / n_ok
    tokens = calls.tokens[ok & ~np.isnan(calls.tokens)]
    no_usage = ok & ~billed & ~calls.has_usage
    kinds = Counter(k for k in calls.error_kind[~ok].tolist() if k is not None)
    return ArmMetrics(
        n_tests=len(tests),
        passed=passed,
        failed=failed,
        skipped=skipped,
        error=errored,
        pass_rate=_rate(passed, passed + failed + errored),
        attempts=len(calls),
        failed_attempts=failed_calls,
        error_rate=_rate(failed_calls, len(calls)),
        logical_calls=calls.logical_calls,
        tests_with_fallback=with_fallback,
        fallback_rate=_rate(with_fallback, int(ran.sum())),
        latency_p50_ms=Measurement(sorted_percentile(latencies, 50), len(latencies)),
        latency_p95_ms=Measurement(sorted_percentile(latencies, 95), len(latencies)),
        ttft_p95_ms=Measurement(sorted_percentile(ttfts, 95), len(ttfts)),
        cost_per_call_usd=Measurement(cost_per_call, n_ok),
        total_cost_usd=total_cost,
        cost_known_calls=known_costs,
        cost_unknown_calls=cost_unknown,
        usage_missing_calls=int(no_usage.sum()),
        usage_missing_streamed_calls=int((no_usage & calls.streamed).sum()),
        tokens_per_call=Measurement(
            fsum(tokens) / len(tokens) if len(tokens) else None, len(tokens)
        ),
        error_kinds=tuple(sorted(kinds.items())),
    )


def fsum(values: Floats) -> float:
    """``math.fsum`` of an array's values, read one by one (no list of a million floats)."""
    return math.fsum(np.ascontiguousarray(values, dtype=np.float64).data)


def sorted_percentile(ordered: Floats, q: float) -> float | None:
    """``metrics.percentile`` of values already sorted, in the same float arithmetic."""
    if not len(ordered):
        return None
    position = (len(ordered) - 1) * (q / 100)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    low, high = float(ordered[lower]), float(ordered[upper])
    return low + (high - low) * fraction


def _rate(numerator: int, denominator: int) -> Measurement:
    return Measurement(numerator / denominator if denominator else None, denominator)
