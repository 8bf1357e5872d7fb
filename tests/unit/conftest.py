"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback import ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A scripted loopback server, stopped after the test."""
    srv = ScriptedServer()
    yield srv
    srv.shutdown()
    srv.server_close()
