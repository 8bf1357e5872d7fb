"""Cassettes: names, matching, secret scrubbing and the file format, over real HTTP on 127.0.0.1.

Recordings are made from the simulator (or the scripted loopback server) through plain httpx and
the real openai SDK; replays run with the server stopped, so any network use would fail.
"""

from __future__ import annotations

import gzip
import json
import pickle
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import vcr
import vcr.patch
import yaml
from loopback import ScriptedServer, Step
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.request import Request

from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.recording.cassettes import (
    REDACTED,
    CassetteError,
    Scrubber,
    cassette_path,
    explain_mismatch,
    make_vcr,
    modelgate_body,
    read_cassette,
)
from pytest_modelgate.session import ArmParam, case_id_for
from pytest_modelgate.simulator import Scenario, SimulatorServer

FAKE_KEY = "sk-proj-FAKE-0123456789abcdef0123"
MODEL = "sim-a"

# vcrpy 9 patches httpx2 (the openai SDK's HTTP library); vcrpy 8 (Python 3.10) only httpx.
HAS_HTTPX2_PATCH = hasattr(vcr.patch, "_Httpx2HttpTransport_handle_request")
needs_httpx2_patch = pytest.mark.skipif(
    not HAS_HTTPX2_PATCH, reason="this vcrpy does not intercept httpx2, which the openai SDK uses"
)

# ------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A simulator that demands FAKE_KEY and answers instantly; tests may stop it early."""
    scenario = Scenario.model_validate({"api_key": FAKE_KEY, "seed": 11, "models": {MODEL: {}}})
    server = SimulatorServer(scenario, port=0).start()
    yield server
    server.stop()


def recorder(mode: str = "new_episodes", **kwargs: Any) -> Any:
    return make_vcr(record_mode=mode, secrets=[FAKE_KEY, "short"], **kwargs)  # type: ignore[arg-type]


