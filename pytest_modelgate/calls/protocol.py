"""The OpenAI chat-completions wire format as the providers actually speak it.

Pure functions and small classes, no HTTP library: parse a completion body, assemble an SSE stream
incrementally, normalise the usage block across provider quirks and classify error responses into
:data:`~.records.ErrorKind`. Both the measuring transports and the ``llm`` client
build on this module, so a record and the reply a test sees always agree.

Provider quirks handled here:

* cached prompt tokens: OpenAI ``prompt_tokens_details.cached_tokens``, DeepSeek
  ``prompt_cache_hit_tokens``, Moonshot and the Anthropic compat layer ``usage.cached_tokens``;
* Moonshot streams put usage in ``choices[0].usage`` of the last chunk;
* reasoning arrives as ``reasoning_content`` (DeepSeek, Kimi, GLM), ``reasoning``, or, for MiniMax,
  as a leading ``<think>...</think>`` block inside ``content``;
* errors may arrive as a JSON object, a JSON array (Gemini), plain text, or inside an HTTP 200
  (MiniMax ``base_resp``);
* account problems look like permission or rate-limit errors (403 ``Arrearage``, 403
  ``AccountOverdueError``, 429 ``insufficient_quota``, zai 429 code ``1113``) but must never be
  retried: they are classified ``quota``.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, NamedTuple

from pytest_modelgate.calls.records import ErrorKind, Usage

__all__ = [
    "CompletionFormatError",
    "ErrorInfo",
    "ParsedCompletion",
    "ParsedToolCall",
    "SSEAccumulator",
    "classify_error",
    "embedded_error",
    "is_json_text",
    "looks_like_sse",
    "parse_completion",
    "parse_retry_after",
    "parse_usage",
    "retry_after_from_headers",
    "shorten",
    "split_think",
]

# Error codes that mean "the account is out of money or quota" whatever HTTP status carries them.
_QUOTA_CODES = frozenset(
    {"insufficient_quota", "arrearage", "accountoverdueerror", "1113", "insufficient_balance"}
)
# MiniMax ``base_resp.status_code`` values with a known meaning; any other non-zero code is a
# provider_error. 1008 is "insufficient balance".
_MINIMAX_KINDS: Mapping[int, ErrorKind] = {1002: "rate_limit", 1004: "auth", 1008: "quota"}

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_MESSAGE_LIMIT = 500


class CompletionFormatError(ValueError):
    """A body that is not an OpenAI chat completion (no ``choices``, wrong types)."""


class ParsedToolCall(NamedTuple):
    """One tool call as sent by the model; ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ParsedCompletion:
    """The parts of a chat completion (first choice) the gate and the tests look at."""

    text: str
    reasoning: str | None = None
    tool_calls: tuple[ParsedToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    response_id: str | None = None

    @property
    def json_valid(self) -> bool | None:
        """Whether ``text`` parses as JSON; ``None`` when there is no text at all."""
        return is_json_text(self.text)


class ErrorInfo(NamedTuple):
    """How an error response is classified: kind, provider message and ``Retry-After`` seconds."""

    kind: ErrorKind
    message: str
    retry_after_s: float | None


# --------------------------------------------------------------------------------------------
# Small helpers


def shorten(text: str, limit: int = 200) -> str:
    """``text`` with whitespace runs collapsed, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(limit - 1, 0)] + "…"


def content_text(content: Any, joiner: str = "\n") -> str:
    """The text of a message ``content``: a string, or the text parts of a list of parts.

    A part counts when it is ``{"type": "text", "text": ...}`` (a part without ``type`` is read
    as text too); image, audio, file and refusal parts carry no text of the message. Prompts
    join their parts with a newline; replies pass ``joiner=""``, since a reply's parts are
    pieces of one text (a JSON document may be split across them).
    """
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        return joiner.join(
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def is_json_text(text: str | None) -> bool | None:
    """Whether ``text`` parses as JSON; ``None`` for no text (``None`` or the empty string).

    Whitespace-only content counts as text that is not JSON: DeepSeek's JSON mode sometimes
    returns exactly that, and the gate must see it as a failure.
    """
    if not text:
        return None
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def looks_like_sse(prefix: bytes) -> bool:
    """Whether a body that arrived without a telling content type is a server-sent event stream."""
    return prefix.lstrip().startswith((b"data:", b"event:", b":", b"id:"))


def split_think(text: str) -> tuple[str, str | None]:
    """Split leading ``<think>...</think>`` blocks (MiniMax) off ``text``.

    Returns ``(answer, reasoning)``; ``reasoning`` is ``None`` when there was no block. An
    unterminated block (the reply was cut) is all reasoning. Only *leading* blocks are split so
    an answer that talks about the tag is left alone.
    """
    rest = text
    parts: list[str] = []
    while rest.lstrip().startswith(_THINK_OPEN):
        rest = rest.lstrip()[len(_THINK_OPEN) :]
        end = rest.find(_THINK_CLOSE)
        if end < 0:
            parts.append(rest.strip())
            rest = ""
            break
        parts.append(rest[:end].strip())
        rest = rest[end + len(_THINK_CLOSE) :]
    if not parts:
        return text, None
    return rest.lstrip(), "\n".join(parts)


def _int(value: Any) -> int | None:
    # bool is an int subclass; a provider sending true/false here is not a token count.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --------------------------------------------------------------------------------------------
# Usage and completions


def parse_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalise a provider's ``usage`` object into :class:`Usage`.

    Cached prompt tokens may be reported in several places at once (DeepSeek sends both
    ``prompt_cache_hit_tokens`` and ``prompt_tokens_details.cached_tokens``, Moonshot both
    ``cached_tokens`` and the details); they describe the same tokens, so the largest is taken.
    """
    prompt_details = _mapping(raw.get("prompt_tokens_details"))
    completion_details = _mapping(raw.get("completion_tokens_details"))
    cached_candidates = [
        n
        for n in (
            _int(prompt_details.get("cached_tokens")),
            _int(raw.get("prompt_cache_hit_tokens")),
            _int(raw.get("cached_tokens")),
        )
        if n is not None
    ]
    prompt = _int(raw.get("prompt_tokens"))
    if prompt is None:
        prompt = _int(raw.get("input_tokens"))
    completion = _int(raw.get("completion_tokens"))
    if completion is None:
        completion = _int(raw.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=max(cached_candidates) if cached_candidates else None,
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        total_tokens=_int(raw.get("total_tokens")),
    )


def _arguments_text(value: Any) -> str:
    # Some compat layers send the arguments as an object instead of a JSON string.
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)


