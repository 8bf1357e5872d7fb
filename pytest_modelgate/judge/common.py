"""What every statistic of the paired judge shares: thresholds, metric specs, slices, results."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pytest_modelgate.calls.records import Budgets
from pytest_modelgate.judge.metrics import (
    Unit,
)
from pytest_modelgate.judge.model import (
    MetricComparison,
)
from pytest_modelgate.judge.stats import (
    seed_for,
)

if TYPE_CHECKING:
    from pytest_modelgate.config.settings import GateLimits
    from pytest_modelgate.judge.columns import CaseColumns, Ints


Kind = Literal["rate", "ratio", "score"]


# Below this many paired cases no bootstrap interval is computed (the comparison is inconclusive).
_MIN_BOOTSTRAP_CASES = 5


# From this many cases in a comparison on, its interval is the large-sample (delta method)
# interval the bootstrap converges to, not the bootstrap itself: cost and memory grow with
# cases x resamples, and at this size the two agree to within the bootstrap's own resampling
# noise (tests/unit/test_judge_scale.py; docs/statistics.md). Below it, the exact bootstrap,
# bit for bit as before.
_LARGE_SAMPLE_CASES = 2000


# A tail quantile (p95) is gated only over at least this many calls per arm: below, the
# percentile bootstrap of a p95 is too narrow to trust (it is the few slowest calls).
_MIN_TAIL_SAMPLES = 100


# Power used for the minimum detectable change and the cases needed.
_POWER = 0.8


_EPSILON = 1e-12


# The share of alpha the overall scope holds in its metric's Holm family when slices are gated
# too; the slices share the rest equally. The overall scope holds every case, so it is the
# question a run is for; a slice is where a change hides (Chinese only, one workflow), but each
# slice is one of many. Equal weights would charge the overall question for every slice a suite
# happens to have (with four languages and three workflows it would be tested at alpha / 8).
_OVERALL_ALPHA_SHARE = 0.5


# How wide, in standard deviations of a resample's rank, the bands of values are that a
# resampled quantile is looked for in (see _ArmQuantiles). Only speed depends on it: wider bands
# sort more values per resample, narrower ones miss (and sort everything) more often.
_BAND_SIGMAS = 3.0


# Below this many values per arm, sorting a resample costs less than finding and counting bands.
_MIN_BANDED_VALUES = 200


# An inconclusive comparison offers more repeats as a way to decide only when they take at most
# this many times the test runs that more cases would (see _repeats_needed).
_REPEATS_WORTH = 4


@dataclass(frozen=True, kw_only=True)
class Margins:
    """How much worse the candidate may be, per metric; ``None``: reported, not gated.

    Rates are absolute differences (0.02 = 2 points); ratios bound candidate / stable.
    """

    pass_rate: float | None = 0.02
    json_validity: float | None = 0.01
    schema_validity: float | None = 0.01
    tool_call_accuracy: float | None = 0.02
    language_match: float | None = 0.02
    error_rate: float | None = 0.01
    fallback_rate: float | None = 0.02
    latency_p50_ratio: float | None = 1.2
    latency_p95_ratio: float | None = 1.2
    ttft_p95_ratio: float | None = 1.2
    cost_per_call_ratio: float | None = 1.15
    tokens_per_call_ratio: float | None = None
    score_drop: float | None = None

    @classmethod
    def from_limits(cls, limits: GateLimits) -> Margins:
        """The margins configured under ``gate:`` in modelgate.yaml."""
        return cls(
            pass_rate=limits.pass_rate_max_drop,
            json_validity=limits.json_validity_max_drop,
            schema_validity=limits.schema_validity_max_drop,
            tool_call_accuracy=limits.tool_call_accuracy_max_drop,
            language_match=limits.language_match_max_drop,
            error_rate=limits.error_rate_max_rise,
            fallback_rate=limits.fallback_rate_max_rise,
            latency_p50_ratio=limits.latency_p50_max_ratio,
            latency_p95_ratio=limits.latency_p95_max_ratio,
            ttft_p95_ratio=limits.ttft_p95_max_ratio,
            cost_per_call_ratio=limits.cost_per_call_max_ratio,
            tokens_per_call_ratio=limits.tokens_per_call_max_ratio,
            score_drop=limits.score_max_drop,
        )


@dataclass(frozen=True)
class _Spec:
    name: str
    label: str
    kind: Kind
    unit: Unit
    higher_is_better: bool
    margin: str  # the Margins field


_RATES = (
    _Spec("pass_rate", "pass rate", "rate", "rate", True, "pass_rate"),
    _Spec("json_validity", "JSON validity", "rate", "rate", True, "json_validity"),
    _Spec("schema_validity", "schema validity", "rate", "rate", True, "schema_validity"),
    _Spec("tool_call_accuracy", "tool-call accuracy", "rate", "rate", True, "tool_call_accuracy"),
    _Spec("language_match", "language match", "rate", "rate", True, "language_match"),
    _Spec("error_rate", "error rate", "rate", "rate", False, "error_rate"),
    _Spec("fallback_rate", "fallback rate", "rate", "rate", False, "fallback_rate"),
)


_RATIOS = (
    _Spec("latency_p50_ms", "p50 latency", "ratio", "ms", False, "latency_p50_ratio"),
    _Spec("latency_p95_ms", "p95 latency", "ratio", "ms", False, "latency_p95_ratio"),
    _Spec("ttft_p95_ms", "p95 time to first token", "ratio", "ms", False, "ttft_p95_ratio"),
    _Spec("cost_per_call_usd", "cost per call", "ratio", "usd", False, "cost_per_call_ratio"),
    _Spec("tokens_per_call", "tokens per call", "ratio", "tokens", False, "tokens_per_call_ratio"),
)


# Rates always reported overall (the contract rates appear only when a contract checks them).
_CORE = frozenset({"pass_rate", "error_rate", "fallback_rate"})


_QUANTILE_LEVELS = (0.5, 0.95)


_QUANTILES = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.95, "ttft_p95_ms": 0.95}


# What a metric's samples are, for messages ("the stable arm has 30 streamed calls with a first
# token"); the contract rates count checked replies.
_SAMPLE_NOUNS = {
    "pass_rate": "decided tests",
    "error_rate": "attempts",
    "fallback_rate": "tests that ran",
    "latency_p50_ms": "successful calls with a latency",
    "latency_p95_ms": "successful calls with a latency",
    "ttft_p95_ms": "streamed calls with a first token",
    "cost_per_call_usd": "successful calls",
    "tokens_per_call": "calls with usage",
}


# Which call-level check feeds which rate.
_CHECKS = {
    "json_validity": ("json", "json_valid"),
    "schema_validity": ("schema", "schema_valid"),
    "tool_call_accuracy": ("tools", "tool_calls_valid"),
    "language_match": ("language", "language_match"),
}


# One resample of one arm: ``gather(values)`` is ``tuple(values[i] for i in indexes)`` over the
# resample's case indexes, in draw order. An ``operator.itemgetter`` does it in C, so per-case data
# of any shape is resampled by one call; ``tuple`` is the gather of the full sample.
_Gather = Callable[[Sequence[Any]], tuple[Any, ...]]


# A statistic of one resample, from the stable and the candidate gathers.
_Statistic = Callable[[_Gather, _Gather], float]


@dataclass(frozen=True)
class _Slice:
    scope: str
    budgets: Budgets | None
    gated: bool
    # The run's per-case columns, and the positions of this slice's cases in them.
    columns: CaseColumns
    positions: Ints

    @functools.cached_property
    def seed(self) -> int:
        """Every bootstrap of the slice is seeded from its scope and its case ids."""
        ids = self.columns.case_ids
        return seed_for(self.scope, *(ids[p] for p in self.positions.tolist()))


@dataclass(frozen=True)
class _Result:
    comparison: MetricComparison
    gated: bool
    # Oriented evidence for the decision, kept until Holm's correction is known.
    regressed_interval: bool
    # Why a comparison with a margin is not gated (None: the slice is below min_cases).
    not_gated_because: str | None = None
    # A clause the message adds: which arm lacks data and why, what a figure was judged on.
    note: str | None = None
    # Judged on part of the paired cases only (the note says which and why).
    partial: bool = False
    # Words for the message when the metric is a plugin's (CustomMetric.label).
    label: str | None = None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
