"""No API key is ever written: not to the verdict, the records, the terminal or a traceback.

The project runs with a known fake key through ``llm.chat`` and ``llm.openai()``, on calls that
succeed and on calls the provider refuses (401), with ``--showlocals`` and long tracebacks so that
every frame's locals are printed; then every file under the project and all output is searched
for the key's bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import GateProject

KEY_ENV = "MODELGATE_TEST_SECRET_KEY"

WORKFLOWS = """
    import openai
    import pytest

    MESSAGES = [{"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": "I want a refund for my invoice"}]

    def test_chat(llm):
        assert llm.chat(MESSAGES, response_format={"type": "json_object"}).json()

    def test_chat_stream(llm):
        assert llm.chat(MESSAGES, stream=True).text

    def test_sdk(llm):
        client = llm.openai()
        reply = client.chat.completions.create(model=llm.model, messages=MESSAGES)
        assert reply.choices[0].message.content

    def test_sdk_stream(llm):
        client = llm.openai()
        stream = client.chat.completions.create(
            model=llm.model, messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
"""


@pytest.fixture
def project(
    gate_project: Callable[..., GateProject], monkeypatch: pytest.MonkeyPatch
) -> GateProject:
    project = gate_project(
        {
            "sim-stable": {"latency_ms": 2},
            # Refuses the first two requests as unauthorised: error paths carry the key too.
            "sim-candidate": {
                "latency_ms": 2,
                "script": [
                    {"status": 401, "message": "Incorrect API key provided"},
                    {"status": 401, "message": "Incorrect API key provided"},
                ],
            },
        },
        stable="sim-stable",
    )
    # The simulator checks its own key; point both models at a variable holding the fake key
    # the simulator expects, so the secret really goes over the wire.
    monkeypatch.setenv(KEY_ENV, project.key)
    text = (project.pytester.path / "modelgate.yaml").read_text(encoding="utf-8")
    (project.pytester.path / "modelgate.yaml").write_text(
        text.replace(project.key_env, KEY_ENV), encoding="utf-8"
    )
    return project


def test_the_key_is_written_nowhere(project: GateProject) -> None:
    project.pytester.makepyfile(test_secret_flows=WORKFLOWS)

    result = project.pytester.runpytest_subprocess(
        "--candidate-model", "sim-candidate", "--showlocals", "--tb=long", "-rA", "-vv"
    )

    # The candidate's first two requests were refused: those tests fail, the rest pass.
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    assert outcomes.get("passed", 0) >= 6
    assert "Incorrect API key provided" in result.stdout.str()
    assert project.verdict_path.exists()
    needle = project.key.encode()
    output = (result.stdout.str() + result.stderr.str()).encode()
    assert needle not in output
    written = [p for p in project.pytester.path.rglob("*") if p.is_file()]
    assert any(p.name == "modelgate-verdict.records.jsonl" for p in written)
    leaks = [str(p) for p in written if needle in p.read_bytes()]
    assert leaks == []
