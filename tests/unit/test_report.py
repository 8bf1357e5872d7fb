"""Unit tests of the human summary printed from a verdict dict."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, ModelIdentity, TestRecord, Usage
from pytest_modelgate.config.settings import GateLimits
from pytest_modelgate.judge.model import FixedLimitJudge, RunData
from pytest_modelgate.verdict.model import build_verdict, error_verdict, validate_verdict
from pytest_modelgate.verdict.reports.terminal import (
    comparison_headers,
    comparison_rows,
    summary_lines,
)

PATH = "out/modelgate-verdict.json"
MOMENT = datetime(2025, 11, 25, 22, 18, tzinfo=timezone.utc)
COMMON: dict[str, Any] = {
    "run_id": "0" * 32,
    "mode": "replay",
    "repeat": 1,
    "started_at": MOMENT,
    "finished_at": MOMENT,
    "plugin_version": "0.1.0",
}


def make_arm(
    arm: str, n: int = 10, *, failed: Sequence[int] = (), **call_fields: Any
) -> list[TestRecord]:
    records = []
    for i in range(n):
        fields: dict[str, Any] = {
            "test_id": f"test_flow[case{i}-{arm}]",
            "case_id": f"case{i}",
            "arm": arm,
            "model": f"{arm}-model",
            "call_index": 0,
            "started_at": 1_700_000_000.0,
            "latency_ms": 410.0,
            "usage": Usage(prompt_tokens=100, completion_tokens=20),
            "cost_usd": 0.000125,
        }
        fields.update(call_fields)
        records.append(
            TestRecord(
                test_id=fields["test_id"],
                case_id=fields["case_id"],
                workflow="flow",
                arm=arm,  # type: ignore[arg-type]
                model=fields["model"],
                outcome="failed" if i in failed else "passed",
                calls=(CallRecord(**fields),),
            )
        )
    return records


def verdict(
    stable: Sequence[TestRecord] | None = None,
    candidate: Sequence[TestRecord] | None = None,
    *,
    stable_only: bool = False,
    strict: bool = False,
    complete: bool = True,
) -> dict[str, Any]:
    run = RunData(
        stable=make_arm("stable") if stable is None else stable,
        candidate=None
        if stable_only
        else (make_arm("candidate") if candidate is None else candidate),
    )
    judgement = FixedLimitJudge(GateLimits()).judge(run)
    data = build_verdict(
        judgement,
        stable=ModelIdentity(model="deepseek-chat"),
        candidate=None if stable_only else ModelIdentity(model="qwen-max"),
        strict=strict,
        exit_status=0,
        complete=complete,
        **COMMON,
    )
    validate_verdict(data)
    return data


def test_comparison_rows_format_values_for_people() -> None:
    candidate = make_arm("candidate", failed=[0], latency_ms=620.0, cost_usd=0.00015)
    data = verdict(candidate=candidate)
    assert comparison_headers(data) == [
        "metric",
        "stable",
        "candidate",
        "change",
        "limit",
        "status",
    ]
    rows = {row[0]: row for row in comparison_rows(data)}
    assert list(rows) == [
        "pass rate",
        "error rate",
        "fallback rate",
        "p50 latency",
        "p95 latency",
        "p95 time to first token",
        "cost per call",
        "tokens per call",
    ]
    assert rows["pass rate"] == [
        "pass rate",
        "100.0% (n=10 tests)",
        "90.0% (n=10 tests)",
        "-10.0 pts",
        "-2.0 pts",
        "REGRESSED",
    ]
    assert rows["p95 latency"] == [
        "p95 latency",
        "410 ms (n=10 calls)",
        "620 ms (n=10 calls)",
        "x1.51",
        "x1.20",
        "REGRESSED",
    ]
    assert rows["cost per call"][1:] == [
        "$0.000125 (n=10 calls)",
        "$0.000150 (n=10 calls)",
        "x1.20",
        "x1.15",
        "REGRESSED",
    ]
    assert rows["p95 time to first token"][1:] == ["-", "-", "-", "x1.20", "no data"]
    assert rows["tokens per call"][1:] == [
        "120.0 (n=10 calls)",
        "120.0 (n=10 calls)",
        "x1.00",
        "-",
        "not gated",
    ]
    assert rows["error rate"][3:] == ["+0.0 pts", "+1.0 pts", "ok"]


def test_rows_name_hook_added_metrics_by_their_key() -> None:
    data = verdict()
    data["metrics"]["json_valid_rate"] = {
        **data["metrics"]["pass_rate"],
        "status": "improved",
    }
    row = comparison_rows(data)[-1]
    assert row[0] == "json_valid_rate"
    assert row[-1] == "improved"


def test_pass_summary() -> None:
    lines = summary_lines(verdict(), verdict_path=PATH)
    assert lines[0].startswith("| metric")
    assert any(line.startswith("| p95 latency ") for line in lines)
    assert lines[-2] == "modelgate verdict: PASS (stable deepseek-chat vs candidate qwen-max)"
    assert lines[-1] == f"verdict written to {PATH}"
    assert not any(line.startswith("regression:") for line in lines)


def test_fail_summary_lists_each_regression() -> None:
    candidate = make_arm("candidate", latency_ms=620.0)
    lines = summary_lines(verdict(candidate=candidate), verdict_path=Path(PATH))
    p95 = "p95 latency rose from 410 ms to 620 ms (x1.51), above the x1.20 limit"
    p50 = "p50 latency rose from 410 ms to 620 ms (x1.51), above the x1.20 limit"
    assert f"regression: {p95}" in lines
    assert f"regression: {p50}" in lines
    # A regression's reason is printed once, as a regression.
    assert sum("p95 latency rose" in line for line in lines) == 1
    assert lines[-2] == "modelgate verdict: FAIL (stable deepseek-chat vs candidate qwen-max)"
    assert lines[-1] == f"verdict written to {Path(PATH)}"


def test_cases_failed_on_both_arms_are_called_out() -> None:
    data = verdict(make_arm("stable", failed=[1, 2, 3]), make_arm("candidate", failed=[1, 2, 3]))
    assert data["verdict"] == "pass"
    lines = summary_lines(data, verdict_path=PATH)
    assert (
        "3 cases failed on both arms: not a regression; --modelgate-strict fails on them "
        "(case1, case2, case3)"
    ) in lines


def test_cases_failed_on_both_arms_under_strict() -> None:
    data = verdict(make_arm("stable", failed=[1]), make_arm("candidate", failed=[1]), strict=True)
    lines = summary_lines(data, verdict_path=PATH)
    assert (
        "1 case failed on both arms: not a regression, but --modelgate-strict fails on them (case1)"
    ) in lines


def test_long_case_lists_are_cut() -> None:
    failing = list(range(8))
    data = verdict(make_arm("stable"), make_arm("candidate", failed=failing))
    lines = summary_lines(data, verdict_path=PATH)
    assert (
        "8 cases failed on the candidate only: case0, case1, case2, case3, case4 and 3 more"
        in lines
    )


def test_inconclusive_reasons_are_shown() -> None:
    data = verdict(candidate=make_arm("candidate", cost_usd=None), complete=False)
    lines = summary_lines(data, verdict_path=PATH)
    assert (
        "inconclusive: cost per call is unknown on the candidate arm: 10 of 10 successful calls "
        "have no price, so the x1.15 limit cannot be checked"
    ) in lines
    assert "this verdict is incomplete: the run was interrupted or is still going" in lines
    assert lines[-2] == (
        "modelgate verdict: INCONCLUSIVE (stable deepseek-chat vs candidate qwen-max)"
    )


def test_stable_only_summary_has_two_columns() -> None:
    data = verdict(make_arm("stable", failed=[0]), stable_only=True)
    assert comparison_headers(data) == ["metric", "stable"]
    assert all(len(row) == 2 for row in comparison_rows(data))
    lines = summary_lines(data, verdict_path=PATH)
    assert [cell.strip() for cell in lines[0].split("|")[1:-1]] == ["metric", "stable"]
    assert (
        "note: stable-only run: 1 of 10 tests failed (9 passed, 1 failed, 0 errors, 0 skipped)"
        in lines
    )
    assert lines[-2] == "modelgate verdict: FAIL (stable-only run of deepseek-chat)"


def test_error_summary_puts_the_reason_first() -> None:
    data = error_verdict(
        "pytest-xdist worker gw1 crashed: the verdict would be incomplete",
        stable=ModelIdentity(model="deepseek-chat"),
        candidate=ModelIdentity(model="qwen-max"),
        strict=False,
        exit_status=3,
        complete=False,
        **COMMON,
    )
    lines = summary_lines(data, verdict_path=PATH)
    assert lines[0] == (
        "modelgate ERROR: pytest-xdist worker gw1 crashed: the verdict would be incomplete"
    )
    assert not any(line.startswith("|") for line in lines)
    assert sum("worker gw1 crashed" in line for line in lines) == 1
    assert lines[-2] == "modelgate verdict: ERROR (stable deepseek-chat vs candidate qwen-max)"


def test_error_summary_without_models() -> None:
    data = error_verdict(
        "no stable model configured",
        stable=None,
        candidate=None,
        strict=False,
        exit_status=3,
        **COMMON,
    )
    lines = summary_lines(data, verdict_path=PATH)
    assert lines == [
        "modelgate ERROR: no stable model configured",
        "modelgate verdict: ERROR (models unknown)",
        f"verdict written to {PATH}",
    ]


def test_hook_added_reasons_are_shown_as_notes() -> None:
    data = verdict()
    data["reasons"].append("commit abc123")
    assert "note: commit abc123" in summary_lines(data, verdict_path=PATH)


def test_replayed_latency_is_said_and_the_timing_validates() -> None:
    data = verdict(make_arm("stable"), make_arm("candidate"))
    assert not any(line.startswith("latency:") for line in summary_lines(data, verdict_path="v"))
    for name in ("latency_p50_ms", "latency_p95_ms", "ttft_p95_ms"):
        data["metrics"][name]["timing"] = {"stable": "recorded", "candidate": "recorded"}
    validate_verdict(data)
    lines = summary_lines(data, verdict_path="v")
    assert "latency: replayed from recordings, as measured when they were recorded" in lines
    data["metrics"]["latency_p95_ms"]["timing"] = {"stable": "live", "candidate": "recorded"}
    assert any("mixed sources" in line for line in summary_lines(data, verdict_path="v"))
    data["metrics"]["latency_p95_ms"]["timing"] = {"stable": "guessed", "candidate": None}
    with pytest.raises(ValueError, match="timing"):
        validate_verdict(data)


def _with_rollout(rollout: dict[str, Any]) -> dict[str, Any]:
    data = verdict()
    data["rollout"] = rollout
    validate_verdict(data)
    return data


def _rollout(plan: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "allowed": bool(plan),
        "reason": "why",
        "plan": plan,
        "rollback_triggers": [
            {"metric": "error_rate", "op": ">", "threshold": 0.01, "unit": "rate", "basis": "b"}
        ],
        "kill_switch": {
            "action": "route 100% of traffic to the stable model",
            "route_to": "deepseek-chat",
            "weights": {"stable": 100, "candidate": 0},
            "when": "any rollback trigger fires, or by hand",
        },
        **extra,
    }


def test_a_shadow_only_rollout_says_the_candidate_serves_nothing() -> None:
    # Issue 10 item 11: an inconclusive verdict allows shadow traffic only.
    shadow = [{"phase": "shadow", "traffic_percent": 0, "min_requests": 400}]
    left_out = [{"metric": "ttft_p95_ms", "reason": "its figure was not gated: ..."}]
    lines = summary_lines(
        _with_rollout(_rollout(shadow, triggers_left_out=left_out)), verdict_path=PATH
    )
    assert (
        "rollout: shadow only: mirror at least 400 requests, the candidate serves no traffic "
        "until the gate passes"
    ) in lines
    assert "rollback if: error_rate > 1.0%" in lines
    assert (
        "no rollback trigger from: ttft_p95_ms (too little data or out of range; see "
        "rollout.triggers_left_out)"
    ) in lines


def test_a_canary_rollout_lists_its_steps_and_a_verdict_without_left_out_triggers_reads() -> None:
    canary = [{"phase": "canary", "traffic_percent": p, "min_requests": 200} for p in (5, 100)]
    lines = summary_lines(_with_rollout(_rollout(canary)), verdict_path=PATH)
    assert "rollout: 5% -> 100% (at least 200 requests per step)" in lines
    assert not [line for line in lines if line.startswith("no rollback trigger")]
