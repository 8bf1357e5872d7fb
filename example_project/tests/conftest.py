"""Shared setup of the support-desk workflow tests.

The tests call the product as production does: it asks its gateway for a workflow and never sees
a client. Every test uses the gate's ``llm`` fixture (through the fixtures below), which pins
every gateway route to the arm the test runs on: the product's calls go to that arm's model and
are recorded, replayed and measured by the gate.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from pytest_modelgate import LLM

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
# Endpoints already probed in this run: base_url -> None (up) or why it is down.
_PROBED = pytest.StashKey[dict[str, str | None]]()


@pytest.fixture(autouse=True)
def _local_simulator_is_running(request: pytest.FixtureRequest, llm: LLM) -> None:
    """Stop the run at once, with the command to fix it, when the local simulator is not up.

    Without this, every test would spend its retries on a refused connection before failing.
    Only loopback endpoints are probed: a remote provider's outages are the gate's business.
    """
    url = urlsplit(llm.base_url)
    if llm.mode == "replay" or url.hostname not in _LOOPBACK:
        return  # replay answers from the recordings: no simulator needed
    probed = request.config.stash.setdefault(_PROBED, {})
    if llm.base_url not in probed:
        try:
            with socket.create_connection((url.hostname, url.port or 80), timeout=2):
                probed[llm.base_url] = None
        except OSError as exc:
            probed[llm.base_url] = exc.strerror or str(exc)
    problem = probed[llm.base_url]
    if problem is not None:
        pytest.exit(
            f"the model simulator is not reachable at {llm.base_url} ({problem}); start it with "
            f"`modelgate simulate --port {url.port} --scenario scenario.yaml` "
            "(or run `python demo.py`, which starts it for you)",
            returncode=pytest.ExitCode.INTERRUPTED,
        )
