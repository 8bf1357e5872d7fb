"""Unit tests of the statistics: every function against scipy, statsmodels or numpy, computed live.

The module under test is standard library only; the reference implementations are test
dependencies. Where a comparison needs a tolerance, the comment next to it says why.
"""

from __future__ import annotations

import gc
import math
import random
from collections.abc import Callable, Sequence
from itertools import combinations, product

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.stats import binom
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from pytest_modelgate.judge.stats import (
    Interval,
    PairedTable,
    Statistic,
    clustered_standard_error,
    holm,
    mcnemar_exact,
    mcnemar_mid_p,
    mean_difference,
    minimum_detectable_effect,
    newcombe_paired_interval,
    normal_quantile,
    paired_bootstrap,
    quantile,
    quantile_ratio,
    ratio_of_sums,
    required_cases,
    rule_of_three,
    sample_variance,
    seed_for,
    wilcoxon_signed_rank,
    wilson_interval,
)

# --- Interval --------------------------------------------------------------------------------


def test_interval_contains_its_bounds_and_nothing_outside() -> None:
    interval = Interval(-0.5, 0.25)
    assert interval.contains(-0.5)
    assert interval.contains(0.25)
    assert interval.contains(0.0)
    assert not interval.contains(-0.5000001)
    assert not interval.contains(0.2500001)
    assert not interval.contains(math.nan)
    assert interval.width == 0.75


def test_nan_interval_contains_nothing() -> None:
    interval = Interval(math.nan, math.nan)
    assert not interval.contains(0.0)
    assert math.isnan(interval.width)


def test_interval_rejects_low_above_high() -> None:
    with pytest.raises(ValueError, match="above high"):
        Interval(1.0, 0.0)


# --- normal_quantile -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p", [1e-12, 1e-6, 0.001, 0.025, 0.05, 0.2, 0.5, 0.8, 0.95, 0.975, 0.999, 1 - 1e-9]
)
def test_normal_quantile_matches_scipy(p: float) -> None:
    # Both are double-precision implementations (AS 241 and cephes ndtri): a few ulps apart.
    assert normal_quantile(p) == pytest.approx(scipy_stats.norm.ppf(p), rel=1e-13, abs=1e-15)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_normal_quantile_rejects_p_outside_the_open_unit_interval(p: float) -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        normal_quantile(p)


# --- wilson_interval -------------------------------------------------------------------------


def test_wilson_reference_example() -> None:
    interval = wilson_interval(45, 50)
    assert (round(interval.low, 3), round(interval.high, 3)) == (0.786, 0.957)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 37, 50, 100, 1000])
@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_matches_statsmodels(n: int, confidence: float) -> None:
    for successes in sorted({*range(min(n, 12) + 1), *range(max(0, n - 12), n + 1), n // 3}):
        low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
        interval = wilson_interval(successes, n, confidence=confidence)
        # statsmodels takes z from norm.isf, we from NormalDist.inv_cdf: last-ulp differences,
        # and its bounds at 0 and n are 0 and 1 only up to rounding.
        assert interval.low == pytest.approx(low, abs=1e-12)
        assert interval.high == pytest.approx(high, abs=1e-12)


def test_wilson_is_exact_at_the_edges_and_total_without_data() -> None:
    assert wilson_interval(0, 20).low == 0.0
    assert wilson_interval(20, 20).high == 1.0
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)


@pytest.mark.parametrize(
    ("successes", "n", "confidence", "message"),
    [
        (-1, 5, 0.95, "successes"),
        (6, 5, 0.95, "cannot exceed"),
        (0, -1, 0.95, "n must"),
        (1, 5, 1.0, "confidence"),
        (1, 5, 0.0, "confidence"),
    ],
)
def test_wilson_rejects_impossible_arguments(
    successes: int, n: int, confidence: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        wilson_interval(successes, n, confidence=confidence)


# --- PairedTable -----------------------------------------------------------------------------


def test_paired_table_counts_pairs_in_stable_candidate_order() -> None:
    pairs = [(True, True)] * 5 + [(True, False)] * 3 + [(False, True)] * 1 + [(False, False)] * 2
    table = PairedTable.from_pairs(pairs)
    assert table == PairedTable(a=5, b=3, c=1, d=2)
    assert table.n == 11
    assert table.stable_rate == 8 / 11
    assert table.candidate_rate == 6 / 11
    assert table.delta == (1 - 3) / 11
    assert table.delta == pytest.approx(table.candidate_rate - table.stable_rate, abs=1e-15)


def test_empty_paired_table_has_zero_rates() -> None:
    table = PairedTable.from_pairs([])
    assert (table.n, table.stable_rate, table.candidate_rate, table.delta) == (0, 0.0, 0.0, 0.0)


def test_paired_table_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="c must be a non-negative count"):
        PairedTable(a=1, b=1, c=-1, d=1)


# --- mcnemar_exact ---------------------------------------------------------------------------


def _statsmodels_mcnemar(b: int, c: int) -> float:
    return float(mcnemar([[7, b], [c, 3]], exact=True).pvalue)


def test_mcnemar_matches_statsmodels_on_a_grid() -> None:
    for b, c in product(range(31), repeat=2):
        # scipy's binom.cdf evaluates an incomplete beta function in floating point; we sum
        # binomial coefficients exactly, so the two agree to rounding, not to the bit.
        assert mcnemar_exact(b, c) == pytest.approx(_statsmodels_mcnemar(b, c), rel=1e-12), (b, c)


@pytest.mark.parametrize(
    ("b", "c"),
    [(100, 150), (1000, 1100), (5000, 5200), (20000, 20300), (0, 1000), (3, 2000), (400, 400)],
)
def test_mcnemar_matches_statsmodels_for_many_discordant_pairs(b: int, c: int) -> None:
    # Tiny tails (down to 1e-300) lose a little relative precision in scipy's floating-point
    # evaluation; ours is exact up to the final rounding.
    assert mcnemar_exact(b, c) == pytest.approx(_statsmodels_mcnemar(b, c), rel=1e-9, abs=1e-300)


def test_mcnemar_is_the_doubled_binomial_tail() -> None:
    # b=12, c=2: 2 * (C(14,0) + C(14,1) + C(14,2)) / 2^14, exactly representable.
    assert mcnemar_exact(12, 2) == 2 * (1 + 14 + 91) / 2**14
    assert mcnemar_exact(2, 12) == mcnemar_exact(12, 2)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 5) == 2 / 32


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="b must be"):
        mcnemar_exact(-1, 3)
    with pytest.raises(ValueError, match="c must be"):
        mcnemar_mid_p(3, -1)


