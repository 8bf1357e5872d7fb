"""Cassette files on vcrpy: names, request matching, secret scrubbing and a readable YAML format.

This module is the storage layer of recorded calls; it knows nothing about pytest, arms or modes.
:func:`make_vcr` returns a ``vcr.VCR`` wired with everything below; the caller opens one cassette
per test and model with ``make_vcr(...).use_cassette(cassette_path(...))``.

Names (:func:`cassette_path`)
    ``<test module dir>/cassettes/<module stem>/<case>--<model>[--rep<N>].yaml``. The case is the
    test name with its parameters and without the arm, so a model's recordings serve whichever arm
    it plays. Each part is made safe for file systems by the rule documented on
    :func:`cassette_path`.

Matching
    Method, scheme, host, port, path, query (as parsed pairs, order ignored) and the body via the
    ``modelgate_body`` matcher: JSON bodies are compared by value with key order ignored (``1`` and
    ``1.0`` or ``true`` stay different), anything else byte for byte. Headers are never matched.

Headers
    Request headers are stored from an allow-list (:data:`KEPT_REQUEST_HEADERS`, only
    ``content-type``): whatever a client adds (``authorization``, ``user-agent``, every
    ``x-stainless-*``, ``accept-encoding``, a vendor's own key header...) is dropped, so a header
    nobody thought of cannot leak. Response headers are kept (clients read ``retry-after``, rate
    limits and the content type) except :data:`DROPPED_RESPONSE_HEADERS`.

Secrets (:class:`Scrubber`)
    Before anything is stored: the request headers above are dropped, query parameters named in
    :data:`SECRET_QUERY_PARAMETERS` are removed, and every configured secret value, in each of its
    encoded forms (raw, percent-encoded, JSON-escaped, Python repr, base64 at any alignment and
    ``Basic`` tokens that decode to it: :mod:`pytest_modelgate.redaction`), is replaced by
    :data:`REDACTED` in the request URL, request body, response headers, response body and
    cassette metadata. Values shorter than
    :data:`MIN_SECRET_LENGTH` are ignored: replacing them would mangle unrelated text. vcrpy applies
    the request hook to the live request before matching too, so a scrubbed recording still
    matches the unscrubbed request that produced it.

File format (in :mod:`~pytest_modelgate.recording.cassettefile`; :class:`CassetteError`)
    vcrpy's cassette (``version: 1``, ``interactions``) plus a ``modelgate_cassette`` format mark,
    written with libyaml when available, UTF-8, atomically; bodies are text when they decode as
    UTF-8 and multi-line bodies (SSE streams) are block literals, one event per line. Every
    interaction is checked on load against what vcrpy and httpx can play (text header names and
    values, an HTTP status code from 100 to 599, an ASCII reason phrase, a text body for chat
    completions), so a hand-edited cassette fails naming the file and interaction instead of
    raising ``TypeError`` inside vcrpy, where a product that catches exceptions would hide it.
    YAML aliases are refused before they are expanded (our writer never emits them).

vcrpy is imported only inside the functions that need it; PyYAML is already a dependency of the
configuration loader.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import json
import os
import re
import string
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pytest_modelgate.recording.cassettefile import (
    _SERIALIZER,
    FORMAT_KEY,
    FORMAT_VERSION,
    CassetteError,
    _CassetteFormatError,
    _read_text,
    _timing_problem,
    read_cassette,
)
from pytest_modelgate.redaction import MIN_SECRET_LENGTH, REDACTED, Redactor

if TYPE_CHECKING:
    import vcr

__all__ = [
    "BODY_MATCHER_NAME",
    "CASSETTE_DIR",
    "DROPPED_RESPONSE_HEADERS",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "KEPT_REQUEST_HEADERS",
    "MATCH_ON",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_QUERY_PARAMETERS",
    "SERIALIZER_NAME",
    "CassetteError",
    "RecordMode",
    "Scrubber",
    "cassette_owner",
    "cassette_path",
    "explain_mismatch",
    "make_vcr",
    "modelgate_body",
    "read_cassette",
    "scrubber_for",
]

RecordMode = Literal["none", "new_episodes", "all"]
_RECORD_MODES: tuple[RecordMode, ...] = ("none", "new_episodes", "all")

CASSETTE_DIR = "cassettes"
SERIALIZER_NAME = "modelgate_yaml"
BODY_MATCHER_NAME = "modelgate_body"
MATCH_ON: tuple[str, ...] = ("method", "scheme", "host", "port", "path", "query", BODY_MATCHER_NAME)


#: The only request headers written to a cassette; every other request header is dropped.
KEPT_REQUEST_HEADERS = frozenset({"content-type"})
#: Response headers never written: credentials, cookies and account identifiers.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "x-auth-token",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
        "cookie",
        "set-cookie",
        "set-cookie2",
        "openai-organization",
        "openai-project",
    }
)
#: Query parameters removed from recorded URLs (names compared case-insensitively).
SECRET_QUERY_PARAMETERS = frozenset(
    {"key", "api_key", "api-key", "apikey", "x-api-key", "access_token", "token"}
)

# File-name parts: these characters stay, everything else is percent-encoded (UTF-8 bytes).
_SAFE_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "-_.,+=@[]() ")
_MAX_CASE_NAME = 150
_MAX_MODEL_NAME = 80
_HASH_CHARS = 10

_MAX_DIFF_LINES = 12
_MAX_DIFF_LINE = 160


# -- names -----------------------------------------------------------------------------------------


# Each name is computed at collection (for the inventory) and again by the test's fixture.
@functools.lru_cache(maxsize=65536)
def cassette_path(
    test_path: Path, case_id_name: str, model: str, *, repeat: int = 0, repeats: int = 1
) -> Path:
    """The cassette file of one test case, model and repeat.

    ``test_path`` is the test module's file; ``case_id_name`` the case id without the arm, either
    the test's name (``test_triage[ticket-3]``, ``TestDesk::test_triage[ticket-3]``) or a whole
    node id (``tests/test_triage.py::test_triage[ticket-3]``), whose module part is dropped.
    ``repeat`` is 0-based; repeat 0 has no suffix, repeat ``i > 0`` gets ``--rep{i + 1}``, so the
    recordings of a ``K = 1`` run serve as the first repeat when ``K`` grows. Example::

        tests/cassettes/test_triage/test_triage[ticket-3]--qwen-max.yaml

    Sanitising rule, applied to the module stem, the case name (class separators ``::`` become
    ``.``) and the model separately: ASCII letters, digits, space and ``-_.,+=@[]()`` stay; any
    other character (``/ \\ : % ~``, control characters, non-ASCII...) becomes ``%XX`` per UTF-8
    byte, as does a leading ``.``. The rule is injective, so distinct names never share a file. A
    part longer than 150 characters (models: 80) after encoding is cut and ends in ``~`` plus the
    first 10 hex digits of the SHA-256 of the original text; encoded parts never contain ``~``.
    Letter case is kept: names that differ only in case share a file on case-insensitive file
    systems (macOS and Windows by default).
    """
    if repeats < 1 or not 0 <= repeat < repeats:
        raise ValueError(f"repeat must be in [0, {repeats}), got {repeat} (repeats={repeats})")
    if not case_id_name:
        raise ValueError("the case name must not be empty")
    if not model:
        raise ValueError("the model name must not be empty")
    name = f"{_name_part(_case_name(case_id_name), _MAX_CASE_NAME)}--"
    name += _name_part(model, _MAX_MODEL_NAME)
    if repeat:
        name += f"--rep{repeat + 1}"
    folder = test_path.parent / CASSETTE_DIR / _name_part(test_path.stem, _MAX_CASE_NAME)
    return folder / f"{name}.yaml"


def cassette_owner(file_name: str, models: Iterable[str]) -> tuple[str, int] | None:
    """The model (one of ``models``) and 0-based repeat a cassette file name belongs to, if any.

    The inverse of :func:`cassette_path` for the model and repeat parts:
    ``test_a[p]--qwen-max--rep2.yaml`` -> ``("qwen-max", 1)``. When several models match (``b``
    and ``a--b``), the longest name wins. ``None`` for a name of none of ``models``.
    """
    stem = file_name.removesuffix(".yaml")
    found: tuple[str, int] | None = None
    for model in models:
        if not model:
            continue
        encoded = _name_part(model, _MAX_MODEL_NAME)
        match = re.fullmatch(rf".+--{re.escape(encoded)}(?:--rep([1-9][0-9]*))?", stem)
        if match is None or (found is not None and len(found[0]) >= len(model)):
            continue
        number = int(match.group(1)) if match.group(1) else 1
        if number == 1 and match.group(1):
            continue  # repeat 0 never has a suffix: "--rep1" is not ours
        found = (model, number - 1)
    return found


def _case_name(case_id_name: str) -> str:
    """``tests/t.py::TestX::test_a[p]`` -> ``TestX.test_a[p]``; parameters are left as they are."""
    head, bracket, params = case_id_name.partition("[")
    parts = head.split("::")
    if len(parts) > 1 and ("/" in parts[0] or parts[0].endswith(".py")):
        parts = parts[1:]
    return ".".join(parts) + bracket + params


def _name_part(text: str, limit: int) -> str:
    encoded = "".join(
        char if char in _SAFE_NAME_CHARS and not (index == 0 and char == ".") else _percent(char)
        for index, char in enumerate(text)
    )
    if len(encoded) <= limit:
        return encoded
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    head = encoded[: limit - _HASH_CHARS - 1]
    # Never cut a %XX escape in half: the shortened name stays readable as escapes.
    escape = head.find("%", len(head) - 2)
    if escape != -1:
        head = head[:escape]
    return f"{head}~{digest}"


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


# -- matching --------------------------------------------------------------------------------------


def modelgate_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: equal bodies, JSON compared by value (key order ignored), else as bytes.

    Raises ``AssertionError`` with a short diff, as vcrpy matchers do. vcrpy passes the request
    being made first and the recorded one second.
    """
    new, recorded = _body_bytes(r1.body), _body_bytes(r2.body)
    if new == recorded:
        return
    new_json, recorded_json = _canonical_json(new), _canonical_json(recorded)
    if new_json is not None and new_json == recorded_json:
        return
    raise AssertionError("\n".join(_body_diff(recorded, new)))


