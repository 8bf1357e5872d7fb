"""The ``llm`` object: requests, replies, retries and the openai SDK path, over 127.0.0.1."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from loopback import ScriptedServer, Step, sse_events

from pytest_modelgate.calls.client import LLM, Reply, ToolCall
from pytest_modelgate.calls.endpoints import Price, ResolvedModel
from pytest_modelgate.calls.records import CallRecord, Usage
from pytest_modelgate.calls.transport import CallLog
from pytest_modelgate.errors import ModelAPIError, ReplyFormatError

# ------------------------------------------------------------------------------------------
# helpers

KEY = "sk-test-abcdef123456"
PRICE = Price(input=1.6, cached_input=0.32, output=6.4)
# Any: the SDK wants its own TypedDicts, our chat takes plain mappings.
MESSAGES: Any = [{"role": "user", "content": "Reply in JSON."}]


def completion(
    content: str | None = '{"answer": 42}',
    usage: dict[str, Any] | None = None,
    finish: str = "stop",
    **message: Any,
) -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "qwen-max-2025",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": usage or {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Sleeps(list[float]):
    """The injected sleep: remembers how long the client wanted to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@dataclass
class Harness:
    server: ScriptedServer
    log: CallLog
    sleeps: Sleeps
    resolved: ResolvedModel
    clients: list[LLM] = field(default_factory=list)

    def llm(self, **options: Any) -> LLM:
        options.setdefault("api_key", KEY)
        llm = LLM(model=self.resolved, arm="stable", log=self.log, sleep=self.sleeps, **options)
        self.clients.append(llm)
        return llm

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, _, body in self.server.requests]

    def numbers(self) -> list[tuple[int, int, str | None]]:
        return [(r.call_index, r.attempt, r.error_kind) for r in self.log.records()]


@pytest.fixture
def h(server: ScriptedServer) -> Iterator[Harness]:
    resolved = ResolvedModel(
        name="qwen-max", model_id="qwen-max-2025", base_url=server.base_url + "/", price=PRICE
    )
    log = CallLog(test_id="t.py::t", case_id="t", arm="stable", model="qwen-max", resolved=resolved)
    harness = Harness(server, log, Sleeps(), resolved)
    yield harness
    for llm in harness.clients:
        llm.close()


def record(h: Harness) -> CallRecord:
    (only,) = h.log.records()
    return only


# ------------------------------------------------------------------------------------------
# chat: request and reply


def test_chat_sends_the_request_and_returns_a_reply(h: Harness) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 500},
    }
    h.server.script.append(Step(body=completion(usage=usage)))
    llm = h.llm()
    reply = llm.chat(MESSAGES, temperature=0, response_format={"type": "json_object"})
    method, path, headers, _ = h.server.requests[0]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert h.bodies() == [
        {
            "model": "qwen-max-2025",
            "messages": MESSAGES,
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
    ]
    assert reply.text == '{"answer": 42}'
    assert reply.json() == {"answer": 42}
    assert reply.finish_reason == "stop"
    assert reply.usage == Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=500)
    assert reply.cost_usd == pytest.approx((500 * 1.6 + 500 * 0.32 + 100 * 6.4) / 1e6)
    assert reply.ttft_ms is None
    assert 0 < reply.latency_ms < 1000
    assert reply.attempts == 1
    assert reply.model == "qwen-max"
    assert reply.raw["id"] == "c1"
    assert reply.record == record(h)
    assert record(h).client == "modelgate"
    assert (llm.model, llm.arm, llm.base_url) == ("qwen-max", "stable", h.server.base_url + "/")


def test_chat_without_key_sends_no_authorization(h: Harness) -> None:
    h.server.script.append(Step(body=completion()))
    h.llm(api_key=None).chat(MESSAGES)
    assert "Authorization" not in h.server.requests[0][2]


def test_chat_refuses_a_model_parameter(h: Harness) -> None:
    with pytest.raises(TypeError, match="the arm decides"):
        h.llm().chat(MESSAGES, model="gpt-x")


def test_json_error_quotes_the_text_and_keeps_fences(h: Harness) -> None:
    fenced = '```json\n{"answer": 42}\n```'
    h.server.script.append(Step(body=completion(fenced)))
    reply = h.llm().chat(MESSAGES)
    assert reply.text == fenced
    assert record(h).json_valid is False
    with pytest.raises(
        ReplyFormatError, match=r"not valid JSON .*'```json \{\"answer\": 42\} ```'"
    ):
        reply.json()


