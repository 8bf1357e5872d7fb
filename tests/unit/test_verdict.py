"""Unit tests of the verdict file: building, schema validation, atomic writing."""

from __future__ import annotations

import copy
import json
import math
import os
import pickle
import stat
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from pytest_modelgate.calls.records import CallRecord, ModelIdentity, TestRecord, Usage
from pytest_modelgate.config.settings import GateLimits
from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.judge.model import FixedLimitJudge, Judgement, RunData
from pytest_modelgate.judge.paired import Margins, PairedJudge
from pytest_modelgate.verdict.model import (
    SCHEMA_VERSION,
    VerdictValidationError,
    build_verdict,
    dump_verdict,
    error_verdict,
    load_schema,
    read_verdict,
    validate_verdict,
    write_verdict_atomic,
)

RUN_ID = uuid.UUID(int=0x1234).hex
STARTED = datetime(2025, 11, 25, 22, 18, 3, 120_000, tzinfo=timezone.utc)
FINISHED = STARTED + timedelta(minutes=2)
STABLE = ModelIdentity(
    model="deepseek-chat", provider="deepseek", base_url="https://api.deepseek.com"
)
CANDIDATE = ModelIdentity(model="qwen-max", provider="dashscope", base_url=None)


def make_test(
    arm: str, case: str, *, outcome: str = "passed", workflow: str = "flow", **call_fields: Any
) -> TestRecord:
    fields: dict[str, Any] = {
        "test_id": f"test_flow[{case}-{arm}]",
        "case_id": case,
        "arm": arm,
        "model": f"{arm}-model",
        "call_index": 0,
        "started_at": 1_700_000_000.0,
        "latency_ms": 410.123456,
        "status": 200,
        "usage": Usage(prompt_tokens=100, completion_tokens=21),
        "cost_usd": 0.000123456789123,
    }
    fields.update(call_fields)
    return TestRecord(
        test_id=fields["test_id"],
        case_id=case,
        workflow=workflow,
        arm=arm,  # type: ignore[arg-type]
        model=fields["model"],
        outcome=outcome,  # type: ignore[arg-type]
        calls=(CallRecord(**fields),),
    )


def make_arm(
    arm: str,
    n: int = 10,
    *,
    failed: int = 0,
    workflows: Sequence[str] = ("flow",),
    **call_fields: Any,
) -> list[TestRecord]:
    """``n`` cases, the first ``failed`` of them failing, dealt to ``workflows`` in turn."""
    return [
        make_test(
            arm,
            f"case{i}",
            outcome="failed" if i < failed else "passed",
            workflow=workflows[i % len(workflows)],
            **call_fields,
        )
        for i in range(n)
    ]


def judged(
    stable: Sequence[TestRecord] | None = None,
    candidate: Sequence[TestRecord] | None = None,
    *,
    stable_only: bool = False,
) -> Judgement:
    run = RunData(
        stable=make_arm("stable") if stable is None else stable,
        candidate=None
        if stable_only
        else (make_arm("candidate") if candidate is None else candidate),
    )
    return FixedLimitJudge(GateLimits()).judge(run)


# Margins that 20 identical paired cases can show non-inferiority within (the default two-point
# pass-rate margin would need about 190 cases), so that the paired judge says `pass`.
WIDE = Margins(pass_rate=0.5, error_rate=0.5, fallback_rate=0.5)


def paired(
    stable: Sequence[TestRecord] | None = None,
    candidate: Sequence[TestRecord] | None = None,
    *,
    margins: Margins | None = None,
    min_cases: int = 20,
) -> Judgement:
    """The built-in paired statistical judge's judgement of the two arms."""
    run = RunData(
        stable=make_arm("stable") if stable is None else stable,
        candidate=make_arm("candidate") if candidate is None else candidate,
    )
    return PairedJudge(margins, min_cases=min_cases).judge(run)