def chat_body(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


def assert_nothing_secret_in_files(root: Path) -> None:
    """No file under root holds the key's bytes or a header that identifies a client or key."""
    files = [path for path in root.rglob("*") if path.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert FAKE_KEY.encode() not in data, path
        lowered = data.lower()
        for needle in (b"authorization", b"x-stainless", b"user-agent", b"cookie", b"x-api-key"):
            assert needle not in lowered, (path, needle)


def module_file(tmp_path: Path) -> Path:
    """Where a test module of the user's project would be."""
    return tmp_path / "tests" / "test_triage.py"


# ------------------------------------------------------------------------------------------
# recording and replaying


def test_httpx_records_without_secrets_and_replays_offline(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    path = cassette_path(module_file(tmp_path), "test_triage[ticket-3]", MODEL)
    url = f"{sim.base_url}/chat/completions?key={FAKE_KEY}&API_KEY={FAKE_KEY}&keep=1"
    headers = {
        "Authorization": f"Bearer {FAKE_KEY}",
        "x-api-key": FAKE_KEY,
        "api-key": FAKE_KEY,
        "Cookie": f"session={FAKE_KEY}",
        "User-Agent": "my-product/1.0",
        "X-Stainless-Lang": "python",
    }
    # The key inside the body, too: a prompt that quotes it must not write it to disk.
    body = chat_body(f"my key is {FAKE_KEY}")

    def calls() -> list[httpx.Response]:
        with httpx.Client(headers=headers) as client:
            return [
                client.post(url, json=body),
                client.post(url, json=chat_body("second call")),
                client.get(f"{sim.base_url}/models"),
            ]

    with recorder().use_cassette(path):
        live = calls()
    assert [r.status_code for r in live] == [200, 200, 200]
    assert path.is_file()
    assert_nothing_secret_in_files(tmp_path)

    stored = read_cassette(path)["interactions"]
    assert [i["request"]["method"] for i in stored] == ["POST", "POST", "GET"]
    assert stored[0]["request"]["uri"] == f"{sim.base_url}/chat/completions?keep=1"
    assert stored[0]["request"]["headers"] == {"content-type": ["application/json"]}
    assert stored[2]["request"]["headers"] == {}
    assert REDACTED in stored[0]["request"]["body"]

    sim.stop()
    with recorder("none").use_cassette(path) as cassette:
        replayed = calls()
    assert cassette.all_played
    for old, new in zip(live, replayed, strict=True):
        assert new.status_code == old.status_code
        assert new.content == old.content
        assert new.headers["content-type"] == old.headers["content-type"]
    assert_nothing_secret_in_files(tmp_path)


@needs_httpx2_patch
def test_openai_sdk_records_and_replays_plain_and_streamed_calls(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    path = cassette_path(module_file(tmp_path), "test_sdk", MODEL)

    def calls() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        client = openai.OpenAI(base_url=sim.base_url, api_key=FAKE_KEY, max_retries=0)
        with client:
            completion = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Where is my parcel?"}]
            )
            stream = client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Stream the answer, please."}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk.model_dump() for chunk in stream]
        return completion.model_dump(), chunks

    with recorder().use_cassette(path):
        live_completion, live_chunks = calls()
    assert live_completion["choices"][0]["message"]["content"]
    assert len(live_chunks) > 3
    assert live_chunks[-1]["usage"]["total_tokens"] > 0
    assert_nothing_secret_in_files(tmp_path)
    # The stream is stored readable: one SSE line per YAML line.
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    assert "data: [DONE]" in lines
    assert sum(line.startswith('data: {"id"') for line in lines) == len(live_chunks)

    sim.stop()
    with recorder("none").use_cassette(path) as cassette:
        replayed_completion, replayed_chunks = calls()
    assert cassette.all_played
    assert replayed_completion == live_completion
    assert replayed_chunks == live_chunks


def test_response_secrets_cookies_and_compression_with_an_extra_hook(
    server: ScriptedServer, tmp_path: Path
) -> None:
    """The extra hook sees the response as sent; what it adds is stored, scrubbed like the rest."""
    reply = {"echo": f"your key is {FAKE_KEY}", "text": "ok"}
    raw = json.dumps(reply).encode()
    server.script.append(
        Step(
            body=gzip.compress(raw),
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Set-Cookie": "session=abc; HttpOnly",
                "x-api-key": "echoed-back-0123456789",
                "x-echo": f"Bearer {FAKE_KEY}",
                "x-ratelimit-remaining-tokens": "999",
            },
        )
    )
    seen: list[bytes] = []

    def timing_hook(response: dict[str, Any]) -> dict[str, Any]:
        seen.append(response["body"]["string"])
        # Runs on load too (vcrpy re-applies record hooks): keep what is already there.
        response.setdefault("modelgate_timing", {"total_ms": 12.5, "note": f"saw {FAKE_KEY}"})
        return response

    path = tmp_path / "c.yaml"
    with recorder(extra_before_record_response=timing_hook).use_cassette(path):
        live = httpx.post(f"{server.base_url}/chat/completions", json=chat_body("hi"))
    assert live.json() == reply
    assert seen == [raw]  # decompressed, not yet scrubbed
    assert_nothing_secret_in_files(tmp_path)

    response = read_cassette(path)["interactions"][0]["response"]
    names = {name.lower() for name in response["headers"]}
    assert {"set-cookie", "x-api-key", "content-encoding"}.isdisjoint(names)
    assert "x-ratelimit-remaining-tokens" in names
    assert response["headers"]["x-echo"] == [f"Bearer {REDACTED}"]
    assert response["modelgate_timing"] == {"total_ms": 12.5, "note": f"saw {REDACTED}"}
    # Stored as readable text, with content-length fixed after the key was replaced.
    assert json.loads(response["body"]["string"]) == {
        "echo": f"your key is {REDACTED}",
        "text": "ok",
    }
    assert response["headers"]["content-length"] == [str(len(response["body"]["string"]))]

    server.shutdown()
    with recorder("none").use_cassette(path):
        replayed = httpx.post(f"{server.base_url}/chat/completions", json=chat_body("hi"))
    assert replayed.json() == {"echo": f"your key is {REDACTED}", "text": "ok"}
    assert int(replayed.headers["content-length"]) == len(replayed.content)


def test_reordered_keys_match_and_a_changed_body_is_explained(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    url = f"{sim.base_url}/chat/completions"
    auth = {"Authorization": f"Bearer {FAKE_KEY}", "Content-Type": "application/json"}
    body = chat_body(f"hello, my key is {FAKE_KEY}", temperature=0, max_tokens=50)
    with recorder().use_cassette(path):
        live = httpx.post(url, content=json.dumps(body).encode(), headers=auth)
    assert live.status_code == 200
    sim.stop()

    reordered = {"max_tokens": 50, "messages": body["messages"], "temperature": 0, "model": MODEL}
    raw_reordered = json.dumps(reordered, indent=4).encode()
    assert raw_reordered != json.dumps(body).encode()
    with recorder("none").use_cassette(path):
        replayed = httpx.post(url, content=raw_reordered, headers=auth)
    assert replayed.content == live.content

    changed = chat_body(f"goodbye, my key is {FAKE_KEY}", temperature=0, max_tokens=50)
    raw_changed = json.dumps(changed).encode()
    with (
        recorder("none").use_cassette(path),
        pytest.raises(CannotOverwriteExistingCassetteException) as info,
    ):
        httpx.post(url, content=raw_changed, headers=auth)
    assert "modelgate_body" in str(info.value)

    explanation = explain_mismatch(path, raw_changed, method="POST", url=url, secrets=[FAKE_KEY])
    assert str(path) in explanation
    assert "interaction 1" in explanation
    lines = [line.strip() for line in explanation.splitlines()]
    assert f'-      "content": "hello, my key is {REDACTED}",' in lines
    assert f'+      "content": "goodbye, my key is {REDACTED}",' in lines
    assert FAKE_KEY not in explanation
    assert len(explanation.splitlines()) <= 15

    # The same request once more than recorded: said to be played already.
    with recorder("none").use_cassette(path):
        httpx.post(url, content=raw_reordered, headers=auth)
        with pytest.raises(CannotOverwriteExistingCassetteException):
            httpx.post(url, content=raw_reordered, headers=auth)
    assert "played already" in explain_mismatch(path, raw_reordered, secrets=[FAKE_KEY])
    assert "no recorded request to GET" in explain_mismatch(path, b"", method="GET", url=url)
    assert "no such cassette" in explain_mismatch(tmp_path / "missing.yaml", b"{}")


def test_a_recording_is_keyed_by_model_and_replays_for_the_other_arm(
    sim: SimulatorServer, tmp_path: Path
) -> None:
    """Recorded while the model was the candidate, replayed once it became the stable model."""
    module = module_file(tmp_path)

    def path_for(arm: str) -> Path:
        param = ArmParam(arm=arm, model=MODEL, repeat=0, repeats=1)  # type: ignore[arg-type]
        test_id = f"tests/test_triage.py::test_triage[ticket-3-{param.id}]"
        return cassette_path(module, case_id_for(test_id, param.id), MODEL)

    assert path_for("candidate") == path_for("stable")
    auth = {"Authorization": f"Bearer {FAKE_KEY}"}
    with recorder().use_cassette(path_for("candidate")):
        live = httpx.post(f"{sim.base_url}/chat/completions", json=chat_body("hi"), headers=auth)
    sim.stop()
    with recorder("none").use_cassette(path_for("stable")):
        replayed = httpx.post(
            f"{sim.base_url}/chat/completions", json=chat_body("hi"), headers=auth
        )
    assert replayed.content == live.content


def test_rerecording_replaces_the_recording(sim: SimulatorServer, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    auth = {"Authorization": f"Bearer {FAKE_KEY}"}
    for _ in range(2):
        with recorder("all").use_cassette(path):
            httpx.post(f"{sim.base_url}/chat/completions", json=chat_body("hi"), headers=auth)
    assert len(read_cassette(path)["interactions"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]  # no temporary file left behind


def test_a_missing_recording_fails_in_replay_mode(tmp_path: Path) -> None:
    with (
        recorder("none").use_cassette(tmp_path / "none.yaml"),
        pytest.raises(CannotOverwriteExistingCassetteException),
    ):
        httpx.post("http://127.0.0.1:9/v1/chat/completions", json=chat_body("hi"))
    assert not (tmp_path / "none.yaml").exists()


def test_make_vcr_rejects_an_unknown_record_mode() -> None:
    with pytest.raises(ValueError, match="record_mode"):
        make_vcr(record_mode="once", secrets=[])  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# unreadable cassettes

HEADER = "modelgate_cassette: 1\nversion: 1\n"
REQUEST = "method: GET, uri: 'http://h/', body: null, headers: {}"
TIMING = '{"v":1,"headers_ms":5.0,"ttft_ms":null,"total_ms":6.0,"chunks_ms":[6.0],"cut":false}'


def _interaction(change: str, *, request_headers: str = "{}") -> bytes:
    """A one-interaction chat-completions cassette with one field of the response replaced."""
    fields = {
        "status": "status: {code: 200, message: OK}",
        "headers": f"headers: {{x-modelgate-timing: ['{TIMING}']}}",
        "body": "body: {string: '{}'}",
    }
    if change:
        fields[change.split(":", 1)[0]] = change
    request = (
        f"method: POST, uri: 'http://h/v1/chat/completions', body: '{{}}', "
        f"headers: {request_headers}"
    )
    return (
        f"{HEADER}interactions:\n- request: {{{request}}}\n"
        f"  response: {{{', '.join(fields.values())}}}\n"
    ).encode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"\x00\xff\xfe\x9c binary junk", "not UTF-8", id="binary"),
        pytest.param(b"", "empty", id="empty"),
        pytest.param(
            b"interactions:\n  - request: {method: [\n", "not a valid YAML file", id="yaml"
        ),
        pytest.param(b"- a\n- b\n", "not a cassette", id="list"),
        pytest.param(b"name: something else\n", "without an 'interactions' list", id="no-list"),
        pytest.param(b"version: 1\ninteractions: []\n", "another tool", id="plain-vcrpy"),
        pytest.param(b"modelgate_cassette: 7\nversion: 1\ninteractions: []\n", "newer", id="newer"),
        pytest.param(b"modelgate_cassette: 1\nversion: 2\ninteractions: []\n", "vcrpy", id="vcr2"),
        pytest.param(
            (HEADER + "interactions:\n- request: {method: GET}\n").encode(),
            "interaction 1: request.uri",
            id="interaction",
        ),
        pytest.param((HEADER + "interactions: {}\n").encode(), "not a list", id="not-list"),
        pytest.param(
            (HEADER + "interactions:\n- request: {" + REQUEST + ", extra: 1}\n").encode(),
            "interaction 1: request has unknown fields: extra",
            id="request-field",
        ),
        pytest.param(
            (
                HEADER + "interactions:\n- request: {" + REQUEST + "}\n"
                "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: 5}}\n"
            ).encode(),
            "interaction 1: response.body.string",
            id="response-body",
        ),
        # Issue 10 item 4: what vcrpy or httpx would choke on (a TypeError inside vcrpy, which a
        # product that catches exceptions hides) is refused on load, naming the interaction.
        pytest.param(
            _interaction("status: {code: -1, message: OK}"),
            "interaction 1: response.status.code -1 is not an HTTP status",
            id="status-negative",
        ),
        pytest.param(
            _interaction("status: {code: 1000, message: OK}"),
            "response.status.code 1000",
            id="status-large",
        ),
        pytest.param(
            _interaction("status: {code: true, message: OK}"), "response.status", id="status-bool"
        ),
        pytest.param(
            _interaction("status: {code: 200, message: 'D\u00e9j\u00e0'}"),
            "not ASCII",
            id="status-message",
        ),
        pytest.param(
            _interaction("headers: {content-type: [[application/json]]}"),
            "response.headers.content-type has a value that is not text",
            id="header-list",
        ),
        pytest.param(
            _interaction("headers: {x-id: [12345]}"),
            "response.headers.x-id has a value that is not text: 12345",
            id="header-int",
        ),
        pytest.param(
            _interaction("headers: {x-id: text}"),
            "response.headers.x-id is not a list",
            id="header-not-list",
        ),
        pytest.param(
            _interaction("headers: {7: [a]}"), "header name that is not text", id="header-name"
        ),
        pytest.param(
            _interaction("body: {string: !!binary iVBORw0KGgo=}"),
            "binary (!!binary), not the text of a chat completion",
            id="binary-body",
        ),
        pytest.param(
            _interaction("", request_headers="{content-type: [7]}"),
            "request.headers.content-type has a value that is not text",
            id="request-header",
        ),
        pytest.param(
            (HEADER + "metadata: {a: &a [x, x], b: [*a, *a]}\ninteractions: []\n").encode(),
            "uses a YAML alias (the node anchored at line 3",
            id="alias",
        ),
    ],
)
@pytest.mark.parametrize("mode", ["none", "new_episodes"])
def test_an_unreadable_cassette_names_the_file(
    tmp_path: Path, content: bytes, reason: str, mode: str
) -> None:
    path = tmp_path / "cassettes" / "test_x" / "test_x--m.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(CassetteError) as info, recorder(mode).use_cassette(path):
        pass
    assert str(path) in str(info.value)
    assert reason in info.value.reason
    assert info.value.path == path
    with pytest.raises(CassetteError, match=re.escape(reason)):
        read_cassette(path)
    assert path.read_bytes() == content  # never overwritten


def test_a_cassette_written_by_plain_vcrpy_is_refused(
    server: ScriptedServer, tmp_path: Path
) -> None:
    path = tmp_path / "foreign.yaml"
    server.script.append(Step(body={"ok": True}))
    with vcr.VCR(record_mode="new_episodes").use_cassette(str(path)):
        httpx.post(f"{server.base_url}/chat/completions", json=chat_body("hi"))
    assert yaml.safe_load(path.read_text())["interactions"]
    with pytest.raises(CassetteError, match="another tool") as info, recorder().use_cassette(path):
        pass
    assert str(path) in str(info.value)


def test_cassette_error_is_a_modelgate_error_and_pickles() -> None:
    error = CassetteError(Path("a/b.yaml"), "the file is empty")
    assert isinstance(error, ModelgateError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))


# ------------------------------------------------------------------------------------------
# names


def test_cassette_path_example() -> None:
    path = cassette_path(Path("tests/test_triage.py"), "test_triage[ticket-3]", "qwen-max")
    assert path == Path("tests/cassettes/test_triage/test_triage[ticket-3]--qwen-max.yaml")


@pytest.mark.parametrize(
    "case",
    [
        "test_triage[ticket-3]",
        "tests/test_triage.py::test_triage[ticket-3]",
        "test_triage.py::test_triage[ticket-3]",
    ],
)
def test_cassette_path_accepts_a_node_id(case: str) -> None:
    path = cassette_path(Path("tests/test_triage.py"), case, "m")
    assert path.name == "test_triage[ticket-3]--m.yaml"


def test_cassette_path_keeps_the_class_and_odd_parameters() -> None:
    path = cassette_path(Path("t/test_a.py"), "t/test_a.py::TestDesk::test_b[x::y/z]", "m")
    assert path.name == "TestDesk.test_b[x%3A%3Ay%2Fz]--m.yaml"


def test_cassette_path_repeat_suffix() -> None:
    module = Path("tests/test_triage.py")
    names = [cassette_path(module, "t", "m", repeat=i, repeats=3).name for i in range(3)]
    assert names == ["t--m.yaml", "t--m--rep2.yaml", "t--m--rep3.yaml"]
    assert cassette_path(module, "t", "m").name == names[0]
    for repeat, repeats in ((3, 3), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="repeat"):
            cassette_path(module, "t", "m", repeat=repeat, repeats=repeats)
    with pytest.raises(ValueError, match="model"):
        cassette_path(module, "t", "")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("deepseek/deepseek-chat", "deepseek%2Fdeepseek-chat"),
        ("a\\b:c", "a%5Cb%3Ac"),
        ("tab\there\x00\x1f", "tab%09here%00%1F"),
        ("100%~", "100%25%7E"),
        ("..", "%2E."),
        (".hidden", "%2Ehidden"),
        ("qwen-max@2025 (beta)", "qwen-max@2025 (beta)"),
        ("模型", "%E6%A8%A1%E5%9E%8B"),
    ],
)
def test_cassette_path_sanitises_names(model: str, expected: str) -> None:
    path = cassette_path(Path("tests/test_x.py"), "test_a", model)
    assert path.name == f"test_a--{expected}.yaml"
    assert path.parent == Path("tests/cassettes/test_x")