def test_json_error_shortens_long_text() -> None:
    reply = Reply(text="word " * 200, model="m")
    with pytest.raises(ReplyFormatError) as info:
        reply.json()
    assert len(str(info.value)) < 300
    assert "…" in str(info.value)


def test_json_on_an_empty_reply() -> None:
    reply = Reply(text="", tool_calls=(ToolCall("1", "f", "{}"),), finish_reason="tool_calls")
    with pytest.raises(ReplyFormatError, match=r"no text to parse as JSON.*1 tool call"):
        reply.json()


def test_tool_calls(h: Harness) -> None:
    calls = [
        {"id": "a", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}},
        {"id": "b", "type": "function", "function": {"name": "broken", "arguments": '{"q": '}},
        {"id": "c", "type": "function", "function": {"name": "noargs", "arguments": ""}},
    ]
    h.server.script.append(Step(body=completion(None, finish="tool_calls", tool_calls=calls)))
    reply = h.llm().chat(MESSAGES, tools=[{"type": "function"}], tool_choice="auto")
    assert reply.text == ""
    assert [c.name for c in reply.tool_calls] == ["search", "broken", "noargs"]
    assert reply.tool_calls[0].arguments == {"q": "x"}
    assert reply.tool_calls[0].id == "a"
    assert reply.tool_calls[1].arguments_text == '{"q": '
    with pytest.raises(ReplyFormatError, match=r"'broken' has arguments that are not valid JSON"):
        _ = reply.tool_calls[1].arguments
    assert reply.tool_calls[2].arguments == {}
    assert record(h).tool_calls == ("search", "broken", "noargs")
    assert record(h).json_valid is None
    with pytest.raises(ReplyFormatError, match="not a JSON object: '\\[1\\]'"):
        _ = ToolCall("x", "f", "[1]").arguments


def test_minimax_think_is_reasoning_not_text(h: Harness) -> None:
    h.server.script.append(Step(body=completion('<think>\nplan\n</think>\n\n{"a": 1}')))
    reply = h.llm().chat(MESSAGES)
    assert reply.json() == {"a": 1}
    assert reply.reasoning == "plan"
    assert record(h).json_valid is True


def test_deepseek_usage_and_reasoning(h: Harness) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "total_tokens": 1300,
        "prompt_cache_hit_tokens": 800,
        "prompt_cache_miss_tokens": 200,
        "completion_tokens_details": {"reasoning_tokens": 250},
    }
    body = completion("ok", usage=usage, reasoning_content="thinking...")
    h.server.script.append(Step(body=body))
    reply = h.llm().chat(MESSAGES)
    assert reply.usage == Usage(
        prompt_tokens=1000,
        completion_tokens=300,
        cached_tokens=800,
        reasoning_tokens=250,
        total_tokens=1300,
    )
    assert reply.reasoning == "thinking..."
    assert reply.cost_usd == pytest.approx((200 * 1.6 + 800 * 0.32 + 300 * 6.4) / 1e6)


# ------------------------------------------------------------------------------------------
# streaming


def test_stream_adds_include_usage_and_measures_ttft(h: Harness) -> None:
    events = [
        *sse_events(chunk(role="assistant", content=""), gap=0.05, done=False),
        (0.05, b": keep-alive\n\n"),
        *sse_events(chunk(reasoning_content="hmm"), gap=0.1, done=False),
        *sse_events(
            chunk(content='{"a"'), chunk(content=": 1}", finish="stop"), gap=0.1, done=False
        ),
        *sse_events({"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": 4}}),
    ]
    h.server.script.append(Step(events=events))
    reply = h.llm().chat(MESSAGES, stream=True)
    assert h.bodies()[0]["stream"] is True
    assert h.bodies()[0]["stream_options"] == {"include_usage": True}
    assert reply.json() == {"a": 1}
    assert reply.reasoning == "hmm"
    assert reply.usage == Usage(prompt_tokens=8, completion_tokens=4)
    assert reply.ttft_ms is not None
    # The first token (reasoning) arrives ~200 ms in, the last chunk ~200 ms later.
    assert reply.ttft_ms >= 190
    assert reply.latency_ms >= 390
    assert reply.ttft_ms < reply.latency_ms - 120
    assert reply.latency_ms < 2000
    assert isinstance(reply.raw, list)
    assert len(reply.raw) == 5
    assert reply.raw[-1]["usage"] == {"prompt_tokens": 8, "completion_tokens": 4}
    assert record(h).streamed