def two_workflows(*, margins: Margins | None = WIDE) -> Judgement:
    """20 identical cases in workflows ``orders`` and ``refunds``, 10 each: sliced and gated."""
    flows = ("orders", "refunds")
    return paired(
        make_arm("stable", 20, workflows=flows),
        make_arm("candidate", 20, workflows=flows),
        margins=margins,
        min_cases=10,
    )


def verdict_for(judgement: Judgement, **overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "run_id": RUN_ID,
        "stable": STABLE,
        "candidate": None if judgement.candidate is None else CANDIDATE,
        "mode": "replay",
        "repeat": 1,
        "strict": False,
        "started_at": STARTED,
        "finished_at": FINISHED,
        "exit_status": 0,
        "plugin_version": "0.1.0",
    }
    kwargs.update(overrides)
    return build_verdict(judgement, **kwargs)


def an_error_verdict(**overrides: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "run_id": RUN_ID,
        "stable": None,
        "candidate": None,
        "mode": "live",
        "repeat": 1,
        "strict": False,
        "started_at": STARTED,
        "finished_at": FINISHED,
        "exit_status": 3,
        "plugin_version": "0.1.0",
    }
    kwargs.update(overrides)
    return error_verdict("a worker crashed", **kwargs)


class TestSchema:
    def test_shipped_schema_is_a_valid_draft_2020_12_schema(self) -> None:
        schema = load_schema()
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)

    def test_load_schema_returns_a_fresh_copy(self) -> None:
        load_schema()["properties"].clear()
        assert "verdict" in load_schema()["properties"]


