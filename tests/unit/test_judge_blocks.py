"""The vectorised form of the bootstrap's statistics gives their Python form's values, bit for bit.

Each statistic is computed both ways on the same draws and compared as bit patterns (nan equal
to nan, -0.0 unequal to 0.0); a whole judgement is compared with the vectorised forms switched
off, on runs that take every path (ties, zeros, several calls per case, prices, tokens,
unpaired, several blocks of resamples).
"""

from __future__ import annotations

import itertools
import math
import operator
import random
import struct
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord, Usage
from pytest_modelgate.judge import resampling
from pytest_modelgate.judge.model import RunData
from pytest_modelgate.judge.paired import PairedJudge
from pytest_modelgate.judge.quantiles import _QuantileRatios
from pytest_modelgate.judge.ratios import _per_call_statistic
from pytest_modelgate.judge.resampling import _IntSums, _RateChange, _RunMemo


def _bits(values: Sequence[Any]) -> list[Any]:
    """Values as bit patterns (rows of them for several statistics per resample)."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.append(_bits(value))
        else:
            out.append("nan" if math.isnan(value) else struct.pack("<d", value))
    return out


def _both_ways(statistic: Any, n: int, *, paired: bool, resamples: int = 300) -> None:
    """The statistic on every resample: vectorised (in blocks) and in Python, the same bits."""
    count = resamples * (1 if paired else 2)
    blocks = _RunMemo().draw_blocks(11, n, count, paired=paired)
    vectorised = [statistic.on_block(block) for block in blocks]
    assert all(v is not None for v in vectorised), "the vectorised form declined"
    vector = list(itertools.chain.from_iterable(v.tolist() for v in vectorised))
    draws = resampling._draws(11, n, count)
    gathers = list(itertools.starmap(operator.itemgetter, draws))
    if paired:
        python = [statistic(g, g) for g in gathers]
    else:
        python = list(map(statistic, gathers[:resamples], gathers[resamples:]))
    python = [list(v) if isinstance(v, list) else float(v) for v in python]
    assert len(vector) == resamples
    assert _bits(vector) == _bits(python)


@pytest.fixture(params=[1 << 20, 1000], ids=["one-block", "many-blocks"])
def block_values(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(resampling, "_BLOCK_VALUES", request.param)
    return int(request.param)


@pytest.mark.parametrize(("n", "count"), [(5, 3), (17, 9), (300, 7), (1001, 5)])
@pytest.mark.parametrize("block_bytes", [1, 1 << 24])
def test_the_draw_matrix_holds_the_draws(
    n: int, count: int, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resampling, "_DRAW_BLOCK_BYTES", block_bytes)
    matrix = resampling._draw_matrix(7, n, count)
    assert matrix.shape == (count, n)
    assert [tuple(row) for row in matrix.tolist()] == list(resampling._draws(7, n, count))


@pytest.mark.parametrize("paired", [True, False])
def test_blocks_split_the_resamples_of_each_arm(paired: bool, block_values: int) -> None:
    n, resamples = 50, 130
    count = resamples * (1 if paired else 2)
    blocks = _RunMemo().draw_blocks(3, n, count, paired=paired)
    matrix = resampling._draw_matrix(3, n, count)
    stable = [row for b in blocks for row in b.stable.tolist()]
    candidate = [row for b in blocks for row in b.candidate.tolist()]
    assert stable == matrix[:resamples].tolist()
    assert candidate == (matrix[:resamples] if paired else matrix[resamples:]).tolist()
    assert all(b.paired is paired for b in blocks)
    for block in blocks:
        weights = block.weights(candidate=True)
        assert weights.sum(axis=1).tolist() == [float(n)] * len(block.candidate)


def _rng_ints(rng: random.Random, n: int, top: int) -> list[int]:
    return [rng.randint(0, top) for _ in range(n)]


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("n", [5, 40, 333])
def test_rate_change(paired: bool, n: int, block_values: int) -> None:
    rng = random.Random(n)
    trials = [_rng_ints(rng, n, 3) for _ in range(2)]  # zero trials in some cases
    events = [[rng.randint(0, t) for t in arm] for arm in trials]
    statistic = _RateChange(_IntSums((events[0], trials[0]), (events[1], trials[1])))
    _both_ways(statistic, n, paired=paired)


def test_rate_change_with_no_trial_on_a_resample_is_nan_both_ways() -> None:
    statistic = _RateChange(_IntSums(([0] * 6, [0] * 6), ([1] * 6, [2] * 6)))
    _both_ways(statistic, 6, paired=True)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("shape", ["tokens", "prices", "prices-several-calls", "zeros"])
def test_per_call_ratio(paired: bool, shape: str, block_values: int) -> None:
    n = 257
    rng = random.Random(shape)
    if shape == "tokens":
        totals = [[float(rng.randint(0, 900)) for _ in range(n)] for _ in range(2)]
    elif shape == "zeros":
        totals = [[rng.choice([0.0, -0.0, 1e-4]) for _ in range(n)] for _ in range(2)]
    else:
        totals = [[rng.uniform(1e-6, 3e-3) for _ in range(n)] for _ in range(2)]
    calls = (
        [_rng_ints(rng, n, 3) for _ in range(2)]
        if shape == "prices-several-calls"
        else [[1] * n, [1] * n]
    )
    statistic = _per_call_statistic(totals[0], calls[0], totals[1], calls[1])
    expected = "_WholePerCallRatio" if shape == "tokens" else "_FloatPerCallRatio"
    assert type(statistic).__name__ == expected
    _both_ways(statistic, n, paired=paired)


def test_float_sums_add_left_to_right() -> None:
    # 1 + 1e-16 + ... rounds back to 1 at every step when added in order; a compensated or
    # pairwise sum would not: the order is the definition, on every Python version.
    values = (1.0, *([1e-16] * 50))
    statistic = _per_call_statistic(list(values), [1] * 51, list(values), [1] * 51)
    gather = operator.itemgetter(*range(51))
    assert statistic(gather, gather) == 1.0
    _both_ways(statistic, 51, paired=True, resamples=100)


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("values", ["continuous", "ties", "with-zeros", "banded"])
def test_quantile_ratios(paired: bool, values: str, block_values: int) -> None:
    n = 700 if values == "banded" else 211
    rng = random.Random(values)

    def arm() -> list[list[float]]:
        if values == "ties":
            return [[float(rng.randint(1, 9))] for _ in range(n)]
        if values == "with-zeros":
            return [[rng.choice([0.0, 0.0, 5.0, rng.uniform(1, 9)])] for _ in range(n)]
        return [[rng.lognormvariate(6, 0.5)] for _ in range(n)]

    statistic = _QuantileRatios(arm(), arm())
    if values == "banded":
        assert statistic._stable._bands, "the Python form should take its banded path here"
    _both_ways(statistic, n, paired=paired)


@pytest.mark.parametrize(
    "lists",
    [
        [[1.0, 2.0]] + [[3.0]] * 9,  # several calls in a case
        [[math.nan]] + [[3.0]] * 9,  # nan has no place in an order
        [[-0.0]] + [[3.0]] * 9,  # a negative zero ties with +0.0
    ],
    ids=["ragged", "nan", "negative-zero"],
)
def test_quantile_ratios_leave_what_they_cannot_repeat_to_python(
    lists: list[list[float]],
) -> None:
    statistic = _QuantileRatios(lists, [[2.0]] * 10)
    block = _RunMemo().draw_blocks(1, 10, 100, paired=True)[0]
    assert statistic.on_block(block) is None


def test_sums_too_large_for_a_double_are_left_to_python() -> None:
    huge = 2**52
    statistic = _IntSums(([huge, huge],), ([1, 1],))
    block = _RunMemo().draw_blocks(1, 2, 100, paired=True)[0]
    assert statistic.on_block(block) is None


# -- whole judgements --------------------------------------------------------------------------


@runtime_checkable
class _Nothing(Protocol):
    def not_a_method_of_any_statistic(self) -> None: ...


def _judgement(
    run: RunData, monkeypatch: pytest.MonkeyPatch, *, vectorised: bool, **kw: Any
) -> str:
    with monkeypatch.context() as patch:
        if not vectorised:
            patch.setattr(resampling, "_Vectorised", _Nothing)
        return repr(PairedJudge(**kw).judge(run))


def _mixed_run(n: int, seed: int) -> RunData:
    """Cases of two workflows and three languages: some with two calls, tied and zero
    latencies, prices and token counts, failed tests and errors."""
    rng = random.Random(seed)
    arms: dict[str, list[TestRecord]] = {"stable": [], "candidate": []}
    for index in range(n):
        workflow = "triage" if index % 3 else "replies"
        case_id = f"{workflow}[{index}]"
        language = ("en", "de", "ja")[index % 3]
        calls_here = 2 if index % 7 == 0 else 1
        for arm, slow in (("stable", 1.0), ("candidate", 1.2)):
            calls = []
            for call_index in range(calls_here):
                latency = rng.choice([100.0, 100.0, slow * rng.lognormvariate(6, 0.4)])
                tokens = rng.randint(50, 400)
                calls.append(
                    CallRecord.model_construct(
                        test_id=case_id,
                        case_id=case_id,
                        arm=arm,
                        model=arm,
                        call_index=call_index,
                        started_at=0.0,
                        latency_ms=latency,
                        ttft_ms=latency / 3,
                        cost_usd=tokens * 2.7e-7 * slow,
                        usage=Usage(prompt_tokens=tokens, completion_tokens=tokens // 2),
                        json_valid=rng.random() > 0.05,
                        error="HTTP 500" if rng.random() < 0.03 else None,
                        checks=("json",),
                    )
                )
            arms[arm].append(
                TestRecord.model_construct(
                    test_id=case_id,
                    case_id=case_id,
                    workflow=workflow,
                    language=language,
                    arm=arm,
                    model=arm,
                    outcome="passed" if rng.random() > 0.08 else "failed",
                    calls=tuple(calls),
                    scores=(("quality", rng.uniform(0.0, 1.0)),),
                )
            )
    return RunData(stable=arms["stable"], candidate=arms["candidate"])


@pytest.mark.parametrize(("n", "paired"), [(60, True), (600, True), (600, False)])
def test_a_judgement_is_the_same_with_and_without_vectorised_statistics(
    n: int, paired: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _mixed_run(n, seed=n)
    monkeypatch.setattr(resampling, "_BLOCK_VALUES", 5000)  # several blocks per slice
    kw = {"paired": paired, "resamples": 200}
    python = _judgement(run, monkeypatch, vectorised=False, **kw)
    vectorised = _judgement(run, monkeypatch, vectorised=True, **kw)
    assert vectorised == python
    assert "latency_p95_ms" in python
    assert "cost_per_call" in python
