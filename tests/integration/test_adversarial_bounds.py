"""Issue 10, bounds: no setting, server or body can make the gate hang, buffer without end or
read a nonsense number as a setting.

Each test names its item. Configuration errors are usage errors (exit 4) naming the file and the
field, with an ``error`` verdict on disk; calls that outlive ``client.deadline_s`` or send more
than ``client.max_response_bytes`` fail with the reason in the records, in seconds, not minutes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 2}

WORKFLOW = """
    def test_reply(llm):
        llm.chat([{"role": "user", "content": "Hello, I have a question."}])
"""


@pytest.fixture
def project(gate_project: Callable[..., GateProject]) -> GateProject:
    """Two simulated models declared in modelgate.yaml, ``sim-stable`` as the stable one."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE)
    project.pytester.makepyfile(WORKFLOW)
    return project


def _edit_config(project: GateProject, section: str, text: str) -> None:
    """Append raw YAML ``text`` (written as typed, e.g. ``.inf``) under ``section``."""
    path = project.pytester.path / "modelgate.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.pop(section, None)
    body = (
        yaml.safe_dump(data) + f"{section}:\n" + "".join(f"  {line}\n" for line in text.split(";"))
    )
    path.write_text(body, encoding="utf-8")


@pytest.mark.parametrize(
    ("section", "text", "field", "problem"),
    [
        pytest.param(
            "client", "timeout_s: .inf", "client.timeout_s", "finite number", id="timeout-inf"
        ),
        pytest.param(
            "client",
            "timeout_s: 1.0e300",
            "client.timeout_s",
            "less than or equal to 3600",
            id="timeout-1e300",
        ),
        pytest.param(
            "client",
            "max_retries: 1000000",
            "client.max_retries",
            "less than or equal to 10",
            id="retries",
        ),
        pytest.param(
            "client", "deadline_s: .nan", "client.deadline_s", "finite number", id="deadline-nan"
        ),
        pytest.param(
            "gate",
            "cost_per_call_max_ratio: 1e300",
            "gate.cost_per_call_max_ratio",
            "less than or equal to 1000",
            id="ratio-1e300",
        ),
        pytest.param(
            "gate", "resamples: 1e9", "gate.resamples", "valid integer", id="resamples-float"
        ),
    ],
)
def test_non_finite_or_out_of_range_settings_are_config_errors(
    project: GateProject, section: str, text: str, field: str, problem: str
) -> None:
    """Items 2 and "Bounds": a setting that makes every call fail, or gates nothing, is refused.

    ``timeout_s: .inf`` used to be accepted and every call then failed; ``1.0e300`` was read as
    a string. Now each is a usage error naming the file and the field, before any request.
    """
    _edit_config(project, section, text)

    result = project.pytester.runpytest()

    path = project.pytester.path / "modelgate.yaml"
    assert result.ret == 4
    errors = result.stderr.str()
    assert f"ERROR: modelgate: {path}: {field}: " in errors, errors
    assert problem in errors, errors
    assert "passed" not in result.stdout.str()
    assert project.sim.requests == []
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["exit_status"] == 4
    assert any(f"{path}: {field}: " in reason for reason in verdict["reasons"])


@pytest.mark.parametrize("value", ["1000000", "0"])
def test_repeat_out_of_range_is_a_usage_error(project: GateProject, value: str) -> None:
    """Bounds: ``--modelgate-repeat`` is a number of runs per case; a million is a typo."""
    result = project.pytester.runpytest(f"--modelgate-repeat={value}")

    assert result.ret == 4
    assert "--modelgate-repeat" in result.stderr.str()
    assert project.sim.requests == []
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any("--modelgate-repeat" in reason for reason in verdict["reasons"])


# --------------------------------------------------------------------------------------------
# A hostile provider: trickles its answer a byte at a time, or sends far too much


