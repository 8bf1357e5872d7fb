"""Unit tests of the paired statistical judge: pairing, decisions, slices, Holm, budgets, rollout.

Test records are built directly; noisy runs draw from seeded generators, so every outcome here is
fixed. Bootstraps use 500 resamples to keep the file fast; the assertions leave room for that.
"""

from __future__ import annotations

import functools
import math
import operator
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from pytest_modelgate.calls.records import Budgets, CallRecord, TestRecord, Usage
from pytest_modelgate.config.settings import GateLimits
from pytest_modelgate.judge import inference, quantiles, ratios, resampling, stats
from pytest_modelgate.judge.model import Judge, Judgement, MetricComparison, RunData, Samples
from pytest_modelgate.judge.paired import Margins, PairedJudge, metric_label
from pytest_modelgate.judge.stats import (
    PairedTable,
    holm,
    mcnemar_mid_p,
    newcombe_paired_interval,
    wilson_interval,
)

ALPHA = 0.05

# Margins so loose that a noisy A/A run shows non-inferiority on every gated metric.
WIDE = Margins(
    pass_rate=0.2,
    json_validity=0.2,
    schema_validity=0.2,
    tool_call_accuracy=0.2,
    language_match=0.2,
    error_rate=0.2,
    fallback_rate=0.2,
    latency_p50_ratio=1.5,
    latency_p95_ratio=1.5,
    ttft_p95_ratio=1.5,
    cost_per_call_ratio=1.5,
)

# A call with nothing but a JSON check: no latency, cost or tokens, so no ratio bootstrap runs.
BARE: dict[str, Any] = {"latency_ms": None, "cost_usd": None, "usage": None}


# --- building records ------------------------------------------------------------------------


def make_call(arm: str, case: str, *, repeat: int = 0, **fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "test_id": f"test_flow[{case}]",
        "case_id": case,
        "arm": arm,
        "model": f"{arm}-model",
        "repeat": repeat,
        "call_index": 0,
        "started_at": 1_700_000_000.0,
        "latency_ms": 400.0,
        "status": 200,
        "usage": Usage(prompt_tokens=100, completion_tokens=20),
        "cost_usd": 0.001,
        "json_valid": True,
        "checks": ("json",),
    }
    values.update(fields)
    return CallRecord(**values)


def make_test(
    arm: str,
    case: str,
    *,
    workflow: str = "flow",
    language: str | None = "en",
    outcome: str = "passed",
    repeat: int = 0,
    scores: Sequence[tuple[str, float]] = (),
    budgets: Budgets | None = None,
    calls: Sequence[CallRecord] | None = None,
    **call_fields: Any,
) -> TestRecord:
    """One test on one arm; by default one successful call (``call_fields`` override it)."""
    if calls is None:
        calls = (make_call(arm, case, repeat=repeat, **call_fields),)
    return TestRecord(
        test_id=f"test_{workflow}[{case}]",
        case_id=case,
        workflow=workflow,
        arm=arm,  # type: ignore[arg-type]
        model=f"{arm}-model",
        repeat=repeat,
        outcome=outcome,  # type: ignore[arg-type]
        calls=tuple(calls),
        language=language,
        scores=tuple(scores),
        budgets=budgets,
    )


def make_arm(
    arm: str,
    n: int,
    per_case: Callable[[int], dict[str, Any]] | None = None,
    *,
    prefix: str = "case",
    **common: Any,
) -> list[TestRecord]:
    """``n`` cases ``case000``...; ``per_case(i)`` overrides ``make_test`` arguments per case."""
    records = []
    for i in range(n):
        fields = dict(common)
        if per_case is not None:
            fields.update(per_case(i))
        records.append(make_test(arm, f"{prefix}{i:03d}", **fields))
    return records


LANGUAGES = ("en", "de", "zh")


def noisy_arm(
    arm: str,
    n: int,
    seed: int,
    *,
    latency_factor: float = 1.0,
    cost_factor: float = 1.0,
    error_p: float = 0.0,
) -> list[TestRecord]:
    """A realistic arm: per-case traits shared by both arms (what pairing exploits), call noise
    drawn from ``seed``. Cases cycle through three prompt languages."""
    traits = random.Random(1234)
    noise = random.Random(seed)
    records = []
    for i in range(n):
        case = f"case{i:03d}"
        base_latency = traits.lognormvariate(math.log(500), 0.6)
        hard = traits.random() < 0.15
        tokens = int(base_latency / 5)
        error = noise.random() < error_p
        call = make_call(
            arm,
            case,
            latency_ms=base_latency * latency_factor * noise.lognormvariate(0, 0.1),
            usage=Usage(prompt_tokens=50, completion_tokens=tokens),
            cost_usd=1e-6 * tokens * cost_factor,
            json_valid=noise.random() > 0.03,
            checks=("json", "language"),
            language_match=True,
            error_kind="server_error" if error else None,
            status=503 if error else 200,
        )
        passed = noise.random() > (0.5 if hard else 0.03)
        records.append(
            make_test(
                arm,
                case,
                language=LANGUAGES[i % 3],
                outcome="passed" if passed else "failed",
                calls=(call,),
            )
        )
    return records


def without_cost(record: TestRecord) -> TestRecord:
    calls = tuple(c.model_copy(update={"cost_usd": None}) for c in record.calls)
    return record.model_copy(update={"calls": calls})


def run_judge(
    stable: Sequence[TestRecord],
    candidate: Sequence[TestRecord] | None,
    margins: Margins | None = None,
    **options: Any,
) -> Judgement:
    options.setdefault("resamples", 500)
    return PairedJudge(margins, **options).judge(RunData(stable=stable, candidate=candidate))


def comparison(judgement: Judgement, name: str, scope: str = "overall") -> MetricComparison:
    (found,) = [c for c in judgement.metrics if c.name == name and c.scope == scope]
    return found


def width(c: MetricComparison) -> float:
    assert c.change_interval is not None
    low, high = c.change_interval
    return high - low


def is_gated(c: MetricComparison) -> bool:
    return c.limit is not None and c.status not in ("not_gated", "no_data")


# --- construction ----------------------------------------------------------------------------


def test_paired_judge_satisfies_the_protocol_and_validates_its_options() -> None:
    implementation: Judge = PairedJudge(resamples=500, min_cases=7)
    assert repr(implementation) == (
        "PairedJudge(confidence=0.95, resamples=500, min_cases=7, paired=True)"
    )
    with pytest.raises(ValueError, match="confidence"):
        PairedJudge(confidence=0.5)
    with pytest.raises(ValueError, match="confidence"):
        PairedJudge(confidence=1.0)
    with pytest.raises(ValueError, match="resamples"):
        PairedJudge(resamples=99)


def test_default_margins_are_the_default_gate_limits() -> None:
    assert Margins.from_limits(GateLimits()) == Margins()
    custom = Margins.from_limits(
        GateLimits(pass_rate_max_drop=0.05, error_rate_max_rise=None, score_max_drop=0.1)
    )
    assert custom.pass_rate == 0.05
    assert custom.error_rate is None
    assert custom.score_drop == 0.1


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("json_validity", "JSON validity"),
        ("latency_p95_ms", "p95 latency"),
        ("latency_p95_ms:budget", "p95 latency budget"),
        ("pass_rate:budget", "pass rate budget"),
        ("cost_per_test_usd:budget", "cost per test budget"),
        ("score:faithfulness", "score faithfulness"),
        ("something_else", "something_else"),
    ],
)
def test_metric_label(name: str, label: str) -> None:
    assert metric_label(name) == label