def test_stream_keeps_given_stream_options(h: Harness) -> None:
    h.server.script.append(Step(events=sse_events(chunk(content="x", finish="stop"))))
    reply = h.llm().chat(MESSAGES, stream=True, stream_options={"include_usage": False})
    assert h.bodies()[0]["stream_options"] == {"include_usage": False}
    assert reply.usage == Usage()
    assert reply.cost_usd is None


def test_moonshot_stream_usage_in_choice(h: Harness) -> None:
    last = {
        "choices": [
            {
                "index": 0,
                "delta": {},
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 10, "completion_tokens": 2, "cached_tokens": 6},
            }
        ]
    }
    h.server.script.append(Step(events=sse_events(chunk(content="hi"), last)))
    reply = h.llm().chat(MESSAGES, stream=True)
    assert reply.usage == Usage(prompt_tokens=10, completion_tokens=2, cached_tokens=6)


def test_streamed_tool_call(h: Harness) -> None:
    events = sse_events(
        chunk(tool_calls=[{"index": 0, "id": "t", "function": {"name": "f", "arguments": '{"x"'}}]),
        chunk(tool_calls=[{"index": 0, "function": {"arguments": ": 2}"}}], finish="tool_calls"),
    )
    h.server.script.append(Step(events=events))
    reply = h.llm().chat(MESSAGES, stream=True)
    assert reply.tool_calls == (ToolCall("t", "f", '{"x": 2}'),)
    assert reply.tool_calls[0].arguments == {"x": 2}
    assert reply.ttft_ms is not None


# ------------------------------------------------------------------------------------------
# retries


def test_rate_limit_honours_retry_after(h: Harness) -> None:
    h.server.script.extend(
        [
            Step(429, {"error": {"message": "slow down"}}, {"Retry-After": "2"}),
            Step(429, {"error": {"message": "slow down"}}, {"Retry-After": "120"}),
            Step(body=completion()),
        ]
    )
    reply = h.llm(retry_after_cap_s=5.0).chat(MESSAGES)
    assert reply.attempts == 3
    assert h.sleeps == [2.0, 5.0]  # the second one capped
    assert h.numbers() == [(0, 1, "rate_limit"), (0, 2, "rate_limit"), (0, 3, None)]
    assert reply.record is not None
    assert reply.record.attempt == 3


def test_retry_after_http_date(h: Harness) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=10), usegmt=True)
    h.server.script.extend([Step(429, b"", {"Retry-After": when}), Step(body=completion())])
    h.llm().chat(MESSAGES)
    (slept,) = h.sleeps
    assert 8.0 <= slept <= 10.0


def test_server_errors_then_success_back_off_with_jitter(h: Harness) -> None:
    h.server.script.extend([Step(500, b"oops"), Step(503, b""), Step(body=completion())])
    reply = h.llm(backoff_base_s=0.4).chat(MESSAGES)
    assert reply.attempts == 3
    assert h.numbers() == [(0, 1, "server_error"), (0, 2, "server_error"), (0, 3, None)]
    first, second = h.sleeps
    assert 0.2 <= first <= 0.4
    assert 0.4 <= second <= 0.8
    assert len({json.dumps(b) for b in h.bodies()}) == 1  # byte-identical retries


def test_retries_exhausted(h: Harness) -> None:
    overloaded = {"error": {"message": "Service overloaded", "code": "overloaded"}}
    h.server.script.extend([Step(503, overloaded)] * 3)
    with pytest.raises(ModelAPIError) as info:
        h.llm(max_retries=2).chat(MESSAGES)
    error = info.value
    assert str(error) == "qwen-max: HTTP 503 Service overloaded (gave up after 3 attempts)"
    assert (error.status, error.error_kind, error.attempts, error.retryable) == (
        503,
        "server_error",
        3,
        True,
    )
    assert len(h.sleeps) == 2
    assert [n[1] for n in h.numbers()] == [1, 2, 3]


def test_stream_cut_then_success(h: Harness) -> None:
    h.server.script.extend(
        [
            Step(events=sse_events(chunk(content="par"), done=False), cut=True),
            Step(events=sse_events(chunk(content="full", finish="stop"))),
        ]
    )
    reply = h.llm().chat(MESSAGES, stream=True)
    assert reply.text == "full"
    assert reply.attempts == 2
    assert h.numbers() == [(0, 1, "stream_cut"), (0, 2, None)]


