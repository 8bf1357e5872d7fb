"""Issue 10, secrets: a provider that echoes the key back never gets it into a file or the output.

A scripted loopback server plays an OpenAI-compatible provider that echoes the caller's key in
every way a real one might: in the error message, in response headers (raw, base64, ``Basic``
auth, a ``Location`` with the key URL-encoded), JSON-escaped in the body, and in messages long
enough that the key sits across the cuts made at 300 and 500 characters. The key holds characters
that change under every encoding (``/ + = " \\``), so each encoded form is a different string.

After each run, every file under the project and the pytester temporary folders (cassettes,
verdict, records file, anything else) and all captured output are searched for the key in each
form: raw, base64 (of the key and of ``user:key``, both alphabets), URL-encoded and JSON-escaped,
plus any 10-character piece of it (a prefix left by a cut).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest
import yaml

KEY = 'sk-test/abc+def=ghi"jk\\lmn-0123456789'
KEY_ENV = "MODELGATE_TEST_ECHO_KEY"
BASIC_USER = "user"
STABLE = "echo-stable"
CANDIDATE = "echo-candidate"
# A distinctive field of the error body that no error message quotes: if it shows in the output,
# a raw body did.
RAW_MARKER = "RAW-BODY-MARKER-7f3a"
# Timing and statistics are not what these tests are about.
LENIENT_GATE: dict[str, Any] = {
    "cost_per_call_max_ratio": None,
    "pass_rate_max_drop": 1.0,
    "error_rate_max_rise": 1.0,
    "fallback_rate_max_rise": 1.0,
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
}


def key_forms(key: str = KEY) -> dict[str, bytes]:
    """The key in every spelling a leak could take, by name."""
    raw = key.encode()
    basic = f"{BASIC_USER}:{key}".encode()
    forms = {
        "raw": raw,
        "base64": base64.b64encode(raw),
        "base64-urlsafe": base64.urlsafe_b64encode(raw),
        "basic-base64": base64.b64encode(basic),
        "basic-base64-urlsafe": base64.urlsafe_b64encode(basic),
        "url-quote": quote(key, safe="").encode(),
        "url-quote-slash": quote(key).encode(),
        "url-quote-plus": quote_plus(key).encode(),
        "json-escaped": json.dumps(key)[1:-1].encode(),
        "python-repr": repr(key)[1:-1].encode(),
    }
    # Any piece of the raw key that a cut could leave (10 characters identify this key).
    for start in range(len(raw) - 9):
        forms[f"piece@{start}"] = raw[start : start + 10]
    return forms


def leaks_in(data: bytes) -> list[str]:
    return [name for name, form in key_forms().items() if form in data]


def leaking_files(*roots: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            if path.is_file():
                names = leaks_in(path.read_bytes())
                if names:
                    found[str(path)] = names
    return found


# -- the echoing provider --------------------------------------------------------------------------


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-echo",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }


def _padded(prefix: str, key: str, at: int, suffix: str = " Check your key.") -> str:
    """``prefix`` padded with dots so that ``key`` starts at character ``at``."""
    return prefix + "." * max(at - len(prefix), 0) + key + suffix


class _Echo(BaseHTTPRequestHandler):
    """Paths ``/<mode>/v1/chat/completions``; ``mode`` picks how the key comes back.

    ``ok``       a completion; the key echoed in headers (raw, base64, Basic, Location) and body.
    ``deny``     401; the key in the JSON error message so that it straddles the 500-char cut.
    ``text``     400 with a plain-text body quoting the key (not JSON).
    """

    protocol_version = "HTTP/1.1"
    server: EchoServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        parts = urlsplit(self.path)
        mode = parts.path.strip("/").split("/")[0]
        # The key as the caller sent it: bearer header, a custom header or the query string.
        sent = (
            self.headers.get("Authorization", "").removeprefix("Bearer ")
            or self.headers.get("X-Custom-Key", "")
            or KEY
        )
        self.server.modes.append(mode)
        headers: dict[str, str] = {}
        status = 200
        if mode == "ok":
            body: Any = _completion(request.get("model", "?"), '{"answer": "ok"}')
            body["echo"] = {"key": sent, "note": f"your key {sent} was accepted"}
            basic = base64.b64encode(f"{BASIC_USER}:{sent}".encode()).decode()
            headers = {
                "X-Echo-Key": sent,
                "X-Echo-Base64": base64.b64encode(sent.encode()).decode(),
                "X-Echo-Authorization": f"Basic {basic}",
                "Location": f"https://example.invalid/cb?api_key={quote(sent, safe='')}"
                f"&next={quote_plus(sent)}",
            }
        elif mode == "deny":
            status = 401
            message = _padded("invalid_api_key: Incorrect API key provided: ", sent, 487)
            body = {
                "error": {"message": message, "code": "invalid_api_key", "debug": RAW_MARKER},
                "request_url": self.path,
            }
            headers = {"X-Echo-Key": sent}
        else:
            status = 400
            body = f"bad request from {self.path} with key {sent} ({RAW_MARKER})".encode()
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        content_type = "text/plain" if isinstance(body, bytes) else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(raw)
        self.close_connection = True


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.modes: list[str] = []
        threading.Thread(target=self.serve_forever, args=(0.01,), daemon=True).start()

    def base_url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/v1"


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.shutdown()
    server.server_close()


class Project:
    def __init__(self, pytester: pytest.Pytester, echo: EchoServer) -> None:
        self.pytester = pytester
        self.echo = echo

    def configure(self, stable_mode: str, candidate_mode: str, *, lenient: bool = False) -> None:
        models = {
            name: {
                "base_url": self.echo.base_url(mode),
                "api_key_env": KEY_ENV,
                "price": {"input": 0.27, "output": 1.10},
            }
            for name, mode in ((STABLE, stable_mode), (CANDIDATE, candidate_mode))
        }
        data = {
            "models": models,
            "stable": STABLE,
            # Default margins: a candidate whose every call is refused fails the gate.
            "gate": LENIENT_GATE if lenient else {},
            "client": {"backoff_base_s": 0.01, "max_retries": 0},
        }
        (self.pytester.path / "modelgate.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")

    @property
    def verdict_path(self) -> Path:
        return self.pytester.path / "modelgate-verdict.json"

    def verdict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.verdict_path.read_text(encoding="utf-8"))
        return loaded

    def records(self) -> list[dict[str, Any]]:
        path = self.pytester.path / "modelgate-verdict.records.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def run(self, *args: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("--candidate-model", CANDIDATE, *args)

    def assert_no_leak(self, result: pytest.RunResult) -> None:
        output = (result.stdout.str() + "\n" + result.stderr.str()).encode()
        assert leaks_in(output) == [], "the key is in the output"
        # runpytest_subprocess puts the inner run's basetemp next to the project folder.
        basetemp = self.pytester.path.parent / "basetemp"
        assert leaking_files(self.pytester.path, basetemp) == {}


@pytest.fixture
def project(
    pytester: pytest.Pytester, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> Project:
    monkeypatch.setenv(KEY_ENV, KEY)
    return Project(pytester, echo)


# -- the items -------------------------------------------------------------------------------------

OWN_CLIENT_DENIED = """
    import os

    import httpx

    KEY = os.environ["MODELGATE_TEST_ECHO_KEY"]
    MESSAGES = [{"role": "user", "content": "I want a refund"}]

    def test_key_in_query(llm):
        # The product's own client sends the key as ?key=, the provider echoes the URL.
        with httpx.Client() as client:
            response = client.post(
                llm.base_url.rstrip("/") + "/chat/completions",
                params={"key": KEY},
                json={"model": llm.model, "messages": MESSAGES},
            )
        assert response.status_code == 200, "the provider refused the call"

    def test_key_in_custom_header(llm):
        with httpx.Client() as client:
            response = client.post(
                llm.base_url.rstrip("/") + "/chat/completions",
                json={"model": llm.model, "messages": MESSAGES},
                headers={"X-Custom-Key": KEY},
            )
        assert response.status_code == 200, "the provider refused the call"

    def test_plain_text_error(llm):
        with httpx.Client() as client:
            response = client.post(
                llm.base_url.replace("/deny/", "/text/").rstrip("/") + "/chat/completions",
                params={"key": KEY},
                json={"model": llm.model, "messages": MESSAGES},
            )
        assert response.status_code == 200, "the provider refused the call"
