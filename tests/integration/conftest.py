"""Fixtures of the gateway tests (tests/gatewaybench.py): ``sim`` and ``make_gateway``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_modelgate.gateway import Gateway
from pytest_modelgate.simulator import SimulatorServer
from tests.gatewaybench import gateway_factory, gateway_sim


@pytest.fixture
def sim(start_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    """The simulator with the models of tests/gatewaybench.py's BEHAVIOURS."""
    return gateway_sim(start_simulator)


@pytest.fixture
def make_gateway(
    sim: SimulatorServer, tmp_path: Path
) -> Iterator[Callable[..., tuple[Gateway, Path]]]:
    """``make_gateway(routes, **options) -> (gateway, config_path)``; closed after the test."""
    yield from gateway_factory(sim, tmp_path)
