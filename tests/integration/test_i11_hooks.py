"""Issue 11, extension hooks: call_recorded, metrics, verdict, each end to end through pytester.

The docstring example of each hookspec is run as the project's conftest.py (taken from the
docstring itself), so the examples readers copy are the ones tested.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import DEFAULT_PRICE

from pytest_modelgate import hooks

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]
GATE = ("--stable-model", "sim-a", "--candidate-model", "sim-b")
CASES = 40
# Everything but the plugin's metric within easy reach: pass and error rates do not decide here,
# latency (loopback jitter) and cost are not gated.
LIMITS: dict[str, Any] = {
    "pass_rate_max_drop": 0.3,
    "error_rate_max_rise": 0.3,
    "fallback_rate_max_rise": 0.3,
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
    "cost_per_call_max_ratio": None,
}
WORKFLOW = f"""
import pytest

@pytest.mark.parametrize("case", range({CASES}), ids=lambda i: f"q{{i}}")
def test_answer(llm, case):
    reply = llm.chat([{{"role": "user", "content": f"Where is my order {{case}}?"}}])
    assert reply.text
"""
POLITE = "Thank you for asking. Please find your order status in the account page."
CURT = "Order status is on the account page."
POLITE_METRIC = """
from pytest_modelgate.judge.metrics import CustomMetric

def pytest_modelgate_metrics(config):
    return [
        CustomMetric(
            name="polite",
            label="politeness",
            kind="rate",
            extract=lambda call: "please" in call.text.lower(),
            margin=0.05,
        )
    ]
"""


def example(hook: Callable[..., Any]) -> str:
    """The ``Example::`` block of a hookspec's docstring, dedented."""
    doc = inspect.getdoc(hook) or ""
    _, marker, block = doc.partition("Example, in ``conftest.py``::")
    if not marker:
        _, marker, block = doc.partition("Example::")
    assert marker, f"{hook.__name__} has no example"
    return textwrap.dedent(block.strip("\n")) + "\n"


def scripted(polite_share: float) -> dict[str, Any]:
    """A simulated model whose first CASES replies are polite at ``polite_share``."""
    polite = round(CASES * polite_share)
    script = [{"content": POLITE if i < polite else CURT} for i in range(CASES)]
    return {"latency_ms": 2, "script": script}


def project_with(
    gate_project: MakeProject,
    conftest: str,
    *,
    candidate_polite: float,
    gate: dict[str, Any] | None = None,
) -> GateProject:
    project = gate_project(
        {"sim-a": scripted(1.0), "sim-b": scripted(candidate_polite)},
        gate={**LIMITS, **(gate or {})},
    )
    project.pytester.makeconftest(conftest)
    project.pytester.makepyfile(test_wf=WORKFLOW)
    return project


def run(project: GateProject, *args: str, workers: int | None = None) -> pytest.RunResult:
    if workers:
        return project.pytester.runpytest_subprocess(*GATE, "-n", str(workers), *args)
    return project.pytester.runpytest(*GATE, *args)


# --------------------------------------------------------------------------------------------
# pytest_modelgate_metrics


