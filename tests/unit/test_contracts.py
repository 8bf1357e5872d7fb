"""Checking replies against a model contract: JSON, schemas, tool calls, language, tokens."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from pytest_modelgate.calls import contracts
from pytest_modelgate.calls.contracts import ContractCheck, check_reply, prompt_text
from pytest_modelgate.calls.langdetect import detect_language
from pytest_modelgate.calls.protocol import ParsedCompletion, ParsedToolCall
from pytest_modelgate.calls.records import Usage
from pytest_modelgate.markers import ModelContract

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "status": {"enum": ["open", "shipped", "refunded"]},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
    },
    "required": ["order_id", "status"],
}

LOOKUP_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"order_id": {"type": "string", "pattern": "^SO-[0-9]+$"}},
    "required": ["order_id"],
    "additionalProperties": False,
}


class RefundDecision(pydantic.BaseModel):
    """A structured reply validated with pydantic."""

    order_id: str
    approve: bool
    reasons: list[str] = []


def reply(
    text: str = "",
    *calls: tuple[str, str],
    completion_tokens: int | None = None,
    usage: bool = True,
) -> ParsedCompletion:
    """A completion with ``text``, tool calls given as ``(name, arguments)`` and usage."""
    return ParsedCompletion(
        text=text,
        tool_calls=tuple(
            ParsedToolCall(f"call_{i}", name, arguments)
            for i, (name, arguments) in enumerate(calls)
        ),
        usage=Usage(prompt_tokens=20, completion_tokens=completion_tokens) if usage else None,
    )


def request(user: str = "Where is my order SO-1?", *, tools: list[Any] | None = None) -> Any:
    """A chat-completions request whose last user message is ``user``."""
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Vous êtes un assistant. Répondez toujours poliment."},
            {"role": "user", "content": user},
        ],
    }
    if tools is not None:
        body["tools"] = tools
    return body


def function(name: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A declared tool of a request."""
    declared: dict[str, Any] = {"name": name, "description": f"{name} tool"}
    if parameters is not None:
        declared["parameters"] = parameters
    return {"type": "function", "function": declared}


# --------------------------------------------------------------------------------------------
# prompt_text


def test_prompt_text_is_the_last_user_message() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": "second question"},
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "content": "tool output"},
        ]
    }
    assert prompt_text(body) == "second question"


def test_prompt_text_joins_text_parts() -> None:
    content = [
        {"type": "text", "text": "What is in"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "text", "text": "this picture?"},
    ]
    assert prompt_text({"messages": [{"role": "user", "content": content}]}) == (
        "What is in\nthis picture?"
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        {"messages": "hello"},
        {"messages": [{"role": "system", "content": "be nice"}]},
        {"messages": [{"role": "user", "content": None}]},
    ],
)
def test_prompt_text_empty_without_user_text(body: Any) -> None:
    assert prompt_text(body) == ""


# --------------------------------------------------------------------------------------------
# No contract


def test_no_contract_checks_nothing_but_computes_languages() -> None:
    check = check_reply(
        None,
        request("我的快递还没到，已经等了一个星期了。"),
        reply("not json at all, and in English", completion_tokens=10_000),
    )
    assert check == ContractCheck(
        json_valid=None,
        schema_valid=None,
        tool_calls_valid=None,
        language_match=None,
        output_tokens_ok=None,
        prompt_language="zh",
        reply_language="en",
        violations=(),
    )
    assert check.ok


def test_no_request_and_no_text() -> None:
    check = check_reply(ModelContract(json=True, language="match"), None, reply(""))
    assert check.json_valid is None
    assert check.language_match is None
    assert check.prompt_language is None
    assert check.reply_language is None
    assert check.violations == ()


# --------------------------------------------------------------------------------------------
# JSON


@pytest.mark.parametrize(
    "text",
    ['{"order_id": "SO-1"}', '  \n{"order_id": "SO-1"}\n  ', "[1, 2, 3]", '"just a string"', "42"],
)
def test_json_valid(text: str) -> None:
    check = check_reply(ModelContract(json=True), request(), reply(text))
    assert check.json_valid is True
    assert check.violations == ()


