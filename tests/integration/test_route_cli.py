"""``modelgate route``: status, kill, unkill and reset of a route whose state a running gateway
shares through the ``state:`` file; what it refuses (no such route, no shared state)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_modelgate import cli
from tests.gatewaybench import MESSAGES

ROUTE = {
    "stable": "sim-a",
    "candidate": "sim-b",
    "canary_percent": 100,
    "rollback": [
        {"metric": "error_rate", "op": ">", "threshold": 0.1, "unit": "rate", "margin": 0.05}
    ],
}
STATE = {"state": {"backend": "file", "path": "run/state.db"}}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["route", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_kill_unkill_and_status_reach_a_running_gateway(
    make_gateway: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, path = make_gateway({"triage": ROUTE, "reply": {"stable": "sim-a"}}, sections=STATE)
    assert gateway.chat("triage", MESSAGES, key="k").model == "sim-b"
    code, out, _ = run(capsys, "status", "--config", str(path))
    assert code == 0
    assert "route triage: canary running" in out
    assert "error_rate: candidate - stable" in out
    assert "waiting for requests" in out
    assert "candidate: requests 1" in out

    code, out, _ = run(capsys, "kill", "triage", "--config", str(path))
    assert code == 0
    assert out.startswith("route triage: KILLED (everything to stable); step 0")
    # The running gateway obeys on its next call.
    assert gateway.chat("triage", MESSAGES, key="k").model == "sim-a"
    assert gateway.counters()["triage"]["stable"]["kill_switch_hits"] == 1
    code, out, _ = run(capsys, "status", "triage", "--config", str(path), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["triage"]["status"]["killed"] is True
    assert report["triage"]["counters"]["stable"]["kill_switch_hits"] == 1

    code, _, _ = run(capsys, "unkill", "triage", "--config", str(path))
    assert code == 0
    assert gateway.chat("triage", MESSAGES, key="k").model == "sim-b"
    code, out, _ = run(capsys, "reset", "triage", "--config", str(path))
    assert code == 0
    assert "reset by hand" in out
    assert gateway.store is not None
    assert gateway.store.status("triage").generation == 3


def test_what_route_refuses(
    make_gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = make_gateway({"triage": ROUTE}, sections=STATE)
    code, _, err = run(capsys, "reset", "nope", "--config", str(path))
    assert code == 2
    assert "no route 'nope' under routes:" in err
    code, _, err = run(capsys, "kill", "--config", str(path))
    assert (code, err.strip()) == (2, "modelgate route kill: name the route")
    memory = tmp_path / "memory.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["state"]
    memory.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, _, err = run(capsys, "status", "--config", str(memory))
    assert code == 3
    assert "nothing to reach from here" in err
    code, _, err = run(capsys, "status", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
