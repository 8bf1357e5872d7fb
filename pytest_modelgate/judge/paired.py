"""The paired statistical judge: non-inferiority per metric and scope, with an honest third answer.

Pure: no pytest, no numpy; deterministic (every bootstrap is seeded from the metric, the scope and
the case ids, so the same records give the same judgement, byte for byte).

How a run is judged (see ``docs/statistics.md`` for the reasoning):

1. **Pairing.** Both arms ran the same cases. Records are grouped by ``case_id``; with repeats, a
   case's figures pool its K repeats, and cases (not calls) are what the bootstrap resamples.
2. **Metrics.** Rates (pass rate, JSON / schema validity, tool-call accuracy, language match,
   error rate, fallback rate), ratios (latency p50 / p95, TTFT p95, cost and tokens per call) and
   the numeric quality scores tests record with ``llm.score``.
3. **Statistics.** A rate whose every case holds one trial per arm is a paired 2x2 table: McNemar's
   test (mid-p: the exact conditional test is conservative with few discordant pairs) and
   Newcombe's hybrid score interval for the difference, Wilson intervals per arm.
   Other rates (repeats, several calls per case) use a paired cluster bootstrap of the difference
   of pooled rates and the Wilcoxon signed-rank test on the per-case differences; a bootstrap that
   cannot move (no event on either arm) falls back to Newcombe's interval from the two Wilson
   intervals, so "0 errors in 95 calls" never proves more than about 3/95. Latency quantiles and
   cost per call: the paired bootstrap of the ratio, Wilcoxon on the per-case log ratios.
4. **Non-inferiority.** With the change oriented so that lower is worse and a margin ``m``:
   ``regressed`` when the whole interval is worse than the margin allows *and* the difference is
   significant after Holm's correction across the metric's scopes (overall, every workflow and
   language: the same question asked many times; weighted, the overall scope holds half of alpha
   and the slices share the other half); ``ok`` when
   non-inferiority is shown; ``improved`` when the whole interval is better; ``inconclusive``
   otherwise, with the minimum detectable change and about how many cases would decide it.
5. **Scopes.** Overall, per workflow and per prompt language. A slice with fewer than
   ``min_cases`` paired cases is reported but not gated, and so is a p95 over fewer than 100
   calls per arm (a handful of slowest calls). Absolute budgets from markers bind the
   candidate of their workflow whatever its size: every case beyond the bound, or the whole
   interval, fails; too few cases to tell is inconclusive.
6. **Verdict.** ``fail`` if a gated comparison regressed, else ``inconclusive`` if one is
   inconclusive or has data on one arm only, else ``pass``. ``error`` when an arm made no
   call or none that succeeded, or the stable arm passed fewer than ``min_stable_pass_rate``
   of its tests. No data never counts for the candidate.
7. **Rollout.** ``pass``: a canary; ``inconclusive``: shadow traffic only; rollback triggers
   from figures the judge gated, clamped to each metric's range.
"""

from __future__ import annotations

import array
import bisect
import functools
import itertools
import math
import operator
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pytest_modelgate.judge.metrics import (
    CustomMetric,
    Unit,
    call_tokens,
    compute_arm_metrics,
    format_value,
)
from pytest_modelgate.judge.model import (
    Judgement,
    MetricComparison,
    MetricStatus,
    RunData,
    Samples,
    judge_stable_only,
    no_call_reasons,
    paired_failures,
    regressions_of,
    stable_floor_reason,
)
from pytest_modelgate.judge.stats import (
    Interval,
    PairedTable,
    holm,
    large_sample_mean_difference,
    large_sample_quantile,
    large_sample_quantile_ratio,
    large_sample_rate_difference,
    large_sample_ratio,
    large_sample_ratio_of_sums,
    mcnemar_mid_p,
    newcombe_paired_interval,
    normal_quantile,
    quantile,
    sample_variance,
    seed_for,
    wilcoxon_signed_rank,
    wilson_interval,
)
from pytest_modelgate.records import Budgets, CallRecord, TestRecord

if TYPE_CHECKING:
    from pytest_modelgate.config import GateLimits

__all__ = ["Margins", "PairedJudge", "metric_label", "rollout_plan"]

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


# --------------------------------------------------------------------------------------------
# Per-case figures


_Figure = TypeVar("_Figure")


def _memoised(
    figure: Callable[[_CaseArm, str], _Figure],
) -> Callable[[_CaseArm, str], _Figure]:
    """Work a case arm's figure out once per name (see _CaseArm)."""

    label = figure.__name__

    @functools.wraps(figure)
    def memoised(arm: _CaseArm, name: str) -> _Figure:
        key = (label, name)
        figures = arm.figures
        try:
            result: _Figure = figures[key]
        except KeyError:
            result = figures[key] = figure(arm, name)
        return result

    return memoised


@dataclass
class _CaseArm:
    """One case on one arm, its repeats pooled.

    Built by ``_cases``, only read afterwards: a case is judged in several slices (overall, its
    workflow, its language), so its figures are worked out once and kept. Callers must not
    mutate what they get.
    """

    tests: list[TestRecord] = field(default_factory=list)
    figures: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

    @functools.cached_property
    def ran(self) -> list[TestRecord]:
        return [t for t in self.tests if t.outcome != "skipped"]

    @functools.cached_property
    def repeats(self) -> list[_CaseArm]:
        """Each repeat that ran, as a case arm of its own."""
        return [_CaseArm(tests=[t]) for t in self.ran]

    @functools.cached_property
    def calls(self) -> list[CallRecord]:
        return [c for t in self.tests for c in t.calls]

    @functools.cached_property
    def ok_calls(self) -> list[CallRecord]:
        return [c for c in self.calls if c.ok]

    @_memoised
    def counts(self, metric: str) -> tuple[int, int]:
        """(events, trials) of a rate; "events" are successes for higher-is-better rates."""
        if metric == "pass_rate":
            ran = self.ran
            return sum(t.outcome == "passed" for t in ran), len(ran)
        if metric == "fallback_rate":
            ran = self.ran
            return sum(bool(t.fallbacks) for t in ran), len(ran)
        if metric == "error_rate":
            calls = self.calls
            return sum(not c.ok for c in calls), len(calls)
        if metric not in _CHECKS:
            # A rate a plugin added (pytest_modelgate_metrics): 1.0 / 0.0 per successful call.
            flags = [c.extra[metric] for c in self.ok_calls if metric in c.extra]
            return sum(v == 1.0 for v in flags), len(flags)
        check, attribute = _CHECKS[metric]
        values = [
            getattr(c, attribute)
            for c in self.ok_calls
            if check in c.checks and getattr(c, attribute) is not None
        ]
        return sum(bool(v) for v in values), len(values)

    @_memoised
    def values(self, metric: str) -> list[float]:
        """The call-level values behind a latency metric."""
        ok = self.ok_calls
        if metric == "ttft_p95_ms":
            return [c.ttft_ms for c in ok if c.streamed and c.ttft_ms is not None]
        return [c.latency_ms for c in ok if c.latency_ms is not None]

    @_memoised
    def sums(self, metric: str) -> tuple[float, int] | None:
        """(total, successful calls) for cost or tokens; None when a cost is unknown."""
        ok = self.ok_calls
        if metric == "cost_per_call_usd":
            if any(c.cost_usd is None for c in ok):
                return None
            billed = [c.cost_usd for c in self.calls if c.cost_usd is not None]
            return math.fsum(billed), len(ok)
        if metric != "tokens_per_call":
            # A mean or ratio a plugin added: (total, calls with a value).
            values = [c.extra[metric] for c in ok if metric in c.extra]
            return math.fsum(values), len(values)
        tokens = [call_tokens(c) for c in ok]
        known = [t for t in tokens if t is not None]
        return float(sum(known)), len(known)

    @_memoised
    def score(self, name: str) -> float | None:
        values = [v for t in self.tests for n, v in t.scores if n == name]
        return math.fsum(values) / len(values) if values else None


@dataclass
class _Case:
    case_id: str
    workflow: str
    language: str | None
    stable: _CaseArm = field(default_factory=_CaseArm)
    candidate: _CaseArm = field(default_factory=_CaseArm)


def _cases(stable: Sequence[TestRecord], candidate: Sequence[TestRecord]) -> list[_Case]:
    by_id: dict[str, _Case] = {}
    for arm, records in (("stable", stable), ("candidate", candidate)):
        for record in records:
            case = by_id.get(record.case_id)
            if case is None:
                case = by_id[record.case_id] = _Case(
                    record.case_id, record.workflow, record.language
                )
            if case.language is None:
                case.language = record.language
            getattr(case, arm).tests.append(record)
    # Only cases both arms ran are paired; sorted so that every bootstrap sees the same order.
    return sorted(
        (c for c in by_id.values() if c.stable.ran and c.candidate.ran),
        key=lambda c: c.case_id,
    )


# --------------------------------------------------------------------------------------------
# Bootstrap over cases

# One resample of one arm: ``gather(values)`` is ``tuple(values[i] for i in indexes)`` over the
# resample's case indexes, in draw order. An ``operator.itemgetter`` does it in C, so per-case data
# of any shape is resampled by one call; ``tuple`` is the gather of the full sample.
_Gather = Callable[[Sequence[Any]], tuple[Any, ...]]
# A statistic of one resample, from the stable and the candidate gathers.
_Statistic = Callable[[_Gather, _Gather], float]
_T = TypeVar("_T")


def _bootstrap(
    n: int,
    statistic: _Statistic,
    *,
    seed: int,
    resamples: int,
    confidence: float,
    paired: bool,
    memo: _RunMemo,
) -> Interval:
    """Percentile interval of ``statistic(stable_gather, candidate_gather)`` over resamples.

    Paired: the same case indexes (the same gather) for both arms; unpaired: independent draws
    per arm. Resamples where the statistic is undefined (nan) are dropped. The resampled indexes
    depend only on ``seed``, ``n`` and ``resamples``: every metric of a slice sees the same
    resamples.
    """
    values = _resampled(n, statistic, seed=seed, resamples=resamples, paired=paired, memo=memo)
    if values is None:
        return Interval(math.nan, math.nan)
    return _percentile_interval(values, resamples, confidence)


def _bootstrap_many(
    n: int,
    statistics: Callable[[_Gather, _Gather], Sequence[float]],
    count: int,
    *,
    seed: int,
    resamples: int,
    confidence: float,
    paired: bool,
    memo: _RunMemo,
) -> list[Interval]:
    """:func:`_bootstrap` of ``count`` statistics computed together on each resample."""
    rows = _resampled(n, statistics, seed=seed, resamples=resamples, paired=paired, memo=memo)
    if rows is None:
        return [Interval(math.nan, math.nan)] * count
    columns = zip(*rows, strict=True)
    return [_percentile_interval(column, resamples, confidence) for column in columns]


