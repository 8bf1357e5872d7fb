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

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from pytest_modelgate.calls.records import TestRecord
from pytest_modelgate.judge.common import _CHECKS
from pytest_modelgate.judge.metrics import ArmMetrics, Measurement, call_tokens

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


def tables_of_records(
    records: Sequence[TestRecord], case_of: dict[str, int] | None = None
) -> tuple[TestTable, CallTable]:
    """The tables of one arm's records; ``case_of`` maps a case id to its paired position
    (a case missing from it is -1; None: every record is case -1)."""
    positions = case_of or {}
    n_tests = len(records)
    case = np.fromiter(
        (positions.get(r.case_id, -1) for r in records), dtype=np.int64, count=n_tests
    )
    outcome = np.fromiter(
        (OUTCOME_CODES[r.outcome] for r in records), dtype=np.int64, count=n_tests
    )
    fell_back = np.fromiter((bool(r.fallbacks) for r in records), dtype=np.bool_, count=n_tests)
    calls = [call for record in records for call in record.calls]
    n = len(calls)
    test = np.repeat(np.arange(n_tests, dtype=np.int64), [len(r.calls) for r in records])

    def floats(name: str) -> Floats:
        return np.fromiter(
            (math.nan if v is None else v for v in (getattr(c, name) for c in calls)),
            dtype=np.float64,
            count=n,
        )

    asked = np.zeros((n, len(CHECK_ORDER)), dtype=np.bool_)
    good = np.zeros((n, len(CHECK_ORDER)), dtype=np.bool_)
    # A suite has a handful of distinct ``checks`` tuples: membership is worked out per tuple.
    kinds: dict[tuple[str, ...], int] = {}
    kind = np.fromiter(
        (kinds.setdefault(c.checks, len(kinds)) for c in calls), dtype=np.int64, count=n
    )
    for offset, name in enumerate(CHECK_ORDER):
        check, attribute = _CHECKS[name]
        members = np.asarray([check in c for c in kinds] or [False], dtype=np.bool_)
        values = np.fromiter([getattr(c, attribute) for c in calls], dtype=object, count=n)
        told: Flags = values != None  # noqa: E711 (element-wise)
        asked[:, offset] = members[kind] & told
        good[:, offset] = told & values.astype(np.bool_)
    error_kind = np.fromiter((c.error_kind for c in calls), dtype=object, count=n)
    tokens = np.fromiter(
        (math.nan if t is None else t for t in map(call_tokens, calls)), dtype=np.float64, count=n
    )
    return TestTable(case, outcome, fell_back), CallTable(
        test=test,
        ok=error_kind == None,  # noqa: E711 (element-wise)
        error_kind=error_kind,
        latency=floats("latency_ms"),
        ttft=floats("ttft_ms"),
        streamed=np.fromiter((c.streamed for c in calls), dtype=np.bool_, count=n),
        cost=floats("cost_usd"),
        has_usage=np.fromiter((c.usage is not None for c in calls), dtype=np.bool_, count=n),
        tokens=tokens,
        asked=asked,
        good=good,
        logical_calls=len({(c.test_id, c.repeat, c.call_index) for c in calls}),
    )


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
