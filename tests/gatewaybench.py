"""The gateway test bench: a simulator with one behaviour per model, and a gateway factory.

``make_gateway(routes, **options)`` writes a modelgate.yaml whose models all point at the
simulator (with a price, so costs are measured) and builds a :class:`Gateway` from it; every
gateway made is closed after the test. Fixtures live in tests/integration/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_modelgate.gateway import Gateway
from pytest_modelgate.simulator import SimulatorServer
from tests.conftest import SIM_KEY

KEY_ENV = "MODELGATE_GW_TEST_KEY"
STICKY = "user-secret-sticky-4711"
MESSAGES = [{"role": "user", "content": "Classify this ticket as JSON: my invoice is wrong"}]

BEHAVIOURS: dict[str, dict[str, Any]] = {
    "sim-a": {},
    "sim-b": {},
    "sim-down": {"server_error_rate": 1.0},
    "sim-broken": {"json_breakage": 1.0},
    "sim-slow": {"latency_ms": 400},
    "sim-100ms": {"latency_ms": 100},
    # Twins whose latency is a fixed 20 ms rather than a millisecond of scheduling noise: a
    # busy machine cannot make one look 1.2x slower than the other.
    "sim-twin-a": {"latency_ms": 20},
    "sim-twin-b": {"latency_ms": 20},
}


def gateway_sim(start_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    return start_simulator(BEHAVIOURS)


def gateway_factory(
    sim: SimulatorServer, tmp_path: Path
) -> Iterator[Callable[..., tuple[Gateway, Path]]]:
    made: list[Gateway] = []

    def make(
        routes: Mapping[str, Any], *, sections: Mapping[str, Any] | None = None, **options: Any
    ) -> tuple[Gateway, Path]:
        models = {
            name: {
                "base_url": sim.base_url,
                "api_key_env": KEY_ENV,
                "price": {"input": 1.0, "output": 2.0},
            }
            for name in BEHAVIOURS
        }
        data = {
            "models": models,
            "client": {"max_retries": 0, "backoff_base_s": 0.01},
            "routes": dict(routes),
            **(sections or {}),
        }
        path = tmp_path / "modelgate.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        options.setdefault("environ", {KEY_ENV: SIM_KEY})
        gateway = Gateway.from_config(path, **options)
        made.append(gateway)
        return gateway, path

    yield make
    for gateway in made:
        gateway.close(timeout_s=2, cancel_shadow=True)