def _join_reasoning(*parts: str | None) -> str | None:
    present = [p for p in parts if p]
    return "\n".join(present) if present else None


def parse_completion(body: Mapping[str, Any]) -> ParsedCompletion:
    """Parse a non-streaming chat-completion body (first choice only).

    Raises :class:`CompletionFormatError` when ``body`` has no usable ``choices``.
    """
    if not isinstance(body, Mapping):
        raise CompletionFormatError(f"expected a JSON object, got {type(body).__name__}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise CompletionFormatError("the body has no choices")
    choice = choices[0]
    message = _mapping(choice.get("message"))
    # Content parts are rare in replies; their text parts are kept in order.
    text, think = split_think(content_text(message.get("content"), joiner=""))
    reasoning = _join_reasoning(
        _str(message.get("reasoning_content")) or _str(message.get("reasoning")), think
    )
    tool_calls: list[ParsedToolCall] = []
    for call in message.get("tool_calls") or ():
        if not isinstance(call, Mapping):
            continue
        function = _mapping(call.get("function"))
        tool_calls.append(
            ParsedToolCall(
                id=_str(call.get("id")) or "",
                name=_str(function.get("name")) or "",
                arguments=_arguments_text(function.get("arguments")),
            )
        )
    legacy = message.get("function_call")
    if not tool_calls and isinstance(legacy, Mapping):
        tool_calls.append(
            ParsedToolCall(
                "", _str(legacy.get("name")) or "", _arguments_text(legacy.get("arguments"))
            )
        )
    usage_raw = body.get("usage")
    if not isinstance(usage_raw, Mapping):
        # Moonshot puts usage inside the choice.
        usage_raw = choice.get("usage")
    return ParsedCompletion(
        text=text,
        reasoning=reasoning,
        tool_calls=tuple(tool_calls),
        finish_reason=_str(choice.get("finish_reason")),
        usage=parse_usage(usage_raw) if isinstance(usage_raw, Mapping) else None,
        model=_str(body.get("model")),
        response_id=_str(body.get("id")),
    )


# --------------------------------------------------------------------------------------------
# Server-sent events


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: str = ""


class SSEAccumulator:
    """Assemble a streamed chat completion from raw SSE bytes, fed as they arrive.

    ``feed`` accepts arbitrary byte slices: lines (and UTF-8 characters) split across reads are
    buffered. Comments and keep-alives (``: ping``) are ignored; ``data: [DONE]`` ends the stream;
    a final usage-only chunk with empty ``choices`` is understood. Content, reasoning and
    tool-call deltas (assembled by ``index``) are accumulated for the first choice.

    With ``keep_chunks=True`` every parsed chunk is kept in :attr:`chunks`. ``message_limit`` is
    the length an error event's message is cut to (a caller that scrubs secrets first, then cuts,
    passes a large one).
    """

    def __init__(self, *, keep_chunks: bool = False, message_limit: int = _MESSAGE_LIMIT) -> None:
        self._message_limit = message_limit
        self._buffer = b""
        self._data_lines: list[str] = []
        self._event_name: str | None = None
        self._keep_chunks = keep_chunks
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._tools: list[_ToolCallParts] = []
        self._usage: Mapping[str, Any] | None = None
        self._model: str | None = None
        self._id: str | None = None
        self.chunks: list[dict[str, Any]] = []
        #: ``True`` once a chunk carried content, reasoning or a tool-call delta.
        self.first_token_seen = False
        #: ``True`` once ``data: [DONE]`` was received.
        self.saw_done_marker = False
        #: The last non-null ``finish_reason`` of the first choice.
        self.finish_reason: str | None = None
        #: The first error a chunk reported (``{"error": ...}`` or a MiniMax ``base_resp``).
        self.error: ErrorInfo | None = None
        #: Number of ``data:`` payloads that were not JSON.
        self.malformed = 0
        #: Number of chunks parsed.
        self.chunk_count = 0

    @property
    def done(self) -> bool:
        """Whether the stream reached its end: ``[DONE]`` or a ``finish_reason`` was seen."""
        return self.saw_done_marker or self.finish_reason is not None

    def feed(self, data: bytes) -> None:
        """Consume the next slice of the response body."""
        self._buffer += data
        while True:
            # A lone CR may be the first half of CRLF split across reads: wait for more bytes.
            match = re.search(rb"\r\n|\r(?!$)|\n", self._buffer)
            if match is None:
                return
            line = self._buffer[: match.start()]
            self._buffer = self._buffer[match.end() :]
            self._line(line.decode("utf-8", errors="replace"))

    def close(self) -> None:
        """Flush a final event that was not followed by a blank line (lenient end of stream)."""
        if self._buffer:
            line, self._buffer = self._buffer.rstrip(b"\r"), b""
            self._line(line.decode("utf-8", errors="replace"))
        self._dispatch()

    def _line(self, line: str) -> None:
        if not line:
            self._dispatch()
            return
        if line.startswith(":"):
            return
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data_lines.append(value)
        elif field == "event":
            self._event_name = value

    def _dispatch(self) -> None:
        if not self._data_lines:
            self._event_name = None
            return
        payload = "\n".join(self._data_lines)
        event_name = self._event_name
        self._data_lines = []
        self._event_name = None
        if payload.strip() == "[DONE]":
            self.saw_done_marker = True
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            if event_name == "error" and self.error is None:
                self.error = ErrorInfo(
                    "provider_error", shorten(payload, self._message_limit), None
                )
            self.malformed += 1
            return
        if not isinstance(chunk, dict):
            self.malformed += 1
            return
        self._chunk(chunk, event_name)

    def _chunk(self, chunk: dict[str, Any], event_name: str | None) -> None:
        self.chunk_count += 1
        if self._keep_chunks:
            self.chunks.append(chunk)
        problem = embedded_error(chunk, limit=self._message_limit)
        if problem is None and event_name == "error":
            problem = classify_error(200, chunk, limit=self._message_limit)
        if problem is not None and self.error is None:
            self.error = problem
        self._model = self._model or _str(chunk.get("model"))
        self._id = self._id or _str(chunk.get("id"))
        if isinstance(chunk.get("usage"), Mapping):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            if isinstance(choice.get("usage"), Mapping):
                self._usage = choice["usage"]  # Moonshot
            finish = _str(choice.get("finish_reason"))
            if finish:
                self.finish_reason = finish
            delta = _mapping(choice.get("delta"))
            self._delta(delta)

    def _delta(self, delta: Mapping[str, Any]) -> None:
        content = _str(delta.get("content"))
        reasoning = _str(delta.get("reasoning_content")) or _str(delta.get("reasoning"))
        if content:
            self._content.append(content)
            self.first_token_seen = True
        if reasoning:
            self._reasoning.append(reasoning)
            self.first_token_seen = True
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            return
        for call in calls:
            if not isinstance(call, Mapping):
                continue
            self.first_token_seen = True
            parts = self._tool_parts(call)
            function = _mapping(call.get("function"))
            parts.id = parts.id or _str(call.get("id")) or ""
            # The name comes once (OpenAI) or is repeated in every delta (some compat layers):
            # never concatenate it.
            parts.name = parts.name or _str(function.get("name")) or ""
            args = function.get("arguments")
            if args is not None:
                parts.arguments += _arguments_text(args)

    def _tool_parts(self, call: Mapping[str, Any]) -> _ToolCallParts:
        index = _int(call.get("index"))
        if index is None:
            # No index (some compat layers): a new id starts a new call, otherwise continue.
            call_id = _str(call.get("id"))
            for parts in self._tools:
                if call_id and parts.id == call_id:
                    return parts
            if call_id or not self._tools:
                self._tools.append(_ToolCallParts())
            return self._tools[-1]
        while len(self._tools) <= index:
            self._tools.append(_ToolCallParts())
        return self._tools[index]

    def result(self) -> ParsedCompletion:
        """The completion assembled so far (call after the stream ended for the full reply)."""
        text, think = split_think("".join(self._content))
        return ParsedCompletion(
            text=text,
            reasoning=_join_reasoning("".join(self._reasoning), think),
            tool_calls=tuple(
                ParsedToolCall(p.id, p.name, p.arguments)
                for p in self._tools
                if p.id or p.name or p.arguments
            ),
            finish_reason=self.finish_reason,
            usage=parse_usage(self._usage) if self._usage is not None else None,
            model=self._model,
            response_id=self._id,
        )


# --------------------------------------------------------------------------------------------
# Errors


def parse_retry_after(value: str, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    A date in the past gives ``0.0``; an unparseable value gives ``None``.
    """
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    # Plain dicts are case-sensitive; httpx.Headers is not.
    for key, item in headers.items():
        if key.lower() == name:
            return item
    return None


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` (preferred) or ``Retry-After``."""
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        seconds = parse_retry_after(millis)
        if seconds is not None:
            return seconds / 1000
    value = _header(headers, "retry-after")
    return parse_retry_after(value) if value is not None else None


def _load_body(body: bytes | str | Mapping[str, Any] | list[Any] | None) -> tuple[Any, str]:
    """The decoded JSON of an error body (or ``None``) and its text."""
    if body is None:
        return None, ""
    if isinstance(body, (Mapping, list)):
        return body, ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


def _error_object(data: Any) -> Mapping[str, Any] | None:
    """The provider's error object inside a decoded body, whatever its shape."""
    if isinstance(data, list):
        # Gemini: a JSON array holding one error object.
        for item in data:
            found = _error_object(item)
            if found is not None:
                return found
        return None
    if not isinstance(data, Mapping):
        return None
    error = data.get("error")
    if isinstance(error, Mapping):
        return error
    if isinstance(error, str):
        return {"message": error, **({"code": data["code"]} if "code" in data else {})}
    base = data.get("base_resp")
    if isinstance(base, Mapping) and _int(base.get("status_code")) not in (None, 0):
        return {"code": base.get("status_code"), "message": base.get("status_msg")}
    if any(key in data for key in ("message", "detail", "msg")):
        return data
    return None


def _code(error: Mapping[str, Any], status: int | None) -> str | None:
    """The most specific code in an error object (Gemini repeats the HTTP status as ``code``)."""
    code = error.get("code")
    usable = isinstance(code, (str, int)) and not isinstance(code, bool) and str(code).strip()
    if usable and not (str(code) == str(status) and isinstance(error.get("status"), str)):
        return str(code).strip()
    for key in ("status", "type"):
        value = error.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if code is not None and not isinstance(code, bool):
        return str(code)
    return None


def _message_of(error: Mapping[str, Any]) -> str | None:
    for key in ("message", "detail", "msg", "status_msg"):
        value = error.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if value is not None and not isinstance(value, (Mapping, bool)) and key == "detail":
            return json.dumps(value, ensure_ascii=False)
    return None


def _is_quota(error: Mapping[str, Any] | None, code: str | None) -> bool:
    if error is None:
        return False
    names = {str(error.get(k, "")).strip().lower() for k in ("code", "type", "status")}
    if code is not None:
        names.add(code.lower())
    return bool(names & _QUOTA_CODES)


def _kind_for_status(status: int, quota: bool) -> ErrorKind:
    if quota:
        return "quota"
    if status in (400, 422):
        return "bad_request"
    if status == 401:
        return "auth"
    if status == 402:
        return "quota"
    if status == 403:
        return "permission"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limit"
    if status >= 500:
        return "server_error"
    return "http_error"


def classify_error(
    status: int | None,
    body: bytes | str | Mapping[str, Any] | list[Any] | None,
    headers: Mapping[str, str] | None = None,
    *,
    limit: int = _MESSAGE_LIMIT,
) -> ErrorInfo:
    """Classify a failed response: its :data:`ErrorKind`, the provider's message, Retry-After.

    ``status`` is the HTTP status, or 200/``None`` for an error reported inside a successful
    response (MiniMax ``base_resp``, an ``error`` chunk in a stream). ``body`` may be raw bytes,
    text or already-decoded JSON: an object, an array (Gemini) or nothing at all. The message is
    the provider's own (``code: message``), or the start of a non-JSON body, or the HTTP reason,
    cut to ``limit`` characters (a caller that must scrub secrets first passes a large one).
    """
    data, text = _load_body(body)
    error = _error_object(data)
    code = _code(error, status) if error is not None else None
    provider_message = _message_of(error) if error is not None else None
    if provider_message is not None:
        provider_message = provider_message.strip().rstrip(".")
        message = (
            f"{code}: {provider_message}"
            if code and code.lower() not in provider_message.lower()
            else provider_message
        )
    elif code:
        message = code
    elif text.strip():
        message = text
    elif status is not None and status >= 400:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "error"
    else:
        message = "error response"
    message = shorten(message, limit)
    retry_after = retry_after_from_headers(headers)
    quota = _is_quota(error, code)
    if status is not None and status >= 300:
        return ErrorInfo(_kind_for_status(status, quota), message, retry_after)
    # An error reported inside a 2xx response (or a stream): MiniMax codes carry a meaning.
    if quota:
        return ErrorInfo("quota", message, retry_after)
    if error is not None and code is not None and code.isdigit():
        return ErrorInfo(_MINIMAX_KINDS.get(int(code), "provider_error"), message, retry_after)
    return ErrorInfo("provider_error", message, retry_after)


def embedded_error(body: Any, *, limit: int = _MESSAGE_LIMIT) -> ErrorInfo | None:
    """The error a 2xx JSON body (or stream chunk) reports instead of a completion, if any.

    MiniMax answers HTTP 200 with ``base_resp.status_code`` != 0; other providers occasionally
    send ``{"error": {...}}`` with a 200 or as a stream chunk. ``limit`` as for
    :func:`classify_error`.
    """
    if not isinstance(body, Mapping):
        return None
    base = body.get("base_resp")
    if isinstance(base, Mapping) and _int(base.get("status_code")) not in (None, 0):
        return classify_error(200, body, limit=limit)
    if isinstance(body.get("error"), (Mapping, str)) and not body.get("choices"):
        return classify_error(200, body, limit=limit)
    return None