@pytest.mark.parametrize(
    "text",
    [
        'Sure! Here it is: {"order_id": "SO-1"}',
        '```json\n{"order_id": "SO-1"}\n```',
        '{"order_id": "SO-1"',
        '{"ratio": NaN}',
        '{"a": 1} {"b": 2}',
        "   ",
    ],
)
def test_json_invalid(text: str) -> None:
    check = check_reply(ModelContract(json=True), request(), reply(text))
    assert check.json_valid is False
    assert check.violations == (f'reply is not JSON: "{" ".join(text.split())}"',)
    assert not check.ok


def test_json_not_checked_without_json_in_contract() -> None:
    check = check_reply(ModelContract(language="en"), request(), reply("plain text"))
    assert check.json_valid is None
    assert check.schema_valid is None


def test_json_not_checked_when_reply_has_only_tool_calls() -> None:
    check = check_reply(
        ModelContract(json=True), request(), reply("", ("lookup_order", '{"order_id": "SO-1"}'))
    )
    assert check.json_valid is None


# --------------------------------------------------------------------------------------------
# Schemas


def schema_contract(schema: dict[str, Any] = ORDER_SCHEMA) -> ModelContract:
    """A contract with an inline JSON Schema, as the marker parser builds it."""
    return ModelContract(json=True, schema=schema, schema_source="inline")


def test_schema_valid() -> None:
    text = json.dumps({"order_id": "SO-1", "status": "shipped", "items": [{"sku": "A"}]})
    check = check_reply(schema_contract(), request(), reply(text))
    assert (check.json_valid, check.schema_valid, check.violations) == (True, True, ())


@pytest.mark.parametrize(
    ("instance", "violation"),
    [
        (
            {"order_id": "SO-1", "status": "lost"},
            "reply does not match the schema at $.status: 'lost' is not one of "
            "['open', 'shipped', 'refunded']",
        ),
        (
            {"status": "open"},
            "reply does not match the schema at $: 'order_id' is a required property",
        ),
        (
            {"order_id": "SO-1", "status": "open", "items": [{"sku": "A"}, {"qty": 2}]},
            "reply does not match the schema at $.items[1]: 'sku' is a required property",
        ),
        (
            ["SO-1", "open"],
            "reply does not match the schema at $: ['SO-1', 'open'] is not of type 'object'",
        ),
    ],
)
def test_schema_error_names_path_and_message(instance: Any, violation: str) -> None:
    check = check_reply(schema_contract(), request(), reply(json.dumps(instance)))
    assert check.json_valid is True
    assert check.schema_valid is False
    assert check.violations == (violation,)


def test_reply_that_is_not_json_fails_the_schema_with_one_violation() -> None:
    check = check_reply(schema_contract(), request(), reply("Your order SO-1 has shipped."))
    assert check.json_valid is False
    assert check.schema_valid is False
    assert check.violations == ('reply is not JSON: "Your order SO-1 has shipped."',)


def test_schema_error_message_is_short() -> None:
    instance = {"order_id": "SO-1", "status": "x" * 5000}
    check = check_reply(schema_contract(), request(), reply(json.dumps(instance)))
    assert check.schema_valid is False
    assert len(check.violations[0]) < 200
    assert check.violations[0].endswith("…")


def pydantic_contract() -> ModelContract:
    """A contract whose schema came from a pydantic model."""
    return ModelContract(
        json=True,
        schema=RefundDecision.model_json_schema(),
        schema_model=RefundDecision,
        schema_source="pydantic:RefundDecision",
    )


def test_pydantic_schema_valid() -> None:
    text = '{"order_id": "SO-1", "approve": true, "reasons": ["damaged"]}'
    check = check_reply(pydantic_contract(), request(), reply(text))
    assert (check.schema_valid, check.violations) == (True, ())


@pytest.mark.parametrize(
    ("text", "violation"),
    [
        ('{"approve": true}', "reply does not match the schema at $.order_id: Field required"),
        (
            '{"order_id": "SO-1", "approve": "perhaps"}',
            "reply does not match the schema at $.approve: Input should be a valid boolean, "
            "unable to interpret input",
        ),
        (
            '{"order_id": "SO-1", "approve": false, "reasons": ["late", 7]}',
            "reply does not match the schema at $.reasons[1]: Input should be a valid string",
        ),
    ],
)
def test_pydantic_schema_errors(text: str, violation: str) -> None:
    check = check_reply(pydantic_contract(), request(), reply(text))
    assert check.schema_valid is False
    assert check.violations == (violation,)


