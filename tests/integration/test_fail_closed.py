"""Fail closed: whatever makes the run untrustworthy gives verdict ``error``, never ``pass``.

Every case checks the exit status, the terminal output and the verdict file on disk: ``error``,
``complete`` true, a reason that names the cause, and the exit status written in the file equal to
the one the process returned. A verdict file left by an earlier run must never pass for this one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

from pytest_modelgate.verdict.model import read_verdict

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 2}
GATE_ARGS = ("--candidate-model", CANDIDATE)

# Two healthy workflow tests: on their own they give a passing gate.
WORKFLOW = """
    import pytest

    @pytest.mark.parametrize("question", ["Hello, I have a question.", "Where is my parcel?"])
    def test_reply(llm, question):
        reply = llm.chat([{"role": "user", "content": question}])
        assert reply.text
"""


# What is tested here is failing closed, not statistics. The paired judge says `pass` only when
# every gated interval shows non-inferiority, and with the two cases of WORKFLOW a rate's 95%
# interval is about +-66 points: rate margins wide enough for that, so that the healthy baseline
# (and the stale verdicts below) are a genuine `pass`; timing is not gated.
SMALL_RUN_GATE: dict[str, Any] = loose_gate()


@pytest.fixture
def project(gate_project: Callable[..., GateProject]) -> GateProject:
    """A gate project with two healthy models, margins for two cases and no timing limits."""
    return gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)


def assert_error_verdict(
    project: GateProject,
    result: pytest.RunResult,
    exit_status: int,
    *cause: str,
    summary: bool = True,
) -> dict[str, Any]:
    """The run ended with ``exit_status`` and a complete ``error`` verdict naming ``cause``.

    ``summary``: the terminal shows the modelgate section (not for a run that never started).
    """
    assert result.ret == exit_status
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["complete"] is True
    assert verdict["exit_status"] == exit_status
    reasons = "\n".join(verdict["reasons"])
    for words in cause:
        assert words in reasons, f"{words!r} not in the verdict reasons: {verdict['reasons']}"
    # A deploy step reading the file must find no rollout plan in an error.
    assert verdict.get("rollout") is None
    if summary:
        result.stdout.fnmatch_lines(["*modelgate verdict: ERROR*"])
    return verdict


def test_healthy_run_passes(project: GateProject) -> None:
    # The baseline the other cases break: the same project passes when nothing goes wrong.
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    result.assert_outcomes(passed=4)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["complete"] is True
    # A pass the data showed, not one for want of anything gated.
    assert verdict["metrics"]["pass_rate"]["status"] == "ok"
    assert verdict["rollout"]["allowed"] is True


def test_verdict_hook_that_raises(project: GateProject) -> None:
    project.pytester.makeconftest(
        """
        def pytest_modelgate_verdict(config, verdict):
            raise RuntimeError("verdict hook exploded")
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    result.assert_outcomes(passed=4)
    assert_error_verdict(project, result, 3, "the gate crashed", "verdict hook exploded")