def _resampled(
    n: int,
    statistic: Callable[[_Gather, _Gather], _T],
    *,
    seed: int,
    resamples: int,
    paired: bool,
    memo: _RunMemo,
) -> list[_T] | None:
    """``statistic`` on every resample, in draw order; None when there are too few cases."""
    if n < _MIN_BOOTSTRAP_CASES:
        # A handful of cases has a handful of resamples: a zero-width interval that would
        # "show" anything. Too few to tell.
        return None
    draws = memo.draws(seed, n, resamples * (1 if paired else 2))
    # Each resample's gather is an itemgetter of its indexes (it shares the indexes' tuple; with
    # n >= 2 of them it always returns a tuple).
    if paired:
        return [statistic(g, g) for g in itertools.starmap(operator.itemgetter, draws)]
    stable = itertools.starmap(operator.itemgetter, draws[:resamples])
    candidate = itertools.starmap(operator.itemgetter, draws[resamples:])
    return list(map(statistic, stable, candidate))


def _percentile_interval(values: Iterable[float], resamples: int, confidence: float) -> Interval:
    """The percentile interval of resampled values; nan ones dropped, nan if over half were."""
    defined = sorted(itertools.filterfalse(math.isnan, values))
    if len(defined) * 2 < resamples:
        return Interval(math.nan, math.nan)
    tail = (1 - confidence) / 2
    return Interval(quantile(defined, tail), quantile(defined, 1 - tail))


def _draws(seed: int, n: int, count: int) -> tuple[tuple[int, ...], ...]:
    """``count`` resamples of ``n`` case indexes drawn with replacement, reproducibly.

    Uniform 32-bit words from ``random.Random(seed)`` reduced modulo ``n`` (the bias, n / 2**32,
    is far below anything a bootstrap can show), read little-endian on every platform, so the
    same seed gives the same indexes everywhere. About ten times faster than ``Random.choices``.
    Not cached here: a judge() run keeps what it reuses in its own ``_RunMemo`` (see
    :meth:`_RunMemo.draws`), so nothing outlives the run.
    """
    generator = random.Random(seed)
    # Each index is the one int object of ``range(n)`` it equals: a resample holds pointers, not
    # an int of its own per draw (a third of the memory).
    shared = tuple(range(n))
    per_block = max(1, _DRAW_BLOCK_BYTES // (4 * n))
    resamples: list[tuple[int, ...]] = []
    for first in range(0, count, per_block):
        # Bytes in blocks of whole resamples: ``randbytes`` takes a C int, and getrandbits fills
        # its number with the generator's 32-bit outputs in order, lowest first, on every
        # platform, so consecutive blocks are the bytes one call would give.
        block = min(per_block, count - first)
        data = generator.randbytes(4 * n * block)
        words: Iterable[int]
        if _WORD_OK:
            words = array.array("I", data)
            if _BIG_ENDIAN:
                words.byteswap()
        else:
            words = (int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4))
        # operator.mod over a repeated n: a third faster than mapping n.__rmod__.
        indexes = map(shared.__getitem__, map(operator.mod, words, itertools.repeat(n)))
        # zip(*[iterator] * n) takes n indexes at a time: one resample each.
        resamples += zip(*[indexes] * n, strict=True)
    return tuple(resamples)


# Random bytes asked for at once (whole resamples, at least one): far below a C int's 2**31.
_DRAW_BLOCK_BYTES = 1 << 24


_WORD_OK = array.array("I").itemsize == 4
_BIG_ENDIAN = sys.byteorder == "big"


class _IntSums:
    """Sums over a resample of non-negative integer columns of each arm, from one C-level sum.

    Each case's values are packed into one int, a field per column as wide as the largest sum
    any resample of ``n`` cases can reach, so no field ever carries into the next; integer sums
    are exact in any grouping, so each unpacked field is its column's own sum. One gather and
    one ``sum`` per resample instead of one of each per column; a paired resample (one gather
    for both arms) sums both arms' columns at once.
    """

    def __init__(self, stable: Sequence[Sequence[int]], candidate: Sequence[Sequence[int]]) -> None:
        columns = (*stable, *candidate)
        if any(min(column, default=0) < 0 for column in columns):
            raise ValueError("packed sums need non-negative integers")
        largest = max((len(column) * max(column, default=0) for column in columns), default=0)
        width = max(1, largest.bit_length())
        self._mask = (1 << width) - 1
        self._both = self._pack(columns, width)
        self._stable = self._pack(stable, width)
        self._candidate = self._pack(candidate, width)

    def __call__(self, s_gather: _Gather, c_gather: _Gather) -> list[int]:
        """The sums of the stable columns, then of the candidate ones, over the resample."""
        if s_gather is c_gather:
            return self._sums(s_gather, self._both)
        return self._sums(s_gather, self._stable) + self._sums(c_gather, self._candidate)

    @staticmethod
    def _pack(columns: Sequence[Sequence[int]], width: int) -> tuple[tuple[int, ...], range]:
        """Each case's packed int, and the fields' shifts."""
        shifts = range(0, width * len(columns), width)
        packed: Iterable[int] = itertools.repeat(0, len(columns[0]) if columns else 0)
        for column, shift in zip(columns, shifts, strict=True):
            packed = map(
                operator.add, packed, map(operator.lshift, column, itertools.repeat(shift))
            )
        return tuple(packed), shifts

    def _sums(self, gather: _Gather, packing: tuple[tuple[int, ...], range]) -> list[int]:
        packed, shifts = packing
        if not shifts:
            return []
        total = sum(gather(packed))
        mask = self._mask
        return [(total >> shift) & mask for shift in shifts]


def _rate_change(counts: _IntSums, s_gather: _Gather, c_gather: _Gather) -> float:
    """Candidate minus stable pooled rate on a resample, from (events, trials) columns."""
    s_events, s_trials, c_events, c_trials = counts(s_gather, c_gather)
    return _share(c_events, c_trials) - _share(s_events, s_trials)


def _share(part: float, whole: int) -> float:
    return part / whole if whole else math.nan


# --------------------------------------------------------------------------------------------
# The judge


@dataclass(frozen=True)
class _Slice:
    scope: str
    cases: list[_Case]
    budgets: Budgets | None
    gated: bool

    @functools.cached_property
    def seed(self) -> int:
        """Every bootstrap of the slice is seeded from its scope and its case ids."""
        return seed_for(self.scope, *(c.case_id for c in self.cases))


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


@dataclass
class _RunMemo:
    """What one ``judge()`` call works out once and reuses; never kept on the judge itself."""

    # Quantile-ratio intervals per (slice, TTFT or latency, seed, cases): p50 and p95 together.
    quantiles: dict[tuple[str, bool, int, int], dict[float, Interval]] = field(default_factory=dict)
    # The overall comparisons' (n, margin) by metric, for slices that repeat them.
    overall: dict[str, tuple[int | None, float | None]] = field(default_factory=dict)
    # The current slice's resampled indexes by (seed, cases, resamples): its metrics share them.
    # Emptied when the slice is judged (a slice's seed is its own), so at most one slice's
    # draws are held at a time, and none once judge() returns.
    slice_draws: dict[tuple[int, int, int], tuple[tuple[int, ...], ...]] = field(
        default_factory=dict
    )

    def draws(self, seed: int, n: int, count: int) -> tuple[tuple[int, ...], ...]:
        """:func:`_draws`, worked out once per slice."""
        key = (seed, n, count)
        found = self.slice_draws.get(key)
        if found is None:
            found = self.slice_draws[key] = _draws(seed, n, count)
        return found


def _unless_repeated(piece: _Slice, result: _Result, memo: _RunMemo) -> _Result:
    """A slice comparison over exactly the overall one's cases and margin is not asked again.

    ``json_validity`` of the only JSON workflow is ``json_validity`` overall: gating both
    would count one question twice in Holm's family. Paired cases are a subset of the
    overall ones, so the same count means the same cases.
    """
    comparison = result.comparison
    key = comparison.name
    if piece.scope == "overall":
        memo.overall[key] = (comparison.n, comparison.limit_value)
        return result
    if result.gated and memo.overall.get(key) == (comparison.n, comparison.limit_value):
        return replace(result, gated=False, not_gated_because="the same cases as overall")
    return result


# --------------------------------------------------------------------------------------------
# Ratio figures, one builder per shape of data


@dataclass(frozen=True)
class _RatioData:
    """What a ratio comparison is judged from, whatever the shape of its data."""

    stable: float
    candidate: float
    # The interval when it is already worked out, else the statistic to bootstrap it from.
    interval: Interval | _Statistic
    # (stable, candidate) figure of each case, for the rank test.
    per_case: list[tuple[float, float]]
    samples: Samples
    # Whether the rank test on ``per_case`` speaks for this ratio.
    rank_test: bool
    n: int
    # (stable totals, stable calls, candidate totals, candidate calls) per case, for the
    # large-sample interval of a ratio of sums.
    sums: tuple[list[float], list[int], list[float], list[int]] | None = None


def _latency_data(
    s_lists: list[list[float]],
    c_lists: list[list[float]],
    q: float,
    interval: Interval,
) -> _RatioData:
    """Quantile ``q`` of the paired cases' call latencies, pooled per arm."""
    return _RatioData(
        stable=_pooled_quantile(s_lists, q),
        candidate=_pooled_quantile(c_lists, q),
        interval=interval,
        per_case=[(_median(s), _median(c)) for s, c in zip(s_lists, c_lists, strict=True)],
        samples=Samples(sum(map(len, s_lists)), sum(map(len, c_lists))),
        # A rank test on per-case medians speaks for the median only; a tail quantile's
        # significance comes from its own bootstrap distribution.
        rank_test=q == 0.5,
        n=len(s_lists),
    )


def _ratio_of_sums(
    sums: Sequence[tuple[tuple[float, int], tuple[float, int]]],
) -> _RatioData | None:
    """Cost or tokens per successful call from each case's (total, calls); None without calls."""
    pairs = [(s, c) for s, c in sums if s[1] and c[1]]
    if not pairs:
        return None
    s_tot = [s[0] for s, _ in pairs]
    s_cnt = [s[1] for s, _ in pairs]
    c_tot = [c[0] for _, c in pairs]
    c_cnt = [c[1] for _, c in pairs]
    return _RatioData(
        stable=_share(sum(s_tot), sum(s_cnt)),
        candidate=_share(sum(c_tot), sum(c_cnt)),
        interval=_per_call_statistic(s_tot, s_cnt, c_tot, c_cnt),
        per_case=[(s[0] / s[1], c[0] / c[1]) for s, c in pairs],
        samples=Samples(sum(s_cnt), sum(c_cnt)),
        rank_test=True,
        n=len(pairs),
        sums=(s_tot, s_cnt, c_tot, c_cnt),
    )


