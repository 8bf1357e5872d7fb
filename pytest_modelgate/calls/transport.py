"""Measuring transports: one record per HTTP attempt, whichever client sent it.

A measuring transport wraps the real transport of an ``httpx.Client`` (our own ``llm.chat``) or an
``httpx2.Client`` (the one handed to the openai SDK by ``llm.openai()``). For every ``POST`` to a
``.../chat/completions`` URL it

1. starts a clock and sends the request through the inner transport;
2. wraps the response byte stream, so it sees every byte as the caller reads it: SSE bytes go to an
   incremental :class:`~.protocol.SSEAccumulator`, which stamps the time to first
   token, other bodies are buffered;
3. when the body is exhausted, closed or breaks, builds one :class:`Attempt` and hands it to a sink
   (normally :meth:`CallLog.add`, which numbers it and turns it into a ``CallRecord``).

Request errors (connect errors, timeouts) are recorded too and re-raised unchanged. Other requests
(``GET /models``...) pass through unmeasured. Because the measurement sits below the client, the
openai SDK's own retries are recorded attempt by attempt exactly like ours.

Every measured attempt is also held to :class:`CallBounds` (``client.deadline_s`` and
``client.max_response_bytes``): enforced here, as bytes arrive, they hold alike for ``llm.chat``,
streams, the openai SDK and a product's own clients, and the error raised is not an httpx one, so
no client retries it. :func:`call_deadline` makes one deadline cover a call and its retries.

Under vcrpy (which sits beneath this transport) the clock here is wrong: a recording vcrpy reads
the whole body before returning, a replay returns at once. So the latency figures then come from
:mod:`pytest_modelgate.recording.timing`: a replayed response carries its recorded timing in a
header, which is removed before the caller sees the response (the record says
``timing="recorded"``); while recording, the exchange beneath vcrpy fills the request's timing slot
(``timing="live"``). Without vcrpy the clock here is used, as the caller reads. Nothing ever sleeps
to imitate a latency.

httpx and httpx2 are imported only when a transport for them is made. The attempt log
(:class:`CallLog`, :class:`Attempt`, :class:`CallBounds`) lives in
:mod:`~pytest_modelgate.calls.attempts` and is re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pytest_modelgate.calls.attempts import (
    _CALL_DEADLINE,
    _MIN_HEADER_SECRET,
    _UNCUT,
    ATTEMPT_EXTENSION,
    Attempt,
    AttemptHandle,
    AttemptSink,
    CallBounds,
    CallLog,
    ClientName,
    ErrorTranslator,
    _json_object,
    _request_key,
    _secrets,
    call_deadline,
    current_call_deadline,
    is_chat_completions,
)
from pytest_modelgate.calls.protocol import (
    CompletionFormatError,
    ParsedCompletion,
    SSEAccumulator,
    classify_error,
    embedded_error,
    looks_like_sse,
    parse_completion,
    shorten,
)
from pytest_modelgate.calls.records import ErrorKind, TimingSource
from pytest_modelgate.errors import CallDeadlineError, ModelAPIError, ResponseTooLargeError
from pytest_modelgate.recording.timing import (
    TIMING_EXTENSION,
    RecordedTiming,
    TimingSlot,
    active_registry,
    pop_timing_header,
    timing_key,
)
from pytest_modelgate.redaction import redactor_for

if TYPE_CHECKING:
    import httpx
    import httpx2


__all__ = [
    "ATTEMPT_EXTENSION",
    "Attempt",
    "AttemptHandle",
    "AttemptSink",
    "CallBounds",
    "CallLog",
    "ClientName",
    "call_deadline",
    "current_call_deadline",
    "is_chat_completions",
    "measuring_every_client",
    "measuring_httpx2_transport",
    "measuring_transport",
]


# Encodings we can decode with the standard library; the request's Accept-Encoding is narrowed to
# these so a measured body can always be read.
_DECODABLE = ("gzip", "deflate")
_ERROR_MESSAGE_LIMIT = 500
# What the protocol parsers may quote of an error before it is scrubbed and then cut to the limit


class _AttemptLimits:
    """The :class:`CallBounds` of one attempt: the instant it must end by, the bytes it may read."""

    def __init__(self, bounds: CallBounds | None, started: float, deadline: float | None) -> None:
        self.bounds = bounds if bounds is not None else CallBounds()
        self.started = started
        if deadline is None and self.bounds.deadline_s is not None:
            deadline = started + self.bounds.deadline_s
        self.deadline = deadline
        # True once a timeout was shortened to the deadline: that timeout firing *is* the deadline.
        self.clamped = False

    def clamp_timeouts(self, request: Any) -> None:
        """Shorten the request's connect / read / write / pool timeouts to the time left."""
        if self.deadline is None:
            return
        left = max(self.deadline - time.perf_counter(), 0.001)
        timeouts = dict(request.extensions.get("timeout") or {})
        for name in ("connect", "read", "write", "pool"):
            value = timeouts.get(name)
            if value is None or value > left:
                timeouts[name] = left
                self.clamped = True
        request.extensions["timeout"] = timeouts

    def past_deadline(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def guard(self, status: int, received: int) -> None:
        """Raise the bound's error once ``received`` body bytes, or the time now, exceed one.

        Installed beneath vcrpy while recording (:attr:`TimingSlot.guard`), where the body is
        read before the measuring stream sees it.
        """
        now = time.perf_counter()
        failure = self.size_failure(received)
        if failure is None and self.past_deadline(now):
            failure = self.deadline_failure(now, "the body was still arriving")
        if failure is not None:
            raise self.error(status, failure)

    def deadline_failure(self, now: float | None, what: str) -> tuple[ErrorKind, str]:
        when = f"; {now - self.started:.1f} s into this attempt" if now is not None else ""
        return (
            "timeout",
            f"the call exceeded client.deadline_s={self.bounds.deadline_s or 0:g} s ({what}{when})",
        )

    def size_failure(self, size: int) -> tuple[ErrorKind, str] | None:
        limit = self.bounds.max_response_bytes
        if limit is None or size <= limit:
            return None
        return (
            "response_too_large",
            f"the response is larger than client.max_response_bytes={limit} bytes; "
            f"reading stopped after {size} bytes",
        )

    def error(self, status: int | None, failure: tuple[ErrorKind, str]) -> ModelAPIError:
        """The exception that ends the call; not an httpx error, so no client retries it."""
        kind, message = failure
        model = self.bounds.model or "the model"
        if kind == "response_too_large":
            return ResponseTooLargeError(model, status, kind, message, 1, False)
        return CallDeadlineError(model, status, kind, message, 1, True)


class _AttemptContext:
    """What is known about an attempt before its response: who sent what, and when."""

    def __init__(self, transport: _MeasuringTransport, request: Any, handle: Any) -> None:
        self.transport = transport
        self.handle = handle if isinstance(handle, AttemptHandle) else None
        url = request.url
        try:
            body: bytes = request.content
        except Exception:
            # A streaming request body: read it so we can key the attempt (httpx keeps it).
            body = request.read()
        self.method: str = request.method
        # The configured keys and any key this request carries: kept out of every message.
        self.redactor = redactor_for(
            (*transport.secrets, *_secrets(request.headers)), min_length=_MIN_HEADER_SECRET
        )
        self.endpoint = self.redactor.scrub_text(
            f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"
        )
        self.request_key = _request_key(self.method, str(url), body)
        # Parsed once: for the stream flag here, the contract checks and the prompt's language.
        self.request_json = _json_object(body)
        self.asked_stream = (
            self.request_json is not None and self.request_json.get("stream") is True
        )
        self._url = url
        self._body = body
        # Set when the figures measured here are not the real ones (see the module docstring).
        self.timing: RecordedTiming | None = None
        self.timing_source: TimingSource = "live"
        self.recorded_at: datetime | None = None
        self.started_at = time.time()
        self.started = time.perf_counter()
        self.limits = _AttemptLimits(transport.bounds, self.started, _CALL_DEADLINE.get())

    def adopt_timing(self, response_headers: Any, slot: TimingSlot) -> None:
        """Take the real timing, if any, once the inner transport returned its response."""
        recorded = pop_timing_header(response_headers)
        if recorded is not None:
            self.timing, self.timing_source = recorded, "recorded"
            # Cassettes recorded before recorded_at was stored: the server's Date header.
            self.recorded_at = recorded.recorded_at or _http_date(response_headers.get("date"))
            return
        # A timing complete before the response is handed on means a layer beneath this one
        # (vcrpy recording) read the whole body: the clock here has not seen it arrive.
        beneath = slot.timing
        registry = active_registry()
        if beneath is None and registry is not None:
            # The slot did not reach the pool (a transport that rebuilt the request): find the
            # timing by request, skipping timings of earlier sendings of the same request.
            url = self._url
            key = timing_key(
                self.method,
                url.raw_scheme,
                url.raw_host,
                url.port,
                url.raw_path,
                hashlib.sha256(self._body).digest(),
            )
            beneath = registry.take(key, started_after=self.started)
        self.timing = beneath

    def finish(
        self,
        *,
        ended: float,
        status: int | None,
        error_kind: ErrorKind | None,
        error_message: str | None,
        ttft: float | None = None,
        retry_after_s: float | None = None,
        completion: ParsedCompletion | None = None,
        sse: bool = False,
    ) -> None:
        message = error_message
        if message is not None:
            # Scrub first, cut after: see _UNCUT.
            message = shorten(self.redactor.scrub_text(message), _ERROR_MESSAGE_LIMIT)
        latency_ms = (ended - self.started) * 1000
        ttft_ms = (ttft - self.started) * 1000 if ttft is not None else None
        if self.timing is not None:
            latency_ms, ttft_ms = self.timing.total_ms, self.timing.ttft_ms
        attempt = Attempt(
            client=self.transport.client_name,
            method=self.method,
            endpoint=self.endpoint,
            request_key=self.request_key,
            started_at=self.started_at,
            started_monotonic=self.started,
            ended_monotonic=ended,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            status=status,
            error_kind=error_kind,
            error_message=message,
            retry_after_s=retry_after_s,
            completion=completion,
            streamed=sse or self.asked_stream,
            timing=self.timing_source,
            request=self.request_json,
            recorded_at=self.recorded_at,
        )
        record = self.transport.sink(attempt)
        if self.handle is not None:
            self.handle.attempt = attempt
            self.handle.record = record


class _MeasuredStream:
    """Wraps a response byte stream; builds the attempt when the body ends, breaks or closes.

    Concrete subclasses also derive from the library's ``SyncByteStream``.
    """

    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(self, inner: Any, context: _AttemptContext, status: int, headers: Any) -> None:
        self._inner = inner
        self._context = context
        self._status = status
        self._headers = headers
        content_type = str(headers.get("content-type", "")).lower()
        self._mode: Literal["sse", "body", "sniff"] = (
            "sse"
            if "event-stream" in content_type
            else ("body" if "json" in content_type or status >= 300 else "sniff")
        )
        self._accumulator = SSEAccumulator(message_limit=_UNCUT) if self._mode == "sse" else None
        encoding = str(headers.get("content-encoding", "")).strip().lower()
        self._undecodable = encoding if encoding not in ("", "identity", *_DECODABLE) else None
        # wbits 32+MAX_WBITS accepts both gzip and zlib-wrapped deflate.
        self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS) if encoding in _DECODABLE else None
        self._body = bytearray()
        self._limits = context.limits
        # Bytes as they came off the wire (before decompression), for max_response_bytes.
        self._received = 0
        # A bound this stream hit: it decides the outcome whatever the status said.
        self._bound_failure: tuple[ErrorKind, str] | None = None
        self._ttft: float | None = None
        self._last_byte: float | None = None
        self._finished = False
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        limits = self._limits
        bound: tuple[ErrorKind, str] | None = None
        try:
            for chunk in self._inner:
                self._last_byte = now = time.perf_counter()
                self._received += len(chunk)
                # Checked before the chunk is kept: nothing beyond the limit is buffered.
                bound = limits.size_failure(self._received)
                if bound is None and limits.past_deadline(now):
                    bound = limits.deadline_failure(now, "the body was still arriving")
                if bound is None:
                    self._observe(chunk)
                    bound = limits.size_failure(len(self._body))
                if bound is not None:
                    break
                yield chunk
        except ModelAPIError as exc:
            # A bound the guard beneath us enforced (TimingSlot.guard): keep its reason.
            chunk = b""  # the last chunk may quote a key; --showlocals prints this frame
            self._bound_failure = (exc.error_kind, exc.provider_message)  # type: ignore[assignment]
            self._finish(failure=self._bound_failure)
            raise
        except Exception as exc:
            # The last chunk may quote a key; --showlocals would print it with this frame.
            chunk = b""
            if isinstance(exc, self.timeout_errors) and limits.clamped:
                # The read timeout was shortened to the deadline: the deadline fired.
                now = time.perf_counter()
                bound = limits.deadline_failure(now, "the server went silent while sending")
                self._bound_failure = bound
                self._finish(failure=bound)
                raise limits.error(self._status, bound) from exc
            kind: ErrorKind = "timeout" if isinstance(exc, self.timeout_errors) else "stream_cut"
            self._finish(failure=(kind, f"{type(exc).__name__} while reading the body: {exc}"))
            raise
        if bound is None:
            self._finish()
            return
        self._bound_failure = bound
        with contextlib.suppress(Exception):
            self._inner.close()
        self._finish(failure=bound)
        raise limits.error(self._status, bound)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._finish(closed_early=True)

    def abandon(self) -> None:
        """Finish as if closed early (the client went away with the body unread)."""
        self._finish(closed_early=True)

    def _observe(self, chunk: bytes) -> None:
        if self._undecodable is not None:
            return
        try:
            if self._decoder is None:
                data = chunk
            elif (limit := self._limits.bounds.max_response_bytes) is not None:
                # At most one byte beyond the limit: a small gzip body may inflate a thousandfold.
                data = self._decoder.decompress(chunk, max(limit - len(self._body), 0) + 1)
            else:
                data = self._decoder.decompress(chunk)
        except zlib.error:
            self._undecodable = "a corrupt compressed body"
            return
        self._body += data
        if self._mode == "sniff" and self._body.strip():
            self._mode = "sse" if looks_like_sse(bytes(self._body[:16])) else "body"
            if self._mode == "sse":
                self._accumulator = SSEAccumulator(message_limit=_UNCUT)
                data = bytes(self._body)
        if self._accumulator is not None and data:
            self._accumulator.feed(data)
            if self._ttft is None and self._accumulator.first_token_seen:
                self._ttft = self._last_byte

    def _flush_decoder(self) -> None:
        if self._decoder is None or self._undecodable is not None or self._bound_failure:
            # After a bound was hit the decoder may hold unread input: never inflate it.
            return
        try:
            tail = self._decoder.flush()
        except zlib.error:
            self._undecodable = "a corrupt compressed body"
            return
        if tail:
            self._decoder = None
            self._observe(tail)

    def _finish(
        self, *, failure: tuple[ErrorKind, str] | None = None, closed_early: bool = False
    ) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._context.transport.forget(self)
        self._flush_decoder()
        ended = self._last_byte if self._last_byte is not None else time.perf_counter()
        if failure is not None:
            ended = time.perf_counter()
        outcome = self._outcome(failure, closed_early)
        kind, message, completion, retry_after = outcome
        self._context.finish(
            ended=ended,
            status=self._status,
            error_kind=kind,
            error_message=message,
            ttft=self._ttft,
            retry_after_s=retry_after,
            completion=completion,
            sse=self._mode == "sse",
        )

    def _outcome(
        self, failure: tuple[ErrorKind, str] | None, closed_early: bool
    ) -> tuple[ErrorKind | None, str | None, ParsedCompletion | None, float | None]:
        if self._bound_failure is not None:
            kind, message = self._bound_failure
            return kind, message, self._partial(), None
        if not 200 <= self._status < 300:
            # Scrubbed before it is parsed: every message quoted from it is then free of keys.
            body = self._context.redactor.scrub_bytes(bytes(self._body))
            info = classify_error(self._status, body, self._headers, limit=_UNCUT)
            return info.kind, info.message, None, info.retry_after_s
        if failure is not None:
            return failure[0], failure[1], self._partial(), None
        if self._undecodable is not None:
            return None, f"usage not measured: cannot decode {self._undecodable}", None, None
        if self._accumulator is not None:
            return self._stream_outcome(closed_early)
        return self._body_outcome(closed_early)

    def _partial(self) -> ParsedCompletion | None:
        return self._accumulator.result() if self._accumulator is not None else None

    def _stream_outcome(
        self, closed_early: bool
    ) -> tuple[ErrorKind | None, str | None, ParsedCompletion | None, float | None]:
        accumulator = self._accumulator
        assert accumulator is not None
        if not closed_early:
            accumulator.close()
        result = accumulator.result()
        if accumulator.error is not None:
            error = accumulator.error
            return error.kind, error.message, result, error.retry_after_s
        if not accumulator.done:
            why = (
                "the response was closed before the stream ended"
                if closed_early
                else "the stream ended before [DONE] or a finish_reason"
            )
            return "stream_cut", f"{why} ({accumulator.chunk_count} chunks)", result, None
        return None, None, result, None

    def _body_outcome(
        self, closed_early: bool
    ) -> tuple[ErrorKind | None, str | None, ParsedCompletion | None, float | None]:
        text = bytes(self._body)
        try:
            data = json.loads(text)
        except ValueError:
            if closed_early:
                return "stream_cut", "the response was closed before the body ended", None, None
            quoted = shorten(repr(self._context.redactor.scrub_bytes(text)))
            return "invalid_response", f"the body is not JSON: {quoted}", None, None
        problem = embedded_error(data, limit=_UNCUT)
        if problem is not None:
            return problem.kind, problem.message, None, problem.retry_after_s
        try:
            completion = parse_completion(data)
        except CompletionFormatError as exc:
            return "invalid_response", f"not a chat completion: {exc}", None, None
        return None, None, completion, None


