"""Shards: each shard writes ``--modelgate-records``, ``modelgate merge`` judges their union.

The heart of it: a suite replayed from recordings, judged once unsharded and once as 2 or 3
shards merged, gives the same verdict byte for byte except the fields that name the run
(``run_id``, ``started_at``, ``finished_at``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelgate.cli import main
from pytest_modelgate.verdict.check import Expectations, check_file

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
GATE = ("--stable-model", STABLE, "--candidate-model", CANDIDATE, "--modelgate-mode=replay")
TICKETS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
# Fields that say which run wrote a verdict, not what it decided.
RUN_FIELDS = ("run_id", "started_at", "finished_at")

TESTS = f"""
import pytest

@pytest.mark.parametrize("ticket", {TICKETS!r})
def test_triage(llm, ticket):
    reply = llm.chat([{{"role": "user", "content": "Classify: " + ticket}}])
    assert reply.text

@pytest.mark.parametrize("ticket", {TICKETS!r})
def test_summary(llm, ticket):
    reply = llm.chat([{{"role": "user", "content": "Summarise: " + ticket}}])
    assert reply.text
"""

SHARDS_2 = ["triage", "summary"]
SHARDS_3 = ["alpha or bravo", "charlie or delta", "echo or foxtrot"]


def _recorded(
    gate_project: Callable[..., GateProject], monkeypatch: pytest.MonkeyPatch
) -> GateProject:
    """A project whose calls were recorded once, then the simulator stopped: replay only."""
    project = gate_project(
        {STABLE: {"latency_ms": {"median": 4, "p95": 8}}, CANDIDATE: {"latency_ms": 5}},
        stable=STABLE,
        gate={"min_cases": 4},
    )
    project.pytester.makepyfile(test_shards=TESTS)
    recorded = project.pytester.runpytest("--modelgate-mode=record", *GATE[:4])
    recorded.assert_outcomes(passed=24)
    project.sim.stop()
    monkeypatch.delenv(project.key_env)
    return project


def _shard(project: GateProject, k: int, selection: str, *args: str) -> pytest.RunResult:
    return project.pytester.runpytest(
        *GATE,
        "-k",
        selection,
        f"--modelgate-verdict=shard-{k}/modelgate-verdict.json",
        f"--modelgate-records=parts/part-{k}.jsonl",
        *args,
    )


def _merge(project: GateProject, *args: str) -> int:
    return main(["merge", *args])


def _without_run_fields(verdict: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in verdict.items() if key not in RUN_FIELDS}


def _read(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize(
    ("selections", "args"),
    [(SHARDS_2, ()), (SHARDS_3, ()), (SHARDS_2, ("-n", "2"))],
    ids=["2-shards", "3-shards", "2-shards-xdist"],
)
def test_merged_shards_give_the_unsharded_verdict(
    gate_project: Callable[..., GateProject],
    monkeypatch: pytest.MonkeyPatch,
    selections: list[str],
    args: tuple[str, ...],
) -> None:
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    whole = project.pytester.runpytest(*GATE)
    whole.assert_outcomes(passed=24)
    unsharded = project.verdict()
    # Twelve cases cannot show the candidate is within 2 points: inconclusive, with figures.
    assert unsharded["verdict"] == "inconclusive"
    assert unsharded["metrics"]["latency_p50_ms"]["n"] == 12
    for k, selection in enumerate(selections, start=1):
        _shard(project, k, selection, *args).assert_outcomes(passed=24 // len(selections))

    out = path / "merged" / "modelgate-verdict.json"
    status = _merge(project, str(path / "parts"), "--verdict", str(out))

    merged = _read(out)
    assert status == 0
    assert _without_run_fields(merged) == _without_run_fields(unsharded)
    # Byte for byte, once the run's own fields are the same.
    same = {**merged, **{key: unsharded[key] for key in RUN_FIELDS}}
    assert json.dumps(same, indent=2) == json.dumps(unsharded, indent=2)
    assert merged["run_id"] != unsharded["run_id"]
    assert merged["provenance"]["tests_collected"] == 24
    # The merged records are the unsharded run's, in another order.
    records = sorted((out.with_name(merged["records_file"])).read_text().splitlines())
    assert len(records) == 24
    decision = check_file(out, Expectations(candidate=CANDIDATE, allow_inconclusive=True))
    assert decision.go, decision.line


def test_the_judge_gives_the_same_verdict_for_the_same_records(
    gate_project: Callable[..., GateProject], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merging the same parts twice: the same verdict (the bootstraps are seeded)."""
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    for k, selection in enumerate(SHARDS_2, start=1):
        _shard(project, k, selection).assert_outcomes(passed=12)
    first, second = path / "one" / "v.json", path / "two" / "v.json"

    assert _merge(project, str(path / "parts"), "--verdict", str(first)) == 0
    assert _merge(project, str(path / "parts"), "--verdict", str(second)) == 0
    assert _without_run_fields(_read(first)) == {
        **_without_run_fields(_read(second)),
        "records_file": "v.records.jsonl",
    }