def _body_bytes(body: object) -> bytes:
    if body is None:
        return b""
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):  # vcrpy hands file-like bodies out as fresh BytesIO objects
        return _body_bytes(body.read())
    if isinstance(body, Iterable):
        return b"".join(_body_bytes(chunk) for chunk in body)
    return str(body).encode("utf-8")


@functools.lru_cache(maxsize=1024)
def _canonical_json(body: bytes) -> str | None:
    """Compact JSON with sorted keys, or None when ``body`` is not JSON.

    Cached: replay compares the same recorded bodies against every request of a test.
    """
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _pretty_lines(body: bytes) -> list[str]:
    """Lines to diff: indented JSON with sorted keys, or the text itself."""
    canonical = _canonical_json(body)
    if canonical is not None:
        pretty = json.dumps(json.loads(canonical), sort_keys=True, indent=2, ensure_ascii=False)
        return pretty.splitlines()
    return body.decode("utf-8", "replace").splitlines()


def _body_diff(recorded: bytes, new: bytes) -> list[str]:
    """A unified diff of two bodies, at most a dozen lines, long lines clipped at the change."""
    diff = list(
        difflib.unified_diff(
            _pretty_lines(recorded),
            _pretty_lines(new),
            "recorded",
            "this request",
            n=1,
            lineterm="",
        )
    )[2:]  # the ---/+++ file lines say nothing the caller does not already know
    if not diff:
        return ["the bodies differ only in bytes that do not show as text"]
    lines: list[str] = []
    for index, line in enumerate(diff[:_MAX_DIFF_LINES]):
        partner = _partner_line(diff, index)
        lines.append(_clip(line, partner))
    if len(diff) > _MAX_DIFF_LINES:
        lines.append(f"... ({len(diff) - _MAX_DIFF_LINES} more diff lines)")
    return lines


