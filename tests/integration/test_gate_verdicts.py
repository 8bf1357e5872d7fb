"""The gate's decision end to end: verdict, exit status, terminal summary and the file on disk.

Each failing gate injects one regression into the candidate (in the simulator or in its price) and
keeps every other metric level, so the verdict must name exactly that metric.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelgate.metrics import METRICS
from pytest_modelgate.verdict import validate_verdict

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
FAST: dict[str, Any] = {"latency_ms": 2}

# Ten tickets whose category the simulator derives from keywords (docs/simulator.md).
TRIAGE = """
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


@pytest.mark.parametrize(
    ("text", "category"), TICKETS, ids=[f"ticket{i}" for i in range(len(TICKETS))]
)
def test_triage(llm, text, category):
    reply = llm.chat([SYSTEM, {"role": "user", "content": text}])
    assert reply.json()["category"] == category
"""

STREAMS = """

@pytest.mark.parametrize("order", ["SO-10423", "SO-20931"])
def test_streamed_reply(llm, order):
    reply = llm.chat([{"role": "user", "content": f"Where is {order}?"}], stream=True)
    assert reply.text
    assert reply.ttft_ms is not None
"""

REPLIES = """
import pytest


@pytest.mark.parametrize("n", range(10))
def test_reply(llm, n):
    assert llm.chat([{"role": "user", "content": f"Hello, this is message number {n}"}]).text
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
    # Latency stays gated, with room for loopback jitter (see NO_LATENCY_GATE): the median is
    # robust to a stray slow answer, a p95 over a dozen calls (or a TTFT over two) is not.
    wide = {"latency_p50_max_ratio": 2.0, "latency_p95_max_ratio": 3.0, "ttft_p95_max_ratio": 3.0}
    project = gate_project({"sim-a": same, "sim-b": same}, gate=wide)
    project.pytester.makepyfile(test_wf=TRIAGE + STREAMS)

    result = run_gate(project, workers=workers)

    result.assert_outcomes(passed=24)
    assert result.ret == 0
    verdict = project.verdict()
    validate_verdict(verdict)
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
    assert verdict["reasons"] == [
        "all 7 gated metrics with data on both arms are within their limits"
    ]
    assert list(verdict["metrics"]) == METRIC_NAMES
    for name, metric in verdict["metrics"].items():
        assert metric["stable"] is not None, name
        assert metric["candidate"] is not None, name
        assert metric["status"] in ("ok", "improved", "not_gated"), (name, metric["message"])
    assert verdict["metrics"]["tokens_per_call"]["status"] == "not_gated"
    assert verdict["metrics"]["ttft_p95_ms"]["samples"] == {"stable": 2, "candidate": 2}
    # One record per HTTP attempt the simulator answered, on each arm.
    assert served(project) == {"sim-a": 12, "sim-b": 12}
    assert verdict["metrics"]["error_rate"]["samples"] == {"stable": 12, "candidate": 12}
    assert verdict["metrics"]["cost_per_call_usd"]["change"] == 1.0
    assert verdict["tests"]["stable"] == {"passed": 12, "failed": 0, "skipped": 0, "error": 0}
    assert verdict["tests"]["candidate"] == verdict["tests"]["stable"]

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
    assert rows["pass rate"] == ["100.0% (n=12)", "100.0% (n=12)", "+0.0 pts", "-2.0 pts", "ok"]
    assert rows["error rate"] == ["0.0% (n=12)", "0.0% (n=12)", "+0.0 pts", "+1.0 pts", "ok"]
    assert rows["p50 latency"][3] == "x2.00"
    assert rows["p95 time to first token"][0].endswith("(n=2)")
    assert rows["cost per call"][2:] == ["x1.00", "x1.15", "ok"]
    assert rows["tokens per call"][3:] == ["-", "not gated"]
    result.stdout.fnmatch_lines(
        [
            "*= modelgate =*",
            "| metric *",
            "note: all 7 gated metrics with data on both arms are within their limits",
            "modelgate verdict: PASS (stable sim-a vs candidate sim-b)",
            f"verdict written to {project.verdict_path}",
        ]
    )
    result.stdout.no_fnmatch_line("regression:*")


