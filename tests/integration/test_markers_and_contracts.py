"""Markers end to end: contracts checked on every reply, budgets, scores, workflows and languages.

Each test writes workflow tests with the gate's markers, runs them live against the simulator on
loopback (its seeded fault knobs inject JSON breakage, tool drift or language drift), and checks
the outcomes, the failure text, the exit status and the verdict file: the contract metrics, their
slices and the regressions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelgate.verdict.model import validate_verdict

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]
STABLE, CANDIDATE = "sim-stable", "sim-candidate"
GATE = ("--modelgate-mode=live", "--candidate-model", CANDIDATE)
FAST: dict[str, Any] = {"latency_ms": 2}
# Timing and cost are not what these tests are about.
QUIET = {
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
    "cost_per_call_max_ratio": None,
}

TRIAGE = """
    import pytest

    SCHEMA = {
        "type": "object",
        "required": ["category", "priority"],
        "properties": {"category": {"type": "string"}, "priority": {"type": "string"}},
    }
    TICKETS = [f"I was charged twice on invoice INV-{n}, please fix the bill." for n in range(N)]


    @pytest.mark.model_contract(json=True, schema=SCHEMA)
    @pytest.mark.parametrize("ticket", TICKETS)
    def test_triage(llm, ticket):
        # The product tolerates a broken reply (it falls back to a default queue): the contract
        # is what notices.
        reply = llm.chat(
            [{"role": "system", "content": "Classify the ticket. Answer in JSON."},
             {"role": "user", "content": ticket}],
            response_format={"type": "json_object"},
        )
        assert reply.text
