"""Real timing of recorded calls: measured beneath vcrpy, kept in the cassette, reported on replay.

vcrpy intercepts ``httpx.HTTPTransport.handle_request`` (and httpx2's). While recording, its stub
reads the whole response body before handing the response on; on replay it answers at once. A
clock above vcrpy (our measuring transport) therefore sees neither the real time to first token
while recording nor any real latency on replay. So the clock sits *beneath* vcrpy:

1. :func:`capture_timing` patches ``httpcore.ConnectionPool.handle_request`` (and httpcore2's, the
   stack under httpx2 and the openai SDK). ``HTTPTransport.handle_request`` calls it after vcrpy
   decided to go to the network. For each exchange it stamps the response headers, the offset of
   every body chunk as it is read, the first token of an SSE stream (parsed by
   :class:`~pytest_modelgate.calls.protocol.SSEAccumulator`), the end, and whether the body was cut.
2. :func:`before_record_response`, given to vcrpy, stores that :class:`RecordedTiming` in the
   recorded response as the header :data:`TIMING_HEADER`, so cassettes need no format change.
   It includes the wall-clock time the request was sent (``recorded_at``): a replay prices the
   call at that time, never at the time of the replay.
3. On replay the measuring transport finds the header (:func:`pop_timing_header`), reports the
   recorded figures as the attempt's latency and removes the header. Nothing sleeps.

Pairing a timing with the right response:

- vcrpy's ``before_record_response`` receives the response dict only (``Cassette.append`` does not
  pass the request on). vcrpy's stub reads the body and appends the interaction synchronously, on
  the thread that sent the request, right after our wrapped body stream ended on that same thread.
  So the hook takes the timing most recently completed *on this thread*, once, and only if its
  status code matches; a new exchange starting on the thread discards an unclaimed one. (What
  this cannot rule out: vcrpy recording a transport that bypasses httpcore, such as
  ``MockTransport``, right after an unrecorded exchange on the same thread with the same status.)
- The measuring transport puts a :class:`TimingSlot` into the request's extensions; httpx hands
  the same extensions dict to httpcore, so the exchange beneath fills exactly that slot. A slot
  already filled when the inner transport returns means a layer in between (vcrpy recording) read
  the body: its timing is the real one.
- An exchange without a slot (a client the gate does not wrap, or a transport that rebuilt the
  request) is queued by :func:`timing_key` (method, URL, body digest), first in first out per key
  so a request sent twice (a retry) gets its timings in order; see :meth:`TimingRegistry.take`.

Only synchronous clients are measured; httpcore is imported only inside :func:`capture_timing`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import math
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Literal

from pytest_modelgate.calls.protocol import SSEAccumulator, looks_like_sse

__all__ = [
    "TIMING_EXTENSION",
    "TIMING_HEADER",
    "RecordedTiming",
    "TimingRegistry",
    "TimingSlot",
    "active_registry",
    "before_record_response",
    "capture_timing",
    "pop_timing_header",
    "timing_key",
]

#: Response header under which a recorded interaction keeps its timing (lower case, as vcrpy and
#: httpx compare names case-insensitively but store them as given).
TIMING_HEADER: Final = "x-modelgate-timing"

#: Request extension under which a sender puts a :class:`TimingSlot` to get its exchange's timing.
TIMING_EXTENSION: Final = "pytest_modelgate.timing"

_FORMAT_VERSION = 1
# Encodings the standard library can undo, so a compressed stream still yields its first token.
_DECODABLE = ("gzip", "deflate")
# Completed timings nobody claimed by key are dropped beyond this many (oldest first).
_DEFAULT_CAPACITY = 256


@dataclass(frozen=True)
class RecordedTiming:
    """The timing of one HTTP exchange, in milliseconds from sending the request.

    ``headers_ms``: response headers received; ``ttft_ms``: the body chunk that completed the first
    SSE event carrying content, reasoning or a tool-call delta (``None`` for plain bodies and
    streams without one); ``total_ms``: the last body byte; ``chunks_ms``: when each body chunk
    arrived, in order; ``cut``: the body broke off or was closed early, or an SSE stream ended
    before ``[DONE]`` or a ``finish_reason``; ``recorded_at``: the wall-clock time (UTC) the
    request was sent, so that a replay prices the call at the time it was made (peak-hour rates),
    ``None`` in timings recorded before it was stored.
    """

    headers_ms: float
    total_ms: float
    ttft_ms: float | None = None
    chunks_ms: tuple[float, ...] = ()
    cut: bool = False
    recorded_at: datetime | None = None

    def to_header(self) -> str:
        """The compact JSON stored as the value of :data:`TIMING_HEADER`."""
        data: dict[str, object] = {
            "v": _FORMAT_VERSION,
            "headers_ms": _round(self.headers_ms),
            "ttft_ms": None if self.ttft_ms is None else _round(self.ttft_ms),
            "total_ms": _round(self.total_ms),
            "chunks_ms": [_round(offset) for offset in self.chunks_ms],
            "cut": self.cut,
        }
        if self.recorded_at is not None:
            # An optional field: readers of format 1 that predate it ignore it.
            at = self.recorded_at.astimezone(timezone.utc)
            data["recorded_at"] = at.isoformat(timespec="milliseconds")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_header(cls, value: str) -> RecordedTiming:
        """Parse a :data:`TIMING_HEADER` value; raises ``ValueError`` naming what is wrong."""
        try:
            data = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{TIMING_HEADER} is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{TIMING_HEADER} is not a JSON object")
        if data.get("v") != _FORMAT_VERSION:
            raise ValueError(f"{TIMING_HEADER} has unknown version {data.get('v')!r}")
        chunks = data.get("chunks_ms", [])
        if not isinstance(chunks, list):
            raise ValueError(f"{TIMING_HEADER}: chunks_ms is not a list")
        ttft = data.get("ttft_ms")
        cut = data.get("cut", False)
        if not isinstance(cut, bool):
            raise ValueError(f"{TIMING_HEADER}: cut is not a boolean")
        recorded_at = data.get("recorded_at")
        return cls(
            headers_ms=_milliseconds(data.get("headers_ms"), "headers_ms"),
            total_ms=_milliseconds(data.get("total_ms"), "total_ms"),
            ttft_ms=None if ttft is None else _milliseconds(ttft, "ttft_ms"),
            chunks_ms=tuple(_milliseconds(offset, "chunks_ms") for offset in chunks),
            cut=cut,
            recorded_at=None if recorded_at is None else _instant(recorded_at),
        )


def _round(ms: float) -> float:
    # A tenth of a millisecond is below what a network call can be measured to.
    return round(ms, 1)


def _milliseconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{TIMING_HEADER}: {name} is not a number: {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{TIMING_HEADER}: {name} is not a duration: {value!r}")
    return float(value)


def _instant(value: object) -> datetime:
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if at.tzinfo is not None:
                return at.astimezone(timezone.utc)
    raise ValueError(
        f"{TIMING_HEADER}: recorded_at is not an ISO 8601 time with a UTC offset: {value!r}"
    )


def pop_timing_header(headers: Any) -> RecordedTiming | None:
    """Remove :data:`TIMING_HEADER` from mutable response ``headers`` (httpx or httpx2); return it.

    ``None`` when the header is absent or unreadable: the caller then measures the exchange as it
    happens. The header is removed either way, so it never reaches the code under test.
    """
    value = headers.get(TIMING_HEADER)
    if value is None:
        return None
    del headers[TIMING_HEADER]
    try:
        return RecordedTiming.from_header(value)
    except ValueError:
        return None


def timing_key(
    method: str | bytes,
    scheme: str | bytes,
    host: str | bytes,
    port: int | None,
    target: str | bytes,
    body_digest: bytes,
) -> str:
    """The key of a request: method, URL parts as httpx hands them to httpcore, and body digest.

    ``target`` is the path with the query string; ``port`` is ``None`` for the scheme's default
    port (as in ``httpx.URL.port``); ``body_digest`` is the SHA-256 digest of the body bytes.
    """
    digest = hashlib.sha256()
    for part in (method, scheme, host, b"" if port is None else str(port), target):
        raw = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    digest.update(body_digest)
    return digest.hexdigest()


@dataclass
class TimingSlot:
    """Put under :data:`TIMING_EXTENSION` in a request's extensions to receive its timing.

    ``timing`` is set, once, when the body beneath vcrpy has been read to its end or given up on.
    ``guard``, when set, is called with the status and the body bytes received so far after each
    chunk beneath vcrpy, and may raise to stop reading: a recording vcrpy reads the whole body
    before the measuring transport above it sees a byte, so the transport's bounds
    (``deadline_s``, ``max_response_bytes``) are enforced here while recording.
    """

    timing: RecordedTiming | None = None
    guard: Callable[[int, int], None] | None = None


# --------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class _Completed:
    key: str
    status: int
    # perf_counter() when the request was handed to the pool.
    started: float
    timing: RecordedTiming


class TimingRegistry:
    """Timings of the exchanges measured beneath vcrpy while :func:`capture_timing` is active.

    Thread-safe. Every completed timing goes to the slot of its request when it carried one, else
    to a first-in-first-out queue under its :func:`timing_key` (at most ``capacity`` unclaimed
    timings are kept), and becomes the latest timing of the thread that read the body.
    """

    def __init__(self, *, capacity: int = _DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._by_key: dict[str, deque[_Completed]] = {}
        self._order: deque[_Completed] = deque()
        self._local = threading.local()

    def take(self, key: str, *, started_after: float | None = None) -> RecordedTiming | None:
        """The oldest unclaimed timing of the request ``key``, removed; ``None`` if there is none.

        With ``started_after`` (a ``time.perf_counter()`` value), timings of exchanges that began
        earlier belong to an earlier sending of the same request and are discarded.
        """
        with self._lock:
            queue = self._by_key.get(key)
            found = None
            while queue:
                entry = queue.popleft()
                if started_after is None or entry.started >= started_after:
                    found = entry
                    break
            if queue is not None and not queue:
                del self._by_key[key]
        return found.timing if found is not None else None

    def take_latest(self, *, status: int | None = None) -> RecordedTiming | None:
        """The timing completed last on the calling thread, once; ``None`` if already taken.

        With ``status``, a timing of a response with another status code is not returned (and
        is dropped): it cannot belong to the response in hand.
        """
        latest: _Completed | None = getattr(self._local, "latest", None)
        self._local.latest = None
        if latest is None or (status is not None and latest.status != status):
            return None
        return latest.timing

    def before_record_response(self, response: dict[str, Any]) -> dict[str, Any]:
        """vcrpy ``before_record_response`` hook: store this thread's latest timing as a header.

        ``response`` is vcrpy's dict (``status``, ``headers`` mapping names to lists of values,
        ``body``); it is returned with :data:`TIMING_HEADER` set, or unchanged when no timing
        belongs to it.
        """
        status = response.get("status", {}).get("code")
        timing = self.take_latest(status=status if isinstance(status, int) else None)
        if timing is None:
            return response
        headers = response.setdefault("headers", {})
        # A header of that name from elsewhere (a server, an older recording) must not survive
        # next to ours under another spelling.
        for name in [name for name in headers if name.lower() == TIMING_HEADER]:
            del headers[name]
        headers[TIMING_HEADER] = [timing.to_header()]
        return response

    def _begin(self) -> None:
        # A new exchange on this thread: an unclaimed earlier timing cannot be the one vcrpy's
        # stub is about to record (it records only what it just read on this thread).
        self._local.latest = None

    def _complete(self, entry: _Completed, slot: TimingSlot | None) -> None:
        self._local.latest = entry
        if slot is not None:
            slot.timing = entry.timing
            return
        with self._lock:
            self._by_key.setdefault(entry.key, deque()).append(entry)
            self._order.append(entry)
            while len(self._order) > self._capacity:
                oldest = self._order.popleft()
                queue = self._by_key.get(oldest.key)
                # Both queues are in completion order, so an unclaimed oldest entry is at the front.
                if queue and queue[0] is oldest:
                    queue.popleft()
                    if not queue:
                        del self._by_key[oldest.key]

    def _send(self, send: Callable[[Any, Any], Any], pool: Any, request: Any) -> Any:
        """Send ``request`` through the original ``pool.handle_request`` and time the exchange."""
        extension = request.extensions.get(TIMING_EXTENSION)
        slot = extension if isinstance(extension, TimingSlot) else None
        self._begin()
        body = _DigestingStream(request.stream)
        request.stream = body
        sent_at = datetime.fromtimestamp(time.time(), tz=timezone.utc)
        started = time.perf_counter()
        # A request that fails before its response headers has no timing to keep.
        response = send(pool, request)
        headers_at = time.perf_counter()
        url = request.url
        # httpcore sends the whole request body before it returns the response headers.
        key = timing_key(request.method, url.scheme, url.host, url.port, url.target, body.digest())
        clock = _ExchangeClock(self, key, slot, started, headers_at, response, sent_at)
        response.stream = _TimedStream(response.stream, clock)
        return response


class _DigestingStream:
    """A request body stream that hashes what it yields (restarting if iterated again)."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()

    def __iter__(self) -> Iterator[bytes]:
        self._hash = hashlib.sha256()
        for part in self._inner:
            self._hash.update(part)
            yield part

    def digest(self) -> bytes:
        return self._hash.digest()


