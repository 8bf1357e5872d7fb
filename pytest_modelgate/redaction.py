"""Keeping API keys out of everything the gate writes or prints: one rule, every encoding.

:class:`Redactor` replaces each configured secret value by :data:`REDACTED` in text, bytes and
nested data, in every spelling the value takes on its way through HTTP, JSON, Python reprs and
logs (see :meth:`Redactor.forms`). Every text that reaches a file or the terminal goes through
it: cassettes (via :class:`~pytest_modelgate.recording.cassettes.Scrubber`, which adds the vcrpy
hooks), the records file and the verdict, call error messages, failure messages and reports,
and the log records of the HTTP libraries the gate drives (:func:`scrub_library_logs`).

Scrub first, cut after: a text is scrubbed whole before it is shortened, so a key that straddles
the cut cannot leave its prefix behind (:meth:`Redactor.scrub_and_shorten`).

This module never imports pytest; it uses the standard library only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = [
    "DRIVEN_LOGGERS",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Redactor",
    "SecretLogFilter",
    "redactor_for",
    "scrub_library_logs",
]

REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 8

#: The loggers of the libraries the gate drives; their children (``vcr.stubs``,
#: ``httpx._client``...) are covered too.
DRIVEN_LOGGERS: tuple[str, ...] = ("vcr", "httpx", "httpcore", "openai", "httpx2", "httpcore2")

# "Basic <base64 of user:password>": the user part is unknown, so the token is decoded and
# dropped whole when it hides a secret. Compiled once: the pattern does not depend on secrets.
_BASIC_TOKEN = re.compile(rb"(?i)(basic[ \t]+)([A-Za-z0-9+/_-]{4,}={0,2})")
_BASIC_TEXT_TOKEN = re.compile(r"(?i)(basic[ \t]+)([A-Za-z0-9+/_-]{4,}={0,2})")


class Redactor:
    """Replaces every configured secret value, in each of its encoded forms, by :data:`REDACTED`.

    ``secret_values`` are the values of every configured key variable; empty values and values
    shorter than ``min_length`` (after stripping whitespace) are ignored: replacing them would
    mangle unrelated text. All forms are computed once here; scrubbing is then a few substring
    searches per form (no regular expression per call, except for ``Basic`` tokens when the text
    holds the word). Longer forms are replaced first, so a secret containing another is replaced
    whole. Build one with :func:`redactor_for`, which caches them.
    """

    def __init__(
        self, secret_values: Iterable[str], *, min_length: int = MIN_SECRET_LENGTH
    ) -> None:
        values = {
            candidate
            for value in secret_values
            for candidate in (value, value.strip())
            if len(candidate.strip()) >= min_length
        }
        self._values: tuple[str, ...] = tuple(sorted(values, key=lambda v: (-len(v), v)))
        forms = {form for value in values for form in self.forms(value) if form}
        self._texts: tuple[str, ...] = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        # surrogateescape: a value read from the environment may hold undecodable bytes.
        self._bytes: tuple[bytes, ...] = tuple(
            form.encode("utf-8", "surrogateescape") for form in self._texts
        )
        self._value_bytes: tuple[bytes, ...] = tuple(
            value.encode("utf-8", "surrogateescape") for value in self._values
        )
        # The base64 forms: a Basic token hiding a key always holds one of them, so tokens are
        # decoded only once one is found (no extra search on the common path).
        cores = {core for value in values for core in _base64_cores(value)}
        self._core_texts = frozenset(cores)
        self._core_bytes = frozenset(core.encode("ascii") for core in cores)

    @staticmethod
    def forms(value: str) -> set[str]:
        """Every spelling of ``value`` searched for.

        Raw; percent-encoded (``quote`` with and without ``/``, ``quote_plus``, upper- and
        lower-case hex); JSON string escaping (ASCII and not, and escaped twice, as in a JSON
        body quoted inside a JSON error message); Python ``repr`` of the value as ``str`` and as
        ``bytes`` (tracebacks, logged header tuples); base64 (standard and URL-safe alphabets) at
        each of the three byte alignments, so the key is found inside any base64 blob such as
        ``Basic base64(user:key)``: for each alignment, the run of characters that depends on the
        key's bytes alone.
        """
        found = {value}
        for encoded in (quote(value, safe=""), quote(value), quote_plus(value)):
            found.add(encoded)
            found.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded))
        once = json.dumps(value)[1:-1]
        found.update({once, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(once)[1:-1]})
        # Quote style depends on the text around the value: cover both escapings of quotes.
        found.add(repr(value)[1:-1])
        found.add(repr(value + "'\"")[1:-4])
        raw = value.encode("utf-8", "surrogateescape")
        found.add(repr(raw)[2:-1])
        found.add(repr(raw + b"'\"")[2:-4])
        found.update(_base64_cores(value))
        return found

    @property
    def secret_count(self) -> int:
        """How many distinct spellings of secrets are searched for (0: nothing to scrub)."""
        return len(self._texts)

    def __bool__(self) -> bool:
        return bool(self._texts)

    def __repr__(self) -> str:
        # Never the values.
        return f"Redactor({len(self._values)} secret(s), {len(self._texts)} forms)"

    def scrub_text(self, text: str) -> str:
        """``text`` with every secret, in every form, replaced by :data:`REDACTED`."""
        basic_checked = False
        for secret in self._texts:
            if secret in text:
                if not basic_checked and secret in self._core_texts:
                    # Basic tokens first: replacing the core would hide the token's key.
                    basic_checked = True
                    text = _BASIC_TEXT_TOKEN.sub(self._basic_text, text)
                    if secret not in text:
                        continue
                text = text.replace(secret, REDACTED)
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every secret (UTF-8), in every form, replaced by :data:`REDACTED`."""
        placeholder = REDACTED.encode("ascii")
        basic_checked = False
        for secret in self._bytes:
            if secret in data:
                if not basic_checked and secret in self._core_bytes:
                    basic_checked = True
                    data = _BASIC_TOKEN.sub(self._basic_bytes, data)
                    if secret not in data:
                        continue
                data = data.replace(secret, placeholder)
        return data

    def scrub_and_shorten(self, text: str, limit: int) -> str:
        """``text`` scrubbed whole, then cut to ``limit`` characters (never the other way round)."""
        scrubbed = self.scrub_text(text)
        return scrubbed if len(scrubbed) <= limit else scrubbed[: max(limit - 1, 0)] + "…"

    def scrub_value(self, value: Any) -> Any:
        """A copy of ``value`` with secrets replaced in every str and bytes, at any depth.

        Mappings become dicts, lists and tuples keep their type, anything else is returned as is.
        """
        if not self._texts:
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, (bytes, bytearray)):
            return self.scrub_bytes(bytes(value))
        if isinstance(value, Mapping):
            return {self.scrub_value(k): self.scrub_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.scrub_value(item) for item in value)
        return value

    def scrub_fields(self, obj: object) -> None:
        """Scrub, in place, every text in a tree of dataclass instances, lists and tuples.

        For rendered-later objects that must keep their type, such as pytest's failure reprs
        (``ExceptionChainRepr`` and its entries, locals and crash line). Lists are changed in
        place, tuples rebuilt, fields set (also on frozen dataclasses).
        """
        if not self._texts:
            return
        seen: set[int] = set()

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                return self.scrub_text(value)
            if isinstance(value, list):
                value[:] = [walk(item) for item in value]
                return value
            if isinstance(value, tuple):
                items = tuple(walk(item) for item in value)
                return value if items == value else items
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                if id(value) not in seen:
                    seen.add(id(value))
                    for item in dataclasses.fields(value):
                        current = getattr(value, item.name, None)
                        new = walk(current)
                        if new is not current:
                            object.__setattr__(value, item.name, new)
                return value
            return value

        walk(obj)

    def _hides_secret(self, token: bytes) -> bool:
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                decoded = decode(token + b"=" * (-len(token) % 4))
            except (binascii.Error, ValueError):
                continue
            if any(value in decoded for value in self._value_bytes):
                return True
        return False

    def _basic_bytes(self, match: re.Match[bytes]) -> bytes:
        if self._hides_secret(match.group(2)):
            return match.group(1) + REDACTED.encode("ascii")
        return match.group(0)

    def _basic_text(self, match: re.Match[str]) -> str:
        if self._hides_secret(match.group(2).encode("ascii")):
            return match.group(1) + REDACTED
        return match.group(0)


