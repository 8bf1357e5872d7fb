"""Resampling: run-scoped draws in blocks, the paired cluster bootstrap and percentile intervals.

The draws are seeded from the metric, the scope and the case ids, so the same records give the
same intervals, byte for byte; a run's draws live in its ``_RunMemo``, never in the module."""

from __future__ import annotations

import array
import itertools
import math
import operator
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pytest_modelgate.judge.common import _MIN_BOOTSTRAP_CASES, _Gather, _Result, _Slice, _Statistic
from pytest_modelgate.judge.stats import (
    Interval,
    quantile,
)

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


@dataclass
class _RunMemo:
    """What one ``judge()`` call works out once and reuses; never kept on the judge itself."""

    # Quantile-ratio intervals per (slice, TTFT or latency, cases): p50 and p95 together.
    quantiles: dict[tuple[str, bool, int], dict[float, Interval]] = field(default_factory=dict)
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
