"""Issue 10, bounds: a whole-call deadline and a response size limit, over real HTTP on 127.0.0.1.

The scripted server trickles bodies a byte at a time or sends far more than the configured
limit; ``llm.chat`` (plain and streamed), the openai SDK through ``llm.openai()`` and a product's
own httpx client must each end at ``deadline_s`` (with generous slack, never tight timings) or
at ``max_response_bytes``, with the reason in the CallRecord.
"""

from __future__ import annotations

import gzip
import json
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from loopback import ScriptedServer, Step, sse_events

from pytest_modelgate.calls.client import LLM
from pytest_modelgate.calls.endpoints import ResolvedModel
from pytest_modelgate.calls.records import CallRecord
from pytest_modelgate.calls.transport import CallBounds, CallLog, measuring_every_client
from pytest_modelgate.errors import CallDeadlineError, ModelAPIError, ResponseTooLargeError

MESSAGES: Any = [{"role": "user", "content": "Reply in JSON."}]
# A trickled body takes far longer than the deadline: ~600 bytes at 50 ms each is 30 s.
TRICKLE = 0.05
# Slack for a loaded CI machine; the deadline is 1.5 s, a trickle would take 30 s.
UPPER_S = 6.0
LIMIT = 65536


def completion(content: str = '{"answer": 42}') -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "m-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def padded_completion(size: int) -> dict[str, Any]:
    return completion("x" * size)


@pytest.fixture
def log(server: ScriptedServer) -> CallLog:
    resolved = ResolvedModel(name="sim", model_id="m-1", base_url=server.base_url)
    return CallLog(test_id="t.py::t", case_id="t", arm="candidate", model="sim", resolved=resolved)


@pytest.fixture
def make_llm(server: ScriptedServer, log: CallLog) -> Iterator[Any]:
    clients: list[LLM] = []

    def make(**options: Any) -> LLM:
        options.setdefault("timeout_s", 0.5)
        options.setdefault("deadline_s", 1.5)
        options.setdefault("backoff_base_s", 0.01)
        llm = LLM(model=log.resolved, arm="candidate", api_key=None, log=log, **options)  # type: ignore[arg-type]
        clients.append(llm)
        return llm

    yield make
    for llm in clients:
        llm.close()


def only_record(log: CallLog) -> CallRecord:
    (record,) = log.records()
    return record


def warmed_up(server: ScriptedServer, llm: LLM) -> LLM:
    """``llm`` after one small call, so that lazy imports do not count in a memory figure."""
    server.script.appendleft(Step(body=completion()))
    llm.chat(MESSAGES)
    return llm


def timed(call: Any) -> tuple[BaseException, float]:
    started = time.perf_counter()
    with pytest.raises(ModelAPIError) as info:
        call()
    return info.value, time.perf_counter() - started


# ------------------------------------------------------------------------------------------
# deadline_s


def test_trickled_json_body_ends_at_the_deadline(server: ScriptedServer, make_llm: Any) -> None:
    """A byte every 50 ms never trips the 0.5 s read timeout; the 1.5 s deadline ends the call."""
    server.script.append(Step(body=padded_completion(500), trickle=TRICKLE))
    llm = make_llm(max_retries=2)

    error, elapsed = timed(lambda: llm.chat(MESSAGES))

    assert isinstance(error, CallDeadlineError)
    assert 1.4 <= elapsed < UPPER_S
    assert "client.deadline_s=1.5 s" in str(error)
    assert str(error).startswith("sim: ")
    # Not retried: the deadline covers the whole call.
    assert len(server.requests) == 1
    record = only_record(llm.log)
    assert record.error_kind == "timeout"
    assert "client.deadline_s=1.5 s" in (record.error_message or "")
    assert 1400 <= record.latency_ms < UPPER_S * 1000