def test_the_part_holds_a_header_and_every_record(
    gate_project: Callable[..., GateProject], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _recorded(gate_project, monkeypatch)

    _shard(project, 1, "triage").assert_outcomes(passed=12)

    lines = (project.pytester.path / "parts" / "part-1.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "modelgate-records"
    assert header["version"] == 1
    assert header["complete"] is True
    assert header["problems"] == []
    assert header["pytest_exit_status"] == 0
    assert header["records"] == len(lines) - 1 == 12
    assert header["candidate"]["model"] == CANDIDATE
    assert header["settings"]["config"]["gate"]["min_cases"] == 4
    assert header["tests"]["collected"] == 12
    assert all("test_triage" in test_id for test_id in header["tests"]["ids"])
    assert header["args"][header["args"].index("-k") + 1] == "triage"
    assert len(header["cassettes"]) == 12
    # The key never reaches the part.
    assert project.key not in "\n".join(lines)
    # The shard's own verdict and records are written as in any run.
    assert (project.pytester.path / "shard-1" / "modelgate-verdict.records.jsonl").exists()


def test_a_shard_that_was_interrupted_makes_the_merged_verdict_error(
    gate_project: Callable[..., GateProject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    _shard(project, 1, "triage").assert_outcomes(passed=12)
    # -x after a failure: the shard stopped early, so only part of its cases ran.
    project.pytester.makeconftest(
        """
        import pytest

        def pytest_runtest_setup(item):
            if "summary[charlie" in item.nodeid:
                pytest.fail("boom")
        """
    )
    _shard(project, 2, "summary", "-x")

    out = path / "merged.json"
    status = _merge(project, str(path / "parts"), "--verdict", str(out))

    merged = _read(out)
    assert status == 3
    assert merged["verdict"] == "error"
    assert "part-2.jsonl is incomplete" in merged["reasons"][0]
    assert "stopped early" in merged["reasons"][0]
    assert "verdict error" in capsys.readouterr().out
    assert not check_file(out, Expectations()).go


def test_a_shard_killed_before_its_end_leaves_an_incomplete_part(
    gate_project: Callable[..., GateProject], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part written at the start says `not finished` until the shard replaces it."""
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    _shard(project, 1, "triage").assert_outcomes(passed=12)
    project.pytester.makeconftest(
        """
        import os

        def pytest_runtest_setup(item):
            if "summary[charlie" in item.nodeid:
                os._exit(9)  # killed: no sessionfinish, nothing more is written
        """
    )
    # In a process of its own: os._exit would end this one.
    killed = project.pytester.runpytest_subprocess(
        *GATE,
        "-k",
        "summary",
        "--modelgate-verdict=shard-2/modelgate-verdict.json",
        "--modelgate-records=parts/part-2.jsonl",
    )
    assert killed.ret == 9
    header = json.loads((path / "parts" / "part-2.jsonl").read_text().splitlines()[0])
    assert header["complete"] is False

    out = path / "merged.json"
    assert _merge(project, str(path / "parts"), "--verdict", str(out)) == 3
    assert "has not finished" in _read(out)["reasons"][0]


def test_a_case_in_two_parts_is_refused(
    gate_project: Callable[..., GateProject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    _shard(project, 1, "triage").assert_outcomes(passed=12)
    _shard(project, 2, "triage or alpha").assert_outcomes(passed=14)

    out = path / "merged.json"
    status = _merge(project, str(path / "parts"), "--verdict", str(out))

    err = capsys.readouterr().err
    assert status == 3
    assert err.startswith("modelgate merge: refused: ")
    assert "part-1.jsonl" in err
    assert "part-2.jsonl" in err
    assert "shards must not overlap" in err
    assert _read(out)["verdict"] == "error"


def test_parts_of_another_candidate_are_refused(
    gate_project: Callable[..., GateProject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    _shard(project, 1, "triage").assert_outcomes(passed=12)
    # The other half gated the stable model against itself: another candidate.
    project.pytester.runpytest(
        "--stable-model",
        STABLE,
        "--candidate-model",
        STABLE,
        "--modelgate-mode=replay",
        "-k",
        "summary",
        "--modelgate-verdict=shard-2/v.json",
        "--modelgate-records=parts/part-2.jsonl",
    )
    old = path / "merged.json"
    old.write_text("{}", encoding="utf-8")

    status = _merge(project, str(path / "parts"), "--verdict", str(old))

    err = capsys.readouterr().err
    assert status == 3
    assert "come from different runs: candidate model" in err
    assert _read(old)["verdict"] == "error"


def test_a_missing_part_is_refused_with_expect_parts(
    gate_project: Callable[..., GateProject],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = _recorded(gate_project, monkeypatch)
    path = project.pytester.path
    _shard(project, 1, "triage").assert_outcomes(passed=12)

    status = _merge(
        project, str(path / "parts"), "--expect-parts", "2", "--verdict", str(path / "m.json")
    )

    assert status == 3
    assert "1 records part(s)" in capsys.readouterr().err
    assert _read(path / "m.json")["verdict"] == "error"


def test_the_records_part_cannot_be_the_verdict(
    gate_project: Callable[..., GateProject], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _recorded(gate_project, monkeypatch)

    result = project.pytester.runpytest(*GATE, "--modelgate-records=modelgate-verdict.json")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--modelgate-records * is the verdict or its records file*"])
