"""The ``llm`` object workflow tests call: one model on one arm, measured attempt by attempt.

``LLM.chat`` sends an OpenAI-compatible chat-completions request with httpx, retries what is worth
retrying and returns a :class:`Reply`. ``LLM.openai()`` hands out an ``openai.OpenAI`` client whose
HTTP goes through the same measuring layer, for code under test that already uses the SDK. Every
HTTP attempt of either path lands in the test's :class:`~pytest_modelgate.calls.transport.CallLog`.

httpx, httpx2 and openai are imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_modelgate.calls.protocol import SSEAccumulator, looks_like_sse, shorten
from pytest_modelgate.calls.records import RETRYABLE_ERROR_KINDS, Arm, CallRecord, Usage
from pytest_modelgate.calls.transport import (
    ATTEMPT_EXTENSION,
    AttemptHandle,
    CallBounds,
    CallLog,
    call_deadline,
    current_call_deadline,
    measuring_httpx2_transport,
    measuring_transport,
)
from pytest_modelgate.errors import CallDeadlineError, ModelAPIError, ReplyFormatError

if TYPE_CHECKING:
    import httpx
    import httpx2
    import openai

    from pytest_modelgate.calls.endpoints import ResolvedModel

__all__ = ["LLM", "Reply", "ToolCall"]

_QUOTE_LIMIT = 200
_USER_AGENT = "pytest-modelgate"


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model asked for.

    ``arguments_text`` is the raw JSON text the model produced; :attr:`arguments` parses it.
    """

    id: str
    name: str
    arguments_text: str

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict; :class:`ReplyFormatError` quoting them if not a JSON object.

        Empty arguments (some providers send ``""`` for a tool without parameters) are ``{}``.
        """
        if not self.arguments_text.strip():
            return {}
        try:
            value = json.loads(self.arguments_text)
        except ValueError as exc:
            raise ReplyFormatError(
                f"tool call {self.name!r} has arguments that are not valid JSON ({exc}): "
                f"{shorten(self.arguments_text, _QUOTE_LIMIT)!r}"
            ) from None
        if not isinstance(value, dict):
            raise ReplyFormatError(
                f"tool call {self.name!r} has arguments that are not a JSON object: "
                f"{shorten(self.arguments_text, _QUOTE_LIMIT)!r}"
            )
        return value


@dataclass(frozen=True)
class Reply:
    """What one ``llm.chat`` call returned, with what it cost to get it.

    ``raw`` is the provider's response JSON for a plain call; for ``stream=True`` it is the list of
    parsed chunks in arrival order (``[DONE]`` excluded), exactly as the provider sent them.
    ``latency_ms`` runs from sending the request to the last byte of the reply; ``ttft_ms``
    (streams only) to the first chunk that carried content, reasoning or a tool-call delta. Both,
    like ``cost_usd`` and ``usage``, describe the successful attempt; ``attempts`` counts all.
    """

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    cost_usd: float | None = None
    raw: Any = field(default=None, repr=False)
    reasoning: str | None = field(default=None, repr=False)
    attempts: int = 1
    model: str = ""
    record: CallRecord | None = field(default=None, repr=False)

    def json(self) -> Any:
        """``text`` parsed as JSON; raises :class:`ReplyFormatError` quoting the text if it is not.

        Markdown code fences are *not* stripped: a fenced answer where JSON was asked for is the
        kind of regression the gate exists to catch.
        """
        if not self.text.strip():
            detail = f", {len(self.tool_calls)} tool call(s)" if self.tool_calls else ""
            raise ReplyFormatError(
                f"{self.model}: the reply has no text to parse as JSON "
                f"(finish_reason={self.finish_reason!r}{detail}; text={self.text!r})"
            )
        try:
            return json.loads(self.text)
        except ValueError as exc:
            raise ReplyFormatError(
                f"{self.model}: the reply is not valid JSON ({exc}): "
                f"{shorten(self.text, _QUOTE_LIMIT)!r}"
            ) from None


class LLM:
    """One model on one arm of the gate: the object behind the ``llm`` fixture.

    ``model`` is the name the user typed (``qwen-max``), ``arm`` is ``"stable"`` or
    ``"candidate"``, ``base_url`` the OpenAI-compatible endpoint, ``mode`` how calls are made
    (``"replay"``, ``"record"``, ``"rerecord"`` or ``"live"``; a test may skip a live-only check
    when replaying). Retries: rate limits (429, with
    ``Retry-After`` honoured up to ``retry_after_cap_s``), 5xx, connection errors, timeouts and cut
    streams are retried up to ``max_retries`` times with exponential backoff and jitter
    (``backoff_base_s`` · 2^n, also capped at ``retry_after_cap_s``); anything else raises
    :class:`~pytest_modelgate.errors.ModelAPIError` at once. ``timeout_s`` applies to connecting
    and to each read; ``deadline_s`` to the whole logical call, of ``chat`` and of the openai SDK
    alike: every attempt, body and retry wait included (a retry that could not start before it
    is not made, and the deadline error is not an httpx one, so the SDK does not retry it); see
    :class:`~pytest_modelgate.calls.transport.CallBounds`. A body beyond ``max_response_bytes`` ends
    the call. ``sleep`` is how the client waits between attempts
    (tests inject a fake).
    """

    def __init__(
        self,
        *,
        model: ResolvedModel,
        arm: Arm,
        api_key: str | None,
        log: CallLog,
        max_retries: int = 2,
        timeout_s: float = 60.0,
        deadline_s: float = 300.0,
        max_response_bytes: int = 16 * 1024 * 1024,
        retry_after_cap_s: float = 30.0,
        backoff_base_s: float = 0.5,
        sleep: Callable[[float], object] = time.sleep,
        mode: str = "live",
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s}")
        if not (math.isfinite(deadline_s) and deadline_s > 0):
            raise ValueError(f"deadline_s must be a finite number > 0, got {deadline_s}")
        if max_response_bytes < 1:
            raise ValueError(f"max_response_bytes must be >= 1, got {max_response_bytes}")
        if not all(math.isfinite(v) and v >= 0 for v in (retry_after_cap_s, backoff_base_s)):
            raise ValueError("retry_after_cap_s and backoff_base_s must be finite and >= 0")
        self.model: str = model.name
        self.arm: Arm = arm
        self.base_url: str = model.base_url
        self.mode = mode
        self.resolved: ResolvedModel = model
        self.log = log
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_response_bytes = max_response_bytes
        self.bounds = CallBounds(
            deadline_s=deadline_s, max_response_bytes=max_response_bytes, model=model.name
        )
        self.retry_after_cap_s = retry_after_cap_s
        self.backoff_base_s = backoff_base_s
        self._api_key = api_key
        self._sleep = sleep
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._openai: Any = None
        self._pinned_openai: Any = None
        # The measured httpx2 client of the gateway's routed SDK requests (forward_sdk_request).
        self._forward_http: Any = None
        self._fallbacks: list[str] = []
        self._scores: list[tuple[str, float]] = []

    def __repr__(self) -> str:
        # Never the key.
        return f"LLM(model={self.model!r}, arm={self.arm!r}, base_url={self.base_url!r})"

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------
    # chat

    @property
    def chat_url(self) -> str:
        """The URL ``chat`` posts to: ``{base_url}/chat/completions``."""
        return self.base_url.rstrip("/") + "/chat/completions"

    def chat(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Reply:
        """Send one chat completion and return the reply, retrying transient failures.

        ``params`` go into the request body unchanged (``temperature``, ``tools``,
        ``tool_choice``, ``response_format``, ``max_tokens``, ``stream``...). With
        ``stream=True`` the stream is read to the end (the reply is complete when this returns)
        and ``stream_options={"include_usage": True}`` is added unless given, so usage is
        measured. ``model`` cannot be passed: the arm decides it.
        """
        if "model" in params:
            raise TypeError("llm.chat() takes no 'model': the arm decides which model is called")
        body: dict[str, Any] = {
            "model": self.resolved.model_id,
            "messages": list(messages),
            **params,
        }
        if params.get("stream") and "stream_options" not in params:
            body["stream_options"] = {"include_usage": True}
        # Serialised once so every retry sends identical bytes (how the CallLog recognises it).
        content = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self._send(content)

    def _client(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._http is None:
                headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
                if self._api_key:
                    headers["Authorization"] = f"Bearer {self._api_key}"
                self._http = httpx.Client(
                    transport=measuring_transport(
                        httpx.HTTPTransport(verify=_ssl_context("httpx")),
                        self.log.add,
                        client="modelgate",
                        translate_error=self.log.translate_error,
                        bounds=self.bounds,
                        secrets=self.log.secrets,
                    ),
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout_s),
                )
            return self._http

    def _send(self, content: bytes) -> Reply:
        # One deadline for the logical call: every attempt, body and retry wait (CallBounds).
        with call_deadline(self.deadline_s) as deadline:
            return self._attempts(content, deadline)

    def _attempts(self, content: bytes, deadline: float) -> Reply:
        import httpx

        http = self._client()
        attempts = 0
        while True:
            attempts += 1
            handle = AttemptHandle()
            request = http.build_request(
                "POST",
                self.chat_url,
                content=content,
                headers={"Content-Type": "application/json"},
                extensions={ATTEMPT_EXTENSION: handle},
            )
            raw_body: bytes | None = None
            content_type = ""
            failure: httpx.TransportError | None = None
            try:
                response = http.send(request, stream=True)
                try:
                    content_type = response.headers.get("content-type", "")
                    raw_body = response.read()
                finally:
                    response.close()
            except httpx.TransportError as exc:
                failure = exc
            except ModelAPIError as exc:
                # The transport's bounds (deadline, size) end the call: never retried.
                raise type(exc)(
                    self.model,
                    exc.status,
                    exc.error_kind,
                    exc.provider_message,
                    attempts,
                    exc.retryable,
                ) from None
            record, attempt = handle.record, handle.attempt
            if record is None or attempt is None:  # pragma: no cover - the transport always reports
                raise RuntimeError("the measuring transport did not report the attempt")
            if record.error_kind is None and raw_body is not None:
                return self._reply(record, attempt.completion, raw_body, content_type, attempts)
            # The raw error body may quote the key: keep it out of this frame's locals, which
            # --showlocals prints with the traceback (the record's message is scrubbed).
            raw_body = None
            kind = record.error_kind or "invalid_response"
            retryable = kind in RETRYABLE_ERROR_KINDS
            if not retryable or attempts > self.max_retries:
                raise ModelAPIError(
                    self.model,
                    record.status,
                    kind,
                    record.error_message or kind,
                    attempts,
                    retryable,
                ) from failure
            delay = self._delay(attempts, attempt.retry_after_s)
            if time.perf_counter() + delay >= deadline:
                raise self._no_retry_error(record, attempts) from failure
            self._sleep(delay)

    def _no_retry_error(self, record: CallRecord, attempts: int) -> CallDeadlineError:
        """The error of a call whose next retry could not start before its deadline."""
        kind = record.error_kind or "invalid_response"
        return CallDeadlineError(
            self.model,
            record.status,
            kind,
            f"{record.error_message or kind}; not retried: the next attempt could not start "
            f"within client.deadline_s={self.deadline_s:g} s",
            attempts,
            True,
        )

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.retry_after_cap_s)
        step = self.backoff_base_s * 2 ** (attempt - 1)
        # "Equal jitter": at least half the step, so retries never bunch up at zero.
        delay: float = min(step / 2 + random.uniform(0, step / 2), self.retry_after_cap_s)
        return delay

    def _reply(
        self,
        record: CallRecord,
        completion: Any,
        raw_body: bytes,
        content_type: str,
        attempts: int,
    ) -> Reply:
        raw: Any
        if "event-stream" in content_type.lower() or (
            "json" not in content_type.lower() and looks_like_sse(raw_body[:16])
        ):
            accumulator = SSEAccumulator(keep_chunks=True)
            accumulator.feed(raw_body)
            accumulator.close()
            raw = accumulator.chunks
        else:
            raw = json.loads(raw_body)
        text = completion.text if completion is not None else ""
        return Reply(
            text=text,
            tool_calls=tuple(
                ToolCall(call.id, call.name, call.arguments)
                for call in (completion.tool_calls if completion is not None else ())
            ),
            finish_reason=record.finish_reason,
            usage=record.usage or Usage(),
            latency_ms=record.latency_ms or 0.0,
            ttft_ms=record.ttft_ms,
            cost_usd=record.cost_usd,
            raw=raw,
            reasoning=completion.reasoning if completion is not None else None,
            attempts=attempts,
            model=self.model,
            record=record,
        )

    # ---------------------------------------------------------------------------------------
    # the openai SDK

    def openai(self, *, pin_model: bool = False) -> openai.OpenAI:
        """An ``openai.OpenAI`` client for this arm whose every HTTP attempt is recorded.

        The SDK's own retries (``max_retries`` of this ``llm``) are recorded attempt by attempt.
        The same client is returned on every call; :meth:`close` closes it. With
        ``pin_model=True`` (the gateway's routes) every request is sent to this arm's model
        whatever ``model=`` the caller passed.
        """
        try:
            import openai
        except ImportError as exc:
            raise ImportError(
                "llm.openai() needs the openai package: pip install pytest-modelgate[openai]"
            ) from exc

        with self._lock:
            cached = self._pinned_openai if pin_model else self._openai
            if cached is None:
                http_client = self._measured_httpx2()
                client_class = _gate_openai(
                    openai.OpenAI,
                    self,
                    wait=self.mode != "replay",
                    model_id=self.resolved.model_id if pin_model else None,
                )
                cached = client_class(
                    base_url=self.base_url,
                    api_key=self._api_key or "not-needed",
                    http_client=http_client,
                    max_retries=self.max_retries,
                    timeout=self.timeout_s,
                )
                if pin_model:
                    self._pinned_openai = cached
                else:
                    self._openai = cached
            client: openai.OpenAI = cached
            return client

    def _measured_httpx2(self) -> httpx2.Client:
        """An httpx2 client (the openai SDK's library) whose attempts this arm's log records."""
        import httpx2

        return httpx2.Client(
            transport=measuring_httpx2_transport(
                httpx2.HTTPTransport(verify=_ssl_context("httpx2")),
                self.log.add,
                client="openai",
                translate_error=self.log.translate_error,
                bounds=self.bounds,
                secrets=self.log.secrets,
            ),
            timeout=self.timeout_s,
            follow_redirects=True,
        )

    def forward_sdk_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send an openai SDK request made for another base URL to this arm's model.

        The gateway's routed SDK client (``Gateway.openai``) builds requests against a
        placeholder URL; this sends one to this model's URL with its key and its model id in the
        body, through a measured transport (recorded, bounded, scrubbed like ``llm.openai()``'s).
        The response is returned unread (a stream stays a stream).
        """

        with self._lock:
            if self._forward_http is None:
                self._forward_http = self._measured_httpx2()
            http = self._forward_http
        body = request.read()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if isinstance(data, dict):
            data["model"] = self.resolved.model_id
            body = json.dumps(data).encode("utf-8")
        path = request.url.path
        suffix = path[path.index("/chat/") :] if "/chat/" in path else path
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("host", "authorization", "content-length")
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        forwarded = http.build_request(
            request.method,
            self.base_url.rstrip("/") + suffix,
            headers=headers,
            content=body,
            extensions=dict(request.extensions),
        )
        response: httpx2.Response = http.send(forwarded, stream=True)
        return response

    # ---------------------------------------------------------------------------------------
    # fallbacks and lifetime

    def note_fallback(self, reason: str) -> None:
        """Record that the workflow fell back (to a default answer, another path...) and why.

        Fallbacks are reported per arm: a candidate that falls back more often is a regression
        even when the tests still pass.
        """
        with self._lock:
            self._fallbacks.append(reason)

    def score(self, name: str, value: float) -> None:
        """Record a numeric quality score for this case, e.g. ``llm.score("faithfulness", 0.82)``.

        Scores are compared pairwise between the arms like the other metrics (the mean per
        case when a test scores a name more than once); ``gate: score_max_drop`` gates them.
        """
        if not isinstance(name, str) or not name.strip() or ":" in name:
            raise ValueError(
                f"llm.score(): name must be a non-empty string without ':', got {name!r}"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"llm.score({name!r}, ...): value must be a finite number, got {value!r}"
            )
        with self._lock:
            self._scores.append((name.strip(), float(value)))

    @property
    def scores(self) -> tuple[tuple[str, float], ...]:
        """The scores given to :meth:`score`, in order."""
        with self._lock:
            return tuple(self._scores)

    @property
    def fallbacks(self) -> tuple[str, ...]:
        """The reasons given to :meth:`note_fallback`, in order."""
        with self._lock:
            return tuple(self._fallbacks)

    def close(self) -> None:
        """Close the HTTP clients; responses left unread are recorded as cut."""
        with self._lock:
            http, sdks = self._http, (self._openai, self._pinned_openai)
            forward = self._forward_http
            self._http = self._openai = self._pinned_openai = self._forward_http = None
        if http is not None:
            http.close()
        if forward is not None:
            forward.close()
        for sdk in sdks:
            if sdk is not None:
                sdk.close()


def _gate_openai(
    base: type[openai.OpenAI], llm: LLM, *, wait: bool, model_id: str | None = None
) -> type[openai.OpenAI]:
    """An ``openai.OpenAI`` whose calls keep ``llm``'s deadline, retries included.

    ``request`` (the SDK's retry loop) runs inside one :func:`call_deadline`, so the SDK's retries
    share the call's deadline as ``llm.chat``'s do. Its retry wait (a private method, hence the
    guards) is skipped in replay (``wait=False``: a recorded 429/5xx is retried at once, as
    ``llm.chat`` does, recorded latency kept) and refused when it would pass the deadline. A
    future SDK without these methods still gets a deadline per attempt from the transport.
    With ``model_id`` the body's ``model`` is replaced by it (a gateway route decides the model).
    """
    deadline_s = llm.deadline_s

    class GateOpenAI(base):  # type: ignore[valid-type, misc]
        def request(self, *args: Any, **kwargs: Any) -> Any:
            if model_id is not None:
                options = kwargs.get("options", args[1] if len(args) > 1 else None)
                body = getattr(options, "json_data", None)
                if isinstance(body, dict) and "model" in body:
                    options.json_data = {**body, "model": model_id}  # type: ignore[union-attr]
            with call_deadline(deadline_s):
                return super().request(*args, **kwargs)

        def _sleep_for_retry(self, **kwargs: Any) -> None:
            if not wait:
                return None
            wait_s = _sdk_retry_wait(self, kwargs)
            deadline = current_call_deadline()
            records = llm.log.records()
            if (
                wait_s is not None
                and deadline is not None
                and time.perf_counter() + wait_s >= deadline
                and records
            ):
                # The failed attempt the SDK would retry is the latest record.
                raise llm._no_retry_error(records[-1], records[-1].attempt)
            return super()._sleep_for_retry(**kwargs)  # type: ignore[no-any-return]

    if not hasattr(base, "_sleep_for_retry"):
        del GateOpenAI._sleep_for_retry
    return GateOpenAI


def _sdk_retry_wait(client: Any, kwargs: dict[str, Any]) -> float | None:
    """How long the SDK is about to wait before a retry, or ``None`` if it cannot be told."""
    calculate = getattr(client, "_calculate_retry_timeout", None)
    try:
        response = kwargs.get("response")
        remaining = kwargs["max_retries"] - kwargs["retries_taken"]
        headers = response.headers if response is not None else None
        wait: float = calculate(remaining, kwargs["options"], headers)  # type: ignore[misc]
    except Exception:
        return None
    return wait


@functools.cache
def _ssl_context(library: str) -> ssl.SSLContext:
    """One TLS context per process and HTTP library, shared by every test's clients.

    Building one loads the CA bundle (about 20 ms), which each test's fresh transport would
    otherwise pay even in replay, where no connection is made: most of a replayed call's cost.
    An SSLContext is safe to share once configured. Built as httpx builds its default, so
    SSL_CERT_FILE / SSL_CERT_DIR are honoured.
    """
    module = importlib.import_module(library)
    context: ssl.SSLContext = module.create_ssl_context()
    return context
