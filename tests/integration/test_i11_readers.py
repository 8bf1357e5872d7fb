"""What a person reads: missing recordings told once, the per-case view, agreeing numbers.

Every run here is a real pytester run against a real simulator on loopback (or its recordings).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 4}
LOOSE_GATE: dict[str, Any] = loose_gate()
CASES = 10

TEN_CASES = f"""
    import pytest

    @pytest.mark.parametrize("n", range({CASES}), ids=[f"case-{{i}}" for i in range({CASES})])
    def test_triage(llm, n):
        reply = llm.chat([{{"role": "user", "content": f"ticket number {{n}}: refund please"}}])
        assert reply.text
"""


def _candidate_cassettes(project: GateProject) -> list[Path]:
    return sorted((project.pytester.path / "cassettes").rglob(f"*--{CANDIDATE}*.yaml"))


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_missing_recordings_are_told_once_per_model(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """A repeat run with every candidate recording gone: one line for the model, no tracebacks.

    Baseline measured before this change (this project, serial): 2,414 output lines for the 30
    candidate tests (a traceback through the client and vcrpy per test, about 77 lines each).
    After it: 135 lines serial, 165 with -n 2.
    """
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=LOOSE_GATE)
    project.pytester.makepyfile(test_wf=TEN_CASES)
    gate = ("--candidate-model", CANDIDATE, "--modelgate-repeat", "3")
    recorded = project.pytester.runpytest("--modelgate-mode=record", *gate)
    recorded.assert_outcomes(passed=2 * 3 * CASES)
    cassettes = _candidate_cassettes(project)
    assert len(cassettes) == 3 * CASES
    for path in cassettes:
        path.unlink()
    project.sim.stop()
    monkeypatch.delenv(project.key_env)

    result = project.pytester.runpytest("--modelgate-mode=replay", *gate, *args)

    result.assert_outcomes(passed=3 * CASES, failed=3 * CASES)
    assert result.ret == 3
    lines = result.stdout.lines
    wanted = f"30 recordings missing for {CANDIDATE} (first: cassettes/test_wf/"
    told = [line for line in lines if wanted in line]
    assert len(told) == 1, told
    assert told[0].startswith("modelgate ERROR: ")
    assert (
        f"record them with {project.key_env} set: pytest --candidate-model {CANDIDATE} "
        in (told[0])
    )
    assert told[0].endswith("--modelgate-mode=record")
    assert "Traceback" not in result.stdout.str()
    # Each test still says which cassette it lacked, on one line.
    per_test = [line for line in lines if line.startswith("no recording for this call")]
    assert len(per_test) == 3 * CASES
    assert all("the cassette file does not exist" in line for line in per_test)
    # 135 (serial) and 165 (-n 2) measured; the baseline was 2,414.
    assert len(lines) < 250, len(lines)
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert [r for r in verdict["reasons"] if "recording" in r] == [
        told[0].removeprefix("modelgate ERROR: ")
    ]


def test_a_missing_recording_caught_by_the_product_is_counted_too(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=LOOSE_GATE)
    project.pytester.makepyfile(
        test_wf="""
        def test_triage(llm):
            try:
                llm.chat([{"role": "user", "content": "hello"}])
            except Exception:
                pass  # a product that swallows errors
        """
    )
    gate = ("--candidate-model", CANDIDATE)
    project.pytester.runpytest("--modelgate-mode=record", *gate).assert_outcomes(passed=2)
    for path in _candidate_cassettes(project):
        path.unlink()
    project.sim.stop()
    monkeypatch.delenv(project.key_env)

    result = project.pytester.runpytest("--modelgate-mode=replay", *gate)

    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any(
        r.startswith(f"1 recording missing for {CANDIDATE} (first: ") for r in verdict["reasons"]
    ), verdict["reasons"]
    assert result.ret == 3


TWELVE_CASES = """
    import pytest

    BROKEN_ON_CANDIDATE = {2, 3, 5, 7, 10, 11}

    @pytest.mark.parametrize("n", range(12), ids=[f"case-{i}" for i in range(12)])
    def test_triage(llm, n):
        reply = llm.chat([{"role": "user", "content": f"ticket number {n}: refund please"}])
        assert reply.text
        if llm.arm == "candidate" and n in BROKEN_ON_CANDIDATE:
            raise AssertionError(f"ticket {n}: the candidate routed it to sales")
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_changed_cases_are_in_the_verdict_and_the_terminal_shows_the_first_five(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # the width the summary wraps at
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=LOOSE_GATE)
    project.pytester.makepyfile(test_wf=TWELVE_CASES)

    result = project.pytester.runpytest("--candidate-model", CANDIDATE, *args)

    result.assert_outcomes(passed=18, failed=6)
    verdict = project.verdict()
    section = verdict["cases_changed"]
    assert section["total"] == 6
    ids = [case["case_id"] for case in section["cases"]]
    # Natural order: case-2 .. case-11, not case-10, case-11, case-2.
    assert ids == [f"test_wf.py::test_triage[case-{n}]" for n in (2, 3, 5, 7, 10, 11)]
    first = section["cases"][0]
    assert first["changes"] == ["pass -> fail"]
    assert first["worse"] is True
    assert first["reason"] == "AssertionError: ticket 2: the candidate routed it to sales"
    assert first["stable"]["outcome"] == "passed"
    assert first["candidate"]["outcome"] == "failed"
    for arm in ("stable", "candidate"):
        assert first[arm]["latency_ms"] > 0
        assert first[arm]["cost_usd"] > 0
    # The verdict's own failure lists are in natural order too.
    assert [c["case_id"] for c in verdict["tests"]["cases_failed_candidate_only"]] == ids

    lines = result.stdout.lines
    start = lines.index("6 cases changed between the arms (worse first):")
    end = lines.index("  ... and 1 more: see modelgate report", start)
    block = lines[start + 1 : end]
    entries = [line for line in block if not line.startswith("      ")]
    for line, n in zip(entries, (2, 3, 5, 7, 10), strict=True):
        assert line.startswith(f"  test_wf.py::test_triage[case-{n}]: pass -> fail: "), line
    # Long lines wrap at the terminal's width with an indent, never cut.
    assert all(len(line) <= 100 for line in block), block
    joined = " ".join(line.strip() for line in block)
    assert "the candidate routed it to sales (stable passed, " in joined
    assert "stable passed, " in joined
    assert "candidate failed, " in joined
    assert "case-11]: pass" not in joined  # the sixth is counted, not shown


