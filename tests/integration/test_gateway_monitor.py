"""The canary monitor inside a real Gateway on the simulator: a candidate breaking its contract
is rolled back and the next request goes to stable; reset brings the canary back; a healthy
candidate is promoted through its steps. Users never see the candidate's breakage (fallback)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pytest_modelgate.gateway.monitor import CanaryMonitor
from tests.gatewaybench import MESSAGES

JSON_TRIGGER = {
    "metric": "json_validity",
    "op": "<",
    "threshold": 0.9,
    "unit": "rate",
    "margin": 0.05,
    "min_requests": 20,
}


def keys(n: int) -> list[str]:
    return [f"customer-{i}" for i in range(n)]


def test_a_contract_breaking_candidate_is_rolled_back_then_reset(
    make_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, _ = make_gateway(
        {
            "triage": {
                "stable": "sim-a",
                "candidate": "sim-broken",
                "canary_percent": 50,
                "contract": {"json": True},
                "rollback": [JSON_TRIGGER],
            }
        }
    )
    assert isinstance(gateway.monitor, CanaryMonitor)
    assert gateway.store is not None
    with caplog.at_level(logging.WARNING, "pytest_modelgate.gateway"):
        for key in keys(200):
            # Every broken candidate reply falls back to stable: users get valid answers.
            reply = gateway.chat(
                "triage", MESSAGES, key=key, response_format={"type": "json_object"}
            )
            assert reply.json()
            if gateway.store.status("triage").rolled_back:
                break
    status = gateway.store.status("triage")
    assert status.rolled_back, gateway.monitor.figures("triage")
    assert status.reason is not None
    assert "json_validity" in status.reason
    assert "canary monitor, route triage: rolled back" in caplog.text
    # From the next call on, every key is served by stable.
    assert {gateway.choose("triage", key=key).arm for key in keys(100)} == {"stable"}
    counters = gateway.counters()["triage"]
    assert counters["candidate"]["fallbacks"] >= 20
    gateway.monitor.reset("triage")
    assert "candidate" in {gateway.choose("triage", key=key).arm for key in keys(100)}


def test_a_healthy_candidate_is_promoted_to_its_next_step(make_gateway: Any) -> None:
    gateway, _ = make_gateway(
        {
            "triage": {
                "stable": "sim-a",
                "candidate": "sim-b",
                "canary_percent": 30,
                "steps": [{"percent": 30, "min_requests": 40}, {"percent": 60}],
                "rollback": [
                    {
                        "metric": "error_rate",
                        "op": ">",
                        "threshold": 0.05,
                        "unit": "rate",
                        "margin": 0.05,
                        "min_requests": 40,
                    }
                ],
            }
        }
    )
    assert gateway.store is not None
    arms_before = [gateway.choose("triage", key=key).arm for key in keys(1000)]
    for key in keys(400):
        gateway.chat("triage", MESSAGES, key=key)
        if gateway.store.status("triage").step == 1:
            break
    status = gateway.store.status("triage")
    assert (status.step, status.canary_bp, status.rolled_back) == (1, 6000, False)
    arms_after = [gateway.choose("triage", key=key).arm for key in keys(1000)]
    # Sticky: a key on the candidate at 30% stays there at 60%.
    assert all(
        a == "candidate" for a, b in zip(arms_after, arms_before, strict=False) if b == "candidate"
    )
    assert 520 <= arms_after.count("candidate") <= 680
    assert 220 <= arms_before.count("candidate") <= 380
