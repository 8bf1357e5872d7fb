"""OpenTelemetry spans and metrics for every model call, in the GenAI semantic conventions.

An :class:`OpenTelemetryObserver` (the ``otel`` extra: ``pip install
'pytest-modelgate[otel]'``, the OpenTelemetry API; the application brings its SDK and
exporters) turns each :class:`~pytest_modelgate.gateway.events.ModelCallEvent` into

* a CLIENT span named ``chat {gen_ai.request.model}``, timed with the call's own start and
  duration, with ``gen_ai.operation.name``, the provider, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` / ``output_tokens``,
  ``gen_ai.response.finish_reasons``, ``server.address`` / ``server.port`` and, when every
  attempt failed, ``error.type`` and an ERROR status;
* the histograms ``gen_ai.client.operation.duration`` (s), ``gen_ai.client.token.usage``
  (``{token}``, by ``gen_ai.token.type``) and, for streamed calls,
  ``gen_ai.client.operation.time_to_first_chunk`` (s), with the conventions' bucket advice;

plus this layer's own ``modelgate.route``, ``modelgate.arm`` (stable / candidate) and
``modelgate.role`` (primary / fallback / shadow) on spans and metrics, so canary and stable sit
side by side in whatever backend the team runs. No message, reply or key is ever recorded.

``OTEL_SEMCONV_STABILITY_OPT_IN``: the conventions' own switch for instrumentations that existed
at v1.36.0. Without ``gen_ai_latest_experimental`` in it, the provider goes in ``gen_ai.system``
(the v1.36.0 name); with it, in ``gen_ai.provider.name`` (the current name), and
``gen_ai.response.time_to_first_chunk`` is set on streamed spans. Read when the observer is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.gateway.events import ModelCallEvent, Observer

__all__ = ["LATEST_OPT_IN", "OpenTelemetryObserver", "provider_name"]

LATEST_OPT_IN = "gen_ai_latest_experimental"
_SCOPE = "pytest_modelgate.gateway"

# The conventions' well-known provider values where the catalog's id differs.
_WELL_KNOWN = {"gemini": "gcp.gemini", "mistral": "mistral_ai", "zai": "z_ai"}

# ExplicitBucketBoundaries the GenAI metric conventions advise.
_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


def provider_name(catalog_provider: str | None) -> str:
    """The ``gen_ai.provider.name`` of a catalog provider id (``_OTHER`` when unknown)."""
    if not catalog_provider:
        return "_OTHER"
    return _WELL_KNOWN.get(catalog_provider, catalog_provider)


def _latest(environ: Mapping[str, str]) -> bool:
    values = environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    return LATEST_OPT_IN in {value.strip() for value in values.split(",")}


class OpenTelemetryObserver(Observer):
    """Spans and metrics for every model call the gateway makes (see the module docstring).

    ``tracer_provider`` / ``meter_provider``: default the global ones the application set up.
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as error:
            raise ModelgateError(
                "OpenTelemetry telemetry needs the OpenTelemetry API: "
                "pip install 'pytest-modelgate[otel]'"
            ) from error
        from pytest_modelgate import __version__

        self._trace = trace
        self.latest = _latest(os.environ if environ is None else environ)
        self._provider_key = "gen_ai.provider.name" if self.latest else "gen_ai.system"
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(_TOKEN_BUCKETS),
        )
        self._first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )

    def _common(self, event: ModelCallEvent) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            self._provider_key: provider_name(event.provider),
            "gen_ai.request.model": event.model_id,
            "modelgate.route": event.route,
            "modelgate.arm": event.arm,
            "modelgate.role": event.role,
        }
        address = urlsplit(event.base_url)
        if address.hostname:
            attributes["server.address"] = address.hostname
            port = address.port or (443 if address.scheme == "https" else 80)
            attributes["server.port"] = port
        if event.response_model:
            attributes["gen_ai.response.model"] = event.response_model
        if event.error_kind is not None:
            attributes["error.type"] = event.error_kind
        return attributes

    def on_model_call(self, event: ModelCallEvent) -> None:
        """One span and the metrics of one call (primary, fallback or shadow)."""
        attributes = self._common(event)
        span_attributes = dict(attributes)
        span_attributes["modelgate.model"] = event.model
        span_attributes["modelgate.attempts"] = event.attempts
        span_attributes["modelgate.stream"] = event.stream
        span_attributes["modelgate.contract_violations"] = len(event.violations)
        if event.input_tokens is not None:
            span_attributes["gen_ai.usage.input_tokens"] = event.input_tokens
        if event.output_tokens is not None:
            span_attributes["gen_ai.usage.output_tokens"] = event.output_tokens
        if event.finish_reason is not None:
            span_attributes["gen_ai.response.finish_reasons"] = (event.finish_reason,)
        if event.cost_usd is not None:
            span_attributes["modelgate.cost_usd"] = event.cost_usd
        if self.latest and event.stream and event.ttft_s is not None:
            span_attributes["gen_ai.response.time_to_first_chunk"] = event.ttft_s
        end_ns = event.started_ns + int(event.duration_s * 1e9)
        span = self._tracer.start_span(
            f"chat {event.model_id}",
            kind=self._trace.SpanKind.CLIENT,
            attributes=span_attributes,
            start_time=event.started_ns,
        )
        if event.error_kind is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.error_kind))
        span.end(end_time=end_ns)
        self._duration.record(event.duration_s, attributes)
        if event.input_tokens is not None:
            self._tokens.record(event.input_tokens, {**attributes, "gen_ai.token.type": "input"})
        if event.output_tokens is not None:
            self._tokens.record(event.output_tokens, {**attributes, "gen_ai.token.type": "output"})
        if event.stream and event.ttft_s is not None:
            self._first_chunk.record(event.ttft_s, attributes)
