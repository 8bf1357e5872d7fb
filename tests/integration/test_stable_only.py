"""A run without a candidate: a smoke run of the stable model with ordinary pytest exit codes."""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelgate.judge.metrics import METRICS
from pytest_modelgate.verdict.model import validate_verdict

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

MODELS: dict[str, dict[str, Any]] = {"sim-a": {"latency_ms": 2}, "sim-b": {"latency_ms": 2}}

WORKFLOWS = """
import pytest

SYSTEM = {"role": "system", "content": "Classify the ticket. Answer in JSON."}


def test_reply(llm):
    assert llm.chat([{"role": "user", "content": "hello"}]).text


@pytest.mark.parametrize(
    ("text", "category"),
    [("I want a refund", "refund"), ("I was charged twice", "billing")],
)
def test_classify(llm, text, category):
    reply = llm.chat([SYSTEM, {"role": "user", "content": text}])
    assert reply.json()["category"] == category


def test_no_model():
    pass
"""


WORKERS = pytest.mark.parametrize("workers", [None, 2], ids=["serial", "xdist"])


def served(project: GateProject) -> Counter[str | None]:
    return Counter(request.model for request in project.sim.requests)


def run(project: GateProject, *args: str, workers: int | None = None) -> pytest.RunResult:
    """Run pytest in-process, or in a subprocess with pytest-xdist when ``workers`` is set."""
    if workers:
        return project.pytester.runpytest_subprocess(*args, "-n", str(workers))
    return project.pytester.runpytest(*args)


def test_only_the_stable_arm_runs(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest("-v", "--stable-model", "sim-a")

    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "test_wf.py::test_reply[[]stable-sim-a[]] PASSED*",
            "test_wf.py::test_classify[[]I want a refund-refund-stable-sim-a[]] PASSED*",
            "test_wf.py::test_classify[[]I was charged twice-billing-stable-sim-a[]] PASSED*",
            "test_wf.py::test_no_model PASSED*",
        ]
    )
    result.stdout.no_fnmatch_line("*candidate*PASSED*")
    assert served(project) == {"sim-a": 3}
    assert result.ret == 0


def test_verdict_and_table_of_a_stable_only_run(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest("--stable-model", "sim-a")

    assert result.ret == 0
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["verdict"] == "pass"
    assert verdict["complete"] is True
    assert verdict["stable"] == {
        "model": "sim-a",
        "provider": None,
        "base_url": project.sim.base_url,
    }
    assert verdict["candidate"] is None
    assert verdict["regressions"] == []
    assert verdict["exit_status"] == 0
    assert verdict["tests"]["stable"] == {"passed": 3, "failed": 0, "skipped": 0, "error": 0}
    assert verdict["tests"]["candidate"] is None
    assert list(verdict["metrics"]) == [spec.name for spec in METRICS]
    for name, metric in verdict["metrics"].items():
        assert metric["status"] == "not_gated", name
        assert metric["candidate"] is None, name
        assert metric["samples"]["candidate"] is None, name
    assert verdict["metrics"]["pass_rate"]["stable"] == 1.0
    assert verdict["metrics"]["error_rate"]["samples"]["stable"] == 3

    # Two columns: there is nothing to compare with.
    result.stdout.fnmatch_lines(
        [
            "*= modelgate =*",
            "| metric * | stable * |",
            "| pass rate * | 100.0% (n=3 tests) * |",
            "| error rate * | 0.0% (n=3 attempts) * |",
            "note: stable-only run: no test failed (3 passed, 0 failed, 0 errors, 0 skipped)",
            "modelgate verdict: PASS (stable-only run of sim-a)",
            f"verdict written to {project.verdict_path}",
        ]
    )
    result.stdout.no_fnmatch_line("*| candidate *")
    result.stdout.no_fnmatch_line("*| limit *")


def test_stable_model_from_modelgate_yaml(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, stable="sim-a")
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest("-v")

    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["test_wf.py::test_reply[[]stable-sim-a[]] PASSED*"])
    assert result.ret == 0
    assert served(project) == {"sim-a": 3}
    assert project.verdict()["candidate"] is None