# --- determinism -----------------------------------------------------------------------------


def _rich_run() -> tuple[list[TestRecord], list[TestRecord]]:
    """Two workflows, three languages, two repeats, scores and a budget."""
    budgets = Budgets(latency_p95_ms=2000.0, min_pass_rate=0.5)
    arms = []
    for arm, seed, factor in (("stable", 1, 1.0), ("candidate", 2, 1.1)):
        records = []
        for repeat in (0, 1):
            for i, record in enumerate(
                noisy_arm(arm, 45, seed + 10 * repeat, latency_factor=factor)
            ):
                records.append(
                    record.model_copy(
                        update={
                            "repeat": repeat,
                            "workflow": "extract" if i % 2 else "summarize",
                            "scores": (("faithfulness", (i % 7) / 7 + 0.01 * repeat),),
                            "budgets": budgets if i % 2 else None,
                        }
                    )
                )
        arms.append(records)
    return arms[0], arms[1]


def test_the_same_records_give_an_identical_judgement_in_any_order() -> None:
    stable, candidate = _rich_run()
    first = run_judge(stable, candidate)
    again = run_judge(stable, candidate)
    assert again == first
    assert repr(again) == repr(first)
    # The run exercises every kind of comparison, so the equality above means something.
    names = {c.name for c in first.metrics}
    assert {"json_validity", "latency_p95_ms", "score:faithfulness"} <= names
    assert {"latency_p95_ms:budget", "pass_rate:budget"} <= names
    assert {c.scope for c in first.metrics} >= {"workflow:extract", "language:zh"}

    shuffled_stable, shuffled_candidate = list(stable), list(candidate)
    random.Random(3).shuffle(shuffled_stable)
    random.Random(4).shuffle(shuffled_candidate)
    shuffled = run_judge(shuffled_stable, shuffled_candidate)
    assert shuffled == first
    assert repr(shuffled) == repr(first)


# --- pairing ---------------------------------------------------------------------------------


def test_cases_on_one_arm_only_are_ignored() -> None:
    stable = make_arm("stable", 60)
    candidate = make_arm("candidate", 60, lambda i: {"json_valid": i >= 5})
    paired_only = run_judge(stable, candidate)

    # Broken cases the stable arm never ran, a stable-only case, and a case the candidate skipped.
    extra_candidate = make_arm("candidate", 20, prefix="new", json_valid=False, outcome="failed")
    extra_stable = [make_test("stable", "old000"), make_test("stable", "skip000")]
    skipped = [make_test("candidate", "skip000", outcome="skipped", json_valid=False)]
    with_extras = run_judge(stable + extra_stable, candidate + extra_candidate + skipped)

    assert with_extras.metrics == paired_only.metrics
    assert with_extras.verdict == paired_only.verdict
    json_validity = comparison(with_extras, "json_validity")
    assert json_validity.n == 60
    assert json_validity.candidate == pytest.approx(55 / 60)
    # The arm metrics still describe everything each arm ran.
    assert with_extras.candidate is not None
    assert with_extras.candidate.n_tests == 81


def _repeated(arm: str, n: int, k: int, broken: Callable[[int, int], bool]) -> list[TestRecord]:
    return [
        make_test(arm, f"case{i:03d}", repeat=r, json_valid=not broken(i, r))
        for i in range(n)
        for r in range(k)
    ]


def test_repeats_are_pooled_per_case_and_switch_to_the_cluster_bootstrap() -> None:
    single = run_judge(
        _repeated("stable", 60, 1, lambda i, r: False),
        _repeated("candidate", 60, 1, lambda i, r: i < 20),
    )
    assert comparison(single, "json_validity").test == "mcnemar_mid_p+newcombe"

    # K = 3: the first 20 cases break on one repeat of three.
    repeated = run_judge(
        _repeated("stable", 60, 3, lambda i, r: False),
        _repeated("candidate", 60, 3, lambda i, r: i < 20 and r == 0),
    )
    json_validity = comparison(repeated, "json_validity")
    assert json_validity.test == "wilcoxon+paired_bootstrap"
    # Cases, not calls, are the unit of pairing (n is 60); samples count the checked replies.
    assert json_validity.n == 60
    assert json_validity.samples == Samples(180, 180)
    assert json_validity.candidate == pytest.approx(1 - 20 / 180)
    assert json_validity.change == pytest.approx(-100 * 20 / 180)
    assert json_validity.status == "regressed"
    assert comparison(repeated, "pass_rate").test == "wilcoxon+paired_bootstrap"
    assert repeated.verdict == "fail"


def test_an_arm_without_events_keeps_its_own_uncertainty_in_a_bootstrapped_rate() -> None:
    # K = 2 (so the cluster bootstrap runs): no broken reply on the stable arm in 120, 6 on the
    # candidate. The bootstrap alone would treat the stable rate as known to be exactly 0 and
    # put the whole interval beyond a 1-point margin; 0 in 120 only shows a rate below ~3%.
    stable = _repeated("stable", 60, 2, lambda i, r: False)
    candidate = _repeated("candidate", 60, 2, lambda i, r: i < 6 and r == 0)
    judgement = run_judge(stable, candidate)
    json_validity = comparison(judgement, "json_validity")
    assert json_validity.test == "wilcoxon+paired_bootstrap"
    s_ci, c_ci = wilson_interval(120, 120), wilson_interval(114, 120)
    change = 114 / 120 - 1.0
    score_high = change + math.sqrt((c_ci.high - 114 / 120) ** 2 + (1.0 - s_ci.low) ** 2)
    _low, high = json_validity.change_interval or (math.nan, math.nan)
    # The interval reaches at least as far as Newcombe's from the two Wilson intervals.
    assert high >= score_high * 100 - 1e-9
    assert high > -1.0
    assert json_validity.status == "inconclusive"
    assert judgement.verdict != "fail"


# --- rates -----------------------------------------------------------------------------------


def test_a_clear_json_validity_drop_fails_with_mcnemar_and_newcombe() -> None:
    stable = make_arm("stable", 100, lambda i: {"json_valid": i < 98})
    candidate = make_arm("candidate", 100, lambda i: {"json_valid": i >= 15})
    judgement = run_judge(stable, candidate)

    assert judgement.verdict == "fail"
    assert [(r.metric, r.scope) for r in judgement.regressions] == [("json_validity", "overall")]
    (regression,) = judgement.regressions
    assert "98.0% -> 85.0%" in regression.message
    assert "-13.0 pts" in regression.message
    assert "n=100" in regression.message
    assert regression.message in judgement.reasons

    # a: both valid (83), b: stable only (15), c: candidate only (2), d: neither (0).
    table = PairedTable(a=83, b=15, c=2, d=0)
    json_validity = comparison(judgement, "json_validity")
    assert json_validity.status == "regressed"
    assert json_validity.test == "mcnemar_mid_p+newcombe"
    # The mid-p McNemar test: the exact one (statsmodels) less the probability of the table seen.
    assert json_validity.p_value == mcnemar_mid_p(15, 2)
    exact = mcnemar([[83, 15], [2, 0]], exact=True).pvalue
    assert json_validity.p_value == pytest.approx(exact - 136 / 2**17, rel=1e-12)
    interval = newcombe_paired_interval(table)
    assert json_validity.change_interval == (interval.low * 100, interval.high * 100)
    stable_ci = wilson_interval(98, 100)
    assert json_validity.stable_interval == (stable_ci.low, stable_ci.high)
    assert json_validity.change == pytest.approx(-13.0)
    assert json_validity.limit_value == -1.0
    assert json_validity.cases_needed is None

    assert judgement.rollout is not None
    assert judgement.rollout["allowed"] is False
    assert judgement.rollout["plan"] == []


