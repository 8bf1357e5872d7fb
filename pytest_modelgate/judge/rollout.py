"""The rollout plan of a judgement: a canary or shadow traffic, and the rollback triggers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pytest_modelgate.judge.common import _POWER, Margins
from pytest_modelgate.judge.metrics import (
    ArmMetrics,
    format_value,
)
from pytest_modelgate.judge.model import (
    Judgement,
    MetricComparison,
)
from pytest_modelgate.judge.stats import (
    normal_quantile,
)

_CANARY_STEPS = (5, 25, 50, 100)


def rollout_plan(
    judgement: Judgement, margins: Margins, stable_model: str | None = None
) -> dict[str, Any]:
    """The rollout a verdict allows: canary steps, rollback triggers and the kill switch.

    ``pass``: canary 5 -> 25 -> 50 -> 100 %; ``inconclusive``: shadow traffic only (mirror
    requests, serve the stable answers): the data did not show the candidate is fit for any live
    traffic, so a canary waits for a gate that passes; ``fail``: no rollout. Each step needs
    enough requests to see an error-rate rise of the margin (one-sided 5%, 80% power). Rollback
    triggers are the stable arm's measured values moved by the margins, clamped to each metric's
    range, from figures the judge could gate; the others are listed in ``triggers_left_out``.
    """
    stable = judgement.stable
    error_rate = stable.error_rate.value or 0.0
    min_requests = _min_requests(error_rate, margins.error_rate)
    triggers, left_out = _rollback_triggers(judgement, margins)
    if judgement.verdict == "pass":
        steps = [
            {"phase": "canary", "traffic_percent": p, "min_requests": min_requests}
            for p in _CANARY_STEPS
        ]
        reason = "every gated metric is within its margin: canary with rollback triggers armed"
    elif judgement.verdict == "inconclusive":
        steps = [
            {
                "phase": "shadow",
                "traffic_percent": 0,
                "min_requests": 2 * min_requests,
                "note": "mirror live requests to the candidate, serve the stable model's answers",
            },
        ]
        reason = (
            "the data could not show non-inferiority: shadow traffic only, no live traffic "
            "until the gate passes"
        )
    else:
        steps = []
        reason = "the candidate regressed: no rollout"
    return {
        "allowed": bool(steps),
        "reason": reason,
        "plan": steps,
        "rollback_triggers": triggers,
        "triggers_left_out": left_out,
        "kill_switch": {
            "action": "route 100% of traffic to the stable model",
            "route_to": stable_model,
            "weights": {"stable": 100, "candidate": 0},
            "when": "any rollback trigger fires, or by hand",
        },
    }


def _min_requests(base_rate: float, margin: float | None) -> int:
    margin = margin if margin else 0.01
    p = min(max(base_rate, 0.01), 0.5)
    z = normal_quantile(0.95) + normal_quantile(_POWER)
    return max(200, math.ceil(z * z * 2 * p * (1 - p) / (margin * margin)))


# The overall statuses of a comparison the judge gated on data from both arms.
_JUDGED = frozenset({"ok", "improved", "regressed", "inconclusive"})


def _rollback_triggers(
    judgement: Judgement, margins: Margins
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The triggers, and the ones left out with why (``{metric, reason}``).

    A trigger comes only from a figure the judge gated overall (a p95 over a dozen calls is
    reported, not gated, and so is no basis for live traffic), and its threshold is clamped to
    the metric's range: a rate in [0, 1], ms and USD >= 0. A threshold that, clamped, could
    never be crossed (a validity below 0%, an error rate above 100%) is left out too.
    """
    found = _Triggers({c.name: c for c in judgement.metrics if c.scope == "overall"})
    _rate_triggers(found, judgement.stable, margins)
    _ratio_triggers(found, judgement.stable, margins)
    _validity_triggers(found, margins)
    return found.triggers, found.left_out


@dataclass
class _Triggers:
    """The triggers found so far, and those left out with why."""

    overall: dict[str, MetricComparison]
    triggers: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[dict[str, str]] = field(default_factory=list)

    def add(self, metric: str, op: str, threshold: float, unit: str, basis: str) -> None:
        """A trigger on ``metric``, or why there is none (not judged; could never fire)."""
        comparison = self.overall.get(metric)
        if comparison is None or comparison.status not in _JUDGED:
            why = "not judged" if comparison is None else comparison.status.replace("_", " ")
            self.leave_out(metric, f"its figure was {why}: {_why(comparison)}")
            return
        low, high = (0.0, 1.0) if unit == "rate" else (0.0, math.inf)
        clamped = min(max(threshold, low), high)
        if (op == "<" and clamped <= low) or (op == ">" and clamped >= high):
            self.leave_out(metric, f"{basis} is outside the metric's range: it could never fire")
            return
        self.triggers.append(
            {
                "metric": metric,
                "op": op,
                "threshold": _round_threshold(clamped, unit),
                "unit": unit,
                "basis": basis,
            }
        )

    def leave_out(self, metric: str, reason: str) -> None:
        self.left_out.append({"metric": metric, "reason": reason})


def _rate_triggers(found: _Triggers, stable: ArmMetrics, margins: Margins) -> None:
    """Error and fallback rates: above stable's rate plus the margin."""
    for name, margin in (
        ("error_rate", margins.error_rate),
        ("fallback_rate", margins.fallback_rate),
    ):
        value = stable.measurement(name).value
        if value is not None and margin is not None:
            basis = f"stable {value:.2%} + {margin * 100:.1f} pts"
            found.add(name, ">", value + margin, "rate", basis)


def _ratio_triggers(found: _Triggers, stable: ArmMetrics, margins: Margins) -> None:
    """Latency quantiles, time to first token and cost per call: above stable's times the
    margin."""
    for name, margin in (
        ("latency_p50_ms", margins.latency_p50_ratio),
        ("latency_p95_ms", margins.latency_p95_ratio),
        ("ttft_p95_ms", margins.ttft_p95_ratio),
        ("cost_per_call_usd", margins.cost_per_call_ratio),
    ):
        if margin is None:
            continue
        value = stable.measurement(name).value
        comparison = found.overall.get(name)
        if value is None and comparison is not None and comparison.status in _JUDGED:
            # Judged on the cases with a cost on both arms (no usage on some streams).
            value = comparison.stable
        unit = "usd" if name.endswith("usd") else "ms"
        if value is None:
            # A figure neither arm has (no stream: no TTFT) does not apply; one arm's does.
            if comparison is not None and (
                comparison.samples.stable or comparison.samples.candidate
            ):
                found.leave_out(name, f"no stable figure: {_why(comparison)}")
            continue
        basis = f"stable {format_value(unit, value)} x{margin:.2f}"
        found.add(name, ">", value * margin, unit, basis)


def _validity_triggers(found: _Triggers, margins: Margins) -> None:
    """JSON and schema validity, tool-call accuracy, language match: below stable's minus the
    margin."""
    for name in ("json_validity", "schema_validity", "tool_call_accuracy", "language_match"):
        comparison = found.overall.get(name)
        margin = getattr(margins, name)
        if comparison is not None and comparison.stable is not None and margin is not None:
            basis = f"stable {comparison.stable:.2%} - {margin * 100:.1f} pts"
            found.add(name, "<", comparison.stable - margin, "rate", basis)


def _why(comparison: MetricComparison | None) -> str:
    """The judge's sentence about a comparison, for a trigger left out."""
    return "no comparison" if comparison is None else comparison.message


def _round_threshold(value: float, unit: str) -> float:
    if unit == "rate":
        return round(value, 4)
    if unit == "usd":
        return float(f"{value:.4g}")
    return round(value, 1)
