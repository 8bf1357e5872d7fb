"""``modelgate analyze`` on shadow logs a real Gateway wrote against the simulator: a shadow
verdict of the gate's schema that ``modelgate check`` and ``modelgate rollout`` accept; corrupt
and torn lines skipped and counted; mixed routes and model pairs refused; both engines agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate import cli
from pytest_modelgate.verdict.model import validate_verdict


def write_log(
    make_gateway: Any,
    tmp_path: Path,
    candidate: str,
    n: int,
    stable: str = "sim-a",
    **route: Any,
) -> Path:
    log = tmp_path / f"shadow-{candidate}.jsonl"
    gateway, _ = make_gateway(
        {"triage": {"stable": stable, "candidate": candidate, "shadow_percent": 100, **route}},
        shadow_log=log,
    )
    for i in range(n):
        gateway.chat("triage", [{"role": "user", "content": f"ticket {i}: my invoice is wrong"}])
    gateway.close(timeout_s=30)
    return log


def analyze(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_slow_candidate_fails_and_check_refuses_it(
    make_gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(make_gateway, tmp_path, "sim-100ms", 40)
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    first = json.loads(lines[0])
    assert (first["v"], first["stable"], first["candidate"]) == (1, "sim-a", "sim-100ms")
    assert first["prompt_language"] == "en"
    assert first["shadow"]["reply_language"] == "en"
    verdict_path = tmp_path / "verdict.json"
    code, out, _ = analyze(capsys, str(log), "--verdict", str(verdict_path))
    assert code == 1, out
    assert "40 pair(s) of route triage (sim-a vs sim-100ms)" in out
    verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
    validate_verdict(verdict)
    assert (verdict["kind"], verdict["verdict"]) == ("shadow", "fail")
    assert verdict["shadow"]["pairs"] == verdict["shadow"]["cases"] == 40  # every ticket differs
    assert any(r["metric"] == "latency_p50_ms" for r in verdict["regressions"])
    assert cli.main(["check", str(verdict_path)]) == 1


def test_a_twin_candidate_can_go_to_rollout(
    make_gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(make_gateway, tmp_path, "sim-twin-b", 40, stable="sim-twin-a")
    config = tmp_path / "modelgate.yaml"  # written by make_gateway
    verdict_path = tmp_path / "verdict.json"
    code, _, _ = analyze(capsys, str(log), "--verdict", str(verdict_path), "--config", str(config))
    verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
    # 40 pairs cannot show the default 1-2 point margins: inconclusive, a shadow plan.
    assert (code, verdict["verdict"]) == (0, "inconclusive"), verdict["reasons"]
    assert cli.main(["check", str(verdict_path), "--allow-inconclusive"]) == 0
    capsys.readouterr()
    code = cli.main(
        ["rollout", str(verdict_path), "--route", "triage", "--config", str(config),
         "--allow-inconclusive", "--dry-run"]
    )  # fmt: skip
    assert code == 0
    assert "candidate: sim-twin-b" in capsys.readouterr().out


def test_corrupt_and_torn_lines_are_skipped_and_counted(
    make_gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(make_gateway, tmp_path, "sim-b", 10)
    with log.open("a", encoding="utf-8") as stream:
        stream.write("not json at all\n")
        stream.write('{"route": "triage"}\n')
        stream.write('{"route": "triage", "user": {"model": "sim-a"}, "shad')  # torn
    for engine in ("python", "duckdb"):
        out_path = tmp_path / f"v-{engine}.json"
        code, out, err = analyze(capsys, str(log), "--verdict", str(out_path), "--engine", engine)
        assert code in (0, 1), err
        verdict = json.loads(out_path.read_text(encoding="utf-8"))
        assert verdict["shadow"]["pairs"] == 10
        assert verdict["shadow"]["skipped_lines"] == 3, engine
        assert "3 skipped" in out
    verdict = json.loads((tmp_path / "v-python.json").read_text(encoding="utf-8"))
    examples = verdict["shadow"]["skipped_examples"]
    assert examples == [
        f"{log}:11: not JSON (Expecting value: line 1 column 1 (char 0))",
        f"{log}:12: no user.model",
        f"{log}:13: a partial line (no newline at its end)",
    ]
    assert any("3 shadow log line(s) skipped" in reason for reason in verdict["reasons"])


def test_both_engines_give_the_same_verdict(
    make_gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(make_gateway, tmp_path, "sim-100ms", 30)
    verdicts = {}
    for engine in ("python", "duckdb"):
        path = tmp_path / f"{engine}.json"
        analyze(capsys, str(log), "--verdict", str(path), "--engine", engine)
        verdicts[engine] = json.loads(path.read_text(encoding="utf-8"))
    python, duck = verdicts["python"], verdicts["duckdb"]
    assert python["verdict"] == duck["verdict"] == "fail"
    assert python["metrics"] == duck["metrics"]
    assert python["shadow"]["whole_log"] == duck["shadow"]["whole_log"]


def test_mixed_routes_and_model_pairs_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def pair(route: str, candidate: str) -> str:
        side = {"model": "m", "error_kind": None, "latency_ms": 10.0}
        return json.dumps(
            {"v": 1, "route": route, "stable": "a", "candidate": candidate,
             "user": {**side, "model": "a"}, "shadow": {**side, "model": candidate}}
        ) + "\n"  # fmt: skip

    log = tmp_path / "mixed.jsonl"
    log.write_text(pair("triage", "b") + pair("reply", "b") + pair("triage", "c"), encoding="utf-8")
    verdict = tmp_path / "v.json"
    verdict.write_text('{"verdict": "pass"}', encoding="utf-8")  # an old file must not survive
    code, _, err = analyze(capsys, str(log), "--verdict", str(verdict), "--engine", "python")
    assert code == 3
    assert f"{log}:2: route 'reply', but {log}:1 was route 'triage'" in err
    assert not verdict.exists()
    code, _, err = analyze(capsys, str(log), "--route", "triage", "--engine", "python")
    assert code == 3
    assert f"{log}:3: a pair of a and c, but the first pair of route 'triage' was a and b" in err
    code, out, _ = analyze(
        capsys, str(log), "--route", "reply", "--verdict", str(verdict), "--engine", "python"
    )
    assert "2 of other routes" in out
    assert json.loads(verdict.read_text(encoding="utf-8"))["shadow"]["other_routes"] == 2


def test_no_usable_pair_is_an_error_never_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "empty.jsonl"
    log.write_text("garbage\n", encoding="utf-8")
    verdict = tmp_path / "v.json"
    code, _, _ = analyze(capsys, str(log), "--verdict", str(verdict))
    assert code == 3
    data = json.loads(verdict.read_text(encoding="utf-8"))
    validate_verdict(data)
    assert data["verdict"] == "error"
    assert "no usable shadow pair" in data["reasons"][0]
    assert cli.main(["check", str(verdict)]) == 1  # an error verdict is a no-go
    code, _, err = analyze(capsys, str(tmp_path / "missing.jsonl"))
    assert code == 3
    assert "no such shadow log" in err