@pytest.mark.parametrize("seeds", [(1, 2), (5, 6)])
def test_an_aa_run_with_noise_does_not_fail(seeds: tuple[int, int]) -> None:
    stable_seed, candidate_seed = seeds
    judgement = run_judge(
        noisy_arm("stable", 300, stable_seed), noisy_arm("candidate", 300, candidate_seed)
    )
    assert judgement.verdict != "fail"
    assert judgement.regressions == ()
    assert not [c for c in judgement.metrics if c.status == "regressed"]
    # The noise is real: the arms differ, and the intervals are not degenerate.
    assert comparison(judgement, "latency_p95_ms").change != 1.0
    assert width(comparison(judgement, "pass_rate")) > 0


def test_a_tiny_run_is_inconclusive_and_says_how_many_cases_would_decide() -> None:
    judgement = run_judge(noisy_arm("stable", 10, 1), noisy_arm("candidate", 10, 2))

    assert judgement.verdict == "inconclusive"
    assert judgement.regressions == ()
    json_validity = comparison(judgement, "json_validity")
    assert json_validity.status == "inconclusive"
    assert json_validity.cases_needed is not None
    assert json_validity.cases_needed > 10
    assert json_validity.min_detectable_change is not None
    assert "cases would decide" in json_validity.message
    # Language slices of 3-4 cases are below min_cases: reported, never gated.
    sliced = [c for c in judgement.metrics if c.scope.startswith("language:")]
    assert sliced
    assert {c.status for c in sliced} == {"not_gated"}

    rollout = judgement.rollout
    assert rollout is not None
    assert rollout["allowed"] is True
    # Issue 10 item 11: an inconclusive verdict allows shadow traffic only, no canary steps.
    phases = [(step["phase"], step["traffic_percent"]) for step in rollout["plan"]]
    assert phases == [("shadow", 0)]


def test_wide_enough_margins_pass_with_a_canary_and_rollback_triggers() -> None:
    judgement = run_judge(
        noisy_arm("stable", 300, 1, error_p=0.03),
        noisy_arm("candidate", 300, 2, error_p=0.03),
        WIDE,
    )
    assert judgement.verdict == "pass", judgement.reasons
    assert judgement.reasons[0].startswith("non-inferiority shown for all")
    gated = [c for c in judgement.metrics if is_gated(c)]
    assert gated
    assert {c.status for c in gated} <= {"ok", "improved"}

    rollout = judgement.rollout
    assert rollout is not None
    assert rollout["allowed"] is True
    assert [step["phase"] for step in rollout["plan"]] == ["canary"] * 4
    assert [step["traffic_percent"] for step in rollout["plan"]] == [5, 25, 50, 100]
    assert rollout["kill_switch"]["route_to"] == "stable-model"

    triggers = {t["metric"]: t for t in rollout["rollback_triggers"]}
    stable_errors = judgement.stable.error_rate.value
    assert stable_errors is not None
    assert stable_errors > 0
    assert triggers["error_rate"]["op"] == ">"
    assert triggers["error_rate"]["threshold"] == round(stable_errors + 0.2, 4)
    stable_p95 = judgement.stable.latency_p95_ms.value
    assert stable_p95 is not None
    assert triggers["latency_p95_ms"]["threshold"] == round(stable_p95 * 1.5, 1)
    stable_json = comparison(judgement, "json_validity").stable
    assert stable_json is not None
    assert triggers["json_validity"]["op"] == "<"
    assert triggers["json_validity"]["threshold"] == round(stable_json - 0.2, 4)


# --- ratios ----------------------------------------------------------------------------------


def test_latency_x1_5_on_the_candidate_regresses_p50_and_p95() -> None:
    judgement = run_judge(
        noisy_arm("stable", 150, 1), noisy_arm("candidate", 150, 2, latency_factor=1.5)
    )
    assert judgement.verdict == "fail"
    for name in ("latency_p50_ms", "latency_p95_ms"):
        latency = comparison(judgement, name)
        assert latency.status == "regressed"
        assert latency.change == pytest.approx(1.5, abs=0.15)
        assert latency.change_interval is not None
        assert latency.change_interval[0] > 1.2
        expected = "wilcoxon+paired_bootstrap" if name == "latency_p50_ms" else "paired_bootstrap"
        assert latency.test == expected
        assert (name, "overall") in {(r.metric, r.scope) for r in judgement.regressions}
    assert comparison(judgement, "cost_per_call_usd").status == "ok"


def test_faster_candidate_latency_is_improved() -> None:
    judgement = run_judge(
        noisy_arm("stable", 150, 1), noisy_arm("candidate", 150, 2, latency_factor=0.6)
    )
    latency = comparison(judgement, "latency_p50_ms")
    assert latency.status == "improved"
    assert latency.change_interval is not None
    assert latency.change_interval[1] < 1


def test_cost_x1_5_on_the_candidate_regresses_cost_per_call() -> None:
    judgement = run_judge(
        noisy_arm("stable", 150, 1), noisy_arm("candidate", 150, 2, cost_factor=1.5)
    )
    cost = comparison(judgement, "cost_per_call_usd")
    assert cost.status == "regressed"
    assert cost.change == pytest.approx(1.5)
    assert cost.limit_value == 1.15
    assert ("cost_per_call_usd", "overall") in {(r.metric, r.scope) for r in judgement.regressions}
    assert comparison(judgement, "latency_p95_ms").status != "regressed"


def test_an_unknown_candidate_cost_is_never_reported_ok() -> None:
    budgets = Budgets(cost_usd_per_call=1.0, cost_usd_per_test=1.0)
    stable = make_arm("stable", 40, budgets=budgets)
    candidate = make_arm("candidate", 40, budgets=budgets)
    known = run_judge(stable, candidate, WIDE)
    assert comparison(known, "cost_per_call_usd").status == "ok"
    assert comparison(known, "cost_per_call_usd:budget", "workflow:flow").status == "ok"

    candidate[3] = without_cost(candidate[3])
    judgement = run_judge(stable, candidate, WIDE)
    costs = [c for c in judgement.metrics if c.name.startswith(("cost_per_call", "cost_per_test"))]
    assert not [c for c in costs if c.status in ("ok", "improved")]
    assert judgement.candidate is not None
    assert judgement.candidate.cost_per_call_usd.value is None


def test_an_unknown_stable_cost_is_never_reported_ok_as_a_ratio() -> None:
    stable = make_arm("stable", 40)
    stable[3] = without_cost(stable[3])
    judgement = run_judge(stable, make_arm("candidate", 40), WIDE)
    ratios = [c for c in judgement.metrics if c.name == "cost_per_call_usd"]
    assert not [c for c in ratios if c.status in ("ok", "improved")]
    assert judgement.stable.cost_per_call_usd.value is None