def test_stream_ended_early_is_retried(h: Harness) -> None:
    h.server.script.extend(
        [
            Step(events=sse_events(chunk(content="par"), done=False)),
            Step(events=sse_events(chunk(content="full", finish="stop"))),
        ]
    )
    assert h.llm().chat(MESSAGES, stream=True).attempts == 2
    assert h.numbers() == [(0, 1, "stream_cut"), (0, 2, None)]


ARREARAGE = {
    "error": {
        "code": "Arrearage",
        "message": "Access denied, please make sure your account is in good standing.",
        "type": "Arrearage",
    }
}


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (400, {"error": {"message": "bad field", "code": "invalid_request_error"}}, "bad_request",
         "qwen-max: HTTP 400 invalid_request_error: bad field (not retried)"),
        (401, {"error": {"message": "Invalid token"}}, "auth",
         "qwen-max: HTTP 401 Invalid token (not retried)"),
        (402, {"error": {"message": "Insufficient Balance", "type": "unknown_error"}}, "quota",
         "qwen-max: HTTP 402 unknown_error: Insufficient Balance (not retried)"),
        (403, ARREARAGE, "quota",
         "qwen-max: HTTP 403 Arrearage: Access denied, please make sure your account is in good "
         "standing (not retried)"),
        (404, b"Not Found", "not_found", "qwen-max: HTTP 404 Not Found (not retried)"),
        (429, {"error": {"code": "1113", "message": "余额不足"}}, "quota",
         "qwen-max: HTTP 429 1113: 余额不足 (not retried)"),
        (400, [{"error": {"code": 400, "message": "Bad key.", "status": "INVALID_ARGUMENT"}}],
         "bad_request", "qwen-max: HTTP 400 INVALID_ARGUMENT: Bad key (not retried)"),
        (200, {"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}, "quota",
         "qwen-max: HTTP 200 quota: 1008: insufficient balance (not retried)"),
    ],
)  # fmt: skip
def test_non_retryable_errors_raise_at_once(
    h: Harness, status: int, body: Any, kind: str, text: str
) -> None:
    h.server.script.append(Step(status, body))
    with pytest.raises(ModelAPIError) as info:
        h.llm().chat(MESSAGES)
    assert str(info.value) == text
    assert (info.value.error_kind, info.value.attempts, info.value.retryable) == (kind, 1, False)
    assert h.sleeps == []
    assert record(h).error_kind == kind


def test_non_retryable_after_a_retry_says_which_attempt(h: Harness) -> None:
    h.server.script.extend([Step(503, b""), Step(403, ARREARAGE)])
    with pytest.raises(ModelAPIError, match=r"\(not retried; attempt 2\)$"):
        h.llm().chat(MESSAGES)


def test_connection_refused(h: Harness) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    resolved = h.resolved.model_copy(update={"base_url": f"http://127.0.0.1:{port}/v1"})
    llm = LLM(model=resolved, arm="candidate", api_key=None, log=h.log, sleep=h.sleeps)
    h.clients.append(llm)
    with pytest.raises(
        ModelAPIError, match=r"^qwen-max: connection: ConnectError: .*\(gave up after 3 attempts\)$"
    ):
        llm.chat(MESSAGES)
    assert h.numbers() == [(0, 1, "connection"), (0, 2, "connection"), (0, 3, "connection")]
    assert all(r.status is None for r in h.log.records())


def test_timeout(h: Harness) -> None:
    h.server.script.extend([Step(body=completion(), delay=0.5), Step(body=completion())])
    reply = h.llm(timeout_s=0.15).chat(MESSAGES)
    assert reply.attempts == 2
    assert h.numbers() == [(0, 1, "timeout"), (0, 2, None)]
    timed_out = h.log.records()[0]
    assert timed_out.latency_ms is not None
    assert 100 <= timed_out.latency_ms < 450


def test_timeout_exhausted(h: Harness) -> None:
    h.server.script.append(Step(body=completion(), delay=0.5))
    with pytest.raises(
        ModelAPIError, match=r"^qwen-max: timeout: ReadTimeout: .*\(gave up after 1 attempt\)$"
    ):
        h.llm(timeout_s=0.15, max_retries=0).chat(MESSAGES)


def test_api_key_stays_secret(h: Harness) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}}
    h.server.script.append(Step(401, body))
    llm = h.llm()
    with pytest.raises(ModelAPIError) as info:
        llm.chat(MESSAGES)
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value)
    assert KEY not in repr(llm)
    assert all(KEY not in r.model_dump_json() for r in h.log.records())
    assert "<redacted>" in str(info.value)


