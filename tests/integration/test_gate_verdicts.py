"""The gate's decision end to end: verdict, exit status, terminal summary and the file on disk.

The built-in judge is the paired statistical judge (``pytest_modelgate/judge/paired.py``): ``pass``
only when non-inferiority is shown for every gated metric, ``fail`` when a whole interval is beyond
its margin and the difference is significant after Holm's correction, else ``inconclusive``.

Each failing gate injects one clear regression into the candidate (in the simulator or in its
price), over enough cases for the judge to show it, and keeps every other metric level, so the
verdict must name exactly that metric. Tests about plumbing rather than statistics run a handful
of cases and widen the margins to what those cases can show.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

from pytest_modelgate.judge.metrics import METRICS
from pytest_modelgate.verdict.model import validate_verdict

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

GATE = ("--stable-model", "sim-a", "--candidate-model", "sim-b")
METRIC_NAMES = [spec.name for spec in METRICS]

# Loopback timings of a few milliseconds jitter by several milliseconds under load (more under
# xdist), far more than the default x1.2 allows. Tests about other metrics switch the latency
# limits off so that only the metric under test can decide; the latency test injects x5.
NO_LATENCY_GATE: dict[str, Any] = {
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
}
# With no failure on either arm, the 95% interval of a rate difference still spans about +-28
# points at 10 cases (+-24 at 12): the default margins of 1-2 points cannot be shown by a
# handful of cases. Plumbing tests gate the rates with margins their few cases can show, so a
# healthy run can still `pass`; the deterministic cost keeps its default x1.15.
SMALL_SUITE: dict[str, Any] = loose_gate(0.6, gate_cost=True)
# A small suite gated on the error rate alone, at its default +1.0 pts margin, with retries
# enough that every test passes however often the candidate's attempts fail.
ERROR_RATE_ONLY: dict[str, Any] = {
    "gate": {**SMALL_SUITE, "error_rate_max_rise": 0.01},
    "client": {"max_retries": 6},
}
# Fifty cases bound a no-event rate difference to about +-7 points. Regression tests keep the
# default margin of the metric under test and give the other rates one that 50 cases can show,
# so every metric but the injected one comes out `ok`.
OTHER_RATES_AT_50: dict[str, Any] = {
    "pass_rate_max_drop": 0.2,
    "error_rate_max_rise": 0.2,
    "fallback_rate_max_rise": 0.2,
}
FAST: dict[str, Any] = {"latency_ms": 2}
# Enough paired cases for the judge to show a clear regression (and well above the 20 cases a
# workflow slice needs to be gated); the simulator answers them in well under a second.
ENOUGH_CASES = 50

# Tickets whose category the simulator derives from keywords (docs/simulator.md), cycled over the
# cases; the case number makes every request body distinct, so the simulator draws its faults
# independently per case.
TRIAGE_TEMPLATE = """
import pytest

SYSTEM = {"role": "system", "content": "You triage support tickets. Answer in JSON."}
TICKETS = [
    ("I want a refund for my order", "refund"),
    ("Please give my money back", "refund"),
    ("I was charged twice this month", "billing"),
    ("Where is the invoice for March?", "billing"),
    ("My package did not arrive", "shipping"),
    ("The tracking number shows nothing", "shipping"),
    ("I forgot my password", "account"),
    ("I cannot log in to my account", "account"),
    ("The app shows an error on start", "technical"),
    ("The export button is broken", "technical"),
]
CASES = [
    (f"{TICKETS[i % len(TICKETS)][0]} (case {i})", TICKETS[i % len(TICKETS)][1])
    for i in range(@CASES@)
]


@pytest.mark.parametrize(("text", "category"), CASES, ids=[f"ticket{i}" for i in range(@CASES@)])
def test_triage(llm, text, category):
    reply = llm.chat([SYSTEM, {"role": "user", "content": text}])
    assert reply.json()["category"] == category
"""

REPLIES_TEMPLATE = """
import pytest


@pytest.mark.parametrize("n", range(@CASES@))
def test_reply(llm, n):
    assert llm.chat([{"role": "user", "content": f"Hello, this is message number {n}"}]).text
"""


def triage(cases: int) -> str:
    """A workflow of ``cases`` ticket classifications, each checked against its category."""
    return TRIAGE_TEMPLATE.replace("@CASES@", str(cases))


def replies(cases: int) -> str:
    """A workflow of ``cases`` plain replies (no answer can be wrong, only missing)."""
    return REPLIES_TEMPLATE.replace("@CASES@", str(cases))


TRIAGE = triage(10)
REPLIES = replies(10)

STREAMS = """

@pytest.mark.parametrize("order", ["SO-10423", "SO-20931"])
def test_streamed_reply(llm, order):
    reply = llm.chat([{"role": "user", "content": f"Where is {order}?"}], stream=True)
    assert reply.text
    assert reply.ttft_ms is not None
"""

WRONG_ON_EVERY_MODEL = """

def test_wrong_expectation(llm):
    reply = llm.chat([SYSTEM, {"role": "user", "content": "I want a refund, now"}])
    assert reply.json()["category"] == "billing"