# --- mcnemar_mid_p ---------------------------------------------------------------------------


def _scipy_mid_p(b: int, c: int) -> float:
    """2 * (P[X <= k] - P[X = k] / 2), X ~ Binomial(b + c, 1/2), k = min(b, c) (Fagerland 2013)."""
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    return min(1.0, float(2 * (binom.cdf(k, n, 0.5) - 0.5 * binom.pmf(k, n, 0.5))))


def test_mcnemar_mid_p_matches_scipy_on_a_grid() -> None:
    for b, c in product(range(31), repeat=2):
        assert mcnemar_mid_p(b, c) == pytest.approx(_scipy_mid_p(b, c), rel=1e-12), (b, c)


@pytest.mark.parametrize(("b", "c"), [(100, 150), (1000, 1100), (5000, 5200), (0, 1000)])
def test_mcnemar_mid_p_matches_scipy_for_many_discordant_pairs(b: int, c: int) -> None:
    assert mcnemar_mid_p(b, c) == pytest.approx(_scipy_mid_p(b, c), rel=1e-9, abs=1e-300)


def test_mcnemar_mid_p_is_the_exact_p_less_the_observed_point() -> None:
    # b=12, c=2: 2 * (1 + 14 + 91 - 91 / 2) / 2^14, exactly representable.
    assert mcnemar_mid_p(12, 2) == (2 * (1 + 14 + 91) - 91) / 2**14
    assert mcnemar_mid_p(2, 12) == mcnemar_mid_p(12, 2)
    # One discordant pair: the exact test says 1, the mid-p test 1/2.
    assert mcnemar_exact(0, 1) == 1.0
    assert mcnemar_mid_p(0, 1) == 0.5
    assert mcnemar_mid_p(0, 0) == 1.0
    assert mcnemar_mid_p(7, 7) == 1.0
    for b, c in product(range(25), repeat=2):
        assert mcnemar_mid_p(b, c) <= mcnemar_exact(b, c)


def test_mcnemar_mid_p_keeps_its_size_near_alpha_where_the_exact_test_wastes_it() -> None:
    # The chance of p <= 0.05 when the two models are equally good, computed exactly for n pairs
    # each discordant with probability pi. Given m discordant pairs the mid-p test may exceed 5%
    # (m = 5: 6.25%), but over the number of discordant pairs it stays at 5% within rounding
    # (Fagerland, Lydersen and Laake 2013), while the exact test often holds half of that.
    def size(test: Callable[[int, int], float], m: int) -> float:
        return sum(math.comb(m, b) for b in range(m + 1) if test(b, m - b) <= 0.05) / 2**m

    sizes = {m: (size(mcnemar_mid_p, m), size(mcnemar_exact, m)) for m in range(201)}
    assert sizes[5][0] == 2 / 32
    for n in range(10, 201, 10):
        for pi in (0.02, 0.05, 0.1, 0.2, 0.4, 0.8):
            weights = binom.pmf(range(n + 1), n, pi)
            mid = sum(weights[m] * sizes[m][0] for m in range(n + 1))
            exact = sum(weights[m] * sizes[m][1] for m in range(n + 1))
            assert exact <= mid <= 0.051, (n, pi, mid)
    # Where the exact test wastes power: 40 pairs, 20% discordant.
    weights = binom.pmf(range(41), 40, 0.2)
    exact_size = sum(weights[m] * sizes[m][1] for m in range(41))
    assert exact_size < 0.03