class _ExchangeClock:
    """Stamps one exchange's body chunks and builds its timing when the body ends."""

    def __init__(
        self,
        registry: TimingRegistry,
        key: str,
        slot: TimingSlot | None,
        started: float,
        headers_at: float,
        response: Any,
        sent_at: datetime | None = None,
    ) -> None:
        self._registry = registry
        self._sent_at = sent_at
        self._key = key
        self._slot = slot
        self._started = started
        self._headers_at = headers_at
        self._status: int = response.status
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in response.headers
        }
        content_type = headers.get("content-type", "").lower()
        self._mode: Literal["sse", "body", "sniff"] = (
            "sse"
            if "event-stream" in content_type
            else ("body" if "json" in content_type or self._status >= 300 else "sniff")
        )
        self._accumulator = SSEAccumulator() if self._mode == "sse" else None
        encoding = headers.get("content-encoding", "").strip().lower()
        self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding in _DECODABLE else None
        self._readable = encoding in ("", "identity", *_DECODABLE)
        self._sniffed = b""
        self._chunks: list[float] = []
        self._received = 0
        self._ttft: float | None = None
        self._finished = False
        self._lock = threading.Lock()

    def chunk(self, data: bytes) -> None:
        """A body chunk arrived now; the slot's guard may raise to stop the reading."""
        now = time.perf_counter()
        if not data:
            return
        self._received += len(data)
        guard = self._slot.guard if self._slot is not None else None
        if guard is not None:
            guard(self._status, self._received)
        self._chunks.append(now)
        if self._mode != "body" and self._readable:
            self._parse(data, now)

    def _parse(self, data: bytes, now: float) -> None:
        try:
            text = self._decoder.decompress(data) if self._decoder is not None else data
        except zlib.error:
            self._readable = False
            return
        if self._mode == "sniff":
            self._sniffed += text
            if not self._sniffed.strip():
                return
            if not looks_like_sse(self._sniffed[:16]):
                self._mode = "body"
                return
            self._mode, self._accumulator, text = "sse", SSEAccumulator(), self._sniffed
        if self._accumulator is not None and text:
            # Fed to the end, not only to the first token: the end tells whether it was cut.
            self._accumulator.feed(text)
            if self._ttft is None and self._accumulator.first_token_seen:
                self._ttft = now

    def finish(self, how: Literal["ended", "closed", "failed"]) -> None:
        """The body was read to its end, closed (maybe early) or broke; report the timing once."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        now = time.perf_counter()
        end = self._chunks[-1] if how == "ended" and self._chunks else now
        cut = how != "ended"
        accumulator = self._accumulator
        if how != "failed" and accumulator is not None and self._readable:
            # A stream is whole when it reached [DONE] or a finish_reason, even if its reader
            # closed it without reading on to the end of the connection.
            if how == "ended":
                accumulator.close()
            cut = not accumulator.done
            if not cut and how == "closed" and self._chunks:
                end = self._chunks[-1]
        timing = RecordedTiming(
            headers_ms=_offset_ms(self._headers_at, self._started),
            total_ms=_offset_ms(end, self._started),
            ttft_ms=None if self._ttft is None else _offset_ms(self._ttft, self._started),
            chunks_ms=tuple(_offset_ms(at, self._started) for at in self._chunks),
            cut=cut,
            recorded_at=self._sent_at,
        )
        entry = _Completed(self._key, self._status, self._started, timing)
        self._registry._complete(entry, self._slot)


def _offset_ms(at: float, started: float) -> float:
    return max(0.0, (at - started) * 1000)


class _TimedStream:
    """Wraps httpcore's response byte stream: stamps each chunk, reports when the body ends."""

    def __init__(self, inner: Iterable[bytes], clock: _ExchangeClock) -> None:
        self._inner = inner
        self._clock = clock

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._inner:
                self._clock.chunk(chunk)
                yield chunk
        except GeneratorExit:
            # The reader stopped iterating before the end.
            self._clock.finish("closed")
            raise
        except BaseException:
            self._clock.finish("failed")
            raise
        self._clock.finish("ended")

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            # A no-op after a complete read; otherwise the reader gave up on the body.
            self._clock.finish("closed")