"""


def _triage(cases: int) -> str:
    return TRIAGE.replace("range(N)", f"range({cases})")


@pytest.mark.parametrize("workers", [None, 2], ids=["serial", "xdist"])
def test_a_contract_violation_fails_the_test_quoting_the_reply(
    gate_project: MakeProject, workers: int | None
) -> None:
    project = gate_project(
        {STABLE: FAST, CANDIDATE: {**FAST, "json_breakage": 1.0}}, stable=STABLE, gate=QUIET
    )
    project.pytester.makepyfile(test_wf=_triage(3))

    if workers:
        # The violation is found on a worker; the records reach the controller on the reports.
        result = project.pytester.runpytest_subprocess(*GATE, "-n", str(workers))
    else:
        result = project.pytester.runpytest(*GATE)

    # Every candidate reply is broken JSON; the stable ones keep the contract.
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*ContractViolation: model 'sim-candidate' broke the model_contract*",
            "*reply is not JSON: *",
        ]
    )
    records = project.records()
    candidate_calls = [c for r in records if r["arm"] == "candidate" for c in r["calls"]]
    assert len(candidate_calls) == 3
    for call in candidate_calls:
        assert call["checks"] == ["json", "schema"]
        assert call["json_valid"] is False
        assert call["violations"][0].startswith("reply is not JSON: ")


def test_a_json_validity_drop_is_a_regression_of_json_validity(
    gate_project: MakeProject,
) -> None:
    project = gate_project(
        {STABLE: FAST, CANDIDATE: {**FAST, "json_breakage": 0.3}},
        stable=STABLE,
        gate={**QUIET, "pass_rate_max_drop": None},
    )
    project.pytester.makepyfile(test_wf=_triage(80))

    result = project.pytester.runpytest(*GATE, "-p", "no:randomly")

    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["verdict"] == "fail", verdict["reasons"]
    assert result.ret == 1
    json_validity = verdict["metrics"]["json_validity"]
    assert json_validity["status"] == "regressed"
    assert json_validity["n"] == 80
    assert json_validity["stable"] == 1.0
    assert json_validity["candidate"] < 0.85
    assert json_validity["test"] == "mcnemar_mid_p+newcombe"
    low, high = json_validity["change_interval"]
    assert low <= json_validity["change"] <= high < -1.0
    assert json_validity["p_adjusted"] < 0.05
    assert {"metric": "json_validity", "scope": "overall"}.items() <= verdict["regressions"][
        [r["metric"] for r in verdict["regressions"]].index("json_validity")
    ].items()
    # The schema was checked on the same replies and broke with them.
    assert verdict["metrics"]["schema_validity"]["status"] == "regressed"


ORDERS = """
    import json

    import pytest

    TOOL = {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
    OTHER = {"type": "function", "function": {"name": "cancel_order", "parameters": {}}}


    @pytest.mark.workflow("order_lookup")
    @pytest.mark.model_contract(tools=["lookup_order"])
    @pytest.mark.parametrize("order", [f"SO-{10000 + n}" for n in range(N)])
    def test_order_status(llm, order):
        reply = llm.chat(
            [{"role": "user", "content": f"Where is my order {order}?"}], tools=[TOOL, OTHER]
        )
        assert reply.tool_calls


    @pytest.mark.workflow("order_lookup")
    @pytest.mark.model_contract(tools=["lookup_order"])
    def test_order_without_id(llm):
        assert llm.chat([{"role": "user", "content": "Where is my order?"}], tools=[TOOL]).text
"""


def test_tool_drift_is_caught_by_tool_call_accuracy_in_the_workflow(
    gate_project: MakeProject,
) -> None:
    project = gate_project(
        {STABLE: FAST, CANDIDATE: {**FAST, "tool_drift": 0.5}},
        stable=STABLE,
        gate={**QUIET, "pass_rate_max_drop": None, "min_cases": 10},
    )
    project.pytester.makepyfile(test_wf=ORDERS.replace("range(N)", "range(60)"))

    result = project.pytester.runpytest(*GATE)

    verdict = project.verdict()
    accuracy = verdict["metrics"]["tool_call_accuracy"]
    assert accuracy["status"] == "regressed", accuracy["message"]
    assert accuracy["stable"] == 1.0
    # Drift calls the other declared tool or cuts the arguments: both break the contract.
    assert 0.3 < accuracy["candidate"] < 0.7
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*ContractViolation: model 'sim-candidate' broke*", "*tool call*"])
    # The two test functions are one workflow (its slice equals the whole run: not repeated).
    records = project.records()
    assert {r["workflow"] for r in records} == {"order_lookup"}


REPLIES = """
    import pytest

    MESSAGES = {
        "en": "Hello, my parcel has not arrived yet, can you help me please?",
        "zh": "你好，我的包裹还没有到，请帮我查一下。",
        "es": "Hola, mi paquete todavía no ha llegado, ¿me pueden ayudar por favor?",
    }
    CASES = [(lang, text) for lang, text in MESSAGES.items() for _ in range(N)]


    @pytest.mark.model_contract(language="match")
    @pytest.mark.parametrize(
        ("language", "message"), CASES, ids=[f"{l}-{i}" for i, (l, _) in enumerate(CASES)]
    )
    def test_reply(llm, language, message):
        llm.score("politeness", 0.9 if llm.arm == "stable" else 0.7)
        assert llm.chat([{"role": "user", "content": message + f" ({language})"}]).text
"""


def test_every_metric_is_judged_per_prompt_language(gate_project: MakeProject) -> None:
    # Language drift answers in English: invisible for English prompts, a regression elsewhere.
    project = gate_project(
        {STABLE: FAST, CANDIDATE: {**FAST, "language_drift": 0.5}},
        stable=STABLE,
        gate={**QUIET, "pass_rate_max_drop": None, "min_cases": 20, "score_max_drop": 0.05},
    )
    project.pytester.makepyfile(test_wf=REPLIES.replace("range(N)", "range(40)"))

    project.pytester.runpytest(*GATE)

    verdict = project.verdict()
    validate_verdict(verdict)
    slices = verdict["slices"]
    assert set(slices) >= {"language:en", "language:zh", "language:es"}
    assert slices["language:en"]["language_match"]["candidate"] == 1.0
    assert slices["language:en"]["language_match"]["status"] != "regressed"
    for code in ("zh", "es"):
        match = slices[f"language:{code}"]["language_match"]
        assert match["status"] == "regressed", match["message"]
        assert match["n"] == 40
    scopes = {(r["metric"], r["scope"]) for r in verdict["regressions"]}
    assert ("language_match", "language:zh") in scopes
    assert ("language_match", "language:en") not in scopes
    # Scores recorded with llm.score are compared pairwise like the other metrics.
    politeness = verdict["metrics"]["score:politeness"]
    assert politeness["stable"] == pytest.approx(0.9)
    assert politeness["candidate"] == pytest.approx(0.7)
    assert politeness["status"] == "regressed"


def test_a_latency_budget_binds_the_candidate_of_its_workflow(gate_project: MakeProject) -> None:
    project = gate_project(
        {STABLE: {"latency_ms": 5}, CANDIDATE: {"latency_ms": 60}},
        stable=STABLE,
        gate={"latency_p50_max_ratio": None, "latency_p95_max_ratio": None, "min_cases": 10},
    )
    project.pytester.makepyfile(
        test_wf="""
        import pytest

        @pytest.mark.latency_budget(p95_ms=30)
        @pytest.mark.parametrize("n", range(25))
        def test_quick(llm, n):
            assert llm.chat([{"role": "user", "content": f"Hello number {n}"}]).text

        @pytest.mark.parametrize("n", range(25))
        def test_slow_is_fine(llm, n):
            assert llm.chat([{"role": "user", "content": f"Good day number {n}"}]).text
        """
    )

    result = project.pytester.runpytest(*GATE)

    verdict = project.verdict()
    budget = verdict["slices"]["workflow:test_quick"]["latency_p95_ms:budget"]
    assert budget["status"] == "regressed", budget["message"]
    assert budget["candidate_interval"][0] > 30
    assert budget["limit"] == "<= 30 ms"
    assert "latency_p95_ms:budget" not in verdict["slices"]["workflow:test_slow_is_fine"]
    assert ("latency_p95_ms:budget", "workflow:test_quick") in {
        (r["metric"], r["scope"]) for r in verdict["regressions"]
    }
    assert result.ret == 1


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("latency_budget(p95_ms=-3)", "*latency_budget*p95_ms*"),
        ("model_contract(jsn=True)", "*model_contract*jsn*"),
        ("quality(min_pass_rate=95)", "*quality*min_pass_rate*"),
        ("model_contract(schema='missing.json')", "*model_contract*missing.json*"),
    ],
)
def test_a_bad_marker_is_a_usage_error_naming_the_test_and_argument(
    gate_project: MakeProject, marker: str, message: str
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE)
    project.pytester.makepyfile(
        test_wf=f"""
        import pytest

        @pytest.mark.{marker}
        def test_flow(llm):
            assert llm.chat([{{"role": "user", "content": "Hello"}}]).text
        """
    )

    result = project.pytester.runpytest(*GATE)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*test_wf.py::test_flow*{message.strip('*')}*"])
    verdict = project.verdict()
    assert verdict["verdict"] == "error"


def test_the_markers_are_listed_by_pytest_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")

    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.model_contract(json=False, schema=None*",
            "*@pytest.mark.latency_budget(*",
            "*@pytest.mark.cost_budget(*",
            "*@pytest.mark.quality(*",
            "*@pytest.mark.workflow(name)*",
        ]
    )