"""


def run_gate(project: GateProject, *args: str, workers: int | None = None) -> pytest.RunResult:
    """Run the gate in-process, or in a subprocess with pytest-xdist when ``workers`` is set."""
    if workers:
        return project.pytester.runpytest_subprocess(*GATE, *args, "-n", str(workers))
    return project.pytester.runpytest(*GATE, *args)


def served(project: GateProject) -> Counter[str | None]:
    return Counter(request.model for request in project.sim.requests)


def server_errors(project: GateProject, model: str) -> int:
    return sum(1 for r in project.sim.requests if r.model == model and r.status >= 500)


def table(result: pytest.RunResult) -> dict[str, list[str]]:
    """The rows of the comparison table in the terminal summary, by metric label."""
    rows: dict[str, list[str]] = {}
    for line in result.outlines:
        if line.startswith("|") and line.endswith("|"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            if cells[0].strip("-"):  # not the separator under the header
                rows[cells[0]] = cells[1:]
    return rows


def regressed(verdict: dict[str, Any]) -> list[str]:
    return [regression["metric"] for regression in verdict["regressions"]]


WORKERS = pytest.mark.parametrize("workers", [None, 2], ids=["serial", "xdist"])


# --------------------------------------------------------------------------------------------
# pass


@WORKERS
def test_a_healthy_candidate_passes(gate_project: MakeProject, workers: int | None) -> None:
    same = {"latency_ms": 30, "ttft_ms": 15}
    # Twelve cases: the rates get margins twelve cases can show (see SMALL_SUITE). Latency stays
    # gated, with room for loopback jitter (see NO_LATENCY_GATE): the median is robust to a stray
    # slow answer; a p95 over a dozen calls is about the slowest call, and the whole interval,
    # not just the estimate, must stay within the margin. Two streamed cases give no interval
    # at all (fewer than five cases), so TTFT is reported, not gated.
    wide = {
        **SMALL_SUITE,
        "latency_p50_max_ratio": 2.0,
        # A p95 over 12 calls is reported, never gated (fewer than 100 calls per arm).
        "latency_p95_max_ratio": 5.0,
        "ttft_p95_max_ratio": None,
    }
    project = gate_project({"sim-a": same, "sim-b": same}, gate=wide)
    project.pytester.makepyfile(test_wf=TRIAGE + STREAMS)

    result = run_gate(project, workers=workers)

    result.assert_outcomes(passed=24)
    assert result.ret == 0
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["schema_version"] == "2"
    assert verdict["verdict"] == "pass"
    assert verdict["complete"] is True
    assert verdict["exit_status"] == 0
    assert re.fullmatch(r"[0-9a-f]{32}", verdict["run_id"])
    assert verdict["stable"]["model"] == "sim-a"
    assert verdict["candidate"] == {
        "model": "sim-b",
        "provider": None,
        "base_url": project.sim.base_url,
    }
    assert verdict["regressions"] == []
    # Pass rate, error rate, fallback rate, p50 and cost; tokens, p95 and TTFT are not gated.
    assert verdict["reasons"] == [
        "non-inferiority shown for all 5 gated comparisons (12 paired cases, 95% intervals)"
    ]
    assert list(verdict["metrics"]) == METRIC_NAMES
    for name, metric in verdict["metrics"].items():
        assert metric["stable"] is not None, name
        assert metric["candidate"] is not None, name
        assert metric["status"] in ("ok", "improved", "not_gated"), (name, metric["message"])
        assert metric["scope"] == "overall", name
    assert verdict["metrics"]["tokens_per_call"]["status"] == "not_gated"
    assert verdict["metrics"]["ttft_p95_ms"]["samples"] == {"stable": 2, "candidate": 2}
    # One record per HTTP attempt the simulator answered, on each arm.
    assert served(project) == {"sim-a": 12, "sim-b": 12}
    assert verdict["metrics"]["error_rate"]["samples"] == {"stable": 12, "candidate": 12}
    assert verdict["metrics"]["cost_per_call_usd"]["change"] == 1.0
    assert verdict["tests"]["stable"] == {"passed": 12, "failed": 0, "skipped": 0, "error": 0}
    assert verdict["tests"]["candidate"] == verdict["tests"]["stable"]
    # Every case passed on both arms: McNemar's test on the paired table, and an interval around
    # zero that the -60 pts margin contains, which is what "ok" means.
    pass_rate = verdict["metrics"]["pass_rate"]
    assert pass_rate["n"] == 12
    assert pass_rate["test"] == "mcnemar_mid_p+newcombe"
    assert pass_rate["p_value"] == 1.0
    low, high = pass_rate["change_interval"]
    assert -60.0 < low < 0.0 < high < 60.0
    assert pass_rate["cases_needed"] is None
    # Each workflow is a slice, below the 20 cases a slice needs to be gated.
    assert sorted(verdict["slices"]) == ["workflow:test_streamed_reply", "workflow:test_triage"]
    assert verdict["slices"]["workflow:test_triage"]["pass_rate"]["n"] == 10
    for scope, metrics in verdict["slices"].items():
        for name, metric in metrics.items():
            assert metric["status"] == "not_gated", (scope, name)
    rollout = verdict["rollout"]
    assert rollout["allowed"] is True
    assert [(step["phase"], step["traffic_percent"]) for step in rollout["plan"]] == [
        ("canary", 5),
        ("canary", 25),
        ("canary", 50),
        ("canary", 100),
    ]
    assert rollout["kill_switch"]["route_to"] == "sim-a"

    rows = table(result)
    assert list(rows) == [
        "metric",
        "pass rate",
        "error rate",
        "fallback rate",
        "p50 latency",
        "p95 latency",
        "p95 time to first token",
        "cost per call",
        "tokens per call",
    ]
    assert rows["metric"] == ["stable", "candidate", "change", "limit", "status"]
    assert rows["pass rate"] == [
        "100.0% (n=12 tests)",
        "100.0% (n=12 tests)",
        "+0.0 pts [-24.2, +24.2]",
        "-60.0 pts",
        "ok",
    ]
    assert rows["error rate"] == [
        "0.0% (n=12 attempts)",
        "0.0% (n=12 attempts)",
        "+0.0 pts [-24.2, +24.2]",
        "+60.0 pts",
        "ok",
    ]
    assert rows["p50 latency"][3] == "x2.00"
    assert rows["p95 time to first token"][0].endswith("(n=2 calls)")
    assert rows["cost per call"][2:] == ["x1.00 [x1.00, x1.00]", "x1.15", "ok"]
    assert rows["tokens per call"][3:] == ["-", "not gated"]
    result.stdout.fnmatch_lines(
        [
            "*= modelgate =*",
            "| metric *",
            "note: non-inferiority shown for all 5 gated comparisons (12 paired cases, 95% "
            "intervals)",
            "rollout: 5% -> 25% -> 50% -> 100% (at least * requests per step)",
            "modelgate verdict: PASS (stable sim-a vs candidate sim-b)",
            f"verdict written to {project.verdict_path}",
        ]
    )
    result.stdout.no_fnmatch_line("regression:*")
    result.stdout.no_fnmatch_line("*INCONCLUSIVE*")


def test_strict_does_not_fail_a_clean_run(gate_project: MakeProject) -> None:
    # Ten cases: margins ten cases can show (see SMALL_SUITE), so the clean run is a `pass` and
    # strict mode, which also fails an inconclusive run, has nothing to fail.
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE)
    project.pytester.makepyfile(test_wf=TRIAGE)

    result = run_gate(project, "--modelgate-strict")

    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["strict"] is True
    assert verdict["exit_status"] == 0
    assert verdict["reasons"][0].startswith("non-inferiority shown for all ")


# --------------------------------------------------------------------------------------------
# one regression at a time


def test_retried_server_errors_fail_the_gate_on_error_rate(gate_project: MakeProject) -> None:
    # Every call succeeds in the end (tests pass), but each failed attempt counts.
    project = gate_project(
        {"sim-a": FAST, "sim-b": {**FAST, "server_error_rate": 0.3}},
        # The error rate keeps its default +1.0 pts margin; the other rates get one 50 cases
        # can show, so that they come out `ok`.
        gate={**NO_LATENCY_GATE, **OTHER_RATES_AT_50, "error_rate_max_rise": 0.01},
        client={"max_retries": 6},
    )
    project.pytester.makepyfile(test_wf=replies(ENOUGH_CASES))

    result = run_gate(project)

    result.assert_outcomes(passed=2 * ENOUGH_CASES)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert regressed(verdict) == ["error_rate"]

    attempts = served(project)["sim-b"]
    failures = server_errors(project, "sim-b")
    assert failures > 0
    assert attempts == ENOUGH_CASES + failures
    metric = verdict["metrics"]["error_rate"]
    assert metric["stable"] == 0.0
    assert metric["candidate"] == round(failures / attempts, 6)
    assert metric["status"] == "regressed"
    # Several attempts per case: the paired bootstrap over cases, Wilcoxon on the differences.
    assert metric["n"] == ENOUGH_CASES
    assert metric["test"] == "wilcoxon+paired_bootstrap"
    low, high = metric["change_interval"]
    assert 1.0 < low <= metric["change"] <= high  # the whole interval beyond +1.0 pts
    assert metric["p_value"] <= metric["p_adjusted"] < 0.05
    assert verdict["metrics"]["pass_rate"]["status"] == "ok"
    # Failed attempts are unbilled: the cost per successful call does not move.
    assert verdict["metrics"]["cost_per_call_usd"]["status"] == "ok"
    assert verdict["metrics"]["cost_per_call_usd"]["change"] == 1.0

    regression = verdict["regressions"][0]
    assert (regression["scope"], regression["limit"]) == ("overall", "+1.0 pts")
    expected = (
        f"error rate: 0.0% -> {failures / attempts:.1%} ({metric['change']:+.1f} pts, "
        f"CI {low:+.1f}..{high:+.1f}, n={ENOUGH_CASES} cases): worse than allowed +1.0 pts"
    )
    assert regression["message"] == expected
    assert verdict["reasons"] == [expected]
    assert verdict["rollout"]["allowed"] is False
    assert verdict["rollout"]["plan"] == []
    row = table(result)["error rate"]
    assert row[0] == f"0.0% (n={ENOUGH_CASES} attempts)"
    assert row[1].startswith(f"{failures / attempts:.1%} (n=")
    assert row[4] == "REGRESSED"
    result.stdout.fnmatch_lines(
        [
            f"regression: {expected}",
            "rollout: none (the candidate regressed: no rollout)",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


def test_server_errors_that_surface_fail_tests_and_error_rate(gate_project: MakeProject) -> None:
    project = gate_project(
        {"sim-a": FAST, "sim-b": {**FAST, "server_error_rate": 0.4}},
        # Pass rate and error rate are both under test, at their default margins.
        gate={**NO_LATENCY_GATE, "fallback_rate_max_rise": 0.2},
        client={"max_retries": 0},
    )
    project.pytester.makepyfile(test_wf=replies(ENOUGH_CASES))

    result = run_gate(project)

    failures = server_errors(project, "sim-b")
    assert failures > 0
    result.assert_outcomes(passed=2 * ENOUGH_CASES - failures, failed=failures)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert regressed(verdict) == ["pass_rate", "error_rate"]
    assert [r["scope"] for r in verdict["regressions"]] == ["overall", "overall"]
    error_rate = verdict["metrics"]["error_rate"]
    pass_rate = verdict["metrics"]["pass_rate"]
    assert error_rate["candidate"] == failures / ENOUGH_CASES
    assert pass_rate["candidate"] == (ENOUGH_CASES - failures) / ENOUGH_CASES
    # One attempt per case on each arm: a (mid-p) McNemar test on the paired outcomes.
    for metric in (error_rate, pass_rate):
        assert metric["n"] == ENOUGH_CASES
        assert metric["test"] == "mcnemar_mid_p+newcombe"
        assert metric["p_adjusted"] < 0.05
    assert error_rate["change_interval"][0] > 1.0
    assert pass_rate["change_interval"][1] < -2.0
    assert verdict["tests"]["candidate"]["failed"] == failures
    assert len(verdict["tests"]["cases_failed_candidate_only"]) == failures
    assert verdict["tests"]["cases_failed_both"] == []


def test_a_slower_candidate_fails_the_gate_on_latency(gate_project: MakeProject) -> None:
    # x5 injected against the default x1.2 limit: jitter cannot close a gap that wide. The rates
    # get margins 40 cases can show (see OTHER_RATES_AT_50), so only latency can decide.
    cases = 40
    project = gate_project(
        {"sim-a": {"latency_ms": 5}, "sim-b": {"latency_ms": 25}}, gate=OTHER_RATES_AT_50
    )
    project.pytester.makepyfile(test_wf=replies(cases))

    result = run_gate(project)

    result.assert_outcomes(passed=2 * cases)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert regressed(verdict)[0] == "latency_p50_ms"
    assert set(regressed(verdict)) <= {"latency_p50_ms", "latency_p95_ms"}
    p50 = verdict["metrics"]["latency_p50_ms"]
    assert p50["samples"] == {"stable": cases, "candidate": cases}
    assert p50["candidate"] >= 25
    assert p50["change"] > 1.2
    assert p50["n"] == cases
    assert p50["test"] == "wilcoxon+paired_bootstrap"
    assert p50["change_interval"][0] > 1.2  # the whole interval beyond x1.20
    assert p50["p_value"] <= p50["p_adjusted"] < 0.05
    for other in ("pass_rate", "error_rate", "cost_per_call_usd"):
        assert verdict["metrics"][other]["status"] == "ok", other

    regression = verdict["regressions"][0]
    assert (regression["scope"], regression["limit"]) == ("overall", "x1.20")
    message = regression["message"]
    ms = r"\d+(?:\.\d)? ms"
    ratio = r"x\d+\.\d\d"
    assert re.fullmatch(
        rf"p50 latency: {ms} -> {ms} \({ratio}, 95% CI {ratio}\.\.{ratio}, n={cases} cases\): "
        r"worse than allowed x1\.20",
        message,
    ), message
    assert table(result)["p50 latency"][4] == "REGRESSED"
    result.stdout.fnmatch_lines([f"regression: {message}", "modelgate verdict: FAIL*"])


def test_a_pricier_candidate_fails_the_gate_on_cost(gate_project: MakeProject) -> None:
    cases = 40
    project = gate_project(
        {"sim-a": FAST, "sim-b": FAST},
        # Cost keeps its default x1.15 margin; see OTHER_RATES_AT_50 for the rates.
        gate={**NO_LATENCY_GATE, **OTHER_RATES_AT_50},
        prices={"sim-b": {"input": 0.405, "output": 1.65, "cached_input": 0.105}},
    )
    project.pytester.makepyfile(test_wf=triage(cases))

    result = run_gate(project)

    result.assert_outcomes(passed=2 * cases)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert regressed(verdict) == ["cost_per_call_usd"]
    cost = verdict["metrics"]["cost_per_call_usd"]
    assert cost["change"] == 1.5
    assert cost["candidate"] == pytest.approx(cost["stable"] * 1.5, rel=1e-6)
    assert cost["samples"] == {"stable": cases, "candidate": cases}
    # Every price is x1.5 and both arms answered the same tokens: every case costs x1.5.
    assert cost["n"] == cases
    assert cost["change_interval"] == [1.5, 1.5]
    assert cost["p_value"] <= cost["p_adjusted"] < 0.05
    for other in ("pass_rate", "error_rate", "fallback_rate"):
        assert verdict["metrics"][other]["status"] == "ok", other
    regression = verdict["regressions"][0]
    assert (regression["scope"], regression["limit"]) == ("overall", "x1.15")
    assert re.fullmatch(
        r"cost per call: \$0\.\d{6} -> \$0\.\d{6} \(x1\.50, 95% CI x1\.50\.\.x1\.50, "
        rf"n={cases} cases\): worse than allowed x1\.15",
        regression["message"],
    ), regression["message"]
    assert table(result)["cost per call"][2:] == ["x1.50 [x1.50, x1.50]", "x1.15", "REGRESSED"]
    result.stdout.fnmatch_lines([f"regression: {regression['message']}"])


@WORKERS
def test_a_candidate_that_misclassifies_fails_the_gate_on_pass_rate(
    gate_project: MakeProject, workers: int | None
) -> None:
    project = gate_project(
        {"sim-a": FAST, "sim-b": {**FAST, "misclassify": 0.5}},
        # Pass rate keeps its default -2.0 pts margin; see OTHER_RATES_AT_50 for the others.
        gate={**NO_LATENCY_GATE, **OTHER_RATES_AT_50, "pass_rate_max_drop": 0.02},
    )
    project.pytester.makepyfile(test_wf=triage(ENOUGH_CASES))

    result = run_gate(project, workers=workers)

    assert result.ret == 1
    verdict = project.verdict()
    failed = verdict["tests"]["candidate"]["failed"]
    assert 0 < failed < ENOUGH_CASES
    result.assert_outcomes(passed=2 * ENOUGH_CASES - failed, failed=failed)
    assert verdict["verdict"] == "fail"
    assert regressed(verdict) == ["pass_rate"]
    assert verdict["tests"]["stable"] == {
        "passed": ENOUGH_CASES,
        "failed": 0,
        "skipped": 0,
        "error": 0,
    }
    cases = verdict["tests"]["cases_failed_candidate_only"]
    assert len(cases) == failed
    assert all(re.fullmatch(r"test_wf\.py::test_triage\[ticket\d+\]", c["case_id"]) for c in cases)
    assert verdict["tests"]["cases_failed_both"] == []
    # The model answered every call; it answered wrongly.
    assert verdict["metrics"]["error_rate"]["status"] == "ok"

    rate = (ENOUGH_CASES - failed) / ENOUGH_CASES
    metric = verdict["metrics"]["pass_rate"]
    assert metric["candidate"] == rate
    assert metric["n"] == ENOUGH_CASES
    assert metric["test"] == "mcnemar_mid_p+newcombe"
    low, high = metric["change_interval"]
    assert low <= metric["change"] <= high < -2.0  # the whole interval beyond -2.0 pts
    assert metric["p_value"] <= metric["p_adjusted"] < 0.05
    expected = (
        f"pass rate: 100.0% -> {rate:.1%} ({metric['change']:+.1f} pts, "
        f"CI {low:+.1f}..{high:+.1f}, n={ENOUGH_CASES} cases): worse than allowed -2.0 pts"
    )
    assert verdict["regressions"][0]["message"] == expected
    assert verdict["regressions"][0]["scope"] == "overall"
    row = table(result)["pass rate"]
    assert row[:2] == [
        f"100.0% (n={ENOUGH_CASES} tests)",
        f"{rate:.1%} (n={ENOUGH_CASES} tests)",
    ]
    assert row[4] == "REGRESSED"
    result.stdout.fnmatch_lines(
        [
            f"regression: {expected}",
            f"{failed} case* failed on the candidate only: test_wf.py::test_triage[[]ticket*",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


# --------------------------------------------------------------------------------------------
# noise is not a regression, and a small suite cannot show a small one


def test_a_candidate_identical_to_stable_does_not_fail(gate_project: MakeProject) -> None:
    # An A/A run: two model names, the same knobs, default margins. The arms disagree case by
    # case (each model draws its own misclassifications, server errors and latencies), which is
    # noise the judge must not call a regression, overall or in a workflow slice.
    same: dict[str, Any] = {
        "latency_ms": {"median": 3, "p95": 15},
        "misclassify": 0.1,
        "server_error_rate": 0.05,
    }
    cases = 60  # per workflow: both workflow slices are gated (min_cases 20)
    project = gate_project({"sim-a": same, "sim-b": same}, client={"max_retries": 6})
    project.pytester.makepyfile(test_wf=triage(cases) + replies(cases))

    result = run_gate(project)

    assert result.ret == 0
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["verdict"] in ("pass", "inconclusive"), verdict["reasons"]
    assert verdict["exit_status"] == 0
    assert verdict["regressions"] == []
    # There was noise to mistake for a regression: different cases failed on each arm, and
    # both arms had server errors.
    assert verdict["tests"]["cases_failed_candidate_only"]
    assert verdict["tests"]["cases_failed_stable_only"]
    assert server_errors(project, "sim-a") > 0
    assert server_errors(project, "sim-b") > 0
    assert verdict["metrics"]["pass_rate"]["n"] == 2 * cases
    assert verdict["metrics"]["pass_rate"]["p_value"] is not None
    assert sorted(verdict["slices"]) == ["workflow:test_reply", "workflow:test_triage"]
    scopes = {"overall": verdict["metrics"], **verdict["slices"]}
    for scope, metrics in scopes.items():
        assert metrics["pass_rate"]["status"] != "not_gated", scope
        for name, metric in metrics.items():
            assert metric["status"] != "regressed", (scope, name, metric["message"])
    result.stdout.no_fnmatch_line("regression:*")
    result.stdout.fnmatch_lines(
        [f"modelgate verdict: {verdict['verdict'].upper()} (stable sim-a vs candidate sim-b)"]
    )


def test_a_small_degradation_in_a_small_suite_is_inconclusive(gate_project: MakeProject) -> None:
    # A real degradation (one attempt in ten fails, retried) over twelve cases, against the
    # default +1.0 pts error-rate margin: too few cases to show it, or to rule it out. The other
    # rates get margins twelve cases can show (see SMALL_SUITE), so the error rate alone decides.
    cases = 12
    models = {"sim-a": FAST, "sim-b": {**FAST, "server_error_rate": 0.1}}
    project = gate_project(models, **ERROR_RATE_ONLY)
    project.pytester.makepyfile(test_wf=replies(cases))

    result = run_gate(project)

    result.assert_outcomes(passed=2 * cases)
    assert server_errors(project, "sim-b") > 0  # the degradation is real
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "inconclusive"
    assert verdict["exit_status"] == 0
    assert verdict["regressions"] == []
    error_rate = verdict["metrics"]["error_rate"]
    assert error_rate["status"] == "inconclusive"
    assert error_rate["stable"] == 0.0
    assert error_rate["candidate"] > 0.0
    assert error_rate["n"] == cases
    # Not shown within +1.0 pts; the suite cannot detect a rise that small; more cases would.
    assert error_rate["change_interval"][1] > 1.0
    assert error_rate["min_detectable_change"] > 1.0
    assert error_rate["cases_needed"] > cases
    message = error_rate["message"]
    assert message.startswith("error rate: 0.0% -> ")
    assert message.endswith(f"; about {error_rate['cases_needed']} cases would decide")
    assert verdict["reasons"] == [message]
    for name in ("pass_rate", "fallback_rate", "cost_per_call_usd"):
        assert verdict["metrics"][name]["status"] == "ok", name
    # Neither a go nor a no-go: shadow traffic only (issue 10 item 11: no canary steps until
    # a gate passes).
    rollout = verdict["rollout"]
    assert rollout["allowed"] is True
    assert [(step["phase"], step["traffic_percent"]) for step in rollout["plan"]] == [("shadow", 0)]
    assert table(result)["error rate"][4] == "INCONCLUSIVE"
    result.stdout.fnmatch_lines(
        [
            f"inconclusive: {message}",
            "rollout: shadow only: mirror at least * requests, the candidate serves no traffic "
            "until the gate passes",
            "modelgate: INCONCLUSIVE: the data cannot show the candidate is within the margins; "
            "exit 0, but add cases or repeats (or --modelgate-strict to fail)",
            "modelgate verdict: INCONCLUSIVE (stable sim-a vs candidate sim-b)",
        ]
    )

    # The same run (a fresh simulator with the same seed draws the same faults) under
    # --modelgate-strict: an inconclusive verdict fails it.
    project = gate_project(models, **ERROR_RATE_ONLY)
    strict = run_gate(project, "--modelgate-strict")

    strict.assert_outcomes(passed=2 * cases)
    assert strict.ret == 1
    strict_verdict = project.verdict()
    assert strict_verdict["verdict"] == "fail"
    assert strict_verdict["strict"] is True
    assert strict_verdict["exit_status"] == 1
    assert strict_verdict["regressions"] == []
    assert strict_verdict["reasons"] == [
        "--modelgate-strict: an inconclusive verdict fails the run",
        message,
    ]
    strict.stdout.fnmatch_lines(
        [
            "note: --modelgate-strict: an inconclusive verdict fails the run",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


def test_an_inconclusive_run_with_repeats_says_how_many_repeats_would_decide(
    gate_project: MakeProject,
) -> None:
    # A small degradation (3 attempts in 100 fail, retried) over 20 cases run twice each: server
    # errors strike attempts at random, so the spread is within cases, and more repeats of the
    # same cases would decide as well as more cases.
    cases = 20
    models = {"sim-a": FAST, "sim-b": {**FAST, "server_error_rate": 0.03}}
    project = gate_project(models, **ERROR_RATE_ONLY)
    project.pytester.makepyfile(test_wf=replies(cases))

    result = run_gate(project, "--modelgate-repeat", "2")

    result.assert_outcomes(passed=2 * 2 * cases)
    verdict = project.verdict()
    assert verdict["verdict"] == "inconclusive"
    error_rate = verdict["metrics"]["error_rate"]
    assert error_rate["status"] == "inconclusive"
    assert error_rate["n"] == cases
    assert error_rate["test"] == "wilcoxon+paired_bootstrap"
    assert error_rate["cases_needed"] > cases
    assert error_rate["repeats_needed"] > 2
    assert error_rate["message"].endswith(
        f"; about {error_rate['cases_needed']} cases, or {error_rate['repeats_needed']} repeats "
        "of each case, would decide"
    )
    # Decided comparisons carry neither figure.
    assert verdict["metrics"]["pass_rate"]["status"] == "ok"
    assert verdict["metrics"]["pass_rate"]["repeats_needed"] is None


# --------------------------------------------------------------------------------------------
# cases that fail on both arms, strict mode, unknown prices


def test_a_case_failing_on_both_arms_is_not_a_regression(gate_project: MakeProject) -> None:
    # Eleven cases: margins eleven cases can show (see SMALL_SUITE), so that the shared failure is
    # all that could stop a `pass`.
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE)
    project.pytester.makepyfile(test_wf=TRIAGE + WRONG_ON_EVERY_MODEL)

    result = run_gate(project)

    result.assert_outcomes(passed=20, failed=2)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["exit_status"] == 0
    assert verdict["regressions"] == []
    assert verdict["tests"]["cases_failed_both"] == [
        {"case_id": "test_wf.py::test_wrong_expectation", "repeat": 0}
    ]
    assert verdict["tests"]["cases_failed_candidate_only"] == []
    pass_rate = verdict["metrics"]["pass_rate"]
    assert pass_rate["change"] == 0.0
    assert pass_rate["status"] == "ok"
    assert pass_rate["n"] == 11
    # A case failing on both arms is a concordant pair: no evidence either way.
    assert pass_rate["p_value"] == 1.0
    result.stdout.fnmatch_lines(
        [
            "1 case failed on both arms: not a regression; --modelgate-strict fails on them "
            "(test_wf.py::test_wrong_expectation)",
            "modelgate verdict: PASS (stable sim-a vs candidate sim-b)",
        ]
    )


def test_strict_fails_on_a_case_failing_on_both_arms(gate_project: MakeProject) -> None:
    # The same run as above, which passes without --modelgate-strict (see SMALL_SUITE).
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE)
    project.pytester.makepyfile(test_wf=TRIAGE + WRONG_ON_EVERY_MODEL)

    result = run_gate(project, "--modelgate-strict")

    result.assert_outcomes(passed=20, failed=2)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["strict"] is True
    assert verdict["exit_status"] == 1
    assert verdict["regressions"] == []
    assert verdict["reasons"][0] == "--modelgate-strict: 1 case(s) failed on at least one arm"
    # The judge itself found nothing: strict mode alone fails the run.
    assert verdict["reasons"][1:] == [
        "non-inferiority shown for all 4 gated comparisons (11 paired cases, 95% intervals)"
    ]
    result.stdout.fnmatch_lines(
        [
            "1 case failed on both arms: not a regression, but --modelgate-strict fails on them "
            "(test_wf.py::test_wrong_expectation)",
            "note: --modelgate-strict: 1 case(s) failed on at least one arm",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


def test_an_unknown_candidate_price_is_inconclusive(gate_project: MakeProject) -> None:
    # Every other metric is one these ten cases can show (see SMALL_SUITE): the unknown cost
    # alone must keep the run from passing.
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=SMALL_SUITE, prices={"sim-b": None})
    project.pytester.makepyfile(test_wf=TRIAGE)

    result = run_gate(project)

    result.assert_outcomes(passed=20)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "inconclusive"
    assert verdict["exit_status"] == 0
    assert verdict["regressions"] == []
    for name in ("pass_rate", "error_rate", "fallback_rate"):
        assert verdict["metrics"][name]["status"] == "ok", name
    # The cost is reported as unknown, never dropped from the verdict and never `ok`.
    assert "cost_per_call_usd" in verdict["metrics"]
    cost = verdict["metrics"]["cost_per_call_usd"]
    assert cost["status"] == "inconclusive"
    assert cost["candidate"] is None
    assert cost["change"] is None
    assert cost["limit"] == "x1.15"
    assert len(verdict["reasons"]) == 1
    assert fnmatch.fnmatchcase(verdict["reasons"][0], "cost per call*unknown*x1.15*"), verdict[
        "reasons"
    ]
    assert table(result)["cost per call"][1:] == ["-", "-", "x1.15", "INCONCLUSIVE"]
    assert verdict["rollout"]["plan"][0]["phase"] == "shadow"
    result.stdout.fnmatch_lines(
        [
            f"inconclusive: {verdict['reasons'][0]}",
            "modelgate verdict: INCONCLUSIVE (stable sim-a vs candidate sim-b)",
        ]
    )

    strict = run_gate(project, "--modelgate-strict")

    assert strict.ret == 1
    assert project.verdict()["verdict"] == "fail"
    strict.stdout.fnmatch_lines(["*--modelgate-strict: an inconclusive verdict fails the run"])


# --------------------------------------------------------------------------------------------
# a stale verdict never survives


HEALTHY_PAIR = """
def test_reply(llm):
    assert llm.chat([{"role": "user", "content": "hello"}]).text


