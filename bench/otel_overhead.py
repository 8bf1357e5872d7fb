"""What the OpenTelemetry observer adds per model call: CPU of ``on_model_call`` with the SDK.

The SDK's TracerProvider with a BatchSpanProcessor over an exporter that drops spans (what a
service exporting to a collector pays on the request thread), and a MeterProvider with an
in-memory reader; 20,000 events of a streamed and a plain call. Printed: microseconds of CPU per
call (``time.process_time``, this thread's process), median of 5 rounds.

    .venv/bin/python bench/otel_overhead.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from pytest_modelgate.gateway.events import ModelCallEvent
from pytest_modelgate.gateway.otel import OpenTelemetryObserver


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    observer = OpenTelemetryObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)
    events = [
        ModelCallEvent(
            route="ticket_triage", arm="candidate" if i % 20 == 0 else "stable", role="primary",
            model="qwen-max", model_id="qwen-max", provider="qwen",
            base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            started_ns=time.time_ns(), duration_s=0.8, stream=i % 2 == 0,
            ttft_s=0.2 if i % 2 == 0 else None, input_tokens=420, output_tokens=96,
            cost_usd=0.0004, finish_reason="stop", response_model="qwen-max",
        )
        for i in range(args.calls)
    ]  # fmt: skip
    rounds = []
    for _ in range(5):
        started = time.process_time()
        for event in events:
            observer.on_model_call(event)
        rounds.append((time.process_time() - started) / len(events) * 1e6)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    print(
        f"OpenTelemetry observer: {statistics.median(rounds):.1f} us of CPU per model call "
        f"(median of 5 rounds of {args.calls:,}; rounds {', '.join(f'{r:.1f}' for r in rounds)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