# --- newcombe_paired_interval ----------------------------------------------------------------


def _reference_newcombe(
    a: int, b: int, c: int, d: int, confidence: float = 0.95, *, paired: bool = True
) -> tuple[float, float]:
    """Newcombe (1998) method 10 written out from the paper, for theta = p1 - p2.

    Arm 1 is the candidate (passes a + c), arm 2 the stable one (passes a + b). With
    ``paired=False`` the correlation term is dropped: the unpaired method 10 of Newcombe's
    companion paper on independent proportions (Statistics in Medicine 17:873-890).
    """
    n = a + b + c + d
    z = float(scipy_stats.norm.ppf(1 - (1 - confidence) / 2))

    def wilson(x: int) -> tuple[float, float]:
        # The paper's closed form: (2np + z^2 -+ z sqrt(z^2 + 4np(1-p))) / (2(n + z^2)).
        p = x / n
        root = z * math.sqrt(z * z + 4 * n * p * (1 - p))
        return (
            (2 * n * p + z * z - root) / (2 * (n + z * z)),
            (2 * n * p + z * z + root) / (2 * (n + z * z)),
        )

    p1, p2 = (a + c) / n, (a + b) / n
    l1, u1 = wilson(a + c)
    l2, u2 = wilson(a + b)
    e, f, g, h = a, c, b, d  # the paper's cells: e both, f arm-1-only, g arm-2-only, h neither
    margins = (e + f) * (g + h) * (e + g) * (f + h)
    cross = e * h - f * g
    if not paired or margins == 0:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(margins)
    elif cross >= 0:
        phi = 0.0
    else:
        phi = cross / math.sqrt(margins)
    theta = (f - g) / n
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    epsilon = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, theta - delta), min(1.0, theta + epsilon)


def _small_tables() -> list[PairedTable]:
    tables = [
        PairedTable(a, b, c, d)
        for a, b, c, d in product(range(7), repeat=4)
        if 0 < a + b + c + d <= 12
    ]
    rng = random.Random(20240611)
    tables += [PairedTable(*(rng.randrange(0, 400) for _ in range(4))) for _ in range(200)]
    return tables


def test_newcombe_matches_the_formula_of_the_paper() -> None:
    for table in _small_tables():
        for confidence in (0.9, 0.95):
            low, high = _reference_newcombe(
                table.a, table.b, table.c, table.d, confidence=confidence
            )
            interval = newcombe_paired_interval(table, confidence=confidence)
            # Same formula, different algebra for the Wilson bounds and z from a different
            # inverse CDF: agreement to rounding.
            assert interval.low == pytest.approx(low, abs=1e-12), table
            assert interval.high == pytest.approx(high, abs=1e-12), table


# Newcombe (1998) method 10, 95% limits for theta = (f - g) / n with cells (e, f, g, h): e both
# positive, f only the first, g only the second, h neither. Published to 4 decimals. Provenance: a
# transcription of the paper's examples found in a public test suite; our formula reproduces each
# of these rows to 4 decimals independently. One more row of that transcription, (1, 97, 1, 1) ->
# 0.8736 to 0.9850, is left out: the formula gives 0.87367, one unit off in the 4th decimal, and
# the paper itself could not be checked.
NEWCOMBE_PUBLISHED = [
    (36, 12, 2, 0, 0.0569, 0.3404),
    (20, 12, 2, 16, 0.0562, 0.3292),
    (18, 12, 2, 18, 0.0562, 0.3290),
    (36, 14, 0, 0, 0.1528, 0.4167),
    (35, 14, 0, 1, 0.1461, 0.4175),
    (18, 14, 0, 18, 0.1441, 0.3963),
    (2, 97, 1, 0, 0.8721, 0.9854),
    (0, 29, 1, 0, 0.6666, 0.9882),
    (2, 98, 0, 0, 0.9178, 0.9945),
    (1, 98, 0, 1, 0.9171, 0.9916),
    (0, 30, 0, 0, 0.8395, 1.0),
    (54, 0, 0, 0, -0.0664, 0.0664),
    (53, 0, 0, 1, -0.0729, 0.0729),
    (30, 0, 0, 24, -0.0358, 0.0358),
    (29, 0, 0, 25, -0.0354, 0.0354),
    (28, 0, 0, 26, -0.0352, 0.0352),
    (27, 0, 0, 27, -0.0351, 0.0351),
]


