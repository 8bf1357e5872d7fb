"""The model access layer: product code names a workflow, ``routes:`` picks the model.

``Gateway.from_config("modelgate.yaml")`` then ``gateway.chat("ticket_triage", messages)``;
see docs/gateway.md. Never imports pytest; holds no state outside a :class:`Gateway`.

The names below are imported on first use: ``config.py`` imports ``gateway.routes`` (the
``routes:`` models), and reading a modelgate.yaml must not load the HTTP side of the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_modelgate.lazyexports import lazy_attribute

if TYPE_CHECKING:
    from pytest_modelgate.gateway.bucketing import BUCKETS, bucket_of
    from pytest_modelgate.gateway.core import ContractBreakError, Gateway, NoRouteError
    from pytest_modelgate.gateway.events import ModelCallEvent, Observer, RequestEvent
    from pytest_modelgate.gateway.routes import RouteSettings
    from pytest_modelgate.gateway.state import (
        ArmChoice,
        MemoryStore,
        MonitorStore,
        RouteState,
        RouteStatus,
        StateBackend,
        StaticState,
        StoreState,
    )

__all__ = [
    "BUCKETS",
    "ArmChoice",
    "ContractBreakError",
    "Gateway",
    "MemoryStore",
    "ModelCallEvent",
    "MonitorStore",
    "NoRouteError",
    "Observer",
    "RequestEvent",
    "RouteSettings",
    "RouteState",
    "RouteStatus",
    "StateBackend",
    "StaticState",
    "StoreState",
    "bucket_of",
]

_HOME = {
    "BUCKETS": "bucketing",
    "bucket_of": "bucketing",
    "ContractBreakError": "core",
    "Gateway": "core",
    "NoRouteError": "core",
    "ModelCallEvent": "events",
    "Observer": "events",
    "RequestEvent": "events",
    "RouteSettings": "routes",
    "ArmChoice": "state",
    "RouteState": "state",
    "StateBackend": "state",
    "StaticState": "state",
    "MemoryStore": "state",
    "MonitorStore": "state",
    "RouteStatus": "state",
    "StoreState": "state",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _HOME, name)
