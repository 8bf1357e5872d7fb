"""The judge at scale: no overflow, no state beyond a run, large-sample intervals that agree."""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord
from pytest_modelgate.judge import common, resampling
from pytest_modelgate.judge.model import RunData
from pytest_modelgate.judge.paired import PairedJudge
from pytest_modelgate.judge.stats import (
    Interval,
    large_sample_mean_difference,
    large_sample_quantile,
    large_sample_quantile_ratio,
    large_sample_rate_difference,
    large_sample_ratio,
    large_sample_ratio_of_sums,
    paired_bootstrap,
    quantile,
)


def _run(n: int, seed: int = 3, slowdown: float = 1.0) -> RunData:
    """``n`` paired cases of one workflow, one call each; built without validation for speed
    (``model_construct``: the same records, fields as the defaults give them)."""
    rng = random.Random(seed)
    arms: dict[str, list[TestRecord]] = {"stable": [], "candidate": []}
    for index in range(n):
        case_id = f"wf[{index}]"
        for arm, factor in (("stable", 1.0), ("candidate", slowdown)):
            call = CallRecord.model_construct(
                test_id=case_id,
                case_id=case_id,
                arm=arm,
                model=arm,
                call_index=0,
                started_at=0.0,
                latency_ms=factor * rng.lognormvariate(6.0, 0.4),
                cost_usd=rng.uniform(1e-4, 3e-4),
                json_valid=rng.random() > 0.02,
                checks=("json",),
            )
            arms[arm].append(
                TestRecord.model_construct(
                    test_id=case_id,
                    case_id=case_id,
                    workflow="wf",
                    arm=arm,
                    model=arm,
                    outcome="passed" if rng.random() > 0.05 else "failed",
                    calls=(call,),
                    scores=(("quality", rng.uniform(0.0, 1.0)),),
                )
            )
    return RunData(stable=arms["stable"], candidate=arms["candidate"])


def _comparison(judgement: object, name: str) -> object:
    return next(m for m in judgement.metrics if m.name == name and m.scope == "overall")  # type: ignore[attr-defined]