# --------------------------------------------------------------------------------------------
# Patching httpcore


class _CaptureState:
    """The one active capture: the patch is class-level, so it is process-wide by nature."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registry: TimingRegistry | None = None
        self.depth = 0
        self.undo: list[Callable[[], None]] = []


_CAPTURE = _CaptureState()


@contextlib.contextmanager
def capture_timing() -> Iterator[TimingRegistry]:
    """Time every httpcore / httpcore2 exchange while active; yields the registry of timings.

    Re-entrant and usable from several threads: nested or concurrent uses share one registry and
    the patch is removed when the last one exits. Enter it before vcrpy's cassette or after, in
    any order: vcrpy patches the transports above, this patches the connection pools beneath.
    """
    with _CAPTURE.lock:
        if _CAPTURE.depth == 0:
            fresh = TimingRegistry()
            _CAPTURE.undo = _patch_pools(fresh)
            _CAPTURE.registry = fresh
        _CAPTURE.depth += 1
        registry = _CAPTURE.registry
    assert registry is not None
    try:
        yield registry
    finally:
        with _CAPTURE.lock:
            _CAPTURE.depth -= 1
            if _CAPTURE.depth == 0:
                for undo in reversed(_CAPTURE.undo):
                    undo()
                _CAPTURE.undo = []
                _CAPTURE.registry = None


def active_registry() -> TimingRegistry | None:
    """The registry of the active :func:`capture_timing`, or ``None`` when none is active."""
    return _CAPTURE.registry


def before_record_response(response: dict[str, Any]) -> dict[str, Any]:
    """vcrpy ``before_record_response`` hook storing the real timing as :data:`TIMING_HEADER`.

    Pass it to vcrpy (``vcr.VCR(before_record_response=...)``) while :func:`capture_timing` is
    active; without an active capture it returns ``response`` unchanged. See
    :meth:`TimingRegistry.before_record_response`.
    """
    registry = _CAPTURE.registry
    return response if registry is None else registry.before_record_response(response)


def _patch_pools(registry: TimingRegistry) -> list[Callable[[], None]]:
    undo: list[Callable[[], None]] = []
    # httpx imports httpcore inside handle_request, so the pools are patched whether or not
    # anything imported them yet. HTTPProxy and SOCKSProxy inherit handle_request.
    for name in ("httpcore", "httpcore2"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        pool = module.ConnectionPool
        original = pool.handle_request
        pool.handle_request = _timed(original, registry)
        undo.append(functools.partial(setattr, pool, "handle_request", original))
    return undo


def _timed(send: Callable[[Any, Any], Any], registry: TimingRegistry) -> Callable[[Any, Any], Any]:
    @functools.wraps(send)
    def handle_request(pool: Any, request: Any) -> Any:
        return registry._send(send, pool, request)

    return handle_request