"""


def assert_no_successful_call(project: Project, result: pytest.RunResult, arm: str) -> None:
    """Every call of ``arm`` was refused: the verdict is ``error`` (exit 3) naming that arm."""
    assert result.ret == 3
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any(f"no call on the {arm} arm succeeded" in r for r in verdict["reasons"]), verdict[
        "reasons"
    ]


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_echoed_key_in_query_or_custom_header_never_reaches_the_records(
    project: Project, workers: tuple[str, ...]
) -> None:
    """Item: records.jsonl ``calls[].error_message`` carried a configured key that the provider
    echoed when the product sent it in a query string or a custom header (the transport only
    scrubbed keys found in the request's own auth headers)."""
    project.configure("ok", "deny")
    project.pytester.makepyfile(test_own=OWN_CLIENT_DENIED)

    result = project.run("-rA", "--modelgate-strict", *workers)

    # The candidate's calls are all refused: with no successful call on an arm there is nothing
    # to compare, so the verdict is error (the judge's no-evidence rule), whatever --strict says.
    result.assert_outcomes(passed=3, failed=3)
    assert_no_successful_call(project, result, "candidate")
    failed_calls = [
        call for record in project.records() for call in record["calls"] if call["error_message"]
    ]
    assert len(failed_calls) == 3
    assert all("<redacted>" in call["error_message"] for call in failed_calls)
    project.assert_no_leak(result)


CUT_AT_300 = """
    import os

    KEY = os.environ["MODELGATE_TEST_ECHO_KEY"]

    def test_long_failure(llm):
        llm.chat([{"role": "user", "content": "hello"}])
        # "RuntimeError: " is 14 characters: the key starts at 290, the message is cut at 300.
        raise RuntimeError("." * 276 + KEY + " was rejected")

    def test_long_provider_message(llm):
        # The candidate's provider says 500+ characters with the key across the 500th.
        llm.chat([{"role": "user", "content": "hello"}])
"""


def test_a_key_across_the_cut_leaves_no_prefix(project: Project) -> None:
    """Item: a key cut at 300 characters (the test ``message``) or 500 (``error_message``) before
    scrubbing left its prefix in records.jsonl; now every text is scrubbed first, cut after."""
    project.configure("ok", "deny")
    project.pytester.makepyfile(test_cut=CUT_AT_300)

    result = project.run("-rA", "--modelgate-strict")

    result.assert_outcomes(passed=1, failed=3)
    assert_no_successful_call(project, result, "candidate")
    records = {(r["test_id"].split("[")[0], r["arm"]): r for r in project.records()}
    long_failure = records[("test_cut.py::test_long_failure", "stable")]
    assert long_failure["message"].startswith("RuntimeError: ....")
    assert "<redac" in long_failure["message"]
    denied = records[("test_cut.py::test_long_provider_message", "candidate")]
    (call,) = denied["calls"]
    assert call["error_kind"] == "auth"
    assert len(call["error_message"]) <= 500
    assert "<redacted>" in call["error_message"]
    project.assert_no_leak(result)


RECORDED = """
    def test_echoing_provider(llm):
        reply = llm.chat([{"role": "user", "content": "hello"}])
        assert reply.json() == {"answer": "ok"}

    def test_echoing_provider_sdk(llm):
        client = llm.openai()
        reply = client.chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": "hello"}]
        )
        assert reply.choices[0].message.content
"""


def test_cassettes_hold_no_encoded_form_of_the_key(project: Project) -> None:
    """Item: cassettes kept an echoed key in encoded forms: Basic auth (base64 of ``user:key``),
    base64, JSON-escaped and URL-encoded (a ``Location`` header); every form is scrubbed now."""
    project.configure("ok", "ok", lenient=True)
    project.pytester.makepyfile(test_rec=RECORDED)

    result = project.run("--modelgate-mode=record", "-rA")

    result.assert_outcomes(passed=4)
    assert result.ret == 0
    assert project.verdict()["verdict"] in ("pass", "inconclusive")
    cassettes = sorted((project.pytester.path / "cassettes").rglob("*.yaml"))
    assert len(cassettes) == 4
    for path in cassettes:
        text = path.read_text(encoding="utf-8")
        assert leaks_in(text.encode()) == [], path
        interaction = yaml.safe_load(text)["interactions"][0]
        headers = {k.lower(): v for k, v in interaction["response"]["headers"].items()}
        # The headers are kept (clients read them), their secret parts replaced.
        assert headers["x-echo-key"] == ["<redacted>"]
        assert headers["x-echo-authorization"] == ["Basic <redacted>"]
        assert "<redacted>" in headers["x-echo-base64"][0]
        assert "<redacted>" in headers["location"][0]
        assert "<redacted>" in interaction["response"]["body"]["string"]
    project.assert_no_leak(result)

    # The scrubbed recordings still replay.
    project.echo.modes.clear()
    replayed = project.run("--modelgate-mode=replay")
    replayed.assert_outcomes(passed=4)
    assert project.echo.modes == []
    project.assert_no_leak(replayed)


LOGGED = """
    import logging
    import os

    import httpx

    KEY = os.environ["MODELGATE_TEST_ECHO_KEY"]

    def test_logged(llm, caplog):
        caplog.set_level(logging.DEBUG)
        assert llm.chat([{"role": "user", "content": "hello"}]).json() == {"answer": "ok"}
        client = llm.openai()
        assert client.chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": "hi"}]
        ).choices
        with httpx.Client() as own:
            response = own.post(
                llm.base_url.rstrip("/") + "/chat/completions",
                params={"key": KEY},
                json={"model": llm.model, "messages": [{"role": "user", "content": "hey"}]},
            )
        assert response.status_code == 200
        # What the libraries logged, as caplog holds it: the calls were logged, without the key.
        names = {record.name for record in caplog.records}
        assert any(name.startswith("httpx") for name in names), names
        assert any(name.startswith("vcr") for name in names), names
        assert "HTTP Request: POST" in caplog.text
        assert KEY not in caplog.text
        print("CAPLOG-CHECKED")
"""


def test_library_logs_at_debug_carry_no_key_and_no_body(project: Project) -> None:
    """Item: vcrpy logged whole responses at INFO and httpx logged URLs with query keys; a filter
    on the loggers of vcrpy, httpx, httpcore and openai (and their children) scrubs them while
    the gate runs, with ``log_cli`` at DEBUG, ``-rA`` and ``caplog``."""
    project.configure("ok", "ok", lenient=True)
    project.pytester.makepyfile(test_logs=LOGGED)

    result = project.run(
        "--modelgate-mode=record", "-o", "log_cli=true", "--log-cli-level=DEBUG", "-rA"
    )

    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert project.verdict()["verdict"] in ("pass", "inconclusive")
    output = result.stdout.str()
    assert output.count("CAPLOG-CHECKED") == 2
    # The libraries did log at DEBUG (so the check below means something)...
    assert "HTTP Request: POST" in output
    assert "Appending request" in output
    # ... but vcrpy's whole response became a size, and no form of the key is left.
    assert "bytes of body not logged" in output
    assert "chatcmpl-echo" not in output
    project.assert_no_leak(result)


SHOWLOCALS = """
    def test_denied(llm):
        llm.chat([{"role": "user", "content": "hello"}])

    def test_denied_sdk(llm):
        llm.openai().chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": "hello"}]
        )
"""


def test_showlocals_prints_no_key_and_no_raw_body(project: Project) -> None:
    """Item: ``--showlocals`` printed a local of ours holding the raw response body (which echoed
    the key) and the SDK's exception quoting it; our frames drop raw bodies before raising and
    the failure report is scrubbed."""
    project.configure("deny", "deny")
    project.pytester.makepyfile(test_locals=SHOWLOCALS)

    result = project.run("--showlocals", "--tb=long", "-rA", "-vv", "--modelgate-strict")

    result.assert_outcomes(failed=4)
    assert_no_successful_call(project, result, "stable")
    output = result.stdout.str()
    assert "raw_body   = None" in output or "raw_body = None" in output
    assert "Incorrect API key provided" in output
    assert "<redacted>" in output
    # The failures keep their layout and crash line: the short summary still quotes them.
    summary = [line for line in result.outlines if line.startswith("FAILED test_locals.py::")]
    assert len(summary) == 4
    assert all(" - " in line and "<redacted>" in line for line in summary), summary
    project.assert_no_leak(result)


def test_our_frames_hold_no_raw_body_in_showlocals(project: Project) -> None:
    """Item: raw bodies kept out of the frames a traceback shows: the error body's own fields
    (which no message quotes) must not appear in ``--showlocals`` output of an ``llm.chat``
    failure, even for a body with no key in it."""
    project.configure("deny", "deny")
    project.pytester.makepyfile(test_locals=SHOWLOCALS.split("def test_denied_sdk")[0])

    result = project.run("--showlocals", "--tb=long", "--modelgate-strict")

    result.assert_outcomes(failed=2)
    assert_no_successful_call(project, result, "stable")
    assert RAW_MARKER not in result.stdout.str()
    project.assert_no_leak(result)


COLLECTION_ERROR = """
    import os

    KEY = os.environ["MODELGATE_TEST_ECHO_KEY"]
    raise RuntimeError("cannot start: the key " + KEY + " expired")

    def test_never(llm):
        pass
"""


def test_a_collection_error_quoting_the_key_is_scrubbed(project: Project) -> None:
    """Item: every output, not only test reports: a module that fails to import with the key in
    its error shows the error scrubbed, and the error verdict holds no key either."""
    project.configure("ok", "ok")
    project.pytester.makepyfile(test_broken=COLLECTION_ERROR)

    result = project.run("-rA", "--showlocals")

    assert result.ret == 2
    assert project.verdict()["verdict"] == "error"
    assert "cannot start: the key <redacted> expired" in result.stdout.str()
    project.assert_no_leak(result)