@pytest.mark.parametrize("workers", [None, 2], ids=["in-process", "xdist"])
def test_a_less_polite_candidate_fails_on_the_plugin_metric(
    gate_project: MakeProject, workers: int | None
) -> None:
    """A plugin's rate is judged like a built-in one: 100% -> 20% polite, 5 points allowed.

    Under xdist the extract function runs on the workers and only its values reach the
    controller, which judges them."""
    project = project_with(gate_project, POLITE_METRIC, candidate_polite=0.2)
    result = run(project, workers=workers)

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*politeness: 100.0% -> 20.0% (-80.0 pts*worse than allowed*"])
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    polite = verdict["metrics"]["polite"]
    assert polite["status"] == "regressed"
    assert polite["unit"] == "rate"
    assert (polite["stable"], polite["candidate"]) == (1.0, 0.2)
    assert polite["samples"] == {"stable": CASES, "candidate": CASES}
    assert polite["limit"] == "-5.0 pts"
    assert polite["test"] == "mcnemar_mid_p+newcombe"
    assert [r["metric"] for r in verdict["regressions"]] == ["polite"]
    # The values travel in the records, per call: 1.0 polite, 0.0 not.
    candidate = [r for r in project.records() if r["arm"] == "candidate"]
    values = sorted(call["extra"]["polite"] for r in candidate for call in r["calls"])
    assert values == [0.0] * 32 + [1.0] * 8


def test_the_margin_in_modelgate_yaml_overrides_the_metrics_own(
    gate_project: MakeProject,
) -> None:
    """`gate: metrics: {polite: 0.8}` allows 80 points: the same drop to 50% passes."""
    project = project_with(
        gate_project, POLITE_METRIC, candidate_polite=0.5, gate={"metrics": {"polite": 0.8}}
    )
    result = run(project)

    assert result.ret == 0, result.stdout.str()
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    polite = verdict["metrics"]["polite"]
    assert (polite["status"], polite["limit"], polite["candidate"]) == ("ok", "-80.0 pts", 0.5)
    assert polite["message"].startswith("politeness: 100.0% -> 50.0% (-50.0 pts")
    assert polite["message"].endswith("within allowed -80.0 pts")
    result.stdout.fnmatch_lines(
        ["| politeness * | 100.0% (n=40) * | 50.0% (n=40) * | -80.0 pts | ok *"]
    )


def test_the_hookspec_example_metrics_are_compared(gate_project: MakeProject) -> None:
    """The docstring's two metrics: a rate and a ratio of reply lengths, both in the verdict."""
    project = project_with(
        gate_project, example(hooks.pytest_modelgate_metrics), candidate_polite=0.0
    )
    result = run(project)

    assert result.ret == 1
    metrics = project.verdict()["metrics"]
    assert metrics["polite"]["status"] == "regressed"
    chars = metrics["reply_chars"]
    # Curt replies are shorter: an improvement of the ratio, against a x1.50 limit.
    assert chars["change_kind"] == "ratio"
    assert chars["limit"] == "x1.50"
    assert chars["change"] == pytest.approx(len(CURT) / len(POLITE), abs=1e-4)
    assert chars["status"] == "improved"


def test_a_mean_metric_lower_is_better_regresses_on_a_rise(gate_project: MakeProject) -> None:
    """kind='mean' with higher_is_better=False: words per reply may rise by 2; they rise by 5."""
    conftest = """
from pytest_modelgate.judge.metrics import CustomMetric

def pytest_modelgate_metrics(config):
    return [CustomMetric(name="words", kind="mean", higher_is_better=False, margin=2,
                         extract=lambda call: len(call.text.split()))]
"""
    # Stable: curt (7 words); candidate: polite (13 words).
    project = gate_project(
        {"sim-a": scripted(0.0), "sim-b": scripted(1.0)}, gate={**LIMITS, "metrics": {}}
    )
    project.pytester.makeconftest(conftest)
    project.pytester.makepyfile(test_wf=WORKFLOW)
    result = run(project)

    assert result.ret == 1
    words = project.verdict()["metrics"]["words"]
    rise = len(POLITE.split()) - len(CURT.split())
    assert (words["status"], words["change"], words["limit"]) == ("regressed", rise, "+2")
    assert words["unit"] == "number"
    short, long = len(CURT.split()), len(POLITE.split())
    result.stdout.fnmatch_lines(
        [f"regression: words: {short} -> {long} (+{rise}, CI*worse than allowed +2"]
    )


@pytest.mark.parametrize(
    ("conftest", "gate", "expected"),
    [
        (
            POLITE_METRIC.replace('name="polite"', 'name="pass_rate"'),
            {},
            "*pytest_modelgate_metrics: metric 'pass_rate': the name of a built-in metric*",
        ),
        (
            POLITE_METRIC,
            {"metrics": {"politeness": 0.1}},
            "*gate.metrics names politeness, which no pytest_modelgate_metrics hook defines "
            "(defined: polite)*",
        ),
        (
            POLITE_METRIC.replace("margin=0.05", "margin=5"),
            {},
            "*metric 'polite': a rate's margin is a fraction (0.05 = 5 points), got 5*",
        ),
    ],
    ids=["built-in-name", "unknown-margin", "rate-margin-above-1"],
)
def test_a_wrong_metric_definition_is_a_usage_error(
    gate_project: MakeProject, conftest: str, gate: dict[str, Any], expected: str
) -> None:
    project = project_with(gate_project, conftest, candidate_polite=1.0, gate=gate)
    result = run(project)

    assert result.ret == 4
    result.stderr.fnmatch_lines([expected])
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any("pytest_modelgate_metrics" in reason for reason in verdict["reasons"])


def test_an_extract_that_raises_fails_its_test_and_the_verdict_is_error(
    gate_project: MakeProject,
) -> None:
    conftest = POLITE_METRIC.replace(
        'extract=lambda call: "please" in call.text.lower()',
        "extract=lambda call: call.text.index('Please') >= 0",
    )
    project = project_with(gate_project, conftest, candidate_polite=0.5)
    result = run(project)

    assert result.ret == 3
    outcomes = result.parseoutcomes()
    # Half the candidate's replies have no "Please": those 20 tests fail, saying why.
    assert outcomes["failed"] == 20
    result.stdout.fnmatch_lines(
        [
            "*modelgate: an extension hook failed:*",
            "*metric 'polite': extract raised ValueError('substring not found') on call 0 "
            "(attempt 1) of model 'sim-b'*",
        ]
    )
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any("extract raised ValueError" in reason for reason in verdict["reasons"])


def test_an_extract_of_the_wrong_type_fails_closed(gate_project: MakeProject) -> None:
    conftest = POLITE_METRIC.replace(
        'extract=lambda call: "please" in call.text.lower()',
        "extract=lambda call: call.text.lower().count('please')",
    )
    project = project_with(gate_project, conftest, candidate_polite=1.0)
    result = run(project)

    assert result.ret == 3
    result.stdout.fnmatch_lines(
        [
            "*metric 'polite': extract raised CustomMetricError(\"metric 'polite' (a rate) "
            'extracted 1: return True, False or None")*'
        ]
    )
    assert project.verdict()["verdict"] == "error"


# --------------------------------------------------------------------------------------------
# pytest_modelgate_call_recorded


def test_the_call_recorded_example_logs_every_attempt(gate_project: MakeProject) -> None:
    """One line per attempt, a retried 429 included, with the fields the example writes."""
    project = gate_project(
        {"sim-a": {"latency_ms": 2, "script": [{"status": 429}]}, "sim-b": {"latency_ms": 2}},
        gate=LIMITS,
    )
    project.pytester.makeconftest(example(hooks.pytest_modelgate_call_recorded))
    project.pytester.makepyfile(test_wf=WORKFLOW.replace(f"range({CASES})", "range(3)"))
    result = run(project)

    assert result.ret in (0, 1), result.stdout.str()
    lines = (project.pytester.path / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    calls = [json.loads(line) for line in lines]
    # 3 cases x 2 arms, and the stable arm's first call was retried once after its 429.
    assert len(calls) == 7
    assert sorted({c["arm"] for c in calls}) == ["candidate", "stable"]
    assert sum(c["model"] == "sim-a" for c in calls) == 4
    assert all(c["test"].startswith("test_wf.py::test_answer[") for c in calls)
    recorded = sum(len(r["calls"]) for r in project.records())
    assert recorded == len(calls)


def test_call_recorded_runs_on_the_xdist_workers_with_scrubbed_records(
    gate_project: MakeProject,
) -> None:
    """Under -n 2 the hook runs where the test runs; the record it gets names no key."""
    conftest = """
import json, os

def pytest_modelgate_call_recorded(record, config):
    with open(f"seen-{os.environ.get('PYTEST_XDIST_WORKER', 'controller')}.jsonl", "a") as out:
        out.write(record.model_dump_json() + "\\n")
"""
    project = gate_project(
        {"sim-a": {"latency_ms": 2}, "sim-b": {"latency_ms": 2, "script": [{"status": 401}]}},
        gate=LIMITS,
    )
    project.pytester.makeconftest(conftest)
    project.pytester.makepyfile(test_wf=WORKFLOW.replace(f"range({CASES})", "range(6)"))
    run(project, workers=2)

    seen = sorted(p.name for p in project.pytester.path.glob("seen-*.jsonl"))
    assert "seen-controller.jsonl" not in seen
    assert seen
    assert all(name.startswith("seen-gw") for name in seen)
    texts = [p.read_text(encoding="utf-8") for p in project.pytester.path.glob("seen-*.jsonl")]
    records = [json.loads(line) for text in texts for line in text.splitlines()]
    assert len(records) == 12
    assert any(r["error_kind"] == "auth" for r in records)
    assert all(project.key not in text for text in texts)


def test_a_call_recorded_hook_that_raises_fails_the_test_not_the_run(
    gate_project: MakeProject,
) -> None:
    conftest = """
def pytest_modelgate_call_recorded(record, config):
    if record.arm == "candidate" and record.test_id.endswith("q1-candidate-sim-b]"):
        raise RuntimeError("dashboard is down")
"""
    project = gate_project({"sim-a": {"latency_ms": 2}, "sim-b": {"latency_ms": 2}}, gate=LIMITS)
    project.pytester.makeconftest(conftest)
    project.pytester.makepyfile(test_wf=WORKFLOW.replace(f"range({CASES})", "range(3)"))
    result = run(project)

    assert result.ret == 3
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_answer[[]q1-candidate-sim-b[]]*",
            "*a pytest_modelgate_call_recorded hook raised RuntimeError('dashboard is down') "
            "on call 0 (attempt 1) of model 'sim-b'*",
        ]
    )
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any("dashboard is down" in reason for reason in verdict["reasons"])


