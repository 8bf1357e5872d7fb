"""Every test item and HTTP attempt of a gated run is written next to the verdict (JSON Lines)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_modelgate.calls.records import TestRecord

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"


def _records(project: GateProject) -> list[TestRecord]:
    verdict = project.verdict()
    assert verdict["records_file"] == "modelgate-verdict.records.jsonl"
    path = project.verdict_path.with_name(verdict["records_file"])
    lines = path.read_text(encoding="utf-8").splitlines()
    return [TestRecord.model_validate(json.loads(line)) for line in lines]


def test_records_hold_every_item_and_attempt(gate_project: Callable[..., GateProject]) -> None:
    project = gate_project(
        {
            STABLE: {"latency_ms": 2},
            # The first request to the candidate is a 503: one retried attempt on record.
            CANDIDATE: {"latency_ms": 2, "script": [{"status": 503}]},
        },
        stable=STABLE,
        gate={"latency_p50_max_ratio": None, "latency_p95_max_ratio": None},
        client={"max_retries": 2},
    )
    project.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("ticket", ["I want a refund", "Where is my package?"])
        def test_triage(llm, ticket):
            reply = llm.chat(
                [{"role": "system", "content": "Classify. Answer in JSON."},
                 {"role": "user", "content": ticket}],
                response_format={"type": "json_object"},
            )
            if "package" in ticket:
                llm.note_fallback("rule-based routing")
            assert reply.json()["category"]
        """
    )

    result = project.pytester.runpytest("--candidate-model", CANDIDATE)

    result.assert_outcomes(passed=4)
    records = _records(project)
    module = "test_records_hold_every_item_and_attempt.py::test_triage"
    assert sorted((r.arm, r.case_id) for r in records) == [
        ("candidate", f"{module}[I want a refund]"),
        ("candidate", f"{module}[Where is my package?]"),
        ("stable", f"{module}[I want a refund]"),
        ("stable", f"{module}[Where is my package?]"),
    ]
    assert all(r.outcome == "passed" for r in records)
    by_arm: dict[str, list[Any]] = {"stable": [], "candidate": []}
    for record in records:
        by_arm[record.arm].extend(record.calls)
        assert record.fallbacks == (("rule-based routing",) if "package" in record.case_id else ())
    assert len(by_arm["stable"]) == 2
    # Three attempts on the candidate: the 503, its retry, and the other case's call.
    failed = [c for c in by_arm["candidate"] if c.error_kind is not None]
    assert len(by_arm["candidate"]) == 3
    assert [(c.status, c.error_kind, c.attempt) for c in failed] == [(503, "server_error", 1)]
    retry = next(c for c in by_arm["candidate"] if c.call_index == failed[0].call_index and c.ok)
    assert retry.attempt == 2
    for call in by_arm["stable"] + by_arm["candidate"]:
        assert call.model in (STABLE, CANDIDATE)
        assert call.latency_ms is not None
        assert call.latency_ms > 0
        if call.ok:
            assert call.json_valid is True
            assert call.usage is not None
            assert call.usage.prompt_tokens
            assert call.cost_usd is not None
            assert call.cost_usd > 0
            assert call.finish_reason == "stop"


def test_stale_records_are_removed_when_a_run_starts(
    gate_project: Callable[..., GateProject],
) -> None:
    project = gate_project({STABLE: {"latency_ms": 2}}, stable=STABLE)
    stale = project.verdict_path.with_name("modelgate-verdict.records.jsonl")
    stale.write_text('{"stale": true}\n', encoding="utf-8")
    project.verdict_path.write_text("{}", encoding="utf-8")
    # A run that gates nothing and a run that dies must not leave the old records behind.
    project.pytester.makepyfile("def test_plain():\n    assert True\n")

    result = project.pytester.runpytest()

    assert result.ret == 0
    assert not stale.exists()
    assert not project.verdict_path.exists()
