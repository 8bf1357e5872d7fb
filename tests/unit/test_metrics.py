"""Unit tests of per-arm metrics: each number worked out by hand from hand-built records."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord, Usage
from pytest_modelgate.judge.metrics import (
    METRICS,
    Measurement,
    compute_arm_metrics,
    format_change,
    format_limit,
    format_value,
    metric_spec,
    percentile,
)


def make_call(
    test_id: str = "t::a",
    *,
    call_index: int = 0,
    attempt: int = 1,
    repeat: int = 0,
    latency_ms: float | None = 100.0,
    **fields: Any,
) -> CallRecord:
    """A successful, unstreamed attempt unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "test_id": test_id,
        "case_id": test_id.split("::")[-1],
        "arm": "stable",
        "model": "stable-model",
        "repeat": repeat,
        "call_index": call_index,
        "attempt": attempt,
        "started_at": 1_700_000_000.0,
        "latency_ms": latency_ms,
        "status": 200,
    }
    values.update(fields)
    return CallRecord(**values)


def make_test(
    test_id: str = "t::a",
    *,
    outcome: str = "passed",
    calls: tuple[CallRecord, ...] = (),
    repeat: int = 0,
    fallbacks: tuple[str, ...] = (),
) -> TestRecord:
    return TestRecord(
        test_id=test_id,
        case_id=test_id.split("::")[-1],
        workflow="wf",
        arm="stable",
        model="stable-model",
        repeat=repeat,
        outcome=outcome,  # type: ignore[arg-type]
        calls=calls,
        fallbacks=fallbacks,
    )


def failed_call(test_id: str = "t::a", kind: str = "server_error", **fields: Any) -> CallRecord:
    fields.setdefault("status", 500)
    fields.setdefault("latency_ms", 50.0)
    return make_call(test_id, error_kind=kind, **fields)


class TestPercentile:
    """Expected values follow numpy.percentile(..., method="linear"), worked out by hand."""

    def test_empty_is_none(self) -> None:
        assert percentile([], 50) is None

    def test_single_value(self) -> None:
        assert percentile([7.0], 50) == 7.0
        assert percentile([7.0], 95) == 7.0

    def test_even_count_median_interpolates(self) -> None:
        # h = 3 * 0.5 = 1.5 -> 20 + 0.5 * (30 - 20)
        assert percentile([40.0, 10.0, 30.0, 20.0], 50) == pytest.approx(25.0)

    def test_p95_of_four(self) -> None:
        # h = 3 * 0.95 = 2.85 -> 30 + 0.85 * (40 - 30) = 38.5
        assert percentile([10.0, 20.0, 30.0, 40.0], 95) == pytest.approx(38.5)

    def test_p95_of_one_to_hundred(self) -> None:
        # h = 99 * 0.95 = 94.05 -> x[94] + 0.05 * (x[95] - x[94]) = 95 + 0.05 = 95.05
        assert percentile([float(v) for v in range(1, 101)], 95) == pytest.approx(95.05)

    def test_p95_of_twenty(self) -> None:
        # h = 19 * 0.95 = 18.05 -> x[18] + 0.05 * (x[19] - x[18]) = 19 + 0.05 * 81 = 23.05
        values = [float(v) for v in range(1, 20)] + [100.0]
        assert percentile(values, 95) == pytest.approx(23.05)

    def test_extremes(self) -> None:
        values = [3.0, 1.0, 2.0]
        assert percentile(values, 0) == 1.0
        assert percentile(values, 100) == 3.0

    def test_out_of_range_q_rejected(self) -> None:
        with pytest.raises(ValueError, match="within"):
            percentile([1.0], 101)
        with pytest.raises(ValueError, match="within"):
            percentile([1.0], -1)


class TestOutcomes:
    def test_counts_and_pass_rate_exclude_skipped(self) -> None:
        records = [
            make_test("t::a"),
            make_test("t::b"),
            make_test("t::c", outcome="failed"),
            make_test("t::d", outcome="error"),
            make_test("t::e", outcome="skipped"),
        ]
        metrics = compute_arm_metrics(records)
        assert (metrics.n_tests, metrics.passed, metrics.failed) == (5, 2, 1)
        assert (metrics.skipped, metrics.error) == (1, 1)
        assert metrics.pass_rate == Measurement(0.5, 4)

    def test_no_decided_tests_gives_no_pass_rate(self) -> None:
        metrics = compute_arm_metrics([make_test(outcome="skipped")])
        assert metrics.pass_rate == Measurement(None, 0)

    def test_empty_arm(self) -> None:
        metrics = compute_arm_metrics([])
        assert metrics.n_tests == 0
        assert metrics.attempts == 0
        for spec in METRICS:
            assert metrics.measurement(spec.name).value is None
            assert metrics.measurement(spec.name).samples == 0
        assert metrics.total_cost_usd == 0.0