# -- draws -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "count"), [(17, 9), (300, 7), (1001, 3)])
def test_draws_in_blocks_are_the_draws_of_one_call(
    n: int, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = resampling._draws(5, n, count)
    # Blocks of one resample (the smallest there is), and of two.
    for block in (1, 4 * n * 2):
        monkeypatch.setattr(resampling, "_DRAW_BLOCK_BYTES", block)
        assert resampling._draws(5, n, count) == whole
    assert len(whole) == count
    assert all(len(r) == n and max(r) < n for r in whole)


def test_a_scope_of_70000_cases_is_judged_without_overflow() -> None:
    # Before: randbytes(4 * n * resamples) asked for more than 2**31 bits from 67,109 cases on
    # (OverflowError). Default resamples: the overall scope holds every case.
    judgement = PairedJudge().judge(_run(70_000, slowdown=1.5))
    latency = _comparison(judgement, "latency_p50_ms")
    assert latency.n == 70_000  # type: ignore[attr-defined]
    low, high = latency.change_interval  # type: ignore[attr-defined]
    assert 1.45 < low < 1.5 < high < 1.55
    assert latency.status == "regressed"  # type: ignore[attr-defined]
    assert judgement.verdict == "fail"


def test_nothing_of_a_judgement_outlives_it() -> None:
    # The draws of 1,000 cases x 1,000 resamples are 8 MB of pointers: the cache that held them
    # beyond judge() (module-level lru_cache) is gone, and the run's memo is dropped on return.
    assert not hasattr(resampling._draws, "cache_info")
    run = _run(1_000)
    judge = PairedJudge()
    judge.judge(run)  # warm: imports and small module-level tables
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        judgement = judge.judge(run)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert judgement.verdict in ("pass", "inconclusive")
    assert peak - before > 8_000_000  # the draws were there while judging ...
    assert after - before < 1_500_000  # ... and are gone with the run (the judgement stays)
    assert vars(judge) == vars(PairedJudge())  # nothing kept on the judge either


# -- large-sample intervals against the bootstrap, at the threshold ----------------------------

N = common._LARGE_SAMPLE_CASES


def _bootstrap(statistic: Callable[[Sequence[int]], float], resamples: int = 2000) -> Interval:
    """The paired percentile bootstrap of a statistic of the resampled case indexes."""
    indexes = [float(i) for i in range(N)]
    return paired_bootstrap(
        indexes,
        indexes,
        lambda s, _c: statistic([int(i) for i in s]),
        seed=11,
        resamples=resamples,
    )


def _assert_agree(large: Interval, boot: Interval, tolerance: float = 0.1) -> None:
    """Each endpoint within ``tolerance`` of the bootstrap's half-width of it (the bootstrap's
    own resampling noise at 2000 resamples is about 3-5% of it)."""
    half = (boot.high - boot.low) / 2
    assert half > 0
    assert abs(large.low - boot.low) <= tolerance * half, (large, boot)
    assert abs(large.high - boot.high) <= tolerance * half, (large, boot)


def test_the_threshold_is_documented() -> None:
    assert N == 2000
    assert "2,000" in Path("docs/statistics.md").read_text(encoding="utf-8")


def test_large_sample_ratio_of_sums_agrees_with_the_bootstrap() -> None:
    rng = random.Random(1)
    calls = [[rng.randint(1, 3), rng.randint(1, 3)] for _ in range(N)]
    s_cnt = [c[0] for c in calls]
    c_cnt = [c[1] for c in calls]
    s_tot = [k * rng.lognormvariate(0, 0.5) for k in s_cnt]
    pairs = zip(c_cnt, s_tot, strict=True)
    c_tot = [k * 1.1 * rng.lognormvariate(0, 0.5) + 0.2 * s for k, s in pairs]

    def ratio(cases: Sequence[int]) -> float:
        c = sum(c_tot[i] for i in cases) / sum(c_cnt[i] for i in cases)
        return c / (sum(s_tot[i] for i in cases) / sum(s_cnt[i] for i in cases))

    _assert_agree(large_sample_ratio_of_sums(s_tot, s_cnt, c_tot, c_cnt), _bootstrap(ratio))
    one = large_sample_ratio(c_tot, c_cnt)
    _assert_agree(
        one, _bootstrap(lambda cases: sum(c_tot[i] for i in cases) / sum(c_cnt[i] for i in cases))
    )
    assert large_sample_ratio([0.0, 0.0], [1, 2]) == Interval(0.0, 0.0)
    assert math.isnan(large_sample_ratio([1.0], [0]).low)


def test_large_sample_rate_difference_agrees_with_the_bootstrap() -> None:
    rng = random.Random(2)
    s_trials = [rng.randint(1, 4) for _ in range(N)]
    c_trials = [rng.randint(1, 4) for _ in range(N)]
    hard = [rng.random() < 0.2 for _ in range(N)]

    def events(trials: list[int], easy: float, difficult: float) -> list[int]:
        return [
            sum(rng.random() < (difficult if h else easy) for _ in range(t))
            for h, t in zip(hard, trials, strict=True)
        ]

    s_events = events(s_trials, 0.95, 0.6)
    c_events = events(c_trials, 0.93, 0.55)

    def change(cases: Sequence[int]) -> float:
        c = sum(c_events[i] for i in cases) / sum(c_trials[i] for i in cases)
        return c - sum(s_events[i] for i in cases) / sum(s_trials[i] for i in cases)

    _assert_agree(
        large_sample_rate_difference(s_events, s_trials, c_events, c_trials), _bootstrap(change)
    )


def test_large_sample_mean_difference_agrees_with_the_bootstrap() -> None:
    rng = random.Random(3)
    stable = [rng.uniform(0, 1) for _ in range(N)]
    candidate = [min(1.0, s + rng.gauss(-0.01, 0.1)) for s in stable]
    large = large_sample_mean_difference(stable, candidate)
    boot = _bootstrap(lambda cases: math.fsum(candidate[i] - stable[i] for i in cases) / N)
    _assert_agree(large, boot)
    # Unpaired: the arms' spreads add up, so the interval is wider than the paired one.
    unpaired = large_sample_mean_difference(stable, candidate, paired=False)
    assert unpaired.width > 2 * large.width


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_large_sample_quantile_ratio_agrees_with_the_bootstrap(q: float) -> None:
    rng = random.Random(4)
    # Clusters of 1 to 3 calls, a case's calls alike (a slow case is slow on both arms).
    s_lists, c_lists = [], []
    for _ in range(N):
        speed = rng.lognormvariate(0, 0.3)
        s_lists.append([speed * rng.lognormvariate(6, 0.3) for _ in range(rng.randint(1, 3))])
        c_lists.append([1.2 * speed * rng.lognormvariate(6, 0.3) for _ in range(rng.randint(1, 3))])

    def pooled(lists: list[list[float]], cases: Sequence[int]) -> float:
        return quantile([v for i in cases for v in lists[i]], q)

    large = large_sample_quantile_ratio(s_lists, c_lists, q)
    boot = _bootstrap(lambda cases: pooled(c_lists, cases) / pooled(s_lists, cases), 1000)
    # A quantile's bootstrap distribution is lumpy (it moves in steps of order statistics):
    # a looser tolerance than for smooth statistics.
    _assert_agree(large, boot, tolerance=0.15)
    one = large_sample_quantile(c_lists, q)
    # One arm's p95 alone: the same width, but the percentile bootstrap of a right-skewed tail
    # sits a fifth of a half-width higher (its known bias), so a looser tolerance still.
    _assert_agree(one, _bootstrap(lambda cases: pooled(c_lists, cases), 1000), tolerance=0.3)
    assert one.width == pytest.approx(
        _bootstrap(lambda cases: pooled(c_lists, cases), 1000).width, rel=0.1
    )


def test_below_the_threshold_the_judge_bootstraps_and_from_it_it_does_not() -> None:
    below = PairedJudge().judge(_run(N - 1, slowdown=1.05))
    at = PairedJudge().judge(_run(N, slowdown=1.05))
    for name in ("latency_p50_ms", "cost_per_call_usd", "score:quality"):
        b = _comparison(below, name).change_interval  # type: ignore[attr-defined]
        a = _comparison(at, name).change_interval  # type: ignore[attr-defined]
        half = (b[1] - b[0]) / 2
        # One more case, the other interval: close, not equal.
        assert a != b
        assert abs(a[0] - b[0]) < 0.3 * half, (name, a, b)
        assert abs(a[1] - b[1]) < 0.3 * half, (name, a, b)
