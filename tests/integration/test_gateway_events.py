"""The gateway's observer seam against the real simulator: which model calls and requests an
observer sees (primary, fallback, shadow), with what figures, and that a failing observer never
breaks user traffic. ``StoreState`` over a ``MemoryStore`` moves a route as the monitor will."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from pytest_modelgate.errors import ModelAPIError
from pytest_modelgate.gateway.events import ModelCallEvent, Observer, RequestEvent
from pytest_modelgate.gateway.routes import RouteSettings
from pytest_modelgate.gateway.state import MemoryStore, RouteStatus, StoreState
from tests.conftest import SIM_KEY
from tests.gatewaybench import MESSAGES, STICKY


class Recorder(Observer):
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[ModelCallEvent] = []
        self.requests: list[RequestEvent] = []

    def on_model_call(self, event: ModelCallEvent) -> None:
        with self.lock:
            self.calls.append(event)

    def on_request(self, event: RequestEvent) -> None:
        with self.lock:
            self.requests.append(event)


class Broken(Observer):
    def on_model_call(self, event: ModelCallEvent) -> None:
        raise RuntimeError("observer bug")

    def on_request(self, event: RequestEvent) -> None:
        raise RuntimeError("observer bug")


def test_a_served_request_reports_its_call_with_the_reply_figures(make_gateway: Any) -> None:
    recorder = Recorder()
    gateway, _ = make_gateway({"triage": {"stable": "sim-a"}}, observers=[recorder])
    reply = gateway.chat("triage", MESSAGES, key=STICKY)
    (call,) = recorder.calls
    (request,) = recorder.requests
    assert request.primary is call
    assert (request.route, request.arm, request.fallbacks, request.served_by) == (
        "triage",
        "stable",
        0,
        "sim-a",
    )
    assert request.ok
    assert call.ok
    assert not request.killed
    assert (call.role, call.model, call.stream) == ("primary", "sim-a", False)
    assert call.error_kind is None
    assert call.input_tokens == reply.usage.prompt_tokens > 0
    assert call.output_tokens == reply.usage.completion_tokens > 0
    assert call.cost_usd == pytest.approx(reply.cost_usd)
    assert call.duration_s > 0
    assert call.started_ns > 0
    assert call.base_url.startswith("http://127.0.0.1:")
    # No key, message or reply text travels on an event.
    assert STICKY not in repr(recorder.calls) + repr(recorder.requests)
    assert SIM_KEY not in repr(recorder.calls)


def test_a_failing_candidate_reports_its_error_and_the_fallback_that_served(
    make_gateway: Any,
) -> None:
    recorder = Recorder()
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-down", "canary_percent": 100}},
        observers=[recorder],
    )
    reply = gateway.chat("triage", MESSAGES, key=STICKY)
    assert reply.model == "sim-a"
    (request,) = recorder.requests
    assert [(c.role, c.model, c.error_kind) for c in recorder.calls] == [
        ("primary", "sim-down", "server_error"),
        ("fallback", "sim-a", None),
    ]
    assert (request.arm, request.fallbacks, request.served_by) == ("candidate", 1, "sim-a")
    assert request.primary.model == "sim-down"
    assert not request.primary.ok
    assert request.ok


def test_a_contract_break_is_on_the_event_and_every_model_failing_serves_nobody(
    make_gateway: Any,
) -> None:
    recorder = Recorder()
    gateway, _ = make_gateway(
        {"doomed": {"stable": "sim-broken", "fallback": ["sim-down"], "contract": {"json": True}}},
        observers=[recorder],
    )
    with pytest.raises(ModelAPIError) as info:
        gateway.chat("doomed", MESSAGES, response_format={"type": "json_object"})
    assert info.value.error_kind == "server_error"
    assert info.value.error_kind == "server_error"
    primary, fallback = recorder.calls
    assert primary.violations
    assert primary.error_kind is None
    assert not primary.ok
    assert fallback.error_kind == "server_error"
    (request,) = recorder.requests
    assert request.served_by is None
    assert not request.ok
    assert request.fallbacks == 1


def test_shadow_calls_are_reported_with_the_shadow_role(make_gateway: Any) -> None:
    recorder = Recorder()
    gateway, _ = make_gateway(
        {"shadowed": {"stable": "sim-a", "candidate": "sim-b", "shadow_percent": 100}},
        observers=[recorder],
    )
    for _ in range(3):
        gateway.chat("shadowed", MESSAGES)
    gateway.close(timeout_s=5)
    roles = sorted((c.role, c.arm, c.model) for c in recorder.calls)
    assert roles == [("primary", "stable", "sim-a")] * 3 + [("shadow", "candidate", "sim-b")] * 3
    # A shadow call is no user request: the monitor only ever sees the served arm's requests.
    assert [r.arm for r in recorder.requests] == ["stable"] * 3


def test_an_observer_that_raises_is_logged_and_never_breaks_the_reply(
    make_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    gateway, _ = make_gateway({"triage": {"stable": "sim-a"}}, observers=[Broken(), recorder])
    with caplog.at_level(logging.ERROR, logger="pytest_modelgate.gateway"):
        reply = gateway.chat("triage", MESSAGES)
    assert reply.model == "sim-a"
    # The observer after the broken one still got both events.
    assert len(recorder.calls) == len(recorder.requests) == 1
    failures = [r.getMessage() for r in caplog.records if "observer" in r.getMessage()]
    assert len(failures) == 2, failures


def test_store_state_rolls_back_kills_and_resizes_a_route_through_the_store(
    make_gateway: Any,
) -> None:
    routes = {
        "triage": RouteSettings.model_validate(
            {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 100}
        )
    }
    store = MemoryStore()
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 100}},
        state=StoreState(routes, store),
    )
    assert gateway.chat("triage", MESSAGES).model == "sim-b"
    assert store.transition(
        "triage", 0, RouteStatus(generation=1, rolled_back=True, reason="error rate")
    )
    # Obeyed on the next call, by any gateway reading the same store.
    assert gateway.chat("triage", MESSAGES).model == "sim-a"
    assert gateway.choose("triage").arm == "stable"
    assert store.transition("triage", 1, RouteStatus(generation=2, canary_bp=0))
    assert gateway.choose("triage").arm == "stable"
    assert store.transition("triage", 2, RouteStatus(generation=3, canary_bp=10_000))
    assert gateway.choose("triage").arm == "candidate"
    assert store.transition("triage", 3, RouteStatus(generation=4, killed=True))
    choice = gateway.choose("triage")
    assert (choice.arm, choice.killed, choice.shadow_model) == ("stable", True, None)