def test_cassette_path_keeps_distinct_names_distinct() -> None:
    names = ["a/b", "a%2Fb", "a_b", "a:b", "a\\b", "A/b"]
    paths = {cassette_path(Path("t.py"), "t", name) for name in names}
    assert len(paths) == len(names)


def test_cassette_path_shortens_long_names_with_a_hash() -> None:
    module = Path("tests/test_x.py")
    long_case = "test_long[" + "x/" * 200 + "]"
    first = cassette_path(module, long_case, "m" * 300)
    again = cassette_path(module, long_case, "m" * 300)
    other = cassette_path(module, long_case + "!", "m" * 300)
    assert first == again
    assert first != other
    assert len(first.name.encode()) < 255
    case_part, model_part = first.stem.split("--")
    assert case_part.startswith("test_long[x%2Fx%2F")
    assert "~" in case_part
    assert "~" in model_part
    assert not case_part.rsplit("~", 1)[0].endswith(("%", "%2"))


# ------------------------------------------------------------------------------------------
# the scrubber and the matcher on their own


def request(body: bytes, uri: str = "https://api.example.com/v1/chat") -> Request:
    return Request("POST", uri, body, {"Content-Type": "application/json"})


def test_scrubber_ignores_short_values_and_replaces_encoded_forms() -> None:
    secret = "abc/def+ghi=jkl"
    scrubber = Scrubber(["", "short", "  tiny  ", f" {secret}\n"])
    assert scrubber.scrub_text("short and tiny stay") == "short and tiny stay"
    encoded = "abc%2Fdef%2Bghi%3Djkl"
    assert scrubber.scrub_text(f"a {secret} b {encoded}") == f"a {REDACTED} b {REDACTED}"
    json_escaped = json.dumps({"k": "abc/def+ghi=jkl\\"})
    assert secret not in scrubber.scrub_text(json_escaped)
    assert scrubber.scrub_bytes(f"x{secret}x".encode()) == f"x{REDACTED}x".encode()


