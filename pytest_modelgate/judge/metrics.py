"""Per-arm metrics computed from test records, and how each metric is compared and shown.

No pytest; numpy only inside ``compute_arm_metrics``, which turns the ``TestRecord`` list of
one arm into an ``ArmMetrics``; every metric a judge compares is a ``Measurement`` that carries
the number of samples it rests on, so a p95 over four calls is never mistaken for a solid
number. ``METRICS`` describes the compared metrics (unit, direction, which ``GateLimits`` field
bounds them) for every judge and for the report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from pytest_modelgate.calls.records import CallRecord, TestRecord

Unit = Literal["rate", "ms", "usd", "tokens", "number"]
ChangeKind = Literal["points", "ratio"]

__all__ = [
    "BUILTIN_METRIC_NAMES",
    "METRICS",
    "MISSING",
    "ArmMetrics",
    "ChangeKind",
    "CustomMetric",
    "CustomMetricError",
    "MeasuredCall",
    "Measurement",
    "MetricSpec",
    "Unit",
    "call_tokens",
    "compute_arm_metrics",
    "format_change",
    "format_limit",
    "format_value",
    "metric_spec",
    "percentile",
    "resolve_custom_metrics",
]


@dataclass(frozen=True)
class Measurement:
    """One metric value of one arm and the number of samples it was computed from.

    ``value`` is ``None`` when there is nothing to compute it from (``samples == 0``) or, for cost,
    when part of the data is unknown.
    """

    value: float | None
    samples: int


@dataclass(frozen=True, kw_only=True)
class ArmMetrics:
    """Everything the gate measures about one arm (stable or candidate) of a run."""

    n_tests: int
    passed: int
    failed: int
    skipped: int
    error: int
    # passed / (passed + failed + error); skipped tests decide nothing.
    pass_rate: Measurement
    attempts: int
    failed_attempts: int
    # failed attempts / attempts; retries count, because each one is a call the provider failed.
    error_rate: Measurement
    # Distinct (test_id, repeat, call_index): calls the code made, before retries.
    logical_calls: int
    tests_with_fallback: int
    # tests with >= 1 fallback / tests that ran (skipped tests ran no workflow).
    fallback_rate: Measurement
    latency_p50_ms: Measurement
    latency_p95_ms: Measurement
    ttft_p95_ms: Measurement
    # Total cost / successful attempts; None as soon as one successful attempt has no price.
    cost_per_call_usd: Measurement
    # Sum of every known attempt cost; None under the same rule as cost_per_call_usd.
    total_cost_usd: float | None
    cost_known_calls: int
    cost_unknown_calls: int
    # Of the unknown: successful attempts that reported no usage at all (so no cost), and how
    # many of those were streams (a server that ignores stream_options.include_usage).
    usage_missing_calls: int = 0
    usage_missing_streamed_calls: int = 0
    tokens_per_call: Measurement
    # (error_kind, failed attempts), sorted by kind so equal runs compare equal.
    error_kinds: tuple[tuple[str, int], ...]

    def measurement(self, name: str) -> Measurement:
        """The measurement called ``name`` (one of ``METRICS``' names)."""
        if name not in _MEASUREMENT_FIELDS:
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(_MEASUREMENT_FIELDS)}")
        value = getattr(self, name)
        assert isinstance(value, Measurement)
        return value

    def error_kind_counts(self) -> dict[str, int]:
        """Failed attempts per error kind, as a plain dict."""
        return dict(self.error_kinds)


_MEASUREMENT_FIELDS = (
    "pass_rate",
    "error_rate",
    "fallback_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p95_ms",
    "cost_per_call_usd",
    "tokens_per_call",
)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation, as numpy's default method.

    With the values sorted as x[0..n-1], the percentile sits at the virtual index
    h = (n - 1) * q / 100 and is x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
    ``None`` for no values.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * (q / 100)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    fraction = position - lower
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def _rate(numerator: int, denominator: int) -> Measurement:
    return Measurement(numerator / denominator if denominator else None, denominator)


def call_tokens(call: CallRecord) -> int | None:
    """Prompt plus completion tokens of a call, or the reported total when the parts are missing."""
    usage = call.usage
    if usage is None:
        return None
    if usage.prompt_tokens is not None and usage.completion_tokens is not None:
        return usage.prompt_tokens + usage.completion_tokens
    return usage.total_tokens


