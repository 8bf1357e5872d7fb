"""Issue 10, the judge: the gate never says pass without evidence.

Each test is one finding of the issue, run end to end against the simulator: the verdict on disk,
the exit status and the terminal lines that say why. Before the fix each of these runs said
`pass` (or offered a canary up to 100%).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

from pytest_modelgate.session import EXIT_ERROR, EXIT_FAIL, EXIT_OK
from pytest_modelgate.verdict.model import validate_verdict

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

GATE = ("--stable-model", "sim-a", "--candidate-model", "sim-b")
FAST: dict[str, Any] = {"latency_ms": 2}
# Margins a dozen cases can show, latency not gated: only the rule under test can decide.
SMALL_SUITE: dict[str, Any] = loose_gate(0.6, gate_cost=True)

TRIAGE = """
import pytest

SYSTEM = {"role": "system", "content": "You triage support tickets. Answer in JSON."}
TICKETS = [
    ("I want a refund for my order", "refund"),
    ("I was charged twice this month", "billing"),
    ("My package did not arrive", "shipping"),
    ("I forgot my password", "account"),
    ("The export button is broken", "technical"),
]


@pytest.mark.parametrize("n", range(@CASES@))
def test_triage(llm, n):
    text, category = TICKETS[n % len(TICKETS)]
    reply = llm.chat([SYSTEM, {"role": "user", "content": f"{text} (case {n})"}])
    assert reply.json()["category"] == @EXPECTED@
"""


def triage(cases: int, expected: str = "category") -> str:
    """``cases`` ticket classifications; ``expected`` is the Python expression asserted."""
    return TRIAGE.replace("@CASES@", str(cases)).replace("@EXPECTED@", expected)


def verdict_of(project: GateProject) -> dict[str, Any]:
    verdict = project.verdict()
    validate_verdict(verdict)
    return verdict


def test_no_successful_call_on_either_arm_is_an_error(gate_project: MakeProject) -> None:
    """Item 2: stable 500 on every call, candidate 402 on every call gave `pass`."""
    project = gate_project(
        {"sim-a": {"server_error_rate": 1.0}, "sim-b": {"balance_error": True}},
        gate=SMALL_SUITE,
        client={"max_retries": 0},
    )
    project.pytester.makepyfile(test_wf=triage(10))

    result = project.pytester.runpytest(*GATE)

    assert result.ret == EXIT_ERROR
    verdict = verdict_of(project)
    assert verdict["verdict"] == "error"
    assert verdict["exit_status"] == EXIT_ERROR
    assert verdict["reasons"] == [
        "no call on the stable arm succeeded: all 10 attempts failed (server_error x10), "
        "so there is nothing to compare",
        "no call on the candidate arm succeeded: all 10 attempts failed (quota x10), "
        "so there is nothing to compare",
    ]
    assert verdict["rollout"] is None
    assert verdict["tests"]["candidate"]["passed"] == 0
    result.stdout.fnmatch_lines(
        [
            "modelgate ERROR: no call on the stable arm succeeded: all 10 attempts failed*",
            "modelgate verdict: ERROR (stable sim-a vs candidate sim-b)",
        ]
    )


def test_a_gated_metric_with_no_data_on_the_candidate_blocks_and_names_the_arm(
    gate_project: MakeProject,
) -> None:
    """Item 2 and the real server: empty streamed replies have no first token; the TTFT row said
    "no data on either arm" and the run passed."""
    empty = [{"content": ""}] * 10
    project = gate_project(
        {"sim-a": {"latency_ms": 4, "ttft_ms": 2}, "sim-b": {"latency_ms": 4, "script": empty}},
        gate={**SMALL_SUITE, "ttft_p95_max_ratio": 5.0},
    )
    project.pytester.makepyfile(
        test_wf="""
        import pytest

        @pytest.mark.parametrize("n", range(10))
        def test_streamed(llm, n):
            llm.chat([{"role": "user", "content": f"Hello number {n}"}], stream=True)
        """
    )

    result = project.pytester.runpytest(*GATE)

    assert result.ret == EXIT_OK  # inconclusive exits 0 without --modelgate-strict
    verdict = verdict_of(project)
    assert verdict["verdict"] == "inconclusive"
    ttft = verdict["metrics"]["ttft_p95_ms"]
    assert ttft["status"] == "no_data"
    assert ttft["samples"] == {"stable": 10, "candidate": 0}
    assert ttft["stable"] is not None
    message = (
        "p95 time to first token: no data on the candidate arm (the stable arm has 10 "
        "streamed calls with a first token), "
        "so it cannot be checked against x5.00"
    )
    assert ttft["message"] == message
    assert message in verdict["reasons"]
    result.stdout.fnmatch_lines([f"inconclusive: {message}"])
    result.stdout.no_fnmatch_line("*no data on either arm*")


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "xdist"])
def test_a_suite_that_fails_everywhere_is_an_error(
    gate_project: MakeProject, workers: int | None
) -> None:
    """Item 7: every test failing on both arms read "pass rate 0.0% -> 0.0% ok" and `pass`."""
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE)
    project.pytester.makepyfile(test_wf=triage(12, expected='"no such category"'))

    if workers:
        result = project.pytester.runpytest_subprocess(*GATE, "-n", str(workers))
    else:
        result = project.pytester.runpytest(*GATE)

    assert result.ret == EXIT_ERROR
    verdict = verdict_of(project)
    assert verdict["verdict"] == "error"
    assert verdict["tests"]["stable"]["failed"] == 12
    assert verdict["reasons"][0].startswith(
        "the stable arm passed only 0 of 12 tests (0.0%), below the 50% floor "
        "(gate.min_stable_pass_rate)"
    )
    assert verdict["rollout"] is None
    # The comparisons stay for diagnosis.
    assert verdict["metrics"]["pass_rate"]["stable"] == 0.0
    result.stdout.fnmatch_lines(["modelgate ERROR: the stable arm passed only 0 of 12 tests*"])

    # The floor is a setting: null switches it off and the run is judged as before.
    project.write_config(
        {"sim-a": None, "sim-b": None}, gate={**SMALL_SUITE, "min_stable_pass_rate": None}
    )
    assert project.pytester.runpytest(*GATE).ret == EXIT_OK
    assert verdict_of(project)["verdict"] == "pass"


def test_a_budget_binds_a_workflow_below_min_cases(gate_project: MakeProject) -> None:
    """Item 8: `latency_budget(p50_ms=20)` on a 3-case workflow, candidate 3x over, was
    "reported, not gated"; a cost budget printed as `<= $0.000000`."""
    project = gate_project(
        {"sim-a": {"latency_ms": 4}, "sim-b": {"latency_ms": 60}}, gate=SMALL_SUITE
    )
    project.pytester.makepyfile(
        test_wf=triage(10)
        + """