def test_scrubber_replaces_the_longest_secret_first() -> None:
    scrubber = Scrubber(["sk-0123456789", "sk-0123456789-extended"])
    assert scrubber.scrub_text("sk-0123456789-extended") == REDACTED


def test_scrubber_removes_secret_query_parameters_case_insensitively() -> None:
    scrubber = Scrubber([])
    url = "https://h/v1/x?Key=1&api_key=2&access_token=3&apikey=4&model=m&q=a%20b"
    assert scrubber.scrub_url(url) == "https://h/v1/x?model=m&q=a+b"
    untouched = "https://h/v1/x?model=m&q=a%20b"
    assert scrubber.scrub_url(untouched) == untouched


def test_scrubbed_requests_still_match_their_live_request() -> None:
    scrubber = Scrubber([FAKE_KEY])
    live = request(
        json.dumps(chat_body(FAKE_KEY)).encode(), f"https://h/v1/chat?key={FAKE_KEY}&a=1"
    )
    live.headers = {"Authorization": f"Bearer {FAKE_KEY}", "Content-Type": "application/json"}
    recorded = scrubber.before_record_request(
        Request(live.method, live.uri, live.body, dict(live.headers))
    )
    assert dict(recorded.headers) == {"Content-Type": "application/json"}
    assert FAKE_KEY not in recorded.uri
    assert FAKE_KEY.encode() not in recorded.body
    # vcrpy scrubs (a copy of) the live request before matching: both sides then agree.
    again = scrubber.before_record_request(
        Request(live.method, live.uri, live.body, dict(live.headers))
    )
    assert again.uri == recorded.uri
    modelgate_body(again, recorded)


