"""Product code built on the gateway, tested with ``llm``: every route answers with the arm.

The product module below never names a model and builds its own Gateway from modelgate.yaml;
its routes name models the run does not gate. Under the gate each call goes to the test's arm,
is measured into its records and judged, serially and with xdist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import GateProject

PRODUCT = """
    from pytest_modelgate.gateway import Gateway

    GATEWAY = Gateway.from_config("modelgate.yaml")


    def triage(text):
        reply = GATEWAY.chat(
            "ticket_triage",
            [{"role": "user", "content": text}],
            key="customer-1",
            response_format={"type": "json_object"},
        )
        return reply.json()["category"]


    def triage_sdk(text):
        client = GATEWAY.openai("ticket_triage")
        completion = client.chat.completions.create(
            model="ignored", messages=[{"role": "user", "content": text}]
        )
        return completion.model
"""

TESTS = """
    import product


    def test_triage(llm):
        assert product.triage("Classify this ticket as JSON: my invoice is wrong") == "billing"


    def test_sdk(llm):
        assert product.triage_sdk("Hello") == llm.model
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_routes_are_pinned_to_the_arm_and_recorded(
    gate_project: Callable[..., GateProject], workers: list[str]
) -> None:
    project = gate_project(
        {"sim-stable": {}, "sim-candidate": {}, "sim-prod": {}, "sim-next": {}},
        stable="sim-stable",
        gate={
            "cost_per_call_max_ratio": None,
            "latency_p50_max_ratio": None,
            "latency_p95_max_ratio": None,
            "ttft_p95_max_ratio": None,
        },
    )
    config_path = project.pytester.path / "modelgate.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["routes"] = {
        "ticket_triage": {
            "stable": "sim-prod",
            "candidate": "sim-next",
            "canary_percent": 50,
            "shadow_percent": 100,
        }
    }
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    project.pytester.makepyfile(product=PRODUCT, test_product=TESTS)
    result = project.pytester.runpytest(
        "--candidate-model=sim-candidate", "-p", "no:cacheprovider", *workers
    )
    result.assert_outcomes(passed=4)
    records: list[dict[str, Any]] = project.records()
    models = {(record["arm"], call["model"]) for record in records for call in record["calls"]}
    assert models == {("stable", "sim-stable"), ("candidate", "sim-candidate")}
    assert sum(len(record["calls"]) for record in records) == 4
    clients = sorted(call["client"] for record in records for call in record["calls"])
    assert clients == ["modelgate", "modelgate", "openai", "openai"]
