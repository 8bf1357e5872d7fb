"""The judge's per-case columns hold what ``_CaseArm`` works out; the numpy large-sample
statistics agree with the pure-Python ones they vectorise."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord, Usage
from pytest_modelgate.judge import largesample
from pytest_modelgate.judge.cases import _CaseArm, _cases
from pytest_modelgate.judge.columns import CaseColumns, Ragged
from pytest_modelgate.judge.common import _RATES, _RATIOS
from pytest_modelgate.judge.stats import (
    large_sample_mean_difference,
    large_sample_quantile_ratio,
    large_sample_rate_difference,
    large_sample_ratio_of_sums,
    wilcoxon_signed_rank,
)


def _call(rng: random.Random, case_id: str, arm: str, index: int) -> CallRecord:
    failed = rng.random() < 0.15
    streamed = rng.random() < 0.5
    usage = None
    if not failed and rng.random() < 0.85:
        usage = Usage(prompt_tokens=rng.randint(1, 500), completion_tokens=rng.randint(1, 300))
    checks = tuple(c for c in ("json", "schema", "tools", "language") if rng.random() < 0.5)
    fields: dict[str, object] = {}
    for check, attribute in (
        ("json", "json_valid"),
        ("schema", "schema_valid"),
        ("tools", "tool_calls_valid"),
        ("language", "language_match"),
    ):
        # Now and then a checked reply whose check could not be told (None).
        if check in checks and rng.random() < 0.9:
            fields[attribute] = rng.random() < 0.8
    return CallRecord(
        test_id=case_id,
        case_id=case_id,
        arm=arm,  # type: ignore[arg-type]
        model=arm,
        call_index=index,
        started_at=0.0,
        latency_ms=None if rng.random() < 0.05 else rng.lognormvariate(6, 0.5),
        ttft_ms=rng.uniform(10, 90) if streamed and rng.random() < 0.9 else None,
        streamed=streamed,
        status=500 if failed else 200,
        error_kind="server_error" if failed else None,
        usage=usage,
        # A billed failure now and then; a successful call without a price now and then.
        cost_usd=(rng.uniform(1e-5, 1e-3) if (usage is not None and rng.random() < 0.9) else None),
        checks=() if failed else checks,
        **({} if failed else fields),  # type: ignore[arg-type]
    )


def _records(seed: int, cases: int = 60) -> tuple[list[TestRecord], list[TestRecord]]:
    """Records of every shape: repeats, skipped tests, several calls, fallbacks, scores."""
    rng = random.Random(seed)
    arms: dict[str, list[TestRecord]] = {"stable": [], "candidate": []}
    for index in range(cases):
        case_id = f"wf{index % 3}[{index}]"
        for arm in arms:
            for repeat in range(rng.choice((1, 1, 2, 3))):
                outcome = rng.choice(("passed", "passed", "failed", "skipped", "error"))
                calls = tuple(_call(rng, case_id, arm, k) for k in range(rng.choice((0, 1, 1, 3))))
                scores = tuple(
                    (name, rng.uniform(0, 1)) for name in ("quality", "tone") if rng.random() < 0.6
                )
                arms[arm].append(
                    TestRecord(
                        test_id=case_id,
                        case_id=case_id,
                        workflow=f"wf{index % 3}",
                        arm=arm,  # type: ignore[arg-type]
                        model=arm,
                        repeat=repeat,
                        outcome=outcome,  # type: ignore[arg-type]
                        calls=calls,
                        fallbacks=("backup",) if rng.random() < 0.1 else (),
                        scores=scores,
                    )
                )
    return arms["stable"], arms["candidate"]


def _arm_of(columns: CaseColumns, arm: str) -> list[_CaseArm]:
    return [getattr(case, arm) for case in columns.cases]


@pytest.mark.parametrize("seed", range(6))
def test_columns_hold_the_figures_of_every_case_arm(seed: int) -> None:
    cases = _cases(*_records(seed))
    assert len(cases) > 30  # most cases ran on both arms
    columns = CaseColumns(cases)
    for spec in _RATES:
        rates = columns.rate(spec.name)
        for arm, events, trials in (
            ("stable", rates.s_events, rates.s_trials),
            ("candidate", rates.c_events, rates.c_trials),
        ):
            expected = [a.counts(spec.name) for a in _arm_of(columns, arm)]
            assert list(zip(events.tolist(), trials.tolist(), strict=True)) == expected, spec.name
    for spec in _RATIOS:
        if spec.name.endswith("_ms"):
            stable, candidate = columns.values(spec.name)
            assert stable.lists() == [a.values(spec.name) for a in _arm_of(columns, "stable")]
            assert candidate.lists() == [a.values(spec.name) for a in _arm_of(columns, "candidate")]
            continue
        pairs = columns.sums(spec.name).pairs()
        expected_pairs = [(c.stable.sums(spec.name), c.candidate.sums(spec.name)) for c in cases]
        # Bit for bit: the bootstrap of the small-sample path resamples these numbers.
        assert pairs == expected_pairs, spec.name
    for name in ("quality", "tone"):
        s_values, s_has, c_values, c_has = columns.score(name)
        for values, has, arm in ((s_values, s_has, "stable"), (c_values, c_has, "candidate")):
            expected_scores = [a.score(name) for a in _arm_of(columns, arm)]
            found = [v if h else None for v, h in zip(values.tolist(), has.tolist(), strict=True)]
            assert found == expected_scores


def test_a_scope_takes_its_cases_in_order() -> None:
    cases = _cases(*_records(7))
    columns = CaseColumns(cases)
    positions = np.asarray([5, 1, 9, 2], dtype=np.int64)
    stable, _ = columns.values("latency_p50_ms")
    assert stable.take(positions).lists() == [
        cases[p].stable.values("latency_p50_ms") for p in positions
    ]
    assert columns.score_names(positions) == sorted(
        {n for p in positions.tolist() for t in cases[p].stable.tests for n, _ in t.scores}
    )


# -- the numpy statistics against the pure-Python ones ------------------------------------------


def _close(a: float, b: float, tolerance: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=1e-15)


@pytest.mark.parametrize("paired", [True, False])
def test_large_sample_intervals_agree_with_the_pure_ones(paired: bool) -> None:
    rng = random.Random(4)
    n = 3000
    s_trials = [rng.randint(1, 4) for _ in range(n)]
    c_trials = [rng.randint(1, 4) for _ in range(n)]
    s_events = [sum(rng.random() < 0.9 for _ in range(t)) for t in s_trials]
    c_events = [sum(rng.random() < 0.87 for _ in range(t)) for t in c_trials]
    pure = large_sample_rate_difference(
        s_events, s_trials, c_events, c_trials, paired=paired, confidence=0.95
    )
    fast = largesample.rate_difference(
        *(np.asarray(c, dtype=np.float64) for c in (s_events, s_trials, c_events, c_trials)),
        paired=paired,
        confidence=0.95,
    )
    assert _close(pure.low, fast.low)
    assert _close(pure.high, fast.high)

    s_cost = [rng.uniform(1e-4, 3e-4) * t for t in s_trials]
    c_cost = [rng.uniform(1e-4, 4e-4) * t for t in c_trials]
    pure = large_sample_ratio_of_sums(s_cost, s_trials, c_cost, c_trials, paired=paired)
    fast = largesample.ratio_of_sums(
        *(np.asarray(c, dtype=np.float64) for c in (s_cost, s_trials, c_cost, c_trials)),
        paired=paired,
        confidence=0.95,
    )
    assert _close(pure.low, fast.low)
    assert _close(pure.high, fast.high)

    s_score = [rng.uniform(0, 1) for _ in range(n)]
    c_score = [s - 0.01 + rng.gauss(0, 0.1) for s in s_score]
    pure = large_sample_mean_difference(s_score, c_score, paired=paired)
    fast = largesample.mean_difference(
        np.asarray(s_score), np.asarray(c_score), paired=paired, confidence=0.95
    )
    assert _close(pure.low, fast.low)
    assert _close(pure.high, fast.high)


@pytest.mark.parametrize(("q", "calls"), [(0.5, 1), (0.95, 1), (0.95, 3)])
def test_the_quantile_ratio_agrees_with_the_pure_one(q: float, calls: int) -> None:
    rng = random.Random(8)
    s_lists = [[rng.lognormvariate(6, 0.4) for _ in range(calls)] for _ in range(2500)]
    c_lists = [[1.1 * rng.lognormvariate(6, 0.4) for _ in range(calls)] for _ in range(2500)]

    def ragged(lists: list[list[float]]) -> Ragged:
        flat = [v for values in lists for v in values]
        return Ragged(np.asarray(flat), np.asarray([len(v) for v in lists], dtype=np.int64))

    pure = large_sample_quantile_ratio(s_lists, c_lists, q)
    fast = largesample.quantile_ratio(
        ragged(s_lists), ragged(c_lists), q, paired=True, confidence=0.95
    )
    # The pooled quantile's interpolation is the judge's (quantiles._sorted_quantile), the
    # pure function's numpy's anchored one: equal to a few ulps.
    assert _close(pure.low, fast.low)
    assert _close(pure.high, fast.high)
    assert 1.0 < fast.low < 1.1 < fast.high


def test_the_pooled_quantile_is_the_judges_to_the_last_bit() -> None:
    from pytest_modelgate.judge.quantiles import _sorted_quantile

    rng = random.Random(2)
    for size in (1, 2, 7, 100, 1001):
        values = [rng.lognormvariate(5, 1) for _ in range(size)]
        for q in (0.0, 0.5, 0.95, 1.0):
            assert largesample.pooled_quantile(np.asarray(values), q) == _sorted_quantile(
                sorted(values), q
            )
    assert math.isnan(largesample.pooled_quantile(np.empty(0), 0.5))


@pytest.mark.parametrize("shape", ["continuous", "ties", "few", "zeros"])
def test_the_vectorised_wilcoxon_is_the_pure_one(shape: str) -> None:
    rng = random.Random(6)
    if shape == "continuous":
        differences = [rng.gauss(0.05, 1) for _ in range(4000)]
    elif shape == "ties":
        differences = [rng.choice((-1.0, -0.5, 0.0, 0.5, 1.0, 1.0)) for _ in range(4000)]
    elif shape == "few":
        differences = [rng.gauss(0.3, 1) for _ in range(30)]
    else:
        differences = [0.0] * 100
    pure = wilcoxon_signed_rank(differences)
    fast = largesample.wilcoxon(np.asarray(differences))
    assert _close(pure, fast, 1e-9)
    if shape == "zeros":
        assert fast == 1.0
    with pytest.raises(ValueError, match="nan"):
        largesample.wilcoxon(np.asarray([1.0, math.nan]))


def test_the_collector_is_back_after_a_judgement() -> None:
    import gc

    from pytest_modelgate.judge.model import RunData
    from pytest_modelgate.judge.paired import PairedJudge

    stable, candidate = _records(1)
    assert gc.isenabled()
    PairedJudge().judge(RunData(stable=stable, candidate=candidate))
    assert gc.isenabled()
    gc.disable()
    try:
        PairedJudge().judge(RunData(stable=stable, candidate=candidate))
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