def _partner_line(diff: list[str], index: int) -> str | None:
    """The other side of a one-line change (``-x`` followed by ``+y``), if ``index`` is one."""
    line = diff[index]
    if line.startswith("-") and index + 1 < len(diff) and diff[index + 1].startswith("+"):
        return diff[index + 1]
    if line.startswith("+") and index > 0 and diff[index - 1].startswith("-"):
        return diff[index - 1]
    return None


def _first_difference(a: str, b: str) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def _clip(line: str, partner: str | None) -> str:
    if len(line) <= _MAX_DIFF_LINE:
        return line
    # Centre the window on the first differing character, where the change is.
    focus = _first_difference(line[1:], partner[1:]) + 1 if partner else 0
    start = max(1, min(focus - _MAX_DIFF_LINE // 3, len(line) - _MAX_DIFF_LINE))
    window = line[start : start + _MAX_DIFF_LINE]
    prefix = line[0] + ("..." if start > 1 else "")
    suffix = "..." if start + _MAX_DIFF_LINE < len(line) else ""
    return prefix + window + suffix


# -- secrets ---------------------------------------------------------------------------------------


class Scrubber(Redactor):
    """Removes credentials and configured secret values from what a cassette stores.

    A :class:`~pytest_modelgate.redaction.Redactor` (the one rule for every text the gate writes:
    each secret in every encoded form, see :meth:`Redactor.forms`) plus the vcrpy hooks and the
    URL rule of cassettes. ``secret_values`` are the values of every configured key variable;
    values shorter than :data:`MIN_SECRET_LENGTH` are ignored.

    Give :meth:`before_record_request` and :meth:`before_record_response` to vcrpy (``make_vcr``
    does); :meth:`scrub_text` is for messages that quote a live request, such as vcrpy's
    ``CannotOverwriteExistingCassetteException``, before they are shown or written.
    """

    def scrub_url(self, url: str) -> str:
        """``url`` without :data:`SECRET_QUERY_PARAMETERS` and with secret values replaced."""
        parts = urlsplit(url)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            kept = [(k, v) for k, v in pairs if k.lower() not in SECRET_QUERY_PARAMETERS]
            # Re-encode only when something was removed: the URL otherwise stays byte-identical.
            if len(kept) != len(pairs):
                url = urlunsplit(parts._replace(query=urlencode(kept)))
        return self.scrub_text(url)

    def before_record_request(self, request: Any) -> Any:
        """vcrpy hook: keep only :data:`KEPT_REQUEST_HEADERS`, scrub the URL and the body.

        Changes and returns the ``vcr.request.Request`` it is given (vcrpy passes a copy). vcrpy
        also runs it on a copy of every live request before matching, so both sides of a match
        are scrubbed alike.
        """
        request.headers = {
            name: self.scrub_value(value)
            for name, value in request.headers.items()
            if name.lower() in KEPT_REQUEST_HEADERS
        }
        request.uri = self.scrub_url(request.uri)
        body = request.body
        if not self._texts or body is None:
            return request
        if isinstance(body, (bytes, bytearray)):
            request.body = self.scrub_bytes(bytes(body))
        elif isinstance(body, str):
            request.body = self.scrub_text(body)
        elif hasattr(body, "read"):
            # vcrpy keeps a file body as bytes and hands out a new BytesIO over them.
            request.body = self.scrub_bytes(_body_bytes(body))
        else:
            # An iterator body stays an iterator (of one chunk) for vcrpy.
            request.body = [self.scrub_bytes(_body_bytes(body))]
        return request

    def before_record_response(self, response: dict[str, Any]) -> dict[str, Any]:
        """vcrpy hook: drop :data:`DROPPED_RESPONSE_HEADERS`, replace secrets everywhere.

        Returns a new dict; ``response`` is vcrpy's serialised response (``status``, ``headers``
        mapping names to lists of values, ``body.string``), plus whatever earlier hooks added.
        """
        headers = response.get("headers")
        if isinstance(headers, Mapping):
            response = {
                **response,
                "headers": {
                    name: values
                    for name, values in headers.items()
                    if str(name).lower() not in DROPPED_RESPONSE_HEADERS
                },
            }
        scrubbed: dict[str, Any] = self.scrub_value(response)
        body, new_body = response.get("body"), scrubbed.get("body")
        if isinstance(new_body, dict) and body != new_body:
            _fix_content_length(scrubbed, new_body.get("string"))
        return scrubbed


@functools.lru_cache(maxsize=16)
def scrubber_for(secrets: tuple[str, ...]) -> Scrubber:
    """The (cached) :class:`Scrubber` of ``secrets``: its forms are computed once per set."""
    return Scrubber(secrets)


def _fix_content_length(response: dict[str, Any], body: object) -> None:
    """Make ``content-length`` agree with a body whose length changed by scrubbing."""
    headers = response.get("headers")
    if not isinstance(headers, dict) or not isinstance(body, (bytes, str)):
        return
    size = len(body.encode("utf-8") if isinstance(body, str) else body)
    for name in headers:
        if str(name).lower() == "content-length":
            headers[name] = [str(size)]


# -- file format -----------------------------------------------------------------------------------


class _Persister:
    """vcrpy persister: strict UTF-8 loading with :class:`CassetteError`, atomic saving.

    vcrpy's own persister logs a warning and treats an unreadable cassette as empty, which would
    turn a corrupt recording into a confusing "not recorded" or a silent overwrite.
    """

    def __init__(self, scrubber: Scrubber, *, require_timing: bool = False) -> None:
        self._scrubber = scrubber
        self._require_timing = require_timing

    def load_cassette(
        self, cassette_path: str | os.PathLike[str], serializer: Any
    ) -> tuple[Any, ...]:
        from vcr.persisters.filesystem import CassetteNotFoundError
        from vcr.serialize import deserialize

        path = Path(cassette_path)
        try:
            text = _read_text(path)
        except FileNotFoundError:
            raise CassetteNotFoundError() from None
        try:
            loaded: tuple[Any, ...] = deserialize(text, serializer)
        except _CassetteFormatError as exc:
            raise CassetteError(path, exc.reason) from exc
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            # A shape the checks above missed: still the file's fault, so still name the file.
            raise CassetteError(path, f"malformed cassette ({type(exc).__name__}: {exc})") from exc
        if self._require_timing:
            pairs = zip(loaded[0], loaded[1], strict=True)
            for number, (request, response) in enumerate(pairs, start=1):
                problem = _timing_problem(request, response)
                if problem:
                    raise CassetteError(path, f"interaction {number}: {problem}")
        return loaded

    def save_cassette(
        self, cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        from vcr.serialize import serialize

        if cassette_dict.get("metadata"):
            # Metadata bypasses the record hooks; scrub it here.
            cassette_dict = {
                **cassette_dict,
                "metadata": self._scrubber.scrub_value(cassette_dict["metadata"]),
            }
        text: str = serialize(cassette_dict, serializer)
        path = Path(cassette_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Temporary file + os.replace: a reader (or a crash) never sees half a cassette.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


# -- factory ---------------------------------------------------------------------------------------


# vcrpy's patcher groups and the module each needs; vcrpy tries to import it on every cassette.
_PATCHER_MODULES = {
    "requests": "requests",
    "boto3": "botocore",
    "urllib3": "urllib3",
    "httplib2": "httplib2",
    "tornado": "tornado",
    "aiohttp": "aiohttp",
    "httpx": "httpx",
    "httpx2": "httpx2",
}


@functools.cache
def absent_patchers() -> tuple[str, ...]:
    """vcrpy patcher groups whose library is not installed: nothing can call through them.

    vcrpy re-tries the import of every optional library each time a cassette is entered, and a
    failed import is not cached: it scans ``sys.path`` again (about a third of a replayed call's
    cost). Skipping the groups of absent libraries changes nothing else: a library that is
    installed is patched whether or not it was imported yet. Computed once per process.
    """
    import importlib.util

    absent = []
    for group, module in _PATCHER_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(group)
    return tuple(absent)


# Optional transports vcrpy's httpx patcher group imports on every cassette it enters (vcrpy
# 9.4), whether or not they are installed.
_OPTIONAL_HTTPX_MODULES = ("httpx_curl_cffi", "pyreqwest")


@functools.cache
def _absent_optional_modules() -> tuple[str, ...]:
    """The :data:`_OPTIONAL_HTTPX_MODULES` that are not installed (computed once per process)."""
    import importlib.util

    absent = []
    for module in _OPTIONAL_HTTPX_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            absent.append(module)
    return tuple(absent)


@contextlib.contextmanager
def absent_imports_fail_fast() -> Iterator[None]:
    """While entering a cassette, make vcrpy's imports of absent optional transports fail at once.

    A failed import is not cached: each one scans ``sys.path`` again, and vcrpy's httpx group
    tries two of them per cassette (a sixth of a replayed test's cost). ``None`` in
    ``sys.modules`` makes ``import`` raise ``ModuleNotFoundError`` without a search, which is what
    the search would end in for a module that is not installed. Only modules found absent are
    marked, only for the duration, and a mark is removed only if it is still ours.
    """
    marked = [name for name in _absent_optional_modules() if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in marked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def make_vcr(
    *,
    record_mode: RecordMode,
    secrets: Iterable[str],
    extra_before_record_response: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    skip_absent_libraries: bool = False,
    require_timing: bool = False,
) -> vcr.VCR:
    """A ``vcr.VCR`` for modelgate cassettes: our serializer, matcher, persister and scrubbing.

    ``record_mode``: ``"none"`` replays only (a request without a recording raises vcrpy's
    ``CannotOverwriteExistingCassetteException``), ``"new_episodes"`` replays what is recorded and
    records the rest, ``"all"`` records every request and replaces the matching recordings.
    ``secrets``: the values of every configured key variable (see :class:`Scrubber`).
    ``extra_before_record_response`` runs on each response before scrubbing, so that it sees what
    the server sent and what it adds is scrubbed too. Note that vcrpy runs the record hooks again
    on every interaction it loads from a cassette, so hooks must be idempotent.
    Compressed response bodies are stored decompressed. ``skip_absent_libraries`` tells vcrpy (9.4
    and later) not to look for HTTP libraries that are not installed (see :func:`absent_patchers`).
    ``require_timing`` refuses (with :class:`CassetteError`) a cassette in which a chat-completions
    interaction lacks a valid recorded timing (:mod:`~pytest_modelgate.recording.timing`): what
    the gate replays must report the latency it was recorded with.
    """
    import vcr as vcrpy

    if record_mode not in _RECORD_MODES:
        raise ValueError(f"record_mode must be one of {', '.join(_RECORD_MODES)}: {record_mode!r}")
    scrubber = scrubber_for(tuple(secrets))
    response_hooks: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
    if extra_before_record_response is not None:
        response_hooks.append(extra_before_record_response)
    response_hooks.append(scrubber.before_record_response)
    options: dict[str, Any] = {}
    if skip_absent_libraries and hasattr(vcrpy.VCR(), "skip_patchers"):
        options["skip_patchers"] = absent_patchers()
    recorder = vcrpy.VCR(
        record_mode=record_mode,
        serializer=SERIALIZER_NAME,
        match_on=MATCH_ON,
        before_record_request=scrubber.before_record_request,
        before_record_response=response_hooks,
        decode_compressed_response=True,
        **options,
    )
    recorder.register_serializer(SERIALIZER_NAME, _SERIALIZER)
    recorder.register_matcher(BODY_MATCHER_NAME, modelgate_body)
    recorder.register_persister(_Persister(scrubber, require_timing=require_timing))
    return recorder


# -- explaining a miss -----------------------------------------------------------------------------


def explain_mismatch(
    cassette_path: Path,
    request_body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
    secrets: Iterable[str] = (),
) -> str:
    """Why a request found no recording: a short diff against the closest recorded request body.

    Compares with the recorded requests of the same ``method`` and ``url`` (scheme, host, port,
    path and query; either left out means any) and diffs the body against the most similar one,
    as indented JSON with sorted keys. ``secrets`` are scrubbed from the request before comparing,
    as they were from the recording, and so never appear in the text. Raises
    :class:`CassetteError` for an unreadable cassette.
    """
    scrubber = scrubber_for(tuple(secrets))
    try:
        data = read_cassette(cassette_path)
    except FileNotFoundError:
        return f"{cassette_path}: no such cassette"
    wanted = _endpoint(scrubber.scrub_url(url)) if url is not None else None
    what = " ".join(part for part in (method, url and scrubber.scrub_url(url)) if part)
    candidates: list[tuple[int, bytes]] = []
    others: list[str] = []
    for number, interaction in enumerate(data["interactions"], start=1):
        request = interaction["request"]
        same_method = method is None or str(request["method"]).upper() == method.upper()
        if same_method and (wanted is None or _endpoint(request["uri"]) == wanted):
            candidates.append((number, _body_bytes(request["body"])))
        else:
            others.append(f"{request['method']} {request['uri']}")
    if not candidates:
        if not others:
            return f"{cassette_path}: the cassette holds no recorded requests"
        listed = ", ".join(dict.fromkeys(others))
        return f"{cassette_path}: no recorded request to {what or 'this URL'} (recorded: {listed})"
    new = scrubber.scrub_bytes(request_body)
    new_lines = "\n".join(_pretty_lines(new))
    number, recorded = max(
        candidates,
        key=lambda candidate: difflib.SequenceMatcher(
            None, "\n".join(_pretty_lines(candidate[1])), new_lines, autojunk=False
        ).ratio(),
    )
    if _same_body(new, recorded):
        return (
            f"{cassette_path}: interaction {number} has the same request body; it was probably "
            "played already (the test makes this call more often than when it was recorded)"
        )
    lines = _body_diff(recorded, new)
    header = f"{cassette_path}: the request body differs from recorded interaction {number}"
    return "\n".join([f"{header}:", *(f"  {line}" for line in lines)])


def _same_body(a: bytes, b: bytes) -> bool:
    if a == b:
        return True
    canonical = _canonical_json(a)
    return canonical is not None and canonical == _canonical_json(b)


def _endpoint(url: str) -> tuple[str, str, int | None, str, list[tuple[str, str]]]:
    """What vcrpy's method-less URL matchers compare: scheme, host, port, path and query pairs."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return (
        parts.scheme,
        parts.hostname or "",
        port,
        parts.path or "/",
        sorted(parse_qsl(parts.query)),
    )