# --------------------------------------------------------------------------------------------
# pytest_modelgate_verdict


def test_the_verdict_example_publishes_and_tightens(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six cases cannot show non-inferiority: inconclusive, which the example turns into fail,
    after publishing a copy and noting the commit."""
    monkeypatch.setenv("GITHUB_SHA", "abc1234")
    project = gate_project(
        {"sim-a": {"latency_ms": 2}, "sim-b": {"latency_ms": 2}},
        gate={**LIMITS, "pass_rate_max_drop": 0.02},
    )
    project.pytester.makeconftest(example(hooks.pytest_modelgate_verdict))
    project.pytester.makepyfile(test_wf=WORKFLOW.replace(f"range({CASES})", "range(6)"))
    result = run(project)

    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert "commit abc1234" in verdict["reasons"]
    assert "inconclusive is not enough for this repository" in verdict["reasons"]
    assert verdict["rollout"]["allowed"] is False
    dashboard = json.loads((project.pytester.path / "gate-dashboard.json").read_text("utf-8"))
    # Published before the hook tightened it: the judge's own answer.
    assert dashboard == {"verdict": "inconclusive", "run_id": verdict["run_id"]}


def test_a_verdict_hook_cannot_loosen_the_verdict(gate_project: MakeProject) -> None:
    conftest = """
def pytest_modelgate_verdict(config, verdict):
    verdict["verdict"] = "pass"
"""
    project = gate_project(
        {"sim-a": {"latency_ms": 2}, "sim-b": {"latency_ms": 2}},
        gate={**LIMITS, "pass_rate_max_drop": 0.02},
    )
    project.pytester.makeconftest(conftest)
    project.pytester.makepyfile(test_wf=WORKFLOW.replace(f"range({CASES})", "range(6)"))
    result = run(project)

    assert result.ret == 3
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any("turned the verdict 'inconclusive' into 'pass'" in r for r in verdict["reasons"])


# --------------------------------------------------------------------------------------------
# pytest_modelgate_judge


def test_the_judge_example_replaces_the_built_in_judge(gate_project: MakeProject) -> None:
    """The docstring's FixedLimitJudge with a x1.05 cost limit fails a candidate 10% dearer,
    which the built-in judge (default x1.15) lets through: the hook's judge decided."""
    dearer = {key: round(value * 1.1, 6) for key, value in DEFAULT_PRICE.items()}
    models = {"sim-a": {"latency_ms": 2}, "sim-b": {"latency_ms": 2}}
    gate = {**LIMITS, "cost_per_call_max_ratio": 1.15}

    built_in = gate_project(models, gate=gate, prices={"sim-b": dearer})
    built_in.pytester.makepyfile(test_wf=WORKFLOW)
    assert run(built_in).ret == 0
    assert built_in.verdict()["verdict"] == "pass"

    hooked = gate_project(models, gate=gate, prices={"sim-b": dearer})
    hooked.pytester.makeconftest(example(hooks.pytest_modelgate_judge))
    hooked.pytester.makepyfile(test_wf=WORKFLOW)
    result = run(hooked)

    assert result.ret == 1
    verdict = hooked.verdict()
    assert verdict["verdict"] == "fail"
    assert any("cost per call" in reason and "x1.05" in reason for reason in verdict["reasons"])
