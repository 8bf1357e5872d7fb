"""The flat tables give the figures the records give: ``arm_metrics`` is the record-by-record
computation (kept below as the reference), and a run judged from per-case aggregates
(``PairedJudge.judge_aggregates``) gets the judgement the records get."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from pytest_modelgate.calls.records import TestRecord
from pytest_modelgate.judge.cases import _cases, _repeat_rates
from pytest_modelgate.judge.columns import CaseAggregates, CaseColumns, arm_columns
from pytest_modelgate.judge.metrics import (
    ArmMetrics,
    Measurement,
    call_tokens,
    compute_arm_metrics,
    percentile,
)
from pytest_modelgate.judge.model import RunData, paired_failures
from pytest_modelgate.judge.paired import Margins, PairedJudge
from pytest_modelgate.judge.tables import arm_metrics, tables_of_records
from tests.unit.test_judge_columns import _records


def _reference_arm_metrics(records: Sequence[TestRecord]) -> ArmMetrics:
    """The record-by-record computation ``compute_arm_metrics`` had before it read tables,
    kept here as the independent reference the tables are held to."""
    outcomes = Counter(record.outcome for record in records)
    passed, failed = outcomes["passed"], outcomes["failed"]
    skipped, errored = outcomes["skipped"], outcomes["error"]

    calls = [call for record in records for call in record.calls]
    successful = [call for call in calls if call.ok]
    failed_calls = [call for call in calls if not call.ok]

    ran = [record for record in records if record.outcome != "skipped"]
    with_fallback = sum(1 for record in ran if record.fallbacks)

    latencies = [call.latency_ms for call in successful if call.latency_ms is not None]
    ttfts = [call.ttft_ms for call in successful if call.streamed and call.ttft_ms is not None]

    known_costs = [call.cost_usd for call in successful if call.cost_usd is not None]
    cost_unknown = len(successful) - len(known_costs)
    # Failed attempts are mostly unbilled (429, 5xx); when the provider did bill one (a cut stream)
    # and we know the amount, it is part of what the arm cost.
    failed_costs = [call.cost_usd for call in failed_calls if call.cost_usd is not None]
    total_cost: float | None = None
    cost_per_call: float | None = None
    if cost_unknown == 0:
        total_cost = math.fsum([*known_costs, *failed_costs])
        if successful:
            cost_per_call = total_cost / len(successful)

    tokens = [count for count in map(call_tokens, successful) if count is not None]
    no_usage = [call for call in successful if call.cost_usd is None and call.usage is None]

    kinds = Counter(call.error_kind for call in failed_calls if call.error_kind is not None)

    return ArmMetrics(
        n_tests=len(records),
        passed=passed,
        failed=failed,
        skipped=skipped,
        error=errored,
        pass_rate=_measure(passed, passed + failed + errored),
        attempts=len(calls),
        failed_attempts=len(failed_calls),
        error_rate=_measure(len(failed_calls), len(calls)),
        logical_calls=len({(call.test_id, call.repeat, call.call_index) for call in calls}),
        tests_with_fallback=with_fallback,
        fallback_rate=_measure(with_fallback, len(ran)),
        latency_p50_ms=Measurement(percentile(latencies, 50), len(latencies)),
        latency_p95_ms=Measurement(percentile(latencies, 95), len(latencies)),
        ttft_p95_ms=Measurement(percentile(ttfts, 95), len(ttfts)),
        cost_per_call_usd=Measurement(cost_per_call, len(successful)),
        total_cost_usd=total_cost,
        cost_known_calls=len(known_costs),
        cost_unknown_calls=cost_unknown,
        usage_missing_calls=len(no_usage),
        usage_missing_streamed_calls=sum(call.streamed for call in no_usage),
        tokens_per_call=Measurement(
            math.fsum(tokens) / len(tokens) if tokens else None, len(tokens)
        ),
        error_kinds=tuple(sorted(kinds.items())),
    )


def _measure(numerator: int, denominator: int) -> Measurement:
    return Measurement(numerator / denominator if denominator else None, denominator)


def _without_scores(records: list[TestRecord]) -> list[TestRecord]:
    # Aggregates carry built-in figures only; scores need the records (CaseColumns(cases)).
    return [r.model_copy(update={"scores": ()}) for r in records]


@pytest.mark.parametrize("seed", range(5))
def test_arm_metrics_of_the_tables_are_those_of_the_records(seed: int) -> None:
    stable, candidate = _records(seed)
    for records in (stable, candidate, stable[:0]):
        tests, calls = tables_of_records(records)
        assert arm_metrics(tests, calls) == _reference_arm_metrics(records)
        assert compute_arm_metrics(records) == _reference_arm_metrics(records)


def _aggregates(stable: list[TestRecord], candidate: list[TestRecord]) -> CaseAggregates:
    """The run as an engine would hand it over: tables of every record (unpaired and shuffled
    ones too), per-case columns of them, no ``_Case``."""
    paired = sorted(
        {r.case_id for r in stable if r.outcome != "skipped"}
        & {r.case_id for r in candidate if r.outcome != "skipped"}
    )
    case_of = {case: position for position, case in enumerate(paired)}
    arms = []
    for records in (stable, candidate):
        tests, calls = tables_of_records(records, case_of)
        arms.append((arm_columns(tests, calls, len(paired)), arm_metrics(tests, calls)))
    workflow = {r.case_id: r.workflow for r in (*stable, *candidate)}
    columns = CaseColumns.of_arms(
        paired, [workflow[c] for c in paired], [None] * len(paired), arms[0][0], arms[1][0]
    )
    return CaseAggregates(
        columns=columns,
        stable=arms[0][1],
        candidate=arms[1][1],
        failed=paired_failures(stable, candidate),
        stable_model=stable[0].model,
    )


@pytest.mark.parametrize("seed", range(4))
def test_a_run_judged_from_aggregates_is_judged_as_from_its_records(seed: int) -> None:
    stable, candidate = (_without_scores(r) for r in _records(seed, cases=120))
    # Records out of case order: the tables group them by case, repeats in their order.
    rng = random.Random(seed)
    order = list(range(len(stable)))
    rng.shuffle(order)
    shuffled = [stable[i] for i in order]
    judge = PairedJudge(Margins(), resamples=200, min_cases=10)
    from_records = judge.judge(RunData(stable=stable, candidate=candidate))
    from_aggregates = judge.judge_aggregates(_aggregates(shuffled, candidate))
    assert from_records.metrics, "the fixture must give comparisons to check"
    # The shuffled stable records keep each case's repeats in order, so the columns are equal.
    assert dataclasses.asdict(from_aggregates) == dataclasses.asdict(from_records)


def test_repeats_of_the_aggregates_are_those_of_the_records() -> None:
    stable, candidate = (_without_scores(r) for r in _records(3, cases=80))
    cases = _cases(stable, candidate)
    records = CaseColumns(cases)
    aggregates = _aggregates(stable, candidate).columns
    positions = np.arange(records.n, dtype=np.int64)
    for metric in ("pass_rate", "error_rate", "json_validity", "fallback_rate"):
        expected = [
            (_repeat_rates(c.stable, metric), _repeat_rates(c.candidate, metric)) for c in cases
        ]
        assert list(aggregates.repeat_rates(metric, positions)) == expected, metric
        assert list(records.repeat_rates(metric, positions)) == expected, metric
    assert aggregates.cost_gaps(positions) == records.cost_gaps(positions)
    assert records.cost_gaps(positions)[0], "the fixture has calls without a cost"


def test_aggregates_hold_no_records_to_read() -> None:
    stable, candidate = (_without_scores(r) for r in _records(1))
    columns = _aggregates(stable, candidate).columns
    assert not columns.has_records
    with pytest.raises(ValueError, match="no records"):
        columns.members(np.arange(3, dtype=np.int64))
    with pytest.raises(ValueError, match="differ in length"):
        CaseColumns.of_arms(["a"], ["w"], [None, None], columns._stable, columns._candidate)
