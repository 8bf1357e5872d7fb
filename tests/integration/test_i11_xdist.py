"""pytest-xdist gives the verdict of a serial run: one suite recorded once, replayed three ways.

Serially, with ``-n 2`` and with xdist switched off (``-p no:xdist``), the replay of the same
recordings must give the same verdict and the same records file, apart from what names the run
itself (its id, its clock) or measures this process's own wall time. A crashed worker making the
verdict `error` is tested in test_gate_verdicts.py (``xdist-worker-crashed``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelgate.verdict.model import validate_verdict

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

GATE = ("--stable-model", "sim-a", "--candidate-model", "sim-b", "--modelgate-repeat=2")

# Three workflows, 24 cases, two repeats on two arms: 96 test items. The candidate misclassifies
# and fails now and then (retried), so the records hold failures, retries and their timings.
SUITE = """
import pytest

SYSTEM = {"role": "system", "content": "You triage support tickets. Answer in JSON."}
TICKETS = [
    ("I want a refund for my order", "refund"),
    ("I was charged twice this month", "billing"),
    ("My package did not arrive", "shipping"),
    ("I forgot my password", "account"),
]


@pytest.mark.parametrize("n", range(12))
def test_triage(llm, n):
    text, category = TICKETS[n % len(TICKETS)]
    reply = llm.chat([SYSTEM, {"role": "user", "content": f"{text} (case {n})"}])
    assert reply.json()["category"] == category


@pytest.mark.parametrize("n", range(8))
def test_reply(llm, n):
    assert llm.chat([{"role": "user", "content": f"Hello, this is message number {n}"}]).text


@pytest.mark.workflow("follow_up")
@pytest.mark.parametrize("n", range(4))
def test_two_turns(llm, n):
    first = llm.chat([{"role": "user", "content": f"Tell me about order SO-{n}"}])
    assert llm.chat([{"role": "user", "content": f"And then? {first.text[:20]}"}]).text
"""

MODELS: dict[str, dict[str, Any]] = {
    "sim-a": {"latency_ms": 2},
    "sim-b": {"latency_ms": 3, "misclassify": 0.3, "server_error_rate": 0.15},
}
GATE_CONFIG: dict[str, Any] = {
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
}

# What names this run (its id, its clock) and the wall time this process took; everything else
# (models, metrics, intervals, cases, the digests of config, cassettes and selected tests) is
# about the recordings and must be equal.
RUN_FIELDS = ("run_id", "started_at", "finished_at", "duration_s")


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in RUN_FIELDS}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return value


def _replay(project: GateProject, *args: str) -> tuple[pytest.RunResult, dict[str, Any], list[str]]:
    result = project.pytester.runpytest_subprocess(*GATE, "--modelgate-mode=replay", *args)
    verdict = project.verdict()
    records = sorted(json.dumps(_comparable(r), sort_keys=True) for r in project.records())
    return result, verdict, records


def test_serial_xdist_and_no_xdist_replays_give_one_verdict(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=GATE_CONFIG, client={"max_retries": 6})
    project.pytester.makepyfile(test_suite=SUITE)
    recorded = project.pytester.runpytest_subprocess(*GATE, "--modelgate-mode=record")
    assert recorded.ret in (0, 1), recorded.stdout.str()
    served = len(project.sim.requests)
    assert served >= 2 * 2 * (12 + 8 + 2 * 4)  # every call of both arms and repeats, plus retries

    serial, serial_verdict, serial_records = _replay(project)
    parallel, parallel_verdict, parallel_records = _replay(project, "-n", "2")
    plain, plain_verdict, plain_records = _replay(project, "-p", "no:xdist")

    # The replays called nothing.
    assert len(project.sim.requests) == served
    parallel.stdout.fnmatch_lines(["created: 2/2 workers"])
    plain.stdout.no_fnmatch_line("*created: * workers*")
    for verdict in (serial_verdict, parallel_verdict, plain_verdict):
        validate_verdict(verdict)
    # The verdict has something to agree on: failures on the candidate, judged, not an error.
    assert serial_verdict["verdict"] in ("pass", "fail", "inconclusive"), serial_verdict["reasons"]
    assert serial_verdict["tests"]["candidate"]["failed"] > 0
    assert serial_verdict["provenance"]["tests_collected"] == 2 * 2 * 24
    assert serial.ret == parallel.ret == plain.ret
    assert serial.parseoutcomes() == parallel.parseoutcomes() == plain.parseoutcomes()
    assert serial_verdict["run_id"] != parallel_verdict["run_id"] != plain_verdict["run_id"]
    assert _comparable(parallel_verdict) == _comparable(serial_verdict)
    assert _comparable(plain_verdict) == _comparable(serial_verdict)
    # No record counted twice or lost: 96 items, the same lines whichever process ran them.
    assert len(serial_records) == 2 * 2 * 24
    assert len(set(serial_records)) == len(serial_records)
    assert parallel_records == serial_records
    assert plain_records == serial_records


def test_a_worker_that_cannot_collect_makes_the_xdist_verdict_error(
    gate_project: MakeProject,
) -> None:
    # Workers collect for themselves: a module that fails to import there leaves cases that never
    # ran on either arm, which must not pass as a smaller suite.
    project = gate_project(MODELS, gate=GATE_CONFIG)
    project.pytester.makepyfile(
        test_suite=SUITE, test_broken="import no_such_module_here\n\ndef test_x(llm): pass\n"
    )
    result = project.pytester.runpytest_subprocess(*GATE, "-n", "2")
    assert result.ret != 0
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["verdict"] == "error"
    assert any("collection error" in reason for reason in verdict["reasons"]), verdict["reasons"]