@pytest.mark.parametrize(("e", "f", "g", "h", "low", "high"), NEWCOMBE_PUBLISHED)
def test_newcombe_reproduces_published_limits(
    e: int, f: int, g: int, h: int, low: float, high: float
) -> None:
    # The paper's first arm is our candidate: its only-positive cell f is our c.
    interval = newcombe_paired_interval(PairedTable(a=e, b=g, c=f, d=h))
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_newcombe_reproduces_the_contingency_tables_textbook_example() -> None:
    # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables", chapter 8
    # (Cavo et al. 2012: rows before, columns after consolidation therapy, [[59, 6], [16, 80]]):
    # Newcombe square-and-add -0.0621 (-0.1186 to -0.0046) for before minus after. Here the
    # "after" column is the candidate, so the signs flip.
    table = PairedTable(a=59, b=6, c=16, d=80)
    interval = newcombe_paired_interval(table)
    assert round(table.delta, 4) == 0.0621
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.0046, 0.1186)


def test_newcombe_interval_properties() -> None:
    narrower = 0
    for table in _small_tables():
        interval = newcombe_paired_interval(table)
        assert interval.contains(table.delta), table
        assert -1.0 <= interval.low <= interval.high <= 1.0, table
        swapped = newcombe_paired_interval(PairedTable(table.a, table.c, table.b, table.d))
        assert swapped.low == pytest.approx(-interval.high, abs=1e-15), table
        assert swapped.high == pytest.approx(-interval.low, abs=1e-15), table
        margins = (table.a + table.b) * (table.c + table.d) * (table.a + table.c)
        margins *= table.b + table.d
        if margins > 0 and table.a * table.d - table.b * table.c > table.n / 2:  # phi > 0
            unpaired_low, unpaired_high = _reference_newcombe(
                table.a, table.b, table.c, table.d, paired=False
            )
            assert interval.width < unpaired_high - unpaired_low, table
            narrower += 1
    assert narrower > 100  # the comparison above really ran


def test_newcombe_degenerate_tables() -> None:
    assert newcombe_paired_interval(PairedTable(0, 0, 0, 0)) == Interval(-1.0, 1.0)
    # Every case passes on both arms: a margin is 0, phi is taken as 0, the interval is
    # symmetric around 0 with half-width 1 - (Wilson lower bound of n/n).
    interval = newcombe_paired_interval(PairedTable(40, 0, 0, 0))
    assert interval.low == pytest.approx(-(1 - wilson_interval(40, 40).low), abs=1e-15)
    assert interval.high == pytest.approx(-interval.low, abs=1e-15)
    # The candidate passes everything the stable model fails and vice versa: theta = 1.
    assert newcombe_paired_interval(PairedTable(0, 0, 30, 0)).high == 1.0


# --- quantile --------------------------------------------------------------------------------


QUANTILE_LEVELS = [0.0, 0.01, 0.1, 0.25, 1 / 3, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 10, 99, 100, 1001])
def test_quantile_equals_numpy_exactly(size: int) -> None:
    rng = random.Random(size)
    values = [rng.lognormvariate(0, 1) * rng.choice([-1, 1]) for _ in range(size)]
    values += values[: size // 4]  # duplicates
    levels = [*QUANTILE_LEVELS, *(rng.random() for _ in range(20))]
    for q in levels:
        # Same order statistics and the same interpolation rounding as numpy's "linear" method.
        assert quantile(values, q) == float(np.quantile(values, q)), (size, q)


def test_quantile_small_samples_by_hand() -> None:
    assert quantile([4.0], 0.95) == 4.0
    assert quantile([10.0, 0.0], 0.5) == 5.0
    assert quantile([10.0, 0.0], 0.95) == 9.5
    assert quantile([3.0, 1.0, 2.0], 0.25) == 1.5


def test_quantile_propagates_nan_like_numpy() -> None:
    assert math.isnan(quantile([1.0, math.nan, 3.0], 0.5))
    assert math.isnan(float(np.quantile([1.0, math.nan, 3.0], 0.5)))


def test_quantile_rejects_empty_input_and_bad_levels() -> None:
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)
    with pytest.raises(ValueError, match="q must be"):
        quantile([1.0], 1.5)


# --- wilcoxon_signed_rank --------------------------------------------------------------------


