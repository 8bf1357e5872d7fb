"""Shadow traffic: a bounded pool that calls the candidate in the background, and its JSONL log.

:class:`ShadowPool` never blocks the caller: ``submit`` puts the job on a bounded queue with
``put_nowait`` and, when the queue is full, drops it and returns ``False`` (the gateway counts the
drop). ``workers`` daemon threads run the jobs; a job's exception is swallowed and counted by the
job itself, so a shadow call can neither delay, change nor break the user's answer.

:class:`ShadowLog` appends one JSON object per line. Guarantee: every line is written whole,
never interleaved with another writer's, with any number of threads and processes appending to
the same file on a local filesystem. Each line goes out in one ``os.write`` on a descriptor
opened with ``O_APPEND`` (the kernel positions each write at the end atomically), and the write
is made under ``flock(LOCK_EX)``, because POSIX promises atomicity only up to ``PIPE_BUF`` bytes
and a line with message text can be longer (and a short write is then finished under the same
lock). Over NFS ``flock`` and ``O_APPEND`` are only as good as the server's locking.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_modelgate.calls.client import Reply
    from pytest_modelgate.gateway.routes import RouteSettings

__all__ = ["ShadowLog", "ShadowPool", "shadow_line"]

try:  # pragma: no cover - Windows has no fcntl; O_APPEND alone then
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_STOP = object()


class ShadowPool:
    """``workers`` threads draining a queue of at most ``queue_size`` shadow jobs."""

    def __init__(self, *, workers: int = 2, queue_size: int = 64, name: str = "shadow") -> None:
        if workers < 1 or queue_size < 1:
            raise ValueError("a shadow pool needs workers >= 1 and queue_size >= 1")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._cancel = False
        self._threads = [
            threading.Thread(target=self._work, name=f"modelgate-{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[], object]) -> bool:
        """Queue ``job``; ``False`` (dropped) when the queue is full or the pool is closed."""
        if self._closed.is_set():
            return False
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            if self._closed.is_set() and self._cancel:
                continue
            # A shadow job must never take the pool down (the job counts its own failures).
            with contextlib.suppress(Exception):
                job()  # type: ignore[operator]

    def close(self, *, timeout_s: float = 5.0, cancel: bool = False) -> int:
        """Stop taking jobs; finish the queued ones (or drop them with ``cancel``).

        Waits at most ``timeout_s`` in total for the workers; returns the number of queued jobs
        that were not run (cancelled, or still queued when the wait ran out).
        """
        self._cancel = cancel
        self._closed.set()
        dropped = 0
        if cancel:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                dropped += 1
        end = time.monotonic() + timeout_s
        for _ in self._threads:
            # The queue may be full of work: the stop marks go in as room appears, within the wait.
            while True:
                try:
                    self._queue.put(_STOP, timeout=max(0.0, min(0.05, end - time.monotonic())))
                    break
                except queue.Full:
                    if time.monotonic() >= end:
                        break
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        dropped += sum(1 for item in list(self._queue.queue) if item is not _STOP)
        return dropped


class ShadowLog:
    """Appends whole JSON lines to ``path`` (see the module docstring for the guarantee)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._lock = threading.Lock()
        # flock excludes other open files (other processes); the threads of this process share
        # one descriptor, which flock does not exclude, so they also take this lock.
        self._write_lock = threading.Lock()

    def _descriptor(self) -> int:
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            return self._fd

    def append(self, entry: Mapping[str, Any]) -> None:
        """Write ``entry`` as one line (UTF-8 JSON, no newline inside)."""
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fd = self._descriptor()
        with self._write_lock:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file (a later ``append`` reopens it)."""
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# the lines

_NOT_JSON = "reply is not JSON"
_NOT_SCHEMA = "reply does not match the schema"


class Answer(Protocol):
    """One side of a pair: the reply (or none), its error kind, contract violations, model."""

    @property
    def reply(self) -> Reply | None: ...

    @property
    def error_kind(self) -> str | None: ...

    @property
    def violations(self) -> tuple[str, ...]: ...

    @property
    def model(self) -> str: ...


def shadow_line(
    workflow: str,
    route: RouteSettings,
    messages: Sequence[Mapping[str, Any]],
    user: Answer,
    shadow: Answer,
) -> dict[str, Any]:
    """One shadow-log line (format ``v`` 1, read by ``modelgate analyze``): the route, its
    stable and shadow models, a digest of the request (the case), both replies' measurements
    and languages; text only with ``log_text``. Not yet scrubbed (the gateway scrubs it).

    Runs on the shadow worker: the languages are detected here, off the user's path.
    """
    import hashlib

    from pytest_modelgate.calls.contracts import prompt_text
    from pytest_modelgate.calls.langdetect import detect_language

    # The case: the same messages are the same case (a retry, a popular question).
    digest = hashlib.sha256(
        json.dumps(list(messages), sort_keys=True, default=str).encode("utf-8")
    ).hexdigest()[:16]
    contract = route.contract
    checks_json = contract is not None and (contract.json_ or contract.schema_ is not None)
    checks_schema = contract is not None and contract.schema_ is not None
    entry: dict[str, Any] = {
        "v": 1,
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "route": workflow,
        "stable": route.stable,
        "candidate": shadow.model,
        "case": digest,
        "prompt_language": detect_language(prompt_text({"messages": list(messages)})),
        "user": _measurements(user, route.log_text, checks_json, checks_schema),
        "shadow": _measurements(shadow, route.log_text, checks_json, checks_schema),
    }
    if route.log_text:
        entry["messages"] = [dict(m) for m in messages]
    return entry


def _measurements(
    answer: Answer, log_text: bool, checks_json: bool, checks_schema: bool
) -> dict[str, Any]:
    from pytest_modelgate.calls.langdetect import detect_language

    reply = answer.reply
    entry: dict[str, Any] = {
        "model": answer.model,
        "error_kind": answer.error_kind,
        "contract_ok": None if reply is None else not answer.violations,
        "violations": len(answer.violations),
    }
    if reply is None:
        return entry
    entry.update(
        latency_ms=reply.latency_ms,
        ttft_ms=reply.ttft_ms,
        prompt_tokens=reply.usage.prompt_tokens,
        completion_tokens=reply.usage.completion_tokens,
        cost_usd=reply.cost_usd,
        attempts=reply.attempts,
        tool_calls=[call.name for call in reply.tool_calls],
        reply_language=detect_language(reply.text) if reply.text else None,
    )
    if checks_json:
        entry["json_valid"] = not any(v.startswith(_NOT_JSON) for v in answer.violations)
    if checks_schema:
        entry["schema_valid"] = not any(
            v.startswith((_NOT_JSON, _NOT_SCHEMA)) for v in answer.violations
        )
    if log_text:
        entry["text"] = reply.text
    return entry