def compute_arm_metrics(records: Sequence[TestRecord]) -> ArmMetrics:
    """Compute the metrics of one arm from its test records (all repeats together).

    The caller passes the records of a single arm; nothing here looks at ``arm``. One
    definition with the paired judge's: the records are read into the flat tables of
    ``judge.tables`` (numpy, imported here only) and ``tables.arm_metrics`` works the figures
    out from them.
    """
    from pytest_modelgate.judge.tables import arm_metrics, tables_of_records

    return arm_metrics(*tables_of_records(records))


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """How one metric is compared between arms and shown to people."""

    name: str
    # Words for people: "p95 latency".
    label: str
    unit: Unit
    # Rates change by absolute percentage points; latency, cost and tokens by a ratio.
    change_kind: ChangeKind
    higher_is_better: bool
    # The ``GateLimits`` field bounding the allowed degradation; its value None means not gated.
    limit_field: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="pass_rate",
        label="pass rate",
        unit="rate",
        change_kind="points",
        higher_is_better=True,
        limit_field="pass_rate_max_drop",
    ),
    MetricSpec(
        name="error_rate",
        label="error rate",
        unit="rate",
        change_kind="points",
        higher_is_better=False,
        limit_field="error_rate_max_rise",
    ),
    MetricSpec(
        name="fallback_rate",
        label="fallback rate",
        unit="rate",
        change_kind="points",
        higher_is_better=False,
        limit_field="fallback_rate_max_rise",
    ),
    MetricSpec(
        name="latency_p50_ms",
        label="p50 latency",
        unit="ms",
        change_kind="ratio",
        higher_is_better=False,
        limit_field="latency_p50_max_ratio",
    ),
    MetricSpec(
        name="latency_p95_ms",
        label="p95 latency",
        unit="ms",
        change_kind="ratio",
        higher_is_better=False,
        limit_field="latency_p95_max_ratio",
    ),
    MetricSpec(
        name="ttft_p95_ms",
        label="p95 time to first token",
        unit="ms",
        change_kind="ratio",
        higher_is_better=False,
        limit_field="ttft_p95_max_ratio",
    ),
    MetricSpec(
        name="cost_per_call_usd",
        label="cost per call",
        unit="usd",
        change_kind="ratio",
        higher_is_better=False,
        limit_field="cost_per_call_max_ratio",
    ),
    MetricSpec(
        name="tokens_per_call",
        label="tokens per call",
        unit="tokens",
        change_kind="ratio",
        higher_is_better=False,
        limit_field="tokens_per_call_max_ratio",
    ),
)

_SPECS_BY_NAME = {spec.name: spec for spec in METRICS}


def metric_spec(name: str) -> MetricSpec | None:
    """The spec of a built-in metric, or ``None`` for a metric added by a hook."""
    return _SPECS_BY_NAME.get(name)


MISSING = "-"


def format_value(unit: str, value: float | None) -> str:
    """A metric value for people: ``96.0%``, ``410 ms``, ``$0.000123``, ``512.5`` tokens; ``-``.

    Amounts below $0.00001 keep two significant digits: ``$0.0000012``.
    """
    if value is None:
        return MISSING
    if unit == "rate":
        return f"{value * 100:.1f}%"
    if unit == "ms":
        # Replayed calls take a millisecond or two; keep a decimal where it still means something.
        # The verdict file stores ms rounded to 0.1 and the table is printed from the file, while
        # messages are made from raw values: round to 0.1 first, then half up (not Python's
        # half-to-even), so 47.46 prints as 48 ms both ways (47.46 -> 47.5 -> 48).
        value = round(value, 1)
        return f"{math.floor(value + 0.5):,d} ms" if abs(value) >= 10 else f"{value:.1f} ms"
    if unit == "usd":
        # Six decimals read a typical call ($0.000039); a smaller amount keeps two significant
        # digits, so a budget of $0.0000001 never prints as $0.000000.
        magnitude = abs(value)
        decimals = 6
        if 0 < magnitude < 1e-5:
            decimals = max(6, 1 - math.floor(math.log10(magnitude)))
        return f"${value:.{decimals}f}"
    if unit == "tokens":
        return f"{value:,.1f}"
    return f"{value:g}"


