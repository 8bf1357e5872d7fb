"""Measuring transports and the CallLog, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import httpx2
import pytest
from loopback import ScriptedServer, Step, sse_events

from pytest_modelgate.calls.endpoints import PeakPricing, Price, ResolvedModel
from pytest_modelgate.calls.protocol import ParsedCompletion
from pytest_modelgate.calls.records import CallRecord, Usage
from pytest_modelgate.calls.transport import (
    ATTEMPT_EXTENSION,
    Attempt,
    AttemptHandle,
    CallLog,
    is_chat_completions,
    measuring_every_client,
    measuring_httpx2_transport,
    measuring_transport,
)
from pytest_modelgate.recording.timing import TIMING_HEADER, RecordedTiming

# ------------------------------------------------------------------------------------------
# helpers

PRICE = Price(input=2.0, cached_input=0.5, output=10.0)
USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "total_tokens": 1100,
    "prompt_tokens_details": {"cached_tokens": 400},
}
COST = (600 * 2.0 + 400 * 0.5 + 100 * 10.0) / 1e6


def completion(content: str | None = '{"a": 1}', **message: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def make_log(price: Price | None = PRICE) -> CallLog:
    resolved = ResolvedModel(name="m", model_id="m-1", base_url="http://x", price=price)
    return CallLog(test_id="t.py::t", case_id="t", arm="candidate", model="m", resolved=resolved)


@pytest.fixture
def log() -> CallLog:
    return make_log()


@pytest.fixture
def client(log: CallLog) -> Iterator[httpx.Client]:
    with httpx.Client(
        transport=measuring_transport(httpx.HTTPTransport(), log.add), timeout=2.0
    ) as http:
        yield http


def post(http: httpx.Client, server: ScriptedServer, body: Any = None) -> httpx.Response:
    return http.post(f"{server.base_url}/chat/completions", json=body or {"model": "m-1"})


def only(log: CallLog) -> CallRecord:
    (record,) = log.records()
    return record


# ------------------------------------------------------------------------------------------
# what is measured


def test_json_completion_is_recorded(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    server.script.append(Step(body=completion(tool_calls=[{"id": "1", "function": {"name": "f"}}])))
    before = time.time()
    response = client.post(f"{server.base_url}/chat/completions?key=secret", json={"model": "m-1"})
    assert response.json()["choices"][0]["message"]["content"] == '{"a": 1}'
    record = only(log)
    assert record.model_dump(include={"test_id", "case_id", "arm", "model", "repeat"}) == {
        "test_id": "t.py::t",
        "case_id": "t",
        "arm": "candidate",
        "model": "m",
        "repeat": 0,
    }
    assert (record.call_index, record.attempt, record.client) == (0, 1, "modelgate")
    assert record.endpoint == f"{server.base_url}/chat/completions"  # no query string
    assert before <= record.started_at <= time.time()
    assert record.status == 200
    assert record.error_kind is None
    assert record.usage == Usage(
        prompt_tokens=1000, completion_tokens=100, cached_tokens=400, total_tokens=1100
    )
    assert record.cost_usd == pytest.approx(COST)
    assert record.json_valid is True
    assert record.tool_calls == ("f",)
    assert record.finish_reason == "stop"
    assert record.ttft_ms is None
    assert record.latency_ms is not None
    assert 0 < record.latency_ms < 1000
    assert not record.streamed


def test_other_requests_pass_through_unrecorded(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    server.script.append(Step(body={"data": []}))
    assert client.get(f"{server.base_url}/models").json() == {"data": []}
    assert log.records() == ()
    assert is_chat_completions("post", "/v1/chat/completions/")
    assert not is_chat_completions("GET", "/v1/chat/completions")
    assert not is_chat_completions("POST", "/v1/completions")


def test_sse_stream_times_first_token_and_end(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    events = [
        (0.0, b": keep-alive\n\n"),
        *sse_events(chunk(role="assistant", content=""), gap=0.05),
        *sse_events(chunk(content="Hi"), gap=0.15, done=False),
        *sse_events(chunk(finish="stop", content="!"), gap=0.15, done=False),
        *sse_events({"choices": [], "usage": USAGE}, gap=0.05),
    ]
    server.script.append(Step(events=events))
    with client.stream("POST", f"{server.base_url}/chat/completions", json={"stream": True}) as r:
        body = b"".join(r.iter_bytes())
    assert body.endswith(b"data: [DONE]\n\n")
    record = only(log)
    assert record.error_kind is None
    assert record.streamed
    assert record.ttft_ms is not None
    assert record.latency_ms is not None
    # "Hi" arrives ~200 ms in, the end ~200 ms later.
    assert record.ttft_ms >= 190
    assert record.latency_ms >= 390
    assert record.ttft_ms < record.latency_ms - 120
    assert record.latency_ms < 2000
    assert record.usage is not None
    assert record.usage.cached_tokens == 400
    assert record.cost_usd == pytest.approx(COST)
    assert record.json_valid is False  # "Hi!"


def test_stream_ending_without_done_or_finish_reason_is_cut(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    server.script.append(Step(events=sse_events(chunk(content="half"), done=False)))
    post(client, server)
    record = only(log)
    assert record.error_kind == "stream_cut"
    assert record.error_message == "the stream ended before [DONE] or a finish_reason (1 chunks)"
    assert record.status == 200


def test_stream_broken_mid_way_is_cut_and_reraised(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    server.script.append(Step(events=sse_events(chunk(content="half"), done=False), cut=True))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, server)
    record = only(log)
    assert record.error_kind == "stream_cut"
    assert record.error_message is not None
    assert record.error_message.startswith("RemoteProtocolError while reading the body")
    assert record.ttft_ms is not None
    assert record.json_valid is None  # a partial text is no answer
    assert record.finish_reason is None


def test_cut_stream_still_costs_what_it_used(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    events = sse_events(chunk(content="x"), {"choices": [], "usage": USAGE}, done=False)
    server.script.append(Step(events=events, cut=True))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, server)
    record = only(log)
    assert record.error_kind == "stream_cut"
    assert record.cost_usd == pytest.approx(COST)


def test_json_body_cut_short(server: ScriptedServer, client: httpx.Client, log: CallLog) -> None:
    server.script.append(Step(body=completion(), cut=True))
    with pytest.raises(httpx.RemoteProtocolError):
        post(client, server)
    assert only(log).error_kind == "stream_cut"


def test_stream_closed_by_the_caller_before_the_end(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    events = sse_events(chunk(content="a"), chunk(content="b"), gap=0.05)
    server.script.append(Step(events=events))
    with client.stream("POST", f"{server.base_url}/chat/completions", json={}) as response:
        next(response.iter_raw())
    record = only(log)
    assert record.error_kind == "stream_cut"
    assert record.error_message is not None
    assert "closed before the stream ended" in record.error_message


def test_unread_response_recorded_when_the_client_closes(
    server: ScriptedServer, log: CallLog
) -> None:
    server.script.append(Step(events=sse_events(chunk(content="a"))))
    http = httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add))
    request = http.build_request("POST", f"{server.base_url}/chat/completions", json={})
    http.send(request, stream=True)  # never read, never closed
    assert log.records() == ()
    http.close()
    assert only(log).error_kind == "stream_cut"


def test_error_chunk_inside_a_stream(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    error = {"error": {"message": "upstream overloaded", "code": "server_error"}}
    server.script.append(Step(events=sse_events(chunk(content="a"), error)))
    post(client, server)
    record = only(log)
    assert record.error_kind == "provider_error"
    assert record.error_message == "server_error: upstream overloaded"


def test_minimax_error_in_200(server: ScriptedServer, client: httpx.Client, log: CallLog) -> None:
    body = {
        "choices": None,
        "base_resp": {"status_code": 1008, "status_msg": "insufficient balance"},
    }
    server.script.append(Step(body=body))
    assert post(client, server).status_code == 200
    record = only(log)
    assert (record.status, record.error_kind) == (200, "quota")
    assert record.error_message == "1008: insufficient balance"
    assert record.cost_usd is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>hello</html>", "the body is not JSON: b'<html>hello</html>'"),
        ({"object": "list", "data": []}, "not a chat completion: the body has no choices"),
    ],
)
def test_invalid_2xx_bodies(
    server: ScriptedServer, client: httpx.Client, log: CallLog, body: Any, message: str
) -> None:
    server.script.append(Step(body=body, headers={"Content-Type": "text/plain"}))
    post(client, server)
    record = only(log)
    assert record.error_kind == "invalid_response"
    assert record.error_message == message


def test_sse_without_content_type_is_sniffed(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    events = sse_events(chunk(content="ok", finish="stop"))
    server.script.append(Step(events=events, headers={"Content-Type": "text/plain"}))
    post(client, server)
    record = only(log)
    assert record.error_kind is None
    assert record.streamed
    assert record.json_valid is False


def test_http_error_statuses_are_classified(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    server.script.append(
        Step(429, {"error": {"message": "slow down", "code": "rate_limit"}}, {"Retry-After": "3"})
    )
    assert post(client, server).status_code == 429
    record = only(log)
    assert (record.status, record.error_kind) == (429, "rate_limit")
    assert record.error_message == "rate_limit: slow down"


def test_retry_after_reaches_the_attempt_handle(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.script.append(Step(503, b"", {"Retry-After": "4"}))
    handle = AttemptHandle()
    request = client.build_request(
        "POST",
        f"{server.base_url}/chat/completions",
        json={},
        extensions={ATTEMPT_EXTENSION: handle},
    )
    client.send(request).read()
    assert handle.attempt is not None
    assert handle.record is not None
    assert handle.attempt.retry_after_s == 4.0
    assert handle.record.error_kind == "server_error"
    assert handle.record.error_message == "Service Unavailable"


def test_gzip_body_is_decoded(server: ScriptedServer, client: httpx.Client, log: CallLog) -> None:
    raw = gzip.compress(json.dumps(completion()).encode())
    server.script.append(Step(body=raw, headers={"Content-Encoding": "gzip"}))
    assert post(client, server).json()["usage"] == USAGE
    record = only(log)
    assert record.error_kind is None
    assert record.usage is not None
    assert record.usage.prompt_tokens == 1000


def test_accept_encoding_narrowed_to_decodable(
    server: ScriptedServer, client: httpx.Client
) -> None:
    server.script.append(Step(body=completion()))
    client.post(
        f"{server.base_url}/chat/completions",
        json={},
        headers={"Accept-Encoding": "br, gzip;q=0.9, zstd"},
    )
    assert server.requests[0][2]["Accept-Encoding"] == "gzip;q=0.9"


def test_connection_refused_is_recorded_and_reraised(log: CallLog) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add)) as http,
        pytest.raises(httpx.ConnectError),
    ):
        http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})
    record = only(log)
    assert (record.status, record.error_kind) == (None, "connection")
    assert record.error_message is not None
    assert record.error_message.startswith("ConnectError: ")
    assert record.usage is None


def test_timeout_is_recorded_and_reraised(server: ScriptedServer, log: CallLog) -> None:
    server.script.append(Step(body=completion(), delay=0.6))
    transport = measuring_transport(httpx.HTTPTransport(), log.add)
    with httpx.Client(transport=transport, timeout=0.2) as http, pytest.raises(httpx.ReadTimeout):
        post(http, server)
    record = only(log)
    assert (record.status, record.error_kind) == (None, "timeout")
    assert record.latency_ms is not None
    assert 150 <= record.latency_ms < 550


def test_api_key_never_recorded(server: ScriptedServer, client: httpx.Client, log: CallLog) -> None:
    key = "sk-live-0123456789"
    body = {"error": {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}}
    server.script.append(Step(401, body))
    client.post(
        f"{server.base_url}/chat/completions",
        json={},
        headers={"Authorization": f"Bearer {key}"},
    )
    record = only(log)
    assert record.error_kind == "auth"
    assert key not in record.model_dump_json()
    assert record.error_message == "invalid_api_key: Incorrect API key provided: <redacted>"


def test_no_price_no_cost(server: ScriptedServer) -> None:
    log = make_log(price=None)
    server.script.append(Step(body=completion()))
    with httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add)) as http:
        post(http, server)
    record = only(log)
    assert record.usage is not None
    assert record.cost_usd is None


def test_cost_uses_the_start_time_for_peak_prices(server: ScriptedServer) -> None:
    peak = PeakPricing(multiplier=2.0, utc_hours=((0, 24),), weekdays_only=False)
    log = make_log(price=PRICE.model_copy(update={"peak": peak}))
    server.script.append(Step(body=completion()))
    with httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add)) as http:
        post(http, server)
    assert only(log).cost_usd == pytest.approx(2 * COST)


def test_httpx2_transport_measures_the_same(server: ScriptedServer, log: CallLog) -> None:
    server.script.append(Step(events=sse_events(chunk(content="x", finish="stop"), gap=0.05)))
    transport = measuring_httpx2_transport(httpx2.HTTPTransport(), log.add)
    with httpx2.Client(transport=transport) as http:
        http.post(f"{server.base_url}/chat/completions", json={"stream": True}).read()
    record = only(log)
    assert record.client == "openai"
    assert record.error_kind is None
    assert record.ttft_ms is not None


def test_retried_request_is_the_next_attempt(
    server: ScriptedServer, client: httpx.Client, log: CallLog
) -> None:
    server.script.extend(
        [Step(503, b""), Step(body=completion()), Step(body=completion()), Step(body=completion())]
    )
    post(client, server, {"q": 1})
    post(client, server, {"q": 1})  # same bytes after a failure: a retry
    post(client, server, {"q": 1})  # same bytes after a success: a new call
    post(client, server, {"q": 2})
    numbers = [(r.call_index, r.attempt, r.error_kind) for r in log.records()]
    assert numbers == [(0, 1, "server_error"), (0, 2, None), (1, 1, None), (2, 1, None)]


# ------------------------------------------------------------------------------------------
# CallLog numbering, without HTTP


def attempt(key: str, start: float, end: float, ok: bool = True) -> Attempt:
    return Attempt(
        client="modelgate",
        method="POST",
        endpoint="http://x/v1/chat/completions",
        request_key=key,
        started_at=1_700_000_000.0 + start,
        started_monotonic=start,
        ended_monotonic=end,
        latency_ms=(end - start) * 1000,
        status=200 if ok else 500,
        error_kind=None if ok else "server_error",
        completion=ParsedCompletion(text="x") if ok else None,
    )


def test_call_log_keeps_concurrent_identical_requests_apart() -> None:
    log = make_log()
    log.add(attempt("k", 0.0, 1.0, ok=False))  # call 0 fails at t=1
    log.add(attempt("k", 0.5, 2.0))  # started before that failure ended: another call
    log.add(attempt("k", 1.5, 3.0))  # the retry of call 0
    numbers = [(r.call_index, r.attempt) for r in log.records()]
    assert numbers == [(0, 1), (1, 1), (0, 2)]


def test_call_log_chains_attempts_and_matches_by_key() -> None:
    log = make_log()
    log.add(attempt("a", 0, 1, ok=False))
    log.add(attempt("b", 1, 2, ok=False))
    log.add(attempt("a", 2, 3, ok=False))
    log.add(attempt("a", 3, 4))
    log.add(attempt("b", 4, 5))
    log.add(attempt("a", 5, 6))
    numbers = [(r.call_index, r.attempt) for r in log.records()]
    assert numbers == [(0, 1), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1)]
    assert len(log) == 6
    assert "records=6" in repr(log)


def test_call_log_is_thread_safe() -> None:
    log = make_log()

    def work(n: int) -> None:
        for i in range(50):
            log.add(attempt(f"{n}-{i}", i, i + 0.5))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = log.records()
    assert sorted(r.call_index for r in records) == list(range(400))


# ------------------------------------------------------------------------------------------
# clients the product builds itself


@pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
def test_a_product_client_is_measured_only_while_active(
    server: ScriptedServer, log: CallLog, library: Any
) -> None:
    server.script.extend([Step(body=completion()), Step(body=completion()), Step(body={})])
    url = f"{server.base_url}/chat/completions"
    original = library.HTTPTransport.handle_request
    with library.Client(timeout=2.0) as http:
        with measuring_every_client(log):
            assert http.post(url, json={"model": "m-1"}).json()["choices"]
            # Not a chat completion: passes through unmeasured.
            assert http.get(f"{server.base_url}/models").status_code == 200
        assert library.HTTPTransport.handle_request is original
        http.post(url, json={"model": "m-1"})
    record = only(log)
    assert (record.client, record.status, record.json_valid) == ("other", 200, True)
    assert record.cost_usd == pytest.approx(COST)


def test_a_measured_client_is_not_measured_twice(server: ScriptedServer, log: CallLog) -> None:
    server.script.append(Step(body=completion()))
    with (
        measuring_every_client(log),
        httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add)) as http,
    ):
        post(http, server)
    assert only(log).client == "modelgate"


def test_a_product_stream_left_unread_is_recorded_on_exit(
    server: ScriptedServer, log: CallLog
) -> None:
    server.script.append(
        Step(events=[*sse_events(chunk(content="Hi")), *sse_events(chunk(finish="stop"))])
    )
    http = httpx.Client(timeout=2.0)
    with measuring_every_client(log):
        request = http.build_request(
            "POST", f"{server.base_url}/chat/completions", json={"model": "m-1", "stream": True}
        )
        response = http.send(request, stream=True)
        assert log.records() == ()
    record = only(log)
    assert (record.client, record.error_kind, record.streamed) == ("other", "stream_cut", True)
    response.close()
    http.close()


def test_nested_uses_measure_into_the_innermost_log(server: ScriptedServer) -> None:
    outer, inner = make_log(), make_log()
    server.script.extend([Step(body=completion()), Step(body=completion())])
    with httpx.Client(timeout=2.0) as http, measuring_every_client(outer):
        with measuring_every_client(inner):
            post(http, server)
        post(http, server)
    assert len(outer.records()) == 1
    assert len(inner.records()) == 1


# ------------------------------------------------------------------------------------------
# Issue 10 item 6: a replayed call is billed when it was recorded, never at the replay's hour

# A Tuesday: 07:00 UTC is a DeepSeek peak hour (2x), 12:00 UTC is not.
PEAK_AT = datetime(2026, 12, 1, 7, 0, tzinfo=timezone.utc)
OFF_PEAK_AT = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
DEEPSEEK_PEAK = PeakPricing(multiplier=2.0, utc_hours=((1, 4), (6, 10)), weekdays_only=True)


def priced_attempt(*, started: datetime, timing: str, recorded_at: datetime | None) -> Attempt:
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    return Attempt(
        client="modelgate",
        method="POST",
        endpoint="http://x/v1/chat/completions",
        request_key="k",
        started_at=started.timestamp(),
        started_monotonic=0.0,
        ended_monotonic=1.0,
        latency_ms=1000.0,
        status=200,
        completion=ParsedCompletion(text="x", usage=usage),
        timing=timing,  # type: ignore[arg-type]
        recorded_at=recorded_at,
    )


@pytest.mark.parametrize("recorded_at", [OFF_PEAK_AT, PEAK_AT, None], ids=str)
def test_a_replayed_call_costs_the_same_at_any_replay_time(recorded_at: datetime | None) -> None:
    costs = []
    for replayed_at in (OFF_PEAK_AT, PEAK_AT):
        log = make_log(price=PRICE.model_copy(update={"peak": DEEPSEEK_PEAK}))
        replayed = priced_attempt(started=replayed_at, timing="recorded", recorded_at=recorded_at)
        assert replayed.billed_at == recorded_at
        costs.append(log.add(replayed).cost_usd)
    expected = 2 * COST if recorded_at == PEAK_AT else COST
    assert costs == [pytest.approx(expected)] * 2


def test_a_live_call_is_billed_when_it_started() -> None:
    log = make_log(price=PRICE.model_copy(update={"peak": DEEPSEEK_PEAK}))
    # recorded_at means nothing for a live attempt.
    at_peak = priced_attempt(started=PEAK_AT, timing="live", recorded_at=OFF_PEAK_AT)
    off_peak = priced_attempt(started=OFF_PEAK_AT, timing="live", recorded_at=PEAK_AT)
    assert at_peak.billed_at == PEAK_AT
    assert log.add(at_peak).cost_usd == pytest.approx(2 * COST)
    assert log.add(off_peak).cost_usd == pytest.approx(COST)


@pytest.mark.parametrize("stored", [True, False], ids=["recorded_at", "date-header"])
def test_a_replayed_response_carries_its_recording_time(
    server: ScriptedServer, stored: bool
) -> None:
    """Over loopback: a response with a timing header is what vcrpy hands back on replay.

    The loopback server sends its own Date header (now); recorded_at, when stored, wins over it.
    """
    timing = RecordedTiming(1, 2, recorded_at=PEAK_AT if stored else None)
    server.script.append(Step(body=completion(), headers={TIMING_HEADER: timing.to_header()}))
    handle = AttemptHandle()
    log = make_log(price=PRICE.model_copy(update={"peak": DEEPSEEK_PEAK}))
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add)) as http:
        request = http.build_request("POST", f"{server.base_url}/chat/completions", json={"q": 1})
        request.extensions[ATTEMPT_EXTENSION] = handle
        http.send(request).read()
    assert handle.attempt is not None
    assert handle.attempt.timing == "recorded"
    billed = handle.attempt.recorded_at
    if stored:
        assert billed == PEAK_AT
        assert only(log).cost_usd == pytest.approx(2 * COST)
    else:
        assert billed is not None
        assert before <= billed <= datetime.now(timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 01 Dec 2026 07:00:00 GMT", PEAK_AT),
        ("Tue, 01 Dec 2026 08:00:00 +0100", PEAK_AT),
        ("Tue, 01 Dec 2026 07:00:00 -0000", None),  # RFC 5322: zone unknown
        ("not a date", None),
        ("", None),
        (None, None),
    ],
)
def test_http_date_reads_only_dates_with_a_zone(value: str | None, expected: object) -> None:
    from pytest_modelgate.calls.transport import _http_date

    assert _http_date(value) == expected