def test_an_unknown_candidate_cost_keeps_the_verdict_from_passing() -> None:
    stable = make_arm("stable", 40)
    candidate = make_arm("candidate", 40)
    assert run_judge(stable, candidate, WIDE).verdict == "pass"  # the run passes with costs known
    candidate[3] = without_cost(candidate[3])
    assert run_judge(stable, candidate, WIDE).verdict == "inconclusive"


# --- slices ----------------------------------------------------------------------------------


def _language_drift_records() -> tuple[list[TestRecord], list[TestRecord]]:
    """150 cases in en/de/zh; the candidate answers 15 of the 50 zh prompts in the wrong language.
    Five French cases in their own workflow make slices below min_cases."""

    def case(arm: str) -> Callable[[int], dict[str, Any]]:
        def fields(i: int) -> dict[str, Any]:
            language = LANGUAGES[i % 3]
            drifted = arm == "candidate" and language == "zh" and i < 45
            return {"language": language, "language_match": not drifted}

        return fields

    language_only: dict[str, Any] = {"checks": ("language",), "json_valid": None, **BARE}
    stable = make_arm("stable", 150, case("stable"), **language_only)
    candidate = make_arm("candidate", 150, case("candidate"), **language_only)
    french: dict[str, Any] = {"language": "fr", "workflow": "translate", "language_match": False}
    stable += make_arm("stable", 5, prefix="fr", **language_only, **french)
    candidate += make_arm("candidate", 5, prefix="fr", **language_only, **french)
    return stable, candidate


@functools.cache
def _language_drift() -> Judgement:
    return run_judge(*_language_drift_records())


def test_a_language_drift_in_one_language_is_caught_in_its_slice() -> None:
    judgement = _language_drift()
    assert judgement.verdict == "fail"
    zh = comparison(judgement, "language_match", "language:zh")
    assert zh.status == "regressed"
    assert zh.n == 50
    assert zh.change == pytest.approx(-30.0)
    assert "[language:zh]" in zh.message
    assert ("language_match", "language:zh") in {(r.metric, r.scope) for r in judgement.regressions}
    for scope in ("language:en", "language:de"):
        assert comparison(judgement, "language_match", scope).status in ("ok", "inconclusive")
    assert not [r for r in judgement.regressions if r.scope in ("language:en", "language:de")]
    # Only the language check ran: no JSON-validity comparison is invented.
    assert not [c for c in judgement.metrics if c.name == "json_validity"]


def test_a_slice_below_min_cases_is_not_gated() -> None:
    judgement = _language_drift()
    for scope in ("language:fr", "workflow:translate"):
        sliced = [c for c in judgement.metrics if c.scope == scope]
        assert sliced
        assert {c.status for c in sliced} == {"not_gated"}
        assert all(c.p_adjusted is None for c in sliced)
        assert all(c.n == 5 for c in sliced)
    assert not [
        r for r in judgement.regressions if r.scope in ("language:fr", "workflow:translate")
    ]
    # The big workflow is gated.
    assert comparison(judgement, "language_match", "workflow:flow").status == "regressed"
    # With a lower minimum, the same slices are gated: the French prompts never matched.
    lowered = run_judge(*_language_drift_records(), min_cases=5)
    french = comparison(lowered, "language_match", "language:fr")
    assert french.status != "not_gated"
    assert french.p_adjusted is not None


def test_a_slice_below_min_cases_says_it_is_not_gated() -> None:
    language_match = comparison(_language_drift(), "language_match", "language:fr")
    assert language_match.status == "not_gated"
    assert "fewer than the minimum cases" in language_match.message


# --- Holm ------------------------------------------------------------------------------------


@functools.cache
def _holm_run() -> Judgement:
    """6 cases, each 10-15x slower on the candidate, 3 in English and 3 in German. Overall, the
    p50 ratio's interval lies far beyond x1.2 and the Wilcoxon test gives p = 2/64 (6 distinct
    differences, so exact); but p50 is also asked in each language (min_cases=3; three cases
    give no interval: inconclusive, p = 0.25), and Holm's correction over those three scopes
    lifts the overall p above 0.05. The tail quantile is not gated."""
    language = {0: "en", 1: "de"}
    stable = make_arm("stable", 6, lambda i: {"latency_ms": 400.0 + i, "language": language[i % 2]})
    candidate = make_arm(
        "candidate",
        6,
        lambda i: {"latency_ms": (400.0 + i) * (10 + i), "language": language[i % 2]},
    )
    return run_judge(stable, candidate, Margins(latency_p95_ratio=None), min_cases=3)


def test_beyond_the_margin_but_not_significant_after_holm_is_inconclusive() -> None:
    judgement = _holm_run()
    p50 = comparison(judgement, "latency_p50_ms")
    assert p50.change_interval is not None
    assert p50.limit_value is not None
    assert p50.change_interval[0] > p50.limit_value  # beyond the margin by its interval
    assert p50.p_value is not None
    assert p50.p_value == pytest.approx(2 / 64)  # significant on its own...
    assert p50.p_value < ALPHA
    assert p50.p_adjusted is not None
    assert p50.p_adjusted >= ALPHA  # ...but not once the run's comparisons count
    assert p50.status == "inconclusive"
    assert "not significant after Holm's correction" in p50.message
    assert judgement.verdict == "inconclusive"
    assert judgement.regressions == ()


def test_a_comparison_made_inconclusive_by_holm_says_how_many_cases_would_decide() -> None:
    p50 = comparison(_holm_run(), "latency_p50_ms")
    assert p50.status == "inconclusive"
    assert p50.cases_needed is not None
    assert p50.cases_needed > 6


@pytest.mark.parametrize("run", [_holm_run, _language_drift])
def test_adjusted_p_values_are_holm_over_the_gated_comparisons(
    run: Callable[[], Judgement],
) -> None:
    judgement = run()
    adjusted = [c for c in judgement.metrics if c.p_adjusted is not None]
    assert adjusted
    # One family per metric: its gated comparisons across every scope. Weighted Holm: the
    # overall scope holds half of alpha, the slices share the other half equally.
    for name in {c.name for c in adjusted}:
        family = [c for c in adjusted if c.name == name]
        slices = sum(c.scope != "overall" for c in family)
        weights = [
            (0.5 if c.scope == "overall" else 0.5 / slices)
            if 0 < slices < len(family)
            else 1 / len(family)
            for c in family
        ]
        assert [c.p_adjusted for c in family] == holm([c.p_value or 0.0 for c in family], weights)
    for c in judgement.metrics:
        if c.p_adjusted is not None:
            assert c.p_value is not None
            assert c.p_adjusted >= c.p_value
            assert c.status != "not_gated"
        if c.status == "regressed" and c.p_value is not None:
            assert c.p_adjusted is not None
            assert c.p_adjusted < ALPHA
        if c.status == "not_gated":
            assert c.p_adjusted is None


def test_an_overwhelming_regression_with_an_underflowing_p_value_still_fails() -> None:
    stable = make_arm("stable", 1100, **BARE)
    candidate = make_arm("candidate", 1100, json_valid=False, **BARE)
    judgement = run_judge(stable, candidate)
    json_validity = comparison(judgement, "json_validity")
    assert json_validity.p_value == 0.0  # 2 / 2**1100 underflows
    assert json_validity.status == "regressed"
    assert judgement.verdict == "fail"


