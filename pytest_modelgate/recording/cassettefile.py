"""The cassette file: our YAML format, its reading and its validation (no vcrpy here).

A cassette is vcrpy's document (``version: 1``, ``interactions``) plus the ``modelgate_cassette``
format mark, written with libyaml when available: UTF-8, bodies as text when they decode, SSE
streams as block literals. :func:`read_cassette` loads one and checks every interaction against
what vcrpy and httpx can play, raising :class:`CassetteError` naming the file and the
interaction; YAML aliases are refused before they are expanded. The vcrpy glue (names, matching,
scrubbing, the persister) is :mod:`pytest_modelgate.recording.cassettes`, which re-exports these.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from pytest_modelgate.config.yamlfile import yaml_error_location, yaml_error_problem
from pytest_modelgate.errors import ModelgateError

if TYPE_CHECKING:
    pass

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "CassetteError",
    "read_cassette",
]

_HEADER_COMMENT = (
    "# pytest-modelgate cassette: recorded model calls, replayed offline.\n"
    "# Credentials and configured secret values were removed before writing.\n"
)

#: The top-level key that marks a file as ours, and the format version this module reads and writes.
FORMAT_KEY = "modelgate_cassette"
FORMAT_VERSION = 1
# vcrpy's own cassette format version (``vcr.serialize.CASSETTE_FORMAT_VERSION``).
_VCR_FORMAT_VERSION = 1


class CassetteError(ModelgateError):
    """A cassette file that cannot be used: not UTF-8, not YAML, not ours or malformed.

    ``path`` is the file, ``reason`` what is wrong with it; the message joins both.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[CassetteError], tuple[str, str]]:
        return (type(self), (str(self.path), self.reason))


# libyaml is several times faster; the pure-Python classes write and read the same documents.
_BaseSafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_BaseSafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CassetteDumper(_BaseSafeDumper):  # type: ignore[misc, valid-type]
    """Safe dumper that writes multi-line strings (SSE streams) as block literals."""


