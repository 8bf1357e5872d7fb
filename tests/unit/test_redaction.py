"""The one scrubbing rule: every encoded form of a key, scrub before cut, and the log filter."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import httpx
import pytest
from loopback import ScriptedServer, Step, sse_events

from pytest_modelgate import redaction
from pytest_modelgate.calls.protocol import classify_error
from pytest_modelgate.calls.records import CallRecord
from pytest_modelgate.calls.transport import CallLog, measuring_transport
from pytest_modelgate.redaction import (
    REDACTED,
    Redactor,
    SecretLogFilter,
    redactor_for,
    scrub_library_logs,
)

KEY = 'sk-test/abc+def=ghi"jk\\lmn-0123456789'


def forms_of(key: str) -> dict[str, str]:
    raw = key.encode()
    return {
        "raw": key,
        "quote": quote(key, safe=""),
        "quote-lower": quote(key, safe="").lower(),
        "quote-slash": quote(key),
        "quote_plus": quote_plus(key),
        "json": json.dumps(key)[1:-1],
        "json-twice": json.dumps(json.dumps(key)[1:-1])[1:-1],
        "repr": repr(key)[1:-1],
        "bytes-repr": repr(raw)[2:-1],
        "base64": base64.b64encode(raw).decode(),
        "base64-urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "basic": base64.b64encode(b"someone:" + raw).decode(),
        "basic-1": base64.b64encode(b"ab:" + raw).decode(),
        "basic-2": base64.b64encode(b"a:" + raw).decode(),
        "base64-in-blob": base64.b64encode(b'{"k": "' + raw + b'"}').decode(),
    }


def pieces(key: str, size: int = 10) -> list[str]:
    return [key[i : i + size] for i in range(len(key) - size + 1)]


@pytest.mark.parametrize("form", list(forms_of(KEY)))
def test_every_encoded_form_is_scrubbed(form: str) -> None:
    redactor = Redactor([KEY])
    encoded = forms_of(KEY)[form]
    text = f"before {encoded} after"

    scrubbed = redactor.scrub_text(text)
    scrubbed_bytes = redactor.scrub_bytes(text.encode())

    assert REDACTED in scrubbed
    assert scrubbed.startswith("before ")
    assert scrubbed_bytes == scrubbed.encode()
    for other in forms_of(KEY).values():
        assert other not in scrubbed
    # What a base64 blob keeps of the key is at most the characters that mix it with its
    # neighbours, never a readable piece.
    assert not any(piece in scrubbed for piece in pieces(KEY))


def test_basic_tokens_are_dropped_whole_when_they_hide_a_key() -> None:
    redactor = Redactor([KEY])
    token = base64.b64encode(f"api:{KEY}".encode()).decode()
    other = base64.b64encode(b"api:not-a-secret-at-all").decode()

    assert (
        redactor.scrub_text(f"Authorization: Basic {token}") == f"Authorization: Basic {REDACTED}"
    )
    assert redactor.scrub_bytes(f"basic {token}".encode()) == f"basic {REDACTED}".encode()
    assert redactor.scrub_text(f"Basic {other}") == f"Basic {other}"
    assert redactor.scrub_text("basic information") == "basic information"


def test_scrub_and_shorten_scrubs_before_cutting() -> None:
    redactor = Redactor([KEY])
    text = "." * 290 + KEY + " rest"

    cut = redactor.scrub_and_shorten(text, 300)

    assert len(cut) == 300
    assert not any(piece in cut for piece in pieces(KEY, 6))
    assert cut.startswith("." * 290 + "<redac")


def test_no_secret_no_change_and_short_values_are_ignored() -> None:
    empty = Redactor(["", "  short "])
    assert not empty
    assert empty.scrub_text("short text") == "short text"
    assert empty.scrub_value({"a": ["short"]}) == {"a": ["short"]}
    assert "short" not in repr(Redactor(["short", KEY]))
    assert KEY not in repr(Redactor([KEY]))


def test_scrub_value_keeps_the_structure() -> None:
    redactor = Redactor([KEY])
    value = {
        "calls": [{"error_message": f"bad key {KEY}", "n": 1}],
        KEY: (KEY, b"x" + KEY.encode()),
    }

    scrubbed = redactor.scrub_value(value)

    assert scrubbed == {
        "calls": [{"error_message": f"bad key {REDACTED}", "n": 1}],
        REDACTED: (REDACTED, b"x" + REDACTED.encode()),
    }


def test_redactors_are_cached_per_set_of_secrets() -> None:
    assert redactor_for((KEY,)) is redactor_for((KEY,))
    assert redactor_for((KEY,)) is not redactor_for((KEY, "another-secret"))


# -- the log filter --------------------------------------------------------------------------------


def test_filter_scrubs_arguments_and_removes_response_bodies() -> None:
    log_filter = SecretLogFilter(Redactor([KEY]))
    response = {"status": {"code": 200}, "headers": {}, "body": {"string": b'{"k": "x"}' * 10}}
    record = logging.LogRecord(
        "vcr.cassette", logging.INFO, __file__, 1, "Appending %s and %s", (KEY, response), None
    )

    assert log_filter.filter(record) is True

    assert record.args is None
    assert record.getMessage() == (
        f"Appending {REDACTED} and <response: status 200, 100 bytes of body not logged>"
    )


def test_child_loggers_are_scrubbed_in_caplog(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    undo = scrub_library_logs(Redactor([KEY]))
    try:
        # Records made at children of the driven loggers (where the libraries log).
        logging.getLogger("httpx._client").info(
            'HTTP Request: POST %s "200"', f"http://h/?key={KEY}"
        )
        logging.getLogger("vcr.stubs").info("Playing %r", {"body": {"string": KEY}, "status": 1})
        logging.getLogger("httpcore.http11").debug("headers=%r", [(b"x-echo", KEY.encode())])
        logging.getLogger("openai._base_client").debug("raw %s", quote(KEY, safe=""))
        try:
            raise ValueError(f"boom {KEY}")
        except ValueError:
            logging.getLogger("openai").exception("failed")
        logging.getLogger("myapp").info("not ours %s", KEY)
    finally:
        undo()
    logging.getLogger("httpx").info("after %s", KEY)

    ours = [r for r in caplog.records if r.name != "myapp" and "after" not in r.getMessage()]
    assert len(ours) == 5
    text = "\n".join(caplog.text.splitlines())
    shown = [line for line in text.splitlines() if "not ours" not in line and "after" not in line]
    assert not any(piece in line for line in shown for piece in pieces(KEY))
    assert "bytes of body not logged" in caplog.text
    # Other loggers are not touched, and after the undo nothing is.
    assert f"not ours {KEY}" in caplog.text
    assert f"after {KEY}" in caplog.text


def test_undo_restores_the_record_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    # This very run's gate has scrubbing installed: start from a clean slate, then put it back.
    monkeypatch.setattr(redaction, "_INSTALLED", redaction._Installed())
    original = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        undo_outer = scrub_library_logs(Redactor([KEY]))
        undo_inner = scrub_library_logs(Redactor(["another-secret-value"]), names=("vcr",))
        assert logging.getLogRecordFactory() is not logging.LogRecord
        made = logging.getLogRecordFactory()
        record = made("vcr.x", logging.INFO, "f", 1, "%s %s", (KEY, "another-secret-value"), None)
        assert record.getMessage() == f"{REDACTED} {REDACTED}"
        undo_inner()
        record = made("vcr.x", logging.INFO, "f", 1, "%s", ("another-secret-value",), None)
        assert record.getMessage() == "another-secret-value"
        undo_outer()
        assert logging.getLogRecordFactory() is logging.LogRecord
        undo_outer()  # idempotent
        assert logging.getLogRecordFactory() is logging.LogRecord
    finally:
        logging.setLogRecordFactory(original)


# -- messages of calls: scrubbed before they are cut -----------------------------------------------


def only(log: CallLog) -> CallRecord:
    (record,) = log.records()
    return record


def make_log(secrets: tuple[str, ...] = (KEY,)) -> CallLog:
    log = CallLog(test_id="t.py::test_x", case_id="t.py::test_x", arm="stable", model="m-1")
    log.secrets = secrets
    return log


def test_key_in_query_string_echoed_in_error_is_scrubbed(server: ScriptedServer) -> None:
    log = make_log()
    message = f"invalid key in https://api.example/v1?key={quote(KEY, safe='')} ({KEY})"
    server.script.append(Step(401, {"error": {"message": message, "code": "invalid_api_key"}}))
    transport = measuring_transport(httpx.HTTPTransport(), log.add, secrets=log.secrets)
    with httpx.Client(transport=transport) as client:
        client.post(f"{server.base_url}/chat/completions", params={"key": KEY}, json={})

    record = only(log)
    assert record.error_kind == "auth"
    assert record.error_message is not None
    assert record.error_message.count(REDACTED) == 2
    assert not any(piece in record.model_dump_json() for piece in pieces(KEY))


@pytest.mark.parametrize("cut", [300, 499, 500, 510])
def test_key_across_the_message_cut_leaves_no_prefix(server: ScriptedServer, cut: int) -> None:
    log = make_log()
    message = "invalid_api_key: " + "." * (cut - 17 - 8) + KEY + " end"
    server.script.append(Step(401, {"error": {"message": message, "code": "invalid_api_key"}}))
    transport = measuring_transport(httpx.HTTPTransport(), log.add, secrets=log.secrets)
    with httpx.Client(transport=transport) as client:
        client.post(f"{server.base_url}/chat/completions", json={})

    text = only(log).error_message or ""
    assert len(text) <= 500
    assert not any(piece in text for piece in pieces(KEY, 6))


def test_key_in_a_stream_error_event_across_the_cut(server: ScriptedServer) -> None:
    log = make_log()
    error = {"error": {"message": "." * 480 + KEY, "code": "server_error"}}
    server.script.append(Step(events=sse_events(error)))
    transport = measuring_transport(httpx.HTTPTransport(), log.add, secrets=log.secrets)
    with httpx.Client(transport=transport) as client:
        client.post(f"{server.base_url}/chat/completions", json={"stream": True}).read()

    record = only(log)
    assert record.error_message is not None
    assert not any(piece in record.error_message for piece in pieces(KEY, 6))


def test_classify_error_cuts_at_the_limit_given() -> None:
    body = {"error": {"message": "x" * 2000}}
    assert len(classify_error(400, body).message) == 500
    assert len(classify_error(400, body, limit=5000).message) == 2000


def test_scrub_fields_changes_a_tree_of_dataclasses_in_place() -> None:
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class Crash:
        message: str

    @dataclass
    class Entry:
        lines: list[str]
        locals: list[tuple[str, str]] = field(default_factory=list)

    @dataclass
    class Failure:
        entries: list[Entry]
        crash: Crash
        chain: tuple[tuple[Entry, Crash], ...] = ()

    entry = Entry([f"raise Error({KEY!r})"], [("raw_body", repr(KEY.encode()))])
    crash = Crash(f"Error: {KEY}")
    failure = Failure([entry], crash, ((entry, crash),))

    Redactor([KEY]).scrub_fields(failure)

    assert failure.entries[0] is entry
    assert entry.lines == [f"raise Error('{REDACTED}')"]
    assert entry.locals == [("raw_body", f"b'{REDACTED}'")]
    assert crash.message == f"Error: {REDACTED}"
    assert failure.chain == ((entry, crash),)