def test_errors_pickle() -> None:
    import pickle

    error = ModelAPIError("m", 503, "server_error", "busy", 3, True)
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.attempts, copy.retryable) == (str(error), 3, True)


def test_constructor_validates() -> None:
    resolved = ResolvedModel(name="m", model_id="m", base_url="http://127.0.0.1:9")
    log = CallLog(test_id="t", case_id="t", arm="stable", model="m")
    with pytest.raises(ValueError, match="max_retries"):
        LLM(model=resolved, arm="stable", api_key=None, log=log, max_retries=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        LLM(model=resolved, arm="stable", api_key=None, log=log, timeout_s=0)


# ------------------------------------------------------------------------------------------
# fallbacks and lifetime


def test_fallbacks_and_close(h: Harness) -> None:
    llm = h.llm()
    assert not llm.fallbacks
    llm.note_fallback("empty answer, used default")
    llm.note_fallback("retry with the simple prompt")
    assert llm.fallbacks == ("empty answer, used default", "retry with the simple prompt")
    llm.close()
    llm.close()
    with llm:
        pass


def test_thread_safe_calls(h: Harness) -> None:
    h.server.script.extend([Step(body=completion(str(i))) for i in range(8)])
    llm = h.llm()
    texts: list[str] = []

    def call() -> None:
        texts.append(llm.chat(MESSAGES).text)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(texts) == [str(i) for i in range(8)]
    assert sorted(r.call_index for r in h.log.records()) == list(range(8))


# ------------------------------------------------------------------------------------------
# the real openai SDK through llm.openai()


def test_openai_sdk_call_is_recorded(h: Harness) -> None:
    h.server.script.append(Step(body=completion()))
    llm = h.llm()
    sdk = llm.openai()
    assert llm.openai() is sdk
    result = sdk.chat.completions.create(model="qwen-max-2025", messages=MESSAGES)
    assert result.choices[0].message.content == '{"answer": 42}'
    rec = record(h)
    assert (rec.client, rec.call_index, rec.attempt, rec.error_kind) == ("openai", 0, 1, None)
    assert rec.usage == Usage(prompt_tokens=100, completion_tokens=10, total_tokens=110)
    assert rec.cost_usd == pytest.approx((100 * 1.6 + 10 * 6.4) / 1e6)
    assert rec.ttft_ms is None
    assert rec.json_valid is True
    assert h.server.requests[0][2]["Authorization"] == f"Bearer {KEY}"


def test_openai_sdk_stream_is_recorded_with_usage_and_ttft(h: Harness) -> None:
    events = [
        *sse_events(chunk(role="assistant", content=""), gap=0.05, done=False),
        *sse_events(chunk(content="Hel"), gap=0.1, done=False),
        *sse_events(chunk(content="lo", finish="stop"), gap=0.1, done=False),
        *sse_events(
            {"id": "c", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 2}}
        ),
    ]
    h.server.script.append(Step(events=events))
    stream = (
        h.llm()
        .openai()
        .chat.completions.create(
            model="qwen-max-2025",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello"
    rec = record(h)
    assert rec.error_kind is None
    assert rec.streamed
    assert rec.usage == Usage(prompt_tokens=7, completion_tokens=2)
    assert rec.ttft_ms is not None
    assert rec.latency_ms is not None
    assert rec.ttft_ms >= 140
    assert rec.latency_ms >= 240
    assert rec.ttft_ms < rec.latency_ms - 60
    assert rec.latency_ms < 2000


def test_openai_sdk_retries_are_attempts_of_one_call(h: Harness) -> None:
    # retry-after-ms keeps the SDK's own (real) sleep short.
    busy = Step(503, {"error": {"message": "busy"}}, {"retry-after-ms": "10"})
    h.server.script.extend([busy, Step(body=completion())])
    h.llm(max_retries=2).openai().chat.completions.create(model="qwen-max-2025", messages=MESSAGES)
    assert h.numbers() == [(0, 1, "server_error"), (0, 2, None)]
    assert {r.client for r in h.log.records()} == {"openai"}


def test_openai_sdk_without_key(h: Harness) -> None:
    h.server.script.append(Step(body=completion()))
    h.llm(api_key=None).openai().chat.completions.create(model="x", messages=MESSAGES)
    assert h.server.requests[0][2]["Authorization"] == "Bearer not-needed"


def test_openai_missing(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ImportError, match=r"pip install pytest-modelgate\[openai\]"):
        h.llm().openai()