def test_trickled_stream_ends_at_the_deadline(server: ScriptedServer, make_llm: Any) -> None:
    events = sse_events(*[chunk(content=f"word{i} ") for i in range(40)], chunk("stop"))
    server.script.append(Step(events=events, trickle=TRICKLE))
    llm = make_llm()

    error, elapsed = timed(lambda: llm.chat(MESSAGES, stream=True))

    assert isinstance(error, CallDeadlineError)
    assert elapsed < UPPER_S
    record = only_record(llm.log)
    assert (record.error_kind, record.streamed) == ("timeout", True)
    assert "the body was still arriving" in (record.error_message or "")


def test_openai_sdk_ends_at_the_deadline_and_does_not_retry(
    server: ScriptedServer, make_llm: Any
) -> None:
    """The SDK would retry an httpx timeout; the deadline error is not one, so it stops."""
    server.script.extend(Step(body=padded_completion(500), trickle=TRICKLE) for _ in range(3))
    llm = make_llm(max_retries=2)
    sdk = llm.openai()

    started = time.perf_counter()
    with pytest.raises(CallDeadlineError) as info:
        sdk.chat.completions.create(model="m-1", messages=MESSAGES)
    elapsed = time.perf_counter() - started

    assert elapsed < UPPER_S
    assert "client.deadline_s=1.5 s" in str(info.value)
    assert len(server.requests) == 1
    record = only_record(llm.log)
    assert (record.client, record.error_kind) == ("openai", "timeout")


def test_openai_sdk_stream_ends_at_the_deadline(server: ScriptedServer, make_llm: Any) -> None:
    events = sse_events(*[chunk(content=f"w{i} ") for i in range(60)], chunk("stop"))
    server.script.append(Step(events=events, trickle=TRICKLE))
    llm = make_llm()
    sdk = llm.openai()

    started = time.perf_counter()
    with pytest.raises(CallDeadlineError):
        for _ in sdk.chat.completions.create(model="m-1", messages=MESSAGES, stream=True):
            pass
    assert time.perf_counter() - started < UPPER_S
    assert only_record(llm.log).error_kind == "timeout"


def test_openai_sdk_retries_share_the_calls_deadline(server: ScriptedServer, make_llm: Any) -> None:
    """A quick 500, the SDK's own wait (~0.5 s), a trickle: cut 3 s after the *first* attempt."""
    server.script.append(Step(500, {"error": {"message": "boom"}}))
    server.script.append(Step(body=padded_completion(500), trickle=TRICKLE))
    llm = make_llm(deadline_s=3.0, max_retries=3)

    started = time.perf_counter()
    with pytest.raises(CallDeadlineError):
        llm.openai().chat.completions.create(model="m-1", messages=MESSAGES)
    elapsed = time.perf_counter() - started

    assert elapsed < UPPER_S
    assert len(server.requests) == 2
    first, second = llm.log.records()
    assert (first.error_kind, second.error_kind) == ("server_error", "timeout")
    assert (second.call_index, second.attempt) == (0, 2)
    # A deadline per attempt would have given the retry the full 3 s.
    assert second.latency_ms < 2900


def test_openai_sdk_does_not_wait_past_the_deadline(server: ScriptedServer, make_llm: Any) -> None:
    server.script.append(Step(429, {"error": {"message": "slow down"}}, {"Retry-After": "5"}))
    server.script.append(Step(body=completion()))
    llm = make_llm(timeout_s=1, deadline_s=2, max_retries=2)

    started = time.perf_counter()
    with pytest.raises(CallDeadlineError) as info:
        llm.openai().chat.completions.create(model="m-1", messages=MESSAGES)

    assert time.perf_counter() - started < 1.5
    assert len(server.requests) == 1
    assert info.value.error_kind == "rate_limit"
    assert "not retried: the next attempt could not start within client.deadline_s=2 s" in str(
        info.value
    )


def test_a_silent_server_is_cut_at_the_deadline_not_the_read_timeout(
    server: ScriptedServer, make_llm: Any
) -> None:
    """The read timeout (5 s) is shortened to the time left of the deadline (1 s)."""
    server.script.append(Step(body=completion(), delay=8))
    llm = make_llm(timeout_s=5, deadline_s=1.0, max_retries=3)

    error, elapsed = timed(lambda: llm.chat(MESSAGES))

    assert isinstance(error, CallDeadlineError)
    assert 0.9 <= elapsed < 4.0
    assert "no response yet" in str(error)
    assert len(server.requests) == 1


