"""Real timing kept in recordings: measured beneath vcrpy, replayed as the call's latency.

Real simulator on 127.0.0.1, real vcrpy, our client and the real openai SDK. Recording runs with
the simulator up; replay runs after it stopped, so any network use would fail.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpcore
import httpcore2
import httpx
import pytest
import vcr
import vcr.patch
import yaml

from pytest_modelgate.calls.client import LLM
from pytest_modelgate.calls.endpoints import ResolvedModel
from pytest_modelgate.calls.records import CallRecord
from pytest_modelgate.calls.transport import CallLog, measuring_transport
from pytest_modelgate.errors import ModelAPIError
from pytest_modelgate.recording.timing import (
    TIMING_EXTENSION,
    TIMING_HEADER,
    RecordedTiming,
    TimingRegistry,
    TimingSlot,
    _Completed,
    active_registry,
    before_record_response,
    capture_timing,
    pop_timing_header,
    timing_key,
)
from pytest_modelgate.simulator import SimulatorServer

SIM_KEY = "sk-sim-test-0123456789abcdef"  # the key tests/conftest.py starts simulators with
SLOW = {"latency_ms": 300, "ttft_ms": 120}
QUICK = {"latency_ms": 40, "ttft_ms": 10}
MESSAGES: Any = [{"role": "user", "content": "Classify: my invoice is wrong"}]
# The simulator waits out a scripted latency after it has read the request, inside the interval a
# client times, so a measured figure is never below it however busy the machine is. This covers
# clock granularity only; no test bounds a measured time from above by a fixed amount.
CLOCK_TOLERANCE_MS = 2.0
# RecordedTiming.to_header keeps a tenth of a millisecond.
HEADER_ROUNDING_MS = 0.1

# vcrpy 8.x (the line Python 3.10 gets) does not intercept httpx2, the openai SDK's HTTP library.
HTTPX2_PATCHED = hasattr(vcr.patch, "_Httpx2HttpTransport_handle_request")
needs_httpx2_vcr = pytest.mark.skipif(
    not HTTPX2_PATCHED, reason="this vcrpy does not intercept httpx2 (vcrpy >= 9, Python >= 3.11)"
)


# ------------------------------------------------------------------------------------------
# helpers


class Harness:
    """A simulator, a cassette path and LLM clients on its models, each with its own CallLog."""

    def __init__(self, sim: SimulatorServer, cassette: Path) -> None:
        self.sim = sim
        self.base_url = sim.base_url
        self.cassette = cassette
        self.clients: list[LLM] = []

    def llm(self, model: str = "slow", **options: Any) -> LLM:
        resolved = ResolvedModel(name=model, model_id=model, base_url=self.base_url, price=None)
        log = CallLog(test_id="t.py::t", case_id="t", arm="stable", model=model, resolved=resolved)
        options.setdefault("sleep", lambda seconds: None)
        llm = LLM(model=resolved, arm="stable", api_key=SIM_KEY, log=log, **options)
        self.clients.append(llm)
        return llm

    @contextmanager
    def recording(self, mode: str) -> Iterator[None]:
        """Capture timing and use the cassette in ``mode`` (``once`` records, ``none`` replays)."""
        recorder = vcr.VCR(
            record_mode=mode,
            match_on=("method", "uri", "body"),
            before_record_response=before_record_response,
        )
        with capture_timing(), recorder.use_cassette(str(self.cassette)):
            yield

    def stored_timings(self) -> list[tuple[dict[str, Any], RecordedTiming]]:
        """(request body, timing) of every interaction in the cassette file, in order."""
        data = yaml.safe_load(self.cassette.read_text(encoding="utf-8"))
        out = []
        for interaction in data["interactions"]:
            (value,) = interaction["response"]["headers"][TIMING_HEADER]
            body = json.loads(interaction["request"]["body"])
            out.append((body, RecordedTiming.from_header(value)))
        return out

    def close(self) -> None:
        for llm in self.clients:
            llm.close()
        self.clients.clear()


@pytest.fixture
def h(start_simulator: Callable[..., SimulatorServer], tmp_path: Path) -> Iterator[Harness]:
    sim = start_simulator(
        {
            "slow": SLOW,
            "quick": QUICK,
            "flaky": {**QUICK, "script": [{"status": 503}, {"status": 200}]},
            "cut": {**QUICK, "script": [{"stream_cut": True}]},
            "paced": {"script": [{"latency_ms": 80}, {"latency_ms": 10}, {"latency_ms": 40}]},
        }
    )
    harness = Harness(sim, tmp_path / "cassette.yaml")
    yield harness
    harness.close()


def forbid_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay must not sleep: from now on any time.sleep fails the test."""

    def forbidden(seconds: float) -> None:
        raise AssertionError(f"replay slept {seconds} s")

    monkeypatch.setattr(time, "sleep", forbidden)