def test_body_matcher_compares_json_by_value_and_other_bodies_by_bytes() -> None:
    modelgate_body(request(b'{"a": 1, "b": [1, 2]}'), request(b'{"b":[1,2],"a":1}'))
    modelgate_body(request(b""), request(None))  # type: ignore[arg-type]
    for new, recorded in (
        (b'{"a": 1}', b'{"a": 1.0}'),
        (b'{"a": true}', b'{"a": 1}'),
        (b'{"b": [2, 1]}', b'{"b": [1, 2]}'),
        (b"a=1&b=2", b"b=2&a=1"),
    ):
        with pytest.raises(AssertionError):
            modelgate_body(request(new), request(recorded))


def test_a_valid_hand_written_interaction_loads(tmp_path: Path) -> None:
    """The cassettes the parametrized refusals above are made from are valid themselves."""
    path = tmp_path / "c.yaml"
    path.write_bytes(_interaction(""))
    assert read_cassette(path)["interactions"][0]["response"]["status"]["code"] == 200
    with recorder("none", require_timing=True).use_cassette(path) as cassette:
        assert len(cassette) == 1


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    """Issue 10 item 4: a billion laughs (10**9 leaves) is refused before it is expanded."""
    lines = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text(HEADER + "metadata:\n" + "\n".join(lines) + "\ninteractions: []\n")
    started = time.perf_counter()
    with pytest.raises(CassetteError, match="YAML alias"):
        read_cassette(path)
    with pytest.raises(CassetteError, match="YAML alias"), recorder("none").use_cassette(path):
        pass
    assert time.perf_counter() - started < 5.0  # expanding it takes about 21 s