def format_change(change_kind: str, change: float | None) -> str:
    """A change for people: ``+1.5 pts`` for rates, ``x1.23`` for ratios; ``-`` when unknown."""
    if change is None:
        return MISSING
    if change_kind == "points":
        # ``or 0.0`` turns a rounded -0.0 into +0.0: "-0.0 pts" reads like a drop.
        return f"{round(change, 1) or 0.0:+.1f} pts"
    return f"x{change:.2f}"


def format_limit(change_kind: str, limit_value: float | None) -> str | None:
    """A limit for people, in the unit of the change (``-2.0 pts``, ``x1.20``); None: no limit."""
    if limit_value is None:
        return None
    return format_change(change_kind, limit_value)


# --------------------------------------------------------------------------------------------
# Metrics added by plugins (the ``pytest_modelgate_metrics`` hook)

CustomKind = Literal["rate", "mean", "ratio"]

# Every name a built-in comparison uses (the judge's rates and ratios, the budgets' extra one):
# a plugin metric may not take one. ``score`` is the prefix of ``llm.score`` comparisons.
BUILTIN_METRIC_NAMES: frozenset[str] = frozenset(
    {
        *(spec.name for spec in METRICS),
        "json_validity",
        "schema_validity",
        "tool_call_accuracy",
        "language_match",
        "cost_per_test_usd",
        "score",
    }
)
# The verdict schema's metric names, without the ``:suffix`` built-in comparisons use.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_KINDS = ("rate", "mean", "ratio")


class CustomMetricError(ValueError):
    """A metric definition or a value it extracted that the gate cannot use."""