# --- budgets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("candidate_latency", "status"), [(1500.0, "regressed"), (500.0, "ok")])
def test_a_latency_budget_binds_the_candidate_of_its_workflow(
    candidate_latency: float, status: str
) -> None:
    budgets = Budgets(latency_p95_ms=1000.0)
    stable = make_arm(
        "stable", 40, lambda i: {"latency_ms": 500.0 + 5 * i}, workflow="summarize", budgets=budgets
    )
    candidate = make_arm(
        "candidate",
        40,
        lambda i: {"latency_ms": candidate_latency + 5 * i},
        workflow="summarize",
        budgets=budgets,
    )
    judgement = run_judge(stable, candidate)
    budget = comparison(judgement, "latency_p95_ms:budget", "workflow:summarize")
    assert budget.status == status
    assert budget.limit_value == 1000.0
    assert budget.test == "budget+bootstrap"
    assert budget.p_value is None  # a bound on one arm, not part of the Holm family
    assert budget.candidate_interval is not None
    low, high = budget.candidate_interval
    if status == "regressed":
        assert low > 1000.0
        assert ("latency_p95_ms:budget", "workflow:summarize") in {
            (r.metric, r.scope) for r in judgement.regressions
        }
        assert judgement.verdict == "fail"
    else:
        assert high <= 1000.0
    assert not [c for c in judgement.metrics if c.name.endswith(":budget") and c.scope == "overall"]


@pytest.mark.parametrize(("failing", "status"), [(range(0, 40, 3), "regressed"), ((), "ok")])
def test_a_min_pass_rate_budget(failing: Sequence[int], status: str) -> None:
    budgets = Budgets(min_pass_rate=0.9)
    stable = make_arm("stable", 40, workflow="classify", budgets=budgets)
    candidate = make_arm(
        "candidate",
        40,
        lambda i: {"outcome": "failed" if i in failing else "passed"},
        workflow="classify",
        budgets=budgets,
    )
    judgement = run_judge(stable, candidate)
    budget = comparison(judgement, "pass_rate:budget", "workflow:classify")
    assert budget.status == status
    assert budget.test == "budget+wilson"
    assert budget.limit_value == 0.9
    passed = 40 - len(failing)
    assert budget.candidate == passed / 40
    ci = wilson_interval(passed, 40)
    assert budget.candidate_interval == (ci.low, ci.high)


def test_a_budget_binds_in_a_workflow_below_min_cases() -> None:
    # Issue 10 item 8: a budget the user wrote used to be "reported, not gated" below min_cases.
    # Both arms are slow in the small workflow: the absolute budget alone is broken.
    slow: dict[str, Any] = {
        "workflow": "small",
        "latency_ms": 3000.0,
        "budgets": Budgets(latency_p95_ms=1000.0),
    }
    stable = make_arm("stable", 40) + make_arm("stable", 5, prefix="s", **slow)
    candidate = make_arm("candidate", 40) + make_arm("candidate", 5, prefix="s", **slow)
    for min_cases in (20, 5):
        judgement = run_judge(stable, candidate, min_cases=min_cases)
        budget = comparison(judgement, "latency_p95_ms:budget", "workflow:small")
        assert budget.status == "regressed"
        assert budget.candidate == 3000.0
        assert judgement.verdict == "fail"
        assert [r.metric for r in judgement.regressions] == ["latency_p95_ms:budget"]


def test_a_budget_over_too_few_cases_breached_by_every_case_fails() -> None:
    slow: dict[str, Any] = {"latency_ms": 60.0, "budgets": Budgets(latency_p50_ms=20.0)}
    judgement = run_judge(make_arm("stable", 3, **slow), make_arm("candidate", 3, **slow), WIDE)
    budget = comparison(judgement, "latency_p50_ms:budget", "workflow:flow")
    assert budget.status == "regressed"
    assert judgement.verdict == "fail"
    assert budget.message == (
        "p50 latency budget [workflow:flow]: candidate 60 ms against <= 20 ms (n=3 cases): "
        "worse than allowed <= 20 ms (every case is beyond the bound)"
    )


def test_a_budget_over_too_few_cases_not_clearly_breached_is_inconclusive() -> None:
    budgets = Budgets(latency_p50_ms=20.0)
    stable = make_arm("stable", 3, latency_ms=10.0, budgets=budgets)
    candidate = make_arm(
        "candidate", 3, lambda i: {"latency_ms": 10.0 if i == 0 else 60.0}, budgets=budgets
    )
    judgement = run_judge(stable, candidate, WIDE)
    budget = comparison(judgement, "latency_p50_ms:budget", "workflow:flow")
    assert budget.status == "inconclusive"
    assert judgement.verdict == "inconclusive"
    assert budget.message in judgement.reasons
    assert budget.message.endswith(
        "(too few cases for an interval (3, at least 5) and not every case is beyond the bound)"
    )


def test_a_budget_with_no_data_on_the_candidate_blocks_a_pass() -> None:
    budgets = Budgets(cost_usd_per_call=0.01)
    stable = make_arm("stable", 30, budgets=budgets)
    candidate = make_arm("candidate", 30, budgets=budgets, cost_usd=None)
    judgement = run_judge(stable, candidate, replace(WIDE, cost_per_call_ratio=None))
    budget = comparison(judgement, "cost_per_call_usd:budget", "workflow:flow")
    assert budget.status == "no_data"
    assert judgement.verdict == "inconclusive"
    assert budget.message == (
        "cost per call budget [workflow:flow]: on the candidate arm 30 calls with usage but "
        "no price (a price is missing), so it cannot be checked against <= $0.010000"
    )


def test_markers_replace_the_run_margins_for_their_workflow() -> None:
    budgets = Budgets(latency_max_ratio=2.0, max_pass_rate_drop=0.5, cost_max_ratio=3.0)
    stable = make_arm("stable", 30, workflow="loose", budgets=budgets)
    stable += make_arm("stable", 30, prefix="t", workflow="strict")
    candidate = make_arm("candidate", 30, workflow="loose", budgets=budgets)
    candidate += make_arm("candidate", 30, prefix="t", workflow="strict")
    judgement = run_judge(stable, candidate)
    for scope, latency, pass_rate, cost in (
        ("workflow:loose", 2.0, -50.0, 3.0),
        ("workflow:strict", 1.2, -2.0, 1.15),
        ("overall", 1.2, -2.0, 1.15),
    ):
        assert comparison(judgement, "latency_p95_ms", scope).limit_value == latency
        assert comparison(judgement, "pass_rate", scope).limit_value == pass_rate
        assert comparison(judgement, "cost_per_call_usd", scope).limit_value == cost


# --- quality scores --------------------------------------------------------------------------


def _scored(drop: float) -> tuple[list[TestRecord], list[TestRecord]]:
    rng = random.Random(7)
    base = [rng.uniform(0.2, 0.9) for _ in range(60)]
    stable = make_arm("stable", 60, lambda i: {"scores": (("faithfulness", base[i]),)})
    candidate = make_arm(
        "candidate",
        60,
        lambda i: {"scores": (("faithfulness", base[i] - drop + rng.gauss(0, 0.02)),)},
    )
    return stable, candidate