def test_pydantic_model_decides_over_the_generated_schema() -> None:
    # Lax pydantic accepts "yes" for a bool; the JSON Schema ({"type": "boolean"}) would not.
    check = check_reply(
        pydantic_contract(), request(), reply('{"order_id": "A", "approve": "yes"}')
    )
    assert check.schema_valid is True


def test_validators_are_cached_by_canonical_schema() -> None:
    contracts._compiled.cache_clear()
    reordered = dict(reversed(list(ORDER_SCHEMA.items())))
    text = '{"order_id": "SO-1", "status": "open"}'
    for schema in (ORDER_SCHEMA, reordered, ORDER_SCHEMA):
        assert check_reply(schema_contract(schema), request(), reply(text)).schema_valid
    info = contracts._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 2)


# --------------------------------------------------------------------------------------------
# Tool calls


def test_tool_calls_valid() -> None:
    check = check_reply(
        ModelContract(tools=("lookup_order", "refund")),
        request(tools=[function("lookup_order", LOOKUP_PARAMETERS), function("refund")]),
        reply("", ("lookup_order", '{"order_id": "SO-42"}'), ("refund", '{"amount": 10}')),
    )
    assert check.tool_calls_valid is True
    assert check.violations == ()


def test_tool_not_allowed_by_contract() -> None:
    check = check_reply(
        ModelContract(tools=("lookup_order",)),
        request(tools=[function("lookup_order"), function("delete_account")]),
        reply("", ("lookup_order", "{}"), ("delete_account", '{"user": 7}')),
    )
    assert check.tool_calls_valid is False
    assert check.violations == (
        'tool call "delete_account" is not allowed by the contract (allowed: lookup_order)',
    )


def test_empty_tools_contract_forbids_every_call() -> None:
    check = check_reply(ModelContract(tools=()), request(), reply("", ("lookup_order", "{}")))
    assert check.tool_calls_valid is False
    assert check.violations == (
        'tool call "lookup_order" is not allowed by the contract (allowed: none)',
    )


def test_tool_not_declared_by_request() -> None:
    check = check_reply(
        ModelContract(tools=("lookup_order", "refund")),
        request(tools=[function("lookup_order"), function("escalate")]),
        reply("", ("refund", '{"amount": 10}')),
    )
    assert check.tool_calls_valid is False
    assert check.violations == (
        'tool call "refund" is not a function the request declared (declared: lookup_order, '
        "escalate)",
    )


@pytest.mark.parametrize("arguments", ['{"order_id": "SO-1"', "[1, 2]", '"SO-1"', "null"])
def test_tool_arguments_not_a_json_object(arguments: str) -> None:
    check = check_reply(
        ModelContract(tools=("lookup_order",)), request(), reply("", ("lookup_order", arguments))
    )
    assert check.tool_calls_valid is False
    assert check.violations == (
        f'tool call "lookup_order" arguments are not a JSON object: "{arguments}"',
    )


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"order_id": 42}', "$.order_id: 42 is not of type 'string'"),
        ('{"order_id": "42"}', "$.order_id: '42' does not match '^SO-[0-9]+$'"),
        ("{}", "$: 'order_id' is a required property"),
        (
            '{"order_id": "SO-1", "force": true}',
            "$: Additional properties are not allowed ('force' was unexpected)",
        ),
    ],
)
def test_tool_arguments_violate_declared_parameters(arguments: str, problem: str) -> None:
    check = check_reply(
        ModelContract(json=True),
        request(tools=[function("lookup_order", LOOKUP_PARAMETERS)]),
        reply("", ("lookup_order", arguments)),
    )
    assert check.tool_calls_valid is False
    assert check.violations == (
        f'tool call "lookup_order" arguments do not match its parameters at {problem}',
    )


def test_empty_arguments_count_as_an_empty_object() -> None:
    declared = request(tools=[function("list_orders", {"type": "object", "properties": {}})])
    ok = check_reply(ModelContract(), declared, reply("", ("list_orders", "")))
    assert ok.tool_calls_valid is True
    required = request(tools=[function("lookup_order", LOOKUP_PARAMETERS)])
    bad = check_reply(ModelContract(), required, reply("", ("lookup_order", "")))
    assert bad.tool_calls_valid is False


