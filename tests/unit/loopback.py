"""A scripted HTTP server on 127.0.0.1 for the client and transport tests.

Each request gets the next ``Step`` of the script: a JSON body, a chunked SSE stream written
with delays, a body cut off midway, or either one trickled out a few bytes at a time. The
``server`` fixture is in this folder's conftest.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Step:
    """One scripted response. ``events`` makes a chunked SSE body written with delays."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    events: list[tuple[float, bytes]] | None = None
    # Close the connection before the body is complete (a broken stream).
    cut: bool = False
    # Trickle: write the body (or each SSE event) ``trickle_bytes`` at a time, pausing
    # ``trickle`` seconds before each piece, until done or the client hangs up.
    trickle: float = 0.0
    trickle_bytes: int = 1


def sse_events(*chunks: Any, done: bool = True, gap: float = 0.0) -> list[tuple[float, bytes]]:
    out = [(gap, b"data: " + json.dumps(c).encode() + b"\n\n") for c in chunks]
    return out + ([(0.0, b"data: [DONE]\n\n")] if done else [])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.server.requests.append(
            (self.command, self.path, self.headers, self.rfile.read(length))
        )
        step = self.server.next_step()
        self.close_connection = True
        time.sleep(step.delay)
        self.send_response(step.status)
        for name, value in step.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        if step.events is not None:
            if "Content-Type" not in step.headers:
                self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for pause, data in step.events:
                time.sleep(pause)
                for piece in self._pieces(step, data):
                    if not self._send(step, b"%x\r\n%s\r\n" % (len(piece), piece)):
                        return
            if not step.cut:
                self.wfile.write(b"0\r\n\r\n")
            return
        body = step.body
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if "Content-Type" not in step.headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw) + (10 if step.cut else 0)))
        self.end_headers()
        for piece in self._pieces(step, raw):
            if not self._send(step, piece):
                return

    def _pieces(self, step: Step, data: bytes) -> Iterator[bytes]:
        # A generator: a large body is never copied whole (tests measure the client's memory).
        if not step.trickle:
            yield data
            return
        view = memoryview(data)
        for i in range(0, len(data), step.trickle_bytes):
            yield bytes(view[i : i + step.trickle_bytes])

    def _send(self, step: Step, data: bytes) -> bool:
        """Write (after the step's trickle pause); False once the client has hung up."""
        time.sleep(step.trickle)
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            return False
        self.server.bytes_sent += len(data)
        return True


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: deque[Step] = deque()
        self.requests: list[tuple[str, str, Any, bytes]] = []
        # Body bytes written so far (a client that stops reading early leaves this short).
        self.bytes_sent = 0
        threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True).start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are part of the script

    def next_step(self) -> Step:
        if not self.script:
            return Step(500, {"error": {"message": "script exhausted"}})
        return self.script.popleft()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"