def _scipy_wilcoxon(differences: Sequence[float]) -> float:
    nonzero = [value for value in differences if value != 0]
    no_ties = len({abs(value) for value in nonzero}) == len(nonzero)
    method = "exact" if len(nonzero) <= 50 and no_ties else "asymptotic"
    result = scipy_stats.wilcoxon(differences, zero_method="wilcox", correction=True, method=method)
    return float(result.pvalue)


def _assert_wilcoxon_matches(differences: Sequence[float]) -> None:
    # scipy sums a floating-point null distribution (exact path) or uses ndtr instead of erfc
    # (normal path); we count subsets exactly. Agreement to rounding.
    expected = _scipy_wilcoxon(differences)
    assert wilcoxon_signed_rank(differences) == pytest.approx(expected, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 20, 30, 49, 50])
def test_wilcoxon_exact_path_matches_scipy(size: int) -> None:
    rng = random.Random(1000 + size)
    for shift in (0.0, 0.3, 1.0):
        _assert_wilcoxon_matches([rng.gauss(shift, 1) for _ in range(size)])


@pytest.mark.parametrize("size", [51, 80, 300])
def test_wilcoxon_normal_path_without_ties_matches_scipy(size: int) -> None:
    rng = random.Random(2000 + size)
    for shift in (0.0, 0.2, 0.5):
        _assert_wilcoxon_matches([rng.gauss(shift, 1) for _ in range(size)])


@pytest.mark.parametrize("size", [6, 20, 50, 120])
def test_wilcoxon_with_ties_uses_the_corrected_normal_approximation(size: int) -> None:
    rng = random.Random(3000 + size)
    for shift in (0.0, 0.5, 2.0):
        # Rounded values: many tied magnitudes, and zeros, which are dropped.
        _assert_wilcoxon_matches([round(rng.gauss(shift, 2)) for _ in range(size)])


def test_wilcoxon_drops_zeros_before_choosing_the_exact_path() -> None:
    rng = random.Random(4000)
    differences = [rng.gauss(0.4, 1) for _ in range(45)] + [0.0] * 10  # 45 non-zero, exact
    _assert_wilcoxon_matches(differences)
    shorter = [value for value in differences if value != 0]
    assert wilcoxon_signed_rank(differences) == wilcoxon_signed_rank(shorter)


def test_wilcoxon_exact_small_cases_by_hand() -> None:
    # Three positive differences: R- = 0, only the empty subset sums to 0: p = 2 / 2^3.
    assert wilcoxon_signed_rank([0.1, 0.2, 0.3]) == 0.25
    assert wilcoxon_signed_rank([-0.1, -0.2, -0.3]) == 0.25
    assert wilcoxon_signed_rank([0.5]) == 1.0


def test_wilcoxon_without_non_zero_differences_is_one() -> None:
    assert wilcoxon_signed_rank([0.0, 0.0, 0.0]) == 1.0
    assert wilcoxon_signed_rank([]) == 1.0


def test_wilcoxon_rejects_nan() -> None:
    with pytest.raises(ValueError, match="nan"):
        wilcoxon_signed_rank([0.1, math.nan])


# --- holm ------------------------------------------------------------------------------------


def test_holm_equals_statsmodels(monkeypatch: pytest.MonkeyPatch) -> None:
    # statsmodels' Holm branch runs a full gc.collect() on every call: about 80 ms each in a
    # test process full of objects, with no effect on the result.
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)
    rng = random.Random(5)
    cases: list[list[float]] = [
        [0.01],
        [0.01, 0.04],
        [0.04, 0.01, 0.03, 0.2],
        [0.0, 1.0, 0.5, 0.5, 0.02],
        [0.03, 0.03, 0.03],
    ]
    cases += [[rng.random() ** 3 for _ in range(size)] for size in range(1, 30)]
    cases += [[round(rng.random(), 1) for _ in range(12)] for _ in range(10)]  # ties
    for p_values in cases:
        expected = [float(x) for x in multipletests(p_values, method="holm")[1]]
        # Same products p * (m - rank) and running maximum: bit-identical.
        assert holm(p_values) == expected, p_values


def test_holm_edge_cases() -> None:
    assert holm([]) == []
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.5, 1.2])
    with pytest.raises(ValueError, match="2 weights for 3 p-values"):
        holm([0.1, 0.2, 0.3], [1.0, 1.0])
    with pytest.raises(ValueError, match="positive and finite"):
        holm([0.1, 0.2], [1.0, 0.0])


