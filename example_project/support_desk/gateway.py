"""Where the product gets its models: the gateway, configured by ``modelgate.yaml``.

The product names a workflow (``ticket_triage``, ``order_lookup``, ``customer_reply``); the
``routes:`` section of modelgate.yaml says which model answers it, and the gateway adds canary,
shadow, fallback and the kill switch. No model name and no client appear in the product's code.
Under pytest the gate pins every route to the arm a test runs on (``llm`` fixture), so the same
code is gated, recorded and replayed.

A workflow that gives up on the model's answer and uses its own fallback reports it with
``gateway.note_fallback(workflow, reason, key=...)``: production counts it per route and arm
(``product_fallbacks``) and logs it; under the gate the pin hands it to the test's arm, which
counts it in the fallback rate.
"""

from __future__ import annotations

import atexit
import functools
import os
from pathlib import Path

from pytest_modelgate.gateway import Gateway

__all__ = ["CONFIG_VARIABLE", "DEFAULT_CONFIG", "default_gateway"]

# The file the app reads its routes from: $SUPPORT_DESK_MODELGATE, else the project's own.
CONFIG_VARIABLE = "SUPPORT_DESK_MODELGATE"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "modelgate.yaml"


@functools.cache
def default_gateway() -> Gateway:
    """The app's gateway, made on first use and closed at exit (shadow calls are drained)."""
    gateway = Gateway.from_config(os.environ.get(CONFIG_VARIABLE) or DEFAULT_CONFIG)
    atexit.register(gateway.close)
    return gateway
