"""The wire format: completions, SSE assembly, usage quirks and error classification (pure)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_modelgate.calls.protocol import (
    CompletionFormatError,
    ParsedToolCall,
    SSEAccumulator,
    classify_error,
    content_text,
    embedded_error,
    is_json_text,
    looks_like_sse,
    parse_completion,
    parse_retry_after,
    parse_usage,
    retry_after_from_headers,
    shorten,
    split_think,
)
from pytest_modelgate.calls.records import Usage


def completion(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        **extra,
    }


def sse(*chunks: Any, done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": index, "delta": fields, "finish_reason": finish}]}


# ------------------------------------------------------------------------------------------
# usage


def test_usage_openai_details() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 30},
        }
    )
    assert usage == Usage(
        prompt_tokens=100,
        completion_tokens=40,
        cached_tokens=64,
        reasoning_tokens=30,
        total_tokens=140,
    )


def test_usage_deepseek_cache_hit_fields() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 50,
            "completion_tokens": 10,
            "prompt_cache_hit_tokens": 32,
            "prompt_cache_miss_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 32},
        }
    )
    assert usage.cached_tokens == 32
    assert usage.total_tokens is None  # not reported, not invented


def test_usage_moonshot_top_level_cached_tokens() -> None:
    usage = parse_usage({"prompt_tokens": 20, "completion_tokens": 5, "cached_tokens": 16})
    assert usage.cached_tokens == 16


def test_usage_null_details_and_junk_values() -> None:
    usage = parse_usage(
        {
            "prompt_tokens": 7.0,
            "completion_tokens": None,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": True},
        }
    )
    assert usage == Usage(prompt_tokens=7)


# ------------------------------------------------------------------------------------------
# completions


def test_parse_completion_text_usage_and_ids() -> None:
    parsed = parse_completion(
        completion(
            {"role": "assistant", "content": '{"ok": true}'},
            usage={"prompt_tokens": 3, "completion_tokens": 2},
        )
    )
    assert parsed.text == '{"ok": true}'
    assert parsed.finish_reason == "stop"
    assert parsed.usage == Usage(prompt_tokens=3, completion_tokens=2)
    assert parsed.model == "m"
    assert parsed.response_id == "chatcmpl-1"
    assert parsed.json_valid is True
    assert parsed.reasoning is None


def test_parse_completion_reasoning_content_kept_apart() -> None:
    parsed = parse_completion(completion({"content": "42", "reasoning_content": "6 times 7 is 42"}))
    assert parsed.text == "42"
    assert parsed.reasoning == "6 times 7 is 42"


def test_parse_completion_minimax_think_block_stripped() -> None:
    parsed = parse_completion(
        completion({"content": '<think>\nThe user wants JSON.\n</think>\n\n{"a": 1}'})
    )
    assert parsed.text == '{"a": 1}'
    assert parsed.reasoning == "The user wants JSON."
    assert parsed.json_valid is True


def test_parse_completion_moonshot_usage_inside_choice() -> None:
    body = completion({"content": "hi"})
    body["choices"][0]["usage"] = {"prompt_tokens": 9, "completion_tokens": 1, "cached_tokens": 8}
    assert parse_completion(body).usage == Usage(
        prompt_tokens=9, completion_tokens=1, cached_tokens=8
    )


def test_parse_completion_tool_calls() -> None:
    parsed = parse_completion(
        completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                    # Some compat layers send the arguments as an object.
                    {"id": "call_2", "function": {"name": "now", "arguments": {"tz": "UTC"}}},
                ],
            }
        )
    )
    assert parsed.text == ""
    assert parsed.json_valid is None
    assert parsed.tool_calls == (
        ParsedToolCall("call_1", "get_weather", '{"city": "Oslo"}'),
        ParsedToolCall("call_2", "now", '{"tz": "UTC"}'),
    )


def test_parse_completion_legacy_function_call() -> None:
    parsed = parse_completion(completion({"function_call": {"name": "f", "arguments": "{}"}}))
    assert parsed.tool_calls == (ParsedToolCall("", "f", "{}"),)


def test_parse_completion_content_parts() -> None:
    parsed = parse_completion(
        completion({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]})
    )
    assert parsed.text == "ab"


def test_parse_completion_keeps_only_text_parts() -> None:
    content = [
        {"type": "text", "text": '{"a": '},
        {"type": "refusal", "refusal": "no", "text": "not this"},
        {"type": "text", "text": "1}"},
    ]
    assert parse_completion(completion({"content": content})).text == '{"a": 1}'


@pytest.mark.parametrize(
    ("content", "joiner", "expected"),
    [
        ("plain", "\n", "plain"),
        (None, "\n", ""),
        (42, "\n", ""),
        (b"bytes", "\n", ""),
        ([], "\n", ""),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "\n", "a\nb"),
        ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "", "ab"),
        # A part without a type is read as text; other kinds of part carry no text.
        ([{"text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}], "\n", "a"),
        ([{"type": "input_audio", "text": "x"}, {"type": "text", "text": 3}, "s"], "\n", ""),
    ],
)
def test_content_text(content: Any, joiner: str, expected: str) -> None:
    assert content_text(content, joiner) == expected


@pytest.mark.parametrize(
    "body", [{}, {"choices": []}, {"choices": None}, {"choices": ["x"]}, {"object": "list"}]
)
def test_parse_completion_rejects_non_completions(body: dict[str, Any]) -> None:
    with pytest.raises(CompletionFormatError):
        parse_completion(body)


@pytest.mark.parametrize(
    ("text", "answer", "reasoning"),
    [
        ("plain", "plain", None),
        ("<think>a</think>b", "b", "a"),
        ("  <think>a</think> <think>c</think>\nb", "b", "a\nc"),
        ("<think>cut short", "", "cut short"),
        ("say <think> literally", "say <think> literally", None),
    ],
)
def test_split_think(text: str, answer: str, reasoning: str | None) -> None:
    assert split_think(text) == (answer, reasoning)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        (None, None),
        ("   ", False),  # DeepSeek's whitespace-only JSON mode reply is a failure
        ('{"a": 1}', True),
        ("[1, 2]", True),
        ('```json\n{"a": 1}\n```', False),
    ],
)
def test_is_json_text(text: str | None, expected: bool | None) -> None:
    assert is_json_text(text) is expected


def test_shorten() -> None:
    assert shorten("a  b\n c") == "a b c"
    assert shorten("x" * 50, 10) == "x" * 9 + "…"


def test_looks_like_sse() -> None:
    assert looks_like_sse(b"data: {}")
    assert looks_like_sse(b"\n: keep-alive")
    assert not looks_like_sse(b'{"choices": []}')


# ------------------------------------------------------------------------------------------
# SSE


def feed_bytewise(accumulator: SSEAccumulator, data: bytes) -> None:
    for i in range(len(data)):
        accumulator.feed(data[i : i + 1])


def test_sse_assembles_content_across_split_reads() -> None:
    stream = b": keep-alive\r\n\r\n" + sse(
        delta(role="assistant", content=""),
        delta(content="Hel"),
        delta(content="lo ✓"),
        delta(finish="stop"),
        {"id": "x", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
    ).replace(b"\n", b"\r\n")
    accumulator = SSEAccumulator(keep_chunks=True)
    feed_bytewise(accumulator, stream)  # splits lines and the UTF-8 of ✓
    result = accumulator.result()
    assert result.text == "Hello ✓"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(prompt_tokens=5, completion_tokens=3)
    assert accumulator.saw_done_marker
    assert accumulator.done
    assert accumulator.chunk_count == 5
    assert len(accumulator.chunks) == 5
    assert accumulator.malformed == 0


def test_sse_first_token_needs_a_real_delta() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(sse(delta(role="assistant", content=""), done=False))
    assert not accumulator.first_token_seen
    accumulator.feed(b"data: " + json.dumps(delta(reasoning_content="hm")).encode() + b"\n\n")
    assert accumulator.first_token_seen
    assert not accumulator.done


def test_sse_first_token_on_tool_call_delta() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(
        sse(delta(tool_calls=[{"index": 0, "id": "c", "function": {"name": "f"}}]), done=False)
    )
    assert accumulator.first_token_seen


def test_sse_tool_call_deltas_by_index_interleaved() -> None:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return delta(tool_calls=[{"index": index, **fields}])

    accumulator = SSEAccumulator()
    accumulator.feed(
        sse(
            call(0, id="a", type="function", function={"name": "search", "arguments": ""}),
            call(1, id="b", type="function", function={"name": "lookup", "arguments": '{"k"'}),
            call(0, function={"arguments": '{"q": '}),
            call(1, function={"arguments": ": 1}"}),
            call(0, function={"arguments": '"x"}'}),
            delta(finish="tool_calls"),
        )
    )
    result = accumulator.result()
    assert result.tool_calls == (
        ParsedToolCall("a", "search", '{"q": "x"}'),
        ParsedToolCall("b", "lookup", '{"k": 1}'),
    )
    assert result.finish_reason == "tool_calls"
    assert result.text == ""


def test_sse_tool_calls_without_index_and_repeated_names() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(
        sse(
            delta(tool_calls=[{"id": "a", "function": {"name": "f", "arguments": '{"x":'}}]),
            delta(tool_calls=[{"function": {"name": "f", "arguments": " 1}"}}]),
            delta(tool_calls=[{"id": "b", "function": {"name": "g", "arguments": "{}"}}]),
        )
    )
    assert accumulator.result().tool_calls == (
        ParsedToolCall("a", "f", '{"x": 1}'),
        ParsedToolCall("b", "g", "{}"),
    )


def test_sse_moonshot_usage_in_last_choice() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(
        sse(
            delta(content="ok"),
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "finish_reason": "stop",
                        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "cached_tokens": 2},
                    }
                ]
            },
        )
    )
    assert accumulator.result().usage == Usage(
        prompt_tokens=4, completion_tokens=1, cached_tokens=2
    )


def test_sse_minimax_think_in_content() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(
        sse(delta(content="<think>plan"), delta(content="</think>\n"), delta(content="done"))
    )
    result = accumulator.result()
    assert (result.text, result.reasoning) == ("done", "plan")


def test_sse_multiline_data_event_and_other_fields() -> None:
    accumulator = SSEAccumulator()
    payload = json.dumps(delta(content="x"), indent=1).encode()
    lines = b"".join(b"data: " + line + b"\n" for line in payload.splitlines())
    accumulator.feed(b"id: 1\nretry: 10\n" + lines + b"\n")
    assert accumulator.result().text == "x"


def test_sse_done_by_finish_reason_without_marker() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(sse(delta(content="a", finish="length"), done=False))
    assert accumulator.done
    assert not accumulator.saw_done_marker


def test_sse_close_flushes_an_unterminated_final_event() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(b"data: " + json.dumps(delta(content="a", finish="stop")).encode())
    assert accumulator.finish_reason is None
    accumulator.close()
    assert accumulator.finish_reason == "stop"


def test_sse_malformed_and_error_chunks() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(b"data: {not json\n\n")
    accumulator.feed(
        b'data: {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}\n\n'
    )
    assert accumulator.malformed == 1
    assert accumulator.error is not None
    assert accumulator.error.kind == "provider_error"
    assert accumulator.error.message == "rate_limit_exceeded: Rate limit reached"


def test_sse_error_event_and_minimax_base_resp() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(b'event: error\ndata: {"message": "overloaded"}\n\n')
    assert accumulator.error is not None
    assert accumulator.error.message == "overloaded"
    minimax = SSEAccumulator()
    minimax.feed(sse({"choices": [], "base_resp": {"status_code": 1008, "status_msg": "no money"}}))
    assert minimax.error is not None
    assert minimax.error.kind == "quota"


def test_sse_ignores_other_choices() -> None:
    accumulator = SSEAccumulator()
    accumulator.feed(sse(delta(content="a"), delta(index=1, content="b")))
    assert accumulator.result().text == "a"


# ------------------------------------------------------------------------------------------
# errors


def err(code: Any = None, message: str = "boom", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, **extra}
    if code is not None:
        body["code"] = code
    return {"error": body}


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (400, err("invalid_request_error"), "bad_request"),
        (422, {"detail": [{"msg": "field required"}]}, "bad_request"),
        (401, err("invalid_api_key"), "auth"),
        (402, err("invalid_request_error", "Insufficient Balance"), "quota"),
        (403, err("forbidden"), "permission"),
        (403, err("Arrearage", type="Arrearage"), "quota"),
        (403, err("AccountOverdueError", type="Forbidden"), "quota"),
        (404, err("model_not_found"), "not_found"),
        (408, b"", "timeout"),
        (429, err("rate_limit_exceeded"), "rate_limit"),
        (429, err("insufficient_quota", type="insufficient_quota"), "quota"),
        (429, err(None, type="insufficient_quota"), "quota"),
        (429, err("1113", "余额不足或无可用资源包"), "quota"),
        (429, err("1302", "concurrency"), "rate_limit"),
        (500, err(), "server_error"),
        (502, b"<html>Bad Gateway</html>", "server_error"),
        (503, None, "server_error"),
        (504, b"", "server_error"),
        (418, b"teapot", "http_error"),
        (200, {"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}, "quota"),
        (
            200,
            {"base_resp": {"status_code": 1027, "status_msg": "output sensitive"}},
            "provider_error",
        ),
        (200, {"base_resp": {"status_code": 1002, "status_msg": "rpm limit"}}, "rate_limit"),
        (200, err("server_error"), "provider_error"),
        (None, err("insufficient_quota"), "quota"),
    ],
)
def test_classify_error_kinds(status: int | None, body: Any, kind: str) -> None:
    assert classify_error(status, body).kind == kind


def test_classify_qwen_arrearage_message() -> None:
    body = json.dumps(
        {
            "error": {
                "code": "Arrearage",
                "message": "Access denied, please make sure your account is in good standing.",
                "type": "Arrearage",
            },
            "request_id": "r-1",
        }
    ).encode()
    info = classify_error(403, body, {"Content-Type": "application/json"})
    assert info.kind == "quota"
    assert info.message == (
        "Arrearage: Access denied, please make sure your account is in good standing"
    )
    assert info.retry_after_s is None


def test_classify_gemini_array_body() -> None:
    body = (
        b'[{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}]'
    )
    info = classify_error(400, body)
    assert info == ("bad_request", "INVALID_ARGUMENT: API key not valid", None)


def test_classify_minimax_message() -> None:
    info = classify_error(
        200, {"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}
    )
    assert info.message == "1008: insufficient balance"


def test_classify_message_not_json_or_empty() -> None:
    html = b"<html>\n  <body>502   Bad Gateway</body></html>"
    assert classify_error(502, html).message == "<html> <body>502 Bad Gateway</body></html>"
    assert classify_error(503, b"").message == "Service Unavailable"
    assert classify_error(599, None).message == "error"
    assert len(classify_error(500, b"x" * 5000).message) == 500


def test_classify_code_already_in_message_not_repeated() -> None:
    info = classify_error(429, err("rate_limit", "rate_limit: too many requests"))
    assert info.message == "rate_limit: too many requests"


def test_classify_reads_retry_after() -> None:
    assert classify_error(429, err("x"), {"Retry-After": "7"}).retry_after_s == 7.0
    assert classify_error(429, None, {"retry-after-ms": "250"}).retry_after_s == 0.25


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == seconds


def test_retry_after_from_headers_prefers_ms_and_is_case_insensitive() -> None:
    assert retry_after_from_headers({"RETRY-AFTER": "2"}) == 2.0
    assert retry_after_from_headers({"Retry-After": "2", "Retry-After-Ms": "500"}) == 0.5
    assert retry_after_from_headers({}) is None
    assert retry_after_from_headers(None) is None


def test_embedded_error() -> None:
    assert embedded_error(completion({"content": "x"}, base_resp={"status_code": 0})) is None
    assert embedded_error(["not", "a", "dict"]) is None
    info = embedded_error({"error": "model overloaded"})
    assert info is not None
    assert info.kind == "provider_error"
    assert info.message == "model overloaded"