def test_quality_scores_are_reported_and_gated_only_with_a_score_margin() -> None:
    stable, candidate = _scored(drop=0.2)

    reported = run_judge(stable, candidate, WIDE)
    score = comparison(reported, "score:faithfulness")
    assert score.status == "not_gated"
    assert score.limit is None
    assert score.p_adjusted is None
    assert score.change == pytest.approx(-0.2, abs=0.01)
    assert reported.verdict == "pass"

    gated = run_judge(stable, candidate, Margins(**{**vars(WIDE), "score_drop": 0.05}))
    score = comparison(gated, "score:faithfulness")
    assert score.status == "regressed"
    assert score.limit_value == -0.05
    assert score.p_adjusted is not None
    assert gated.verdict == "fail"
    assert [(r.metric, r.scope) for r in gated.regressions] == [("score:faithfulness", "overall")]

    unchanged = run_judge(*_scored(drop=0.0), Margins(**{**vars(WIDE), "score_drop": 0.05}))
    assert comparison(unchanged, "score:faithfulness").status == "ok"
    assert unchanged.verdict == "pass"


# --- errors and stable-only runs -------------------------------------------------------------


@pytest.mark.parametrize("silent", ["stable", "candidate"])
def test_an_arm_that_made_no_calls_is_an_error(silent: str) -> None:
    stable = make_arm("stable", 30, calls=() if silent == "stable" else None)
    candidate = make_arm("candidate", 30, calls=() if silent == "candidate" else None)
    judgement = run_judge(stable, candidate)
    assert judgement.verdict == "error"
    assert judgement.reasons == (f"the {silent} arm made no calls",)
    assert judgement.metrics == ()
    assert judgement.regressions == ()
    assert judgement.rollout is None


def test_no_case_on_both_arms_is_an_error() -> None:
    judgement = run_judge(make_arm("stable", 30), make_arm("candidate", 30, prefix="other"))
    assert judgement.verdict == "error"
    assert judgement.reasons == ("no case ran on both arms: nothing can be paired",)


def test_a_stable_only_run_is_judged_by_its_test_outcomes() -> None:
    judgement = run_judge(make_arm("stable", 30), None)
    assert judgement.verdict == "pass"
    assert judgement.candidate is None
    assert judgement.metrics
    assert {c.status for c in judgement.metrics} == {"not_gated"}
    assert all(c.candidate is None for c in judgement.metrics)

    failing = run_judge(
        make_arm("stable", 30, lambda i: {"outcome": "failed" if i == 0 else "passed"}), None
    )
    assert failing.verdict == "fail"
    assert "1 of 30 tests failed" in failing.reasons[0]


# --- the point of pairing --------------------------------------------------------------------


def _correlated_pass_rates(arm: str) -> list[TestRecord]:
    """200 cases; 60 hard ones fail on both arms, and a few discordant ones either way."""
    if arm == "stable":
        return make_arm(
            arm, 200, lambda i: {"outcome": "failed" if i < 60 or i >= 190 else "passed"}, **BARE
        )
    return make_arm(arm, 200, lambda i: {"outcome": "failed" if i < 66 else "passed"}, **BARE)


def test_pairing_narrows_the_intervals_on_correlated_data() -> None:
    scored = _scored(drop=0.0)
    noisy = (noisy_arm("stable", 90, 1), noisy_arm("candidate", 90, 2))
    rates = (_correlated_pass_rates("stable"), _correlated_pass_rates("candidate"))
    for records, name, paired_test, unpaired_test in (
        (scored, "score:faithfulness", "wilcoxon+paired_bootstrap", None),
        (noisy, "latency_p50_ms", "wilcoxon+paired_bootstrap", "bootstrap"),
        (rates, "pass_rate", "mcnemar_mid_p+newcombe", "z_test+bootstrap"),
    ):
        paired = comparison(run_judge(*records), name)
        unpaired = comparison(run_judge(*records, paired=False), name)
        assert paired.test == paired_test
        if unpaired_test is not None:
            assert unpaired.test == unpaired_test
        assert paired.change == pytest.approx(unpaired.change)
        assert width(paired) < width(unpaired) / 2, name


def test_unpaired_scores_are_not_labelled_paired() -> None:
    unpaired = comparison(run_judge(*_scored(drop=0.0), paired=False), "score:faithfulness")
    assert unpaired.test is not None
    assert "paired" not in unpaired.test


# --- resampling internals: the fast paths give the plain computation's bits --------------------


def _bits(values: Sequence[float]) -> list[str]:
    """Values compared bit for bit (0.0 and -0.0 differ, nan equals itself)."""
    return [float(v).hex() for v in values]


def _plain_quantiles(values: Sequence[float]) -> list[float]:
    """Type-7 quantiles at p50 and p95 of the fully sorted values."""
    ordered = sorted(values)
    result = []
    for q in (0.5, 0.95):
        position = (len(ordered) - 1) * q
        lower = math.floor(position)
        upper = min(lower + 1, len(ordered) - 1)
        result.append(ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower))
    return result