@pytest.mark.latency_budget(p50_ms=20)
@pytest.mark.cost_budget(usd_per_call=0.0000001)
@pytest.mark.parametrize("n", range(3))
def test_budgeted(llm, n):
    assert llm.chat([{"role": "user", "content": f"Hello number {n}"}]).text
"""
    )

    result = project.pytester.runpytest(*GATE)

    assert result.ret == EXIT_FAIL
    verdict = verdict_of(project)
    assert verdict["verdict"] == "fail"
    budgets = verdict["slices"]["workflow:test_budgeted"]
    latency = budgets["latency_p50_ms:budget"]
    assert latency["status"] == "regressed", latency["message"]
    assert latency["n"] == 3
    assert latency["message"].endswith("(every case is beyond the bound)")
    cost = budgets["cost_per_call_usd:budget"]
    assert cost["limit"] == "<= $0.00000010"
    assert cost["status"] == "regressed"
    assert {(r["metric"], r["scope"]) for r in verdict["regressions"]} == {
        ("latency_p50_ms:budget", "workflow:test_budgeted"),
        ("cost_per_call_usd:budget", "workflow:test_budgeted"),
    }
    result.stdout.fnmatch_lines(
        [
            "regression: p50 latency budget [[]workflow:test_budgeted]: candidate * against "
            "<= 20 ms (n=3 cases): worse than allowed <= 20 ms (every case is beyond the bound)",
        ]
    )
    result.stdout.no_fnmatch_line("*$0.000000 *")


def test_a_budget_few_cases_cannot_place_is_inconclusive_with_its_reason(
    gate_project: MakeProject,
) -> None:
    """Item 8: a budget neither clearly broken nor shown met says why on its own line."""
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE)
    project.pytester.makepyfile(
        test_wf=triage(10)
        + """

@pytest.mark.latency_budget(p50_ms=5000)
@pytest.mark.parametrize("n", range(3))
def test_budgeted(llm, n):
    assert llm.chat([{"role": "user", "content": f"Hello number {n}"}]).text
"""
    )

    result = project.pytester.runpytest(*GATE)

    assert result.ret == EXIT_OK
    verdict = verdict_of(project)
    assert verdict["verdict"] == "inconclusive"
    budget = verdict["slices"]["workflow:test_budgeted"]["latency_p50_ms:budget"]
    assert budget["status"] == "inconclusive"
    assert budget["message"] in verdict["reasons"]
    result.stdout.fnmatch_lines(
        [
            "inconclusive: p50 latency budget [[]workflow:test_budgeted]: *(too few cases for an "
            "interval (3, at least 5) and not every case is beyond the bound)"
        ]
    )


def test_rollback_triggers_come_from_gated_figures_within_range(
    gate_project: MakeProject,
) -> None:
    """Item 10: `schema_validity < -1.0%` and a TTFT p95 trigger from 10 calls."""
    project = gate_project(
        {"sim-a": {"latency_ms": 4, "ttft_ms": 2}, "sim-b": {"latency_ms": 4, "ttft_ms": 2}},
        gate={**SMALL_SUITE, "latency_p95_max_ratio": 5.0, "ttft_p95_max_ratio": 5.0},
    )
    project.pytester.makepyfile(
        test_wf=triage(12)
        + """

