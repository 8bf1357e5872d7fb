"""The simulator's HTTP server: OpenAI chat completions on loopback, with seeded faults.

``SimulatorServer`` runs a stdlib ``ThreadingHTTPServer`` (HTTP/1.1) in a background thread.
Non-streaming answers carry a ``Content-Length`` and keep the connection alive; streaming answers
are server-sent events without chunked encoding, so they send ``Connection: close`` and end by
closing the connection. That is also how a stream cut looks: the connection closes before the
final chunk and ``data: [DONE]``.

Every request to a model gets its own ``random.Random``, seeded from the scenario seed, the model
name, a fingerprint of the canonical request body and how many times this server has seen that
fingerprint for that model. All draws happen in a fixed order whatever the outcome, so a run
replays byte for byte, requests do not disturb each other's draws, and raising one fault rate only
adds faults to requests (it never reshuffles the others).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import random
import signal
import socket
import string
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pytest_modelgate.simulator.scenario import (
    ModelBehaviour,
    Scenario,
    ScenarioError,
    ScriptEntry,
    load_scenario,
)
from pytest_modelgate.simulator.tasks import (
    Answer,
    ChatRequest,
    Faults,
    RequestError,
    answer_request,
    parse_chat_request,
)

__all__ = ["ServedRequest", "SimulatorServer", "main_simulate", "serve_forever"]

# A fixed ``created`` timestamp (2026-01-01T00:00:00Z): a wall-clock value would make otherwise
# identical runs differ byte for byte.
CREATED = 1767225600
SYSTEM_FINGERPRINT = "fp_modelgate_sim"
# Characters of content (or tool arguments) per streamed delta.
STREAM_PIECE_CHARS = 8
MAX_BODY_BYTES = 8 * 1024 * 1024
_ID_ALPHABET = string.ascii_letters + string.digits

# Default ``error.code`` and ``error.type`` per status, following OpenAI's error bodies.
_ERROR_CODES: dict[int, str] = {
    401: "invalid_api_key",
    402: "insufficient_balance",
    403: "permission_denied",
    404: "not_found",
    429: "rate_limit_exceeded",
}
_ERROR_MESSAGES: dict[int, str] = {
    429: "Rate limit reached for {model} (simulated). Please try again later.",
    500: "The server had an error while processing your request (simulated).",
    502: "Bad gateway (simulated).",
    503: "The engine is currently overloaded, please try again later (simulated).",
    504: "Gateway timeout (simulated).",
}


class ServedRequest(NamedTuple):
    """One request the simulator answered: the model asked for (if known), path and status."""

    model: str | None
    path: str
    status: int


def error_body(
    message: str, *, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI-shaped error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _default_error_message(status: int, model: str) -> str:
    template = _ERROR_MESSAGES.get(status)
    if template is not None:
        return template.format(model=model)
    try:
        return f"{HTTPStatus(status).phrase} (simulated)."
    except ValueError:
        return f"Error {status} (simulated)."


def _error_type(status: int) -> str:
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


@dataclass(frozen=True)
class _Plan:
    """What the server does with one request to a known model, decided before answering."""

    status: int
    latency_s: float = 0.0
    ttft_s: float = 0.0
    faults: Faults = field(default_factory=Faults)
    stream_cut: bool = False
    message: str | None = None
    code: str | None = None
    retry_after_s: float | None = None
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class _ModelState:
    seen: Counter[str] = field(default_factory=Counter)
    scripted: int = 0


def fingerprint(body: object) -> str:
    """SHA-256 of the canonical JSON of a request body (sorted keys, no whitespace)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class _SimulatorCore:
    """Scenario state shared by the handler threads: draws, counters and the request log."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._states = {name: _ModelState() for name in scenario.models}
        self._served: list[ServedRequest] = []

    def record(self, model: str | None, path: str, status: int) -> None:
        with self._lock:
            self._served.append(ServedRequest(model, path, status))

    def served(self) -> list[ServedRequest]:
        with self._lock:
            return list(self._served)

    def clear(self) -> None:
        with self._lock:
            self._served.clear()

    def sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; return True when it is (the caller aborts)."""
        if seconds <= 0:
            return self.stopping.is_set()
        return self.stopping.wait(seconds)

    def plan(self, model: str, body: object, *, stream: bool) -> _Plan:
        behaviour = self.scenario.models[model]
        digest = fingerprint(body)
        with self._lock:
            state = self._states[model]
            occurrence = state.seen[digest]
            state.seen[digest] += 1
            entry: ScriptEntry | None = None
            if state.scripted < len(behaviour.script):
                entry = behaviour.script[state.scripted]
                state.scripted += 1
        # str seeds are hashed with SHA-512 by random.Random: stable across processes and runs,
        # unlike hash(), which PYTHONHASHSEED randomises.
        rng = random.Random(f"{self.scenario.seed}\x1f{model}\x1f{digest}\x1f{occurrence}")
        # The draw order below is part of the reproducibility contract: never reorder, only append.
        u_outcome = rng.random()
        server_status = rng.choice((500, 503))
        u_latency, u_ttft = rng.random(), rng.random()
        u_json, u_misclassify, u_tool, u_language, u_cut = (rng.random() for _ in range(5))
        detail_rng = random.Random(rng.getrandbits(64))
        latency_s = behaviour.latency_ms.sample_ms(u_latency) / 1000
        ttft_s = behaviour.ttft_ms.sample_ms(u_ttft) / 1000
        if entry is not None:
            return _scripted_plan(entry, behaviour, latency_s, ttft_s, detail_rng)
        if u_outcome < behaviour.rate_limit_rate:
            return _Plan(status=429, retry_after_s=behaviour.retry_after_s, rng=detail_rng)
        if u_outcome < behaviour.rate_limit_rate + behaviour.server_error_rate:
            return _Plan(status=server_status, rng=detail_rng)
        return _Plan(
            status=200,
            latency_s=latency_s,
            ttft_s=ttft_s,
            faults=Faults(
                json_breakage=u_json < behaviour.json_breakage,
                misclassify=u_misclassify < behaviour.misclassify,
                tool_drift=u_tool < behaviour.tool_drift,
                language_drift=u_language < behaviour.language_drift,
            ),
            # The knob cuts streams only; a scripted cut also breaks a plain JSON answer.
            stream_cut=stream and u_cut < behaviour.stream_cut,
            rng=detail_rng,
        )


