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


    def triage_in_threads(texts):
        # Threads the product starts itself, without copying the caller's context.
        import threading
        from concurrent.futures import ThreadPoolExecutor

        results = {}

        def work(i, text):
            results[i] = triage(text)

        thread = threading.Thread(target=work, args=(0, texts[0]))
        thread.start()
        thread.join()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(work, range(1, len(texts)), texts[1:]))
        return [results[i] for i in range(len(texts))]


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


    import pytest


    @pytest.mark.model_contract(json=True)
    def test_marker_only():
        # No llm argument: the modelgate marker makes it a gated test, pinned like the others.
        assert product.triage("Classify this ticket as JSON: my invoice is wrong") == "billing"


    def test_threads(llm):
        texts = ["Classify this ticket as JSON: my invoice is wrong"] * 3
        assert product.triage_in_threads(texts) == ["billing"] * 3
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
    result.assert_outcomes(passed=8)
    records: list[dict[str, Any]] = project.records()
    models = {(record["arm"], call["model"]) for record in records for call in record["calls"]}
    assert models == {("stable", "sim-stable"), ("candidate", "sim-candidate")}
    # 1 + 1 + 1 + 3 calls per arm: those of the marker-only test and of the product's own
    # threads are recorded too.
    assert sum(len(record["calls"]) for record in records) == 12
    marked = [r for r in records if "test_marker_only" in r["test_id"]]
    assert sorted((r["arm"], len(r["calls"])) for r in marked) == [("candidate", 1), ("stable", 1)]
    threaded = [r for r in records if "test_threads" in r["test_id"]]
    assert sorted(len(r["calls"]) for r in threaded) == [3, 3]
    clients = sorted(call["client"] for record in records for call in record["calls"])
    assert clients == ["modelgate"] * 10 + ["openai", "openai"]