class _HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length))
        self.server.requests += 1
        self.close_connection = True
        stream = request.get("stream") is True
        self.send_response(200)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        behaviour = self.server.behaviour
        size = 1024 * 1024 if behaviour == "huge" else 400
        text = "x" * size
        if stream:
            chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
            body = b"data: " + json.dumps(chunk).encode() + b"\n\ndata: [DONE]\n\n"
            self.send_header("Transfer-Encoding", "chunked")
        else:
            message = {"role": "assistant", "content": text}
            body = json.dumps(
                {"id": "c", "model": "m", "choices": [{"index": 0, "message": message}]}
            ).encode()
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # trickle: a byte every 50 ms; slow: half, a 2 s pause, the rest; huge: 16 KiB pieces.
        piece, pause = {"trickle": (1, 0.05), "slow": (len(body) // 2 + 1, 1.0)}.get(
            behaviour, (16384, 0.0)
        )
        try:
            for i in range(0, len(body), piece):
                time.sleep(pause if i or behaviour != "slow" else 0.0)
                data = body[i : i + piece]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if stream else data)
                self.wfile.flush()
            if stream:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up: what the bounds are for


class HostileServer(ThreadingHTTPServer):
    """``trickle``: a byte every 50 ms (never a 0.5 s silence); ``huge``: a 1 MB answer;
    ``slow``: half the answer, a 1 s pause, the rest."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, behaviour: str) -> None:
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.behaviour = behaviour
        self.requests = 0
        threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def hostile() -> Iterator[Callable[[str], HostileServer]]:
    servers: list[HostileServer] = []

    def start(behaviour: str) -> HostileServer:
        servers.append(HostileServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


HOSTILE = "sim-hostile"

CALLS = {
    "chat": "llm.chat(M, max_tokens=50)",
    "stream": "llm.chat(M, stream=True)",
    "openai": "llm.openai().chat.completions.create(model=llm.resolved.model_id, messages=M)",
}


BOUNDED = {"timeout_s": 0.5, "deadline_s": 1.5, "max_retries": 2, "max_response_bytes": 65536}


def _hostile_project(
    gate_project: Callable[..., GateProject],
    server: HostileServer,
    how: str,
    client: dict[str, Any] = BOUNDED,
) -> GateProject:
    project = gate_project({STABLE: FAST}, stable=STABLE)
    project.write_config(
        {STABLE: None, HOSTILE: {"base_url": server.base_url}}, stable=STABLE, client=client
    )
    project.pytester.makepyfile(
        f"""
        import time

        M = [{{"role": "user", "content": "Hello, I have a question."}}]

        def test_reply(llm):
            started = time.perf_counter()
            try:
                {CALLS[how]}
            finally:
                print(f"ARM={{llm.arm}} ELAPSED={{time.perf_counter() - started:.2f}}")
        """
    )
    return project


def _candidate_calls(project: GateProject) -> list[dict[str, Any]]:
    (item,) = [r for r in project.records() if r["arm"] == "candidate"]
    assert item["outcome"] == "failed"
    calls: list[dict[str, Any]] = item["calls"]
    return calls


@pytest.mark.parametrize("how", ["chat", "stream", "openai"])
def test_a_trickling_provider_is_cut_at_the_deadline(
    gate_project: Callable[..., GateProject],
    hostile: Callable[[str], HostileServer],
    how: str,
) -> None:
    """Bounds, ``deadline_s``: one byte every 50 ms never trips ``timeout_s: 0.5``.

    The answer would take about 20 s; ``deadline_s: 1.5`` ends the call (not retried: the deadline
    covers the whole call) and the record says why. The gate does not pass.
    """
    server = hostile("trickle")
    project = _hostile_project(gate_project, server, how)

    started = time.perf_counter()
    result = project.pytester.runpytest("-s", f"--candidate-model={HOSTILE}")
    elapsed = time.perf_counter() - started

    result.assert_outcomes(passed=1, failed=1)
    assert elapsed < 15, f"the run took {elapsed:.1f} s"
    assert "CallDeadlineError" in result.stdout.str()
    (call,) = _candidate_calls(project)
    assert call["error_kind"] == "timeout"
    assert "client.deadline_s=1.5 s" in call["error_message"]
    assert 1400 <= call["latency_ms"] < 6000
    assert server.requests == 1
    verdict = project.verdict()
    assert verdict["verdict"] != "pass"
    assert verdict["exit_status"] == result.ret


@pytest.mark.parametrize("how", ["chat", "stream", "openai"])
def test_a_huge_response_stops_at_max_response_bytes(
    gate_project: Callable[..., GateProject],
    hostile: Callable[[str], HostileServer],
    how: str,
) -> None:
    """Bounds, ``max_response_bytes``: a 1 MB answer with a 64 KiB limit ends with a clear error.

    The error names the model, the limit and the config field; the call is not retried.
    """
    server = hostile("huge")
    project = _hostile_project(gate_project, server, how)

    result = project.pytester.runpytest("-s", f"--candidate-model={HOSTILE}")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*ResponseTooLargeError: {HOSTILE}: HTTP 200 response_too_large: the response is "
            "larger than client.max_response_bytes=65536 bytes*"
        ]
    )
    (call,) = _candidate_calls(project)
    assert call["error_kind"] == "response_too_large"
    assert server.requests == 1
    assert project.verdict()["verdict"] != "pass"


def test_a_trickling_provider_is_cut_at_the_deadline_under_xdist(
    gate_project: Callable[..., GateProject],
    hostile: Callable[[str], HostileServer],
) -> None:
    """Bounds, ``deadline_s`` with ``-n 2``: the workers get the same bounds, records say why."""
    server = hostile("trickle")
    project = _hostile_project(gate_project, server, "chat")

    result = project.pytester.runpytest_subprocess(f"--candidate-model={HOSTILE}", "-n", "2")

    result.assert_outcomes(passed=1, failed=1)
    (call,) = _candidate_calls(project)
    assert call["error_kind"] == "timeout"
    assert "client.deadline_s=1.5 s" in call["error_message"]
    assert call["latency_ms"] < 6000
    assert project.verdict()["verdict"] != "pass"


def test_a_trickling_provider_is_cut_at_the_deadline_while_recording(
    gate_project: Callable[..., GateProject],
    hostile: Callable[[str], HostileServer],
) -> None:
    """Bounds, ``deadline_s`` in record mode: vcrpy reads the whole body beneath the measuring
    transport, so the bound is enforced beneath vcrpy too; nothing is recorded for the cut call.
    """
    server = hostile("trickle")
    project = _hostile_project(gate_project, server, "chat")

    started = time.perf_counter()
    result = project.pytester.runpytest(f"--candidate-model={HOSTILE}", "--modelgate-mode=record")
    elapsed = time.perf_counter() - started

    result.assert_outcomes(passed=1, failed=1)
    assert elapsed < 15, f"the run took {elapsed:.1f} s"
    (call,) = _candidate_calls(project)
    assert call["error_kind"] == "timeout"
    assert "client.deadline_s=1.5 s" in call["error_message"]
    assert call["latency_ms"] < 6000
    cassettes = list((project.pytester.path / "cassettes").rglob(f"*--{HOSTILE}.yaml"))
    for cassette in cassettes:
        assert not (yaml.safe_load(cassette.read_text(encoding="utf-8")) or {}).get(
            "interactions"
        ), cassette
    assert project.verdict()["verdict"] != "pass"


def test_replay_cuts_a_reply_recorded_slower_than_the_deadline(
    gate_project: Callable[..., GateProject],
    hostile: Callable[[str], HostileServer],
) -> None:
    """Bounds, ``deadline_s`` in replay: a reply recorded as taking ~1 s, replayed with
    ``deadline_s: 0.5``, fails as the live call would have, though replay itself is instant.
    """
    server = hostile("slow")
    relaxed = {**BOUNDED, "timeout_s": 5, "deadline_s": 10}
    project = _hostile_project(gate_project, server, "chat", client=relaxed)
    recorded = project.pytester.runpytest(f"--candidate-model={HOSTILE}", "--modelgate-mode=record")
    recorded.assert_outcomes(passed=2)

    project.write_config(
        {STABLE: None, HOSTILE: {"base_url": server.base_url}},
        stable=STABLE,
        client={**BOUNDED, "timeout_s": 0.5, "deadline_s": 0.5},
    )
    started = time.perf_counter()
    result = project.pytester.runpytest(f"--candidate-model={HOSTILE}", "--modelgate-mode=replay")
    elapsed = time.perf_counter() - started

    result.assert_outcomes(passed=1, failed=1)
    assert elapsed < 10
    assert server.requests == 1  # replay made no call
    (call,) = _candidate_calls(project)
    assert call["error_kind"] == "timeout"
    assert "client.deadline_s=0.5 s (the recorded reply took 1.0 s)" in call["error_message"]
    assert project.verdict()["verdict"] != "pass"
