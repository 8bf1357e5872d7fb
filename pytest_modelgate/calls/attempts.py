"""The attempt log: every measured HTTP attempt of one test and arm, numbered into calls.

:class:`Attempt` is what a measuring transport (:mod:`~pytest_modelgate.calls.transport`) knows
of one HTTP attempt; :class:`CallLog` numbers attempts into logical calls (a retry is the same
call's next attempt) and turns each into a :class:`~pytest_modelgate.calls.records.CallRecord`,
checking its contract. :class:`CallBounds` and :func:`call_deadline` are the limits a transport
holds every attempt to. No httpx here: this is the pure half of the measuring.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pytest_modelgate.calls.protocol import (
    ParsedCompletion,
)
from pytest_modelgate.calls.records import Arm, CallRecord, ErrorKind, TimingSource
from pytest_modelgate.redaction import redactor_for

if TYPE_CHECKING:
    from pytest_modelgate.calls.endpoints import ResolvedModel
    from pytest_modelgate.judge.metrics import CustomMetric
    from pytest_modelgate.markers import ModelContract

__all__ = [
    "ATTEMPT_EXTENSION",
    "Attempt",
    "AttemptHandle",
    "AttemptSink",
    "CallBounds",
    "CallLog",
    "ClientName",
    "ErrorTranslator",
    "call_deadline",
    "current_call_deadline",
    "is_chat_completions",
]

ClientName = Literal["modelgate", "openai", "other"]

#: Request extension under which a sender may put an :class:`AttemptHandle` to get its record back.
ATTEMPT_EXTENSION = "pytest_modelgate.attempt"
# above: a key that straddles a cut made before scrubbing would leave its prefix behind.
_UNCUT = 1 << 20
# Keys found in a request's own headers shorter than this are not searched for.
_MIN_HEADER_SECRET = 4


@dataclass(frozen=True)
class Attempt:
    """One measured HTTP attempt, before :class:`CallLog` attributes it to a test and call."""

    client: ClientName
    method: str
    # Scheme, host and path: the query string is dropped (it may carry a key).
    endpoint: str
    # Digest of method, full URL and body: equal keys mean "the same request sent again".
    request_key: str
    started_at: float
    started_monotonic: float
    ended_monotonic: float
    latency_ms: float
    ttft_ms: float | None = None
    status: int | None = None
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    retry_after_s: float | None = None
    completion: ParsedCompletion | None = None
    streamed: bool = False
    # "recorded": latency_ms and ttft_ms come from the recording this attempt was replayed from.
    timing: TimingSource = "live"
    # The request body as sent, parsed (for the contract checks and the prompt's language).
    request: Mapping[str, Any] | None = None
    # When a replayed attempt was recorded (``timing="recorded"``): its timing's ``recorded_at``,
    # else the recorded response's Date header; None when the recording says neither.
    recorded_at: datetime | None = None

    @property
    def ok(self) -> bool:
        """True when the attempt returned a usable completion."""
        return self.error_kind is None

    @property
    def billed_at(self) -> datetime | None:
        """The time a provider bills this attempt at (peak-hour rates depend on it).

        A live attempt is billed when it started (``started_at``, the wall clock of the call). A
        replayed one is billed when it was recorded, so the same cassettes cost the same at any
        hour; one whose recording does not say when (``None``) is priced at the list price
        without a time-of-day surcharge. Never the wall clock of the replay.
        """
        if self.timing == "recorded":
            return self.recorded_at
        return datetime.fromtimestamp(self.started_at, tz=timezone.utc)


AttemptSink = Callable[[Attempt], "CallRecord | None"]
# Given an exception of the inner transport, a clearer one to raise instead (or None).
ErrorTranslator = Callable[[BaseException], "BaseException | None"]
"""Receives every finished attempt; may return the ``CallRecord`` it made of it."""


@dataclass
class AttemptHandle:
    """Put under :data:`ATTEMPT_EXTENSION` in a request's extensions to learn how it went.

    The transport fills both fields when the attempt finishes (after the body was read or failed).
    """

    attempt: Attempt | None = None
    record: CallRecord | None = None


# The deadline (a time.perf_counter() instant) of the logical call being made in this context.
_CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pytest_modelgate_call_deadline", default=None
)


@contextlib.contextmanager
def call_deadline(deadline_s: float) -> Iterator[float]:
    """One logical call, retries included: attempts sent inside must end ``deadline_s`` from now.

    Yields the deadline (a ``time.perf_counter()`` instant); a nested use keeps the earlier one.
    Without it, each attempt's deadline is ``CallBounds.deadline_s`` after it was sent.
    """
    deadline = time.perf_counter() + deadline_s
    enclosing = _CALL_DEADLINE.get()
    if enclosing is not None:
        deadline = min(deadline, enclosing)
    token = _CALL_DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _CALL_DEADLINE.reset(token)


def current_call_deadline() -> float | None:
    """The deadline of the enclosing :func:`call_deadline` (``time.perf_counter()``), or None."""
    return _CALL_DEADLINE.get()


@dataclass(frozen=True)
class CallBounds:
    """What a measuring transport enforces on every attempt (``client:`` in modelgate.yaml).

    ``deadline_s``: an attempt ends, with a :class:`~pytest_modelgate.errors.CallDeadlineError`,
    once this long has passed since it was sent (or at the deadline of the enclosing
    :func:`call_deadline`, which bounds a call and its retries), however slowly bytes still
    trickle in; an attempt that would start after that deadline is not sent. Every connect and
    read timeout is shortened to the time left, so a silent server is cut at the deadline too,
    and a trickling one at the first byte after it. ``max_response_bytes``: a body (plain or
    streamed, counted on the wire and after decompression) that grows beyond it stops with a
    :class:`~pytest_modelgate.errors.ResponseTooLargeError`; no more than that is buffered.
    ``model`` names the model in those errors. ``None``: no bound.
    """

    deadline_s: float | None = None
    max_response_bytes: int | None = None
    model: str = ""


def is_chat_completions(method: str, path: str) -> bool:
    """Whether a request is one the gate measures: ``POST .../chat/completions``."""
    return method.upper() == "POST" and path.rstrip("/").endswith("/chat/completions")


# --------------------------------------------------------------------------------------------
# The log: numbering and attribution


@dataclass
class _FailedAttempt:
    call_index: int
    attempt: int
    ended_monotonic: float


class CallLog:
    """The attempts one test made on one arm, numbered into logical calls; thread-safe.

    Numbering rule: an attempt whose request (method, URL and body) is identical to an earlier
    attempt that failed, was not retried yet and had ended before this one started, is that
    call's next attempt; anything else starts a new call. This recognises our own retry loop and
    the openai SDK's retries alike, and two identical requests in flight at once stay two calls.
    ``call_index`` follows the order in which attempts finish.
    """

    def __init__(
        self,
        *,
        test_id: str,
        case_id: str,
        arm: Arm,
        model: str,
        repeat: int = 0,
        resolved: ResolvedModel | None = None,
    ) -> None:
        self.test_id = test_id
        self.case_id = case_id
        self.arm: Arm = arm
        self.model = model
        self.repeat = repeat
        self.resolved = resolved
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._failed: dict[str, list[_FailedAttempt]] = {}
        self._next_call = 0
        # Key values to keep out of messages (set by whoever knows them: the llm fixture).
        self.secrets: tuple[str, ...] = ()
        # Things that make this test's data untrustworthy (a call with no recording, say).
        self.problems: list[str] = []
        # What every reply must satisfy (``@pytest.mark.model_contract``), set by the fixture.
        self.contract: ModelContract | None = None
        # Whether each record names its prompt's and reply's language (the judge's language
        # metrics need them). A log nobody judges (the gateway's) turns it off: with no contract
        # either, an attempt is then not checked at all, which is most of what it costs here.
        self.detect_languages = True
        # The bounds measured clients the product builds itself get (measuring_every_client).
        self.bounds: CallBounds | None = None
        # Set by the llm fixture from the extension hooks: the metrics plugins add (worked out
        # on every successful attempt) and the pytest_modelgate_call_recorded hook (None when
        # no plugin implements it, so an unextended run pays nothing for it).
        self.custom_metrics: tuple[CustomMetric, ...] = ()
        self.on_record: Callable[[CallRecord], object] | None = None
        # What those raised, one line each (also in ``problems``): the test fails with them.
        self.hook_errors: list[str] = []

    def translate_error(self, exc: BaseException) -> BaseException | None:
        """A clearer exception to raise instead of ``exc``, or None to keep it.

        vcrpy refusing a call in replay mode becomes a ``MissingRecordingError`` naming the
        model, the cassette and the fix, and is noted as a problem: such a call is not an attempt
        the model made, so it is not recorded as one.
        """
        from pytest_modelgate.recording.use import is_missing_recording, missing_recording_error

        if not is_missing_recording(exc):
            return None
        error = missing_recording_error(exc, model=self.model, secrets=self.secrets)
        with self._lock:
            if str(error) not in self.problems:
                self.problems.append(str(error))
        return error

    def add(self, attempt: Attempt) -> CallRecord:
        """Number ``attempt``, price it and keep it; returns the record (an :data:`AttemptSink`)."""
        price = self.resolved.price if self.resolved is not None else None
        # A failed attempt may carry a partial completion (a cut stream): its usage still costs
        # money, but its text, tool calls and finish reason describe no answer.
        answer = attempt.completion if attempt.ok else None
        usage = attempt.completion.usage if attempt.completion is not None else None
        cost = None
        if price is not None:
            cost = price.cost_usd(usage, at=attempt.billed_at)
        checked = (
            _check(self.contract, attempt.request, answer)
            if self.detect_languages or self.contract is not None
            else {}
        )
        with self._lock:
            call_index, number = self._number(attempt)
            record = CallRecord(
                test_id=self.test_id,
                case_id=self.case_id,
                arm=self.arm,
                model=self.model,
                repeat=self.repeat,
                call_index=call_index,
                attempt=number,
                client=attempt.client,
                endpoint=attempt.endpoint,
                started_at=attempt.started_at,
                latency_ms=attempt.latency_ms,
                ttft_ms=attempt.ttft_ms,
                status=attempt.status,
                error_kind=attempt.error_kind,
                error_message=attempt.error_message,
                usage=usage,
                cost_usd=cost,
                finish_reason=answer.finish_reason if answer is not None else None,
                json_valid=answer.json_valid if answer is not None else None,
                tool_calls=tuple(c.name for c in answer.tool_calls) if answer else (),
                streamed=attempt.streamed,
                timing=attempt.timing,
                **checked,
            )
            if self.custom_metrics and answer is not None:
                record = self._with_custom_metrics(record, attempt, answer)
            self._records.append(record)
        if self.on_record is not None:
            try:
                self.on_record(record)
            except Exception as exc:
                self._hook_failed(f"a pytest_modelgate_call_recorded hook raised {exc!r}", record)
        return record

    def _with_custom_metrics(
        self, record: CallRecord, attempt: Attempt, answer: ParsedCompletion
    ) -> CallRecord:
        """``record`` with the values of the plugins' metrics (see ``CustomMetric``)."""
        from pytest_modelgate.judge.metrics import MeasuredCall

        call = MeasuredCall(record=record, text=answer.text, request=attempt.request)
        values: dict[str, float] = {}
        for metric in self.custom_metrics:
            try:
                value = metric.value_of(call)
            except Exception as exc:
                self._hook_failed(f"metric {metric.name!r}: extract raised {exc!r}", record)
                continue
            if value is not None:
                values[metric.name] = value
        return record.model_copy(update={"extra": values}) if values else record

    def _hook_failed(self, what: str, record: CallRecord) -> None:
        # Fail closed: the call's data is incomplete, so the test fails and the verdict is
        # `error`; the message is scrubbed like every text the gate keeps.
        message = redactor_for(self.secrets).scrub_text(
            f"{what} on call {record.call_index} (attempt {record.attempt}) of model {self.model!r}"
        )
        if message not in self.hook_errors:
            self.hook_errors.append(message)
            self.problems.append(f"{self.test_id}: {message}")

    def _number(self, attempt: Attempt) -> tuple[int, int]:
        pending = self._failed.get(attempt.request_key, [])
        # A retry starts after the failure it retries ended; take the latest such failure.
        earlier = [f for f in pending if f.ended_monotonic <= attempt.started_monotonic]
        if earlier:
            previous = max(earlier, key=lambda f: f.ended_monotonic)
            pending.remove(previous)
            call_index, number = previous.call_index, previous.attempt + 1
        else:
            call_index, number = self._next_call, 1
            self._next_call += 1
        if not attempt.ok:
            self._failed.setdefault(attempt.request_key, []).append(
                _FailedAttempt(call_index, number, attempt.ended_monotonic)
            )
        return call_index, number

    def records(self) -> tuple[CallRecord, ...]:
        """Every record so far, in the order the attempts finished."""
        with self._lock:
            return tuple(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __repr__(self) -> str:
        return (
            f"CallLog(test_id={self.test_id!r}, arm={self.arm!r}, model={self.model!r}, "
            f"records={len(self)})"
        )


def _check(
    contract: ModelContract | None,
    request: Mapping[str, Any] | None,
    answer: ParsedCompletion | None,
) -> dict[str, Any]:
    """The CallRecord fields of the contract checks and languages of one attempt."""
    from pytest_modelgate.calls.contracts import applied_checks, check_reply, prompt_text
    from pytest_modelgate.calls.langdetect import detect_language

    if answer is None:
        return {"prompt_language": detect_language(prompt_text(request)) if request else None}
    check = check_reply(contract, request, answer)
    return {
        "prompt_language": check.prompt_language,
        "reply_language": check.reply_language,
        "checks": applied_checks(contract, check),
        "schema_valid": check.schema_valid,
        "tool_calls_valid": check.tool_calls_valid,
        "language_match": check.language_match,
        "output_tokens_ok": check.output_tokens_ok,
        "violations": check.violations,
    }


# --------------------------------------------------------------------------------------------
# The measuring core, shared by the httpx and httpx2 classes


def _secrets(headers: Any) -> tuple[str, ...]:
    found: list[str] = []
    for name in ("authorization", "api-key", "x-api-key", "x-goog-api-key"):
        value = headers.get(name)
        if not value:
            continue
        scheme, _, token = value.partition(" ")
        found.append(token if scheme.lower() == "bearer" and token else value)
    return tuple(s for s in found if len(s) >= 4)


def _request_key(method: str, url: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), url.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, or None (not JSON, or not an object)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
