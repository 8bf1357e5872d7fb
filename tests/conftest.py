"""Shared fixtures: a real simulator on 127.0.0.1 and pytester projects wired to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

# pytester's in-process runs restore sys.modules afterwards, dropping modules first imported
# inside them. httpx maps httpcore's exceptions through classes it caches on first use, so an
# httpcore re-imported after such a run no longer matches and raw httpcore errors escape. Import
# the HTTP stacks once, before any in-process run. numpy (the judge's) cannot be imported twice
# in one process at all: a test file run alone crashed the judge of its second in-process run.
import httpcore  # noqa: F401
import httpcore2  # noqa: F401
import httpx  # noqa: F401
import httpx2  # noqa: F401
import numpy  # noqa: F401
import openai  # noqa: F401
import pytest
import yaml
from gatesettings import DEFAULT_PRICE

from pytest_modelgate.simulator import Scenario, SimulatorServer

SIM_KEY = "sk-sim-test-0123456789abcdef"
SIM_KEY_ENV = "MODELGATE_TEST_SIM_KEY"

# Quick, healthy behaviour: tests stay fast and a healthy candidate passes reliably.
HEALTHY: dict[str, Any] = {"latency_ms": {"median": 4, "p95": 8}}


@pytest.fixture(autouse=True)
def _live_mode_unless_a_test_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Projects made by these tests call the simulator: live mode, not the replay default.

    Tests of recordings pass --modelgate-mode (which beats the environment); tests of the
    default delete the variable.
    """
    monkeypatch.setenv("MODELGATE_MODE", "live")


@pytest.fixture(autouse=True)
def _not_a_github_actions_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs made by these tests must not annotate or write the real CI job's step summary.

    Tests of the GitHub Actions output set the variables themselves.
    """
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Start a simulator with the given models; every one started is stopped at teardown."""
    servers: list[SimulatorServer] = []

    def start(models: Mapping[str, Mapping[str, Any]], *, seed: int = 7) -> SimulatorServer:
        scenario = Scenario.model_validate(
            {"api_key": SIM_KEY, "seed": seed, "models": {k: dict(v) for k, v in models.items()}}
        )
        server = SimulatorServer(scenario, port=0)
        server.__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


class GateProject:
    """A pytester project whose modelgate.yaml points at a simulator."""

    def __init__(self, pytester: pytest.Pytester, sim: SimulatorServer) -> None:
        self.pytester = pytester
        self.sim = sim
        # The key the simulator expects; modelgate.yaml names SIM_KEY_ENV, which holds it.
        self.key = SIM_KEY
        self.key_env = SIM_KEY_ENV

    @property
    def verdict_path(self) -> Path:
        return self.pytester.path / "modelgate-verdict.json"

    def write_config(
        self,
        models: Mapping[str, Mapping[str, Any] | None],
        *,
        stable: str | None = None,
        gate: Mapping[str, Any] | None = None,
        client: Mapping[str, Any] | None = None,
    ) -> None:
        entries: dict[str, Any] = {}
        for name, extra in models.items():
            entry: dict[str, Any] = {
                "base_url": self.sim.base_url,
                "api_key_env": SIM_KEY_ENV,
                "price": dict(DEFAULT_PRICE),
            }
            entry.update(extra or {})
            entries[name] = entry
        data: dict[str, Any] = {"models": entries}
        if stable:
            data["stable"] = stable
        if gate:
            data["gate"] = dict(gate)
        data["client"] = {"backoff_base_s": 0.01, **(client or {})}
        (self.pytester.path / "modelgate.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")

    def records(self) -> list[dict[str, Any]]:
        """The records file next to the verdict: one dict per test item and arm."""
        path = self.verdict_path.with_name("modelgate-verdict.records.jsonl")
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def verdict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.verdict_path.read_text(encoding="utf-8"))
        return loaded


@pytest.fixture
def gate_project(
    pytester: pytest.Pytester,
    start_simulator: Callable[..., SimulatorServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., GateProject]:
    """Make a project: a simulator with ``models`` and a modelgate.yaml that names them."""

    def make(
        models: Mapping[str, Mapping[str, Any]],
        *,
        stable: str | None = None,
        gate: Mapping[str, Any] | None = None,
        prices: Mapping[str, Mapping[str, Any] | None] | None = None,
        client: Mapping[str, Any] | None = None,
        seed: int = 7,
    ) -> GateProject:
        sim = start_simulator(models, seed=seed)
        monkeypatch.setenv(SIM_KEY_ENV, SIM_KEY)
        project = GateProject(pytester, sim)
        extras: dict[str, Mapping[str, Any] | None] = {name: None for name in models}
        for name, price in (prices or {}).items():
            extras[name] = {"price": price}
        project.write_config(extras, stable=stable, gate=gate, client=client)
        return project

    return make


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real redis-server on loopback for the session (skips, saying why, without one)."""
    from redisserver import RedisServer, free_port

    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