def _per_call_statistic(
    s_tot: Sequence[float], s_cnt: Sequence[int], c_tot: Sequence[float], c_cnt: Sequence[int]
) -> _Statistic:
    """Candidate / stable cost or tokens per successful call on a resample.

    Whole-number totals (tokens, always) are summed as ints in one packed sum with the call
    counts: summed left to right as floats they are the same integers (every partial sum stays
    below 2**53), and int / int rounds like float / int. Other totals (prices) are summed as
    floats, left to right in draw order: that order is part of the result.
    """
    cases = len(s_tot)
    totals = (*s_tot, *c_tot)
    if all(t.is_integer() and t >= 0 for t in totals) and cases * max(totals) < 2**53:
        whole = ([int(t) for t in s_tot], s_cnt), ([int(t) for t in c_tot], c_cnt)
        return functools.partial(_whole_per_call_ratio, _IntSums(*whole))
    # One successful call per case (the usual shape): the call count is the case count.
    counts = None if all(c == 1 for c in (*s_cnt, *c_cnt)) else _IntSums((s_cnt,), (c_cnt,))
    return functools.partial(_float_per_call_ratio, tuple(s_tot), tuple(c_tot), counts, cases)


def _whole_per_call_ratio(sums: _IntSums, s_gather: _Gather, c_gather: _Gather) -> float:
    s_total, s_calls, c_total, c_calls = sums(s_gather, c_gather)
    base = _share(s_total, s_calls)
    return _share(c_total, c_calls) / base if base > 0 else math.nan


def _float_per_call_ratio(
    s_tot: tuple[float, ...],
    c_tot: tuple[float, ...],
    counts: _IntSums | None,
    cases: int,
    s_gather: _Gather,
    c_gather: _Gather,
) -> float:
    s_calls, c_calls = counts(s_gather, c_gather) if counts else (cases, cases)
    base = _share(sum(s_gather(s_tot)), s_calls)
    return _share(sum(c_gather(c_tot)), c_calls) / base if base > 0 else math.nan


class _QuantileRatios:
    """Candidate / stable at every level of ``_QUANTILE_LEVELS`` on a resample."""

    def __init__(self, s_lists: Sequence[Sequence[float]], c_lists: Sequence[Sequence[float]]):
        self._stable = _ArmQuantiles(s_lists)
        self._candidate = _ArmQuantiles(c_lists)
        self._split = len(self._stable.columns)
        self._counts = (
            _IntSums(self._stable.columns, self._candidate.columns)
            if self._stable.columns or self._candidate.columns
            else None
        )

    def __call__(self, s_gather: _Gather, c_gather: _Gather) -> list[float]:
        counts = self._counts(s_gather, c_gather) if self._counts else []
        stable = self._stable.quantiles(s_gather, counts[: self._split])
        candidate = self._candidate.quantiles(c_gather, counts[self._split :])
        return [c / s if s > 0 else math.nan for s, c in zip(stable, candidate, strict=True)]


class _ArmQuantiles:
    """One arm's call values per case, and their quantiles on a resample.

    A quantile needs only the two order statistics around it, and in a resample those lie near
    the full sample's. With enough calls, the values are split into bands around each level's
    quantile, ``_BAND_SIGMAS`` standard deviations of a resample's rank wide, the last one up to
    the largest value, and the rest: per resample only the values in a band are sorted, and
    how many lie below each band is counted (a packed integer sum). An order statistic outside
    every band (rare) sorts the whole resample. Either way it is the same value, so the
    quantile is the same to the last bit.
    """

    def __init__(self, lists: Sequence[Sequence[float]]) -> None:
        # One call per case (the usual shape): resample a flat tuple, always of n values; else
        # each case's values as packed doubles (see _pooled).
        flat = all(len(case) == 1 for case in lists)
        self._flat = tuple(case[0] for case in lists) if flat else None
        self._flat_interpolations = _level_interpolations(len(lists))
        self._packed = () if flat else _packed(lists)
        # The resample's quantiles, from its gather and its sums of ``columns``.
        self.quantiles: Callable[[_Gather, Sequence[int]], list[float]] = self._sorted
        # Per band: how many of each case's values lie below it.
        self.columns: list[tuple[int, ...]] = []
        self._bands = _bands(lists)
        if not self._bands:
            return
        self.quantiles = self._banded
        self.columns = [
            tuple(sum(v < low for v in case) for case in lists) for low, _ in self._bands
        ]
        in_band = [tuple(v for v in case if _in_bands(v, self._bands)) for case in lists]
        # A flat arm keeps bare values, None out of the bands: filter(None) drops those in C,
        # which needs every kept value to be true (not 0.0).
        self._kept_packed = not flat or not all(all(case) for case in in_band)
        self._kept: tuple[Any, ...] = (
            _packed(in_band)
            if self._kept_packed
            else tuple(case[0] if case else None for case in in_band)
        )

    def _sorted(self, gather: _Gather, counts: Sequence[int] = ()) -> list[float]:
        """The quantiles from the whole resample, sorted."""
        if self._flat is not None:
            ordered = sorted(gather(self._flat))
            interpolations = self._flat_interpolations
        else:
            ordered = _pooled(gather, self._packed)
            ordered.sort()
            interpolations = _level_interpolations(len(ordered))
        return [
            ordered[lower] + (ordered[upper] - ordered[lower]) * fraction
            for lower, upper, fraction in interpolations
        ]

    def _banded(self, gather: _Gather, counts: Sequence[int]) -> list[float]:
        """The quantiles from the values in the bands, else from the whole resample."""
        if self._kept_packed:
            kept = _pooled(gather, self._kept)
            kept.sort()
        else:
            kept = sorted(filter(None, gather(self._kept)))
        # Per band: how many resampled values lie below it, where it starts in ``kept``, and
        # how many values it holds (the last one holds the rest of ``kept``).
        spans = []
        for (low, high), under in zip(self._bands, counts, strict=True):
            first = bisect.bisect_left(kept, low)
            spans.append((under, first, bisect.bisect_right(kept, high, first) - first))
        under, first, count = spans[-1]
        values = []
        for lower, upper, fraction in _level_interpolations(under + count):
            low_value = _order_statistic(kept, spans, lower)
            high_value = _order_statistic(kept, spans, upper)
            if low_value is None or high_value is None:
                return self._sorted(gather)
            # _sorted's interpolation, term for term.
            values.append(low_value + (high_value - low_value) * fraction)
        return values


def _packed(lists: Iterable[Sequence[float]]) -> tuple[bytes, ...]:
    """Each case's values as packed doubles, for :func:`_pooled`."""
    return tuple(array.array("d", values).tobytes() for values in lists)


def _pooled(gather: _Gather, packed: tuple[bytes, ...]) -> list[float]:
    """The resampled cases' values pooled, in draw order and bit for bit.

    Joining bytes and reading them back is a fifth faster than chaining tuples of floats.
    """
    return array.array("d", b"".join(gather(packed))).tolist()


