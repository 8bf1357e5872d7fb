"""OpenTelemetry through a real Gateway on the simulator, read back with the SDK's in-memory
exporter and metric reader: GenAI span names and attributes, both canary arms side by side,
fallback and shadow spans, a failure's error.type, streamed time to first chunk, no key or text,
and the OTEL_SEMCONV_STABILITY_OPT_IN switch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pytest_modelgate.gateway.otel import OpenTelemetryObserver
from tests.conftest import SIM_KEY
from tests.gatewaybench import MESSAGES


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def observer(self, **environ: str) -> OpenTelemetryObserver:
        return OpenTelemetryObserver(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            environ=environ,
        )

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    made = Telemetry()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


def test_both_arms_of_a_canary_show_side_by_side(make_gateway: Any, telemetry: Telemetry) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 50}},
        observers=[telemetry.observer()],
    )
    for i in range(20):
        gateway.chat("triage", MESSAGES, key=f"customer-{i}")
    spans = telemetry.spans.get_finished_spans()
    assert len(spans) == 20
    span = spans[0]
    assert span.kind is SpanKind.CLIENT
    assert span.name == f"chat {span.attributes['gen_ai.request.model']}"
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == "_OTHER"  # a model of the config, no catalog provider
    assert "gen_ai.provider.name" not in attributes
    assert attributes["server.address"] == "127.0.0.1"
    assert isinstance(attributes["server.port"], int)
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["modelgate.role"] == "primary"
    # The span carries the call's own start and duration (set from the event).
    assert span.end_time is not None
    assert span.start_time is not None
    assert 0 < span.end_time - span.start_time < 5e9
    arms = {s.attributes["modelgate.arm"]: s.attributes["modelgate.model"] for s in spans}
    assert arms == {"stable": "sim-a", "candidate": "sim-b"}
    durations = telemetry.points("gen_ai.client.operation.duration")
    by_arm = {p.attributes["modelgate.arm"]: p.count for p in durations}
    assert sum(by_arm.values()) == 20
    assert set(by_arm) == {"stable", "candidate"}
    tokens = {
        p.attributes["gen_ai.token.type"] for p in telemetry.points("gen_ai.client.token.usage")
    }
    assert tokens == {"input", "output"}


def test_a_failed_call_then_its_fallback(make_gateway: Any, telemetry: Telemetry) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-down", "canary_percent": 100}},
        observers=[telemetry.observer()],
    )
    assert gateway.chat("triage", MESSAGES).model == "sim-a"
    failed, fallback = telemetry.spans.get_finished_spans()
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "server_error"
    assert (failed.attributes["modelgate.role"], failed.attributes["modelgate.arm"]) == (
        "primary",
        "candidate",
    )
    assert fallback.attributes["modelgate.role"] == "fallback"
    assert fallback.status.status_code is StatusCode.UNSET
    errors = [
        p
        for p in telemetry.points("gen_ai.client.operation.duration")
        if "error.type" in p.attributes
    ]
    assert [p.attributes["error.type"] for p in errors] == ["server_error"]


def test_streamed_calls_record_time_to_first_chunk_and_shadow_calls_are_spans(
    make_gateway: Any, telemetry: Telemetry
) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-b", "shadow_percent": 100}},
        observers=[
            telemetry.observer(OTEL_SEMCONV_STABILITY_OPT_IN="http,gen_ai_latest_experimental")
        ],
    )
    gateway.chat("triage", MESSAGES, stream=True, stream_options={"include_usage": True})
    gateway.close(timeout_s=10)
    spans = {s.attributes["modelgate.role"]: s for s in telemetry.spans.get_finished_spans()}
    assert set(spans) == {"primary", "shadow"}
    primary = dict(spans["primary"].attributes or {})
    assert primary["modelgate.stream"] is True
    # The latest conventions: gen_ai.provider.name, and the span's time to first chunk.
    assert primary["gen_ai.provider.name"] == "_OTHER"
    assert "gen_ai.system" not in primary
    assert 0 < primary["gen_ai.response.time_to_first_chunk"] < 5
    assert spans["shadow"].attributes["modelgate.arm"] == "candidate"
    # The shadow call repeats the request, streamed too: one point per role.
    first_chunk = telemetry.points("gen_ai.client.operation.time_to_first_chunk")
    assert {p.attributes["modelgate.role"]: p.count for p in first_chunk} == {
        "primary": 1,
        "shadow": 1,
    }


def test_no_key_and_no_text_in_any_span_or_metric(make_gateway: Any, telemetry: Telemetry) -> None:
    gateway, _ = make_gateway({"triage": {"stable": "sim-a"}}, observers=[telemetry.observer()])
    reply = gateway.chat("triage", MESSAGES)
    recorded = repr([dict(s.attributes or {}) for s in telemetry.spans.get_finished_spans()])
    recorded += repr(telemetry.reader.get_metrics_data())
    assert SIM_KEY not in recorded
    assert reply.text not in recorded
    assert MESSAGES[0]["content"] not in recorded


def test_the_config_switch_adds_the_observer(make_gateway: Any) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a"}}, sections={"telemetry": {"opentelemetry": True}}
    )
    assert any(isinstance(o, OpenTelemetryObserver) for o in gateway.observers)
    plain, _ = make_gateway({"triage": {"stable": "sim-a"}})
    assert plain.observers == ()


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pytest_modelgate.errors import ModelgateError

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ModelgateError, match=r"pip install 'pytest-modelgate\[otel\]'"):
        OpenTelemetryObserver()


def test_catalog_providers_map_to_the_conventions_well_known_names() -> None:
    from pytest_modelgate.gateway.otel import provider_name

    assert [provider_name(p) for p in ("openai", "anthropic", "gemini", "deepseek", None)] == [
        "openai",
        "anthropic",
        "gcp.gemini",
        "deepseek",
        "_OTHER",
    ]
