"""Unit tests of the fixed-limit judge: each limit breached, at its boundary, improved, no data."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord, Usage
from pytest_modelgate.config.settings import GateLimits
from pytest_modelgate.judge.model import (
    CaseRef,
    FixedLimitJudge,
    Judge,
    Judgement,
    MetricComparison,
    RunData,
    Samples,
)

DEFAULT_LIMITS = GateLimits()


def make_call(
    arm: str, case: str, *, call_index: int = 0, attempt: int = 1, **fields: Any
) -> CallRecord:
    values: dict[str, Any] = {
        "test_id": f"test_flow[{case}-{arm}]",
        "case_id": case,
        "arm": arm,
        "model": f"{arm}-model",
        "call_index": call_index,
        "attempt": attempt,
        "started_at": 1_700_000_000.0,
        "latency_ms": 410.0,
        "status": 200,
        "usage": Usage(prompt_tokens=100, completion_tokens=20),
        "cost_usd": 0.001,
    }
    values.update(fields)
    return CallRecord(**values)


def make_test(
    arm: str,
    case: str,
    *,
    outcome: str = "passed",
    calls: Sequence[CallRecord] | None = None,
    fallbacks: tuple[str, ...] = (),
    repeat: int = 0,
) -> TestRecord:
    return TestRecord(
        test_id=f"test_flow[{case}-{arm}]",
        case_id=case,
        workflow="flow",
        arm=arm,  # type: ignore[arg-type]
        model=f"{arm}-model",
        repeat=repeat,
        outcome=outcome,  # type: ignore[arg-type]
        calls=tuple(calls) if calls is not None else (make_call(arm, case, repeat=repeat),),
        fallbacks=fallbacks,
    )


def make_arm(
    arm: str,
    n: int = 50,
    *,
    failed: int = 0,
    fallbacks: int = 0,
    retried: int = 0,
    latencies: Sequence[float] | None = None,
    **call_fields: Any,
) -> list[TestRecord]:
    """``n`` cases with one successful call each; the first ``failed`` tests fail, the first
    ``fallbacks`` use a fallback, the first ``retried`` needed a retry after a 503."""
    records = []
    for i in range(n):
        case = f"case{i:03d}"
        fields = dict(call_fields)
        if latencies is not None:
            fields["latency_ms"] = latencies[i]
        calls = []
        if i < retried:
            calls.append(make_call(arm, case, error_kind="server_error", status=503, cost_usd=None))
        calls.append(make_call(arm, case, attempt=len(calls) + 1, **fields))
        records.append(
            make_test(
                arm,
                case,
                outcome="failed" if i < failed else "passed",
                calls=calls,
                fallbacks=("regex",) if i < fallbacks else (),
            )
        )
    return records


def judge(
    stable: Sequence[TestRecord],
    candidate: Sequence[TestRecord] | None,
    limits: GateLimits = DEFAULT_LIMITS,
) -> Judgement:
    return FixedLimitJudge(limits).judge(RunData(stable=stable, candidate=candidate))


def metric(judgement: Judgement, name: str) -> MetricComparison:
    (found,) = [m for m in judgement.metrics if m.name == name]
    return found


def test_fixed_limit_judge_satisfies_the_protocol() -> None:
    implementation: Judge = FixedLimitJudge(DEFAULT_LIMITS)
    assert "FixedLimitJudge" in repr(implementation)


def test_identical_arms_pass() -> None:
    judgement = judge(make_arm("stable"), make_arm("candidate"))
    assert judgement.verdict == "pass"
    assert judgement.regressions == ()
    assert judgement.reasons == (
        "all 6 gated metrics with data on both arms are within their limits; "
        "not compared for lack of data: ttft_p95_ms",
    )
    statuses = {m.name: m.status for m in judgement.metrics}
    assert statuses == {
        "pass_rate": "ok",
        "error_rate": "ok",
        "fallback_rate": "ok",
        "latency_p50_ms": "ok",
        "latency_p95_ms": "ok",
        "ttft_p95_ms": "no_data",
        "cost_per_call_usd": "ok",
        "tokens_per_call": "not_gated",
    }


def test_metrics_are_reported_in_a_fixed_order() -> None:
    judgement = judge(make_arm("stable"), make_arm("candidate"))
    assert [m.name for m in judgement.metrics] == [
        "pass_rate",
        "error_rate",
        "fallback_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "ttft_p95_ms",
        "cost_per_call_usd",
        "tokens_per_call",
    ]


class TestRegressions:
    def test_pass_rate_drop(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", failed=2))
        assert judgement.verdict == "fail"
        (regression,) = judgement.regressions
        assert regression.metric == "pass_rate"
        assert regression.scope == "overall"
        assert (regression.stable, regression.candidate) == (1.0, 0.96)
        assert regression.limit == "-2.0 pts"
        assert regression.message == (
            "pass rate fell from 100.0% to 96.0% (-4.0 pts), beyond the -2.0 pts limit"
        )
        comparison = metric(judgement, "pass_rate")
        assert comparison.change == pytest.approx(-4.0)
        assert comparison.change_kind == "points"
        assert comparison.limit_value == pytest.approx(-2.0)
        assert comparison.samples == Samples(50, 50)
        assert judgement.reasons == (regression.message,)

    def test_error_rate_rise(self) -> None:
        # 2 failed attempts of 52 on the candidate: +3.85 points against a 1-point limit.
        judgement = judge(make_arm("stable"), make_arm("candidate", retried=2))
        assert judgement.verdict == "fail"
        (regression,) = judgement.regressions
        assert regression.metric == "error_rate"
        assert regression.message == (
            "error rate rose from 0.0% to 3.8% (+3.8 pts), above the +1.0 pts limit"
        )
        assert metric(judgement, "error_rate").samples == Samples(50, 52)

    def test_fallback_rate_rise(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", fallbacks=2))
        (regression,) = judgement.regressions
        assert regression.metric == "fallback_rate"
        assert regression.message == (
            "fallback rate rose from 0.0% to 4.0% (+4.0 pts), above the +2.0 pts limit"
        )

    def test_p95_latency_rise(self) -> None:
        # 20 calls: h = 19 * 0.95 = 18.05, so the two slowest set the p95 and leave the p50.
        stable = make_arm("stable", 20, latencies=[410.0] * 20)
        candidate = make_arm("candidate", 20, latencies=[410.0] * 18 + [620.0] * 2)
        judgement = judge(stable, candidate)
        assert judgement.verdict == "fail"
        (regression,) = judgement.regressions
        assert regression.metric == "latency_p95_ms"
        assert regression.message == (
            "p95 latency rose from 410 ms to 620 ms (x1.51), above the x1.20 limit"
        )
        assert metric(judgement, "latency_p50_ms").status == "ok"
        comparison = metric(judgement, "latency_p95_ms")
        assert comparison.change == pytest.approx(620 / 410)
        assert comparison.change_kind == "ratio"
        assert comparison.limit == "x1.20"
        assert comparison.limit_value == 1.2

    def test_p50_latency_rise(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", latency_ms=600.0))
        assert {r.metric for r in judgement.regressions} == {"latency_p50_ms", "latency_p95_ms"}

    def test_ttft_rise(self) -> None:
        stable = make_arm("stable", streamed=True, ttft_ms=200.0)
        candidate = make_arm("candidate", streamed=True, ttft_ms=400.0)
        judgement = judge(stable, candidate)
        (regression,) = judgement.regressions
        assert regression.metric == "ttft_p95_ms"
        assert regression.message == (
            "p95 time to first token rose from 200 ms to 400 ms (x2.00), above the x1.20 limit"
        )

    def test_cost_rise(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", cost_usd=0.0012))
        (regression,) = judgement.regressions
        assert regression.metric == "cost_per_call_usd"
        assert regression.message == (
            "cost per call rose from $0.001000 to $0.001200 (x1.20), above the x1.15 limit"
        )

    def test_cost_rise_from_zero(self) -> None:
        judgement = judge(make_arm("stable", cost_usd=0.0), make_arm("candidate"))
        comparison = metric(judgement, "cost_per_call_usd")
        assert comparison.status == "regressed"
        assert comparison.change is None
        assert comparison.message == (
            "cost per call rose from $0.000000 to $0.001000, above the x1.15 limit"
        )

    def test_free_on_both_arms_is_ok(self) -> None:
        judgement = judge(make_arm("stable", cost_usd=0.0), make_arm("candidate", cost_usd=0.0))
        comparison = metric(judgement, "cost_per_call_usd")
        assert (comparison.status, comparison.change) == ("ok", 1.0)

    def test_tokens_gated_only_when_a_limit_is_set(self) -> None:
        candidate = make_arm("candidate", usage=Usage(prompt_tokens=150, completion_tokens=30))
        ungated = judge(make_arm("stable"), candidate)
        assert ungated.verdict == "pass"
        comparison = metric(ungated, "tokens_per_call")
        assert comparison.status == "not_gated"
        assert comparison.limit is None
        assert comparison.message == "tokens per call rose from 120.0 to 180.0 (x1.50); not gated"

        gated = judge(make_arm("stable"), candidate, GateLimits(tokens_per_call_max_ratio=1.25))
        (regression,) = gated.regressions
        assert regression.message == (
            "tokens per call rose from 120.0 to 180.0 (x1.50), above the x1.25 limit"
        )

    def test_several_regressions_all_listed_in_metric_order(self) -> None:
        candidate = make_arm("candidate", failed=5, latency_ms=900.0, cost_usd=0.01)
        judgement = judge(make_arm("stable"), candidate)
        assert [r.metric for r in judgement.regressions] == [
            "pass_rate",
            "latency_p50_ms",
            "latency_p95_ms",
            "cost_per_call_usd",
        ]
        assert judgement.reasons == tuple(r.message for r in judgement.regressions)

    def test_a_limit_set_to_none_is_not_gated(self) -> None:
        limits = GateLimits(cost_per_call_max_ratio=None)
        judgement = judge(make_arm("stable"), make_arm("candidate", cost_usd=0.01), limits)
        assert judgement.verdict == "pass"
        assert metric(judgement, "cost_per_call_usd").status == "not_gated"


class TestBoundaries:
    """A candidate exactly at a limit is within it, float arithmetic notwithstanding."""

    def test_pass_rate_drop_of_exactly_two_points(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", failed=1))
        assert metric(judgement, "pass_rate").status == "ok"
        assert judgement.verdict == "pass"

    def test_error_rate_rise_of_exactly_one_point(self) -> None:
        # 1 failed attempt of 100.
        judgement = judge(make_arm("stable", 99), make_arm("candidate", 99, retried=1))
        comparison = metric(judgement, "error_rate")
        assert comparison.candidate == 0.01
        assert comparison.status == "ok"

    def test_fallback_rise_of_exactly_two_points(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", fallbacks=1))
        assert metric(judgement, "fallback_rate").status == "ok"

    def test_latency_ratio_of_exactly_the_limit(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", latency_ms=492.0))
        assert metric(judgement, "latency_p50_ms").status == "ok"
        assert metric(judgement, "latency_p95_ms").status == "ok"
        assert judgement.verdict == "pass"

    def test_cost_ratio_of_exactly_the_limit(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", cost_usd=0.00115))
        assert metric(judgement, "cost_per_call_usd").status == "ok"

    def test_ttft_ratio_of_exactly_the_limit(self) -> None:
        stable = make_arm("stable", streamed=True, ttft_ms=250.0)
        candidate = make_arm("candidate", streamed=True, ttft_ms=300.0)
        assert metric(judge(stable, candidate), "ttft_p95_ms").status == "ok"

    def test_just_over_the_limit_regresses(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", latency_ms=492.5))
        assert metric(judgement, "latency_p95_ms").status == "regressed"

    def test_zero_limit_tolerates_no_change_only(self) -> None:
        limits = GateLimits(pass_rate_max_drop=0.0)
        assert judge(make_arm("stable"), make_arm("candidate"), limits).verdict == "pass"
        assert judge(make_arm("stable"), make_arm("candidate", failed=1), limits).verdict == "fail"


class TestImproved:
    def test_faster_by_the_mirrored_margin_is_improved(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", latency_ms=300.0))
        comparison = metric(judgement, "latency_p95_ms")
        assert comparison.status == "improved"
        assert comparison.message == "p95 latency fell from 410 ms to 300 ms (x0.73): improved"
        assert judgement.verdict == "pass"

    def test_slightly_faster_is_ok(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate", latency_ms=380.0))
        comparison = metric(judgement, "latency_p95_ms")
        assert comparison.status == "ok"
        assert comparison.message == (
            "p95 latency fell from 410 ms to 380 ms (x0.93), within the x1.20 limit"
        )

    def test_higher_pass_rate_is_improved(self) -> None:
        judgement = judge(make_arm("stable", failed=5), make_arm("candidate"))
        comparison = metric(judgement, "pass_rate")
        assert comparison.status == "improved"
        assert comparison.change == pytest.approx(10.0)

    def test_lower_error_rate_is_improved(self) -> None:
        judgement = judge(make_arm("stable", retried=5), make_arm("candidate"))
        assert metric(judgement, "error_rate").status == "improved"

    def test_unchanged_is_ok(self) -> None:
        comparison = metric(judge(make_arm("stable"), make_arm("candidate")), "latency_p95_ms")
        assert comparison.status == "ok"
        assert comparison.message == "p95 latency unchanged at 410 ms, within the x1.20 limit"


class TestNoData:
    def test_no_streaming_on_either_arm_is_no_data_not_a_pass(self) -> None:
        judgement = judge(make_arm("stable"), make_arm("candidate"))
        comparison = metric(judgement, "ttft_p95_ms")
        assert comparison.status == "no_data"
        assert comparison.samples == Samples(0, 0)
        assert comparison.change is None
        assert comparison.message == "p95 time to first token has no data on either arm"
        assert judgement.verdict == "pass"

    def test_gated_metric_missing_on_the_candidate_only_is_inconclusive(self) -> None:
        stable = make_arm("stable", streamed=True, ttft_ms=200.0)
        judgement = judge(stable, make_arm("candidate"))
        assert judgement.verdict == "inconclusive"
        assert judgement.reasons == (
            "p95 time to first token has no data on the candidate arm, "
            "so the x1.20 limit cannot be checked",
        )
        assert metric(judgement, "ttft_p95_ms").status == "no_data"

    def test_gated_metric_missing_on_the_stable_only_is_inconclusive(self) -> None:
        # Issue 10 item 2: no data on an arm counts against, never for (it used to pass).
        candidate = make_arm("candidate", streamed=True, ttft_ms=200.0)
        judgement = judge(make_arm("stable"), candidate)
        assert metric(judgement, "ttft_p95_ms").status == "no_data"
        assert metric(judgement, "ttft_p95_ms").message == (
            "p95 time to first token has no data on the stable arm, "
            "so the x1.20 limit cannot be checked"
        )
        assert judgement.verdict == "inconclusive"

    def test_metric_missing_on_one_arm_without_a_limit_does_not_block(self) -> None:
        candidate = make_arm("candidate", streamed=True, ttft_ms=200.0)
        judgement = judge(make_arm("stable"), candidate, GateLimits(ttft_p95_max_ratio=None))
        assert metric(judgement, "ttft_p95_ms").message == (
            "p95 time to first token has no data on the stable arm"
        )
        assert judgement.verdict == "pass"

    def test_unknown_candidate_price_is_inconclusive(self) -> None:
        candidate = make_arm("candidate", 10, cost_usd=None)
        judgement = judge(make_arm("stable", 10), candidate)
        assert judgement.verdict == "inconclusive"
        comparison = metric(judgement, "cost_per_call_usd")
        assert comparison.status == "no_data"
        assert comparison.candidate is None
        assert judgement.reasons == (
            "cost per call is unknown on the candidate arm: 10 of 10 successful calls have "
            "no price, so the x1.15 limit cannot be checked",
        )

    def test_partly_unknown_candidate_price_is_inconclusive(self) -> None:
        candidate = make_arm("candidate", 10)
        candidate[0] = make_test(
            "candidate", "case000", calls=[make_call("candidate", "case000", cost_usd=None)]
        )
        judgement = judge(make_arm("stable", 10), candidate)
        assert judgement.verdict == "inconclusive"
        assert "1 of 10 successful calls have no price" in judgement.reasons[0]

    def test_streams_without_usage_are_not_called_a_missing_price(self) -> None:
        # The real server: streamed calls carry no usage, though a price is configured.
        candidate = make_arm("candidate", 10, streamed=True, usage=None, cost_usd=None)
        judgement = judge(make_arm("stable", 10), candidate)
        assert judgement.verdict == "inconclusive"
        assert judgement.reasons == (
            "cost per call is unknown on the candidate arm: 10 of 10 successful calls have no "
            "cost (10 reported no usage, 10 of them streams: the server did not honour "
            "stream_options.include_usage), so the x1.15 limit cannot be checked",
        )
        assert judgement.candidate is not None
        assert judgement.candidate.usage_missing_streamed_calls == 10

    def test_unknown_price_on_both_arms_is_still_inconclusive(self) -> None:
        judgement = judge(make_arm("stable", cost_usd=None), make_arm("candidate", cost_usd=None))
        assert judgement.verdict == "inconclusive"

    def test_unknown_candidate_price_without_a_cost_limit_passes(self) -> None:
        limits = GateLimits(cost_per_call_max_ratio=None)
        judgement = judge(make_arm("stable"), make_arm("candidate", cost_usd=None), limits)
        assert judgement.verdict == "pass"
        assert metric(judgement, "cost_per_call_usd").status == "no_data"

    def test_regression_wins_over_inconclusive_and_keeps_both_reasons(self) -> None:
        candidate = make_arm("candidate", failed=10, cost_usd=None)
        judgement = judge(make_arm("stable"), candidate)
        assert judgement.verdict == "fail"
        assert len(judgement.reasons) == 2
        assert judgement.reasons[0].startswith("pass rate fell")
        assert judgement.reasons[1].startswith("cost per call is unknown")


class TestArms:
    def test_no_candidate_is_a_smoke_run_that_passes(self) -> None:
        stable = make_arm("stable", 3)
        stable.append(make_test("stable", "skipped-case", outcome="skipped", calls=[]))
        judgement = judge(stable, None)
        assert judgement.verdict == "pass"
        assert judgement.candidate is None
        assert judgement.reasons == (
            "stable-only run: no test failed (3 passed, 0 failed, 0 errors, 1 skipped)",
        )
        assert all(m.status == "not_gated" for m in judgement.metrics)
        assert all(m.candidate is None and m.change is None for m in judgement.metrics)
        assert metric(judgement, "latency_p95_ms").stable == 410.0
        assert metric(judgement, "latency_p95_ms").samples == Samples(3, None)
        assert judgement.cases_failed_both == ()

    def test_no_candidate_with_a_failed_test_fails(self) -> None:
        stable = make_arm("stable", 4, failed=1)
        stable.append(make_test("stable", "broken", outcome="error"))
        judgement = judge(stable, None)
        assert judgement.verdict == "fail"
        assert judgement.regressions == ()
        assert judgement.reasons == (
            "stable-only run: 2 of 5 tests failed (3 passed, 1 failed, 1 error, 0 skipped)",
        )

    def test_candidate_that_made_no_calls_is_an_error(self) -> None:
        candidate = [
            make_test("candidate", f"case{i:03d}", outcome="failed", calls=[]) for i in range(5)
        ]
        judgement = judge(make_arm("stable", 5), candidate)
        assert judgement.verdict == "error"
        assert judgement.reasons == ("the candidate arm made no calls",)
        assert judgement.regressions == ()
        assert judgement.candidate is not None
        assert judgement.candidate.attempts == 0

    def test_candidate_whose_every_call_failed_is_an_error(self) -> None:
        # Issue 10 item 2: 402 on every candidate call used to pass on latency and cost no_data.
        candidate = make_arm(
            "candidate", 5, failed=5, status=402, error_kind="quota", latency_ms=None
        )
        judgement = judge(make_arm("stable", 5), candidate)
        assert judgement.verdict == "error"
        assert judgement.reasons == (
            "no call on the candidate arm succeeded: all 5 attempts failed (quota x5), "
            "so there is nothing to compare",
        )
        assert judgement.regressions == ()

    def test_stable_arm_whose_every_call_failed_is_an_error(self) -> None:
        stable = make_arm("stable", 4, failed=4, status=500, error_kind="server_error")
        judgement = judge(stable, make_arm("candidate", 4))
        assert judgement.verdict == "error"
        assert judgement.reasons[0].startswith("no call on the stable arm succeeded: all 4")

    def test_stable_arm_below_the_pass_rate_floor_is_an_error(self) -> None:
        # Issue 10 item 7: 0% -> 0% is "no change", and used to pass.
        judgement = judge(make_arm("stable", 10, failed=10), make_arm("candidate", 10, failed=10))
        assert judgement.verdict == "error"
        assert judgement.reasons[0].startswith(
            "the stable arm passed only 0 of 10 tests (0.0%), below the 50% floor"
        )
        off = GateLimits(min_stable_pass_rate=None)
        judged = judge(make_arm("stable", 10, failed=10), make_arm("candidate", 10, failed=10), off)
        assert judged.verdict == "pass"

    def test_empty_candidate_arm_is_an_error(self) -> None:
        assert judge(make_arm("stable", 5), []).verdict == "error"

    def test_stable_arm_that_made_no_calls_is_an_error(self) -> None:
        # `-k candidate` deselects every stable item: nothing to compare the candidate with.
        judgement = judge([], make_arm("candidate", 5))
        assert judgement.verdict == "error"
        assert judgement.reasons == ("the stable arm made no calls",)

    def test_no_gated_metric_with_data_is_never_a_pass(self) -> None:
        # Every limit switched off: all metrics are "not_gated", so nothing was judged.
        off = GateLimits(
            pass_rate_max_drop=None,
            error_rate_max_rise=None,
            fallback_rate_max_rise=None,
            latency_p50_max_ratio=None,
            latency_p95_max_ratio=None,
            ttft_p95_max_ratio=None,
            cost_per_call_max_ratio=None,
        )
        judgement = judge(make_arm("stable", 5), make_arm("candidate", 5), off)
        assert judgement.verdict == "inconclusive"
        assert "nothing was compared" in judgement.reasons[0]


class TestCases:
    def test_cases_failed_on_both_arms_do_not_fail_the_run(self) -> None:
        judgement = judge(make_arm("stable", failed=3), make_arm("candidate", failed=3))
        assert judgement.verdict == "pass"
        assert judgement.cases_failed_both == (
            CaseRef("case000", 0),
            CaseRef("case001", 0),
            CaseRef("case002", 0),
        )
        assert judgement.cases_failed_candidate_only == ()
        assert judgement.cases_failed_stable_only == ()

    def test_pairs_by_case_and_repeat(self) -> None:
        stable = [
            make_test("stable", "a", outcome="failed"),
            make_test("stable", "a", repeat=1),
            make_test("stable", "b", outcome="error"),
            make_test("stable", "c"),
        ]
        candidate = [
            make_test("candidate", "a", outcome="failed"),
            make_test("candidate", "a", repeat=1, outcome="failed"),
            make_test("candidate", "b"),
            make_test("candidate", "c", outcome="skipped", calls=[]),
        ]
        judgement = judge(stable, candidate)
        assert judgement.cases_failed_both == (CaseRef("a", 0),)
        assert judgement.cases_failed_candidate_only == (CaseRef("a", 1),)
        assert judgement.cases_failed_stable_only == (CaseRef("b", 0),)


def test_same_records_same_judgement_in_any_order() -> None:
    stable = make_arm("stable", failed=2, fallbacks=3, retried=1, streamed=True, ttft_ms=150.0)
    latencies = [300.0 + 7 * i for i in range(50)]
    candidate = make_arm(
        "candidate", failed=4, latencies=latencies, streamed=True, ttft_ms=170.0, retried=2
    )
    first = judge(stable, candidate)
    shuffled_stable, shuffled_candidate = list(stable), list(candidate)
    rng = random.Random(7)
    rng.shuffle(shuffled_stable)
    rng.shuffle(shuffled_candidate)
    assert judge(shuffled_stable, shuffled_candidate) == first
    assert judge(stable, candidate) == first
