"""Unit tests of the anytime-valid confidence sequences (judge/sequential.py)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from pytest_modelgate.judge.sequential import (
    StreamSums,
    difference_sequence,
    log_ratio_sequence,
    mean_sequence,
    mixture_margin,
    tuned_rho2,
)

ALPHA = 0.05


def test_the_margin_is_the_normal_mixture_boundary() -> None:
    t, rho2 = 400.0, 0.02
    expected = math.sqrt(
        2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / ALPHA)
    )
    assert mixture_margin(t, rho2, ALPHA) == pytest.approx(expected, rel=1e-15)


def test_the_sequence_is_wider_than_the_one_look_interval_it_replaces() -> None:
    """The price of looking at every request: at each t the sequence is wider than z/sqrt(t)."""
    rho2 = tuned_rho2(1000, ALPHA)
    z = statistics.NormalDist().inv_cdf(1 - ALPHA / 2)
    for t in (10, 100, 1000, 10_000, 100_000):
        assert mixture_margin(t, rho2, ALPHA) > z / math.sqrt(t)
    # ... but not by much near t_opt (about 1.6x for alpha 0.05).
    assert mixture_margin(1000, rho2, ALPHA) < 2 * z / math.sqrt(1000)


def test_tuning_puts_the_narrowest_point_near_t_opt() -> None:
    rho2 = tuned_rho2(5000, ALPHA)
    at = mixture_margin(5000, rho2, ALPHA)
    assert at < mixture_margin(5000, rho2 * 3, ALPHA)
    assert at < mixture_margin(5000, rho2 / 3, ALPHA)


@pytest.mark.parametrize(("alpha", "t_opt"), [(0.0, 10), (1.0, 10), (0.05, 0.5)])
def test_impossible_settings_are_refused(alpha: float, t_opt: float) -> None:
    with pytest.raises(ValueError, match=r"alpha|t_opt"):
        tuned_rho2(t_opt, alpha)


def test_sums_add_up_across_parts_and_give_the_sample_variance() -> None:
    rng = random.Random(7)
    values = [rng.gauss(3.0, 2.0) for _ in range(1000)]
    whole = StreamSums()
    for value in values:
        whole = whole.add(value)
    first, second = StreamSums(), StreamSums()
    for value in values[:300]:
        first = first.add(value)
    for value in values[300:]:
        second = second.add(value)
    merged = first.merged(second)
    assert merged.n == whole.n == 1000
    assert merged.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert merged.variance == pytest.approx(statistics.variance(values), rel=1e-9)
    assert math.isnan(StreamSums().mean)
    assert math.isnan(StreamSums().add(1.0).variance)


def test_a_stream_too_short_has_an_unbounded_interval() -> None:
    one = StreamSums().add(1.0)
    assert mean_sequence(one, alpha=ALPHA, t_opt=100).lower == -math.inf
    assert difference_sequence(one, one.add(0.0), alpha=ALPHA, t_opt=100).upper == math.inf


def _aa_run(seed: int, n: int, *, share: float, p: float, naive: bool) -> bool:
    """An A/A canary (both arms error at ``p``) checked after every request: a false alarm?"""
    rng = random.Random(seed)
    canary = stable = StreamSums()
    z = statistics.NormalDist().inv_cdf(1 - ALPHA)
    for _ in range(n):
        error = 1.0 if rng.random() < p else 0.0
        if rng.random() < share:
            canary = canary.add(error)
        else:
            stable = stable.add(error)
        if canary.n < 20 or stable.n < 20:
            continue
        if naive:  # a one-look one-sided z test, looked at every time
            spread = math.sqrt(canary.variance / canary.n + stable.variance / stable.n)
            if canary.mean - stable.mean > z * spread > 0:
                return True
        elif difference_sequence(canary, stable, alpha=ALPHA, t_opt=n).lower > 0:
            return True
    return False


def test_an_aa_canary_checked_after_every_request_rarely_alarms() -> None:
    """The false-alarm rate stays at or below alpha however often it is checked (simulation).

    The same runs with a one-look z test checked after every request alarm far more often: that
    is the multiple-looks problem the sequence solves, so the test can tell the two apart.
    """
    runs, n = 100, 3000
    sequence = sum(_aa_run(seed, n, share=0.2, p=0.1, naive=False) for seed in range(runs))
    naive = sum(_aa_run(seed, n, share=0.2, p=0.1, naive=True) for seed in range(runs))
    assert sequence / runs <= ALPHA
    assert naive / runs > 2 * ALPHA
    assert naive > sequence


def test_a_doubled_error_rate_is_caught() -> None:
    caught = 0
    for seed in range(40):
        rng = random.Random(1000 + seed)
        canary = stable = StreamSums()
        for _ in range(4000):
            if rng.random() < 0.2:
                canary = canary.add(1.0 if rng.random() < 0.2 else 0.0)
            else:
                stable = stable.add(1.0 if rng.random() < 0.1 else 0.0)
            if (
                canary.n >= 20
                and difference_sequence(canary, stable, alpha=ALPHA, t_opt=4000).lower > 0
            ):
                caught += 1
                break
    assert caught >= 36


def test_the_log_ratio_sees_a_slower_candidate() -> None:
    rng = random.Random(3)
    canary = stable = StreamSums()
    for _ in range(2000):
        canary = canary.add(rng.lognormvariate(math.log(300), 0.3))
        stable = stable.add(rng.lognormvariate(math.log(200), 0.3))
    interval = log_ratio_sequence(canary, stable, alpha=ALPHA, t_opt=4000)
    assert interval.lower > 0
    assert interval.lower < math.log(1.5) < interval.upper
