"""Gateway.close(): shadow jobs that never ran are counted as shadow drops of their route."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pytest_modelgate.gateway import Gateway
from pytest_modelgate.simulator import SimulatorServer
from tests.conftest import SIM_KEY

KEY_ENV = "MODELGATE_GW_CLOSE_KEY"
MESSAGES = [{"role": "user", "content": "Classify this ticket as JSON: my invoice is wrong"}]


def _gateway(sim: SimulatorServer, tmp_path: Path) -> Gateway:
    model = {"base_url": sim.base_url, "api_key_env": KEY_ENV}
    data = {
        "models": {"sim-a": model, "sim-slow": model},
        "client": {"max_retries": 0},
        "routes": {
            "shadowed": {"stable": "sim-a", "candidate": "sim-slow", "shadow_percent": 100},
            "quiet": {"stable": "sim-a"},
        },
    }
    path = tmp_path / "modelgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return Gateway.from_config(path, environ={KEY_ENV: SIM_KEY}, shadow_workers=1, shadow_queue=4)


def test_jobs_cancelled_at_close_are_returned_and_counted_as_drops(
    start_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = start_simulator({"sim-a": {}, "sim-slow": {"latency_ms": 300}})
    gateway = _gateway(sim, tmp_path)
    for _ in range(5):  # one running, four queued: none dropped at submit time
        gateway.chat("shadowed", MESSAGES)
    gateway.chat("quiet", MESSAGES)
    not_run = gateway.close(timeout_s=5, cancel_shadow=True)
    counters = gateway.counters()
    candidate = counters["shadowed"]["candidate"]
    assert not_run >= 3
    assert candidate["shadow_drops"] == not_run
    assert candidate["shadow_calls"] + candidate["shadow_drops"] == 5
    assert counters["quiet"]["candidate"]["shadow_drops"] == 0


def test_jobs_still_queued_when_the_wait_ends_are_counted_and_never_run(
    start_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    sim = start_simulator({"sim-a": {}, "sim-slow": {"latency_ms": 300}})
    gateway = _gateway(sim, tmp_path)
    for _ in range(5):
        gateway.chat("shadowed", MESSAGES)
    not_run = gateway.close(timeout_s=0.1)
    assert not_run >= 3
    # The worker outlives the wait and finishes the job it had started; the queued jobs
    # counted as not run must stay not run (else calls + drops would pass 5).
    time.sleep(1.0)
    candidate = gateway.counters()["shadowed"]["candidate"]
    assert candidate["shadow_drops"] == not_run
    assert candidate["shadow_calls"] + candidate["shadow_drops"] == 5