def test_a_run_where_nothing_changed_lists_no_cases(gate_project: MakeProject) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=LOOSE_GATE)
    project.pytester.makepyfile(test_wf=TEN_CASES)

    result = project.pytester.runpytest("--candidate-model", CANDIDATE)

    result.assert_outcomes(passed=20)
    assert project.verdict()["cases_changed"] == {"total": 0, "cases": []}
    assert "changed between the arms" not in result.stdout.str()


def test_a_smoke_run_has_no_changed_cases(gate_project: MakeProject) -> None:
    project = gate_project({STABLE: FAST}, stable=STABLE, gate=LOOSE_GATE)
    project.pytester.makepyfile(test_wf=TEN_CASES)

    project.pytester.runpytest().assert_outcomes(passed=10)
    assert "cases_changed" not in project.verdict()


PRICEY = {"input": 2.7, "output": 11.0, "cached_input": 0.7}  # ten times the default price


def _cost_gate() -> dict[str, Any]:
    return {**LOOSE_GATE, "cost_per_call_max_ratio": 1.15}


def test_a_deliberate_move_to_a_pricier_model_is_declared_and_recorded(
    gate_project: MakeProject,
) -> None:
    project = gate_project(
        {STABLE: FAST, CANDIDATE: FAST},
        stable=STABLE,
        gate=_cost_gate(),
        prices={CANDIDATE: PRICEY},
    )
    project.pytester.makepyfile(test_wf=TEN_CASES)

    # Without the allowance the x10 cost fails the default-style x1.15 margin.
    refused = project.pytester.runpytest("--candidate-model", CANDIDATE)
    assert refused.ret == 1
    assert project.verdict()["verdict"] == "fail"
    assert "allowances" not in project.verdict()

    allowed = project.pytester.runpytest(
        "--candidate-model",
        CANDIDATE,
        "--modelgate-allow",
        "cost_per_call_max_ratio=12: moving to the pricier model on purpose",
    )

    assert allowed.ret == 0, allowed.stdout.str()
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["allowances"] == [
        {
            "margin": "cost_per_call_max_ratio",
            "value": 12.0,
            "was": 1.15,
            "reason": "moving to the pricier model on purpose",
            "source": "--modelgate-allow",
        }
    ]
    assert verdict["metrics"]["cost_per_call_usd"]["limit"] == "x12.00"
    allowed.stdout.fnmatch_lines(
        [
            "margins widened on purpose for this run: cost_per_call_max_ratio 12 (was 1.15; "
            "--modelgate-allow: moving to the pricier model on purpose)"
        ]
    )


def test_the_ini_allowance_is_used_and_the_command_line_beats_it(
    gate_project: MakeProject,
) -> None:
    project = gate_project(
        {STABLE: FAST, CANDIDATE: FAST},
        stable=STABLE,
        gate=_cost_gate(),
        prices={CANDIDATE: PRICEY},
    )
    project.pytester.makepyfile(test_wf=TEN_CASES)
    project.pytester.makeini(
        "[pytest]\nmodelgate_allow =\n    cost_per_call_max_ratio=2: not enough\n"
    )

    from_ini = project.pytester.runpytest("--candidate-model", CANDIDATE)
    assert from_ini.ret == 1
    assert project.verdict()["allowances"][0]["source"] == "ini option modelgate_allow"

    both = project.pytester.runpytest(
        "--candidate-model", CANDIDATE, "--modelgate-allow", "cost_per_call_max_ratio=none"
    )
    assert both.ret == 0
    entry = project.verdict()["allowances"]
    assert entry == [
        {
            "margin": "cost_per_call_max_ratio",
            "value": None,
            "was": 1.15,
            "reason": None,
            "source": "--modelgate-allow",
        }
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("cost_per_call_ratio=12", "--modelgate-allow: unknown margin 'cost_per_call_ratio'"),
        ("cost_per_call_max_ratio=twelve", "expected a number or none, got 'twelve'"),
        ("cost_per_call_max_ratio=0.5", "cost_per_call_max_ratio=0.5: Input should be greater"),
        ("cost_per_call_max_ratio", "expected MARGIN=VALUE"),
    ],
)
def test_a_bad_allowance_is_a_usage_error_naming_it(
    gate_project: MakeProject, value: str, message: str
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=_cost_gate())
    project.pytester.makepyfile(test_wf=TEN_CASES)

    result = project.pytester.runpytest("--candidate-model", CANDIDATE, "--modelgate-allow", value)

    assert result.ret == 4
    assert message in result.stderr.str(), result.stderr.str()
    assert project.verdict()["verdict"] == "error"