class _MeasuringTransport:
    """The library-independent half of a measuring transport (see the module docstring)."""

    stream_class: ClassVar[type[_MeasuredStream]]
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(
        self,
        inner: Any,
        sink: AttemptSink,
        client: ClientName,
        translate_error: ErrorTranslator | None = None,
        bounds: CallBounds | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.inner = inner
        self.sink = sink
        self.client_name: ClientName = client
        self.translate_error = translate_error
        self.bounds = bounds
        # Configured key values: never in an attempt's message, whichever header carried them.
        self.secrets: tuple[str, ...] = tuple(secrets)
        self._open: set[_MeasuredStream] = set()
        self._lock = threading.Lock()

    def handle_request(self, request: Any) -> Any:
        handle = request.extensions.pop(ATTEMPT_EXTENSION, None)
        if TIMING_EXTENSION in request.extensions or not is_chat_completions(
            request.method, request.url.path
        ):
            # Not a call the gate judges, or one a measuring transport above already measures.
            return self.inner.handle_request(request)
        _narrow_accept_encoding(request.headers)
        context = _AttemptContext(self, request, handle)
        limits = context.limits
        if limits.past_deadline(context.started):
            # A retry that would start after its call's deadline is not sent.
            failure = limits.deadline_failure(context.started, "not sent: the deadline had passed")
            context.finish(
                ended=context.started, status=None, error_kind=failure[0], error_message=failure[1]
            )
            raise limits.error(None, failure)
        limits.clamp_timeouts(request)
        # httpx hands the request's extensions dict on to httpcore, where capture_timing() fills
        # the slot; harmless when nothing captures.
        slot = TimingSlot(guard=limits.guard)
        request.extensions[TIMING_EXTENSION] = slot
        try:
            response = self.inner.handle_request(request)
        except ModelAPIError as exc:
            # A bound enforced beneath vcrpy while it recorded (the slot's guard).
            context.finish(
                ended=time.perf_counter(),
                status=exc.status,
                error_kind=exc.error_kind,  # type: ignore[arg-type]  # one of ours
                error_message=exc.provider_message,
            )
            raise
        except Exception as exc:
            replacement = self.translate_error(exc) if self.translate_error is not None else None
            if replacement is not None:
                raise replacement from None
            now = time.perf_counter()
            if isinstance(exc, self.timeout_errors) and limits.clamped:
                # The timeout was shortened to the deadline: the deadline fired.
                failure = limits.deadline_failure(now, "no response yet")
                context.finish(
                    ended=now, status=None, error_kind=failure[0], error_message=failure[1]
                )
                raise limits.error(None, failure) from exc
            kind: ErrorKind = "timeout" if isinstance(exc, self.timeout_errors) else "connection"
            context.finish(
                ended=now,
                status=None,
                error_kind=kind,
                error_message=f"{type(exc).__name__}: {exc}",
            )
            raise
        finally:
            request.extensions.pop(TIMING_EXTENSION, None)
        context.adopt_timing(response.headers, slot)
        late = _late(context)
        if late is not None:
            with contextlib.suppress(Exception):
                response.stream.close()
            context.finish(
                ended=time.perf_counter(),
                status=response.status_code,
                error_kind=late[0],
                error_message=late[1],
            )
            raise limits.error(response.status_code, late)
        stream = self.stream_class(response.stream, context, response.status_code, response.headers)
        with self._lock:
            self._open.add(stream)
        response.stream = stream
        return response

    def forget(self, stream: _MeasuredStream) -> None:
        with self._lock:
            self._open.discard(stream)

    def abandon_open(self) -> None:
        """Record every response nobody read to the end as closed early."""
        with self._lock:
            unfinished = list(self._open)
        for stream in unfinished:
            stream.abandon()

    def close(self) -> None:
        # Responses nobody read to the end would otherwise never be recorded.
        self.abandon_open()
        self.inner.close()


def _http_date(value: object) -> datetime | None:
    """An HTTP ``Date`` header value as an aware UTC datetime; None if absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    from email.utils import parsedate_to_datetime

    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        return None  # RFC 9110: a Date without a zone cannot be trusted as GMT
    return at.astimezone(timezone.utc)


def _late(context: _AttemptContext) -> tuple[ErrorKind, str] | None:
    """Why an attempt whose response headers just arrived is already past its deadline, or None."""
    limits = context.limits
    if limits.deadline is None:
        return None
    recorded = context.timing if context.timing_source == "recorded" else None
    # Replay judges what the live call would have done: a reply recorded as slower than the
    # deadline allows would have been cut (and recording cuts it now).
    if recorded is not None and recorded.total_ms / 1000 > limits.deadline - context.started:
        return limits.deadline_failure(
            None, f"the recorded reply took {recorded.total_ms / 1000:.1f} s"
        )
    now = time.perf_counter()
    if limits.past_deadline(now):
        # Headers that trickled in past the deadline (or a body vcrpy read while recording).
        return limits.deadline_failure(now, "the response headers arrived too late")
    return None


def _narrow_accept_encoding(headers: Any) -> None:
    accept = headers.get("accept-encoding")
    if accept is None:
        return
    codings = [c.strip() for c in accept.split(",") if c.strip()]
    wanted = [c for c in codings if c.split(";")[0].strip().lower() in (*_DECODABLE, "identity")]
    if wanted != codings:
        headers["accept-encoding"] = ", ".join(wanted) if wanted else "identity"


# --------------------------------------------------------------------------------------------
# Concrete classes, made on first use so httpx / httpx2 are imported only when needed

_Factory = Callable[..., Any]


@functools.cache
def _factory(library: str) -> _Factory:
    """The measuring transport class for ``httpx`` or its fork ``httpx2`` (same API)."""
    module = importlib.import_module(library)

    class MeasuredStream(_MeasuredStream, module.SyncByteStream):  # type: ignore[misc, name-defined]
        timeout_errors = (module.TimeoutException,)

    class MeasuringTransport(_MeasuringTransport, module.BaseTransport):  # type: ignore[misc, name-defined]
        stream_class = MeasuredStream
        timeout_errors = (module.TimeoutException,)

    return MeasuringTransport


def measuring_transport(
    inner: httpx.BaseTransport,
    sink: AttemptSink,
    *,
    client: ClientName = "modelgate",
    translate_error: ErrorTranslator | None = None,
    bounds: CallBounds | None = None,
    secrets: Iterable[str] = (),
) -> httpx.BaseTransport:
    """An ``httpx`` transport that sends through ``inner`` and reports each attempt to ``sink``.

    ``translate_error`` may swap an exception of the inner transport for a clearer one (which is
    then raised without recording an attempt), e.g. ``CallLog.translate_error``. ``bounds``: the
    deadline and size limit every measured attempt is held to (see :class:`CallBounds`).
    ``secrets`` (the configured key values) are scrubbed, with any key the request's own headers
    carry, from every attempt's error message and endpoint before they are cut to length.
    """
    transport: httpx.BaseTransport = _factory("httpx")(
        inner, sink, client, translate_error, bounds, secrets
    )
    return transport


def measuring_httpx2_transport(
    inner: httpx2.BaseTransport,
    sink: AttemptSink,
    *,
    client: ClientName = "openai",
    translate_error: ErrorTranslator | None = None,
    bounds: CallBounds | None = None,
    secrets: Iterable[str] = (),
) -> httpx2.BaseTransport:
    """The same measuring transport for ``httpx2`` (the HTTP library of the openai SDK)."""
    transport: httpx2.BaseTransport = _factory("httpx2")(
        inner, sink, client, translate_error, bounds, secrets
    )
    return transport


# --------------------------------------------------------------------------------------------
# Clients the product builds itself


class _BoundSend:
    """The original ``handle_request`` of one transport instance, as an inner transport."""

    def __init__(self, send: Callable[[Any, Any], Any], transport: Any) -> None:
        self._send = send
        self._transport = transport

    def handle_request(self, request: Any) -> Any:
        return self._send(self._transport, request)

    def close(self) -> None:
        # The product owns its transport and closes it itself.
        pass


class _EveryClient:
    """The one active :func:`measuring_every_client`: a class-level patch is process-wide."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logs: list[CallLog] = []
        self.measurers: list[_MeasuringTransport] = []
        self.undo: list[Callable[[], None]] = []

    def send(
        self, library: str, original: Callable[[Any, Any], Any], transport: Any, request: Any
    ) -> Any:
        with self.lock:
            log = self.logs[-1] if self.logs else None
        if (
            log is None
            or TIMING_EXTENSION in request.extensions
            or not is_chat_completions(request.method, request.url.path)
        ):
            return original(transport, request)
        measurer: _MeasuringTransport = _factory(library)(
            _BoundSend(original, transport),
            log.add,
            "other",
            log.translate_error,
            log.bounds,
            log.secrets,
        )
        response = measurer.handle_request(request)
        if measurer._open:
            with self.lock:
                self.measurers.append(measurer)
        return response


_EVERY_CLIENT = _EveryClient()


@contextlib.contextmanager
def measuring_every_client(log: CallLog) -> Iterator[CallLog]:
    """Measure into ``log`` the chat-completions calls of *any* httpx / httpx2 client while active.

    A product may build its own ``httpx.Client`` or ``httpx2.Client`` instead of using ``llm``.
    This patches ``HTTPTransport.handle_request`` of both libraries at class level, so each such
    request is measured by a measuring transport wrapped around the transport that sends it (its
    records say ``client="other"``). Requests already measured by a transport above (``llm.chat``,
    ``llm.openai()``) pass through once. Enter it *after* vcrpy's cassette: vcrpy patches the same
    method, and the clock here must sit above vcrpy, like the measuring transport's, so that a
    replayed response's recorded timing is read (and its header removed) here.

    On exit, responses nobody read to the end are recorded as closed early. Only synchronous
    clients are measured. Nested uses measure into the innermost log.
    """
    state = _EVERY_CLIENT
    with state.lock:
        if not state.logs:
            state.undo = _patch_transports(state)
        state.logs.append(log)
    try:
        yield log
    finally:
        with state.lock:
            state.logs.remove(log)
            measurers, state.measurers = state.measurers, []
            if not state.logs:
                for undo in reversed(state.undo):
                    undo()
                state.undo = []
        for measurer in measurers:
            measurer.abandon_open()


def _patch_transports(state: _EveryClient) -> list[Callable[[], None]]:
    undo: list[Callable[[], None]] = []
    for library in ("httpx", "httpx2"):
        try:
            module = importlib.import_module(library)
        except ImportError:
            continue
        cls = module.HTTPTransport
        # vcrpy's stub when a cassette is open: the measurement goes above it.
        original = cls.handle_request
        cls.handle_request = _every_client_send(state, library, original)
        undo.append(functools.partial(setattr, cls, "handle_request", original))
    return undo


def _every_client_send(
    state: _EveryClient, library: str, original: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    @functools.wraps(original)
    def handle_request(transport: Any, request: Any) -> Any:
        return state.send(library, original, transport, request)

    return handle_request