def _bands(lists: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Disjoint ascending value ranges around each level's quantile, the last one up to the
    largest value; [] when sorting only them would not save much (or a value is nan, which has
    no place in an order)."""
    values = sorted(itertools.chain.from_iterable(lists))
    total = len(values)
    if total < _MIN_BANDED_VALUES or any(map(math.isnan, values)):
        return []
    bands: list[tuple[float, float]] = []
    for level in _QUANTILE_LEVELS:
        centre = (total - 1) * level
        at = values[math.floor(centre)]
        # A resample's rank of ``at`` strays from ``level`` of its size by a sum of one term per
        # drawn case: the standard deviation is sqrt(n * variance of the terms).
        terms = [sum(v < at for v in case) - level * len(case) for case in lists]
        mean = math.fsum(terms) / len(terms)
        reach = _BAND_SIGMAS * math.sqrt(math.fsum((t - mean) ** 2 for t in terms)) + 2
        low = values[max(0, math.floor(centre - reach))]
        high = values[min(total - 1, math.ceil(centre + reach))]
        if bands and low <= bands[-1][1]:
            bands[-1] = (bands[-1][0], max(bands[-1][1], high))  # overlapping bands merge
        else:
            bands.append((low, high))
    # The last band runs to the largest value: the resample's size is then the values below it
    # plus those in it, with no count of its own.
    bands[-1] = (bands[-1][0], values[-1])
    kept = sum(_in_bands(v, bands) for v in values)
    # Sorting most values anyway gains nothing over sorting them all.
    return bands if kept * 2 <= total else []


def _in_bands(value: float, bands: Sequence[tuple[float, float]]) -> bool:
    return any(low <= value <= high for low, high in bands)


def _order_statistic(
    kept: Sequence[float], spans: Sequence[tuple[int, int, int]], rank: int
) -> float | None:
    """The ``rank``-th smallest resampled value, if it lies in a band; else None."""
    for under, first, count in spans:
        offset = rank - under
        if offset < 0:
            return None  # between two bands
        if offset < count:
            return kept[first + offset]
    return None


class PairedJudge:
    """Paired non-inferiority judge (see the module docstring); implements ``Judge``.

    ``confidence``: of every interval (two-sided); ``alpha = 1 - confidence`` is also the
    family-wise error of "regressed" after Holm. ``resamples``: bootstrap resamples.
    ``min_cases``: paired cases below which a workflow or language slice is reported, not gated.
    ``paired=False`` ignores the pairing (for comparison in ``bench/gate_accuracy.py``).
    ``min_stable_pass_rate``: a stable arm passing fewer of its tests makes the verdict
    ``error`` (None: no floor).
    """

    def __init__(
        self,
        margins: Margins | None = None,
        *,
        confidence: float = 0.95,
        resamples: int = 1000,
        min_cases: int = 20,
        paired: bool = True,
        min_stable_pass_rate: float | None = 0.5,
        custom_metrics: Sequence[CustomMetric] = (),
    ) -> None:
        if not 0.5 < confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
        if resamples < 100:
            raise ValueError(f"resamples must be >= 100, got {resamples}")
        self.margins = margins if margins is not None else Margins()
        self.confidence = confidence
        self.resamples = resamples
        self.min_cases = min_cases
        self.paired = paired
        self.min_stable_pass_rate = min_stable_pass_rate
        # Metrics plugins add (pytest_modelgate_metrics), judged after the built-in ones.
        self.custom_metrics = tuple(custom_metrics)

    def with_metrics(self, custom_metrics: Sequence[CustomMetric]) -> PairedJudge:
        """This judge, also comparing ``custom_metrics`` (see ``CustomMetric``)."""
        return PairedJudge(
            self.margins,
            confidence=self.confidence,
            resamples=self.resamples,
            min_cases=self.min_cases,
            paired=self.paired,
            min_stable_pass_rate=self.min_stable_pass_rate,
            custom_metrics=(*self.custom_metrics, *custom_metrics),
        )

    def __repr__(self) -> str:
        return (
            f"PairedJudge(confidence={self.confidence}, resamples={self.resamples}, "
            f"min_cases={self.min_cases}, paired={self.paired})"
        )

    # -- entry point --------------------------------------------------------------------------

    def judge(self, run: RunData) -> Judgement:
        """Judge one run."""
        stable_metrics = compute_arm_metrics(run.stable)
        if run.candidate is None:
            return judge_stable_only(stable_metrics)
        candidate_metrics = compute_arm_metrics(run.candidate)
        both, candidate_only, stable_only = paired_failures(run.stable, run.candidate)
        base = Judgement(
            verdict="error",
            reasons=(),
            metrics=(),
            regressions=(),
            stable=stable_metrics,
            candidate=candidate_metrics,
            cases_failed_both=both,
            cases_failed_candidate_only=candidate_only,
            cases_failed_stable_only=stable_only,
        )
        no_calls = no_call_reasons(stable_metrics, candidate_metrics)
        if no_calls:
            return replace(base, reasons=no_calls)
        cases = _cases(run.stable, run.candidate)
        if not cases:
            return replace(base, reasons=("no case ran on both arms: nothing can be paired",))

        memo = _RunMemo()
        results: list[_Result] = []
        for piece in self._slices(cases):
            results += self._judge_slice(piece, memo)
            memo.slice_draws.clear()
        comparisons = self._decide(results)
        floor = stable_floor_reason(stable_metrics, self.min_stable_pass_rate)
        if floor:
            # Whatever the comparisons say, a suite failing on the model in use measured the
            # suite: they are kept for diagnosis, the verdict is an error.
            return replace(base, reasons=(floor,), metrics=comparisons)
        regressions = regressions_of(comparisons)
        gated = [c for c, r in zip(comparisons, results, strict=True) if r.gated]
        # A gated comparison with no data on an arm blocks a pass as an inconclusive one does:
        # no data counts against, never for.
        inconclusive = [c for c in gated if c.status in ("inconclusive", "no_data")]
        if regressions:
            verdict: Literal["pass", "fail", "inconclusive"] = "fail"
            reasons = [r.message for r in regressions]
        elif inconclusive:
            verdict = "inconclusive"
            # Budgets are what a user wrote for one workflow: each says why on its own line.
            reasons = [
                c.message
                for c in inconclusive
                if c.scope == "overall" or c.name.endswith(":budget")
            ]
            sliced = len(inconclusive) - len(reasons)
            if sliced:
                reasons.append(
                    f"{sliced} workflow or language slice comparison(s) inconclusive too "
                    "(see `slices` in the verdict)"
                )
        elif not any(c.status in ("ok", "improved") for c in gated):
            verdict = "inconclusive"
            reasons = ["no gated metric had data on both arms"]
        else:
            verdict = "pass"
            shown = sum(c.status in ("ok", "improved") for c in gated)
            reasons = [
                f"non-inferiority shown for all {shown} gated comparisons "
                f"({len(cases)} paired cases, {self.confidence:.0%} intervals)"
            ]
        # A figure judged on part of the cases (cost without usage on some streams) says so in
        # the summary whatever the verdict: never a silent mix.
        reasons += [
            c.message
            for c, r in zip(comparisons, results, strict=True)
            if r.partial and c.scope == "overall" and c.message not in reasons
        ]
        judgement = replace(
            base,
            verdict=verdict,
            reasons=tuple(reasons),
            metrics=comparisons,
            regressions=regressions,
        )
        stable_model = run.stable[0].model if run.stable else None
        return replace(judgement, rollout=rollout_plan(judgement, self.margins, stable_model))

    # -- slices ------------------------------------------------------------------------------

    def _slices(self, cases: list[_Case]) -> Iterable[_Slice]:
        yield _Slice("overall", cases, None, True)
        by_workflow: dict[str, list[_Case]] = defaultdict(list)
        by_language: dict[str, list[_Case]] = defaultdict(list)
        for case in cases:
            by_workflow[case.workflow].append(case)
            if case.language is not None:
                by_language[case.language].append(case)
        # A slice equal to the whole run says nothing new.
        if len(by_workflow) > 1 or _has_budgets(cases):
            for name in sorted(by_workflow):
                members = by_workflow[name]
                yield _Slice(
                    f"workflow:{name}",
                    members,
                    _merge_budgets(members),
                    len(members) >= self.min_cases,
                )
        if len(by_language) > 1:
            for code in sorted(by_language):
                members = by_language[code]
                yield _Slice(f"language:{code}", members, None, len(members) >= self.min_cases)

    def _judge_slice(self, piece: _Slice, memo: _RunMemo) -> list[_Result]:
        results: list[_Result] = []
        margins = _slice_margins(self.margins, piece.budgets)
        for spec in _RATES:
            margin = getattr(margins, spec.margin)
            result = self._rate(spec, piece, margin, memo)
            if result is None:
                result = self._no_data(
                    spec, piece, margin, piece.scope == "overall" and spec.name in _CORE
                )
            if result is not None:
                results.append(result)
        for spec in _RATIOS:
            margin = getattr(margins, spec.margin)
            result = self._ratio(spec, piece, margin, memo)
            if result is None:
                result = self._no_data(spec, piece, margin, piece.scope == "overall")
            if result is not None:
                results.append(result)
        names = sorted({n for c in piece.cases for t in c.stable.tests for n, _ in t.scores})
        for name in names:
            result = self._score(name, piece, margins.score_drop, memo)
            if result is not None:
                results.append(result)
        if piece.budgets is not None:
            results += self._budgets(piece, piece.budgets, memo)
        for metric in self.custom_metrics:
            result = self._custom(metric, piece, memo)
            if result is not None:
                results.append(replace(result, label=metric.label))
        return [_unless_repeated(piece, result, memo) for result in results]

    # -- metrics plugins add -------------------------------------------------------------------

    def _custom(self, metric: CustomMetric, piece: _Slice, memo: _RunMemo) -> _Result | None:
        """A plugin's metric, by the machinery of the built-in metric of its kind."""
        kind: Kind = "score" if metric.kind == "mean" else metric.kind
        spec = _Spec(
            metric.name,
            metric.label or metric.name,
            kind,
            metric.display_unit,
            metric.higher_is_better,
            "",
        )
        if kind == "rate":
            result = self._rate(spec, piece, metric.margin, memo)
        elif kind == "ratio":
            result = self._ratio(spec, piece, metric.margin, memo)
        else:
            result = self._mean(spec, piece, metric.margin, memo)
        if result is None:
            result = self._no_data(spec, piece, metric.margin, piece.scope == "overall")
            if result is not None and kind == "score":
                # A mean's change is a difference, its limit the drop (or rise) allowed.
                allowed = _mean_limit(metric.margin, metric.higher_is_better)
                result = replace(
                    result,
                    comparison=replace(
                        result.comparison,
                        change_kind="points",
                        limit=None if allowed is None else f"{allowed:+g}",
                        limit_value=allowed,
                    ),
                )
        return result

    def _mean(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        """The per-case mean of a plugin's per-call values: the paired difference, like scores."""

        # (total, calls with a value) per case and arm; sums() is never None for these.
        sums = [
            (case.stable.sums(spec.name) or (0.0, 0), case.candidate.sums(spec.name) or (0.0, 0))
            for case in piece.cases
        ]
        values = [(s[0] / s[1], c[0] / c[1]) for s, c in sums if s[1] and c[1]]
        if not values:
            return None
        n = len(values)
        s_mean, c_mean, interval, p_value = self._mean_difference(values, piece, memo)
        change = c_mean - s_mean
        # Oriented so that lower is worse, as for the rates.
        sign = 1.0 if spec.higher_is_better else -1.0
        low, high = sorted((sign * interval.low, sign * interval.high))
        status, worse_beyond = _non_inferiority(sign * change, low, high, margin)
        half = (interval.high - interval.low) / 2
        mde = _mde(half, self.confidence)
        needed = None
        if status == "inconclusive" and margin is not None:
            needed = _cases_needed(n, half, abs(sign * change + margin))
        allowed = _mean_limit(margin, spec.higher_is_better)
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=s_mean,
            candidate=c_mean,
            change=change,
            change_kind="points",
            limit=None if allowed is None else f"{allowed:+g}",
            limit_value=allowed,
            status=status,
            samples=Samples(sum(s[1] for s, _ in sums), sum(c[1] for _, c in sums)),
            message="",
            scope=piece.scope,
            n=n,
            change_interval=(interval.low, interval.high),
            test="wilcoxon+paired_bootstrap" if self.paired else "bootstrap",
            p_value=p_value,
            min_detectable_change=mde,
            cases_needed=needed,
        )
        return _Result(comparison, piece.gated and margin is not None, worse_beyond)

    # -- rates -------------------------------------------------------------------------------

    def _rate(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        kept = [
            case
            for case in piece.cases
            if case.stable.counts(spec.name)[1] and case.candidate.counts(spec.name)[1]
        ]
        if not kept:
            return None
        pairs = [(c.stable.counts(spec.name), c.candidate.counts(spec.name)) for c in kept]
        n = len(pairs)
        s_events = [s[0] for s, _ in pairs]
        s_trials = [s[1] for s, _ in pairs]
        c_events = [c[0] for _, c in pairs]
        c_trials = [c[1] for _, c in pairs]
        s_rate = sum(s_events) / sum(s_trials)
        c_rate = sum(c_events) / sum(c_trials)
        s_ci = wilson_interval(sum(s_events), sum(s_trials), confidence=self.confidence)
        c_ci = wilson_interval(sum(c_events), sum(c_trials), confidence=self.confidence)
        change = c_rate - s_rate
        binary = all(t == 1 for t in s_trials) and all(t == 1 for t in c_trials)
        if binary and self.paired:
            table = PairedTable.from_pairs(
                (bool(s), bool(c)) for s, c in zip(s_events, c_events, strict=True)
            )
            interval = newcombe_paired_interval(table, confidence=self.confidence)
            p_value = mcnemar_mid_p(table.b, table.c)
            test = "mcnemar_mid_p+newcombe"
        else:
            interval = (
                large_sample_rate_difference(
                    s_events,
                    s_trials,
                    c_events,
                    c_trials,
                    paired=self.paired,
                    confidence=self.confidence,
                )
                if n >= _LARGE_SAMPLE_CASES
                else _bootstrap(
                    n,
                    functools.partial(
                        _rate_change, _IntSums((s_events, s_trials), (c_events, c_trials))
                    ),
                    seed=piece.seed,
                    resamples=self.resamples,
                    confidence=self.confidence,
                    paired=self.paired,
                    memo=memo,
                )
            )
            # A bootstrap cannot see beyond what happened: an arm with no event (or nothing but
            # events) is the same in every resample, so its own uncertainty drops out (0 errors
            # in 116 calls would count as a rate known to be 0). Newcombe's interval from the
            # Wilson intervals keeps the rule of three for that arm; the wider of the two holds.
            s_constant = sum(s_events) in (0, sum(s_trials))
            c_constant = sum(c_events) in (0, sum(c_trials))
            if math.isnan(interval.low) or interval.width <= 0 or (s_constant and c_constant):
                interval = _newcombe_unpaired(change, s_rate, s_ci, c_rate, c_ci)
            elif s_constant or c_constant:
                score = _newcombe_unpaired(change, s_rate, s_ci, c_rate, c_ci)
                interval = Interval(min(interval.low, score.low), max(interval.high, score.high))
            if self.paired:
                differences = [
                    c / ct - s / st
                    for s, st, c, ct in zip(s_events, s_trials, c_events, c_trials, strict=True)
                ]
                p_value = wilcoxon_signed_rank(differences)
                test = "wilcoxon+paired_bootstrap"
            else:
                p_value = _two_proportion_p(
                    sum(s_events), sum(s_trials), sum(c_events), sum(c_trials)
                )
                test = "z_test+bootstrap"
        result = self._rate_result(
            spec,
            piece,
            margin,
            n,
            s_rate,
            c_rate,
            s_ci,
            c_ci,
            change,
            interval,
            p_value,
            test,
            Samples(sum(s_trials), sum(c_trials)),
        )
        if result.comparison.status != "inconclusive" or margin is None:
            return result
        counts = (sum(s_events), sum(s_trials), sum(c_events), sum(c_trials))
        paired_table = (
            PairedTable.from_pairs(
                (bool(s), bool(c)) for s, c in zip(s_events, c_events, strict=True)
            )
            if binary and self.paired
            else None
        )
        needed = self._rate_cases_needed(spec, n, counts, paired_table, margin)
        repeats = _repeats_needed(
            (
                (_repeat_rates(c.stable, spec.name), _repeat_rates(c.candidate, spec.name))
                for c in kept
            ),
            interval,
            abs(change + (margin if spec.higher_is_better else -margin)),
            needed,
        )
        return replace(
            result,
            comparison=replace(result.comparison, cases_needed=needed, repeats_needed=repeats),
        )

    def _rate_cases_needed(
        self,
        spec: _Spec,
        n: int,
        counts: tuple[int, int, int, int],
        table: PairedTable | None,
        margin: float,
    ) -> int | None:
        """About how many cases decide: the same proportions, scaled until the interval does.

        Scaling the counts (rather than assuming a 1/sqrt(n) half-width) stays right when no
        event happened at all, where the interval shrinks like 1/n (the rule of three).
        """
        sign = 1.0 if spec.higher_is_better else -1.0

        def decided(factor: float) -> bool:
            if table is not None:
                scaled = PairedTable(
                    *(round(x * factor) for x in (table.a, table.b, table.c, table.d))
                )
                interval = newcombe_paired_interval(scaled, confidence=self.confidence)
            else:
                se, st, ce, ct = (round(x * factor) for x in counts)
                s_rate, c_rate = se / st, ce / ct
                interval = _newcombe_unpaired(
                    c_rate - s_rate,
                    s_rate,
                    wilson_interval(se, st, confidence=self.confidence),
                    c_rate,
                    wilson_interval(ce, ct, confidence=self.confidence),
                )
            low, high = sorted((sign * interval.low, sign * interval.high))
            return low > -margin or high < -margin

        high_factor = 2.0
        while not decided(high_factor):
            high_factor *= 2
            if high_factor > 4096:
                return None  # the point estimate sits on the margin: no size decides
        low_factor = 1.0
        for _ in range(20):
            middle = (low_factor + high_factor) / 2
            if decided(middle):
                high_factor = middle
            else:
                low_factor = middle
        return math.ceil(n * high_factor)

    def _rate_result(
        self,
        spec: _Spec,
        piece: _Slice,
        margin: float | None,
        n: int,
        s_rate: float,
        c_rate: float,
        s_ci: Interval,
        c_ci: Interval,
        change: float,
        interval: Interval,
        p_value: float,
        test: str,
        samples: Samples,
    ) -> _Result:
        sign = 1.0 if spec.higher_is_better else -1.0
        # Oriented: lower is worse.
        low, high = sorted((sign * interval.low, sign * interval.high))
        point = sign * change
        status, worse_beyond = _non_inferiority(point, low, high, margin)
        half = (interval.high - interval.low) / 2
        mde = _mde(half, self.confidence)
        needed = _cases_needed(n, half, abs(point + margin)) if margin is not None else None
        limit_text = (
            None if margin is None else _points(-margin if spec.higher_is_better else margin)
        )
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=s_rate,
            candidate=c_rate,
            change=change * 100,
            change_kind="points",
            limit=limit_text,
            limit_value=None if margin is None else sign * -margin * 100,
            status=status,
            samples=samples,
            message="",
            scope=piece.scope,
            n=n,
            stable_interval=(s_ci.low, s_ci.high),
            candidate_interval=(c_ci.low, c_ci.high),
            change_interval=(interval.low * 100, interval.high * 100),
            test=test,
            p_value=p_value,
            min_detectable_change=None if mde is None else mde * 100,
            cases_needed=needed if status == "inconclusive" else None,
        )
        return _Result(comparison, piece.gated and margin is not None, worse_beyond)

    # -- ratios ------------------------------------------------------------------------------

    def _ratio(
        self, spec: _Spec, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        """Candidate / stable of a latency quantile, or of cost or tokens per call."""
        seed = piece.seed
        note: str | None = None
        if spec.name in _QUANTILES:
            data = self._latency(spec, piece, seed, memo)
        else:
            sums = [(c.stable.sums(spec.name), c.candidate.sums(spec.name)) for c in piece.cases]
            known = [(s, c) for s, c in sums if s is not None and c is not None]
            if len(known) < len(sums):
                gaps, price_missing = _cost_gaps(piece.cases)
                if price_missing or not known:
                    # A cost is unknown on an arm: never "ok", and a gated cost cannot pass.
                    return self._unknown(spec, piece, margin, sums, gaps)
                # Only usage is missing (a server that sends none on streams): judge the cases
                # whose every call has a cost on both arms, and say so. Never a mix within a case.
                note = (
                    f"judged on the {len(known)} of {len(sums)} cases with a cost on both arms; "
                    + gaps
                )
            data = _ratio_of_sums(known)
        if data is None or not (data.stable > 0) or math.isnan(data.candidate):
            return None
        n = data.n
        change = data.candidate / data.stable
        if isinstance(data.interval, Interval):
            interval = data.interval
        elif n >= _LARGE_SAMPLE_CASES and data.sums is not None:
            interval = large_sample_ratio_of_sums(
                *data.sums, paired=self.paired, confidence=self.confidence
            )
        else:
            interval = _bootstrap(
                n,
                data.interval,
                seed=seed,
                resamples=self.resamples,
                confidence=self.confidence,
                paired=self.paired,
                memo=memo,
            )
        if self.paired and data.rank_test:
            log_ratios = [math.log(c / s) for s, c in data.per_case if s > 0 and c > 0]
            p_value = wilcoxon_signed_rank(log_ratios) if log_ratios else 1.0
        elif change > 0 and interval.low > 0:
            p_value = _p_from_interval(
                math.log(change),
                Interval(math.log(interval.low), math.log(interval.high)),
                self.confidence,
            )
        else:
            p_value = 1.0
        status, worse_beyond = _ratio_status(change, interval, margin)
        if math.isnan(interval.low):
            status, worse_beyond = ("inconclusive" if margin is not None else "not_gated"), False
        log_half = (
            (math.log(interval.high) - math.log(interval.low)) / 2
            if interval.low > 0 and interval.high > 0
            else math.nan
        )
        mde = _mde(log_half, self.confidence) if not math.isnan(log_half) else None
        needed = None
        if status == "inconclusive" and margin is not None and not math.isnan(log_half):
            needed = _cases_needed(n, log_half, abs(math.log(change) - math.log(margin)))
        samples = data.samples
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=data.stable,
            candidate=data.candidate,
            change=change,
            change_kind="ratio",
            limit=None if margin is None else f"x{margin:.2f}",
            limit_value=margin,
            status=status,
            samples=samples,
            message="",
            scope=piece.scope,
            n=n,
            change_interval=(interval.low, interval.high),
            test=(
                ("wilcoxon+paired_bootstrap" if data.rank_test else "paired_bootstrap")
                if self.paired
                else "bootstrap"
            ),
            p_value=p_value,
            min_detectable_change=None if mde is None else math.exp(mde),
            cases_needed=needed,
        )
        tail = spec.name in _QUANTILES and _QUANTILES[spec.name] > 0.5
        if tail and min(samples.stable, samples.candidate or 0) < _MIN_TAIL_SAMPLES:
            # A p95 over a few dozen calls is its few slowest calls: report it, do not gate on it.
            return _Result(
                replace(comparison, cases_needed=None),
                False,
                False,
                f"a p95 over fewer than {_MIN_TAIL_SAMPLES} calls per arm rests on a handful "
                "of values",
                note,
            )
        gated = piece.gated and margin is not None
        return _Result(comparison, gated, worse_beyond, note=note, partial=note is not None)

    def _latency(self, spec: _Spec, piece: _Slice, seed: int, memo: _RunMemo) -> _RatioData | None:
        """A latency quantile's figures; None when no case has a latency on both arms."""
        q = _QUANTILES[spec.name]
        rows = [(c.stable.values(spec.name), c.candidate.values(spec.name)) for c in piece.cases]
        rows = [(s, c) for s, c in rows if s and c]
        if not rows:
            return None
        s_lists = [s for s, _ in rows]
        c_lists = [c for _, c in rows]
        key = (piece.scope, spec.name == "ttft_p95_ms", seed, len(rows))
        if key not in memo.quantiles:
            memo.quantiles[key] = self._quantile_intervals(s_lists, c_lists, seed, memo)
        return _latency_data(s_lists, c_lists, q, memo.quantiles[key][q])

    def _quantile_intervals(
        self, s_lists: list[list[float]], c_lists: list[list[float]], seed: int, memo: _RunMemo
    ) -> dict[float, Interval]:
        """Every level's quantile-ratio interval: p50 and p95 of the same calls from one pass."""
        if len(s_lists) >= _LARGE_SAMPLE_CASES:
            return {
                q: large_sample_quantile_ratio(
                    s_lists, c_lists, q, paired=self.paired, confidence=self.confidence
                )
                for q in _QUANTILE_LEVELS
            }
        intervals = _bootstrap_many(
            len(s_lists),
            _QuantileRatios(s_lists, c_lists),
            len(_QUANTILE_LEVELS),
            seed=seed,
            resamples=self.resamples,
            confidence=self.confidence,
            paired=self.paired,
            memo=memo,
        )
        return dict(zip(_QUANTILE_LEVELS, intervals, strict=True))

    def _unknown(
        self,
        spec: _Spec,
        piece: _Slice,
        margin: float | None,
        sums: Sequence[tuple[tuple[float, int] | None, tuple[float, int] | None]],
        gaps: str,
    ) -> _Result:
        """A figure unknown on at least one arm (a missing price or usage): reported, never ok.

        ``gaps`` says, per arm, which calls lack a cost and why (see ``_cost_gaps``).
        """

        def arm_value(index: int) -> tuple[float | None, int]:
            known = [pair[index] for pair in sums]
            calls = sum(k[1] for k in known if k is not None)
            if any(k is None for k in known) or not calls:
                return None, calls
            return math.fsum(k[0] for k in known if k is not None) / calls, calls

        (stable, s_calls), (candidate, c_calls) = arm_value(0), arm_value(1)
        comparison = MetricComparison(
            name=spec.name,
            unit=spec.unit,
            stable=stable,
            candidate=candidate,
            change=None,
            change_kind="ratio",
            limit=None if margin is None else f"x{margin:.2f}",
            limit_value=margin,
            status="inconclusive" if margin is not None else "not_gated",
            samples=Samples(s_calls, c_calls),
            message="",
            scope=piece.scope,
            n=len(piece.cases),
            test=None,
        )
        return _Result(comparison, piece.gated and margin is not None, False, note=gaps)

    def _no_data(
        self, spec: _Spec, piece: _Slice, margin: float | None, always: bool
    ) -> _Result | None:
        """A metric no case has on both arms: which arm lacks it, and whether that blocks.

        Data on one arm only (no first token on the candidate's streams, no checked reply on
        the stable arm) counts against a pass wherever the metric is gated. With data on
        neither arm the metric does not apply here (no streamed call: no TTFT): reported when
        ``always``, else left out.
        """
        s_value, s_n = _arm_figure(spec, piece.cases, "stable")
        c_value, c_n = _arm_figure(spec, piece.cases, "candidate")

        def comparison(
            limit: str | None, limit_value: float | None, n: int, *, figures: bool
        ) -> MetricComparison:
            return MetricComparison(
                name=spec.name,
                unit=spec.unit,
                stable=s_value if figures else None,
                candidate=c_value if figures else None,
                change=None,
                change_kind="points" if spec.kind == "rate" else "ratio",
                limit=limit,
                limit_value=limit_value,
                status="no_data",
                samples=Samples(s_n, c_n),
                message="",
                scope=piece.scope,
                n=n,
            )

        if not s_n and not c_n:
            if not always:
                return None
            return _Result(comparison(None, None, 0, figures=False), False, False)
        what = _SAMPLE_NOUNS.get(spec.name, "checked replies")
        if not c_n:
            note = f"no data on the candidate arm (the stable arm has {s_n} {what})"
        elif not s_n:
            note = f"no data on the stable arm (the candidate arm has {c_n} {what})"
        elif spec.kind != "rate" and s_value == 0:
            note = "the stable figure is 0, so there is no ratio to judge"
        else:
            note = "no case has data on both arms"
        # A zero stable figure blocks only when the candidate's is not zero too.
        blocks = margin is not None and not (s_value == 0 and c_value == 0)
        if spec.kind == "rate":
            limit = (
                None if margin is None else _points(-margin if spec.higher_is_better else margin)
            )
            limit_value = (
                None if margin is None else (1 if spec.higher_is_better else -1) * -margin * 100
            )
        else:
            limit = None if margin is None else f"x{margin:.2f}"
            limit_value = margin
        return _Result(
            comparison(limit, limit_value, len(piece.cases), figures=True),
            piece.gated and blocks,
            False,
            note=note,
        )

    def _mean_difference(
        self, values: Sequence[tuple[float, float]], piece: _Slice, memo: _RunMemo
    ) -> tuple[float, float, Interval, float]:
        """Both arms' means of per-case ``(stable, candidate)`` values, the interval of their
        difference (candidate - stable) and its p-value: for scores and plugins' mean metrics.
        """
        s_vals = [s for s, _ in values]
        c_vals = [c for _, c in values]
        n = len(values)
        s_mean, c_mean = math.fsum(s_vals) / n, math.fsum(c_vals) / n
        interval = (
            large_sample_mean_difference(
                s_vals, c_vals, paired=self.paired, confidence=self.confidence
            )
            if n >= _LARGE_SAMPLE_CASES
            else _bootstrap(
                n,
                lambda s_gather, c_gather: (
                    (math.fsum(c_gather(c_vals)) - math.fsum(s_gather(s_vals))) / n
                ),
                seed=piece.seed,
                resamples=self.resamples,
                confidence=self.confidence,
                paired=self.paired,
                memo=memo,
            )
        )
        change = c_mean - s_mean
        if self.paired:
            p_value = wilcoxon_signed_rank([c - s for s, c in values])
        else:
            p_value = _p_from_interval(change, interval, self.confidence)
        return s_mean, c_mean, interval, p_value

    # -- quality scores ---------------------------------------------------------------------

    def _score(
        self, name: str, piece: _Slice, margin: float | None, memo: _RunMemo
    ) -> _Result | None:
        pairs = [(c.stable.score(name), c.candidate.score(name)) for c in piece.cases]
        values = [(s, c) for s, c in pairs if s is not None and c is not None]
        if not values:
            return None
        n = len(values)
        s_mean, c_mean, interval, p_value = self._mean_difference(values, piece, memo)
        change = c_mean - s_mean
        status, worse_beyond = _non_inferiority(change, interval.low, interval.high, margin)
        half = (interval.high - interval.low) / 2
        mde = _mde(half, self.confidence)
        needed = repeats = None
        if status == "inconclusive" and margin is not None:
            needed = _cases_needed(n, half, abs(change + margin))
            repeats = _repeats_needed(
                (
                    (_repeat_scores(c.stable, name), _repeat_scores(c.candidate, name))
                    for c in piece.cases
                    if c.stable.score(name) is not None and c.candidate.score(name) is not None
                ),
                interval,
                abs(change + margin),
                needed,
            )
        comparison = MetricComparison(
            name=f"score:{name}",
            unit="number",
            stable=s_mean,
            candidate=c_mean,
            change=change,
            change_kind="points",
            limit=None if margin is None else f"-{margin:g}",
            limit_value=None if margin is None else -margin,
            status=status,
            samples=Samples(n, n),
            message="",
            scope=piece.scope,
            n=n,
            change_interval=(interval.low, interval.high),
            test="wilcoxon+paired_bootstrap" if self.paired else "bootstrap",
            p_value=p_value,
            min_detectable_change=mde,
            cases_needed=needed,
            repeats_needed=repeats,
        )
        return _Result(comparison, piece.gated and margin is not None, worse_beyond)

    # -- absolute budgets --------------------------------------------------------------------

    def _budgets(self, piece: _Slice, budgets: Budgets, memo: _RunMemo) -> list[_Result]:
        """The workflow's absolute budgets on the candidate.

        A budget the user wrote binds whatever the slice's size (``min_cases`` does not apply):
        a clear breach (every case beyond the bound, or the whole interval) fails; a figure too
        few cases cannot place is inconclusive, saying why; a figure with no data blocks.
        """
        results: list[_Result] = []
        cases = piece.cases
        n = len(cases)
        # (name, unit, bound, statistic, each case's own figure or None, the large-sample
        # interval of the statistic).
        checks: list[
            tuple[
                str,
                Unit,
                float | None,
                Callable[[_Gather], float],
                list[float | None],
                Callable[[], Interval],
            ]
        ] = []
        confidence = self.confidence
        latency_lists = [c.candidate.values("latency_p95_ms") for c in cases]
        ttft_lists = [c.candidate.values("ttft_p95_ms") for c in cases]

        def q_of(lists: list[list[float]], q: float) -> Callable[[_Gather], float]:
            def statistic(gather: _Gather) -> float:
                values = list(itertools.chain.from_iterable(gather(lists)))
                return quantile(values, q) if values else math.nan

            return statistic

        # A latency quantile is beyond a maximum for sure when every call is: a case "counts" by
        # its fastest call.
        fastest = [min(v) if v else None for v in latency_lists]
        first_tokens = [min(v) if v else None for v in ttft_lists]
        for name, bound, lists, q, own in (
            ("latency_p50_ms", budgets.latency_p50_ms, latency_lists, 0.5, fastest),
            ("latency_p95_ms", budgets.latency_p95_ms, latency_lists, 0.95, fastest),
            ("ttft_p95_ms", budgets.ttft_p95_ms, ttft_lists, 0.95, first_tokens),
        ):
            checks.append(
                (
                    name,
                    "ms",
                    bound,
                    q_of(lists, q),
                    own,
                    functools.partial(large_sample_quantile, lists, q, confidence=confidence),
                )
            )
        sums = [c.candidate.sums("cost_per_call_usd") for c in cases]
        if all(s is not None for s in sums):
            totals = [s[0] if s is not None else 0.0 for s in sums]
            counts = [s[1] if s is not None else 0 for s in sums]
            tests = [len(c.candidate.ran) for c in cases]

            def cost_per_call(gather: _Gather) -> float:
                calls = sum(gather(counts))
                return math.fsum(gather(totals)) / calls if calls else math.nan

            def cost_per_test(gather: _Gather) -> float:
                ran = sum(gather(tests))
                return math.fsum(gather(totals)) / ran if ran else math.nan

            # A pooled per-call (per-test) cost lies between the cases' own: beyond a maximum
            # for sure when every case's is.
            per_call = [t / c if c else None for t, c in zip(totals, counts, strict=True)]
            per_test = [t / r if r else None for t, r in zip(totals, tests, strict=True)]
            checks.append(
                (
                    "cost_per_call_usd",
                    "usd",
                    budgets.cost_usd_per_call,
                    cost_per_call,
                    per_call,
                    functools.partial(large_sample_ratio, totals, counts, confidence=confidence),
                )
            )
            checks.append(
                (
                    "cost_per_test_usd",
                    "usd",
                    budgets.cost_usd_per_test,
                    cost_per_test,
                    per_test,
                    functools.partial(large_sample_ratio, totals, tests, confidence=confidence),
                )
            )
        else:
            gaps, _ = _cost_gaps(cases)
            for name, bound in (
                ("cost_per_call_usd", budgets.cost_usd_per_call),
                ("cost_per_test_usd", budgets.cost_usd_per_test),
            ):
                if bound is not None:
                    results.append(
                        self._budget_no_data(f"{name}:budget", "usd", piece, bound, True, gaps)
                    )
        for name, unit, bound, statistic, per_case, large_sample in checks:
            if bound is None:
                continue
            value = statistic(tuple)
            if math.isnan(value):
                results.append(
                    self._budget_no_data(
                        f"{name}:budget", unit, piece, bound, True, "no data on the candidate arm"
                    )
                )
                continue
            interval = (
                large_sample()
                if n >= _LARGE_SAMPLE_CASES
                else _bootstrap(
                    n,
                    lambda s_gather, _c_gather, f=statistic: f(s_gather),  # type: ignore[misc]
                    seed=piece.seed,
                    resamples=self.resamples,
                    confidence=self.confidence,
                    paired=True,
                    memo=memo,
                )
            )
            figures = [f for f in per_case if f is not None]
            every = bool(figures) and all(f > bound for f in figures)
            results.append(
                self._budget_result(
                    f"{name}:budget", unit, piece, n, value, interval, bound, True, every
                )
            )
        if budgets.min_pass_rate is not None:
            passed = sum(sum(t.outcome == "passed" for t in c.candidate.ran) for c in cases)
            ran = sum(len(c.candidate.ran) for c in cases)
            if ran:
                ci = wilson_interval(passed, ran, confidence=self.confidence)
                results.append(
                    self._budget_result(
                        "pass_rate:budget",
                        "rate",
                        piece,
                        n,
                        passed / ran,
                        ci,
                        budgets.min_pass_rate,
                        False,
                        passed == 0 and budgets.min_pass_rate > 0,
                    )
                )
        return results

    def _budget_result(
        self,
        name: str,
        unit: Unit,
        piece: _Slice,
        n: int,
        value: float,
        interval: Interval,
        bound: float,
        upper: bool,
        every_case_beyond: bool = False,
    ) -> _Result:
        """A candidate figure against an absolute bound: a maximum (``upper``) or a minimum.

        ``every_case_beyond``: each case's own figure is beyond the bound, so the pooled one is
        too, however few the cases.
        """
        note = None
        if every_case_beyond:
            status: MetricStatus = "regressed"
            beyond = True
            note = "every case is beyond the bound"
        elif math.isnan(interval.low):
            status = "inconclusive"
            beyond = False
            note = (
                f"too few cases for an interval ({n}, at least {_MIN_BOOTSTRAP_CASES}) and not "
                "every case is beyond the bound"
            )
        elif upper:
            beyond = interval.low > bound
            status = "regressed" if beyond else ("ok" if interval.high <= bound else "inconclusive")
        else:
            beyond = interval.high < bound
            status = "regressed" if beyond else ("ok" if interval.low >= bound else "inconclusive")
        comparison = MetricComparison(
            name=name,
            unit=unit,
            stable=None,
            candidate=value,
            change=None,
            change_kind="points" if unit == "rate" else "ratio",
            limit=("<= " if upper else ">= ") + format_value(unit, bound),
            limit_value=bound,
            status=status,
            samples=Samples(0, n),
            message="",
            scope=piece.scope,
            n=n,
            candidate_interval=(interval.low, interval.high),
            test="budget+bootstrap" if unit != "rate" else "budget+wilson",
            # A budget is a bound on one arm, not a paired difference: it is not part of
            # the Holm family (its interval alone decides).
            p_value=None,
        )
        # A budget binds whatever the slice's size: the user wrote it for this workflow.
        return _Result(comparison, True, beyond, note=note)

    def _budget_no_data(
        self, name: str, unit: Unit, piece: _Slice, bound: float, upper: bool, why: str
    ) -> _Result:
        """A budget whose figure the candidate has no data for: it cannot be checked, so it
        blocks a pass."""
        comparison = MetricComparison(
            name=name,
            unit=unit,
            stable=None,
            candidate=None,
            change=None,
            change_kind="points" if unit == "rate" else "ratio",
            limit=("<= " if upper else ">= ") + format_value(unit, bound),
            limit_value=bound,
            status="no_data",
            samples=Samples(0, 0),
            message="",
            scope=piece.scope,
            n=len(piece.cases),
            test=None,
        )
        return _Result(comparison, True, False, note=why)

    # -- decisions ---------------------------------------------------------------------------

    def _decide(self, results: list[_Result]) -> tuple[MetricComparison, ...]:
        """Holm's correction across gated comparisons, then the final statuses and messages."""
        alpha = 1 - self.confidence
        # One family per metric: its comparisons across every scope (overall, each workflow,
        # each language). Each metric is its own question; its slices are where it is asked many
        # times over, which is what Holm's correction is for.
        families: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(results):
            if r.gated and r.comparison.p_value is not None:
                families[r.comparison.name].append(i)
        p_adjusted: dict[int, float] = {}
        alpha_share: dict[int, float] = {}
        for members in families.values():
            weights = _holm_weights([results[i].comparison.scope for i in members])
            # A p-value that underflowed to 0.0 is the most significant of all, not a missing one.
            adjusted = holm([_p(results[i].comparison.p_value) for i in members], weights)
            for i, value, weight in zip(members, adjusted, weights, strict=True):
                p_adjusted[i] = value
                alpha_share[i] = weight
        final: list[MetricComparison] = []
        for i, result in enumerate(results):
            comparison = result.comparison
            status = comparison.status
            p_adj = p_adjusted.get(i)
            needed = comparison.cases_needed
            # Worked out from the interval: it says nothing about Holm's correction.
            repeats = comparison.repeats_needed
            if status == "regressed" and p_adj is not None and p_adj >= alpha:
                # Beyond the margin by the interval, yet not significant once every comparison
                # of the run is accounted for: the data cannot tell yet.
                status = "inconclusive"
                needed = _cases_for_significance(
                    comparison.n or 0, _p(comparison.p_value), alpha * alpha_share.get(i, 1.0)
                )
                repeats = None
            if not result.gated and status != "no_data":
                status, needed, repeats = "not_gated", None, None
            elif status != "inconclusive":
                needed = repeats = None
            comparison = replace(
                comparison,
                status=status,
                p_adjusted=p_adj,
                cases_needed=needed,
                repeats_needed=repeats,
            )
            message = _message(comparison, status, result, self.confidence)
            final.append(replace(comparison, message=message))
        return tuple(final)


def _mean_limit(margin: float | None, higher_is_better: bool) -> float | None:
    """The worst change a mean's margin allows, signed: a drop, or a rise when lower is better."""
    if margin is None:
        return None
    return -margin if higher_is_better else margin


def _holm_weights(scopes: Sequence[str]) -> list[float]:
    """Each comparison's share of alpha in a Holm family, from the scopes it was asked in."""
    slices = sum(1 for scope in scopes if scope != "overall")
    if slices == 0 or slices == len(scopes):
        return [1 / len(scopes)] * len(scopes)
    overall = _OVERALL_ALPHA_SHARE / (len(scopes) - slices)
    rest = (1 - _OVERALL_ALPHA_SHARE) / slices
    return [overall if scope == "overall" else rest for scope in scopes]


def _p_from_interval(estimate: float, interval: Interval, confidence: float) -> float:
    """Two-sided p of "no change" from a symmetric-enough interval (normal approximation)."""
    if math.isnan(interval.low):
        return 1.0
    if interval.high <= interval.low:
        # Every resample agreed: a difference that never varies is as significant as it gets.
        return 0.0 if abs(estimate) > _EPSILON else 1.0
    z = normal_quantile(1 - (1 - confidence) / 2)
    se = (interval.high - interval.low) / (2 * z)
    return min(1.0, 2 * (1 - _phi(abs(estimate) / se)))


def _p(value: float | None) -> float:
    return 1.0 if value is None else value


def _cases_for_significance(n: int, p_value: float, alpha: float) -> int | None:
    """About how many cases make an effect of the same size significant at ``alpha``."""
    if n <= 0 or not 0 < p_value < 1:
        return None
    observed = normal_quantile(1 - p_value / 2)
    wanted = normal_quantile(1 - alpha / 2)
    if observed <= 0:
        return None
    return max(n + 1, math.ceil(n * (wanted / observed) ** 2))


# --------------------------------------------------------------------------------------------
# helpers


def _sorted_quantile(ordered: Sequence[float], q: float) -> float:
    """``quantile`` of values already sorted (linear interpolation, numpy's default)."""
    if not ordered:
        return math.nan
    lower, upper, fraction = _interpolation(len(ordered), q)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * fraction


def _interpolation(size: int, q: float) -> tuple[int, int, float]:
    """Where quantile ``q`` of ``size`` sorted values lies: the indexes around it and how far."""
    position = (size - 1) * q
    lower = math.floor(position)
    return lower, min(lower + 1, size - 1), position - lower


@functools.lru_cache(maxsize=1024)
def _level_interpolations(size: int) -> tuple[tuple[int, int, float], ...]:
    """:func:`_interpolation` at every level of ``_QUANTILE_LEVELS`` (resamples share sizes)."""
    return tuple(_interpolation(size, level) for level in _QUANTILE_LEVELS)


def _pooled_quantile(lists: Sequence[list[float]], q: float) -> float:
    return _sorted_quantile(sorted(itertools.chain.from_iterable(lists)), q)


def _median(values: Sequence[float]) -> float:
    # One call per case (the usual shape): its value is its median (nan included).
    return values[0] if len(values) == 1 else quantile(values, 0.5)


def _arm_figure(spec: _Spec, cases: Sequence[_Case], arm: str) -> tuple[float | None, int]:
    """One arm's figure of a metric over ``cases``, unpaired, and how many values it rests on.

    Only for comparisons that could not be paired (see ``PairedJudge._no_data``).
    """
    arms: list[_CaseArm] = [getattr(case, arm) for case in cases]
    if spec.kind == "rate":
        counts = [a.counts(spec.name) for a in arms]
        trials = sum(t for _, t in counts)
        return (sum(e for e, _ in counts) / trials if trials else None), trials
    if spec.name in _QUANTILES:
        values = sorted(itertools.chain.from_iterable(a.values(spec.name) for a in arms))
        figure = _sorted_quantile(values, _QUANTILES[spec.name]) if values else None
        return figure, len(values)
    sums = [a.sums(spec.name) for a in arms]
    if any(part is None for part in sums):
        return None, sum(len(a.ok_calls) for a in arms)
    total = math.fsum(part[0] for part in sums if part is not None)
    calls = sum(part[1] for part in sums if part is not None)
    return (total / calls if calls else None), calls


def _cost_gaps(cases: Sequence[_Case]) -> tuple[str, bool]:
    """Which successful calls have no cost, per arm and why; and whether a price is missing.

    A call with usage but no cost lacks a price; a call without usage was never billed as far
    as we can tell, typically a stream from a server that ignores
    ``stream_options.include_usage`` (llama.cpp's server).
    """
    parts: list[str] = []
    price_missing = False
    for arm in ("stable", "candidate"):
        streamed = plain = unpriced = 0
        for case in cases:
            for call in getattr(case, arm).ok_calls:
                if call.cost_usd is not None:
                    continue
                if call.usage is not None:
                    unpriced += 1
                elif call.streamed:
                    streamed += 1
                else:
                    plain += 1
        reasons = []
        if streamed:
            reasons.append(
                f"{_count(streamed, 'streamed call')} reported no usage (the server did not "
                "honour stream_options.include_usage), so no cost"
            )
        if plain:
            reasons.append(f"{_count(plain, 'call')} reported no usage, so no cost")
        if unpriced:
            reasons.append(
                f"{_count(unpriced, 'call')} with usage but no price (a price is missing)"
            )
            price_missing = True
        if reasons:
            parts.append(f"on the {arm} arm " + " and ".join(reasons))
    return "; ".join(parts), price_missing


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _has_budgets(cases: Sequence[_Case]) -> bool:
    return any(t.budgets is not None for c in cases for t in c.candidate.tests)


def _merge_budgets(cases: Sequence[_Case]) -> Budgets | None:
    """The strictest budget any test of the workflow declared, field by field."""
    found = [t.budgets for c in cases for t in (*c.stable.tests, *c.candidate.tests) if t.budgets]
    if not found:
        return None
    merged: dict[str, float] = {}
    for budgets in found:
        for name, value in budgets.model_dump().items():
            if value is None:
                continue
            # A minimum pass rate is strictest when highest; every other bound when lowest.
            if name == "min_pass_rate":
                merged[name] = max(merged.get(name, value), value)
            else:
                merged[name] = min(merged.get(name, value), value)
    return Budgets(**merged)


def _slice_margins(margins: Margins, budgets: Budgets | None) -> Margins:
    """A workflow's markers replace the run's margins for that workflow's slice."""
    if budgets is None:
        return margins
    updates: dict[str, Any] = {}
    if budgets.latency_max_ratio is not None:
        updates.update(
            latency_p50_ratio=budgets.latency_max_ratio,
            latency_p95_ratio=budgets.latency_max_ratio,
            ttft_p95_ratio=budgets.latency_max_ratio,
        )
    if budgets.cost_max_ratio is not None:
        updates["cost_per_call_ratio"] = budgets.cost_max_ratio
    if budgets.max_pass_rate_drop is not None:
        updates["pass_rate"] = budgets.max_pass_rate_drop
    return replace(margins, **updates)


def _non_inferiority(
    point: float, low: float, high: float, margin: float | None
) -> tuple[MetricStatus, bool]:
    """Status of an oriented difference (lower is worse) against ``-margin``."""
    if math.isnan(low) or math.isnan(high):
        return ("inconclusive" if margin is not None else "not_gated"), False
    if margin is None:
        return ("improved" if low > _EPSILON else "not_gated"), False
    if high < -margin - _EPSILON:
        return "regressed", True
    if low > _EPSILON:
        return "improved", False
    if low > -margin - _EPSILON:
        return "ok", False
    return "inconclusive", False


def _ratio_status(
    change: float, interval: Interval, margin: float | None
) -> tuple[MetricStatus, bool]:
    """Status of a candidate / stable ratio (higher is worse) against ``margin``."""
    if margin is None:
        return "not_gated", False
    if interval.low > margin + _EPSILON:
        return "regressed", True
    if interval.high < 1 - _EPSILON:
        return "improved", False
    if interval.high <= margin + _EPSILON:
        return "ok", False
    return "inconclusive", False


def _mde(half_width: float, confidence: float) -> float | None:
    """Smallest change detectable with 80% power, from an interval's half-width."""
    if math.isnan(half_width) or half_width <= 0:
        return None
    z = normal_quantile(1 - (1 - confidence) / 2)
    return (z + normal_quantile(_POWER)) * half_width / z


def _repeat_rates(arm: _CaseArm, metric: str) -> list[float]:
    """The rate of each repeat of a case on one arm (repeats with no trial left out)."""
    return [events / trials for events, trials in (r.counts(metric) for r in arm.repeats) if trials]


def _repeat_scores(arm: _CaseArm, name: str) -> list[float]:
    """The score of each repeat of a case on one arm (repeats that recorded none left out)."""
    return [score for score in (r.score(name) for r in arm.repeats) if score is not None]


def _repeats_needed(
    per_case: Iterable[tuple[Sequence[float], Sequence[float]]],
    interval: Interval,
    distance: float,
    cases_needed: int | None,
) -> int | None:
    """About how many repeats of each case would decide, with the same cases.

    ``per_case``: each case's per-repeat values on (stable, candidate), read lazily: a run
    without repeats stops at its first case. The variance of a case's
    difference of means is a between-case part B, which repeats cannot shrink, plus a
    within-case part W = s_s^2 / K_s + s_c^2 / K_c (each arm's variance over its repeats of
    the case, averaged over cases), which K' repeats scale by K / K'. The interval's half-width
    goes with the square root of B + W: it decides once it is below ``distance`` (from the change
    to the margin). Needs at least two repeats of every case on both arms to tell W from B;
    None when it cannot tell, when even endless repeats would leave B too wide, or when the
    repeats would take more than ``_REPEATS_WORTH`` times the test runs of ``cases_needed``
    cases (repeats need no new case written, so they may cost more runs, but not that many).
    """
    half = interval.width / 2
    if distance <= _EPSILON or not half > distance:
        return None
    usable: list[tuple[Sequence[float], Sequence[float]]] = []
    for stable, candidate in per_case:
        if len(stable) < 2 or len(candidate) < 2:
            return None
        usable.append((stable, candidate))
    if len(usable) < _MIN_BOOTSTRAP_CASES:
        return None
    differences = [math.fsum(c) / len(c) - math.fsum(s) / len(s) for s, c in usable]
    mean = math.fsum(differences) / len(differences)
    total = math.fsum((d - mean) ** 2 for d in differences) / (len(differences) - 1)
    within = math.fsum(
        sample_variance(s) / len(s) + sample_variance(c) / len(c) for s, c in usable
    ) / len(usable)
    between = max(0.0, total - within)
    target = total * (distance / half) ** 2
    if within <= _EPSILON or target <= between:
        return None
    repeats = math.fsum(len(s) + len(c) for s, c in usable) / (2 * len(usable))
    needed = max(math.floor(repeats) + 1, math.ceil(repeats * within / (target - between)))
    if cases_needed is None or len(usable) * needed > _REPEATS_WORTH * cases_needed * repeats:
        return None
    return needed


def _cases_needed(n: int, half_width: float, distance: float) -> int | None:
    """About how many paired cases would shrink the interval to decide (half-width ~ 1/sqrt(n))."""
    if distance <= _EPSILON or math.isnan(half_width) or half_width <= 0:
        return None
    return max(n + 1, math.ceil(n * (half_width / distance) ** 2))


def _newcombe_unpaired(
    change: float, s_rate: float, s_ci: Interval, c_rate: float, c_ci: Interval
) -> Interval:
    """Newcombe's method 10 for independent arms (the paired form with zero correlation)."""
    low = change - math.sqrt((c_rate - c_ci.low) ** 2 + (s_ci.high - s_rate) ** 2)
    high = change + math.sqrt((c_ci.high - c_rate) ** 2 + (s_rate - s_ci.low) ** 2)
    return Interval(max(-1.0, low), min(1.0, high))


def _two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float:
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = abs(x2 / n2 - x1 / n1) / se
    return min(1.0, 2 * (1 - _phi(z)))


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _points(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def _has_interval(comparison: MetricComparison) -> bool:
    interval = comparison.change_interval
    return interval is not None and not any(math.isnan(v) for v in interval)


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


# --------------------------------------------------------------------------------------------
# Rollout


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
    stable = judgement.stable
    overall = {c.name: c for c in judgement.metrics if c.scope == "overall"}
    triggers: list[dict[str, Any]] = []
    left_out: list[dict[str, str]] = []

    def add(metric: str, op: str, threshold: float, unit: str, basis: str) -> None:
        comparison = overall.get(metric)
        if comparison is None or comparison.status not in _JUDGED:
            why = "not judged" if comparison is None else comparison.status.replace("_", " ")
            left_out.append(
                {"metric": metric, "reason": f"its figure was {why}: {_why(comparison)}"}
            )
            return
        low, high = (0.0, 1.0) if unit == "rate" else (0.0, math.inf)
        clamped = min(max(threshold, low), high)
        if (op == "<" and clamped <= low) or (op == ">" and clamped >= high):
            left_out.append(
                {
                    "metric": metric,
                    "reason": f"{basis} is outside the metric's range: it could never fire",
                }
            )
            return
        triggers.append(
            {
                "metric": metric,
                "op": op,
                "threshold": _round_threshold(clamped, unit),
                "unit": unit,
                "basis": basis,
            }
        )

    for name, margin in (
        ("error_rate", margins.error_rate),
        ("fallback_rate", margins.fallback_rate),
    ):
        value = stable.measurement(name).value
        if value is not None and margin is not None:
            add(name, ">", value + margin, "rate", f"stable {value:.2%} + {margin * 100:.1f} pts")
    for name, margin in (
        ("latency_p50_ms", margins.latency_p50_ratio),
        ("latency_p95_ms", margins.latency_p95_ratio),
        ("ttft_p95_ms", margins.ttft_p95_ratio),
        ("cost_per_call_usd", margins.cost_per_call_ratio),
    ):
        if margin is None:
            continue
        value = stable.measurement(name).value
        comparison = overall.get(name)
        if value is None and comparison is not None and comparison.status in _JUDGED:
            # Judged on the cases with a cost on both arms (no usage on some streams).
            value = comparison.stable
        unit = "usd" if name.endswith("usd") else "ms"
        if value is None:
            # A figure neither arm has (no stream: no TTFT) does not apply; one arm's does.
            if comparison is not None and (
                comparison.samples.stable or comparison.samples.candidate
            ):
                left_out.append({"metric": name, "reason": f"no stable figure: {_why(comparison)}"})
            continue
        add(name, ">", value * margin, unit, f"stable {format_value(unit, value)} x{margin:.2f}")
    for name in ("json_validity", "schema_validity", "tool_call_accuracy", "language_match"):
        comparison = overall.get(name)
        margin = getattr(margins, name)
        if comparison is not None and comparison.stable is not None and margin is not None:
            add(
                name,
                "<",
                comparison.stable - margin,
                "rate",
                f"stable {comparison.stable:.2%} - {margin * 100:.1f} pts",
            )
    return triggers, left_out


def _why(comparison: MetricComparison | None) -> str:
    """The judge's sentence about a comparison, for a trigger left out."""
    return "no comparison" if comparison is None else comparison.message


def _round_threshold(value: float, unit: str) -> float:
    if unit == "rate":
        return round(value, 4)
    if unit == "usd":
        return float(f"{value:.4g}")
    return round(value, 1)