@dataclass(frozen=True)
class MeasuredCall:
    """What a plugin metric's ``extract`` sees of one successful attempt.

    ``record``: the attempt's ``CallRecord`` (frozen, without ``extra``); ``text``: the reply's
    text content (``""`` when the reply was only tool calls); ``request``: the request body as
    sent (``messages``, ``model``, parameters), or None when it was not JSON. Keys travel in
    headers, never here.
    """

    record: CallRecord
    text: str
    request: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class CustomMetric:
    """A per-call metric a plugin adds through ``pytest_modelgate_metrics``; the judge compares it.

    ``extract(call: MeasuredCall)`` runs in the test process (an xdist worker) once per
    successful attempt, as the attempt is recorded; it returns the call's value, or None when
    the metric does not apply to that call. Only its values travel (in ``CallRecord.extra``),
    so it may close over anything. ``kind`` says how the values are compared:

    * ``"rate"``: ``extract`` returns a bool; the share of True per arm, compared like the
      built-in rates (paired McNemar / bootstrap). ``margin``: the drop allowed, as a fraction
      (``0.05`` = 5 points; a rise when ``higher_is_better=False``).
    * ``"mean"``: a number; the per-case mean, compared by the paired bootstrap of the
      difference like ``llm.score``. ``margin``: the drop allowed in the value's own unit (a rise
      when ``higher_is_better=False``).
    * ``"ratio"``: a non-negative number (a count, a size), where lower is better; candidate /
      stable per call, compared like tokens per call. ``margin``: the largest ratio allowed
      (``>= 1``).

    ``margin=None`` reports the metric without gating it; ``gate: metrics: {NAME: MARGIN}`` in
    modelgate.yaml overrides it. ``name`` is a lowercase identifier (``[a-z][a-z0-9_]*``) that is
    not a built-in metric's.
    """

    name: str
    extract: Callable[[MeasuredCall], float | bool | None]
    kind: CustomKind = "rate"
    margin: float | None = None
    higher_is_better: bool = True
    # Words for people in the judge's messages; default: the name.
    label: str | None = None
    # The unit of the values; default: ``rate`` for rates, ``number`` for the others.
    unit: Unit | None = None

    def __post_init__(self) -> None:
        where = f"metric {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise CustomMetricError(
                f"{where}: a metric name is a lowercase identifier ([a-z][a-z0-9_]*)"
            )
        if self.name in BUILTIN_METRIC_NAMES:
            raise CustomMetricError(f"{where}: the name of a built-in metric; choose another")
        if self.kind not in _KINDS:
            raise CustomMetricError(f"{where}: kind must be one of {', '.join(_KINDS)}")
        if not callable(self.extract):
            raise CustomMetricError(f"{where}: extract must be a function of a MeasuredCall")
        if self.kind == "ratio" and self.higher_is_better:
            raise CustomMetricError(
                f"{where}: a ratio metric is lower-is-better (tokens, retries, characters): "
                "pass higher_is_better=False, or use kind='mean'"
            )
        _check_margin(where, self.kind, self.margin)
        if self.unit is not None and self.unit not in ("rate", "ms", "usd", "tokens", "number"):
            raise CustomMetricError(f"{where}: unit must be rate, ms, usd, tokens or number")
        if self.kind == "rate" and self.unit not in (None, "rate"):
            raise CustomMetricError(f"{where}: a rate's unit is rate")

    @property
    def display_unit(self) -> Unit:
        """The unit the verdict gives the comparison."""
        if self.unit is not None:
            return self.unit
        return "rate" if self.kind == "rate" else "number"

    def definition(self) -> dict[str, Any]:
        """Everything but ``extract``, as plain data (for the xdist controller, which judges)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "margin": self.margin,
            "higher_is_better": self.higher_is_better,
            "label": self.label,
            "unit": self.unit,
        }

    @classmethod
    def from_definition(cls, data: Mapping[str, Any]) -> CustomMetric:
        """A metric to judge with, from ``definition()``: its values come in the records."""
        return cls(extract=_extracted_elsewhere, **data)

    def value_of(self, call: MeasuredCall) -> float | None:
        """``extract`` applied to ``call``, checked: a float (1.0 / 0.0 for a rate) or None."""
        value = self.extract(call)
        if value is None:
            return None
        if self.kind == "rate":
            if not isinstance(value, bool):
                raise CustomMetricError(
                    f"metric {self.name!r} (a rate) extracted {value!r}: return True, False or None"
                )
            return 1.0 if value else 0.0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CustomMetricError(
                f"metric {self.name!r} ({self.kind}) extracted {value!r}: return a number or None"
            )
        number = float(value)
        if not math.isfinite(number) or (self.kind == "ratio" and number < 0):
            raise CustomMetricError(
                f"metric {self.name!r} ({self.kind}) extracted {value!r}: return a finite"
                + (" non-negative" if self.kind == "ratio" else "")
                + " number or None"
            )
        return number


def _extracted_elsewhere(call: MeasuredCall) -> float | None:
    raise CustomMetricError("this metric's values were extracted in another process")


def _check_margin(where: str, kind: str, margin: object) -> None:
    if margin is None:
        return
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise CustomMetricError(f"{where}: margin must be a number or None, got {margin!r}")
    if not math.isfinite(margin) or margin < 0:
        raise CustomMetricError(f"{where}: margin must be a finite number >= 0, got {margin!r}")
    if kind == "rate" and margin > 1:
        raise CustomMetricError(
            f"{where}: a rate's margin is a fraction (0.05 = 5 points), got {margin!r}"
        )
    if kind == "ratio" and margin < 1:
        raise CustomMetricError(
            f"{where}: a ratio's margin is the largest candidate / stable allowed (>= 1), got "
            f"{margin!r}"
        )


def resolve_custom_metrics(
    defined: Iterable[object], margins: Mapping[str, float | None]
) -> tuple[CustomMetric, ...]:
    """The metrics the hooks returned, checked, with ``gate: metrics:`` margins applied.

    ``defined`` is every metric of every ``pytest_modelgate_metrics`` result, in hook order.
    A duplicate name, something that is not a ``CustomMetric`` and a margin in ``margins`` for
    a metric no hook defines (a typo) raise ``CustomMetricError``.
    """
    metrics: dict[str, CustomMetric] = {}
    for metric in defined:
        if not isinstance(metric, CustomMetric):
            raise CustomMetricError(
                f"a pytest_modelgate_metrics hook returned {metric!r}: return a list of "
                "pytest_modelgate.judge.metrics.CustomMetric"
            )
        if metric.name in metrics:
            raise CustomMetricError(
                f"metric {metric.name!r} is defined by two pytest_modelgate_metrics hooks"
            )
        metrics[metric.name] = metric
    unknown = sorted(set(margins) - set(metrics))
    if unknown:
        known = ", ".join(sorted(metrics)) or "none"
        raise CustomMetricError(
            f"gate.metrics names {', '.join(unknown)}, which no pytest_modelgate_metrics hook "
            f"defines (defined: {known})"
        )
    for name, margin in margins.items():
        _check_margin(f"gate.metrics.{name}", metrics[name].kind, margin)
        metrics[name] = replace(metrics[name], margin=margin)
    return tuple(metrics.values())