@pytest.mark.parametrize("n", [5, 17, 300, 1001])
@pytest.mark.parametrize("word_ok", [True, False])
def test_draws_are_little_endian_32_bit_words_modulo_n(
    n: int, word_ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a 4-byte array("I") the words are read one by one, to the same indexes.
    monkeypatch.setattr(resampling, "_WORD_OK", word_ok)
    rng = random.Random(42)
    expected = []
    for _ in range(3):
        words = rng.randbytes(4 * n)
        expected.append(
            tuple(int.from_bytes(words[i : i + 4], "little") % n for i in range(0, 4 * n, 4))
        )
    assert list(resampling._draws(42, n, 3)) == expected


@pytest.mark.parametrize("paired", [True, False])
def test_packed_integer_sums_are_the_column_sums(paired: bool) -> None:
    rng = random.Random(7)
    n = 50
    stable = [[rng.randrange(4) for _ in range(n)], [rng.randrange(10**6) for _ in range(n)]]
    candidate = [[0] * n, [rng.randrange(3) for _ in range(n)], [n] * n]
    sums = resampling._IntSums(stable, candidate)
    for _ in range(20):
        s_idx = [rng.randrange(n) for _ in range(n)]
        c_idx = s_idx if paired else [rng.randrange(n) for _ in range(n)]
        s_gather = operator.itemgetter(*s_idx)
        c_gather = s_gather if paired else operator.itemgetter(*c_idx)
        expected = [sum(col[i] for i in s_idx) for col in stable]
        expected += [sum(col[i] for i in c_idx) for col in candidate]
        assert sums(s_gather, c_gather) == expected
    with pytest.raises(ValueError, match="non-negative"):
        resampling._IntSums([[1, -1]], [])


def _quantile_arms() -> dict[str, list[list[float]]]:
    rng = random.Random(3)
    flat = [[rng.lognormvariate(6, 0.5)] for _ in range(400)]
    ties = [[float(rng.randrange(40))] for _ in range(400)]
    # Twenty values are 0.0 or -0.0, next to the median: its band holds them.
    zeros = [
        [(0.0, -0.0)[i % 40 // 20] if i % 20 == 0 else (-1) ** i * rng.random()] for i in range(400)
    ]
    pooled = [
        [rng.lognormvariate(6, 0.5) for _ in range(1 + (i % 4 == 0) + (i % 9 == 0))]
        for i in range(300)
    ]
    return {"flat": flat, "ties": ties, "zeros": zeros, "pooled": pooled}


@pytest.mark.parametrize("shape", ["flat", "ties", "zeros", "pooled"])
@pytest.mark.parametrize("sigmas", [None, 0.1])
def test_banded_quantiles_are_the_fully_sorted_quantiles(
    shape: str, sigmas: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sigmas is not None:
        # Narrow bands: resampled quantiles often fall at or past a band's edge.
        monkeypatch.setattr(quantiles, "_BAND_SIGMAS", sigmas)
    lists = _quantile_arms()[shape]
    n = len(lists)
    arm = quantiles._ArmQuantiles(lists)
    assert arm.columns, "the arm is large enough to be banded"
    counts = resampling._IntSums(arm.columns, [])
    rng = random.Random(11)
    resamples = [[rng.randrange(n) for _ in range(n)] for _ in range(200)]
    # Resamples whose quantiles lie far outside the bands: the whole resample is sorted.
    resamples += [[0] * n, [n - 1] * n, sorted(rng.randrange(n) for _ in range(n))[: n // 2] * 2]
    for indexes in resamples:
        gather = operator.itemgetter(*indexes)
        expected = _plain_quantiles([v for i in indexes for v in lists[i]])
        assert _bits(arm.quantiles(gather, counts(gather, gather))) == _bits(expected)


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("single", [True, False])
def test_per_call_ratios_match_left_to_right_float_sums(whole: bool, single: bool) -> None:
    rng = random.Random(5)
    n = 60
    s_cnt = [1 if single else rng.randrange(1, 4) for _ in range(n)]
    c_cnt = [1 if single else rng.randrange(1, 4) for _ in range(n)]

    def total(calls: int) -> float:
        return float(rng.randrange(50, 900) * calls) if whole else rng.random() * 1e-3 * calls

    s_tot = [total(c) for c in s_cnt]
    c_tot = [total(c) for c in c_cnt]
    statistic = ratios._per_call_statistic(s_tot, s_cnt, c_tot, c_cnt)
    for _ in range(50):
        idx = [rng.randrange(n) for _ in range(n)]
        gather = operator.itemgetter(*idx)
        base = sum(s_tot[i] for i in idx) / sum(s_cnt[i] for i in idx)
        expected = (sum(c_tot[i] for i in idx) / sum(c_cnt[i] for i in idx)) / base
        assert _bits([statistic(gather, gather)]) == _bits([expected])


# --- repeats needed ------------------------------------------------------------------------


def _repeated_scores(
    n: int, repeats: int, *, within: float, between: float, drop: float, seed: int
) -> tuple[list[TestRecord], list[TestRecord]]:
    """Scores of ``n`` cases, ``repeats`` each: a case level shared by both arms, a candidate
    effect of ``-drop`` that varies by case with standard deviation ``between``, and noise of
    ``within`` on every repeat."""
    traits = random.Random(77)
    noise = random.Random(seed)
    stable: list[TestRecord] = []
    candidate: list[TestRecord] = []
    for i in range(n):
        case = f"case{i:03d}"
        level = traits.uniform(0.3, 0.7)
        effect = -drop + traits.gauss(0.0, between)
        for r in range(repeats):
            for arm, records, shift in (("stable", stable, 0.0), ("candidate", candidate, effect)):
                score = level + shift + noise.gauss(0.0, within)
                records.append(make_test(arm, case, repeat=r, scores=[("quality", score)]))
    return stable, candidate


SCORE_GATED = Margins(**{**vars(WIDE), "score_drop": 0.05})


def test_repeats_needed_when_the_spread_is_within_cases() -> None:
    # Noise on every repeat, the same effect on every case: more repeats decide, and about as
    # many as predicted do.
    stable, candidate = _repeated_scores(40, 2, within=0.25, between=0.0, drop=0.0, seed=1)
    score = comparison(run_judge(stable, candidate, SCORE_GATED), "score:quality")
    assert score.status == "inconclusive"
    assert score.repeats_needed is not None
    assert score.repeats_needed > 2
    assert score.message.endswith(
        f"; about {score.cases_needed} cases, or {score.repeats_needed} repeats of each case, "
        "would decide"
    )
    decided = 0
    for seed in range(2, 12):
        more = _repeated_scores(
            40, score.repeats_needed, within=0.25, between=0.0, drop=0.0, seed=seed
        )
        status = comparison(run_judge(*more, SCORE_GATED), "score:quality").status
        decided += status == "ok"
    # Sized to put the interval's edge on the margin for this run's estimate: most new runs at
    # that size decide, few at the old size would.
    assert decided >= 5


def test_no_repeats_needed_when_the_spread_is_between_cases() -> None:
    # The effect itself varies from case to case: repeats cannot shrink that, cases can.
    stable, candidate = _repeated_scores(40, 2, within=0.01, between=0.3, drop=0.05, seed=1)
    score = comparison(run_judge(stable, candidate, SCORE_GATED), "score:quality")
    assert score.status == "inconclusive"
    assert score.cases_needed is not None
    assert score.repeats_needed is None
    assert score.message.endswith(f"; about {score.cases_needed} cases would decide")


def test_no_repeats_needed_without_repeats() -> None:
    stable, candidate = _repeated_scores(40, 1, within=0.25, between=0.0, drop=0.0, seed=1)
    score = comparison(run_judge(stable, candidate, SCORE_GATED), "score:quality")
    assert score.status == "inconclusive"
    assert score.repeats_needed is None


def test_repeats_needed_for_a_rate_with_repeats() -> None:
    # Pass or fail drawn afresh on every repeat (a flaky test): repeats decide a rate too.
    noise = random.Random(2)
    stable: list[TestRecord] = []
    candidate: list[TestRecord] = []
    for i in range(100):
        for r in range(2):
            for arm, records in (("stable", stable), ("candidate", candidate)):
                outcome = "passed" if noise.random() < 0.9 else "failed"
                records.append(make_test(arm, f"case{i:03d}", repeat=r, outcome=outcome))
    pass_rate = comparison(run_judge(stable, candidate), "pass_rate")
    assert pass_rate.status == "inconclusive"
    assert pass_rate.test == "wilcoxon+paired_bootstrap"
    assert pass_rate.repeats_needed is not None
    assert pass_rate.cases_needed is not None
    # All the spread is within cases, so K repeats and K cases' worth of calls shrink the
    # interval alike (the split is estimated from the run, so only roughly).
    by_cases = 2 * pass_rate.cases_needed / 100
    assert by_cases / 2 < pass_rate.repeats_needed < by_cases * 2


def test_repeats_needed_needs_every_case_repeated() -> None:
    interval = stats.Interval(-0.2, 0.2)
    noise = random.Random(5)
    per_case = [
        ([noise.random(), noise.random()], [noise.random(), noise.random()]) for _ in range(30)
    ]
    assert inference._repeats_needed(per_case, interval, 0.15, 60) is not None
    assert inference._repeats_needed([*per_case, ([0.3], [0.4, 0.5])], interval, 0.15, 60) is None
    # Already decided (the half-width is within the distance): nothing to add.
    assert inference._repeats_needed(per_case, interval, 0.25, 60) is None
    # Offered only while it takes at most four times the test runs of adding cases: 30 cases x 5
    # repeats is within 4 x 31 cases x 2 repeats, not within 4 x 18 x 2.
    assert inference._repeats_needed(per_case, interval, 0.15, 31) == 5
    assert inference._repeats_needed(per_case, interval, 0.15, 18) is None
    assert inference._repeats_needed(per_case, interval, 0.15, None) is None


# --- issue 10: the gate never says pass without evidence --------------------------------------


def test_an_arm_with_no_successful_call_is_an_error() -> None:
    # Item 2: stable 500 on every call, candidate 402 on every call used to `pass`.
    failing = {"error_kind": "server_error", "status": 500, "latency_ms": None, "cost_usd": None}
    stable = make_arm("stable", 20, outcome="failed", **failing)
    broke = {**failing, "error_kind": "quota", "status": 402}
    candidate = make_arm("candidate", 20, outcome="failed", **broke)
    judgement = run_judge(stable, candidate, WIDE, min_stable_pass_rate=None)
    assert judgement.verdict == "error"
    assert judgement.reasons == (
        "no call on the stable arm succeeded: all 20 attempts failed (server_error x20), "
        "so there is nothing to compare",
        "no call on the candidate arm succeeded: all 20 attempts failed (quota x20), "
        "so there is nothing to compare",
    )
    assert judgement.rollout is None
    healthy = run_judge(make_arm("stable", 20), candidate, WIDE)
    assert healthy.verdict == "error"
    assert healthy.reasons[0].startswith("no call on the candidate arm succeeded")


def test_a_stable_arm_below_the_pass_rate_floor_is_an_error() -> None:
    # Item 7: 400 cases failing on both arms used to read "0.0% -> 0.0% ok" and `pass`.
    stable = make_arm("stable", 40, outcome="failed")
    candidate = make_arm("candidate", 40, outcome="failed")
    judgement = run_judge(stable, candidate, WIDE)
    assert judgement.verdict == "error"
    assert judgement.reasons == (
        "the stable arm passed only 0 of 40 tests (0.0%), below the 50% floor "
        "(gate.min_stable_pass_rate): a suite that fails on the model in use cannot vouch for "
        "the candidate; fix the tests or their expectations",
    )
    assert judgement.rollout is None
    assert comparison(judgement, "pass_rate").stable == 0.0  # kept for diagnosis
    assert run_judge(stable, candidate, WIDE, min_stable_pass_rate=None).verdict == "pass"
    # At the floor it judges as before.
    half = make_arm("stable", 40, lambda i: {"outcome": "failed" if i % 2 else "passed"})
    assert run_judge(half, half, WIDE).verdict != "error"


def test_a_gated_metric_on_one_arm_only_names_that_arm_and_blocks_a_pass() -> None:
    # The real server: empty replies have no first token; the row used to say "either arm".
    stable = make_arm("stable", 30, streamed=True, ttft_ms=50.0)
    candidate = make_arm("candidate", 30, streamed=True, ttft_ms=None)
    judgement = run_judge(stable, candidate, WIDE)
    ttft = comparison(judgement, "ttft_p95_ms")
    assert ttft.status == "no_data"
    assert ttft.stable == 50.0
    assert ttft.samples == Samples(30, 0)
    assert ttft.message == (
        "p95 time to first token: no data on the candidate arm (the stable arm has 30 "
        "streamed calls with a first token), "
        "so it cannot be checked against x1.50"
    )
    assert judgement.verdict == "inconclusive"
    assert ttft.message in judgement.reasons
    # Without a margin it is reported and does not block.
    loose = run_judge(stable, candidate, replace(WIDE, ttft_p95_ratio=None))
    assert loose.verdict == "pass"
    assert comparison(loose, "ttft_p95_ms").message == (
        "p95 time to first token: no data on the candidate arm (the stable arm has 30 "
        "streamed calls with a first token)"
    )
    reverse = run_judge(candidate, stable, WIDE)
    assert (
        "no data on the stable arm (the candidate arm has 30 streamed calls with a first token)"
        in (comparison(reverse, "ttft_p95_ms").message)
    )


def test_streams_without_usage_are_named_and_cost_is_judged_on_the_cases_that_have_it() -> None:
    # The real server ignores stream_options.include_usage: streamed calls have no cost.
    def arm(name: str) -> list[TestRecord]:
        plain = make_arm(name, 30)
        streams = make_arm(name, 10, prefix="s", streamed=True, usage=None, cost_usd=None)
        return plain + streams

    judgement = run_judge(arm("stable"), arm("candidate"), WIDE)
    cost = comparison(judgement, "cost_per_call_usd")
    assert cost.status == "ok"
    assert cost.n == 30
    assert cost.message.endswith(
        "(judged on the 30 of 40 cases with a cost on both arms; on the stable arm 10 streamed "
        "calls reported no usage (the server did not honour stream_options.include_usage), so "
        "no cost; on the candidate arm 10 streamed calls reported no usage (the server did not "
        "honour stream_options.include_usage), so no cost)"
    )
    assert "a price is missing" not in cost.message
    assert judgement.verdict == "pass"
    # Said in the summary too, not only in the verdict's metric entry.
    assert judgement.reasons[1:] == (cost.message,)
    assert judgement.rollout is not None
    triggers = {t["metric"]: t for t in judgement.rollout["rollback_triggers"]}
    assert triggers["cost_per_call_usd"]["threshold"] == 0.0015


def test_a_missing_price_is_still_unknown_and_says_so() -> None:
    candidate = [without_cost(r) for r in make_arm("candidate", 30)]
    judgement = run_judge(make_arm("stable", 30), candidate, WIDE)
    cost = comparison(judgement, "cost_per_call_usd")
    assert cost.status == "inconclusive"
    assert cost.message == (
        "cost per call: unknown on the candidate arm 30 calls with usage but no price "
        "(a price is missing), so it cannot be judged against x1.50"
    )


def test_rollback_triggers_are_clamped_and_come_only_from_gated_figures() -> None:
    # Item 10: schema validity at 0% gave `schema_validity < -1.0%`; a p95 over 30 calls, a
    # trigger it was never gated on.
    stable = make_arm("stable", 30, checks=("json", "schema"), schema_valid=False)
    candidate = make_arm("candidate", 30, checks=("json", "schema"), schema_valid=False)
    judgement = run_judge(stable, candidate, WIDE)
    assert judgement.verdict == "pass", judgement.reasons
    rollout = judgement.rollout
    assert rollout is not None
    metrics = [t["metric"] for t in rollout["rollback_triggers"]]
    assert "schema_validity" not in metrics
    assert "latency_p95_ms" not in metrics
    assert "latency_p50_ms" in metrics
    assert all(
        0 <= t["threshold"] <= 1 for t in rollout["rollback_triggers"] if t["unit"] == "rate"
    )
    left_out = {t["metric"]: t["reason"] for t in rollout["triggers_left_out"]}
    assert set(left_out) == {"schema_validity", "latency_p95_ms"}
    assert left_out["schema_validity"] == (
        "stable 0.00% - 20.0 pts is outside the metric's range: it could never fire"
    )
    assert left_out["latency_p95_ms"].startswith("its figure was not gated: p95 latency")


def test_an_inconclusive_rollout_is_shadow_only() -> None:
    # Item 11: 3 cases used to carry canary steps up to 100%.
    judgement = run_judge(make_arm("stable", 3), make_arm("candidate", 3, outcome="failed"))
    assert judgement.verdict == "inconclusive"
    rollout = judgement.rollout
    assert rollout is not None
    assert rollout["allowed"] is True
    assert [(s["phase"], s["traffic_percent"]) for s in rollout["plan"]] == [("shadow", 0)]
    assert "shadow traffic only" in rollout["reason"]