@pytest.mark.parametrize(
    ("timing", "reason"),
    [
        (None, "interaction 1: the response has no x-modelgate-timing header"),
        ("'{not json'", "interaction 1: unusable recorded latency: x-modelgate-timing is not JSON"),
        (
            '\'{"v":1,"headers_ms":1,"total_ms":-3}\'',
            "x-modelgate-timing: total_ms is not a duration",
        ),
        ("'{\"v\":9}'", "unknown version"),
    ],
    ids=["missing", "garbled", "negative", "version"],
)
def test_require_timing_refuses_a_chat_interaction_without_recorded_timing(
    tmp_path: Path, timing: str | None, reason: str
) -> None:
    """Issue 10 item 3: the gate's recorder refuses what would replay with the replay clock."""
    headers = "headers: {}" if timing is None else f"headers: {{x-modelgate-timing: [{timing}]}}"
    path = tmp_path / "c.yaml"
    path.write_bytes(_interaction(headers))
    replaying = recorder("none", require_timing=True)
    with pytest.raises(CassetteError) as info, replaying.use_cassette(path):
        pass
    assert reason in info.value.reason
    assert info.value.path == path
    # The storage layer alone reads it: the inventory and diffs need no timing.
    assert read_cassette(path)["interactions"]
    with recorder("none").use_cassette(path) as cassette:
        assert len(cassette) == 1


def test_require_timing_ignores_requests_the_gate_does_not_measure(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        HEADER + "interactions:\n- request: {" + REQUEST + "}\n"
        "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ok}}\n"
    )
    with recorder("none", require_timing=True).use_cassette(path) as cassette:
        assert len(cassette) == 1
