"""The OpenAI-compatible simulator over real HTTP on loopback, with httpx and the openai SDK."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from pytest_modelgate.calls.langdetect import detect_language
from pytest_modelgate.simulator import (
    LatencySpec,
    Scenario,
    ScenarioError,
    ServedRequest,
    SimulatorServer,
    load_scenario,
    main_simulate,
    serve_forever,
)
from pytest_modelgate.simulator.tasks import CATEGORIES, classify, reply_text

KEY = "sim-secret"
CHAT = "/chat/completions"
ORDER_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look up an order by id.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "cancel_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    },
]


def scenario(
    models: dict[str, Any] | None = None, *, api_key: str | None = KEY, seed: int = 7
) -> Scenario:
    return Scenario.model_validate(
        {"api_key": api_key, "seed": seed, "models": models or {"sim-stable": {}}}
    )


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    models = {"sim-stable": {}, "sim-candidate": {"verbosity": 2.0}}
    with SimulatorServer(scenario(models), port=0) as server:
        yield server


@pytest.fixture
def http(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sim.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def sdk(sim: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=sim.base_url, api_key=KEY, max_retries=0)


def user(text: str) -> Any:
    # Any: the SDK's TypedDict message types would reject a plain dict literal in mypy.
    return [{"role": "user", "content": text}]


def body(model: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": user(text), **extra}


def sse_events(raw: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [block.removeprefix("data: ") for block in raw.split("\n\n") if block]


# -- endpoints, auth, errors ----------------------------------------------------------------------


def test_models_endpoint(sim: SimulatorServer, http: httpx.Client, sdk: openai.OpenAI) -> None:
    listing = http.get("/models").json()
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == ["sim-stable", "sim-candidate"]
    assert all(model["object"] == "model" for model in listing["data"])
    assert [model.id for model in sdk.models.list()] == ["sim-stable", "sim-candidate"]
    assert http.get("/models/sim-stable").json()["id"] == "sim-stable"
    missing = http.get("/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_base_url_and_request_log(sim: SimulatorServer, http: httpx.Client) -> None:
    assert sim.base_url == f"http://127.0.0.1:{sim.port}/v1"
    assert sim.port > 0
    http.post(CHAT, json=body("sim-stable", "hi"))
    http.get("/models")
    assert sim.requests == [
        ServedRequest("sim-stable", "/v1/chat/completions", 200),
        ServedRequest(None, "/v1/models", 200),
    ]
    sim.clear_requests()
    assert sim.requests == []


@pytest.mark.parametrize(
    ("headers", "message_part"),
    [({}, "didn't provide"), ({"Authorization": "Bearer wrong"}, "Incorrect API key")],
)
def test_auth_failure(sim: SimulatorServer, headers: dict[str, str], message_part: str) -> None:
    response = httpx.post(sim.base_url + CHAT, json=body("sim-stable", "hi"), headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert message_part in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert httpx.get(sim.base_url + "/models", headers=headers).status_code == 401


def test_auth_failure_through_sdk(sim: SimulatorServer) -> None:
    client = openai.OpenAI(base_url=sim.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="sim-stable", messages=user("hi"))


def test_no_api_key_configured_accepts_anything() -> None:
    with SimulatorServer(scenario(api_key=None)) as server:
        response = httpx.post(server.base_url + CHAT, json=body("sim-stable", "hi"))
        assert response.status_code == 200


def test_unknown_model(sim: SimulatorServer, http: httpx.Client, sdk: openai.OpenAI) -> None:
    response = http.post(CHAT, json=body("gpt-nope", "hi"))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "The model `gpt-nope` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="gpt-nope", messages=user("hi"))
    assert sim.requests[-1] == ("gpt-nope", "/v1/chat/completions", 404)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"messages": user("hi")}).encode(), "model"),
        (json.dumps({"model": "sim-stable"}).encode(), "messages"),
        (json.dumps({"model": "sim-stable", "messages": []}).encode(), "messages"),
        (
            json.dumps({"model": "sim-stable", "messages": [{"role": "robot"}]}).encode(),
            "messages[0]",
        ),
        (json.dumps(body("sim-stable", "hi", stream="yes")).encode(), "stream"),
        (
            json.dumps(body("sim-stable", "hi", stream_options={"include_usage": True})).encode(),
            "stream_options",
        ),
        (json.dumps(body("sim-stable", "hi", max_tokens=0)).encode(), "max_tokens"),
        (json.dumps(body("sim-stable", "hi", n=2)).encode(), "n"),
        (
            json.dumps(body("sim-stable", "hi", response_format={"type": "xml"})).encode(),
            "response_format",
        ),
    ],
)
def test_malformed_body(http: httpx.Client, payload: bytes, param: str | None) -> None:
    response = http.post(CHAT, content=payload, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    # The connection stays usable after an error (keep-alive framing is intact).
    assert http.post(CHAT, json=body("sim-stable", "hi")).status_code == 200


def test_unknown_url_and_wrong_method(http: httpx.Client) -> None:
    assert http.post("/completions", json={}).json()["error"]["code"] == "unknown_url"
    assert http.get(CHAT).status_code == 405
    assert http.delete("/models").status_code == 405


# -- tasks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("en", "Hello, I have a question about your service."),
        ("zh", "你好，我想咨询一下你们的服务。"),
        ("ja", "こんにちは、サービスについて質問があります。"),
        ("es", "Hola, tengo una pregunta sobre su servicio."),
        ("fr", "Bonjour, j'ai une question sur votre service."),
        ("de", "Hallo, ich habe eine Frage zu Ihrem Service."),
        ("ko", "안녕하세요, 서비스에 대해 질문이 있습니다."),
        ("pt", "Olá, tenho uma dúvida sobre o serviço de vocês."),
    ],
)
def test_reply_in_user_language(sdk: openai.OpenAI, language: str, text: str) -> None:
    completion = sdk.chat.completions.create(
        model="sim-stable",
        messages=[
            {"role": "system", "content": "You are a helpful support agent."},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": text},
        ],
    )
    content = completion.choices[0].message.content
    assert content == reply_text("reply", language)
    assert detect_language(content) == language
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.tool_calls is None


def test_reply_reads_the_text_parts_of_a_user_message(sdk: openai.OpenAI) -> None:
    # The language is the text parts' (Chinese); the image part's URL is English-like text
    # that must not count.
    completion = sdk.chat.completions.create(
        model="sim-stable",
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/the-order.png"},
                    },
                    {"type": "text", "text": "你好，我想咨询一下你们的服务。"},
                ],
            },
        ],
    )
    assert completion.choices[0].message.content == reply_text("reply", "zh")


def test_verbosity_adds_sentences(http: httpx.Client) -> None:
    stable = http.post(CHAT, json=body("sim-stable", "Hello there")).json()
    candidate = http.post(CHAT, json=body("sim-candidate", "Hello there")).json()
    assert candidate["choices"][0]["message"]["content"] == reply_text("reply", "en", verbosity=2)
    ratio = candidate["usage"]["completion_tokens"] / stable["usage"]["completion_tokens"]
    assert 1.6 < ratio < 2.6


@pytest.mark.parametrize(
    ("text", "category", "priority", "language"),
    [
        ("I want my money back for this order, it's unacceptable!", "refund", "high", "en"),
        ("I was charged twice on my last invoice", "billing", "normal", "en"),
        ("My package hasn't arrived, please help ASAP", "shipping", "urgent", "en"),
        ("I can't log in, I forgot my password", "account", "normal", "en"),
        ("The app crashed again after the update", "technical", "high", "en"),
        ("What are your opening hours?", "other", "normal", "en"),
        ("我要退款，马上处理！", "refund", "urgent", "zh"),
        ("这个月的账单又扣款两次", "billing", "high", "zh"),
        ("荷物がまだ届かないです。至急確認してください", "shipping", "urgent", "ja"),
        ("パスワードを忘れてログインできません", "account", "normal", "ja"),
        ("Mi paquete no llegó otra vez", "shipping", "high", "es"),
        ("La aplicación no funciona, es urgente", "technical", "urgent", "es"),
        ("Je voudrais un remboursement s'il vous plaît", "refund", "normal", "fr"),
        ("My phone charger is broken", "technical", "normal", "en"),
    ],
)
def test_json_classification(
    http: httpx.Client, text: str, category: str, priority: str, language: str
) -> None:
    response = http.post(
        CHAT, json=body("sim-stable", text, response_format={"type": "json_object"})
    ).json()
    document = json.loads(response["choices"][0]["message"]["content"])
    assert document["category"] == category
    assert document["priority"] == priority
    assert document["language"] == language
    assert isinstance(document["summary"], str)
    assert document["summary"]
    assert classify(text) == (category, priority)


def test_json_mode_from_system_message(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="sim-stable",
        messages=[
            {"role": "system", "content": "Classify the ticket. Answer in JSON."},
            {"role": "user", "content": "Where is my refund?"},
        ],
    )
    assert json.loads(completion.choices[0].message.content or "")["category"] == "refund"


def test_json_summary_is_short(http: httpx.Client) -> None:
    text = "I was charged twice. " * 20
    response = http.post(
        CHAT,
        json=body("sim-stable", text, response_format={"type": "json_schema", "json_schema": {}}),
    ).json()
    summary = json.loads(response["choices"][0]["message"]["content"])["summary"]
    assert len(summary) <= 61
    assert summary.endswith("…")


def test_tool_call_round_trip(sdk: openai.OpenAI) -> None:
    messages: list[Any] = user("Where is my order SO-10423? It's been a week.")
    first = sdk.chat.completions.create(model="sim-stable", messages=messages, tools=ORDER_TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.function.name == "lookup_order"
    assert json.loads(call.function.arguments) == {"order_id": "SO-10423"}
    assert call.id.startswith("call_")

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(
        {
            "role": "tool",
            "tool_call_id": call.id,
            "content": json.dumps({"order_id": "SO-10423", "status": "shipped"}),
        }
    )
    second = sdk.chat.completions.create(model="sim-stable", messages=messages, tools=ORDER_TOOLS)
    assert second.choices[0].message.content == "Your order SO-10423 is shipped."
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我的订单SO-10423到哪了？", "您的订单 SO-10423 状态：shipped。"),
        ("¿Dónde está mi pedido SO-10423?", "Su pedido SO-10423 está en estado: shipped."),
        ("注文SO-10423はどこですか？", "ご注文 SO-10423 のステータスは「shipped」です。"),
    ],
)
def test_tool_summary_in_user_language(http: httpx.Client, text: str, expected: str) -> None:
    first = http.post(CHAT, json=body("sim-stable", text, tools=ORDER_TOOLS)).json()
    message = first["choices"][0]["message"]
    call = message["tool_calls"][0]
    messages = [
        *user(text),
        message,
        {"role": "tool", "tool_call_id": call["id"], "content": '{"status": "shipped"}'},
    ]
    # Without order_id in the tool result the id comes from the user's message.
    second = http.post(
        CHAT, json={"model": "sim-stable", "messages": messages, "tools": ORDER_TOOLS}
    ).json()
    assert second["choices"][0]["message"]["content"] == expected


def test_tool_request_without_order_id_asks_for_it(http: httpx.Client) -> None:
    response = http.post(
        CHAT, json=body("sim-stable", "Mi pedido no ha llegado", tools=ORDER_TOOLS)
    ).json()
    choice = response["choices"][0]
    assert "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == reply_text("ask", "es")


def test_unreadable_tool_result(http: httpx.Client) -> None:
    messages = [
        *user("Status of SO-10423?"),
        {"role": "tool", "tool_call_id": "call_1", "content": "ERROR 500"},
    ]
    response = http.post(
        CHAT, json={"model": "sim-stable", "messages": messages, "tools": ORDER_TOOLS}
    ).json()
    assert response["choices"][0]["message"]["content"] == reply_text("no_status", "en")


def test_tool_choice_none_answers_text(http: httpx.Client) -> None:
    response = http.post(
        CHAT,
        json=body("sim-stable", "Where is SO-10423?", tools=ORDER_TOOLS, tool_choice="none"),
    ).json()
    assert response["choices"][0]["message"]["content"] == reply_text("reply", "en")


# -- response shape, streaming, max_tokens --------------------------------------------------------


def test_completion_shape_and_usage(http: httpx.Client) -> None:
    response = http.post(CHAT, json=body("sim-stable", "Hello"))
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert data["id"].startswith("chatcmpl-")
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "sim-stable"
    assert data["choices"][0]["index"] == 0
    assert data["choices"][0]["message"]["role"] == "assistant"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_stream_shape_with_usage(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="sim-stable",
        messages=user("Hello, I have a question."),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert len(contents) >= 3
    assert "".join(c or "" for c in contents) == reply_text("reply", "en")
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert len({chunk.id for chunk in chunks}) == 1


def test_stream_raw_events(sim: SimulatorServer, http: httpx.Client) -> None:
    with http.stream("POST", CHAT, json=body("sim-stable", "Hello", stream=True)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        raw = response.read().decode()
    events = sse_events(raw)
    assert events[-1] == "[DONE]"
    parsed = [json.loads(event) for event in events[:-1]]
    # Without include_usage there is no usage chunk and no usage key.
    assert all(chunk["choices"] for chunk in parsed)
    assert all("usage" not in chunk for chunk in parsed)
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in parsed)


def test_stream_tool_call_deltas(http: httpx.Client) -> None:
    request = body(
        "sim-stable",
        "Check order ABC-123456 please",
        tools=ORDER_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    with http.stream("POST", CHAT, json=request) as response:
        events = sse_events(response.read().decode())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
    }
    tool_deltas = [chunk["choices"][0]["delta"]["tool_calls"][0] for chunk in chunks[1:-2]]
    head, *fragments = tool_deltas
    assert head["index"] == 0
    assert head["id"].startswith("call_")
    assert head["function"] == {"name": "lookup_order", "arguments": ""}
    assert len(fragments) >= 2
    assert all(set(fragment) == {"index", "function"} for fragment in fragments)
    arguments = "".join(fragment["function"]["arguments"] for fragment in fragments)
    assert json.loads(arguments) == {"order_id": "ABC-123456"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("key", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_truncates(http: httpx.Client, key: str) -> None:
    data = http.post(CHAT, json=body("sim-stable", "Hello", **{key: 5})).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] <= 5
    assert reply_text("reply", "en").startswith(choice["message"]["content"])
    assert len(choice["message"]["content"]) < len(reply_text("reply", "en"))
    roomy = http.post(CHAT, json=body("sim-stable", "Hello", **{key: 500})).json()
    assert roomy["choices"][0]["finish_reason"] == "stop"


def test_max_tokens_truncates_stream(sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="sim-stable", messages=user("你好"), max_tokens=4, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_text("reply", "zh")[:4]
    assert chunks[-1].choices[0].finish_reason == "length"


# -- knobs ----------------------------------------------------------------------------------------

N = 200


def fraction(hits: int) -> float:
    return hits / N


def run_many(model_config: dict[str, Any], make_body: Any) -> list[httpx.Response]:
    with (
        SimulatorServer(scenario({"m": model_config}, api_key=None)) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as client,
    ):
        return [client.post(CHAT, json=make_body(i)) for i in range(N)]


def test_rate_limit_rate() -> None:
    responses = run_many(
        {"rate_limit_rate": 0.3, "retry_after_s": 2}, lambda i: body("m", f"hello {i}")
    )
    limited = [r for r in responses if r.status_code == 429]
    assert 0.2 < fraction(len(limited)) < 0.4
    assert {r.status_code for r in responses} == {200, 429}
    assert limited[0].headers["retry-after"] == "2"
    assert limited[0].headers["retry-after-ms"] == "2000"
    assert limited[0].json()["error"]["code"] == "rate_limit_exceeded"


def test_server_error_rate() -> None:
    # The same body every time: repeats of a fingerprint draw independently too.
    responses = run_many({"server_error_rate": 0.25}, lambda i: body("m", "hello"))
    statuses = Counter(r.status_code for r in responses)
    assert 0.15 < fraction(statuses[500] + statuses[503]) < 0.35
    assert statuses[500] > 0
    assert statuses[503] > 0
    assert set(statuses) == {200, 500, 503}


def test_balance_error() -> None:
    responses = run_many({"balance_error": True}, lambda i: body("m", "hello"))[:3]
    assert {r.status_code for r in responses} == {402}
    assert responses[0].json()["error"]["message"] == "Insufficient Balance"


def json_body(i: int) -> dict[str, Any]:
    return body("m", f"I was charged twice on invoice {i}", response_format={"type": "json_object"})


def test_json_breakage_rate() -> None:
    responses = run_many({"json_breakage": 0.4}, json_body)
    contents = [r.json()["choices"][0]["message"]["content"] for r in responses]
    broken = []
    for content in contents:
        try:
            json.loads(content)
        except ValueError:
            broken.append(content)
    assert 0.3 < fraction(len(broken)) < 0.5
    assert any(content.startswith("```json\n") for content in broken)
    assert any(not content.startswith("```") for content in broken)


def test_misclassify_rate() -> None:
    responses = run_many({"misclassify": 0.3}, json_body)
    categories = [
        json.loads(r.json()["choices"][0]["message"]["content"])["category"] for r in responses
    ]
    wrong = [category for category in categories if category != "billing"]
    assert 0.2 < fraction(len(wrong)) < 0.4
    assert set(wrong) <= set(CATEGORIES) - {"billing"}
    assert len(set(wrong)) > 1


def test_tool_drift_rate() -> None:
    responses = run_many(
        {"tool_drift": 0.4}, lambda i: body("m", f"Order SO-{10000 + i}?", tools=ORDER_TOOLS)
    )
    wrong_name = bad_arguments = 0
    for response in responses:
        call = response.json()["choices"][0]["message"]["tool_calls"][0]["function"]
        if call["name"] != "lookup_order":
            assert call["name"] == "cancel_order"
            wrong_name += 1
            continue
        try:
            json.loads(call["arguments"])
        except ValueError:
            bad_arguments += 1
    assert 0.3 < fraction(wrong_name + bad_arguments) < 0.5
    assert wrong_name > 0
    assert bad_arguments > 0


def test_tool_drift_without_other_tool_pluralises_name() -> None:
    with SimulatorServer(
        scenario({"m": {"script": [{"tool_drift": True}] * 6}}, api_key=None)
    ) as server:
        names = {
            httpx.post(
                server.base_url + CHAT,
                json=body("m", f"Order SO-1000{i}?", tools=ORDER_TOOLS[:1]),
            ).json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
            for i in range(6)
        }
    assert "lookup_orders" in names


def test_language_drift_rate() -> None:
    responses = run_many({"language_drift": 0.5}, lambda i: body("m", f"我的快递还没到 {i}"))
    languages = Counter(
        detect_language(r.json()["choices"][0]["message"]["content"]) for r in responses
    )
    assert set(languages) == {"zh", "en"}
    assert 0.4 < fraction(languages["en"]) < 0.6


def test_stream_cut_rate() -> None:
    responses = run_many({"stream_cut": 0.3}, lambda i: body("m", f"hello {i}", stream=True))
    cut = [r for r in responses if not r.text.endswith("data: [DONE]\n\n")]
    assert 0.2 < fraction(len(cut)) < 0.4
    for response in cut:
        chunks = [json.loads(event) for event in sse_events(response.text)]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks)


def test_knob_draws_are_coupled() -> None:
    """Raising a rate only adds faults: requests faulty at the low rate stay faulty."""

    def misclassified(rate: float) -> set[int]:
        responses = run_many({"misclassify": rate}, json_body)
        return {
            i
            for i, r in enumerate(responses)
            if json.loads(r.json()["choices"][0]["message"]["content"])["category"] != "billing"
        }

    assert misclassified(0.1) <= misclassified(0.3)


# -- latency --------------------------------------------------------------------------------------


def test_latency_spec_quantiles() -> None:
    spec = LatencySpec(median=30, p95=60)
    assert spec.sample_ms(0.5) == pytest.approx(30)
    assert spec.sample_ms(0.95) == pytest.approx(60)
    assert LatencySpec.model_validate(20).sample_ms(0.99) == pytest.approx(20)
    assert LatencySpec().sample_ms(0.7) == 0
    with pytest.raises(ValueError, match="p95"):
        LatencySpec(median=30, p95=10)


def test_latency_and_ttft_are_served() -> None:
    config = {"latency_ms": 100, "ttft_ms": 40}
    with (
        SimulatorServer(scenario({"m": config}, api_key=None)) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        client.get("/models")  # connect first: measure the simulated latency, not the handshake
        start = time.perf_counter()
        client.post(CHAT, json=body("m", "hello"))
        assert time.perf_counter() - start >= 0.098
        start = time.perf_counter()
        with client.stream("POST", CHAT, json=body("m", "hello", stream=True)) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line.startswith("data:"))
            first_at = time.perf_counter() - start
            assert "assistant" in first
            for _ in lines:
                pass
            total = time.perf_counter() - start
    assert 0.038 <= first_at < 0.095
    assert total >= 0.098


# -- scripts --------------------------------------------------------------------------------------


def test_script_entries_in_order() -> None:
    script = [
        {"status": 429, "retry_after_s": 1},
        {"status": 503},
        {"stream_cut": True},
        {"status": 400, "message": "bad things"},
        {"content": "scripted hello"},
    ]
    with (
        SimulatorServer(scenario({"m": {"script": script}}, api_key=None)) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        first = client.post(CHAT, json=body("m", "hello", stream=True))
        assert first.status_code == 429
        assert first.headers["retry-after"] == "1"
        assert first.headers["retry-after-ms"] == "1000"
        second = client.post(CHAT, json=body("m", "hello"))
        assert second.status_code == 503
        assert second.json()["error"]["type"] == "server_error"
        third = client.post(CHAT, json=body("m", "hello", stream=True))
        assert third.status_code == 200
        assert "[DONE]" not in third.text
        fourth = client.post(CHAT, json=body("m", "hello"))
        assert fourth.status_code == 400
        assert fourth.json()["error"]["message"] == "bad things"
        fifth = client.post(CHAT, json=body("m", "hello"))
        assert fifth.json()["choices"][0]["message"]["content"] == "scripted hello"
        normal = client.post(CHAT, json=body("m", "hello"))
        assert normal.json()["choices"][0]["message"]["content"] == reply_text("reply", "en")
        assert [request.status for request in server.requests] == [429, 503, 200, 400, 200, 200]


def test_sdk_retries_honour_retry_after() -> None:
    script = [{"status": 429, "retry_after_s": 0.05}, {"status": 503, "retry_after_s": 0.05}]
    with SimulatorServer(scenario({"m": {"script": script}})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=2)
        start = time.perf_counter()
        completion = client.chat.completions.create(model="m", messages=user("hello"))
        # The SDK's own backoff would take over 1.1 s for these two retries.
        assert time.perf_counter() - start < 1.0
        assert completion.choices[0].message.content == reply_text("reply", "en")
        assert [request.status for request in server.requests] == [429, 503, 200]


def test_scripted_cut_of_a_non_streaming_answer() -> None:
    with SimulatorServer(
        scenario({"m": {"script": [{"stream_cut": True}]}}, api_key=None)
    ) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(server.base_url + CHAT, json=body("m", "hello"))
        assert httpx.post(server.base_url + CHAT, json=body("m", "hello")).status_code == 200


def test_stream_cut_through_sdk() -> None:
    with SimulatorServer(scenario({"m": {"script": [{"stream_cut": True}]}})) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
        chunks = list(
            client.chat.completions.create(model="m", messages=user("hello"), stream=True)
        )
    assert chunks
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)


# -- reproducibility ------------------------------------------------------------------------------

FLAKY = {
    "rate_limit_rate": 0.2,
    "server_error_rate": 0.1,
    "json_breakage": 0.3,
    "misclassify": 0.3,
    "tool_drift": 0.3,
    "language_drift": 0.3,
    "stream_cut": 0.3,
}


def replay(seed: int = 7, order: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> list[bytes]:
    requests = [
        body("m", "我被扣款两次", response_format={"type": "json_object"}),
        body("m", "我被扣款两次", response_format={"type": "json_object"}),
        body("m", "Order SO-10423?", tools=ORDER_TOOLS),
        body("m", "Hola, ¿me ayudan?", stream=True, stream_options={"include_usage": True}),
        body("m", "Hola, ¿me ayudan?", stream=True, stream_options={"include_usage": True}),
        body("m", "Bonjour"),
    ]
    out: list[bytes] = []
    with (
        SimulatorServer(scenario({"m": FLAKY}, api_key=None, seed=seed)) as server,
        httpx.Client(base_url=server.base_url) as client,
    ):
        for _ in range(4):
            for index in order:
                response = client.post(CHAT, json=requests[index])
                out.append(str(response.status_code).encode() + b" " + response.content)
    return out


def test_same_sequence_replays_byte_for_byte() -> None:
    first, second = replay(), replay()
    assert first == second
    assert len(set(first)) > 6  # the faults really vary between requests


def test_other_seed_other_behaviour() -> None:
    assert replay(seed=7) != replay(seed=8)


def test_draws_do_not_depend_on_other_requests() -> None:
    # Requests 0/1 and 3/4 are identical pairs: only their relative order must be kept.
    forward = replay(order=(0, 1, 2, 3, 4, 5))
    backward = replay(order=(5, 3, 4, 2, 0, 1))
    position = {0: 4, 1: 5, 2: 3, 3: 1, 4: 2, 5: 0}
    for round_ in range(4):
        for index, backward_index in position.items():
            assert forward[round_ * 6 + index] == backward[round_ * 6 + backward_index]


# -- server lifecycle -----------------------------------------------------------------------------


def test_keep_alive_and_concurrency(sim: SimulatorServer, http: httpx.Client) -> None:
    for i in range(5):
        assert http.post(CHAT, json=body("sim-stable", f"hi {i}")).status_code == 200
        with http.stream("POST", CHAT, json=body("sim-stable", "hi", stream=True)) as response:
            assert response.read().endswith(b"data: [DONE]\n\n")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with httpx.Client(base_url=sim.base_url, headers=http.headers) as client:
                for i in range(10):
                    response = client.post(CHAT, json=body("sim-candidate", f"{n}-{i}"))
                    assert response.status_code == 200
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(1 for r in sim.requests if r.model == "sim-candidate") == 80


def test_stop_is_prompt_with_open_and_slow_connections() -> None:
    server = SimulatorServer(scenario({"m": {"latency_ms": 5000}}, api_key=None)).start()
    idle = httpx.Client(base_url=server.base_url)
    idle.get("/models")  # leaves a keep-alive connection open
    outcome: list[object] = []

    def slow_request() -> None:
        try:
            outcome.append(httpx.post(server.base_url + CHAT, json=body("m", "x"), timeout=10))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    slow = threading.Thread(target=slow_request)
    slow.start()
    time.sleep(0.2)  # let the slow request reach its 5 s server-side sleep
    start = time.perf_counter()
    server.stop()
    assert time.perf_counter() - start < 2
    slow.join(5)
    assert not slow.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.HTTPError)
    idle.close()
    server.stop()  # a second stop is harmless
    with pytest.raises(RuntimeError):
        server.start()


def test_serve_forever_until_stop_event() -> None:
    stop = threading.Event()
    ready: list[SimulatorServer] = []
    thread = threading.Thread(
        target=serve_forever,
        args=(scenario(),),
        kwargs={"port": 0, "on_ready": ready.append, "stop": stop},
    )
    thread.start()
    deadline = time.monotonic() + 5
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    assert httpx.get(ready[0].base_url + "/models", headers={"Authorization": f"Bearer {KEY}"})
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_main_simulate_serves_until_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("models:\n  alpha: {}\n  beta: {verbosity: 2}\n", encoding="utf-8")
    code = (
        "import sys; from pathlib import Path\n"
        "from pytest_modelgate.simulator import main_simulate\n"
        "sys.exit(main_simulate(0, Path(sys.argv[1])))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = "modelgate simulator listening on http://127.0.0.1:"
        assert line.startswith(prefix)
        assert line.endswith("/v1 (models: alpha, beta)")
        base_url = line.split(" ")[4]
        assert httpx.post(base_url + CHAT, json=body("beta", "hi")).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_main_simulate_rejects_bad_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  alpha: {verbosty: 2}\n", encoding="utf-8")
    assert main_simulate(0, path) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert "models.alpha.verbosty" in err


# -- scenario files -------------------------------------------------------------------------------


def test_load_scenario_yaml(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        """
api_key: sim-secret
seed: 7
models:
  simulated-stable:
    latency_ms: {median: 30, p95: 60}
    ttft_ms: 10
    script:
      - {status: 429, retry_after_s: 1}
      - {stream_cut: true}
  simulated-candidate:
    misclassify: 0.2
    verbosity: 1.5