def _base64_cores(value: str) -> set[str]:
    """The base64 of ``value`` at each byte alignment, in both alphabets: for each alignment the
    run of characters that depends on the value's bytes alone (so it is found in any blob)."""
    raw = value.encode("utf-8", "surrogateescape")
    cores = set()
    for offset in range(3):
        padded = b"\0" * offset + raw
        start = (0, 2, 3)[offset]
        end = len(padded) * 8 // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            cores.add(encode(padded).decode("ascii")[start:end])
    return cores


@functools.lru_cache(maxsize=64)
def redactor_for(secrets: tuple[str, ...], *, min_length: int = MIN_SECRET_LENGTH) -> Redactor:
    """The (cached) :class:`Redactor` of ``secrets``: computing the forms happens once per set."""
    return Redactor(secrets, min_length=min_length)


# -- logs ------------------------------------------------------------------------------------------


def _summary(value: object) -> object:
    """A logged argument without raw bodies: vcrpy logs whole response dicts at INFO."""
    if isinstance(value, Mapping) and "body" in value:
        body = value.get("body")
        if isinstance(body, Mapping):
            body = body.get("string")
        size = len(body) if isinstance(body, (bytes, str)) else 0
        status = value.get("status")
        code = status.get("code") if isinstance(status, Mapping) else status
        return f"<response: status {code}, {size} bytes of body not logged>"
    return value


