"""Recordings a full run did not use are reported, and --modelgate-prune removes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
GATE = ("--stable-model", STABLE, "--candidate-model", CANDIDATE)

WORKFLOWS = """
    import pytest

    @pytest.mark.parametrize("question", ["Where is my parcel?", "Can I get a refund?"])
    def test_reply(llm, question):
        assert llm.chat([{"role": "user", "content": question}]).text

    def test_second_call(llm):
        assert llm.chat([{"role": "user", "content": "first"}]).text
        if EXTRA_CALL:
            assert llm.chat([{"role": "user", "content": "second"}]).text

    def test_retired(llm):
        assert llm.chat([{"role": "user", "content": "an old workflow"}]).text
"""


@pytest.fixture
def project(gate_project: Callable[..., GateProject]) -> GateProject:
    return gate_project(
        {STABLE: {"latency_ms": 2}, CANDIDATE: {"latency_ms": 2}},
        stable=STABLE,
        gate={"latency_p50_max_ratio": None, "latency_p95_max_ratio": None},
    )


def _cassettes(project: GateProject) -> list[str]:
    root = project.pytester.path / "cassettes"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


def _record_then_retire(project: GateProject) -> None:
    """Record everything, then drop one test and one call, so recordings go unused."""
    project.pytester.makepyfile(test_wf=WORKFLOWS.replace("EXTRA_CALL", "True"))
    recorded = project.pytester.runpytest(*GATE, "--modelgate-mode=record")
    recorded.assert_outcomes(passed=8)
    assert len(_cassettes(project)) == 8
    trimmed = WORKFLOWS.replace("EXTRA_CALL", "False").replace("def test_retired", "def _retired")
    project.pytester.makepyfile(test_wf=trimmed)
    project.sim.stop()


def test_unused_recordings_are_reported_after_a_full_run(project: GateProject) -> None:
    _record_then_retire(project)

    result = project.pytester.runpytest(*GATE, "--modelgate-mode=replay")

    result.assert_outcomes(passed=6)
    assert result.ret == 0
    # One summary line, not one line per file (issue 10 item 9).
    result.stdout.fnmatch_lines(
        [
            "recordings:",
            "  4 recordings unused: 2 cassettes no collected test uses, 2 interactions no test "
            "played (in 2 cassettes); --modelgate-prune removes them, --modelgate-prune=dry-run "
            "lists them",
        ]
    )
    assert "test_retired" not in result.stdout.str()
    # A dry run names each of them.
    dry = project.pytester.runpytest(*GATE, "--modelgate-mode=replay", "--modelgate-prune=dry-run")
    dry.stdout.fnmatch_lines(
        [
            "*test_wf/test_second_call--sim-*.yaml: interaction 2 of 2 (POST /v1/chat/completions)"
            " would be removed",
            "*test_wf/test_retired--sim-candidate.yaml: would be deleted",
            "*test_wf/test_retired--sim-stable.yaml: would be deleted",
            "*--modelgate-prune=dry-run: nothing was removed",
        ]
    )
    # Reporting changes nothing.
    assert len(_cassettes(project)) == 8


def test_prune_removes_them_and_the_rest_still_replays(project: GateProject) -> None:
    _record_then_retire(project)
    before = project.pytester.path / "cassettes/test_wf/test_second_call--sim-stable.yaml"
    assert before.read_text(encoding="utf-8").count("second") >= 1

    result = project.pytester.runpytest(*GATE, "--modelgate-mode=replay", "--modelgate-prune")

    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*pruned 2 unused interactions and 2 orphan cassettes*"])
    assert _cassettes(project) == [
        "test_wf/test_reply[Can I get a refund%3F]--sim-candidate.yaml",
        "test_wf/test_reply[Can I get a refund%3F]--sim-stable.yaml",
        "test_wf/test_reply[Where is my parcel%3F]--sim-candidate.yaml",
        "test_wf/test_reply[Where is my parcel%3F]--sim-stable.yaml",
        "test_wf/test_second_call--sim-candidate.yaml",
        "test_wf/test_second_call--sim-stable.yaml",
    ]
    assert '"second"' not in before.read_text(encoding="utf-8")
    # The pruned cassettes still replay offline, and nothing is left to report.
    again = project.pytester.runpytest(*GATE, "--modelgate-mode=replay")
    again.assert_outcomes(passed=6)
    assert again.ret == 0
    assert "recordings:" not in again.stdout.str()


def test_a_partial_run_never_prunes(project: GateProject) -> None:
    _record_then_retire(project)

    result = project.pytester.runpytest(
        *GATE, "--modelgate-mode=replay", "--modelgate-prune", "-k", "second_call"
    )

    result.assert_outcomes(passed=2, deselected=4)
    result.stdout.fnmatch_lines(["*--modelgate-prune: nothing removed, only a full run*"])
    assert "no collected test uses" not in result.stdout.str()
    assert len(_cassettes(project)) == 8


def test_recordings_of_other_configured_models_are_not_orphans(project: GateProject) -> None:
    _record_then_retire(project)
    retired = Path(project.pytester.path / "cassettes/test_wf/test_retired--sim-stable.yaml")
    retired.unlink()
    (project.pytester.path / "cassettes/test_wf/test_retired--sim-candidate.yaml").unlink()

    # A stable-only run: the candidate's recordings belong to a configured model and stay.
    result = project.pytester.runpytest(
        "--stable-model", STABLE, "--modelgate-mode=replay", "--modelgate-prune"
    )

    result.assert_outcomes(passed=3)
    assert "sim-candidate.yaml: no collected test uses" not in result.stdout.str()
    assert "test_wf/test_reply[Where is my parcel%3F]--sim-candidate.yaml" in _cassettes(project)