def _closed_weighted_bonferroni(p_values: list[float], weights: list[float]) -> list[float]:
    """Adjusted p-values by closed testing, every intersection by a weighted Bonferroni test.

    H_J (all of J true) is rejected at alpha when some j in J has p_j <= alpha * w_j / W_J; H_i
    is rejected when every H_J with i in J is. So the adjusted p of H_i is the largest, over the
    J holding i, of min_{j in J} p_j * W_J / w_j: the definition weighted Holm shortcuts.
    """
    m = len(p_values)
    adjusted = []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for subset in combinations(range(m), size):
                if i not in subset:
                    continue
                total = sum(weights[j] for j in subset)
                worst = max(worst, min(p_values[j] * total / weights[j] for j in subset))
        adjusted.append(min(1.0, worst))
    return adjusted


def test_weighted_holm_is_closed_testing_with_weighted_bonferroni() -> None:
    rng = random.Random(11)
    for _ in range(300):
        m = rng.randint(1, 7)
        p_values = [rng.random() ** 4 for _ in range(m)]
        weights = [rng.choice([0.5, 1.0, 1.0, 2.0, 3.0]) * rng.random() + 0.01 for _ in range(m)]
        expected = _closed_weighted_bonferroni(p_values, weights)
        assert holm(p_values, weights) == pytest.approx(expected, rel=1e-12), (p_values, weights)


def test_weighted_holm_with_equal_weights_is_holm() -> None:
    rng = random.Random(12)
    for size in range(1, 20):
        p_values = [rng.random() ** 3 for _ in range(size)]
        assert holm(p_values, [1.0] * size) == pytest.approx(holm(p_values), rel=1e-12)


def test_weighted_holm_by_hand() -> None:
    # Overall (weight 1/2) and two slices (1/4 each): p / w = 0.02, 0.04, 0.16.
    # Step 1: 0.01 * 1 / 0.5 = 0.02; step 2: 0.01 * 0.5 / 0.25 = 0.02 -> max 0.02;
    # step 3: 0.04 * 0.25 / 0.25 = 0.04.
    assert holm([0.01, 0.01, 0.04], [0.5, 0.25, 0.25]) == pytest.approx([0.02, 0.02, 0.04])


# --- seed_for --------------------------------------------------------------------------------


def test_seed_for_is_a_stable_64_bit_value() -> None:
    seed = seed_for("latency_p95", "checkout")
    assert seed == seed_for("latency_p95", "checkout")
    assert 0 <= seed < 2**64
    # Pinned: a change here changes every recorded verdict's bootstrap.
    assert seed_for("modelgate") == 9389755876071311222


def test_seed_for_joins_parts_unambiguously() -> None:
    seeds = {
        seed_for(),
        seed_for(""),
        seed_for("", ""),
        seed_for("ab", "c"),
        seed_for("a", "bc"),
        seed_for("abc"),
        seed_for("c", "ab"),
    }
    assert len(seeds) == 7


# --- paired_bootstrap ------------------------------------------------------------------------