NEVER = {"type": "object", "required": ["no_such_field"]}


@pytest.mark.model_contract(schema=NEVER)
@pytest.mark.parametrize("n", range(2))
def test_contract(llm, n):
    llm.chat([SYSTEM, {"role": "user", "content": f"I want a refund (contract {n})"}])


@pytest.mark.parametrize("n", range(10))
def test_streamed(llm, n):
    assert llm.chat([{"role": "user", "content": f"Hello number {n}"}], stream=True).text
"""
    )

    result = project.pytester.runpytest(*GATE)

    verdict = verdict_of(project)
    assert verdict["metrics"]["schema_validity"]["stable"] == 0.0
    rollout = verdict["rollout"]
    assert rollout is not None
    emitted = {t["metric"]: t for t in rollout["rollback_triggers"]}
    assert "schema_validity" not in emitted
    assert "ttft_p95_ms" not in emitted
    assert "latency_p95_ms" not in emitted
    assert all(0.0 <= t["threshold"] <= 1.0 for t in emitted.values() if t["unit"] == "rate"), (
        emitted
    )
    assert all(t["threshold"] >= 0 for t in emitted.values())
    left_out = {t["metric"]: t["reason"] for t in rollout["triggers_left_out"]}
    assert left_out["schema_validity"] == (
        "stable 0.00% - 1.0 pts is outside the metric's range: it could never fire"
    )
    assert left_out["ttft_p95_ms"].startswith("its figure was not gated: p95 time to first token")
    assert "fewer than 100 calls per arm" in left_out["ttft_p95_ms"]
    result.stdout.fnmatch_lines(["no rollback trigger from: *schema_validity*"])
    result.stdout.no_fnmatch_line("rollback if:*schema_validity*")


def test_an_inconclusive_verdict_allows_shadow_traffic_only(gate_project: MakeProject) -> None:
    """Item 11: 3 of 3 candidate calls failing gave `rollout.allowed: true` up to 100%."""
    project = gate_project({"sim-a": FAST, "sim-b": {**FAST, "misclassify": 1.0}}, gate=SMALL_SUITE)
    project.pytester.makepyfile(test_wf=triage(3))

    result = project.pytester.runpytest(*GATE)

    assert result.ret == EXIT_OK
    verdict = verdict_of(project)
    assert verdict["verdict"] == "inconclusive"
    rollout = verdict["rollout"]
    assert rollout["allowed"] is True
    assert [(s["phase"], s["traffic_percent"]) for s in rollout["plan"]] == [("shadow", 0)]
    assert "shadow traffic only" in rollout["reason"]
    result.stdout.fnmatch_lines(
        ["rollout: shadow only: mirror at least * requests, the candidate serves no traffic*"]
    )
    result.stdout.no_fnmatch_line("rollout:*100%*")

    # --modelgate-strict turns it into a failure with no rollout at all.
    strict = project.pytester.runpytest(*GATE, "--modelgate-strict")
    assert strict.ret == EXIT_FAIL
    assert verdict_of(project)["rollout"]["plan"] == []


@pytest.mark.parametrize("arms", ["both", "candidate"])
def test_streams_without_usage_say_so_and_cost_is_judged_on_the_cases_that_have_it(
    gate_project: MakeProject, arms: str
) -> None:
    """The real server (llama.cpp) ignores `stream_options.include_usage`: streamed calls had no
    cost and the row said "a price is missing", though prices were configured."""
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE)
    # The simulator honours include_usage: asking for none is what such a server sends.
    usage = '{"include_usage": False}'
    stable_usage = usage if arms == "both" else '{"include_usage": True}'
    project.pytester.makepyfile(
        test_wf=triage(10)
        + f"""

@pytest.mark.parametrize("n", range(3))
def test_streamed(llm, n):
    options = {usage} if llm.arm == "candidate" else {stable_usage}
    reply = llm.chat(
        [{{"role": "user", "content": f"Hello number {{n}}"}}], stream=True, stream_options=options
    )
    assert reply.text
"""
    )

    result = project.pytester.runpytest(*GATE)

    verdict = verdict_of(project)
    cost = verdict["metrics"]["cost_per_call_usd"]
    assert "a price is missing" not in cost["message"]
    assert (
        "on the candidate arm 3 streamed calls reported no usage (the server did not honour "
        "stream_options.include_usage), so no cost"
    ) in cost["message"]
    assert ("on the stable arm 3 streamed calls" in cost["message"]) is (arms == "both")
    # Judged on the paired cases whose every call has a cost on both arms, and said so.
    assert cost["n"] == 10
    assert cost["status"] == "ok", cost["message"]
    assert "judged on the 10 of 13 cases with a cost on both arms" in cost["message"]
    assert verdict["verdict"] == "pass", verdict["reasons"]
    assert result.ret == EXIT_OK
    assert cost["message"] in verdict["reasons"]
    result.stdout.fnmatch_lines(
        ["note: cost per call: * (judged on the 10 of 13 cases with a cost on both arms; *"]
    )
