"""Quantiles of resampled latencies (p50, p95, time to first token): sorted or banded, per arm."""

from __future__ import annotations

import array
import bisect
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pytest_modelgate.judge.common import (
    _BAND_SIGMAS,
    _MIN_BANDED_VALUES,
    _QUANTILE_LEVELS,
    _Gather,
)
from pytest_modelgate.judge.resampling import _Block, _IntSums
from pytest_modelgate.judge.stats import (
    quantile,
)


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

    def on_block(self, block: _Block) -> NDArray[np.float64] | None:
        """:meth:`__call__` on every resample of ``block`` (one call per case only)."""
        stable, candidate = self._stable.flat_values, self._candidate.flat_values
        if stable is None or candidate is None:
            return None
        s_levels = _block_quantiles(stable, block.stable)
        c_levels = _block_quantiles(candidate, block.candidate)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s_levels > 0, c_levels / s_levels, math.nan)


def _block_quantiles(values: NDArray[np.float64], rows: NDArray[np.uint32]) -> NDArray[np.float64]:
    """Every level's quantile of each resample (a row of case indexes), as ``_sorted`` works
    it out: the same order statistics (a partition puts them where a sort would) and the same
    interpolation, term for term."""
    interpolations = _level_interpolations(rows.shape[1])
    ranks = sorted({rank for lower, upper, _ in interpolations for rank in (lower, upper)})
    ordered = np.partition(values[rows], ranks, axis=1)
    columns = [
        ordered[:, lower] + (ordered[:, upper] - ordered[:, lower]) * fraction
        for lower, upper, fraction in interpolations
    ]
    return np.stack(columns, axis=1)


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
        # For whole blocks of resamples: the flat values, unless one is nan (no place in an
        # order, so a sort of them is not a partition's) or a negative zero (it ties with +0.0,
        # and which of the two lands first would then decide a sign).
        self.flat_values: NDArray[np.float64] | None = None
        if self._flat is not None:
            values = np.array(self._flat, dtype=np.float64)
            if not (np.isnan(values).any() or (np.signbit(values) & (values == 0)).any()):
                self.flat_values = values
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


def _median(values: Sequence[float]) -> float:
    # One call per case (the usual shape): its value is its median (nan included).
    return values[0] if len(values) == 1 else quantile(values, 0.5)