def _paired_sample(n: int, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    stable = [rng.gauss(10, 3) for _ in range(n)]
    # Strongly paired: the case-to-case spread (3) dwarfs the per-case change (0.3).
    candidate = [value + rng.gauss(0.5, 0.3) for value in stable]
    return stable, candidate


def test_bootstrap_is_deterministic_per_seed() -> None:
    stable, candidate = _paired_sample(60, 1)
    first = paired_bootstrap(stable, candidate, mean_difference, seed=7, resamples=500)
    again = paired_bootstrap(stable, candidate, mean_difference, seed=7, resamples=500)
    other = paired_bootstrap(stable, candidate, mean_difference, seed=8, resamples=500)
    assert first == again
    assert first != other


def test_bootstrap_resamples_cases_as_specified() -> None:
    # The algorithm is part of the contract: another process must reproduce an interval from
    # the seed alone. A direct, slow rendition of the specification:
    stable, candidate = _paired_sample(25, 2)
    rng = random.Random(99)
    values = []
    for _ in range(300):
        indexes = rng.choices(range(25), k=25)
        values.append(ratio_of_sums([stable[i] for i in indexes], [candidate[i] for i in indexes]))
    expected = Interval(quantile(values, 0.05), quantile(values, 0.95))
    actual = paired_bootstrap(
        stable, candidate, ratio_of_sums, seed=99, resamples=300, confidence=0.9
    )
    assert actual == expected


def test_bootstrap_agrees_with_scipy_paired_percentile_bootstrap() -> None:
    stable, candidate = _paired_sample(80, 3)
    ours = paired_bootstrap(stable, candidate, mean_difference, seed=11, resamples=5000)

    def statistic(s: np.ndarray, c: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(np.mean(c, axis=axis) - np.mean(s, axis=axis))

    result = scipy_stats.bootstrap(
        (np.array(stable), np.array(candidate)),
        statistic,
        paired=True,
        vectorized=True,
        method="percentile",
        n_resamples=5000,
        rng=np.random.default_rng(11),
    )
    theirs = result.confidence_interval
    # Different random streams: the endpoints differ by Monte Carlo error, about 4% of the
    # width (one standard error) at 5000 resamples. An unpaired resampling would be about ten
    # times wider and fail by far.
    tolerance = 0.15 * ours.width
    assert ours.low == pytest.approx(theirs.low, abs=tolerance)
    assert ours.high == pytest.approx(theirs.high, abs=tolerance)
    assert ours.width == pytest.approx(theirs.high - theirs.low, rel=0.15)


def test_bootstrap_drops_undefined_resamples() -> None:
    # One case in five carries all the stable cost: about a third of the resamples miss it and
    # have sum(stable) == 0. They are dropped, not fatal.
    stable = [0.0, 0.0, 0.0, 0.0, 2.0]
    candidate = [1.0, 1.0, 1.0, 1.0, 1.0]
    interval = paired_bootstrap(stable, candidate, ratio_of_sums, seed=5, resamples=400)
    assert math.isfinite(interval.low)
    assert math.isfinite(interval.high)
    # A defined resample hits the costly case h = 1..5 times: ratio 5 / (2h), in [0.5, 2.5].
    assert 0.5 <= interval.low < interval.high <= 2.5


def _undefined_first(calls: int) -> Statistic:
    """A statistic that is nan on its first ``calls`` calls and then returns its call number."""
    seen = [0]

    def statistic(stable: Sequence[float], candidate: Sequence[float]) -> float:
        seen[0] += 1
        return math.nan if seen[0] <= calls else float(seen[0])

    return statistic


def test_bootstrap_gives_up_when_more_than_half_are_undefined() -> None:
    stable, candidate = _paired_sample(5, 4)
    more_than_half = paired_bootstrap(stable, candidate, _undefined_first(6), seed=1, resamples=10)
    assert math.isnan(more_than_half.low)
    assert math.isnan(more_than_half.high)
    exactly_half = paired_bootstrap(stable, candidate, _undefined_first(5), seed=1, resamples=10)
    # The values 6..10 remain: their type-7 2.5% and 97.5% quantiles.
    assert exactly_half.low == pytest.approx(6.1, abs=1e-12)
    assert exactly_half.high == pytest.approx(9.9, abs=1e-12)


def test_bootstrap_treats_division_by_zero_as_undefined() -> None:
    stable, candidate = _paired_sample(10, 6)
    interval = paired_bootstrap(stable, candidate, lambda s, c: 1 / 0, seed=1, resamples=20)
    assert math.isnan(interval.low)


def test_bootstrap_edge_sizes_and_arguments() -> None:
    assert paired_bootstrap([2.0], [3.0], mean_difference, seed=1, resamples=50) == Interval(
        1.0, 1.0
    )
    assert math.isnan(paired_bootstrap([], [], mean_difference, seed=1).low)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1.0, 2.0], [1.0], mean_difference, seed=1)
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap([1.0], [1.0], mean_difference, seed=1, resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1.0], [1.0], mean_difference, seed=1, confidence=1.0)


# --- the bootstrap statistics ----------------------------------------------------------------


def test_mean_difference_ratio_of_sums_and_quantile_ratio() -> None:
    stable = [1.0, 2.0, 3.0, 4.0]
    candidate = [2.0, 2.0, 5.0, 7.0]
    assert mean_difference(stable, candidate) == 1.5
    assert ratio_of_sums(stable, candidate) == 1.6
    assert quantile_ratio(0.5)(stable, candidate) == 3.5 / 2.5
    p95 = quantile_ratio(0.95)
    assert p95(stable, candidate) == pytest.approx(
        float(np.quantile(candidate, 0.95) / np.quantile(stable, 0.95)), rel=1e-15
    )