""",
        encoding="utf-8",
    )
    loaded = load_scenario(path)
    assert loaded.seed == 7
    assert list(loaded.models) == ["simulated-stable", "simulated-candidate"]
    stable = loaded.models["simulated-stable"]
    assert stable.latency_ms.p95 == 60
    assert stable.ttft_ms.median == 10
    assert stable.script[0].status == 429
    assert stable.script[1].stream_cut


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models:\n  a: {latency_ms: {median: 30, p95: 10}}\n", "models.a.latency_ms"),
        ("models:\n  a: {misclassify: 1.5}\n", "models.a.misclassify"),
        ("models:\n  a: {colour: red}\n", "models.a.colour"),
        ("models:\n  a: {rate_limit_rate: 0.6, server_error_rate: 0.6}\n", "models.a"),
        ("models:\n  a: {script: [{status: 302}]}\n", "models.a.script[0]"),
        ("models:\n  a: {script: [{status: 429, stream_cut: true}]}\n", "models.a.script[0]"),
        ("models: {}\n", "models"),
        ("seed: 1\n", "models"),
        ("models: [a\n", "invalid YAML"),
        ("models:\n  a: {}\n  a: {}\n", "duplicate"),
        ("- a\n", "must be a mapping"),
    ],
)
def test_load_scenario_errors_name_file_and_field(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as excinfo:
        load_scenario(path)
    message = str(excinfo.value)
    assert message.startswith(f"{path}")
    assert fragment in message


def test_load_scenario_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")