def at_least(measured: float | None, scripted: float) -> bool:
    """Whether ``measured`` is no shorter than the ``scripted`` latency it includes."""
    return measured is not None and measured >= scripted - CLOCK_TOLERANCE_MS


def within(measured: float | None, wall_ms: float) -> bool:
    """Whether ``measured`` fits in the wall time of the call it was measured during.

    Load lengthens both alike: the clock beneath starts after and stops before the one around the
    call. Only a figure of another, longer exchange (or in the wrong unit) exceeds it.
    """
    return measured is not None and measured <= wall_ms + HEADER_ROUNDING_MS


def assert_increasing(timing: RecordedTiming) -> None:
    chunks = timing.chunks_ms
    assert chunks, timing
    assert list(chunks) == sorted(chunks)
    assert chunks[-1] == pytest.approx(timing.total_ms, abs=0.1)
    assert timing.headers_ms <= chunks[0]


def assert_replayed(record: CallRecord, stored: RecordedTiming) -> None:
    assert record.timing == "recorded"
    assert record.latency_ms == pytest.approx(stored.total_ms, abs=1)
    if stored.ttft_ms is None:
        assert record.ttft_ms is None
    else:
        assert record.ttft_ms == pytest.approx(stored.ttft_ms, abs=1)


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - started) * 1000


# ------------------------------------------------------------------------------------------
# our client: record a slow model, replay it offline