def test_other_reply(llm):
    assert llm.chat([{"role": "user", "content": "good morning"}]).text
"""


@dataclass(frozen=True)
class Breakage:
    """A second run that goes wrong after a passing one, and the verdict it must leave."""

    code: str  # appended to the passing workflows
    args: tuple[str, ...]
    exit_status: int
    # Patterns (fnmatch) of the verdict's reasons, in order; more reasons may follow.
    reasons: tuple[str, ...]
    complete: bool = True
    # What the file records, when it differs from what the process returned.
    file_exit_status: int | None = None
    subprocess: bool = False


BREAKAGES = {
    "stopped-early": Breakage(
        "\ndef test_broken(llm):\n    assert False\n",
        ("-x",),
        3,
        ("the run stopped early (-x or --maxfail)*",),
    ),
    "candidate-never-called": Breakage(
        "", ("-k", "stable"), 3, ("the candidate arm made no calls",)
    ),
    "interrupted": Breakage(
        "\ndef test_interrupt(llm):\n    raise KeyboardInterrupt\n",
        (),
        2,
        ("the run was interrupted before every test finished",),
        subprocess=True,
    ),
    # Nothing at all runs at the end of the session: the placeholder written at the start is
    # what the deploy step reads.
    "killed": Breakage(
        "\nimport os\n\ndef test_killed(llm):\n    os._exit(9)\n",
        (),
        9,
        ("the run has not finished*",),
        complete=False,
        file_exit_status=3,
        subprocess=True,
    ),
    "xdist-stopped-early": Breakage(
        "\ndef test_broken(llm):\n    assert False\n",
        ("-x", "-n", "2"),
        2,
        ("the run was interrupted*", "the run stopped early*"),
        subprocess=True,
    ),
    "xdist-worker-crashed": Breakage(
        "\nimport os\n\ndef test_crash(llm):\n    if llm.arm == 'candidate':\n"
        "        os._exit(1)\n",
        ("-n", "2"),
        3,
        ("xdist worker *gw* crashed*",),
        subprocess=True,
    ),
}


# Two cases bound a rate difference only to about +-66 points, timing over two calls is noise, and
# fewer than five cases give no bootstrap interval for a ratio: these tests are about the verdict
# file, not about what two cases can show, so they gate the rates with margins two cases can show
# and leave the ratios ungated. The earlier verdict is then a real `pass`.
COST_GATE_ONLY: dict[str, Any] = {
    **NO_LATENCY_GATE,
    "pass_rate_max_drop": 0.7,
    "error_rate_max_rise": 0.7,
    "fallback_rate_max_rise": 0.7,
    "cost_per_call_max_ratio": None,
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_failed_run_replaces_an_earlier_verdict(gate_project: MakeProject, name: str) -> None:
    breakage = BREAKAGES[name]
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=COST_GATE_ONLY)
    project.pytester.makepyfile(test_wf=HEALTHY_PAIR)
    assert run_gate(project).ret == 0
    earlier = project.verdict()
    assert earlier["verdict"] == "pass"
    # Two cases give no bootstrap interval: cost is reported, the rates decide.
    assert earlier["metrics"]["cost_per_call_usd"]["status"] == "not_gated"
    assert earlier["metrics"]["pass_rate"]["status"] == "ok"

    project.pytester.makepyfile(test_wf=HEALTHY_PAIR + breakage.code)
    if breakage.subprocess:
        result = project.pytester.runpytest_subprocess(*GATE, *breakage.args)
    else:
        result = run_gate(project, *breakage.args)

    assert result.ret == breakage.exit_status
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["run_id"] != earlier["run_id"]
    assert verdict["verdict"] == "error"
    assert verdict["complete"] is breakage.complete
    expected_status = breakage.file_exit_status or breakage.exit_status
    assert verdict["exit_status"] == expected_status
    reasons = verdict["reasons"]
    assert len(reasons) >= len(breakage.reasons)
    for reason, pattern in zip(reasons, breakage.reasons, strict=False):
        assert fnmatch.fnmatchcase(reason, pattern), reasons
    if breakage.complete:
        result.stdout.fnmatch_lines(
            [f"modelgate ERROR: {breakage.reasons[0]}", "modelgate verdict: ERROR*"]
        )


def test_a_configuration_error_replaces_an_earlier_verdict(gate_project: MakeProject) -> None:
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=NO_LATENCY_GATE)
    project.pytester.makepyfile(test_wf=HEALTHY_PAIR)
    assert run_gate(project).ret == 0
    earlier = project.verdict()

    config = project.pytester.path / "modelgate.yaml"
    config.write_text(
        config.read_text(encoding="utf-8") + "candidate_typo: sim-b\n", encoding="utf-8"
    )
    result = run_gate(project)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*modelgate:*modelgate.yaml*candidate_typo*"])
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["run_id"] != earlier["run_id"]
    assert verdict["verdict"] == "error"
    assert verdict["exit_status"] == 4
    assert verdict["reasons"][0].startswith("configuration error:")
    assert "candidate_typo" in verdict["reasons"][0]


# --------------------------------------------------------------------------------------------
# pytest-xdist


def test_xdist_gives_the_same_verdict_and_counts_as_a_serial_run(
    gate_project: MakeProject,
) -> None:
    # Each run gets a fresh simulator with the same seed: the same requests get the same
    # answers, errors and misclassifications whatever the order, so the runs must agree exactly,
    # down to the judge's intervals and p-values (its bootstraps are seeded from the case ids).
    # Enough cases for the misclassifications to be shown: the verdict to agree on is `fail`.
    models = {"sim-a": FAST, "sim-b": {**FAST, "misclassify": 0.4, "server_error_rate": 0.2}}
    options: dict[str, Any] = {"gate": NO_LATENCY_GATE, "client": {"max_retries": 6}}

    serial_project = gate_project(models, **options)
    serial_project.pytester.makepyfile(test_wf=triage(ENOUGH_CASES) + WRONG_ON_EVERY_MODEL)
    serial = run_gate(serial_project)
    serial_verdict = serial_project.verdict()
    serial_served = served(serial_project)

    parallel_project = gate_project(models, **options)
    parallel = run_gate(parallel_project, workers=2)
    parallel_verdict = parallel_project.verdict()

    parallel.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert serial_verdict["verdict"] == "fail"
    # The triage workflow is big enough to be a gated slice of its own.
    # 20% server errors (retried) show too: each metric is corrected across its own scopes.
    assert [(r["metric"], r["scope"]) for r in serial_verdict["regressions"]] == [
        ("pass_rate", "overall"),
        ("error_rate", "overall"),
        ("pass_rate", "workflow:test_triage"),
        ("error_rate", "workflow:test_triage"),
    ]
    assert parallel.ret == serial.ret == 1
    assert parallel.parseoutcomes() == serial.parseoutcomes()
    assert parallel_verdict["verdict"] == serial_verdict["verdict"]
    assert parallel_verdict["regressions"] == serial_verdict["regressions"]
    assert parallel_verdict["tests"] == serial_verdict["tests"]
    assert parallel_verdict["reasons"] == serial_verdict["reasons"]
    assert parallel_verdict["rollout"] == serial_verdict["rollout"]
    assert list(parallel_verdict["metrics"]) == list(serial_verdict["metrics"])
    for name in serial_verdict["metrics"]:
        assert (
            parallel_verdict["metrics"][name]["samples"]
            == (serial_verdict["metrics"][name]["samples"])
        ), name
        assert parallel_verdict["metrics"][name]["n"] == serial_verdict["metrics"][name]["n"], name
    # Everything but latency is independent of timing: identical figures and statistics.
    exact = ("stable", "candidate", "change", "change_interval", "p_value", "p_adjusted", "status")
    for name in ("pass_rate", "error_rate", "fallback_rate", "cost_per_call_usd"):
        for field in exact:
            assert (
                parallel_verdict["metrics"][name][field] == (serial_verdict["metrics"][name][field])
            ), (name, field)
    assert sorted(parallel_verdict["slices"]) == sorted(serial_verdict["slices"])
    for scope, metrics in serial_verdict["slices"].items():
        for name in ("pass_rate", "error_rate"):
            assert parallel_verdict["slices"][scope][name] == metrics[name], (scope, name)
    # Every attempt the simulator answered is one record: none lost, none counted twice.
    assert served(parallel_project) == serial_served
    assert server_errors(parallel_project, "sim-b") == server_errors(serial_project, "sim-b") > 0
    error_rate = parallel_verdict["metrics"]["error_rate"]
    assert error_rate["stable"] == 0.0
    assert error_rate["candidate"] == round(
        server_errors(parallel_project, "sim-b") / serial_served["sim-b"], 6
    )
