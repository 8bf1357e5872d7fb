"""Gate markers validated into frozen dataclasses: every argument, every error message."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pydantic
import pytest

from pytest_modelgate.calls.langdetect import detect_language
from pytest_modelgate.calls.records import Budgets
from pytest_modelgate.markers import (
    MARKER_HELP,
    MARKER_NAMES,
    SUPPORTED_LANGUAGES,
    CostBudget,
    LatencyBudget,
    MarkerError,
    MarkerSet,
    ModelContract,
    Quality,
    marker_lines,
    parse_markers,
)

TEST_ID = "tests/test_refunds.py::test_refund[case-1]"
TEST_PATH = Path("/project/tests/test_refunds.py")

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "status": {"enum": ["open", "closed"]}},
    "required": ["order_id"],
}


class RefundDecision(pydantic.BaseModel):
    """A structured reply used as a pydantic schema."""

    order_id: str
    approve: bool


def parse(marker: str, /, *args: Any, test_path: Path = TEST_PATH, **kwargs: Any) -> MarkerSet:
    """Parse a single marker application."""
    return parse_markers(TEST_ID, test_path, [(marker, args, kwargs)])


def error(marker: str, /, *args: Any, test_path: Path = TEST_PATH, **kwargs: Any) -> str:
    """The message of the MarkerError a single marker application raises."""
    with pytest.raises(MarkerError) as info:
        parse(marker, *args, test_path=test_path, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# Registration


def test_marker_help_covers_every_marker() -> None:
    assert tuple(MARKER_HELP) == MARKER_NAMES
    assert all(text.strip() and "\n" not in text for text in MARKER_HELP.values())


def test_marker_lines_start_with_the_signature() -> None:
    lines = marker_lines()
    assert [line.split("(", 1)[0] for line in lines] == list(MARKER_NAMES)
    assert lines[0].startswith("model_contract(json=False, schema=None")
    assert lines[4] == f"workflow(name): {MARKER_HELP['workflow']}"


def test_marker_classes_are_frozen_and_keyword_only() -> None:
    budget = LatencyBudget(p95_ms=300.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.p95_ms = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        LatencyBudget(300.0)  # type: ignore[call-arg]


# --------------------------------------------------------------------------------------------
# Valid forms


def test_latency_budget_values_become_floats() -> None:
    latency = parse("latency_budget", p50_ms=120, p95_ms=450.5, ttft_p95_ms=90, max_ratio=1).latency
    assert latency == LatencyBudget(p50_ms=120.0, p95_ms=450.5, ttft_p95_ms=90.0, max_ratio=1.0)
    assert latency is not None
    assert isinstance(latency.p50_ms, float)


def test_latency_budget_accepts_a_single_argument_and_equal_percentiles() -> None:
    assert parse("latency_budget", max_ratio=1.3).latency == LatencyBudget(max_ratio=1.3)
    equal = parse("latency_budget", p50_ms=200, p95_ms=200).latency
    assert equal == LatencyBudget(p50_ms=200.0, p95_ms=200.0)


def test_cost_budget() -> None:
    cost = parse("cost_budget", usd_per_call=0.002, usd_per_test=0.05, max_ratio=1.15).cost
    assert cost == CostBudget(usd_per_call=0.002, usd_per_test=0.05, max_ratio=1.15)


@pytest.mark.parametrize(("rate", "drop"), [(0, 0), (1, 1), (0.9, 0.05)])
def test_quality_accepts_fractions_including_bounds(rate: float, drop: float) -> None:
    assert parse("quality", min_pass_rate=rate, max_drop=drop).quality == Quality(
        min_pass_rate=float(rate), max_drop=float(drop)
    )


def test_none_means_not_set() -> None:
    assert parse("cost_budget", usd_per_call=None, max_ratio=2).cost == CostBudget(max_ratio=2.0)


def test_workflow_positional_or_keyword() -> None:
    assert parse("workflow", "refunds").workflow == "refunds"
    assert parse("workflow", name="order status").workflow == "order status"


def test_contract_json_only() -> None:
    assert parse("model_contract", json=True).contract == ModelContract(json=True)


def test_contract_tools_keep_order_and_drop_duplicates() -> None:
    contract = parse("model_contract", tools=["lookup_order", "refund", "lookup_order"]).contract
    assert contract == ModelContract(tools=("lookup_order", "refund"))
    assert parse("model_contract", tools=("refund",)).contract == ModelContract(tools=("refund",))


def test_contract_empty_tools_means_no_tool_may_be_called() -> None:
    assert parse("model_contract", tools=[]).contract == ModelContract(tools=())


@pytest.mark.parametrize("language", ["match", "en", "zh", "ja", "es", "fr", "de", "ko"])
def test_contract_language(language: str) -> None:
    assert parse("model_contract", language=language).contract == ModelContract(language=language)


def test_contract_max_output_tokens() -> None:
    contract = parse("model_contract", max_output_tokens=400).contract
    assert contract == ModelContract(max_output_tokens=400)


# One sentence per supported code: the set must hold exactly what the detector can return.
LANGUAGE_SAMPLES = {
    "en": "Your refund has been processed and should arrive within five business days.",
    "es": "Su reembolso ya está procesado y llegará en cinco días hábiles.",
    "pt": "O seu pedido já foi enviado, obrigado pela paciência.",
    "fr": "Votre remboursement a été effectué, vous le recevrez dans cinq jours ouvrés.",
    "de": "Ihre Rückerstattung wurde bearbeitet und ist in fünf Werktagen auf Ihrem Konto.",
    "it": "Il tuo ordine è stato spedito, grazie per la pazienza.",
    "zh": "您的退款已经处理完毕，预计五个工作日内到账。",
    "ja": "返金の手続きが完了しました。五営業日以内に届く予定です。",
    "ko": "주문이 발송되었습니다.",
    "ru": "Ваш заказ отправлен.",
    "ar": "تم شحن طلبك",
    "hi": "आपका ऑर्डर भेज दिया गया है",
    "th": "คำสั่งซื้อของคุณถูกจัดส่งแล้ว",
    "he": "ההזמנה שלך נשלחה",
    "el": "Η παραγγελία σας στάλθηκε",
}


def test_supported_languages_are_what_the_detector_returns() -> None:
    assert set(LANGUAGE_SAMPLES) == SUPPORTED_LANGUAGES
    detected = {code: detect_language(text) for code, text in LANGUAGE_SAMPLES.items()}
    assert detected == {code: code for code in LANGUAGE_SAMPLES}


# --------------------------------------------------------------------------------------------
# Schemas


def test_schema_from_dict_is_a_copy_and_implies_json() -> None:
    schema = json.loads(json.dumps(ORDER_SCHEMA))
    contract = parse("model_contract", schema=schema).contract
    schema["required"].append("status")
    assert contract is not None
    assert contract.json is True
    assert contract.schema == ORDER_SCHEMA
    assert contract.schema_source == "inline"
    assert contract.schema_model is None


def test_schema_from_relative_json_path(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    schema_file = tmp_path / "schemas" / "order.json"
    schema_file.write_text(json.dumps(ORDER_SCHEMA), encoding="utf-8")
    test_path = tmp_path / "test_orders.py"
    contract = parse("model_contract", schema="schemas/order.json", test_path=test_path).contract
    assert contract is not None
    assert contract.schema == ORDER_SCHEMA
    assert contract.schema_source == str(schema_file.resolve())
    assert contract.json is True


def test_schema_from_absolute_path_object(tmp_path: Path) -> None:
    schema_file = tmp_path / "order.json"
    schema_file.write_text(json.dumps(ORDER_SCHEMA), encoding="utf-8")
    contract = parse("model_contract", schema=schema_file).contract
    assert contract is not None
    assert contract.schema == ORDER_SCHEMA
    assert contract.schema_source == str(schema_file.resolve())


def test_schema_from_pydantic_model() -> None:
    contract = parse("model_contract", schema=RefundDecision, json=True).contract
    assert contract is not None
    assert contract.schema_model is RefundDecision
    assert contract.schema == RefundDecision.model_json_schema()
    assert contract.schema_source == "pydantic:RefundDecision"
    assert contract.json is True


def test_contract_with_schema_dict_is_hashable() -> None:
    marker_set = parse("model_contract", schema=ORDER_SCHEMA, tools=["refund"])
    assert hash(marker_set) == hash(parse("model_contract", schema=ORDER_SCHEMA, tools=["refund"]))


def test_missing_schema_file_names_the_resolved_file(tmp_path: Path) -> None:
    message = error("model_contract", schema="nope.json", test_path=tmp_path / "test_x.py")
    assert message == (
        f"{TEST_ID}: @pytest.mark.model_contract(schema='nope.json'): "
        f"schema file {(tmp_path / 'nope.json').resolve()} does not exist"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"type": "object",', "is not valid JSON"),
        ('["type", "object"]', "must hold a JSON object"),
        ('{"type": "objekt"}', "not a valid JSON Schema at $.type"),
        ('{"required": "order_id"}', "not a valid JSON Schema at $.required"),
    ],
)
def test_bad_schema_file_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    schema_file = tmp_path / "bad.json"
    schema_file.write_text(content, encoding="utf-8")
    message = error("model_contract", schema="bad.json", test_path=tmp_path / "test_x.py")
    prefix = f"{TEST_ID}: @pytest.mark.model_contract(schema='bad.json'): schema file "
    assert message.startswith(prefix + str(schema_file.resolve()))
    assert problem in message


def test_schema_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    message = error("model_contract", schema="schemas", test_path=tmp_path / "test_x.py")
    assert message.endswith(f"schema file {(tmp_path / 'schemas').resolve()} does not exist")


# --------------------------------------------------------------------------------------------
# Errors: each names the test id, the marker with the argument, and the argument in the problem


class _Opaque:
    """A value json cannot serialise."""


ERRORS: list[tuple[str, tuple[Any, ...], dict[str, Any], str, str]] = [
    # marker, args, kwargs, the argument list as shown, the problem
    ("latency_budget", (), {"p95_ms": -3}, "p95_ms=-3", "p95_ms must be a number > 0"),
    ("latency_budget", (), {"p50_ms": 0}, "p50_ms=0", "p50_ms must be a number > 0"),
    (
        "latency_budget",
        (),
        {"ttft_p95_ms": "300"},
        "ttft_p95_ms='300'",
        "ttft_p95_ms must be a number > 0, got str",
    ),
    (
        "latency_budget",
        (),
        {"p95_ms": True},
        "p95_ms=True",
        "p95_ms must be a number > 0, got bool",
    ),
    ("latency_budget", (), {"p95_ms": math.nan}, "p95_ms=nan", "p95_ms must be a number > 0"),
    ("latency_budget", (), {"p95_ms": math.inf}, "p95_ms=inf", "p95_ms must be a number > 0"),
    ("latency_budget", (), {"max_ratio": 0.9}, "max_ratio=0.9", "max_ratio must be a number >= 1"),
    (
        "latency_budget",
        (),
        {"p50_ms": 500, "p95_ms": 300},
        "p50_ms=500, p95_ms=300",
        "p50_ms cannot exceed p95_ms",
    ),
    (
        "latency_budget",
        (),
        {"p99_ms": 900},
        "p99_ms=900",
        "unknown argument p99_ms; valid arguments: p50_ms, p95_ms, ttft_p95_ms, max_ratio",
    ),
    (
        "latency_budget",
        (300,),
        {},
        "300",
        "takes no positional arguments; use keywords: p50_ms, p95_ms, ttft_p95_ms, max_ratio",
    ),
    (
        "latency_budget",
        (),
        {},
        "",
        "sets nothing; give at least one of p50_ms, p95_ms, ttft_p95_ms, max_ratio",
    ),
    (
        "latency_budget",
        (),
        {"p95_ms": None},
        "p95_ms=None",
        "sets nothing; give at least one of p50_ms, p95_ms, ttft_p95_ms, max_ratio",
    ),
    ("cost_budget", (), {"usd_per_call": 0}, "usd_per_call=0", "usd_per_call must be a number > 0"),
    (
        "cost_budget",
        (),
        {"usd_per_test": -0.5},
        "usd_per_test=-0.5",
        "usd_per_test must be a number > 0",
    ),
    (
        "cost_budget",
        (),
        {"usd_per_call": "0.01"},
        "usd_per_call='0.01'",
        "usd_per_call must be a number > 0, got str",
    ),
    ("cost_budget", (), {"max_ratio": 0.5}, "max_ratio=0.5", "max_ratio must be a number >= 1"),
    (
        "cost_budget",
        (),
        {"usd": 1},
        "usd=1",
        "unknown argument usd; valid arguments: usd_per_call, usd_per_test, max_ratio",
    ),
    (
        "cost_budget",
        (0.01,),
        {},
        "0.01",
        "takes no positional arguments; use keywords: usd_per_call, usd_per_test, max_ratio",
    ),
    (
        "cost_budget",
        (),
        {},
        "",
        "sets nothing; give at least one of usd_per_call, usd_per_test, max_ratio",
    ),
    (
        "quality",
        (),
        {"min_pass_rate": 95},
        "min_pass_rate=95",
        "min_pass_rate must be a fraction in [0, 1] (0.95, not 95)",
    ),
    (
        "quality",
        (),
        {"min_pass_rate": 1.5},
        "min_pass_rate=1.5",
        "min_pass_rate must be a fraction in [0, 1] (0.015, not 1.5)",
    ),
    (
        "quality",
        (),
        {"max_drop": -0.1},
        "max_drop=-0.1",
        "max_drop must be a fraction in [0, 1]",
    ),
    (
        "quality",
        (),
        {"max_drop": "5%"},
        "max_drop='5%'",
        "max_drop must be a fraction in [0, 1], got str",
    ),
    (
        "quality",
        (),
        {"max_drop": False},
        "max_drop=False",
        "max_drop must be a fraction in [0, 1], got bool",
    ),
    (
        "quality",
        (),
        {"min_rate": 0.9, "drop": 0.1},
        "min_rate=0.9, drop=0.1",
        "unknown arguments min_rate, drop; valid arguments: min_pass_rate, max_drop",
    ),
    (
        "quality",
        (0.9,),
        {},
        "0.9",
        "takes no positional arguments; use keywords: min_pass_rate, max_drop",
    ),
    ("quality", (), {}, "", "sets nothing; give at least one of min_pass_rate, max_drop"),
    ("workflow", (), {}, "", 'name is required, e.g. @pytest.mark.workflow("refunds")'),
    ("workflow", ("",), {}, "''", "name must be a non-empty string"),
    ("workflow", ("  ",), {}, "'  '", "name must be a non-empty string"),
    ("workflow", (3,), {}, "3", "name must be a non-empty string"),
    ("workflow", (), {"name": None}, "name=None", "name must be a non-empty string"),
    (
        "workflow",
        ("a", "b"),
        {},
        "'a', 'b'",
        "takes at most 1 positional argument, got 2",
    ),
    (
        "workflow",
        ("a",),
        {"name": "b"},
        "'a', name='b'",
        "give the name once, positionally or as name=",
    ),
    (
        "workflow",
        (),
        {"label": "x"},
        "label='x'",
        "unknown argument label; valid arguments: name",
    ),
    ("model_contract", (), {"json": "yes"}, "json='yes'", "json must be True or False, got str"),
    ("model_contract", (), {"json": 1}, "json=1", "json must be True or False, got int"),
    (
        "model_contract",
        (),
        {"json": False},
        "json=False",
        "sets nothing; give at least one of json, schema, tools, language, max_output_tokens",
    ),
    (
        "model_contract",
        (),
        {},
        "",
        "sets nothing; give at least one of json, schema, tools, language, max_output_tokens",
    ),
    (
        "model_contract",
        (True,),
        {},
        "True",
        "takes no positional arguments; use keywords: json, schema, tools, language, "
        "max_output_tokens",
    ),
    (
        "model_contract",
        (),
        {"strict": True},
        "strict=True",
        "unknown argument strict; valid arguments: json, schema, tools, language, "
        "max_output_tokens",
    ),
    (
        "model_contract",
        (),
        {"json": False, "schema": ORDER_SCHEMA},
        "json=False, schema=" + repr(ORDER_SCHEMA)[:79] + "…",
        "json=False contradicts schema (a schema implies json)",
    ),
    (
        "model_contract",
        (),
        {"tools": "refund"},
        "tools='refund'",
        "tools must be a list of tool names, got str",
    ),
    (
        "model_contract",
        (),
        {"tools": ["refund", ""]},
        "tools=['refund', '']",
        "tools must hold non-empty strings, got ''",
    ),
    ("model_contract", (), {"tools": [1]}, "tools=[1]", "tools must hold non-empty strings, got 1"),
    (
        "model_contract",
        (),
        {"language": "EN"},
        "language='EN'",
        "language must be 'match' or a supported language code (codes are lower case): ar, de",
    ),
    (
        "model_contract",
        (),
        {"language": "english"},
        "language='english'",
        "language must be 'match' or a supported language code: ar, de, el, en, es, fr, he, hi",
    ),
    (
        "model_contract",
        (),
        {"language": 1},
        "language=1",
        "language must be 'match' or a language code (ar, de",
    ),
    (
        "model_contract",
        (),
        {"max_output_tokens": 0},
        "max_output_tokens=0",
        "max_output_tokens must be a whole number >= 1",
    ),
    (
        "model_contract",
        (),
        {"max_output_tokens": 1.5},
        "max_output_tokens=1.5",
        "max_output_tokens must be a whole number >= 1",
    ),
    (
        "model_contract",
        (),
        {"max_output_tokens": True},
        "max_output_tokens=True",
        "max_output_tokens must be a whole number >= 1",
    ),
    (
        "model_contract",
        (),
        {"schema": 42},
        "schema=42",
        "schema must be a dict (JSON Schema), a path to a .json file or a pydantic BaseModel "
        "subclass, got int",
    ),
    (
        "model_contract",
        (),
        {"schema": {"type": "objekt"}},
        "schema={'type': 'objekt'}",
        "schema is not a valid JSON Schema at $.type: 'objekt' is not valid",
    ),
    (
        "model_contract",
        (),
        {"schema": {"properties": {"a": {"minLength": -1}}}},
        "schema={'properties': {'a': {'minLength': -1}}}",
        "schema is not a valid JSON Schema at $.properties.a.minLength",
    ),
    (
        "model_contract",
        (),
        {"schema": {"type": "object", "default": _Opaque}},
        "schema={'type': 'object', 'default': <class '",
        "schema must be JSON-serialisable",
    ),
    (
        "model_contract",
        (),
        {"schema": ""},
        "schema=''",
        "schema must not be an empty path",
    ),
    (
        "model_contract",
        (),
        {"schema": RefundDecision(order_id="SO-1", approve=True)},
        "schema=RefundDecision(order_id='SO-1', approve=True)",
        "schema must be the pydantic model class RefundDecision, not an instance",
    ),
]


@pytest.mark.parametrize(
    ("marker", "args", "kwargs", "shown", "problem"),
    ERRORS,
    ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)],
)
def test_marker_error_names_test_marker_and_argument(
    marker: str, args: tuple[Any, ...], kwargs: dict[str, Any], shown: str, problem: str
) -> None:
    message = error(marker, *args, **kwargs)
    prefix = f"{TEST_ID}: @pytest.mark.{marker}("
    assert message.startswith(prefix)
    assert shown in message[len(prefix) :].split("): ", 1)[0]
    assert problem in message.split("): ", 1)[1]


def test_marker_error_full_message_example() -> None:
    assert error("latency_budget", p95_ms=-3) == (
        "tests/test_refunds.py::test_refund[case-1]: "
        "@pytest.mark.latency_budget(p95_ms=-3): p95_ms must be a number > 0"
    )


def test_marker_error_is_a_value_error() -> None:
    assert issubclass(MarkerError, ValueError)


# --------------------------------------------------------------------------------------------
# Several marks


def test_closest_marker_wins_without_merging() -> None:
    marks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("latency_budget", (), {"p95_ms": 100}),  # function
        ("workflow", ("refunds",), {}),
        ("latency_budget", (), {"p50_ms": 50}),  # class
        ("workflow", ("support",), {}),  # module
    ]
    marker_set = parse_markers(TEST_ID, TEST_PATH, marks)
    assert marker_set.latency == LatencyBudget(p95_ms=100.0)
    assert marker_set.workflow == "refunds"


def test_farther_markers_are_not_validated() -> None:
    marks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("quality", (), {"max_drop": 0.1}),
        ("quality", (), {"bogus": 1}),
    ]
    assert parse_markers(TEST_ID, TEST_PATH, marks).quality == Quality(max_drop=0.1)


def test_other_marks_are_ignored() -> None:
    marks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("parametrize", ("x", [1, 2]), {}),
        ("skipif", (True,), {"reason": "no"}),
        ("usefixtures", ("llm",), {}),
    ]
    assert parse_markers(TEST_ID, TEST_PATH, marks) == MarkerSet()


def test_all_markers_together() -> None:
    marks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("model_contract", (), {"json": True, "language": "match"}),
        ("latency_budget", (), {"p95_ms": 800}),
        ("cost_budget", (), {"usd_per_test": 0.1}),
        ("quality", (), {"min_pass_rate": 0.8}),
        ("workflow", (), {"name": "triage"}),
    ]
    assert parse_markers(TEST_ID, TEST_PATH, marks) == MarkerSet(
        contract=ModelContract(json=True, language="match"),
        latency=LatencyBudget(p95_ms=800.0),
        cost=CostBudget(usd_per_test=0.1),
        quality=Quality(min_pass_rate=0.8),
        workflow="triage",
    )


def test_error_in_a_later_marker_still_raises() -> None:
    marks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("workflow", ("refunds",), {}),
        ("cost_budget", (), {"usd_per_call": -1}),
    ]
    with pytest.raises(MarkerError, match=r"cost_budget\(usd_per_call=-1\)"):
        parse_markers(TEST_ID, TEST_PATH, marks)


# --------------------------------------------------------------------------------------------
# budgets()


def test_budgets_none_when_no_budget_marker() -> None:
    assert MarkerSet().budgets() is None
    assert MarkerSet(contract=ModelContract(json=True), workflow="refunds").budgets() is None


def test_budgets_maps_every_field() -> None:
    marker_set = MarkerSet(
        latency=LatencyBudget(p50_ms=100.0, p95_ms=300.0, ttft_p95_ms=80.0, max_ratio=1.2),
        cost=CostBudget(usd_per_call=0.001, usd_per_test=0.01, max_ratio=1.1),
        quality=Quality(min_pass_rate=0.9, max_drop=0.05),
    )
    assert marker_set.budgets() == Budgets(
        latency_p50_ms=100.0,
        latency_p95_ms=300.0,
        ttft_p95_ms=80.0,
        latency_max_ratio=1.2,
        cost_usd_per_call=0.001,
        cost_usd_per_test=0.01,
        cost_max_ratio=1.1,
        min_pass_rate=0.9,
        max_pass_rate_drop=0.05,
    )


@pytest.mark.parametrize(
    ("marker_set", "expected"),
    [
        (MarkerSet(latency=LatencyBudget(ttft_p95_ms=50.0)), Budgets(ttft_p95_ms=50.0)),
        (MarkerSet(cost=CostBudget(max_ratio=1.5)), Budgets(cost_max_ratio=1.5)),
        (MarkerSet(quality=Quality(max_drop=0.0)), Budgets(max_pass_rate_drop=0.0)),
    ],
)
def test_budgets_from_a_single_marker(marker_set: MarkerSet, expected: Budgets) -> None:
    assert marker_set.budgets() == expected


def test_budgets_from_parsed_markers() -> None:
    marks: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("quality", (), {"min_pass_rate": 0.75}),
        ("latency_budget", (), {"max_ratio": 1.25}),
    ]
    budgets = parse_markers(TEST_ID, TEST_PATH, marks).budgets()
    assert budgets == Budgets(min_pass_rate=0.75, latency_max_ratio=1.25)


def test_the_plugins_marker_names_are_the_markers_modules() -> None:
    from pytest_modelgate import markers, plugin

    assert plugin._MARKER_NAMES == markers.MARKER_NAMES