def test_every_bad_call_gets_a_violation() -> None:
    check = check_reply(
        ModelContract(tools=("lookup_order",)),
        request(),
        reply("", ("refund", "{}"), ("lookup_order", "oops"), ("lookup_order", "{}")),
    )
    assert check.tool_calls_valid is False
    assert len(check.violations) == 2
    assert check.violations[0].startswith('tool call "refund" is not allowed')
    assert check.violations[1].startswith('tool call "lookup_order" arguments are not a JSON')


def test_declared_tools_are_checked_under_any_contract_and_only_then() -> None:
    declared, wrong = request(tools=[function("lookup_order")]), reply("", ("cancel_order", "{}"))
    unchecked = check_reply(None, declared, wrong)
    assert (unchecked.tool_calls_valid, unchecked.violations) == (None, ())
    check = check_reply(ModelContract(), declared, wrong)
    assert check.tool_calls_valid is False
    assert check.violations == (
        'tool call "cancel_order" is not a function the request declared (declared: lookup_order)',
    )


def test_tools_not_checked_when_nobody_names_tools() -> None:
    check = check_reply(ModelContract(json=True), request(), reply("", ("anything", "not json")))
    assert check.tool_calls_valid is None
    assert check.violations == ()


def test_tools_not_checked_when_reply_calls_none() -> None:
    check = check_reply(
        ModelContract(tools=("lookup_order",)),
        request(tools=[function("lookup_order")]),
        reply("Your order has shipped."),
    )
    assert check.tool_calls_valid is None


def test_invalid_declared_parameters_are_not_held_against_the_reply() -> None:
    broken = {"type": "object", "required": "order_id"}
    check = check_reply(
        ModelContract(),
        request(tools=[function("lookup_order", broken)]),
        reply("", ("lookup_order", "{}")),
    )
    assert check.tool_calls_valid is True


def test_tool_arguments_are_not_language_checked() -> None:
    check = check_reply(
        ModelContract(language="zh"),
        request("我的快递还没到"),
        reply("", ("lookup_order", '{"note": "the customer is waiting for a parcel"}')),
    )
    assert check.reply_language is None
    assert check.language_match is None


# --------------------------------------------------------------------------------------------
# Language

PROMPTS = {
    "en": "Where is my order? I have been waiting for two weeks.",
    "zh": "我的订单在哪里？我已经等了两个星期了。",
    "ja": "注文はどこですか？もう二週間待っています。",
    "es": "¿Dónde está mi pedido? Llevo dos semanas esperando.",
    "fr": "Où est ma commande ? J'attends depuis deux semaines.",
    "de": "Wo ist meine Bestellung? Ich warte schon seit zwei Wochen.",
}
REPLIES = {
    "en": "Your refund has been processed and should arrive within five business days.",
    "zh": "您的退款已经处理完毕，预计五个工作日内到账。",
    "ja": "返金の手続きが完了しました。五営業日以内に届く予定です。",
    "es": "Su reembolso ya está procesado y llegará en cinco días hábiles.",
    "fr": "Votre remboursement a été effectué, vous le recevrez dans cinq jours ouvrés.",
    "de": "Ihre Rückerstattung wurde bearbeitet und ist in fünf Werktagen auf Ihrem Konto.",
}
# A reply in the wrong language for each prompt language.
WRONG = {"en": "de", "zh": "ja", "ja": "zh", "es": "fr", "fr": "es", "de": "en"}


@pytest.mark.parametrize("language", sorted(PROMPTS))
def test_language_match(language: str) -> None:
    check = check_reply(
        ModelContract(language="match"), request(PROMPTS[language]), reply(REPLIES[language])
    )
    assert (check.prompt_language, check.reply_language) == (language, language)
    assert check.language_match is True
    assert check.violations == ()


@pytest.mark.parametrize("language", sorted(PROMPTS))
def test_language_mismatch(language: str) -> None:
    wrong = WRONG[language]
    check = check_reply(
        ModelContract(language="match"), request(PROMPTS[language]), reply(REPLIES[wrong])
    )
    assert (check.prompt_language, check.reply_language) == (language, wrong)
    assert check.language_match is False
    assert check.violations == (
        f'reply is in "{wrong}", expected "{language}" (the prompt\'s language): '
        f'"{REPLIES[wrong]}"',
    )


