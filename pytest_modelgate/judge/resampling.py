"""Resampling: run-scoped draws in blocks, the paired cluster bootstrap and percentile intervals.

The draws are seeded from the metric, the scope and the case ids, so the same records give the
same intervals, byte for byte; a run's draws live in its ``_RunMemo``, never in the module.

A statistic is computed on each resample in one of two ways, with the same result to the last
bit: as a Python callable of the resample's gathers (any statistic), or, when it is a
:class:`_Vectorised` one, on a block of resamples at once from their index matrix (numpy). The
vectorised form exists only where it can repeat the Python arithmetic operation for operation
(integer sums, sorted order statistics, left-to-right float sums); where it cannot for some
input, it says so and the Python form runs.
"""

from __future__ import annotations

import array
import itertools
import math
import operator
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from numpy.typing import NDArray

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
    count = resamples * (1 if paired else 2)
    if isinstance(statistic, _Vectorised):
        blocks = memo.draw_blocks(seed, n, count, paired=paired)
        computed = [statistic.on_block(block) for block in blocks]
        if all(values is not None for values in computed):
            return np.concatenate(computed).tolist()  # type: ignore[arg-type,no-any-return]
    draws = memo.draws(seed, n, count)
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


def _draw_matrix(seed: int, n: int, count: int) -> NDArray[np.uint32]:
    """:func:`_draws` as a ``count`` x ``n`` matrix: the same generator, bytes and indexes."""
    generator = random.Random(seed)
    per_block = max(1, _DRAW_BLOCK_BYTES // (4 * n))
    blocks = []
    for first in range(0, count, per_block):
        block = min(per_block, count - first)
        words = np.frombuffer(generator.randbytes(4 * n * block), dtype="<u4")
        blocks.append((words % np.uint32(n)).astype(np.uint32, copy=False).reshape(block, n))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


# Random bytes asked for at once (whole resamples, at least one): far below a C int's 2**31.
_DRAW_BLOCK_BYTES = 1 << 24


# Resampled values a vectorised statistic holds at once (per arm): its blocks of resamples are
# this many cases x resamples, whatever the resamples setting, so memory stays bounded.
_BLOCK_VALUES = 1 << 20


@dataclass
class _Block:
    """A block of consecutive resamples as index matrices (one row per resample), per arm.

    Paired, both arms' rows are the same array. ``weights`` are how many times each case is
    drawn in each row (rows x cases), worked out once per block for integer sums.
    """

    stable: NDArray[np.uint32]
    candidate: NDArray[np.uint32]
    n: int
    _weights: dict[bool, NDArray[np.float64]] = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        return self.stable is self.candidate

    def weights(self, candidate: bool) -> NDArray[np.float64]:
        rows = self.candidate if candidate else self.stable
        key = candidate and not self.paired
        found = self._weights.get(key)
        if found is None:
            offsets = (np.arange(len(rows), dtype=np.int64) * self.n)[:, None]
            counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * self.n)
            found = self._weights[key] = counts.reshape(len(rows), self.n).astype(np.float64)
        return found


@runtime_checkable
class _Vectorised(Protocol):
    """A statistic that also computes itself on a block of resamples at once."""

    def __call__(self, s_gather: _Gather, c_gather: _Gather) -> Any: ...

    def on_block(self, block: _Block) -> NDArray[np.float64] | None:
        """One row per resample (a value, or one per statistic); None: use the Python form."""


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
        # Every sum a resample can reach is an integer a double holds exactly: then a matrix
        # product of draw counts and values is those sums exactly, in any order of additions.
        self._exact = largest < 2**53
        self._stable_columns = _column_matrix(stable)
        self._candidate_columns = _column_matrix(candidate)
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

    def on_block(self, block: _Block) -> NDArray[np.float64] | None:
        """:meth:`__call__` on every resample of ``block``: a row of sums each (as doubles, every
        one an exact integer); None when a sum could be too large for a double to hold."""
        if not self._exact:
            return None
        stable = block.weights(False) @ self._stable_columns
        candidate = block.weights(True) @ self._candidate_columns
        return np.hstack((stable, candidate))

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


def _column_matrix(columns: Sequence[Sequence[int]]) -> NDArray[np.float64]:
    """Integer columns of n cases as an n x columns matrix of doubles."""
    n = len(columns[0]) if columns else 0
    matrix: NDArray[np.float64] = np.array(columns, dtype=np.float64).reshape(len(columns), n).T
    return matrix


@dataclass(frozen=True)
class _RateChange:
    """Candidate minus stable pooled rate on a resample, from (events, trials) columns."""

    counts: _IntSums

    def __call__(self, s_gather: _Gather, c_gather: _Gather) -> float:
        s_events, s_trials, c_events, c_trials = self.counts(s_gather, c_gather)
        return _share(c_events, c_trials) - _share(s_events, s_trials)

    def on_block(self, block: _Block) -> NDArray[np.float64] | None:
        sums = self.counts.on_block(block)
        if sums is None:
            return None
        s_events, s_trials, c_events, c_trials = sums.T
        # Exact integers as doubles divide as Python's int / int rounds: the same quotient.
        return _shares(c_events, c_trials) - _shares(s_events, s_trials)


def _share(part: float, whole: int) -> float:
    return part / whole if whole else math.nan


def _shares(parts: NDArray[np.float64], wholes: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`_share` element by element."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(wholes != 0, parts / wholes, math.nan)


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

    # The same draws as blocks of index matrices (see _Block), for vectorised statistics.
    slice_blocks: dict[tuple[int, int, int], list[_Block]] = field(default_factory=dict)

    def draws(self, seed: int, n: int, count: int) -> tuple[tuple[int, ...], ...]:
        """:func:`_draws`, worked out once per slice."""
        key = (seed, n, count)
        found = self.slice_draws.get(key)
        if found is None:
            found = self.slice_draws[key] = _draws(seed, n, count)
        return found

    def draw_blocks(self, seed: int, n: int, count: int, *, paired: bool) -> list[_Block]:
        """:func:`_draw_matrix` in blocks of resamples, worked out once per slice. Unpaired,
        the first half of the draws is the stable arm's, the second the candidate's."""
        key = (seed, n, count)
        found = self.slice_blocks.get(key)
        if found is None:
            matrix = _draw_matrix(seed, n, count)
            resamples = count if paired else count // 2
            rows = max(1, _BLOCK_VALUES // n)
            found = []
            # Views into the matrix: 4 bytes per drawn index, half what tuples of them took.
            for first in range(0, resamples, rows):
                last = min(first + rows, resamples)
                stable = matrix[first:last]
                candidate = stable if paired else matrix[resamples + first : resamples + last]
                found.append(_Block(stable, candidate, n))
            self.slice_blocks[key] = found
        return found

    def end_slice(self) -> None:
        """Forget the slice's draws: the next slice has a seed of its own."""
        self.slice_draws.clear()
        self.slice_blocks.clear()


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