class TestCalls:
    def test_attempts_error_rate_logical_calls_and_kinds(self) -> None:
        records = [
            make_test(
                "t::a",
                calls=(
                    failed_call("t::a", "rate_limit", call_index=0, attempt=1),
                    make_call("t::a", call_index=0, attempt=2),
                    make_call("t::a", call_index=1),
                ),
            ),
            make_test(
                "t::b",
                calls=(
                    failed_call("t::b", "timeout", call_index=0),
                    failed_call("t::b", "rate_limit", call_index=0, attempt=2),
                ),
            ),
            # The same test id on a second repeat is a different logical call.
            make_test("t::b", repeat=1, calls=(make_call("t::b", repeat=1),)),
        ]
        metrics = compute_arm_metrics(records)
        assert metrics.attempts == 6
        assert metrics.failed_attempts == 3
        assert metrics.error_rate == Measurement(0.5, 6)
        # (t::a, 0, 0), (t::a, 0, 1), (t::b, 0, 0), (t::b, 1, 0)
        assert metrics.logical_calls == 4
        assert metrics.error_kinds == (("rate_limit", 2), ("timeout", 1))
        assert metrics.error_kind_counts() == {"rate_limit": 2, "timeout": 1}

    def test_fallback_rate_counts_tests_that_ran(self) -> None:
        records = [
            make_test("t::a", fallbacks=("regex",)),
            make_test("t::b", fallbacks=("regex", "default")),
            make_test("t::c", outcome="failed"),
            make_test("t::d"),
            make_test("t::e", outcome="skipped"),
        ]
        metrics = compute_arm_metrics(records)
        assert metrics.tests_with_fallback == 2
        assert metrics.fallback_rate == Measurement(0.5, 4)


class TestLatency:
    def test_percentiles_over_successful_attempts_only(self) -> None:
        calls = tuple(
            make_call("t::a", call_index=i, latency_ms=ms)
            for i, ms in enumerate([100.0, 200.0, 300.0, 400.0])
        )
        # A slow failure and a call without latency must not count.
        calls += (
            failed_call("t::a", call_index=9, latency_ms=99_000.0),
            make_call("t::a", call_index=10, latency_ms=None),
        )
        metrics = compute_arm_metrics([make_test("t::a", calls=calls)])
        assert metrics.latency_p50_ms.value == pytest.approx(250.0)
        assert metrics.latency_p50_ms.samples == 4
        # h = 3 * 0.95 = 2.85 -> 300 + 0.85 * 100
        assert metrics.latency_p95_ms.value == pytest.approx(385.0)
        assert metrics.latency_p95_ms.samples == 4

    def test_ttft_only_from_streamed_successful_attempts(self) -> None:
        calls = (
            make_call("t::a", call_index=0, streamed=True, ttft_ms=100.0),
            make_call("t::a", call_index=1, streamed=True, ttft_ms=300.0),
            make_call("t::a", call_index=2, streamed=False, ttft_ms=5000.0),
            failed_call("t::a", "stream_cut", call_index=3, streamed=True, ttft_ms=9000.0),
            make_call("t::a", call_index=4, streamed=True, ttft_ms=None),
        )
        metrics = compute_arm_metrics([make_test("t::a", calls=calls)])
        # h = 1 * 0.95 -> 100 + 0.95 * 200 = 290
        assert metrics.ttft_p95_ms.value == pytest.approx(290.0)
        assert metrics.ttft_p95_ms.samples == 2

    def test_no_streamed_calls_means_no_ttft(self) -> None:
        metrics = compute_arm_metrics([make_test(calls=(make_call(),))])
        assert metrics.ttft_p95_ms == Measurement(None, 0)


class TestCost:
    def test_cost_per_successful_call(self) -> None:
        calls = (
            make_call("t::a", call_index=0, cost_usd=0.001),
            make_call("t::a", call_index=1, cost_usd=0.003),
            # An unbilled failure with no price does not make the cost unknown.
            failed_call("t::a", "rate_limit", call_index=2),
        )
        metrics = compute_arm_metrics([make_test(calls=calls)])
        assert metrics.cost_per_call_usd.value == pytest.approx(0.002)
        assert metrics.cost_per_call_usd.samples == 2
        assert metrics.total_cost_usd == pytest.approx(0.004)
        assert (metrics.cost_known_calls, metrics.cost_unknown_calls) == (2, 0)

    def test_billed_failure_adds_to_total_not_to_divisor(self) -> None:
        calls = (
            make_call("t::a", call_index=0, cost_usd=0.002),
            failed_call("t::a", "stream_cut", call_index=1, cost_usd=0.001),
        )
        metrics = compute_arm_metrics([make_test(calls=calls)])
        assert metrics.total_cost_usd == pytest.approx(0.003)
        assert metrics.cost_per_call_usd.value == pytest.approx(0.003)

    def test_one_unknown_price_makes_cost_unknown(self) -> None:
        calls = (
            make_call("t::a", call_index=0, cost_usd=0.001),
            make_call("t::a", call_index=1, cost_usd=None),
        )
        metrics = compute_arm_metrics([make_test(calls=calls)])
        assert metrics.cost_per_call_usd == Measurement(None, 2)
        assert metrics.total_cost_usd is None
        assert (metrics.cost_known_calls, metrics.cost_unknown_calls) == (1, 1)

    def test_zero_cost_is_known(self) -> None:
        metrics = compute_arm_metrics([make_test(calls=(make_call(cost_usd=0.0),))])
        assert metrics.cost_per_call_usd == Measurement(0.0, 1)


