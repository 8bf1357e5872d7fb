"""The product's own checks on the gateway: ``accept=`` rejects a reply like a contract break
(the next model answers), and ``note_fallback`` counts a product-level fallback on the request's
arm. Against the real simulator."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_modelgate.gateway.core import ContractBreakError
from tests.gatewaybench import MESSAGES

ROUTE = {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 100}


def test_a_rejected_reply_falls_back_to_the_next_model(make_gateway: Any) -> None:
    gateway, _ = make_gateway({"triage": ROUTE})
    seen: list[str] = []

    def accept(reply: Any) -> bool | str:
        seen.append(reply.model)
        return True if reply.model == "sim-a" else "no category in the answer"

    reply = gateway.chat("triage", MESSAGES, key="k", accept=accept)
    assert reply.model == "sim-a"
    assert seen == ["sim-b", "sim-a"]
    counters = gateway.counters()["triage"]["candidate"]
    assert (counters["contract_breaks"], counters["fallbacks"]) == (1, 1)


def test_every_reply_rejected_raises_with_the_reason(make_gateway: Any) -> None:
    gateway, _ = make_gateway({"triage": ROUTE})
    with pytest.raises(ContractBreakError, match="rejected by the product's accept check: nope"):
        gateway.chat("triage", MESSAGES, key="k", accept=lambda reply: "nope")
    # None and True accept.
    assert gateway.chat("triage", MESSAGES, key="k", accept=lambda reply: None).model == "sim-b"


def test_note_fallback_counts_on_the_requests_arm(make_gateway: Any) -> None:
    gateway, _ = make_gateway(
        {
            "triage": {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 50},
            "reply": {"stable": "sim-a"},
        }
    )
    keys = {gateway.choose("triage", key=f"k{i}").arm: f"k{i}" for i in range(40)}
    gateway.note_fallback("triage", "keyword rule", key=keys["candidate"])
    gateway.note_fallback("triage", "keyword rule", key=keys["candidate"])
    gateway.note_fallback("triage", "keyword rule", key=keys["stable"])
    gateway.note_fallback("reply", "canned reply")  # no canary: the stable arm
    counters = gateway.counters()
    assert counters["triage"]["candidate"]["product_fallbacks"] == 2
    assert counters["triage"]["stable"]["product_fallbacks"] == 1
    assert counters["reply"]["stable"]["product_fallbacks"] == 1
    with pytest.raises(ValueError, match="needs the request's key"):
        gateway.note_fallback("triage", "keyword rule")