def test_verdict_hook_that_breaks_the_schema(project: GateProject) -> None:
    project.pytester.makeconftest(
        """
        def pytest_modelgate_verdict(config, verdict):
            verdict["verdict"] = "ship it"
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    result.assert_outcomes(passed=4)
    assert_error_verdict(project, result, 3, "could not be written", "$.verdict")


def test_verdict_hook_cannot_turn_an_inconclusive_verdict_into_a_pass(
    gate_project: Callable[..., GateProject],
) -> None:
    """A conftest.py that "fixes" a red gate is a fail-open path: the hook may only tighten."""
    # The default margins: two cases cannot show them, so the judge says inconclusive.
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE)
    project.pytester.makeconftest(
        """
        def pytest_modelgate_verdict(config, verdict):
            verdict["verdict"] = "pass"
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    assert_error_verdict(
        project, result, 3, "turned the verdict 'inconclusive' into 'pass'", "never more lenient"
    )


def test_verdict_hook_cannot_change_what_was_judged(project: GateProject) -> None:
    project.pytester.makeconftest(
        """
        def pytest_modelgate_verdict(config, verdict):
            verdict["candidate"]["model"] = "qwen-max"
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    assert_error_verdict(project, result, 3, "hook changed candidate")


def test_verdict_hook_that_tightens_a_pass_sets_the_exit_status_and_the_rollout(
    project: GateProject,
) -> None:
    project.pytester.makeconftest(
        """
        def pytest_modelgate_verdict(config, verdict):
            verdict["verdict"] = "fail"
            verdict["reasons"].insert(0, "release freeze")
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert verdict["reasons"][0] == "release freeze"
    assert verdict["rollout"]["allowed"] is False
    assert verdict["rollout"]["plan"] == []


def test_judge_hook_that_raises(project: GateProject) -> None:
    project.pytester.makeconftest(
        """
        def pytest_modelgate_judge(config):
            raise RuntimeError("judge hook exploded")
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    assert_error_verdict(project, result, 3, "the gate crashed", "judge hook exploded")
    result.assert_outcomes(passed=4)


def test_judge_that_raises_while_judging(project: GateProject) -> None:
    project.pytester.makeconftest(
        """
        class BrokenJudge:
            def judge(self, run):
                raise ZeroDivisionError("judge divided by zero")

        def pytest_modelgate_judge(config):
            return BrokenJudge()
        """
    )
    project.pytester.makepyfile(WORKFLOW)

    result = project.pytester.runpytest(*GATE_ARGS)

    result.assert_outcomes(passed=4)
    assert_error_verdict(project, result, 3, "the gate crashed", "judge divided by zero")


def test_interrupted_run(project: GateProject) -> None:
    project.pytester.makepyfile(
        """
        def test_first(llm):
            llm.chat([{"role": "user", "content": "Hello, I have a question."}])
            if llm.arm == "candidate":
                raise KeyboardInterrupt

        def test_never_reached(llm):
            llm.chat([{"role": "user", "content": "Where is my parcel?"}])
        """
    )

    result = project.pytester.runpytest_subprocess(*GATE_ARGS)

    assert result.ret == 2
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*"])
    assert_error_verdict(project, result, 2, "interrupted")


def test_candidate_arm_that_made_no_calls(project: GateProject) -> None:
    project.pytester.makepyfile(
        """
        def test_reply(llm):
            if llm.arm == "stable":
                llm.chat([{"role": "user", "content": "Hello, I have a question."}])
        """
    )

    result = project.pytester.runpytest(*GATE_ARGS)

    result.assert_outcomes(passed=2)
    assert_error_verdict(project, result, 3, "the candidate arm made no calls")


def test_candidate_run_without_llm_tests(project: GateProject) -> None:
    project.pytester.makepyfile("def test_plain():\n    assert True\n")

    result = project.pytester.runpytest(*GATE_ARGS)

    result.assert_outcomes(passed=1)
    assert_error_verdict(project, result, 3, "no selected test uses the `llm` fixture")


def test_run_stopped_early_with_x(project: GateProject) -> None:
    project.pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_reply(llm, n):
            reply = llm.chat([{"role": "user", "content": f"Question {n}."}])
            assert n != 0 or llm.arm == "stable", "candidate broke case 0"
        """
    )

    result = project.pytester.runpytest("-x", *GATE_ARGS)

    result.assert_outcomes(passed=1, failed=1)
    assert_error_verdict(project, result, 3, "stopped early")


def test_crashed_xdist_worker(project: GateProject) -> None:
    project.pytester.makepyfile(
        """
        import os

        import pytest

        @pytest.mark.parametrize("n", range(2))
        def test_reply(llm, n):
            llm.chat([{"role": "user", "content": f"Question {n}."}])
            if llm.arm == "candidate" and n == 1:
                os._exit(9)
        """
    )

    result = project.pytester.runpytest_subprocess("-n", "2", *GATE_ARGS)

    assert_error_verdict(project, result, 3, "crashed")


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_configuration_error(project: GateProject, workers: tuple[str, ...]) -> None:
    old = _pass_verdict(project)

    if workers:
        result = project.pytester.runpytest_subprocess(
            "--candidate-model", "sim-candidat", *workers
        )
    else:
        result = project.pytester.runpytest("--candidate-model", "sim-candidat")

    verdict = assert_error_verdict(
        project, result, 4, "configuration error", "sim-candidat", summary=False
    )
    assert verdict["run_id"] != old["run_id"]
    result.stderr.fnmatch_lines(["*modelgate: unknown model 'sim-candidat'*"])


def _pass_verdict(project: GateProject) -> dict[str, Any]:
    """A genuine ``pass`` verdict, made by a healthy run of the same project."""
    project.pytester.makepyfile(test_healthy=WORKFLOW)
    result = project.pytester.runpytest(*GATE_ARGS, "test_healthy.py")
    assert result.ret == 0
    old = project.verdict()
    assert old["verdict"] == "pass"
    return old


def test_stale_pass_is_replaced_when_the_process_dies(project: GateProject) -> None:
    old = _pass_verdict(project)
    project.pytester.makepyfile(
        test_dies="""
        import os

        def test_reply(llm):
            llm.chat([{"role": "user", "content": "Hello, I have a question."}])
            if llm.arm == "candidate":
                os._exit(9)
        """
    )

    result = project.pytester.runpytest_subprocess(*GATE_ARGS, "test_dies.py")

    assert result.ret == 9
    # Still a schema-valid verdict: a reader that validates it gets `error`, not a parse failure.
    verdict = read_verdict(project.verdict_path)
    assert verdict["run_id"] != old["run_id"]
    assert verdict["verdict"] == "error"
    assert verdict["complete"] is False
    assert verdict["exit_status"] == 3
    assert "has not finished" in verdict["reasons"][0]
    assert verdict["candidate"]["model"] == CANDIDATE
    assert verdict.get("rollout") is None


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_stale_verdict_removed_by_an_ungated_run(
    project: GateProject, workers: tuple[str, ...]
) -> None:
    # A plain pytest run (no candidate, no `llm` test) judges nothing: it must not leave the old
    # verdict behind as if it were its own.
    _pass_verdict(project)
    project.pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")

    if workers:
        result = project.pytester.runpytest_subprocess(
            "test_plain.py", "-p", "no:cacheprovider", *workers
        )
    else:
        result = project.pytester.runpytest("test_plain.py", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert not project.verdict_path.exists()


def test_stale_pass_replaced_by_an_error(project: GateProject) -> None:
    old = _pass_verdict(project)
    project.pytester.makeconftest(
        """
        def pytest_modelgate_verdict(config, verdict):
            raise RuntimeError("verdict hook exploded")
        """
    )

    result = project.pytester.runpytest(*GATE_ARGS, "test_healthy.py")

    verdict = assert_error_verdict(project, result, 3, "verdict hook exploded")
    assert verdict["run_id"] != old["run_id"]
    # The file is what a deploy step reads: one JSON document, this run's.
    assert json.loads(project.verdict_path.read_text(encoding="utf-8")) == verdict


def test_collection_error_is_named_not_called_an_interruption(project: GateProject) -> None:
    # A workflow module that cannot import means its cases ran on neither arm.
    project.pytester.makepyfile(WORKFLOW)
    project.pytester.makepyfile(test_broken="import support_desk_that_does_not_exist\n")

    result = project.pytester.runpytest(*GATE_ARGS)

    verdict = assert_error_verdict(project, result, 2, "collection error", "test_broken.py")
    reasons = "\n".join(verdict["reasons"])
    assert "interrupted" not in reasons
    assert "no selected test uses" not in reasons