def test_the_deadline_covers_retries(server: ScriptedServer, make_llm: Any) -> None:
    """Two quick 500s, then a trickle: the third attempt ends where the first one's deadline is."""
    server.script.extend([Step(500, {"error": {"message": "boom"}})] * 2)
    server.script.append(Step(body=padded_completion(500), trickle=TRICKLE))
    llm = make_llm(max_retries=5, backoff_base_s=0.2)

    error, elapsed = timed(lambda: llm.chat(MESSAGES))

    assert isinstance(error, CallDeadlineError)
    assert error.attempts == 3
    assert elapsed < UPPER_S
    kinds = [(r.call_index, r.attempt, r.error_kind) for r in llm.log.records()]
    assert kinds == [(0, 1, "server_error"), (0, 2, "server_error"), (0, 3, "timeout")]
    # The third attempt had only what the first two left of the 1.5 s.
    assert llm.log.records()[2].latency_ms < 1500


def test_no_retry_is_made_when_its_wait_would_pass_the_deadline(
    server: ScriptedServer, log: CallLog
) -> None:
    server.script.append(Step(429, {"error": {"message": "slow down"}}, {"Retry-After": "5"}))
    waits: list[float] = []
    llm = LLM(
        model=log.resolved,  # type: ignore[arg-type]
        arm="candidate",
        api_key=None,
        log=log,
        timeout_s=1,
        deadline_s=2,
        retry_after_cap_s=10,
        sleep=waits.append,
    )
    with llm, pytest.raises(CallDeadlineError) as info:
        llm.chat(MESSAGES)

    assert waits == []
    assert len(server.requests) == 1
    assert info.value.error_kind == "rate_limit"
    assert "not retried: the next attempt could not start within client.deadline_s=2 s" in str(
        info.value
    )


def test_a_call_within_the_deadline_is_untouched(server: ScriptedServer, make_llm: Any) -> None:
    server.script.append(Step(body=completion(), trickle=0.0005, trickle_bytes=16))
    llm = make_llm()
    assert llm.chat(MESSAGES).json() == {"answer": 42}
    assert only_record(llm.log).error_kind is None


# ------------------------------------------------------------------------------------------
# max_response_bytes