def _scripted_plan(
    entry: ScriptEntry,
    behaviour: ModelBehaviour,
    latency_s: float,
    ttft_s: float,
    rng: random.Random,
) -> _Plan:
    if entry.status != 200:
        retry_after = entry.retry_after_s
        if retry_after is None and entry.status == 429:
            retry_after = behaviour.retry_after_s
        return _Plan(
            status=entry.status,
            message=entry.message,
            code=entry.code,
            retry_after_s=retry_after,
            rng=rng,
        )
    if entry.latency_ms is not None:
        latency_s = entry.latency_ms / 1000
        ttft_s = min(ttft_s, latency_s)
    return _Plan(
        status=200,
        latency_s=latency_s,
        ttft_s=ttft_s,
        faults=Faults(
            json_breakage=entry.json_breakage,
            misclassify=entry.misclassify,
            tool_drift=entry.tool_drift,
            language_drift=entry.language_drift,
            content=entry.content,
        ),
        stream_cut=entry.stream_cut,
        rng=rng,
    )


def _random_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(_ID_ALPHABET) for _ in range(24))


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def _completion(completion_id: str, model: str, answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in answer.tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": answer.finish_reason,
            }
        ],
        "usage": _usage(answer),
    }


def _pieces(text: str) -> list[str]:
    return [text[i : i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)]


