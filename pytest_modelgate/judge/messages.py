"""The words of a comparison: metric labels and the message each status gets."""

from __future__ import annotations

import math

from pytest_modelgate.judge.common import _RATES, _RATIOS, _Result
from pytest_modelgate.judge.inference import _has_interval
from pytest_modelgate.judge.metrics import (
    format_value,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
    MetricStatus,
)


def metric_label(name: str) -> str:
    """How people read a metric name: ``json_validity`` -> ``JSON validity``."""
    base, _, suffix = name.partition(":")
    for spec in (*_RATES, *_RATIOS):
        if spec.name == base:
            return spec.label + (" budget" if suffix == "budget" else "")
    if base == "cost_per_test_usd":
        return "cost per test budget"
    if base == "score":
        return f"score {suffix}"
    return name


def _message(
    comparison: MetricComparison, status: MetricStatus, result: _Result, confidence: float = 0.95
) -> str:
    """One line a person understands."""
    text = _message_text(comparison, status, result, confidence)
    # A no-data or unknown-cost message is made of the note; any other one adds it.
    budget = comparison.name.endswith(":budget")
    if result.note and status != "no_data" and (comparison.change is not None or budget):
        text += f" ({result.note})"
    return text


def _message_text(
    comparison: MetricComparison, status: MetricStatus, result: _Result, confidence: float
) -> str:
    label = result.label or metric_label(comparison.name)
    where = "" if comparison.scope == "overall" else f" [{comparison.scope}]"
    n = comparison.n or 0
    # The paired cases the comparison rests on; the table's n counts each metric's own samples.
    n_cases = f"n={n} case" if n == 1 else f"n={n} cases"
    if status == "no_data":
        if not result.note:
            return f"{label}{where}: no data on either arm"
        against = ""
        if comparison.limit:
            against = f", so it cannot be checked against {comparison.limit}"
            if not result.gated:
                against += " (reported, not gated)"
        return f"{label}{where}: {result.note}{against}"
    if comparison.change is None and not comparison.name.endswith(":budget"):
        gaps = result.note or "on an arm"
        return f"{label}{where}: unknown {gaps}, so it cannot be judged" + (
            f" against {comparison.limit}" if comparison.limit else ""
        )
    if comparison.name.endswith(":budget"):
        value = format_value(comparison.unit, comparison.candidate)
        text = f"{label}{where}: candidate {value} against {comparison.limit} ({n_cases})"
    elif comparison.change_kind == "ratio" and not _has_interval(comparison):
        text = (
            f"{label}{where}: {format_value(comparison.unit, comparison.stable)} -> "
            f"{format_value(comparison.unit, comparison.candidate)} "
            f"(x{comparison.change:.2f}, {n_cases}: too few cases for an interval)"
        )
    elif comparison.change_kind == "ratio":
        low, high = comparison.change_interval or (math.nan, math.nan)
        text = (
            f"{label}{where}: {format_value(comparison.unit, comparison.stable)} -> "
            f"{format_value(comparison.unit, comparison.candidate)} "
            f"(x{comparison.change:.2f}, {confidence:.0%} CI x{low:.2f}..x{high:.2f}, {n_cases})"
        )
    else:
        low, high = comparison.change_interval or (math.nan, math.nan)
        if comparison.unit == "rate":
            stable = format_value("rate", comparison.stable)
            candidate = format_value("rate", comparison.candidate)
            text = (
                f"{label}{where}: {stable} -> {candidate} ({comparison.change:+.1f} pts, "
                f"CI {low:+.1f}..{high:+.1f}, {n_cases})"
            )
        else:
            text = (
                f"{label}{where}: {comparison.stable:.3g} -> {comparison.candidate:.3g} "
                f"({comparison.change:+.3g}, CI {low:+.3g}..{high:+.3g}, {n_cases})"
            )
    limit = f" allowed {comparison.limit}" if comparison.limit else ""
    if status == "regressed":
        return f"{text}: worse than{limit}"
    if status == "inconclusive":
        more = ""
        if comparison.cases_needed and comparison.repeats_needed:
            more = (
                f"; about {comparison.cases_needed} cases, or {comparison.repeats_needed} "
                "repeats of each case, would decide"
            )
        elif comparison.cases_needed:
            more = f"; about {comparison.cases_needed} cases would decide"
        if result.regressed_interval:
            return f"{text}: beyond{limit} but not significant after Holm's correction{more}"
        return f"{text}: cannot tell whether within{limit}{more}"
    if status == "not_gated" and not result.gated and comparison.limit:
        why = result.not_gated_because or "fewer than the minimum cases in this slice"
        return f"{text}: reported, not gated ({why})"
    if status == "ok":
        return f"{text}: within{limit}"
    if status == "improved":
        return f"{text}: better"
    return f"{text}: reported, not gated"