def test_strict_does_not_fail_a_clean_run(gate_project: MakeProject) -> None:
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=NO_LATENCY_GATE)
    project.pytester.makepyfile(test_wf=TRIAGE)

    result = run_gate(project, "--modelgate-strict")

    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["strict"] is True


# --------------------------------------------------------------------------------------------
# one regression at a time


def test_retried_server_errors_fail_the_gate_on_error_rate(gate_project: MakeProject) -> None:
    # Every call succeeds in the end (tests pass), but each failed attempt counts.
    project = gate_project(
        {"sim-a": FAST, "sim-b": {**FAST, "server_error_rate": 0.3}},
        gate=NO_LATENCY_GATE,
        client={"max_retries": 6},
    )
    project.pytester.makepyfile(test_wf=REPLIES)

    result = run_gate(project)

    result.assert_outcomes(passed=20)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert verdict["exit_status"] == 1
    assert regressed(verdict) == ["error_rate"]

    attempts = served(project)["sim-b"]
    failures = server_errors(project, "sim-b")
    assert failures > 0
    metric = verdict["metrics"]["error_rate"]
    assert metric["samples"] == {"stable": 10, "candidate": attempts}
    assert metric["stable"] == 0.0
    assert metric["candidate"] == round(failures / attempts, 6)
    assert metric["status"] == "regressed"
    assert verdict["metrics"]["pass_rate"]["status"] == "ok"
    # Failed attempts are unbilled: the cost per successful call does not move.
    assert verdict["metrics"]["cost_per_call_usd"]["status"] == "ok"

    message = verdict["regressions"][0]["message"]
    expected = (
        f"error rate rose from 0.0% to {failures / attempts * 100:.1f}% "
        f"(+{failures / attempts * 100:.1f} pts), above the +1.0 pts limit"
    )
    assert message == expected
    assert verdict["reasons"][0] == message
    row = table(result)["error rate"]
    assert row[0] == "0.0% (n=10)"
    assert row[1].endswith(f"(n={attempts})")
    assert row[4] == "REGRESSED"
    result.stdout.fnmatch_lines(
        [
            f"regression: {expected}",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


def test_server_errors_that_surface_fail_tests_and_error_rate(gate_project: MakeProject) -> None:
    project = gate_project(
        {"sim-a": FAST, "sim-b": {**FAST, "server_error_rate": 0.4}},
        gate=NO_LATENCY_GATE,
        client={"max_retries": 0},
    )
    project.pytester.makepyfile(test_wf=REPLIES)

    result = run_gate(project)

    failures = server_errors(project, "sim-b")
    assert failures > 0
    result.assert_outcomes(passed=20 - failures, failed=failures)
    assert result.ret == 1
    verdict = project.verdict()
    assert regressed(verdict) == ["pass_rate", "error_rate"]
    assert verdict["metrics"]["error_rate"]["samples"]["candidate"] == 10
    assert verdict["metrics"]["error_rate"]["candidate"] == failures / 10
    assert verdict["tests"]["candidate"]["failed"] == failures
    assert len(verdict["tests"]["cases_failed_candidate_only"]) == failures
    assert verdict["tests"]["cases_failed_both"] == []


def test_a_slower_candidate_fails_the_gate_on_latency(gate_project: MakeProject) -> None:
    # x5 injected against a x1.2 limit: jitter cannot close a gap that wide.
    project = gate_project({"sim-a": {"latency_ms": 10}, "sim-b": {"latency_ms": 50}})
    project.pytester.makepyfile(test_wf=REPLIES)

    result = run_gate(project)

    result.assert_outcomes(passed=20)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert regressed(verdict)[0] == "latency_p50_ms"
    assert set(regressed(verdict)) <= {"latency_p50_ms", "latency_p95_ms"}
    p50 = verdict["metrics"]["latency_p50_ms"]
    assert p50["samples"] == {"stable": 10, "candidate": 10}
    assert p50["candidate"] >= 50
    assert p50["change"] > 1.2
    for other in ("pass_rate", "error_rate", "cost_per_call_usd"):
        assert verdict["metrics"][other]["status"] == "ok", other

    message = verdict["regressions"][0]["message"]
    assert re.fullmatch(
        r"p50 latency rose from \d+ ms to \d+ ms \(x\d+\.\d\d\), above the x1\.20 limit", message
    ), message
    assert table(result)["p50 latency"][4] == "REGRESSED"
    result.stdout.fnmatch_lines([f"regression: {message}", "modelgate verdict: FAIL*"])


def test_a_pricier_candidate_fails_the_gate_on_cost(gate_project: MakeProject) -> None:
    project = gate_project(
        {"sim-a": FAST, "sim-b": FAST},
        gate=NO_LATENCY_GATE,
        prices={"sim-b": {"input": 0.405, "output": 1.65, "cached_input": 0.105}},
    )
    project.pytester.makepyfile(test_wf=TRIAGE)

    result = run_gate(project)

    result.assert_outcomes(passed=20)
    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    assert regressed(verdict) == ["cost_per_call_usd"]
    cost = verdict["metrics"]["cost_per_call_usd"]
    assert cost["change"] == 1.5
    assert cost["candidate"] == pytest.approx(cost["stable"] * 1.5, rel=1e-6)
    assert cost["samples"] == {"stable": 10, "candidate": 10}
    regression = verdict["regressions"][0]
    assert regression["limit"] == "x1.15"
    assert re.fullmatch(
        r"cost per call rose from \$0\.\d{6} to \$0\.\d{6} \(x1\.50\), above the x1\.15 limit",
        regression["message"],
    ), regression["message"]
    assert table(result)["cost per call"][2:] == ["x1.50", "x1.15", "REGRESSED"]
    result.stdout.fnmatch_lines([f"regression: {regression['message']}"])


@WORKERS
def test_a_candidate_that_misclassifies_fails_the_gate_on_pass_rate(
    gate_project: MakeProject, workers: int | None
) -> None:
    project = gate_project(
        {"sim-a": FAST, "sim-b": {**FAST, "misclassify": 0.5}}, gate=NO_LATENCY_GATE
    )
    project.pytester.makepyfile(test_wf=TRIAGE)

    result = run_gate(project, workers=workers)

    assert result.ret == 1
    verdict = project.verdict()
    failed = verdict["tests"]["candidate"]["failed"]
    assert 0 < failed < 10
    result.assert_outcomes(passed=20 - failed, failed=failed)
    assert verdict["verdict"] == "fail"
    assert regressed(verdict) == ["pass_rate"]
    assert verdict["tests"]["stable"] == {"passed": 10, "failed": 0, "skipped": 0, "error": 0}
    cases = verdict["tests"]["cases_failed_candidate_only"]
    assert len(cases) == failed
    assert all(re.fullmatch(r"test_wf\.py::test_triage\[ticket\d\]", c["case_id"]) for c in cases)
    assert verdict["tests"]["cases_failed_both"] == []
    # The model answered every call; it answered wrongly.
    assert verdict["metrics"]["error_rate"]["status"] == "ok"

    rate = (10 - failed) / 10
    expected = (
        f"pass rate fell from 100.0% to {rate * 100:.1f}% "
        f"(-{(1 - rate) * 100:.1f} pts), beyond the -2.0 pts limit"
    )
    assert verdict["regressions"][0]["message"] == expected
    assert verdict["metrics"]["pass_rate"]["candidate"] == rate
    row = table(result)["pass rate"]
    assert row[:2] == ["100.0% (n=10)", f"{rate * 100:.1f}% (n=10)"]
    assert row[4] == "REGRESSED"
    result.stdout.fnmatch_lines(
        [
            f"regression: {expected}",
            f"{failed} case* failed on the candidate only: test_wf.py::test_triage[[]ticket*",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


# --------------------------------------------------------------------------------------------
# cases that fail on both arms, strict mode, unknown prices


def test_a_case_failing_on_both_arms_is_not_a_regression(gate_project: MakeProject) -> None:
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=NO_LATENCY_GATE)
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
    assert verdict["metrics"]["pass_rate"]["change"] == 0.0
    result.stdout.fnmatch_lines(
        [
            "1 case failed on both arms: not a regression; --modelgate-strict fails on them "
            "(test_wf.py::test_wrong_expectation)",
            "modelgate verdict: PASS (stable sim-a vs candidate sim-b)",
        ]
    )


def test_strict_fails_on_a_case_failing_on_both_arms(gate_project: MakeProject) -> None:
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=NO_LATENCY_GATE)
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
    result.stdout.fnmatch_lines(
        [
            "1 case failed on both arms: not a regression, but --modelgate-strict fails on them "
            "(test_wf.py::test_wrong_expectation)",
            "note: --modelgate-strict: 1 case(s) failed on at least one arm",
            "modelgate verdict: FAIL (stable sim-a vs candidate sim-b)",
        ]
    )


def test_an_unknown_candidate_price_is_inconclusive(gate_project: MakeProject) -> None:
    project = gate_project(
        {"sim-a": FAST, "sim-b": FAST}, gate=NO_LATENCY_GATE, prices={"sim-b": None}
    )
    project.pytester.makepyfile(test_wf=TRIAGE)

    result = run_gate(project)

    result.assert_outcomes(passed=20)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "inconclusive"
    assert verdict["exit_status"] == 0
    assert verdict["regressions"] == []
    cost = verdict["metrics"]["cost_per_call_usd"]
    assert cost["status"] == "no_data"
    assert cost["candidate"] is None
    assert cost["stable"] is not None
    reason = (
        "cost per call is unknown on the candidate arm: 10 of 10 successful calls have no "
        "price, so the x1.15 limit cannot be checked"
    )
    assert verdict["reasons"] == [reason]
    assert table(result)["cost per call"][1:] == ["-", "-", "x1.15", "no data"]
    result.stdout.fnmatch_lines(
        [
            f"inconclusive: {reason}",
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


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_a_failed_run_replaces_an_earlier_verdict(gate_project: MakeProject, name: str) -> None:
    breakage = BREAKAGES[name]
    project = gate_project({"sim-a": FAST, "sim-b": FAST}, gate=NO_LATENCY_GATE)
    project.pytester.makepyfile(test_wf=HEALTHY_PAIR)
    assert run_gate(project).ret == 0
    earlier = project.verdict()
    assert earlier["verdict"] == "pass"

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
    # answers, errors and misclassifications whatever the order, so the runs must agree exactly.
    models = {"sim-a": FAST, "sim-b": {**FAST, "misclassify": 0.4, "server_error_rate": 0.2}}
    options: dict[str, Any] = {"gate": NO_LATENCY_GATE, "client": {"max_retries": 6}}

    serial_project = gate_project(models, **options)
    serial_project.pytester.makepyfile(test_wf=TRIAGE + WRONG_ON_EVERY_MODEL)
    serial = run_gate(serial_project)
    serial_verdict = serial_project.verdict()
    serial_served = served(serial_project)

    parallel_project = gate_project(models, **options)
    parallel = run_gate(parallel_project, workers=2)
    parallel_verdict = parallel_project.verdict()

    parallel.stdout.fnmatch_lines(["created: 2/2 workers"])
    assert serial_verdict["verdict"] == "fail"
    assert parallel.ret == serial.ret == 1
    assert parallel.parseoutcomes() == serial.parseoutcomes()
    assert parallel_verdict["verdict"] == serial_verdict["verdict"]
    assert regressed(parallel_verdict) == regressed(serial_verdict)
    assert parallel_verdict["tests"] == serial_verdict["tests"]
    assert parallel_verdict["reasons"] == serial_verdict["reasons"]
    for name in METRIC_NAMES:
        assert (
            parallel_verdict["metrics"][name]["samples"]
            == (serial_verdict["metrics"][name]["samples"])
        ), name
    for name in ("pass_rate", "error_rate", "fallback_rate", "cost_per_call_usd"):
        assert (
            parallel_verdict["metrics"][name]["stable"]
            == (serial_verdict["metrics"][name]["stable"])
        ), name
        assert (
            parallel_verdict["metrics"][name]["candidate"]
            == (serial_verdict["metrics"][name]["candidate"])
        ), name
    # Every attempt the simulator answered is one record: none lost, none counted twice.
    assert served(parallel_project) == serial_served
    attempts = parallel_verdict["metrics"]["error_rate"]["samples"]
    assert attempts == {"stable": serial_served["sim-a"], "candidate": serial_served["sim-b"]}
    assert server_errors(parallel_project, "sim-b") == server_errors(serial_project, "sim-b") > 0