# Line breaks other than "\n" do not survive a block literal (PyYAML's emitter mangles NEL).
_OTHER_LINE_BREAKS = frozenset("\r\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    if not _OTHER_LINE_BREAKS.isdisjoint(data):
        # Only double quotes escape them; PyYAML may pick a style that folds them otherwise.
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        # The emitter itself falls back to a quoted style when a literal cannot hold the text
        # exactly (trailing spaces, control characters), so the round trip stays exact.
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_str(data)


_CassetteDumper.add_representer(str, _represent_str)


class _CassetteFormatError(ValueError):
    """Raised by the serializer; the persister, which knows the path, makes a CassetteError."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _YamlSerializer:
    """The ``modelgate_yaml`` vcrpy serializer: the cassette dict to YAML text and back."""

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        data = {FORMAT_KEY: FORMAT_VERSION, **cassette_dict}
        text = yaml.dump(
            data,
            Dumper=_CassetteDumper,
            allow_unicode=True,
            sort_keys=False,
            # Long JSON bodies stay on one line: easier to read, grep and diff.
            width=1_000_000,
        )
        return _HEADER_COMMENT + text

    @staticmethod
    def deserialize(text: str) -> dict[str, Any]:
        try:
            data = _load_without_aliases(text)
        except yaml.YAMLError as exc:
            where = yaml_error_location(exc).lstrip(":")
            at = f" at line {where}" if where else ""
            raise _CassetteFormatError(
                f"not a valid YAML file{at}: {yaml_error_problem(exc)}"
            ) from exc
        _check_cassette(data)
        checked: dict[str, Any] = data
        return checked


_SERIALIZER = _YamlSerializer()


def _load_without_aliases(text: str) -> Any:
    """The YAML document in ``text``, refusing aliases before anything is built from them.

    Safe: a (C)SafeLoader builds only plain data. Our writer (and vcrpy's) never emits anchors
    or aliases, and a document of nested aliases (a "billion laughs") is tiny on disk but grows
    exponentially in whatever walks or copies it. Composing keeps an alias as a second reference
    to the anchored node, so the composed graph stays as small as the text; it is checked for a
    node reached twice before any Python object is constructed.
    """
    loader = _BaseSafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        line = _aliased_line(node)
        if line is None:
            return loader.construct_document(node)
    finally:
        loader.dispose()
    # Raised here, not in the walk: a traceback renderer (pytest's) shows the arguments of every
    # frame, and the repr of an aliased node expands it.
    raise _CassetteFormatError(
        f"uses a YAML alias (the node anchored at line {line} is referred to again); "
        "cassettes never contain aliases, and expanding them can take unbounded time "
        "and memory, so the file is refused unread"
    )


def _aliased_line(root: yaml.Node) -> int | str | None:
    """The line of the first node reached twice in the composed graph (an alias), or None."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            return node.start_mark.line + 1 if node.start_mark is not None else "?"
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return None


def _check_cassette(data: object) -> None:
    """Raise ``_CassetteFormatError`` unless ``data`` is a cassette of our format and version."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a YAML {type(data).__name__}"
        raise _CassetteFormatError(f"not a cassette: the document is {kind}, not a mapping")
    if FORMAT_KEY not in data:
        if "interactions" in data:
            raise _CassetteFormatError(
                f"a cassette written by another tool (no {FORMAT_KEY!r} mark); "
                "pytest-modelgate reads only its own cassettes, whose secrets it has scrubbed"
            )
        raise _CassetteFormatError("not a cassette: YAML without an 'interactions' list")
    version = data[FORMAT_KEY]
    if version != FORMAT_VERSION:
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            raise _CassetteFormatError(
                f"cassette format {version} was written by a newer pytest-modelgate; "
                f"this version reads format {FORMAT_VERSION}"
            )
        raise _CassetteFormatError(f"unknown cassette format {version!r}")
    if data.get("version") != _VCR_FORMAT_VERSION:
        raise _CassetteFormatError(
            f"unsupported vcrpy cassette version {data.get('version')!r} "
            f"(expected {_VCR_FORMAT_VERSION})"
        )
    interactions = data.get("interactions")
    if not isinstance(interactions, list):
        raise _CassetteFormatError("not a cassette: 'interactions' is missing or not a list")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _CassetteFormatError("'metadata' is not a mapping")
    for number, interaction in enumerate(interactions, start=1):
        problem = _interaction_problem(interaction)
        if problem:
            raise _CassetteFormatError(f"interaction {number}: {problem}")


_REQUEST_FIELDS = frozenset({"method", "uri", "body", "headers"})


def _interaction_problem(interaction: object) -> str | None:
    if not isinstance(interaction, dict):
        return "not a mapping"
    request, response = interaction.get("request"), interaction.get("response")
    if not isinstance(request, dict):
        return "'request' is missing or not a mapping"
    # vcrpy builds the request with Request(**fields): any other field would be a TypeError.
    unknown = set(request) - _REQUEST_FIELDS
    if unknown:
        return f"request has unknown fields: {', '.join(sorted(map(str, unknown)))}"
    for key, kind in (("method", str), ("uri", str), ("headers", dict)):
        if not isinstance(request.get(key), kind):
            return f"request.{key} is missing or not a {kind.__name__}"
    if "body" not in request or not isinstance(request["body"], (str, bytes, type(None))):
        return "request.body is missing or not text"
    problem = _headers_problem(request["headers"], "request.headers", lists_only=False)
    if problem:
        return problem
    if not isinstance(response, dict):
        return "'response' is missing or not a mapping"
    status, headers, body = response.get("status"), response.get("headers"), response.get("body")
    if (
        not isinstance(status, dict)
        or not isinstance(status.get("code"), int)
        or isinstance(status.get("code"), bool)
        or not isinstance(status.get("message"), (str, type(None)))
    ):
        return "response.status is not a mapping with a numeric code and a text message"
    code, message = status["code"], status["message"]
    if not _MIN_STATUS <= code <= _MAX_STATUS:
        return f"response.status.code {code} is not an HTTP status ({_MIN_STATUS}-{_MAX_STATUS})"
    if message is not None and not message.isascii():
        # vcrpy hands the reason phrase to httpx encoded as ASCII.
        return f"response.status.message {_shorten_repr(message)} is not ASCII text"
    if not isinstance(headers, dict):
        return "response.headers is missing or not a mapping of lists"
    problem = _headers_problem(headers, "response.headers", lists_only=True)
    if problem:
        return problem
    if not isinstance(body, dict) or not isinstance(body.get("string"), (str, bytes)):
        return "response.body.string is missing or not text"
    if isinstance(body["string"], bytes) and _is_chat_call(request):
        # Chat completions are JSON or an SSE stream, text that our writer stores as text.
        return "response.body.string is binary (!!binary), not the text of a chat completion"
    return None


_MIN_STATUS, _MAX_STATUS = 100, 599
_SHOWN_VALUE = 60


def _shorten_repr(value: object) -> str:
    """``repr(value)``, cut to a length a message can quote."""
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else f"{text[: _SHOWN_VALUE - 3]}..."


def _headers_problem(headers: dict[Any, Any], where: str, *, lists_only: bool) -> str | None:
    """Why ``headers`` cannot be replayed: names are text, values lists of text (or text)."""
    for name, values in headers.items():
        if not isinstance(name, str):
            return f"{where} has a header name that is not text: {_shorten_repr(name)}"
        if isinstance(values, str) and not lists_only:
            continue
        if not isinstance(values, list):
            return f"{where}.{name} is not a list of values: {_shorten_repr(values)}"
        for value in values:
            if not isinstance(value, str):
                return f"{where}.{name} has a value that is not text: {_shorten_repr(value)}"
    return None


def _is_chat_call(request: dict[str, Any]) -> bool:
    """Whether a recorded request is one the gate measures: ``POST .../chat/completions``."""
    path = urlsplit(str(request.get("uri", ""))).path
    return str(request.get("method", "")).upper() == "POST" and path.rstrip("/").endswith(
        "/chat/completions"
    )


def _timing_problem(request: Any, response: Any) -> str | None:
    """Why a loaded chat-completions interaction has no usable recorded timing, if it has not.

    Without it a replay would report the replay's own clock (well under a millisecond) as the
    call's latency, and a slow model would look fast.
    """
    from pytest_modelgate.recording.timing import TIMING_HEADER, RecordedTiming

    if not _is_chat_call({"method": request.method, "uri": request.uri}):
        return None
    headers = response.get("headers") or {}
    values = [v for name, v in headers.items() if str(name).lower() == TIMING_HEADER]
    if not values or not values[0]:
        return f"the response has no {TIMING_HEADER} header, so its recorded latency is unknown"
    if len(values) > 1 or len(values[0]) > 1:
        return f"the response has more than one {TIMING_HEADER} header"
    try:
        RecordedTiming.from_header(values[0][0])
    except ValueError as exc:
        return f"unusable recorded latency: {exc}"
    return None


def _read_text(path: Path) -> str:
    """The file's text; FileNotFoundError if it is missing, CassetteError if unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except IsADirectoryError as exc:
        raise CassetteError(path, "is a directory, not a cassette file") from exc
    except OSError as exc:
        raise CassetteError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CassetteError(path, f"not UTF-8 text, the file is corrupt ({exc.reason})") from exc
    # vcrpy treats an empty file as missing and records over it; we never write one (writes are
    # atomic), so an empty cassette is damage to report, not a recording to redo silently.
    if not text.strip():
        raise CassetteError(path, "the file is empty")
    return text


def read_cassette(path: Path) -> dict[str, Any]:
    """The validated content of a cassette file: ``interactions`` (and ``metadata`` if any).

    Bodies are as stored (text, or bytes for binary ones). Raises ``FileNotFoundError`` when the
    file does not exist and :class:`CassetteError` when it is not a readable cassette of ours.
    """
    text = _read_text(path)
    try:
        return _SERIALIZER.deserialize(text)
    except _CassetteFormatError as exc:
        raise CassetteError(path, exc.reason) from exc
