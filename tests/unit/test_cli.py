"""The ``modelgate`` console script: simulate (as a real process), models, show."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pytest_modelgate.cli import main

SCENARIO = """\
api_key: cli-key
models:
  simulated-a: {latency_ms: {median: 1, p95: 2}}
  simulated-b: {latency_ms: {median: 1, p95: 2}}
"""


def test_simulate_serves_until_interrupted(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_modelgate.cli",
            "simulate",
            "--port",
            "0",
            "--scenario",
            str(scenario),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("modelgate simulator listening on http://127.0.0.1:"), banner
        assert "simulated-a, simulated-b" in banner
        base_url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        listed = httpx.get(
            f"{base_url}/models", headers={"Authorization": "Bearer cli-key"}, timeout=5
        )
        assert listed.status_code == 200
        assert {m["id"] for m in listed.json()["data"]} == {"simulated-a", "simulated-b"}
        reply = httpx.post(
            f"{base_url}/chat/completions",
            headers={"Authorization": "Bearer cli-key"},
            json={"model": "simulated-b", "messages": [{"role": "user", "content": "hello"}]},
            timeout=5,
        )
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"]
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=10)
    assert code == 0


def test_simulate_rejects_a_bad_scenario_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text("models:\n  a: {latency_ms: {median: -5}}\n", encoding="utf-8")
    assert main(["simulate", "--port", "0", "--scenario", str(scenario)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err
    assert "latency_ms" in err


def test_models_lists_catalog_prices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "qwen"]) == 0
    out = capsys.readouterr().out
    assert "qwen-max" in out
    assert "DASHSCOPE_API_KEY" in out
    assert "deepseek" not in out


def test_models_unknown_provider_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def _verdict(tmp_path: Path, name: str) -> Path:
    from datetime import datetime, timezone

    from pytest_modelgate.calls.records import ModelIdentity
    from pytest_modelgate.verdict.model import error_verdict, write_verdict_atomic

    now = datetime.now(timezone.utc)
    path = tmp_path / name
    data = error_verdict(
        "the candidate arm made no calls",
        run_id="0" * 32,
        stable=ModelIdentity(model="a"),
        candidate=ModelIdentity(model="b"),
        mode="live",
        repeat=1,
        strict=False,
        started_at=now,
        finished_at=now,
        exit_status=3,
        plugin_version="0",
    )
    write_verdict_atomic(path, data)
    return path


def test_show_prints_the_verdict_and_exits_by_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _verdict(tmp_path, "v.json")
    assert main(["show", str(path)]) == 3
    out = capsys.readouterr().out
    assert "the candidate arm made no calls" in out
    assert "ERROR" in out


def test_show_rejects_missing_and_invalid_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(tmp_path / "absent.json")]) == 3
    assert "no verdict file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"verdict": "pass"}), encoding="utf-8")
    assert main(["show", str(bad)]) == 3
    assert "not a valid verdict" in capsys.readouterr().err
