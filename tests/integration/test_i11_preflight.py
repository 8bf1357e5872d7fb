"""Missing recordings told before the tests run: one line per model, serially and with -n 2.

Real pytester runs: recorded against a real simulator on loopback, replayed with it stopped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 4}
GATE = ("--candidate-model", CANDIDATE)
MODES = pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])

SIX_CASES = """
    import pytest

    @pytest.mark.parametrize("n", range(6), ids=[f"case-{i}" for i in range(6)])
    def test_triage(llm, n):
        reply = llm.chat([{"role": "user", "content": f"ticket number {n}: refund please"}])
        assert reply.text

    def test_not_gated():
        pass
"""
# A test's progress: "test_wf.py ...F" serially, "...F [ 50%]" with -n 2.
PROGRESS = re.compile(r"\[\s*\d+%\]")


def _recorded(gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> GateProject:
    """A project whose six cases were recorded on both models; the simulator is gone."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=loose_gate())
    project.pytester.makepyfile(test_wf=SIX_CASES)
    project.pytester.runpytest("--modelgate-mode=record", *GATE).assert_outcomes(passed=13)
    project.sim.stop()
    monkeypatch.delenv(project.key_env)
    return project


def _drop(project: GateProject, model: str, cases: range) -> None:
    for n in cases:
        folder = project.pytester.path / "cassettes" / "test_wf"
        (folder / f"test_triage[case-{n}]--{model}.yaml").unlink()


@MODES
def test_missing_recordings_are_told_before_the_first_test(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    project = _recorded(gate_project, monkeypatch)
    _drop(project, CANDIDATE, range(4))
    _drop(project, STABLE, range(5, 6))

    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE, *args)

    result.assert_outcomes(passed=8, failed=5)
    assert result.ret == 3
    lines = result.stdout.lines
    told = [i for i, line in enumerate(lines) if line.startswith("modelgate: ")]
    assert [lines[i] for i in told] == [
        f"modelgate: 4 recordings missing for {CANDIDATE}; record them with {project.key_env} "
        f"set and `--modelgate-mode=record`: pytest --candidate-model {CANDIDATE} "
        "--modelgate-mode=record",
        f"modelgate: 1 recording missing for {STABLE}; record them with {project.key_env} "
        f"set and `--modelgate-mode=record`: pytest --stable-model {STABLE} "
        "--modelgate-mode=record",
    ]
    first_progress = next(i for i, line in enumerate(lines) if PROGRESS.search(line))
    assert told[-1] < first_progress, lines[: first_progress + 1]
    # Each test's failure is one line, no traceback and no second line of advice.
    assert "Traceback" not in result.stdout.str()
    per_test = [line for line in lines if line.startswith("no recording for this call")]
    assert len(per_test) == 5
    assert all(line.endswith("the cassette file does not exist") for line in per_test)
    assert not [line for line in lines if line.startswith("record it with")]
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    # The verdict still gives the reason per model, with the first cassette lacking.
    assert sorted(r.split(" (first: ")[0] for r in verdict["reasons"] if "missing" in r) == [
        f"1 recording missing for {STABLE}",
        f"4 recordings missing for {CANDIDATE}",
    ]


@MODES
def test_no_preflight_line_when_every_recording_is_there(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    project = _recorded(gate_project, monkeypatch)

    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE, *args)

    result.assert_outcomes(passed=13)
    assert not [line for line in result.stdout.lines if "recording missing" in line]
    assert not [line for line in result.stdout.lines if "recordings missing" in line]
    assert project.verdict()["verdict"] == "pass"


def test_record_mode_has_no_preflight_line(gate_project: MakeProject) -> None:
    """Record mode records what is missing: nothing to warn about before the run."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=loose_gate())
    project.pytester.makepyfile(test_wf=SIX_CASES)

    result = project.pytester.runpytest("--modelgate-mode=record", *GATE)

    result.assert_outcomes(passed=13)
    assert not [line for line in result.stdout.lines if line.startswith("modelgate: ")]