def _message_without_bodies(record: logging.LogRecord) -> str:
    """The record's message with its arguments, response bodies replaced by their size."""
    msg, args = str(record.msg), record.args
    if not args:
        return msg
    attempts: list[Any] = []
    if isinstance(args, Mapping):
        # LogRecord makes a lone mapping argument ``args`` itself: either one value logged with
        # %s (vcrpy's response dict) or named %(key)s arguments.
        attempts = [(_summary(args),), {k: _summary(v) for k, v in args.items()}]
    else:
        attempts = [tuple(_summary(arg) for arg in args)]
    for candidate in attempts:
        try:
            return str(msg % candidate)
        except (TypeError, ValueError, KeyError):
            continue
    return f"{msg} {attempts[-1]!r}"


class SecretLogFilter(logging.Filter):
    """A filter that scrubs secrets from a log record and keeps raw response bodies out of it.

    It formats the record's message with its arguments (bodies replaced by a size), scrubs the
    result and stores it as a plain message without arguments; an exception's traceback text and
    the stack text are formatted and scrubbed the same way. It never drops a record.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub ``record`` in place; always True (the record is kept)."""
        message = _message_without_bodies(record)
        record.msg = self.redactor.scrub_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.scrub_text(record.exc_text)
            # The handler would format the exception again from exc_info only without exc_text.
        if record.stack_info:
            record.stack_info = self.redactor.scrub_text(record.stack_info)
        return True


class _Installed:
    """The active log scrubbings: the log record factory is process-wide."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (filter, logger names, their "name." prefixes), innermost last.
        self.entries: list[tuple[SecretLogFilter, tuple[str, ...], tuple[str, ...]]] = []
        self.factory: Callable[..., logging.LogRecord] | None = None
        self.previous: Callable[..., logging.LogRecord] | None = None


_INSTALLED = _Installed()


def _scrubbing_factory(
    state: _Installed, previous: Callable[..., logging.LogRecord]
) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        name = record.name
        for log_filter, names, dotted in state.entries:
            if name in names or name.startswith(dotted):
                log_filter.filter(record)
        return record

    return factory


def scrub_library_logs(
    redactor: Redactor, names: Iterable[str] = DRIVEN_LOGGERS
) -> Callable[[], None]:
    """Scrub every log record of the loggers ``names`` and their children; returns the undo.

    A filter on a logger applies only to records made at that very logger, not to those of its
    children (``vcr.stubs``, ``httpx._client``, ``openai._base_client``...), and a filter on a
    handler misses the handlers added later (pytest adds its capturing and live-logging handlers
    per test phase, a project may add its own). So the filter runs where every record is made:
    the log record factory, for records whose logger is one of ``names`` or below one. Installs
    stack; the undo removes this one and, after the last one, puts the previous factory back
    (unless someone replaced the factory since: then ours stays in their chain, doing nothing).
    """
    chosen = tuple(names)
    entry = (SecretLogFilter(redactor), chosen, tuple(f"{name}." for name in chosen))
    state = _INSTALLED
    with state.lock:
        # Also when someone replaced the factory since ours went in: wrap theirs (a record
        # scrubbed twice is the same record).
        if state.factory is None or logging.getLogRecordFactory() is not state.factory:
            state.previous = logging.getLogRecordFactory()
            state.factory = _scrubbing_factory(state, state.previous)
            logging.setLogRecordFactory(state.factory)
        state.entries = [*state.entries, entry]

    def undo() -> None:
        with state.lock:
            # A new list, never changed in place: the factory may be iterating the old one.
            state.entries = [e for e in state.entries if e is not entry]
            if state.entries or state.factory is None:
                return
            if logging.getLogRecordFactory() is state.factory and state.previous is not None:
                logging.setLogRecordFactory(state.previous)
                state.factory = state.previous = None

    return undo
