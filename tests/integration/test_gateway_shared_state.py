"""Two processes, or two replicas through Redis, share one route: a rollback fired by one is
obeyed by the other on its next call, the counters add up over both, and a Redis outage never
breaks user traffic (the calls go to stable and the log says why). Real processes, a real
redis-server, the real simulator."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SIM_KEY
from tests.gatewaybench import KEY_ENV, MESSAGES

# A second replica: one call, then one more each time the test writes a line.
_REPLICA = """
import json, sys
from pytest_modelgate.gateway import Gateway
gateway = Gateway.from_config(sys.argv[1], environ={%r: %r})
messages = %r
def call():
    reply = gateway.chat("triage", messages, response_format={"type": "json_object"}, key="k-1")
    print(json.dumps(reply.model), flush=True)
call()
for line in sys.stdin:
    if line.strip() == "counters":
        print(json.dumps(gateway.counters()["triage"]), flush=True)
    else:
        call()
gateway.close()
"""

ROUTE = {
    "stable": "sim-a",
    "candidate": "sim-broken",
    "canary_percent": 100,
    "contract": {"json": True},
    "rollback": [
        {
            "metric": "json_validity",
            "op": "<",
            "threshold": 0.9,
            "unit": "rate",
            "margin": 0.05,
            "min_requests": 20,
        }
    ],
}


def state_section(backend: str, request: Any) -> dict[str, Any]:
    if backend == "file":
        return {"backend": "file", "path": "state/route.db"}
    server = request.getfixturevalue("redis_server")
    return {"backend": "redis", "url": server.url, "prefix": f"i-{uuid.uuid4().hex[:8]}"}


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_a_rollback_in_one_process_is_obeyed_by_the_other(
    backend: str, make_gateway: Any, tmp_path: Path, request: Any
) -> None:
    # canary 100% with half the keys on stable would not compare arms: split by key instead.
    route = {**ROUTE, "canary_percent": 50}
    gateway, path = make_gateway(
        {"triage": route}, sections={"state": state_section(backend, request)}
    )
    script = tmp_path / "replica.py"
    script.write_text(_REPLICA % (KEY_ENV, SIM_KEY, MESSAGES), encoding="utf-8")
    replica = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert replica.stdout is not None
        assert replica.stdin is not None
        first = json.loads(replica.stdout.readline())
        assert first == gateway.choose("triage", key="k-1").model
        # This process sees the candidate break its contract until its monitor rolls back.
        served = 0
        for i in range(400):
            gateway.chat("triage", MESSAGES, response_format={"type": "json_object"}, key=f"u-{i}")
            served += 1
            if gateway.store is not None and gateway.store.status("triage").rolled_back:
                break
        assert gateway.store is not None
        assert gateway.store.status("triage").rolled_back
        # The other process obeys on its next call, whatever its key's bucket.
        on_stable = [
            f"k-{i}" for i in range(50) if gateway.choose("triage", key=f"k-{i}").arm == "stable"
        ]
        assert len(on_stable) == 50
        replica.stdin.write("call\n")
        replica.stdin.flush()
        assert json.loads(replica.stdout.readline()) == "sim-a"
        replica.stdin.write("counters\n")
        replica.stdin.flush()
        theirs = json.loads(replica.stdout.readline())
        ours = gateway.counters()["triage"]
        # One shared set of counters: both processes read the same sums, 1 + served + 1.
        assert theirs == ours
        assert ours["stable"]["requests"] + ours["candidate"]["requests"] == served + 2
    finally:
        if replica.stdin is not None:
            replica.stdin.close()
        replica.wait(timeout=30)
    assert replica.returncode == 0


def test_a_redis_outage_sends_users_to_stable_and_says_so(
    make_gateway: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from redisserver import RedisServer, free_port

    server = RedisServer(free_port(), tmp_path)
    server.start()
    try:
        route = {
            "stable": "sim-a",
            "candidate": "sim-b",
            "canary_percent": 100,
            "rollback": [{"metric": "error_rate", "op": ">", "threshold": 0.1, "unit": "rate"}],
        }
        gateway, _ = make_gateway(
            {"triage": route},
            sections={"state": {"backend": "redis", "url": server.url, "timeout_s": 0.2}},
        )
        assert gateway.chat("triage", MESSAGES, key="k").model == "sim-b"
        server.stop()
        with caplog.at_level(logging.WARNING, "pytest_modelgate.gateway"):
            replies = [gateway.chat("triage", MESSAGES, key="k") for _ in range(5)]
        assert [r.model for r in replies] == ["sim-a"] * 5
        assert "redis redis://127.0.0.1" in caplog.text
        assert "serving every route from stable" in caplog.text
        server.start()
        assert gateway.chat("triage", MESSAGES, key="k").model == "sim-b"
    finally:
        server.stop()