def test_bootstrap_statistics_are_nan_when_undefined() -> None:
    assert math.isnan(ratio_of_sums([0.0, 0.0], [1.0, 2.0]))
    assert math.isnan(quantile_ratio(0.5)([0.0, 0.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(mean_difference([], []))
    with pytest.raises(ValueError, match="q must be"):
        quantile_ratio(1.01)


# --- power and planning ----------------------------------------------------------------------

TEN_PERCENT_DISCORDANT = math.sqrt(0.10)


def _z_sum(alpha: float, power: float) -> float:
    return float(scipy_stats.norm.ppf(1 - alpha) + scipy_stats.norm.ppf(power))


def test_required_cases_reference_example() -> None:
    # "10% discordant pairs, a 5-point margin, one-sided alpha 0.05, 80% power: about 247 cases".
    # The formula gives 247.3; rounded up, 248 cases.
    exact = _z_sum(0.05, 0.8) ** 2 * 0.10 / 0.05**2
    assert exact == pytest.approx(247.3, abs=0.05)
    assert required_cases(TEN_PERCENT_DISCORDANT, 0.05) == 248


@pytest.mark.parametrize("sigma_d", [0.05, 0.2, 0.5, 1.0, 3.0])
@pytest.mark.parametrize("margin", [0.01, 0.02, 0.1, 0.5])
@pytest.mark.parametrize(("alpha", "power"), [(0.05, 0.8), (0.025, 0.9), (0.1, 0.5)])
def test_required_cases_by_hand(sigma_d: float, margin: float, alpha: float, power: float) -> None:
    expected = max(1, math.ceil((_z_sum(alpha, power) * sigma_d / margin) ** 2))
    assert required_cases(sigma_d, margin, alpha=alpha, power=power) == expected


def test_minimum_detectable_effect_reference_example() -> None:
    # "With 50 cases the smallest detectable drop is about 11 points."
    effect = minimum_detectable_effect(TEN_PERCENT_DISCORDANT, 50)
    assert round(effect, 2) == 0.11
    assert effect == pytest.approx(_z_sum(0.05, 0.8) * TEN_PERCENT_DISCORDANT / math.sqrt(50))


@pytest.mark.parametrize(("sigma_d", "n"), [(0.1, 10), (0.3, 100), (1.0, 1000), (2.5, 7)])
def test_minimum_detectable_effect_inverts_required_cases(sigma_d: float, n: int) -> None:
    effect = minimum_detectable_effect(sigma_d, n, alpha=0.025, power=0.9)
    assert effect == pytest.approx(_z_sum(0.025, 0.9) * sigma_d / math.sqrt(n), rel=1e-13)
    assert required_cases(sigma_d, effect * 1.000001, alpha=0.025, power=0.9) == n


def test_planning_edge_cases() -> None:
    assert minimum_detectable_effect(0.3, 0) == math.inf
    assert required_cases(0.0, 0.05) == 1
    with pytest.raises(ValueError, match="margin"):
        required_cases(0.3, 0.0)
    with pytest.raises(ValueError, match="alpha"):
        required_cases(0.3, 0.05, alpha=0.0)
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(0.3, 10, power=1.0)


# --- clustered_standard_error ----------------------------------------------------------------


def test_clustered_standard_error_matches_a_direct_computation() -> None:
    rng = random.Random(12)
    cases = [[rng.gauss(i % 5, 1) for _ in range(rng.randint(1, 6))] for i in range(40)]
    means = np.array([np.mean(case) for case in cases])
    within = np.array([np.var(case, ddof=1) if len(case) > 1 else 0.0 for case in cases])
    k = np.mean([len(case) for case in cases])
    expected = math.sqrt((np.var(means, ddof=1) + np.mean(within) / k) / len(cases))
    # numpy sums pairwise, we with fsum: agreement to rounding.
    assert clustered_standard_error(cases) == pytest.approx(expected, rel=1e-12)


def test_clustered_standard_error_with_one_sample_per_case_is_the_plain_standard_error() -> None:
    values = [0.3, 1.2, -0.4, 2.2, 0.9, 1.1]
    expected = float(scipy_stats.sem(values))
    assert clustered_standard_error([[value] for value in values]) == pytest.approx(
        expected, rel=1e-12
    )


def test_clustered_standard_error_adds_within_case_noise() -> None:
    # Identical case means, all spread within cases: Var(means) = 0, E[within] = 0.5, K = 2.
    cases = [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]
    assert clustered_standard_error(cases) == pytest.approx(math.sqrt((0.0 + 0.5 / 2) / 3))


def test_clustered_standard_error_edge_cases() -> None:
    assert math.isnan(clustered_standard_error([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="case 1 has no scores"):
        clustered_standard_error([[1.0], []])


# --- rule_of_three ---------------------------------------------------------------------------


def test_rule_of_three() -> None:
    assert rule_of_three(50) == 0.06
    assert rule_of_three(0) == 1.0
    assert rule_of_three(2) == 1.0
    # It approximates the exact one-sided 95% bound 1 - 0.05^(1/n) from above.
    for n in (100, 1000, 10000):
        exact = 1 - 0.05 ** (1 / n)
        assert exact < rule_of_three(n) < exact * 1.02


def test_sample_variance_matches_the_standard_library() -> None:
    import statistics

    values = [0.1, 0.5, 0.25, 0.9, 0.3]
    assert sample_variance(values) == pytest.approx(statistics.variance(values), rel=1e-12)
    assert sample_variance([2.0, 2.0]) == 0.0
    assert math.isnan(sample_variance([1.0]))
    assert math.isnan(sample_variance([]))