@pytest.mark.parametrize(("code", "text", "expected"), [("zh", "zh", True), ("zh", "en", False)])
def test_fixed_language(code: str, text: str, expected: bool) -> None:
    # The prompt is in English: a fixed code ignores the prompt's language.
    check = check_reply(ModelContract(language=code), request(PROMPTS["en"]), reply(REPLIES[text]))
    assert check.language_match is expected
    assert len(check.violations) == (0 if expected else 1)
    if not expected:
        assert check.violations[0].startswith(f'reply is in "en", expected "{code}": ')


def test_language_unknown_when_reply_has_no_letters() -> None:
    check = check_reply(ModelContract(language="match"), request(PROMPTS["de"]), reply("12345 !!"))
    assert check.reply_language is None
    assert check.language_match is None
    assert check.violations == ()


def test_language_match_unknown_when_prompt_has_no_letters() -> None:
    contract = ModelContract(language="match")
    assert check_reply(contract, request("10423 ???"), reply(REPLIES["en"])).language_match is None
    # A fixed code does not need the prompt.
    fixed = check_reply(ModelContract(language="en"), request("123"), reply(REPLIES["en"]))
    assert fixed.language_match is True


def test_language_of_a_json_reply_is_the_language_of_its_values() -> None:
    values = {
        "customer_reply_message": "好的，已退款",
        "escalation_required_flag": False,
        "internal_classification": {"primary_category_label": "退款"},
    }
    text = json.dumps(values, ensure_ascii=False)
    # The keys alone would make the raw text English.
    assert detect_language(text) == "en"
    check = check_reply(
        ModelContract(json=True, language="match"), request(PROMPTS["zh"]), reply(text)
    )
    assert check.reply_language == "zh"
    assert check.language_match is True
    assert check.violations == ()


def test_language_of_a_json_reply_without_contract() -> None:
    text = json.dumps({"answer": "Su pedido ya está en camino.", "tags": ["envío"]})
    assert check_reply(None, request(), reply(text)).reply_language == "es"


def test_json_reply_without_strings_has_no_language() -> None:
    assert check_reply(None, request(), reply('{"count": 3, "ok": true}')).reply_language is None


# --------------------------------------------------------------------------------------------
# max_output_tokens


@pytest.mark.parametrize(("tokens", "expected"), [(399, True), (400, True), (401, False)])
def test_max_output_tokens(tokens: int, expected: bool) -> None:
    check = check_reply(
        ModelContract(max_output_tokens=400), request(), reply("ok", completion_tokens=tokens)
    )
    assert check.output_tokens_ok is expected
    expected_violations = (
        () if expected else ("reply used 401 completion tokens, more than max_output_tokens=400",)
    )
    assert check.violations == expected_violations


def test_max_output_tokens_unknown_usage() -> None:
    contract = ModelContract(max_output_tokens=10)
    assert check_reply(contract, request(), reply("ok", usage=False)).output_tokens_ok is None
    no_count = reply("ok", completion_tokens=None)
    assert check_reply(contract, request(), no_count).output_tokens_ok is None


def test_max_output_tokens_not_checked_without_it() -> None:
    check = check_reply(ModelContract(json=True), request(), reply("{}", completion_tokens=10**6))
    assert check.output_tokens_ok is None


# --------------------------------------------------------------------------------------------
# Quotes and several failures


def test_violation_quote_is_short() -> None:
    long_reply = "I am sorry, " + "this is a very long answer that is not JSON. " * 200
    check = check_reply(ModelContract(json=True, language="zh"), request(), reply(long_reply))
    assert len(check.violations) == 2
    for violation in check.violations:
        assert len(violation) < 200
        assert violation.endswith('…"')
    assert check.violations[0].startswith('reply is not JSON: "I am sorry, this is a very')


def test_all_failures_are_reported_in_order() -> None:
    contract = ModelContract(
        json=True, tools=("lookup_order",), language="match", max_output_tokens=5
    )
    check = check_reply(
        contract,
        request(PROMPTS["fr"]),
        reply(REPLIES["en"], ("refund", "{}"), completion_tokens=50),
    )
    assert (
        check.json_valid,
        check.tool_calls_valid,
        check.language_match,
        check.output_tokens_ok,
    ) == (False, False, False, False)
    assert [v.split(" ", 2)[:2] for v in check.violations] == [
        ["reply", "is"],
        ["tool", "call"],
        ["reply", "is"],
        ["reply", "used"],
    ]
    assert "not JSON" in check.violations[0]
    assert 'expected "fr"' in check.violations[2]
