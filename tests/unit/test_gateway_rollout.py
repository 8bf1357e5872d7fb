"""``modelgate rollout VERDICT --route NAME``: the plan's first step applied to a route."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_modelgate.calls.records import ModelIdentity
from pytest_modelgate.cli import main
from pytest_modelgate.config.settings import load_config
from pytest_modelgate.verdict.model import error_verdict, validate_verdict

FINISHED = datetime.now(timezone.utc) - timedelta(minutes=2)
COUNTS = {"passed": 2, "failed": 0, "skipped": 0, "error": 0}
TRIGGER = {
    "metric": "error_rate",
    "op": ">",
    "threshold": 0.015,
    "unit": "rate",
    "basis": "stable 0.50% + 1.0 pts",
}


def verdict_file(tmp_path: Path, verdict: str = "pass", stable: str = "deepseek-chat") -> Path:
    data = error_verdict(
        "placeholder",
        run_id="a" * 32,
        stable=ModelIdentity(model=stable),
        candidate=ModelIdentity(model="qwen-max"),
        mode="replay",
        repeat=1,
        strict=False,
        started_at=FINISHED - timedelta(minutes=1),
        finished_at=FINISHED,
        exit_status=0,
        plugin_version="0.1.0",
        provenance={},
    )
    plan: list[dict[str, Any]] = (
        [{"phase": "canary", "traffic_percent": p, "min_requests": 400} for p in (5, 25, 100)]
        if verdict == "pass"
        else [{"phase": "shadow", "traffic_percent": 0, "min_requests": 300}]
    )
    data.update(
        verdict=verdict,
        reasons=["non-inferiority shown"],
        tests={
            "stable": dict(COUNTS),
            "candidate": dict(COUNTS),
            "cases_failed_both": [],
            "cases_failed_candidate_only": [],
            "cases_failed_stable_only": [],
        },
        rollout={
            "allowed": True,
            "reason": "within the margins",
            "plan": plan,
            "rollback_triggers": [TRIGGER],
            "kill_switch": {
                "action": "route 100% of traffic to the stable model",
                "route_to": stable,
                "weights": {"stable": 100, "candidate": 0},
                "when": "any rollback trigger fires",
            },
        },
    )
    validate_verdict(data)
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "modelgate.yaml"
    path.write_text(
        yaml.safe_dump({"routes": {"triage": {"stable": "deepseek-chat", "shadow_percent": 0}}}),
        encoding="utf-8",
    )
    return path


def test_a_pass_sets_candidate_first_canary_step_and_triggers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    code = main(
        ["rollout", str(verdict_file(tmp_path)), "--route", "triage", "--config", str(config)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "+    candidate: qwen-max" in out
    assert "+    canary_percent: 5" in out
    assert f"modelgate rollout: wrote {config}" in out
    route = load_config(config).routes["triage"]
    assert (route.candidate, route.canary_percent) == ("qwen-max", 5.0)
    (trigger,) = route.rollback
    assert (trigger.metric, trigger.op, trigger.threshold, trigger.min_requests) == (
        "error_rate",
        ">",
        0.015,
        400,
    )
    # The later steps go in as the route's promotion path, for the canary monitor.
    assert [(step.percent, step.min_requests) for step in route.steps] == [
        (5.0, 400),
        (25.0, 400),
        (100.0, 400),
    ]


def test_dry_run_prints_the_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    before = config.read_text(encoding="utf-8")
    args = ["rollout", str(verdict_file(tmp_path)), "--route", "triage", "--config", str(config)]
    assert main([*args, "--dry-run"]) == 0
    assert "+    candidate: qwen-max" in capsys.readouterr().out
    assert config.read_text(encoding="utf-8") == before


def test_an_inconclusive_verdict_is_refused_unless_allowed_then_shadows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    args = ["rollout", str(verdict_file(tmp_path, "inconclusive")), "--route", "triage"]
    assert main([*args, "--config", str(config)]) == 1
    assert "modelgate rollout: no-go: verdict inconclusive" in capsys.readouterr().err
    assert load_config(config).routes["triage"].candidate is None
    assert main([*args, "--config", str(config), "--allow-inconclusive"]) == 0
    route = load_config(config).routes["triage"]
    assert (route.candidate, route.canary_percent, route.shadow_percent) == ("qwen-max", 0.0, 100.0)


def test_another_stable_model_or_route_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path)
    other = verdict_file(tmp_path, stable="qwen-plus")
    assert main(["rollout", str(other), "--route", "triage", "--config", str(config)]) == 1
    assert "not 'deepseek-chat'" in capsys.readouterr().err
    good = verdict_file(tmp_path)
    assert main(["rollout", str(good), "--route", "nope", "--config", str(config)]) == 2
    assert "no route 'nope' (routes: triage)" in capsys.readouterr().err
    missing = tmp_path / "missing.json"
    assert main(["rollout", str(missing), "--route", "triage", "--config", str(config)]) == 3