@WORKERS
def test_a_failing_gated_test_exits_1_and_fails_the_verdict(
    gate_project: MakeProject, workers: int | None
) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(
        test_wf=WORKFLOWS
        + """

def test_wrong_category(llm):
    reply = llm.chat([SYSTEM, {"role": "user", "content": "My password does not work"}])
    assert reply.json()["category"] == "billing"
"""
    )

    result = run(project, "--stable-model", "sim-a", workers=workers)

    result.assert_outcomes(passed=4, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert verdict["candidate"] is None
    assert verdict["tests"]["stable"] == {"passed": 3, "failed": 1, "skipped": 0, "error": 0}
    assert verdict["reasons"] == [
        "stable-only run: 1 of 4 tests failed (3 passed, 1 failed, 0 errors, 0 skipped)"
    ]
    assert verdict["metrics"]["pass_rate"]["stable"] == 0.75
    result.stdout.fnmatch_lines(
        [
            "| pass rate * | 75.0% (n=4 tests) * |",
            "modelgate verdict: FAIL (stable-only run of sim-a)",
        ]
    )


def test_an_error_in_a_fixture_of_a_gated_test_counts_as_error(
    gate_project: MakeProject,
) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(
        test_wf="""
        import pytest

        @pytest.fixture
        def broken(llm):
            llm.chat([{"role": "user", "content": "hello"}])
            raise RuntimeError("setup broke")

        def test_reply(llm):
            assert llm.chat([{"role": "user", "content": "hi"}]).text

        def test_broken(broken):
            pass
        """
    )

    result = project.pytester.runpytest("--stable-model", "sim-a")

    result.assert_outcomes(passed=1, errors=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["tests"]["stable"] == {"passed": 1, "failed": 0, "skipped": 0, "error": 1}
    # The call made during the broken setup was still measured.
    assert verdict["metrics"]["error_rate"]["samples"]["stable"] == 2
    assert served(project) == {"sim-a": 2}


def test_a_failing_test_without_llm_keeps_pytest_semantics(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(
        test_wf="""
        def test_reply(llm):
            assert llm.chat([{"role": "user", "content": "hello"}]).text

        def test_plain_bug():
            assert 1 + 1 == 3
        """
    )

    result = project.pytester.runpytest("--stable-model", "sim-a")

    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    verdict = project.verdict()
    # The file records the status the process really ended with.
    assert verdict["exit_status"] == 1
    assert verdict["tests"]["stable"] == {"passed": 1, "failed": 0, "skipped": 0, "error": 0}


def test_skipped_and_xfailed_gated_tests_decide_nothing(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(
        test_wf="""
        import pytest

        def test_reply(llm):
            assert llm.chat([{"role": "user", "content": "hello"}]).text

        def test_skipped(llm):
            pytest.skip("not today")

        @pytest.mark.xfail(reason="known gap", strict=True)
        def test_known_gap(llm):
            llm.chat([{"role": "user", "content": "hi"}])
            assert False
        """
    )

    result = project.pytester.runpytest("--stable-model", "sim-a")

    result.assert_outcomes(passed=1, skipped=1, xfailed=1)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["tests"]["stable"] == {"passed": 1, "failed": 0, "skipped": 2, "error": 0}
    assert verdict["metrics"]["pass_rate"]["stable"] == 1.0


USAGE_ERRORS = {
    "no-stable-model": (
        (),
        "*modelgate: 3 selected test(s) use the `llm` fixture but no stable model is set*",
    ),
    "missing-api-key": (
        ("--stable-model", "sim-a"),
        "*modelgate: model 'sim-a' needs an API key: set MODELGATE_TEST_SIM_KEY*",
    ),
}


@WORKERS
@pytest.mark.parametrize("problem", list(USAGE_ERRORS))
def test_gated_tests_that_cannot_run_are_a_usage_error(
    gate_project: MakeProject,
    monkeypatch: pytest.MonkeyPatch,
    problem: str,
    workers: int | None,
) -> None:
    args, message = USAGE_ERRORS[problem]
    project = gate_project(MODELS)
    project.pytester.makepyfile(test_wf=WORKFLOWS)
    # A verdict from an earlier smoke run that must not survive this one.
    assert project.pytester.runpytest("--stable-model", "sim-a").ret == 0
    earlier = project.verdict()
    project.sim.clear_requests()
    if problem == "missing-api-key":
        monkeypatch.delenv("MODELGATE_TEST_SIM_KEY")

    result = run(project, *args, workers=workers)

    # The same under xdist as in one process: a usage error that says what is missing.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.no_fnmatch_line("INTERNALERROR*")
    assert fnmatch.filter(result.outlines + result.errlines, message), result.errlines
    assert project.sim.requests == []
    # Fail closed: whatever reads the verdict sees an error, never the old pass.
    verdict = project.verdict()
    assert verdict["run_id"] != earlier["run_id"]
    assert verdict["verdict"] == "error"
    assert verdict["exit_status"] == 4


def test_a_run_without_gated_tests_writes_no_verdict(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    pytester = project.pytester
    pytester.makepyfile(
        test_plain="""
        def test_one():
            pass

        def test_two():
            pass
        """
    )
    notes = pytester.path / "notes.json"
    notes.write_text('{"keep": true}\n', encoding="utf-8")
    config_text = (pytester.path / "modelgate.yaml").read_text(encoding="utf-8")
    before = sorted(path.name for path in pytester.path.iterdir() if path.is_file())

    result = pytester.runpytest("--stable-model", "sim-a")

    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert not project.verdict_path.exists()
    result.stdout.no_fnmatch_line("*= modelgate =*")
    result.stdout.no_fnmatch_line("*verdict written to*")
    assert sorted(path.name for path in pytester.path.iterdir() if path.is_file()) == before
    assert notes.read_text(encoding="utf-8") == '{"keep": true}\n'
    assert (pytester.path / "modelgate.yaml").read_text(encoding="utf-8") == config_text
    assert project.sim.requests == []


def test_a_run_without_gated_tests_leaves_no_stale_verdict(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    pytester = project.pytester
    pytester.makepyfile(test_wf=WORKFLOWS)
    first = pytester.runpytest("--stable-model", "sim-a")
    assert first.ret == 0
    assert project.verdict_path.exists()
    others = sorted(path.name for path in pytester.path.iterdir() if path.is_file())

    # Only the test that does not use `llm`: nothing is gated, so an old verdict must not
    # survive as if it were this run's.
    result = pytester.runpytest("--stable-model", "sim-a", "-k", "no_model")

    result.assert_outcomes(passed=1, deselected=3)
    assert result.ret == 0
    assert not project.verdict_path.exists()
    remaining = sorted(path.name for path in pytester.path.iterdir() if path.is_file())
    # The verdict and the records written beside it go together.
    stale = {project.verdict_path.name, "modelgate-verdict.records.jsonl"}
    assert "modelgate-verdict.records.jsonl" in others
    assert remaining == [name for name in others if name not in stale]


def test_no_tests_collected_keeps_exit_status_5(gate_project: MakeProject) -> None:
    project = gate_project(MODELS)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest("--stable-model", "sim-a", "-k", "nothing_matches")

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert not project.verdict_path.exists()
    assert project.sim.requests == []
