"""Metrics plugins add (``CustomMetric``): definitions, values, and how the judge compares them."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord
from pytest_modelgate.calls.transport import Attempt, CallLog
from pytest_modelgate.judge import common
from pytest_modelgate.judge.metrics import (
    BUILTIN_METRIC_NAMES,
    CustomMetric,
    CustomMetricError,
    MeasuredCall,
    resolve_custom_metrics,
)
from pytest_modelgate.judge.model import RunData
from pytest_modelgate.judge.paired import PairedJudge


def polite(**overrides: Any) -> CustomMetric:
    fields: dict[str, Any] = {
        "name": "polite",
        "kind": "rate",
        "extract": lambda call: "please" in call.text,
        "margin": 0.05,
    }
    return CustomMetric(**{**fields, **overrides})


def test_every_builtin_comparison_name_is_reserved() -> None:
    judged = {spec.name for spec in (*common._RATES, *common._RATIOS)}
    assert judged <= BUILTIN_METRIC_NAMES


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Polite"}, "a metric name is a lowercase identifier"),
        ({"name": "score"}, "the name of a built-in metric"),
        ({"name": "json_validity"}, "the name of a built-in metric"),
        ({"kind": "median"}, "kind must be one of rate, mean, ratio"),
        ({"margin": 2}, "a rate's margin is a fraction"),
        ({"margin": -0.1}, "margin must be a finite number >= 0"),
        ({"margin": True}, "margin must be a number or None"),
        ({"kind": "ratio", "margin": 1.2}, "a ratio metric is lower-is-better"),
        ({"kind": "ratio", "higher_is_better": False, "margin": 0.9}, "(>= 1)"),
        ({"unit": "ms"}, "a rate's unit is rate"),
        ({"extract": "please"}, "extract must be a function"),
    ],
)
def test_a_wrong_definition_says_what_is_wrong(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(CustomMetricError, match=message.replace("(", r"\(").replace(")", r"\)")):
        polite(**overrides)


def test_margins_from_modelgate_yaml_replace_the_metrics_own() -> None:
    (metric,) = resolve_custom_metrics([polite()], {"polite": None})
    assert metric.margin is None
    with pytest.raises(CustomMetricError, match=r"gate\.metrics names polit, which no"):
        resolve_custom_metrics([polite()], {"polit": 0.1})
    with pytest.raises(CustomMetricError, match=r"gate\.metrics\.polite: a rate's margin"):
        resolve_custom_metrics([polite()], {"polite": 5.0})
    with pytest.raises(CustomMetricError, match="defined by two"):
        resolve_custom_metrics([polite(), polite()], {})
    with pytest.raises(CustomMetricError, match="return a list of"):
        resolve_custom_metrics(["polite"], {})


def test_a_definition_travels_as_data_without_its_function() -> None:
    metric = polite(label="politeness")
    again = CustomMetric.from_definition(metric.definition())
    assert again.definition() == metric.definition()
    with pytest.raises(CustomMetricError, match="extracted in another process"):
        again.extract(MeasuredCall(record=_record(), text="please"))


def test_values_are_checked_for_their_kind() -> None:
    call = MeasuredCall(record=_record(), text="please wait")
    assert polite().value_of(call) == 1.0
    assert polite(extract=lambda c: None).value_of(call) is None
    with pytest.raises(CustomMetricError, match="return True, False or None"):
        polite(extract=lambda c: 1).value_of(call)
    mean = CustomMetric(name="words", kind="mean", extract=lambda c: len(c.text.split()))
    assert mean.value_of(call) == 2.0
    with pytest.raises(CustomMetricError, match="return a finite number"):
        CustomMetric(name="x", kind="mean", extract=lambda c: float("nan")).value_of(call)
    ratio = CustomMetric(name="x", kind="ratio", higher_is_better=False, extract=lambda c: -1)
    with pytest.raises(CustomMetricError, match="finite non-negative"):
        ratio.value_of(call)


def _record(**fields: Any) -> CallRecord:
    values: dict[str, Any] = {
        "test_id": "t",
        "case_id": "c",
        "arm": "stable",
        "model": "m",
        "call_index": 0,
        "started_at": 0.0,
        "latency_ms": 10.0,
    }
    return CallRecord(**{**values, **fields})


def _attempt(text: str | None, *, ok: bool = True) -> Attempt:
    from pytest_modelgate.calls.protocol import ParsedCompletion

    return Attempt(
        client="modelgate",
        method="POST",
        endpoint="http://127.0.0.1/v1/chat/completions",
        request_key=text or "failed",
        started_at=0.0,
        started_monotonic=0.0,
        ended_monotonic=0.0,
        latency_ms=5.0,
        status=200 if ok else 500,
        error_kind=None if ok else "server_error",
        completion=ParsedCompletion(text=text or "") if ok else None,
        request={"messages": [{"role": "user", "content": "hi"}]},
    )


def test_the_call_log_stores_values_and_hands_records_to_the_hook() -> None:
    log = CallLog(test_id="t", case_id="c", arm="stable", model="m")
    seen: list[CallRecord] = []
    log.custom_metrics = (polite(),)
    log.on_record = seen.append
    log.add(_attempt("please hold"))
    log.add(_attempt("hold on"))
    log.add(_attempt(None, ok=False))
    assert [r.extra for r in log.records()] == [{"polite": 1.0}, {"polite": 0.0}, {}]
    assert seen == list(log.records())
    assert log.problems == log.hook_errors == []


def test_a_failing_hook_or_extract_is_a_problem_not_an_exception() -> None:
    log = CallLog(test_id="t", case_id="c", arm="stable", model="m")
    log.secrets = ("sk-secret-value",)
    log.custom_metrics = (polite(extract=lambda c: 1 / 0),)

    def hook(record: CallRecord) -> None:
        raise RuntimeError("no key sk-secret-value here")

    log.on_record = hook
    record = log.add(_attempt("please"))
    assert record.extra == {}
    assert len(log.records()) == 1
    assert log.hook_errors[0].startswith("metric 'polite': extract raised ZeroDivisionError")
    assert "pytest_modelgate_call_recorded hook raised RuntimeError" in log.hook_errors[1]
    assert all("sk-secret-value" not in e for e in log.hook_errors)
    assert log.problems == [f"t: {e}" for e in log.hook_errors]


def _run(stable_polite: int, candidate_polite: int, n: int = 40) -> RunData:
    def arm(name: str, polite_cases: int) -> list[TestRecord]:
        return [
            TestRecord(
                test_id=f"test_flow[{i}]",
                case_id=f"case{i:02d}",
                workflow="flow",
                arm=name,  # type: ignore[arg-type]
                model=f"{name}-model",
                outcome="passed",
                calls=(
                    _record(
                        arm=name,
                        case_id=f"case{i:02d}",
                        test_id=f"test_flow[{i}]",
                        extra={"polite": float(i < polite_cases), "chars": 50.0 + i},
                    ),
                ),
            )
            for i in range(n)
        ]

    return RunData(
        stable=arm("stable", stable_polite), candidate=arm("candidate", candidate_polite)
    )


def test_the_judge_compares_a_rate_like_a_builtin_one() -> None:
    judge = PairedJudge(min_stable_pass_rate=None).with_metrics([polite(label="politeness")])
    judgement = judge.judge(_run(40, 10))
    (comparison,) = [c for c in judgement.metrics if c.name == "polite"]
    assert comparison.status == "regressed"
    assert (comparison.stable, comparison.candidate) == (1.0, 0.25)
    assert comparison.test == "mcnemar_mid_p+newcombe"
    assert comparison.message.startswith("politeness: 100.0% -> 25.0% (-75.0 pts")
    assert judgement.verdict == "fail"
    assert [r.metric for r in judgement.regressions] == ["polite"]


def test_a_metric_without_a_margin_is_reported_not_gated() -> None:
    judge = PairedJudge(min_stable_pass_rate=None).with_metrics([polite(margin=None)])
    (comparison,) = [c for c in judge.judge(_run(40, 10)).metrics if c.name == "polite"]
    assert comparison.status == "not_gated"


def test_a_ratio_metric_is_judged_per_call() -> None:
    chars = CustomMetric(
        name="chars", kind="ratio", higher_is_better=False, extract=len, margin=1.1
    )  # type: ignore[arg-type]
    judgement = PairedJudge(min_stable_pass_rate=None).with_metrics([chars]).judge(_run(40, 40))
    (comparison,) = [c for c in judgement.metrics if c.name == "chars"]
    assert comparison.change_kind == "ratio"
    assert comparison.change == pytest.approx(1.0)
    assert comparison.status == "ok"


def test_without_plugin_metrics_the_judgement_is_unchanged() -> None:
    run = _run(40, 10)
    plain = PairedJudge(min_stable_pass_rate=None).judge(run)
    extended = PairedJudge(min_stable_pass_rate=None).with_metrics([polite()]).judge(run)
    assert [c for c in extended.metrics if c.name != "polite"] == list(plain.metrics)