def test_a_large_json_body_stops_at_the_limit(server: ScriptedServer, make_llm: Any) -> None:
    """4 MB sent in 16 KiB pieces; reading stops at 64 KiB, long before the server is done."""
    total = 4 * 1024 * 1024
    # Encoded before memory is traced: the server thread's copy is not the client's.
    body = json.dumps(padded_completion(total)).encode()
    server.script.append(Step(body=body, trickle=0.001, trickle_bytes=16384))
    llm = warmed_up(server, make_llm(timeout_s=5, deadline_s=30, max_response_bytes=LIMIT))

    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError) as info:
            llm.chat(MESSAGES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    message = str(info.value)
    assert message.startswith("sim: HTTP 200 response_too_large: ")
    assert f"client.max_response_bytes={LIMIT} bytes" in message
    assert "(not retried)" in message
    # Bounded memory: a fraction of the 4 MB body was ever held.
    assert peak < total / 4
    assert server.bytes_sent < total
    assert len(server.requests) == 2
    record = llm.log.records()[-1]
    assert record.error_kind == "response_too_large"
    assert f"client.max_response_bytes={LIMIT}" in (record.error_message or "")


def test_a_large_stream_stops_at_the_limit(server: ScriptedServer, make_llm: Any) -> None:
    piece = "y" * 1000
    events = sse_events(*[chunk(content=piece) for _ in range(1000)], chunk("stop"), gap=0.0005)
    server.script.append(Step(events=events))
    llm = make_llm(timeout_s=5, deadline_s=30, max_response_bytes=LIMIT)

    with pytest.raises(ResponseTooLargeError):
        llm.chat(MESSAGES, stream=True)

    assert server.bytes_sent < 1000 * 1000
    record = only_record(llm.log)
    assert (record.error_kind, record.streamed) == ("response_too_large", True)


def test_a_large_error_body_stops_at_the_limit(server: ScriptedServer, make_llm: Any) -> None:
    body = {"error": {"message": "z" * (2 * LIMIT)}}
    server.script.append(Step(500, body, trickle=0.001, trickle_bytes=8192))
    llm = make_llm(timeout_s=5, deadline_s=30, max_response_bytes=LIMIT)

    with pytest.raises(ResponseTooLargeError):
        llm.chat(MESSAGES)
    # A size failure is final even for a retryable status.
    assert len(server.requests) == 1
    assert only_record(llm.log).error_kind == "response_too_large"


def test_a_gzip_bomb_stops_at_the_limit(server: ScriptedServer, make_llm: Any) -> None:
    """30 KB of gzip that would inflate to 30 MB: the inflated body is what is bounded."""
    raw = json.dumps(padded_completion(30 * 1024 * 1024)).encode()
    packed = gzip.compress(raw)
    assert len(packed) < LIMIT
    server.script.append(Step(body=packed, headers={"Content-Encoding": "gzip"}))
    llm = warmed_up(server, make_llm(timeout_s=5, deadline_s=30, max_response_bytes=LIMIT))

    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError):
            llm.chat(MESSAGES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    assert llm.log.records()[-1].error_kind == "response_too_large"


def test_openai_sdk_stops_at_the_limit_without_retrying(
    server: ScriptedServer, make_llm: Any
) -> None:
    server.script.extend(Step(body=padded_completion(1024 * 1024)) for _ in range(3))
    llm = make_llm(timeout_s=5, deadline_s=30, max_response_bytes=LIMIT, max_retries=2)

    with pytest.raises(ResponseTooLargeError) as info:
        llm.openai().chat.completions.create(model="m-1", messages=MESSAGES)

    assert f"client.max_response_bytes={LIMIT}" in str(info.value)
    assert len(server.requests) == 1
    assert only_record(llm.log).error_kind == "response_too_large"


def test_a_body_at_the_limit_is_accepted(server: ScriptedServer, make_llm: Any) -> None:
    body = json.dumps(padded_completion(100)).encode()
    server.script.append(Step(body=body))
    llm = make_llm(max_response_bytes=len(body))
    assert llm.chat(MESSAGES).text == "x" * 100


def test_a_products_own_client_is_bounded_too(server: ScriptedServer, log: CallLog) -> None:
    server.script.append(Step(body=padded_completion(1024 * 1024)))
    log.bounds = CallBounds(max_response_bytes=LIMIT, model="sim")
    with (
        measuring_every_client(log),
        httpx.Client(timeout=5) as http,
        pytest.raises(ResponseTooLargeError),
    ):
        http.post(server.base_url + "/chat/completions", json={"model": "m-1"})
    record = only_record(log)
    assert (record.client, record.error_kind) == ("other", "response_too_large")


def test_a_bound_enforced_beneath_the_transport_keeps_its_reason(
    server: ScriptedServer, log: CallLog
) -> None:
    """While timings are captured (record mode) the guard beneath httpx may fire first."""
    from pytest_modelgate.calls.transport import measuring_transport
    from pytest_modelgate.recording.timing import capture_timing

    server.script.append(Step(body=padded_completion(1024 * 1024)))
    bounds = CallBounds(max_response_bytes=LIMIT, model="sim")
    transport = measuring_transport(httpx.HTTPTransport(), log.add, bounds=bounds)
    with (
        capture_timing(),
        httpx.Client(transport=transport, timeout=5) as http,
        pytest.raises(ResponseTooLargeError),
    ):
        http.post(server.base_url + "/chat/completions", json={"model": "m-1"})
    record = only_record(log)
    assert record.error_kind == "response_too_large"
    assert f"client.max_response_bytes={LIMIT}" in (record.error_message or "")