def _deltas(answer: Answer) -> list[dict[str, Any]]:
    """The content-bearing deltas of a stream, in order (the role delta and finish come apart)."""
    if not answer.tool_calls:
        return [{"content": piece} for piece in _pieces(answer.content or "")]
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(answer.tool_calls):
        # OpenAI's incremental shape: id, type and name first with empty arguments, then fragments.
        deltas.append(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        deltas.extend(
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in _pieces(call.arguments)
        )
    return deltas


def _encode(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _HTTPServer(ThreadingHTTPServer):
    # Non-daemon handler threads joined by server_close(): stop() returns only when every
    # handler is done. Open keep-alive sockets are shut down first so that none blocks the join.
    daemon_threads = False
    block_on_close = True
    # socketserver's default listen backlog is 5: eight xdist workers, each opening a connection
    # per test at the same moment, overflow it and the kernel drops the SYN, which the client
    # resends only after a second. A real API endpoint accepts them all at once.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], core: _SimulatorCore) -> None:
        self.core = core
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def shutdown_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            # OSError: the peer closed it already.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "modelgate-simulator"
    sys_version = ""
    # Idle keep-alive connections are dropped after this many seconds.
    timeout = 60
    # Headers and body go out in separate writes; with Nagle's algorithm on, the body would wait
    # for the client's delayed ACK (about 40 ms per response on Linux).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr log; ``SimulatorServer.requests`` is the record."""

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def _core(self) -> _SimulatorCore:
        return self.server.core

    @property
    def _path(self) -> str:
        return urlsplit(self.path).path.rstrip("/") or "/"

    def _send_json(
        self,
        status: int,
        payload: object,
        *,
        model: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = _encode(payload)
        self._core.record(model, self._path, status)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def _send_error(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        model: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = error_body(message, type_=_error_type(status), code=code, param=param)
        self._send_json(status, payload, model=model, headers=headers)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering an error (and closing the connection)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # The body framing is unknown to us, so the connection cannot be reused.
            self.close_connection = True
            self._send_error(411, "Send the request body with a Content-Length header.")
            return None
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self.close_connection = True
            self._send_error(400, f"Invalid Content-Length header: {raw_length!r}.")
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error(413, f"Request body larger than {MAX_BODY_BYTES} bytes.")
            return None
        return self.rfile.read(length)

    def _authorized(self) -> bool:
        expected = self._core.scenario.api_key
        if expected is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode("utf-8"), expected.encode("utf-8")
        ):
            return True
        message = (
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            if not header
            else "Incorrect API key provided."
        )
        self._send_error(401, message, code="invalid_api_key")
        return False

    # -- methods ----------------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve ``GET /v1/models`` and ``GET /v1/models/{id}``."""
        if not self._authorized():
            return
        path = self._path
        models = self._core.scenario.models
        if path == "/v1/models":
            data = [_model_object(name) for name in models]
            self._send_json(200, {"object": "list", "data": data})
        elif path.startswith("/v1/models/"):
            name = path.removeprefix("/v1/models/")
            if name in models:
                self._send_json(200, _model_object(name), model=name)
            else:
                self._model_not_found(name)
        elif path == "/v1/chat/completions":
            self._send_error(405, "Use POST for /v1/chat/completions.", code="method_not_allowed")
        else:
            self._send_error(404, f"Unknown request URL: GET {path}.", code="unknown_url")

    def do_POST(self) -> None:
        """Serve ``POST /v1/chat/completions``."""
        raw = self._read_body()
        if raw is None or not self._authorized():
            return
        path = self._path
        if path == "/v1/chat/completions":
            self._chat_completions(raw)
        elif path == "/v1/models" or path.startswith("/v1/models/"):
            self._send_error(405, f"Use GET for {path}.", code="method_not_allowed")
        else:
            self._send_error(404, f"Unknown request URL: POST {path}.", code="unknown_url")

    def _not_allowed(self) -> None:
        if self._read_body() is not None and self._authorized():
            self._send_error(
                405, f"Method {self.command} is not allowed.", code="method_not_allowed"
            )

    do_PUT = do_PATCH = do_DELETE = _not_allowed

    def _model_not_found(self, name: str) -> None:
        self._send_error(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
            model=name,
        )

    # -- chat completions -------------------------------------------------------------------------

    def _chat_completions(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            self._send_error(
                400,
                "We could not parse the JSON body of your request. The body must be valid JSON.",
            )
            return
        model = body.get("model") if isinstance(body, dict) else None
        model = model if isinstance(model, str) else None
        try:
            request = parse_chat_request(body)
        except RequestError as exc:
            self._send_error(400, exc.message, param=exc.param, model=model)
            return
        behaviour = self._core.scenario.models.get(request.model)
        if behaviour is None:
            self._model_not_found(request.model)
            return
        if behaviour.balance_error:
            # DeepSeek answers 402 "Insufficient Balance" to every call of an account out of money.
            self._send_error(402, "Insufficient Balance", code="insufficient_balance", model=model)
            return
        plan = self._core.plan(request.model, body, stream=request.stream)
        if plan.status != 200:
            self._send_planned_error(request.model, plan)
            return
        completion_id = _random_id(plan.rng, "chatcmpl-")
        answer = answer_request(request, plan.faults, plan.rng, verbosity=behaviour.verbosity)
        if request.stream:
            self._stream(request, plan, completion_id, answer)
        else:
            self._respond(request, plan, completion_id, answer)

    def _send_planned_error(self, model: str, plan: _Plan) -> None:
        headers: dict[str, str] = {}
        if plan.retry_after_s is not None:
            # Retry-After only takes whole seconds; retry-after-ms (read by the OpenAI SDKs)
            # carries the exact value.
            headers["Retry-After"] = str(math.ceil(plan.retry_after_s))
            headers["retry-after-ms"] = str(round(plan.retry_after_s * 1000))
        self._send_error(
            plan.status,
            plan.message or _default_error_message(plan.status, model),
            code=plan.code or _ERROR_CODES.get(plan.status),
            model=model,
            headers=headers,
        )

    def _respond(
        self, request: ChatRequest, plan: _Plan, completion_id: str, answer: Answer
    ) -> None:
        if self._core.sleep(plan.latency_s):
            self.close_connection = True
            return
        payload = _completion(completion_id, request.model, answer)
        if not plan.stream_cut:
            self._send_json(
                200, payload, model=request.model, headers={"x-request-id": completion_id}
            )
            return
        # A scripted cut on a non-streaming request: announce the whole body, send half of it and
        # drop the connection, as when a proxy or the provider dies mid-response.
        body = _encode(payload)
        self._core.record(request.model, self._path, 200)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
        except OSError:
            pass

    def _stream(
        self, request: ChatRequest, plan: _Plan, completion_id: str, answer: Answer
    ) -> None:
        deltas = _deltas(answer)
        # Drawn whether or not the stream is cut, so that a cut does not shift other draws.
        cut_after = plan.rng.randint(1, len(deltas) - 1) if len(deltas) >= 2 else 0
        self._core.record(request.model, self._path, 200)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.send_header("x-request-id", completion_id)
            self.end_headers()
            for event in self._events(request, plan, completion_id, answer, deltas, cut_after):
                if event is None:
                    return  # server stopping
                self.wfile.write(event)
        except OSError:
            pass  # the client went away; nothing left to tell it

    def _events(
        self,
        request: ChatRequest,
        plan: _Plan,
        completion_id: str,
        answer: Answer,
        deltas: list[dict[str, Any]],
        cut_after: int,
    ) -> Iterator[bytes | None]:
        """SSE events with the latency spread over them; None means stop now."""

        def chunk(choices: list[dict[str, Any]], usage: object = None) -> bytes:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": request.model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": choices,
            }
            if request.include_usage:
                payload["usage"] = usage
            return b"data: " + _encode(payload) + b"\n\n"

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        # Time to first token before the role delta, so that "first byte" and "first content"
        # measurements agree; the rest of the latency is spread evenly over the later events.
        gap = max(0.0, plan.latency_s - plan.ttft_s) / max(1, len(deltas))
        if self._core.sleep(plan.ttft_s):
            yield None
            return
        role_content = None if answer.tool_calls else ""
        yield chunk([choice({"role": "assistant", "content": role_content, "refusal": None})])
        for index, delta in enumerate(deltas):
            if plan.stream_cut and index == cut_after:
                yield None
                return
            if index and self._core.sleep(gap):
                yield None
                return
            yield chunk([choice(delta)])
        if plan.stream_cut:
            yield None
            return
        if self._core.sleep(gap):
            yield None
            return
        yield chunk([choice({}, answer.finish_reason)])
        if request.include_usage:
            yield chunk([], _usage(answer))
        yield b"data: [DONE]\n\n"


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "modelgate-simulator"}


class SimulatorServer:
    """An OpenAI-compatible chat-completions server on loopback that plays a ``Scenario``.

    Use it as a context manager (or call ``start``/``stop``)::

        with SimulatorServer(scenario, port=0) as sim:
            client = openai.OpenAI(base_url=sim.base_url, api_key="sim-secret")

    ``port=0`` picks a free ephemeral port; read it back from ``port`` once started.
    """

    def __init__(self, scenario: Scenario, *, port: int = 0, host: str = "127.0.0.1") -> None:
        self.scenario = scenario
        self.host = host
        self._requested_port = port
        self._core = _SimulatorCore(scenario)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatorServer:
        """Bind the port and start serving in a background thread; returns ``self``."""
        if self._httpd is not None or self._core.stopping.is_set():
            raise RuntimeError("a SimulatorServer can be started only once")
        self._httpd = _HTTPServer((self.host, self._requested_port), self._core)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"modelgate-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and in-flight sleeps, and join every thread."""
        httpd, thread = self._httpd, self._thread
        self._core.stopping.set()
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        httpd.shutdown_connections()
        httpd.server_close()
        thread.join()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on (the real one when constructed with ``port=0``)."""
        if self._httpd is None:
            raise RuntimeError("the simulator is not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL to give clients, e.g. ``http://127.0.0.1:54321/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[ServedRequest]:
        """A snapshot of the requests answered so far, in the order their responses started."""
        return self._core.served()

    def clear_requests(self) -> None:
        """Forget the requests served so far (draw counters and script positions are kept)."""
        self._core.clear()


def serve_forever(
    scenario: Scenario,
    *,
    port: int,
    host: str = "127.0.0.1",
    on_ready: Callable[[SimulatorServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve ``scenario`` until SIGINT or SIGTERM (or until ``stop`` is set).

    ``on_ready`` is called once the port is bound. Signal handlers are installed only when called
    from the main thread, and the previous handlers are restored on return.
    """
    stop_event = stop if stop is not None else threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        with SimulatorServer(scenario, port=port, host=host) as sim:
            if on_ready is not None:
                on_ready(sim)
            # A timed wait keeps the main thread responsive to signals on every platform.
            while not stop_event.wait(0.2):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main_simulate(port: int, scenario_path: Path, *, host: str = "127.0.0.1") -> int:
    """Entry point of ``modelgate simulate``: serve a scenario file until interrupted.

    Prints ``modelgate simulator listening on http://HOST:PORT/v1 (models: a, b)`` once ready.
    Returns 0 after SIGINT/SIGTERM, 2 for an invalid scenario file, 1 when the port cannot be
    bound.
    """
    try:
        scenario = load_scenario(scenario_path)
    except ScenarioError as exc:
        print(f"modelgate simulate: error: {exc}", file=sys.stderr)
        return 2

    def announce(sim: SimulatorServer) -> None:
        models = ", ".join(scenario.models)
        print(f"modelgate simulator listening on {sim.base_url} (models: {models})", flush=True)

    try:
        serve_forever(scenario, port=port, host=host, on_ready=announce)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"modelgate simulate: error: cannot listen on {host}:{port}: {reason}", file=sys.stderr
        )
        return 1
    return 0