class TestBuild:
    def test_pass_verdict_is_valid_and_in_reading_order(self) -> None:
        data = verdict_for(judged())
        validate_verdict(data)
        assert list(data) == [
            "schema_version",
            "run_id",
            "verdict",
            "kind",
            "complete",
            "reasons",
            "stable",
            "candidate",
            "mode",
            "repeat",
            "strict",
            "regressions",
            "metrics",
            "tests",
            "exit_status",
            "started_at",
            "finished_at",
            "provenance",
            "plugin_version",
            "records_file",
            "slices",
            "rollout",
        ]
        assert data["schema_version"] == SCHEMA_VERSION == "2"
        assert data["verdict"] == "pass"
        assert data["complete"] is True
        assert data["stable"] == {
            "model": "deepseek-chat",
            "provider": "deepseek",
            "base_url": "https://api.deepseek.com",
        }
        assert data["candidate"] == {"model": "qwen-max", "provider": "dashscope", "base_url": None}
        assert data["started_at"] == "2025-11-25T22:18:03.120Z"
        assert data["finished_at"] == "2025-11-25T22:20:03.120Z"

    def test_metric_entries(self) -> None:
        # The fixed-limit judge gives no statistical evidence: those fields are null, not absent.
        data = verdict_for(judged())
        validate_verdict(data)
        assert list(data["metrics"])[:2] == ["pass_rate", "error_rate"]
        assert data["metrics"]["latency_p95_ms"] == {
            "unit": "ms",
            "stable": 410.1,
            "candidate": 410.1,
            "change": 1.0,
            "change_kind": "ratio",
            "limit": "x1.20",
            "limit_value": 1.2,
            "status": "ok",
            "samples": {"stable": 10, "candidate": 10},
            "message": "p95 latency unchanged at 410 ms, within the x1.20 limit",
            "scope": "overall",
            "n": None,
            "stable_interval": None,
            "candidate_interval": None,
            "change_interval": None,
            "test": None,
            "p_value": None,
            "p_adjusted": None,
            "min_detectable_change": None,
            "cases_needed": None,
            "repeats_needed": None,
        }
        assert data["metrics"]["pass_rate"]["limit_value"] == -2.0
        assert data["metrics"]["ttft_p95_ms"]["status"] == "no_data"
        # Without statistics there is nothing to slice and no rollout to plan.
        assert (data["slices"], data["rollout"]) == ({}, None)

    def test_metric_fields_follow_the_schema_order(self) -> None:
        data = verdict_for(paired())
        required = load_schema()["$defs"]["metric"]["required"]
        assert all(list(metric) == required for metric in data["metrics"].values())

    def test_paired_metric_entry_carries_the_evidence(self) -> None:
        # 10 identical cases: 10/10 passes on each arm, no discordant pair.
        data = verdict_for(paired())
        validate_verdict(data)
        assert data["verdict"] == "inconclusive"
        pass_rate = data["metrics"]["pass_rate"]
        assert pass_rate["scope"] == "overall"
        assert pass_rate["n"] == 10
        assert pass_rate["status"] == "inconclusive"
        assert (pass_rate["stable"], pass_rate["candidate"], pass_rate["change"]) == (1.0, 1.0, 0.0)
        # Wilson 95% for 10/10, rounded like the rate (6 decimals) ...
        assert pass_rate["stable_interval"] == [0.722467, 1.0]
        assert pass_rate["candidate_interval"] == [0.722467, 1.0]
        # ... and Newcombe's interval of the change, in points like the change (3 decimals).
        assert pass_rate["change_interval"] == [-27.753, 27.753]
        assert pass_rate["test"] == "mcnemar_mid_p+newcombe"
        assert (pass_rate["p_value"], pass_rate["p_adjusted"]) == (1.0, 1.0)
        # Points, like the change: half the interval is 27.8 points, so more than that.
        assert 27.753 < pass_rate["min_detectable_change"] < 100
        assert isinstance(pass_rate["cases_needed"], int)
        assert pass_rate["cases_needed"] > 10
        latency = data["metrics"]["latency_p95_ms"]
        # A p95 over fewer than 100 calls per arm is reported with its interval, not gated.
        assert (latency["status"], latency["change_interval"]) == ("not_gated", [1.0, 1.0])
        assert latency["test"] == "paired_bootstrap"
        # Only inconclusive comparisons say how many cases would decide them.
        assert latency["cases_needed"] is None

    def test_slices_and_rollout_of_a_pass(self) -> None:
        data = verdict_for(two_workflows())
        validate_verdict(data)
        assert data["verdict"] == "pass"
        assert list(data["slices"]) == ["workflow:orders", "workflow:refunds"]
        for scope, metrics in data["slices"].items():
            assert metrics["pass_rate"]["status"] == "ok"
            assert {m["scope"] for m in metrics.values()} == {scope}
            assert {m["n"] for m in metrics.values()} == {10}
        # Overall comparisons stay in `metrics`, slices hold only their own scope.
        assert {m["scope"] for m in data["metrics"].values()} == {"overall"}
        assert data["metrics"]["pass_rate"]["n"] == 20
        rollout = data["rollout"]
        assert rollout["allowed"] is True
        assert [(s["phase"], s["traffic_percent"]) for s in rollout["plan"]] == [
            ("canary", 5),
            ("canary", 25),
            ("canary", 50),
            ("canary", 100),
        ]
        assert {"metric": "error_rate", "op": ">", "threshold": 0.5, "unit": "rate"}.items() <= (
            rollout["rollback_triggers"][0].items()
        )
        assert rollout["kill_switch"]["weights"] == {"stable": 100, "candidate": 0}

    def test_rollout_of_an_inconclusive_verdict_is_shadow_only(self) -> None:
        data = verdict_for(paired())
        validate_verdict(data)
        assert data["verdict"] == "inconclusive"
        plan = data["rollout"]["plan"]
        # Issue 10 item 11: shadow traffic only, no canary steps after it.
        assert [(s["phase"], s["traffic_percent"]) for s in plan] == [("shadow", 0)]
        assert data["rollout"]["allowed"] is True

    def test_rollout_of_a_fail_allows_nothing(self) -> None:
        candidate = make_arm("candidate", 20, latency_ms=999.96)
        data = verdict_for(paired(make_arm("stable", 20), candidate, margins=WIDE), exit_status=1)
        validate_verdict(data)
        assert data["verdict"] == "fail"
        # p95 over 20 calls is reported, not gated: only the median decides.
        assert [r["metric"] for r in data["regressions"]] == ["latency_p50_ms"]
        assert (data["rollout"]["allowed"], data["rollout"]["plan"]) == (False, [])

    def test_nan_intervals_are_written_as_null(self) -> None:
        judgement = two_workflows()
        nan, inf = math.nan, math.inf
        broken = {
            ("pass_rate", "overall"): {
                "stable_interval": (nan, 0.5),
                "candidate_interval": (0.25, inf),
                "change_interval": (nan, nan),
                "p_value": nan,
            },
            ("latency_p95_ms", "workflow:orders"): {"change_interval": (-inf, nan)},
        }
        metrics = tuple(replace(c, **broken.get((c.name, c.scope), {})) for c in judgement.metrics)
        data = verdict_for(replace(judgement, metrics=metrics))
        validate_verdict(data)
        pass_rate = data["metrics"]["pass_rate"]
        assert pass_rate["stable_interval"] == [None, 0.5]
        assert pass_rate["candidate_interval"] == [0.25, None]
        assert pass_rate["change_interval"] == [None, None]
        assert pass_rate["p_value"] is None
        sliced = data["slices"]["workflow:orders"]["latency_p95_ms"]
        assert sliced["change_interval"] == [None, None]
        # NaN is not JSON: the file holds null, and dump_verdict would raise on anything else.
        written = json.loads(dump_verdict(data))
        assert written["metrics"]["pass_rate"]["change_interval"] == [None, None]
        assert "NaN" not in dump_verdict(data)

    def test_floats_are_rounded_for_reading(self) -> None:
        candidate = make_arm("candidate", failed=1, cost_usd=0.000987654321987)
        data = verdict_for(judged(candidate=candidate))
        cost = data["metrics"]["cost_per_call_usd"]
        assert cost["stable"] == 0.00012345679  # 8 significant digits
        assert cost["candidate"] == 0.00098765432
        assert cost["change"] == 8.0
        pass_rate = data["metrics"]["pass_rate"]
        assert (pass_rate["candidate"], pass_rate["change"]) == (0.9, -10.0)
        assert data["metrics"]["tokens_per_call"]["stable"] == 121.0

    def test_fail_verdict_lists_regressions(self) -> None:
        candidate = make_arm("candidate", latency_ms=999.96)
        data = verdict_for(judged(candidate=candidate), exit_status=1)
        validate_verdict(data)
        assert data["verdict"] == "fail"
        assert [r["metric"] for r in data["regressions"]] == ["latency_p50_ms", "latency_p95_ms"]
        assert data["regressions"][1] == {
            "metric": "latency_p95_ms",
            "scope": "overall",
            "stable": 410.1,
            "candidate": 1000.0,
            "limit": "x1.20",
            "message": "p95 latency rose from 410 ms to 1,000 ms (x2.44), above the x1.20 limit",
        }
        assert data["reasons"] == [r["message"] for r in data["regressions"]]
        assert data["exit_status"] == 1

    def test_tests_section_pairs_cases(self) -> None:
        stable = make_arm("stable", failed=2)
        candidate = make_arm("candidate", failed=1)
        data = verdict_for(judged(stable, candidate))
        validate_verdict(data)
        assert data["tests"] == {
            "stable": {"passed": 8, "failed": 2, "skipped": 0, "error": 0},
            "candidate": {"passed": 9, "failed": 1, "skipped": 0, "error": 0},
            "cases_failed_both": [{"case_id": "case0", "repeat": 0}],
            "cases_failed_candidate_only": [],
            "cases_failed_stable_only": [{"case_id": "case1", "repeat": 0}],
        }

    def test_stable_only_verdict(self) -> None:
        data = verdict_for(judged(stable_only=True))
        validate_verdict(data)
        assert data["candidate"] is None
        assert data["tests"]["candidate"] is None
        assert data["metrics"]["pass_rate"]["samples"] == {"stable": 10, "candidate": None}
        assert all(m["status"] == "not_gated" for m in data["metrics"].values())
        assert data["rollout"] is None

    def test_paired_stable_only_verdict_has_no_rollout(self) -> None:
        run = RunData(stable=make_arm("stable"), candidate=None)
        data = verdict_for(PairedJudge().judge(run))
        validate_verdict(data)
        assert data["candidate"] is None
        assert (data["slices"], data["rollout"]) == ({}, None)

    def test_inconclusive_and_incomplete(self) -> None:
        candidate = make_arm("candidate", cost_usd=None)
        data = verdict_for(judged(candidate=candidate), complete=False)
        validate_verdict(data)
        assert data["verdict"] == "inconclusive"
        assert data["complete"] is False
        assert data["metrics"]["cost_per_call_usd"]["candidate"] is None

    def test_epoch_seconds_are_accepted(self) -> None:
        data = verdict_for(judged(), started_at=0.0, finished_at=1.5)
        assert (data["started_at"], data["finished_at"]) == (
            "1970-01-01T00:00:00.000Z",
            "1970-01-01T00:00:01.500Z",
        )

    def test_other_time_zones_are_converted_to_utc(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        data = verdict_for(judged(), started_at=datetime(2025, 1, 1, 2, 0, tzinfo=plus_two))
        assert data["started_at"] == "2025-01-01T00:00:00.000Z"

    def test_naive_datetime_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no time zone"):
            verdict_for(judged(), started_at=datetime(2025, 1, 1))

    def test_non_finite_numbers_become_null(self) -> None:
        stable = make_arm("stable", latency_ms=float("inf"))
        data = verdict_for(judged(stable=stable))
        assert data["metrics"]["latency_p50_ms"]["stable"] is None
        dump_verdict(data)  # would raise on Infinity

    def test_error_verdict(self) -> None:
        data = an_error_verdict(complete=False)
        validate_verdict(data)
        assert data["verdict"] == "error"
        assert data["reasons"] == ["a worker crashed"]
        assert data["complete"] is False
        assert (data["metrics"], data["regressions"], data["tests"]) == ({}, [], None)
        assert data["stable"] is None
        # Whatever else a deploy step reads, an error never carries a rollout plan.
        assert data.get("rollout") is None

    def test_error_verdict_with_models(self) -> None:
        data = an_error_verdict(stable=STABLE, candidate=CANDIDATE)
        validate_verdict(data)
        assert data["candidate"]["model"] == "qwen-max"
        assert data["complete"] is True

    def test_error_judgement_builds_a_valid_verdict(self) -> None:
        candidate = [make_test("candidate", "case0", outcome="failed")]
        silent = TestRecord(**{**candidate[0].model_dump(), "calls": ()})
        data = verdict_for(judged(candidate=[silent]), exit_status=3)
        validate_verdict(data)
        assert data["verdict"] == "error"
        assert data["reasons"] == ["the candidate arm made no calls"]

    def test_paired_error_judgement_builds_a_valid_verdict_without_rollout(self) -> None:
        silent = TestRecord(**{**make_test("candidate", "case0").model_dump(), "calls": ()})
        data = verdict_for(paired(candidate=[silent]), exit_status=3)
        validate_verdict(data)
        assert data["verdict"] == "error"
        assert data["reasons"] == ["the candidate arm made no calls"]
        assert (data["metrics"], data["slices"], data["rollout"]) == ({}, {}, None)


class TestValidate:
    def test_rejects_with_every_failing_path(self) -> None:
        data = verdict_for(judged())
        data["verdict"] = "maybe"
        data["metrics"]["pass_rate"]["status"] = "fine"
        data["metrics"]["latency_p95_ms"]["samples"]["stable"] = -1
        data["run_id"] = "not-a-uuid"
        del data["exit_status"]
        with pytest.raises(VerdictValidationError) as caught:
            validate_verdict(data)
        paths = [problem.split(":")[0] for problem in caught.value.problems]
        assert paths == [
            "$",
            "$.metrics.latency_p95_ms.samples.stable",
            "$.metrics.pass_rate.status",
            "$.run_id",
            "$.verdict",
        ]
        message = str(caught.value)
        assert message.startswith("verdict does not match schema version 2:\n  - $: ")
        assert "'exit_status' is a required property" in message
        assert "$.metrics.pass_rate.status: 'fine' is not one of" in message

    def test_error_is_a_modelgate_error_and_survives_pickling(self) -> None:
        error = VerdictValidationError(["$.verdict: bad"])
        assert isinstance(error, ModelgateError)
        assert isinstance(error, ValueError)
        copied = pickle.loads(pickle.dumps(error))
        assert copied.problems == ("$.verdict: bad",)
        assert str(copied) == str(error)

    def test_unknown_top_level_field_is_rejected(self) -> None:
        data = verdict_for(judged())
        data["verdict_path"] = "modelgate-verdict.json"
        with pytest.raises(VerdictValidationError, match="verdict_path"):
            validate_verdict(data)

    def test_only_an_error_verdict_may_omit_the_stable_model(self) -> None:
        data = verdict_for(judged())
        data["stable"] = None
        with pytest.raises(VerdictValidationError, match=r"\$\.stable: None is not of type"):
            validate_verdict(data)
        data["tests"] = None
        data["verdict"] = "error"
        validate_verdict(data)

    def test_bad_nested_model_names_the_field(self) -> None:
        data = verdict_for(judged())
        data["candidate"] = {"model": "", "provider": None, "base_url": None}
        with pytest.raises(VerdictValidationError, match=r"\$\.candidate\.model"):
            validate_verdict(data)

    def test_bad_regression_entry(self) -> None:
        data = verdict_for(judged())
        data["regressions"] = [{"metric": "pass_rate", "scope": "overall"}]
        with pytest.raises(VerdictValidationError, match=r"\$\.regressions\[0\]: 'stable'"):
            validate_verdict(data)

    def test_bad_timestamp(self) -> None:
        data = verdict_for(judged())
        data["finished_at"] = "2025-11-25 22:18"
        with pytest.raises(VerdictValidationError, match=r"\$\.finished_at"):
            validate_verdict(data)

    def test_verdict_with_slices_and_rollout_is_valid(self) -> None:
        data = verdict_for(two_workflows())
        assert data["slices"]
        assert data["rollout"]["plan"]
        validate_verdict(data)

    def test_rollout_step_beyond_all_traffic_is_rejected(self) -> None:
        data = verdict_for(two_workflows())
        data["rollout"]["plan"][0]["traffic_percent"] = 150
        with pytest.raises(VerdictValidationError) as caught:
            validate_verdict(data)
        assert caught.value.problems == (
            "$.rollout.plan[0].traffic_percent: 150 is greater than the maximum of 100",
        )

    @pytest.mark.parametrize("where", ["metrics", "slices"])
    def test_metric_without_n_is_rejected(self, where: str) -> None:
        data = verdict_for(two_workflows())
        metrics = data["metrics"] if where == "metrics" else data["slices"]["workflow:refunds"]
        del metrics["pass_rate"]["n"]
        path = "$.metrics" if where == "metrics" else "$.slices.workflow:refunds"
        with pytest.raises(VerdictValidationError) as caught:
            validate_verdict(data)
        assert caught.value.problems == (f"{path}.pass_rate: 'n' is a required property",)

    def test_inconclusive_metric_status_is_valid(self) -> None:
        data = verdict_for(paired())
        assert data["metrics"]["pass_rate"]["status"] == "inconclusive"
        validate_verdict(data)
        data["metrics"]["pass_rate"]["status"] = "undecided"
        with pytest.raises(VerdictValidationError, match=r"\$\.metrics\.pass_rate\.status"):
            validate_verdict(data)

    def test_hook_added_metric_is_accepted(self) -> None:
        data = verdict_for(judged())
        data["metrics"]["json_valid_rate"] = copy.deepcopy(data["metrics"]["pass_rate"])
        validate_verdict(data)
        data["metrics"]["Bad Name"] = data["metrics"]["json_valid_rate"]
        with pytest.raises(VerdictValidationError, match="Bad Name"):
            validate_verdict(data)


class TestWrite:
    def test_writes_readable_json_and_creates_parents(self, tmp_path: Path) -> None:
        path = tmp_path / "deep" / "er" / "verdict.json"
        data = verdict_for(judged())
        write_verdict_atomic(path, data)
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        assert text.startswith('{\n  "schema_version": "2",\n  "run_id": ')
        assert json.loads(text) == data
        assert list(json.loads(text)) == list(data)
        assert read_verdict(path) == data
        assert os.listdir(path.parent) == ["verdict.json"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def test_non_ascii_is_kept_readable(self, tmp_path: Path) -> None:
        path = tmp_path / "verdict.json"
        data = an_error_verdict()
        data["reasons"] = ["模型 qwen-max 没有回应"]
        write_verdict_atomic(path, data)
        assert "模型 qwen-max 没有回应" in path.read_text(encoding="utf-8")

    def test_replaces_an_old_file(self, tmp_path: Path) -> None:
        path = tmp_path / "verdict.json"
        path.write_text("old\n", encoding="utf-8")
        write_verdict_atomic(path, verdict_for(judged()))
        assert json.loads(path.read_text(encoding="utf-8"))["verdict"] == "pass"
        assert os.listdir(tmp_path) == ["verdict.json"]

    def test_invalid_verdict_is_not_written(self, tmp_path: Path) -> None:
        path = tmp_path / "verdict.json"
        path.write_text("old\n", encoding="utf-8")
        data = verdict_for(judged())
        data["verdict"] = "maybe"
        with pytest.raises(VerdictValidationError):
            write_verdict_atomic(path, data)
        assert path.read_text(encoding="utf-8") == "old\n"
        assert os.listdir(tmp_path) == ["verdict.json"]

    def test_failed_replace_leaves_old_file_and_no_temp_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = tmp_path / "verdict.json"
        path.write_text("old\n", encoding="utf-8")

        def broken_replace(source: str, target: Any) -> None:
            raise OSError("disk on fire")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="disk on fire"):
            write_verdict_atomic(path, verdict_for(judged()))
        assert path.read_text(encoding="utf-8") == "old\n"
        assert os.listdir(tmp_path) == ["verdict.json"]

    def test_failed_fsync_leaves_no_temp_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken_fsync(descriptor: int) -> None:
            raise OSError("no space left")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="no space left"):
            write_verdict_atomic(tmp_path / "verdict.json", verdict_for(judged()))
        assert os.listdir(tmp_path) == []

    def test_read_verdict_rejects_a_broken_file(self, tmp_path: Path) -> None:
        path = tmp_path / "verdict.json"
        path.write_text("[1, 2]\n", encoding="utf-8")
        with pytest.raises(VerdictValidationError, match="expected a JSON object"):
            read_verdict(path)
        # A file of the previous format is refused by its version, not read as this one.
        path.write_text('{"schema_version": "1"}\n', encoding="utf-8")
        with pytest.raises(VerdictValidationError, match=r"\$\.schema_version: '2' was expected"):
            read_verdict(path)

    def test_paired_verdict_round_trips_through_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "verdict.json"
        data = verdict_for(two_workflows())
        write_verdict_atomic(path, data)
        assert read_verdict(path) == data


def test_same_judgement_same_file() -> None:
    assert dump_verdict(verdict_for(judged())) == dump_verdict(verdict_for(judged()))
    # The paired judge's bootstraps are seeded from the data: the same records, the same file.
    assert dump_verdict(verdict_for(two_workflows())) == dump_verdict(verdict_for(two_workflows()))
