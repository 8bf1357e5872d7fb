"""An offline OpenAI-compatible model server for tests, demos and smoke tests.

``SimulatorServer`` serves ``POST /v1/chat/completions`` (JSON and SSE streaming) and
``GET /v1/models`` on loopback for the models a ``Scenario`` declares, with seeded latency, errors
and quality drift so that a gate can be exercised end to end without a provider::

    from pytest_modelgate.simulator import Scenario, SimulatorServer

    scenario = Scenario.model_validate({"models": {"sim-stable": {}, "sim-candidate": {}}})
    with SimulatorServer(scenario, port=0) as sim:
        ...  # point an OpenAI client at sim.base_url

The answer rules, the scenario keys and the reproducibility contract are in ``docs/simulator.md``.
"""

from __future__ import annotations

from pytest_modelgate.simulator.scenario import (
    LatencySpec,
    ModelBehaviour,
    Scenario,
    ScenarioError,
    ScriptEntry,
    load_scenario,
)
from pytest_modelgate.simulator.server import (
    ServedRequest,
    SimulatorServer,
    main_simulate,
    serve_forever,
)

__all__ = [
    "LatencySpec",
    "ModelBehaviour",
    "Scenario",
    "ScenarioError",
    "ScriptEntry",
    "ServedRequest",
    "SimulatorServer",
    "load_scenario",
    "main_simulate",
    "serve_forever",
]