def test_our_client_records_real_timing_and_replays_it_without_waiting(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = h.llm()
    with h.recording("once"):
        plain, plain_call_ms = timed(lambda: llm.chat(MESSAGES))
        streamed, stream_call_ms = timed(lambda: llm.chat(MESSAGES, stream=True))
    recorded = llm.log.records()
    (plain_body, plain_t), (stream_body, stream_t) = h.stored_timings()
    assert "stream" not in plain_body
    assert stream_body["stream"] is True

    # The stored figures are the simulator's latencies, measured beneath vcrpy: each no shorter
    # than scripted and within the call that made it.
    assert at_least(plain_t.total_ms, 300)
    assert within(plain_t.total_ms, plain_call_ms)
    assert plain_t.ttft_ms is None
    assert not plain_t.cut
    assert at_least(stream_t.ttft_ms, 120)
    assert at_least(stream_t.total_ms, 300)
    assert within(stream_t.total_ms, stream_call_ms)
    # The first token is stamped at the chunk that brought it, not at the end of the body, and
    # the headers before it (the simulator sends them 120 ms before the first token).
    assert stream_t.ttft_ms in stream_t.chunks_ms[:-1]
    assert stream_t.headers_ms < stream_t.ttft_ms
    assert not stream_t.cut
    assert len(stream_t.chunks_ms) > 3
    assert_increasing(plain_t)
    assert_increasing(stream_t)
    # While recording, the records carry the same real figures: the time to first token is not
    # that of the body vcrpy read in one go.
    assert [r.timing for r in recorded] == ["live", "live"]
    assert recorded[0].latency_ms == pytest.approx(plain_t.total_ms, abs=1)
    assert recorded[1].ttft_ms == pytest.approx(stream_t.ttft_ms, abs=1)
    assert recorded[1].latency_ms == pytest.approx(stream_t.total_ms, abs=1)
    assert plain.latency_ms == pytest.approx(plain_t.total_ms, abs=1)
    assert streamed.ttft_ms == pytest.approx(stream_t.ttft_ms, abs=1)

    h.close()
    h.sim.stop()
    forbid_sleep(monkeypatch)
    replayer = h.llm()
    # Making the HTTP client (an SSL context...) is not replay: keep it out of the wall time.
    replayer._client()
    with h.recording("none"):
        plain_again, plain_wall = timed(lambda: replayer.chat(MESSAGES))
        stream_again, stream_wall = timed(lambda: replayer.chat(MESSAGES, stream=True))

    first, second = replayer.log.records()
    assert_replayed(first, plain_t)
    assert_replayed(second, stream_t)
    assert second.streamed
    # A slow model stays slow on replay, and replay does not take that long: a replay that waited
    # out the recorded latency would take at least as long as it reports.
    assert plain_again.latency_ms == pytest.approx(plain_t.total_ms, abs=1)
    assert stream_again.ttft_ms == pytest.approx(stream_t.ttft_ms, abs=1)
    assert plain_wall < plain_t.total_ms
    assert stream_wall < stream_t.total_ms
    assert plain_again.text == plain.text
    assert stream_again.text == streamed.text
    assert TIMING_HEADER not in json.dumps([plain_again.raw, stream_again.raw])


def test_header_never_reaches_an_httpx_caller(h: Harness) -> None:
    log = CallLog(test_id="t.py::t", case_id="t", arm="stable", model="quick")
    url = h.base_url + "/chat/completions"
    body = {"model": "quick", "messages": MESSAGES}
    headers = {"Authorization": f"Bearer {SIM_KEY}"}

    def send() -> httpx.Response:
        with httpx.Client(transport=measuring_transport(httpx.HTTPTransport(), log.add)) as http:
            response = http.post(url, json=body, headers=headers)
            response.read()
            return response

    with h.recording("once"):
        live = send()
    h.sim.stop()
    with h.recording("none"):
        replayed = send()
    assert TIMING_HEADER not in live.headers
    assert TIMING_HEADER not in replayed.headers
    assert replayed.json() == live.json()
    assert [r.timing for r in log.records()] == ["live", "recorded"]


# ------------------------------------------------------------------------------------------
# the openai SDK (httpx2 beneath)


@needs_httpx2_vcr
def test_openai_sdk_records_real_timing_and_replays_it_without_waiting(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def calls(llm: LLM) -> tuple[list[Any], list[float]]:
        sdk = llm.openai()
        plain, plain_wall = timed(
            lambda: sdk.chat.completions.with_raw_response.create(model="slow", messages=MESSAGES)
        )

        def stream() -> Any:
            raw = sdk.chat.completions.with_raw_response.create(
                model="slow",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            return raw, list(raw.parse())

        (stream_raw, chunks), stream_wall = timed(stream)
        return [plain, stream_raw, chunks], [plain_wall, stream_wall]

    llm = h.llm()
    with h.recording("once"):
        (plain, stream_raw, chunks), call_walls = calls(llm)
    (_, plain_t), (_, stream_t) = h.stored_timings()
    assert at_least(plain_t.total_ms, 300)
    assert within(plain_t.total_ms, call_walls[0])
    assert at_least(stream_t.ttft_ms, 120)
    assert stream_t.ttft_ms in stream_t.chunks_ms[:-1]
    assert at_least(stream_t.total_ms, 300)
    assert within(stream_t.total_ms, call_walls[1])
    assert_increasing(stream_t)
    assert [(r.client, r.timing) for r in llm.log.records()] == [("openai", "live")] * 2
    assert llm.log.records()[1].ttft_ms == pytest.approx(stream_t.ttft_ms, abs=1)
    assert chunks[-1].usage is not None

    h.close()
    h.sim.stop()
    forbid_sleep(monkeypatch)
    replayer = h.llm()
    with h.recording("none"):
        (plain_again, stream_raw_again, chunks_again), walls = calls(replayer)

    first, second = replayer.log.records()
    assert_replayed(first, plain_t)
    assert_replayed(second, stream_t)
    assert second.streamed
    assert second.usage is not None
    # Replay does not wait out the recorded latency.
    assert walls[0] < plain_t.total_ms, walls
    assert walls[1] < stream_t.total_ms, walls
    for raw in (plain, stream_raw, plain_again, stream_raw_again):
        assert TIMING_HEADER not in raw.headers
    assert plain_again.parse().choices[0].message.content == (
        plain.parse().choices[0].message.content
    )
    assert [c.model_dump() for c in chunks_again] == [c.model_dump() for c in chunks]


# ------------------------------------------------------------------------------------------
# pairing: concurrency, retries, cut streams, a rebuilt request


def test_concurrent_recordings_keep_their_own_timing(h: Harness) -> None:
    slow, quick = h.llm("slow"), h.llm("quick")
    errors: list[BaseException] = []
    # Wall time of each call, per model, in the order each thread made them.
    walls: dict[str, list[float]] = {"slow": [], "quick": []}

    def call(llm: LLM) -> None:
        try:
            for _ in range(2 if llm is quick else 1):
                _, wall = timed(lambda: llm.chat(MESSAGES, stream=True))
                walls[llm.log.model].append(wall)
        except BaseException as exc:
            errors.append(exc)

    with h.recording("once"):
        threads = [threading.Thread(target=call, args=(llm,)) for llm in (slow, quick)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    by_model: dict[str, list[RecordedTiming]] = {}
    for body, timing in h.stored_timings():
        by_model.setdefault(body["model"], []).append(timing)
    # Each interaction keeps its own exchange's timing: a quick one given the slow one's would not
    # fit in its call, the slow one given a quick one's would be below its scripted latency.
    # Cassette order is completion order, which is call order within one thread.
    assert [len(by_model["slow"]), len(by_model["quick"])] == [1, 2]
    for model, scripted in (("slow", 300), ("quick", 40)):
        for timing, wall in zip(by_model[model], walls[model], strict=True):
            assert at_least(timing.total_ms, scripted), (model, timing)
            assert within(timing.total_ms, wall), (model, timing, wall)
    for llm, model in ((slow, "slow"), (quick, "quick")):
        latencies = sorted(r.latency_ms or 0 for r in llm.log.records())
        stored = sorted(t.total_ms for t in by_model[model])
        assert latencies == pytest.approx(stored, abs=1)


def test_a_retried_request_replays_each_attempt_with_its_timing(h: Harness) -> None:
    llm = h.llm("flaky", max_retries=2)
    with h.recording("once"):
        llm.chat(MESSAGES)
    stored = [timing for _, timing in h.stored_timings()]
    assert len(stored) == 2
    h.sim.stop()
    replayer = h.llm("flaky", max_retries=2)
    with h.recording("none"):
        replayer.chat(MESSAGES)
    numbered = [(r.call_index, r.attempt, r.error_kind, r.timing) for r in replayer.log.records()]
    assert numbered == [(0, 1, "server_error", "recorded"), (0, 2, None, "recorded")]
    for record, timing in zip(replayer.log.records(), stored, strict=True):
        assert record.latency_ms == pytest.approx(timing.total_ms, abs=1)


def test_a_cut_stream_is_recorded_as_cut(h: Harness) -> None:
    llm = h.llm("cut", max_retries=0)
    with h.recording("once"), pytest.raises(ModelAPIError, match="stream_cut"):
        llm.chat(MESSAGES, stream=True)
    ((_, timing),) = h.stored_timings()
    assert timing.cut
    h.sim.stop()
    replayer = h.llm("cut", max_retries=0)
    with h.recording("none"), pytest.raises(ModelAPIError, match="stream_cut"):
        replayer.chat(MESSAGES, stream=True)
    (record,) = replayer.log.records()
    assert record.error_kind == "stream_cut"
    assert_replayed(record, timing)


class RebuildingTransport(httpx.BaseTransport):
    """Sends a copy of each request, without its extensions: the timing slot is lost."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        copy = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        return self.inner.handle_request(copy)

    def close(self) -> None:
        self.inner.close()


def test_without_the_slot_the_timing_is_found_by_request(h: Harness) -> None:
    log = CallLog(test_id="t.py::t", case_id="t", arm="stable", model="slow")
    body = {"model": "slow", "messages": MESSAGES, "stream": True}
    transport = measuring_transport(RebuildingTransport(), log.add)
    with h.recording("once"), httpx.Client(transport=transport) as http:
        response = http.post(
            h.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {SIM_KEY}"},
        )
        response.read()
    ((_, timing),) = h.stored_timings()
    (record,) = log.records()
    # Above vcrpy every chunk arrives at once, at the end: the first token would look late.
    assert at_least(timing.ttft_ms, 120)
    assert timing.ttft_ms in timing.chunks_ms[:-1]
    assert record.ttft_ms == pytest.approx(timing.ttft_ms, abs=1)


# ------------------------------------------------------------------------------------------
# live: no vcrpy


def test_live_calls_are_measured_as_before(h: Harness) -> None:
    original = httpcore.ConnectionPool.handle_request, httpcore2.ConnectionPool.handle_request
    llm = h.llm()
    plain, plain_call_ms = timed(lambda: llm.chat(MESSAGES))
    with capture_timing() as registry:
        assert active_registry() is registry
        streamed, stream_call_ms = timed(lambda: llm.chat(MESSAGES, stream=True))
    assert active_registry() is None
    assert (
        httpcore.ConnectionPool.handle_request,
        httpcore2.ConnectionPool.handle_request,
    ) == original
    records = llm.log.records()
    assert [r.timing for r in records] == ["live", "live"]
    assert at_least(plain.latency_ms, 300)
    assert within(plain.latency_ms, plain_call_ms)
    assert at_least(streamed.ttft_ms, 120)
    assert streamed.ttft_ms is not None
    assert streamed.ttft_ms < streamed.latency_ms
    assert at_least(streamed.latency_ms, 300)
    assert within(streamed.latency_ms, stream_call_ms)


def test_capture_timing_nests_and_is_shared() -> None:
    original = httpcore.ConnectionPool.handle_request
    with capture_timing() as outer:
        patched = httpcore.ConnectionPool.handle_request
        assert patched is not original
        with capture_timing() as inner:
            assert inner is outer
            assert httpcore.ConnectionPool.handle_request is patched
        assert active_registry() is outer
    assert httpcore.ConnectionPool.handle_request is original


# ------------------------------------------------------------------------------------------
# the header format and the registry


def test_header_round_trip_and_errors() -> None:
    timing = RecordedTiming(
        headers_ms=1.234, total_ms=300.06, ttft_ms=120.0, chunks_ms=(120.0, 300.06)
    )
    value = timing.to_header()
    assert " " not in value
    assert json.loads(value) == {
        "v": 1,
        "headers_ms": 1.2,
        "ttft_ms": 120.0,
        "total_ms": 300.1,
        "chunks_ms": [120.0, 300.1],
        "cut": False,
    }
    assert RecordedTiming.from_header(value) == RecordedTiming(
        headers_ms=1.2, total_ms=300.1, ttft_ms=120.0, chunks_ms=(120.0, 300.1)
    )
    for bad, why in [
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"v": 2, "headers_ms": 1, "total_ms": 2}', "unknown version"),
        ('{"v": 1, "headers_ms": -1, "total_ms": 2}', "headers_ms is not a duration"),
        ('{"v": 1, "headers_ms": 1, "total_ms": true}', "total_ms is not a number"),
        ('{"v": 1, "headers_ms": 1, "total_ms": 2, "chunks_ms": 3}', "chunks_ms is not a list"),
    ]:
        with pytest.raises(ValueError, match=why):
            RecordedTiming.from_header(bad)


def test_pop_timing_header_removes_even_an_unreadable_one() -> None:
    headers = httpx.Headers({"X-Modelgate-Timing": RecordedTiming(1, 2).to_header(), "a": "b"})
    assert pop_timing_header(headers) == RecordedTiming(1.0, 2.0)
    assert dict(headers) == {"a": "b"}
    broken = httpx.Headers({TIMING_HEADER: "{"})
    assert pop_timing_header(broken) is None
    assert TIMING_HEADER not in broken
    assert pop_timing_header(httpx.Headers()) is None


def test_before_record_response_needs_an_active_capture_and_a_matching_timing() -> None:
    response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": b""}}
    assert before_record_response(response) == response
    registry = TimingRegistry()
    timing = RecordedTiming(headers_ms=1, total_ms=5)
    registry._complete(_Completed("k", 200, 0.0, timing), None)
    stale = {"status": {"code": 200}, "headers": {"X-ModelGate-Timing": ["old"]}}
    assert registry.before_record_response(stale)["headers"] == {
        TIMING_HEADER: [timing.to_header()]
    }
    # Taken once only; a timing of another status is not this response's.
    assert registry.before_record_response({"status": {"code": 200}, "headers": {}}) == {
        "status": {"code": 200},
        "headers": {},
    }
    registry._complete(_Completed("k", 503, 0.0, timing), None)
    assert registry.take_latest(status=200) is None


def test_registry_is_fifo_per_key_and_bounded() -> None:
    registry = TimingRegistry(capacity=3)
    timings = [RecordedTiming(headers_ms=0, total_ms=n) for n in range(5)]
    for n, key in enumerate("aabab"):
        registry._complete(_Completed(key, 200, float(n), timings[n]), None)
    # Five completed, three kept: the two oldest ("a" 0 and "a" 1) were dropped.
    assert registry.take("a") == timings[3]
    assert registry.take("a") is None
    assert registry.take("b", started_after=2.5) == timings[4]
    assert registry.take("b") is None


def test_registry_keys_real_requests_in_order(h: Harness) -> None:
    # The same request sent twice by a client the gate does not wrap: its timings queue by key.
    url = h.base_url + "/chat/completions"
    content = json.dumps({"model": "paced", "messages": MESSAGES}).encode()
    headers = {"Authorization": f"Bearer {SIM_KEY}"}
    walls: list[float] = []
    with capture_timing() as registry, httpx.Client() as http:
        for _ in range(2):
            walls.append(timed(lambda: http.post(url, content=content, headers=headers))[1])
        between = time.perf_counter()
        walls.append(timed(lambda: http.post(url, content=content, headers=headers))[1])
    parsed = httpx.URL(url)
    key = timing_key(
        "POST",
        parsed.raw_scheme,
        parsed.raw_host,
        parsed.port,
        parsed.raw_path,
        hashlib.sha256(content).digest(),
    )
    # Scripted latencies 80, 10 and 40 ms: the first in, the first out; the second is skipped as
    # having started before ``between``. Each timing taken must be its request's: no shorter than
    # that request's latency and within the call that sent it. So the second's 10 ms in either
    # place, or the first's 80 ms in place of the third's, fails (unless load hid the difference;
    # load never fails these bounds).
    first = registry.take(key)
    last = registry.take(key, started_after=between)
    assert first is not None
    assert last is not None
    assert registry.take(key) is None
    assert at_least(first.total_ms, 80), (first, walls)
    assert within(first.total_ms, walls[0]), (first, walls)
    assert at_least(last.total_ms, 40), (last, walls)
    assert within(last.total_ms, walls[2]), (last, walls)


def test_recorded_at_round_trips_in_utc_and_is_optional() -> None:
    """Issue 10 item 6: the header keeps when the call was made; older headers lack it."""
    from datetime import datetime, timedelta, timezone

    local = datetime(2026, 12, 1, 15, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
    value = RecordedTiming(headers_ms=1, total_ms=2, recorded_at=local).to_header()
    assert json.loads(value)["recorded_at"] == "2026-12-01T07:00:00.123+00:00"
    parsed = RecordedTiming.from_header(value)
    assert parsed.recorded_at == datetime(2026, 12, 1, 7, 0, 0, 123000, tzinfo=timezone.utc)
    assert "recorded_at" not in json.loads(RecordedTiming(1, 2).to_header())
    assert (
        RecordedTiming.from_header('{"v": 1, "headers_ms": 1, "total_ms": 2}').recorded_at is None
    )
    for bad in ('"yesterday"', '"2026-12-01T07:00:00"', "1764572400"):
        with pytest.raises(ValueError, match="recorded_at is not an ISO 8601 time"):
            RecordedTiming.from_header(
                f'{{"v": 1, "headers_ms": 1, "total_ms": 2, "recorded_at": {bad}}}'
            )


def test_a_captured_exchange_stamps_the_wall_clock_it_was_sent_at(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from pytest_modelgate.simulator import Scenario

    scenario = Scenario.model_validate({"api_key": None, "seed": 1, "models": {"m": {}}})
    with SimulatorServer(scenario, port=0) as server, capture_timing() as registry:
        before = datetime.now(timezone.utc)
        slot = TimingSlot()
        with httpx.Client() as http:
            request = http.build_request(
                "POST",
                f"{server.base_url}/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                extensions={TIMING_EXTENSION: slot},
            )
            http.send(request).read()
        after = datetime.now(timezone.utc)
    assert registry is not None
    assert slot.timing is not None
    assert slot.timing.recorded_at is not None
    assert before <= slot.timing.recorded_at <= after