class TestTokens:
    def test_mean_over_successful_attempts_with_usage(self) -> None:
        calls = (
            make_call("t::a", call_index=0, usage=Usage(prompt_tokens=100, completion_tokens=20)),
            make_call("t::a", call_index=1, usage=Usage(prompt_tokens=200, completion_tokens=41)),
            make_call("t::a", call_index=2, usage=None),
            failed_call(
                "t::a",
                call_index=3,
                usage=Usage(prompt_tokens=10_000, completion_tokens=10_000),
            ),
        )
        metrics = compute_arm_metrics([make_test(calls=calls)])
        assert metrics.tokens_per_call == Measurement(180.5, 2)

    def test_total_tokens_used_when_parts_missing(self) -> None:
        calls = (
            make_call("t::a", call_index=0, usage=Usage(total_tokens=300)),
            make_call("t::a", call_index=1, usage=Usage(prompt_tokens=5)),
        )
        metrics = compute_arm_metrics([make_test(calls=calls)])
        assert metrics.tokens_per_call == Measurement(300.0, 1)


def test_measurement_lookup_rejects_unknown_names() -> None:
    metrics = compute_arm_metrics([])
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        metrics.measurement("nope")


def test_every_spec_is_measured_and_found() -> None:
    metrics = compute_arm_metrics([])
    for spec in METRICS:
        assert isinstance(metrics.measurement(spec.name), Measurement)
        assert metric_spec(spec.name) is spec
    assert metric_spec("custom_metric") is None


def test_same_records_same_metrics() -> None:
    records = [
        make_test(
            "t::a",
            calls=tuple(make_call("t::a", call_index=i, latency_ms=10.0 * i) for i in range(7)),
        )
    ]
    assert compute_arm_metrics(records) == compute_arm_metrics(list(reversed(records)))


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("rate", 0.9625, "96.2%"),
        ("rate", 1.0, "100.0%"),
        ("ms", 410.4, "410 ms"),
        ("ms", 1234.0, "1,234 ms"),
        ("ms", 90.4, "90 ms"),
        ("ms", 1.25, "1.2 ms"),
        ("usd", 0.000123, "$0.000123"),
        ("usd", 0.000039, "$0.000039"),
        ("usd", 0.0, "$0.000000"),
        # Issue 10 item 8: a small budget printed as "<= $0.000000".
        ("usd", 0.0000001, "$0.00000010"),
        ("usd", 0.00000123, "$0.0000012"),
        ("usd", 0.0000099, "$0.0000099"),
        ("tokens", 180.5, "180.5"),
        ("number", 3.5, "3.5"),
        ("ms", None, "-"),
    ],
)
def test_format_value(unit: str, value: float | None, expected: str) -> None:
    assert format_value(unit, value) == expected


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        ("points", 1.5, "+1.5 pts"),
        ("points", -6.0, "-6.0 pts"),
        ("points", -0.01, "+0.0 pts"),
        ("ratio", 1.5122, "x1.51"),
        ("ratio", None, "-"),
    ],
)
def test_format_change(kind: str, change: float | None, expected: str) -> None:
    assert format_change(kind, change) == expected


def test_format_limit() -> None:
    assert format_limit("points", -2.0) == "-2.0 pts"
    assert format_limit("points", 1.0) == "+1.0 pts"
    assert format_limit("ratio", 1.2) == "x1.20"
    assert format_limit("ratio", None) is None


def test_milliseconds_round_half_up_so_table_and_message_agree() -> None:
    from pytest_modelgate.judge.metrics import format_value

    # The verdict stores 26.5 for a raw 26.53; both must print as 27 ms.
    assert format_value("ms", 26.5) == "27 ms"
    assert format_value("ms", 26.53) == "27 ms"
    assert format_value("ms", 1234.5) == "1,235 ms"
    assert format_value("ms", 4.25) == "4.2 ms"
    # Rounded to the file's 0.1 first: 47.46 is stored as 47.5, and printed as 48 either way.
    assert format_value("ms", 47.46) == format_value("ms", 47.5) == "48 ms"
