"""Recorded calls end to end: ``--modelgate-mode`` record, rerecord and replay with cassettes.

Each test records from a real simulator on loopback, then (usually) stops it and deletes the API
key before replaying, so a replay that touched the network or needed a key could not pass. Host
and port are part of request matching, so a test records and replays against the same simulator.
What is checked: outcomes, output lines, exit status, the verdict and records files, and the
cassette files on disk (names, contents, unchanged or replaced).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from gatesettings import loose_gate

from pytest_modelgate.calls.records import CallRecord, TestRecord

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 4}
# Neither timing nor statistics is what most of these tests are about. Timing: report it, do not
# gate on it. Rates: the paired judge passes only what its intervals show, and with the two or
# three cases used here a rate's 95% interval is about +-56 to +-66 points, so the rate margins
# are wide enough for a healthy run to pass.
SMALL_RUN_GATE: dict[str, Any] = loose_gate()
GATE = ("--candidate-model", CANDIDATE)

MakeProject = Callable[..., "GateProject"]

# Three gated tests: a parametrized one (case names keep their parameters) and one that calls the
# model through all four kinds of client: ``llm.chat``, ``llm.openai()`` and clients the product
# builds itself with httpx and httpx2.
WORKFLOWS = """
    import os

    import httpx
    import httpx2
    import pytest

    KEY_ENV = "MODELGATE_TEST_SIM_KEY"
    SYSTEM = {"role": "system", "content": "Classify the ticket. Answer in JSON with a category."}


    TICKETS = ["I want a refund for my invoice", "Where is my parcel?"]


    @pytest.mark.parametrize("ticket", TICKETS, ids=["refund", "parcel"])
    def test_triage(llm, ticket):
        reply = llm.chat(
            [SYSTEM, {"role": "user", "content": ticket}], response_format={"type": "json_object"}
        )
        assert reply.json()["category"]


    def own_client_call(module, llm, text):
        # The product's own client; without a key (replay) it still sends a header.
        headers = {"Authorization": "Bearer " + os.environ.get(KEY_ENV, "no-key")}
        with module.Client(timeout=10) as client:
            response = client.post(
                llm.base_url.rstrip("/") + "/chat/completions",
                json={"model": llm.model, "messages": [{"role": "user", "content": text}]},
                headers=headers,
            )
        assert response.status_code == 200, response.text
        # The recorded timing is the gate's business; the product never sees its header.
        assert "x-modelgate-timing" not in response.headers
        return response.json()["choices"][0]["message"]["content"]


    def test_every_client(llm):
        assert llm.chat([{"role": "user", "content": "Hello, I have a question."}]).text
        completion = llm.openai().chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": "Hello from the SDK."}]
        )
        assert completion.choices[0].message.content.startswith("Thank you")
        assert own_client_call(httpx, llm, "Hello from httpx.").startswith("Thank you")
        assert own_client_call(httpx2, llm, "Hello from httpx2.").startswith("Thank you")
"""
# Requests per arm in WORKFLOWS: one per triage case, four in test_every_client.
WORKFLOW_CALLS = {"test_triage[refund]": 1, "test_triage[parcel]": 1, "test_every_client": 4}


# -- helpers ---------------------------------------------------------------------------------------


def _cassette_dir(project: GateProject) -> Path:
    return project.pytester.path / "cassettes" / "test_wf"


def _cassette(project: GateProject, case: str, model: str) -> Path:
    return _cassette_dir(project) / f"{case}--{model}.yaml"


def _cassette_files(project: GateProject) -> dict[str, bytes]:
    """Every file under ``cassettes/`` by its path relative to it, with its bytes."""
    root = project.pytester.path / "cassettes"
    if not root.exists():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _interactions(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    interactions: list[dict[str, Any]] = data["interactions"]
    return interactions


def _records(project: GateProject) -> list[TestRecord]:
    path = project.verdict_path.with_name("modelgate-verdict.records.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [TestRecord.model_validate(json.loads(line)) for line in lines]


def _calls(project: GateProject) -> list[CallRecord]:
    return [call for record in _records(project) for call in record.calls]


def _run(project: GateProject, mode: str | None, *args: str) -> pytest.RunResult:
    options = (f"--modelgate-mode={mode}",) if mode else ()
    return project.pytester.runpytest(*options, *args)


def _go_offline(project: GateProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """No server and no key: whatever passes from now on was answered from the cassettes."""
    project.sim.stop()
    monkeypatch.delenv(project.key_env)


def _served(project: GateProject) -> dict[str, int]:
    counts: dict[str, int] = {}
    for model, _, _ in project.sim.requests:
        counts[str(model)] = counts.get(str(model), 0) + 1
    return counts


# -- record, then replay ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_record_then_replay_offline(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    recorded = _run(project, "record", *GATE, *args)

    recorded.assert_outcomes(passed=6)
    assert recorded.ret == 0
    assert project.verdict()["mode"] == "record"
    assert project.verdict()["verdict"] == "pass"
    # Every call of both arms reached the model once.
    assert _served(project) == {STABLE: 6, CANDIDATE: 6}
    # One file per test case and model, next to the test module, named without the arm.
    files = _cassette_files(project)
    assert sorted(files) == sorted(
        f"test_wf/{case}--{model}.yaml" for case in WORKFLOW_CALLS for model in (STABLE, CANDIDATE)
    )
    for case, count in WORKFLOW_CALLS.items():
        for model in (STABLE, CANDIDATE):
            interactions = _interactions(_cassette(project, case, model))
            assert len(interactions) == count, (case, model)
            for interaction in interactions:
                assert json.loads(interaction["request"]["body"])["model"] == model
                assert interaction["request"]["uri"] == f"{project.sim.base_url}/chat/completions"
                assert "x-modelgate-timing" in interaction["response"]["headers"]

    _go_offline(project, monkeypatch)
    replayed = _run(project, "replay", *GATE, *args)

    replayed.assert_outcomes(passed=6)
    assert replayed.ret == 0
    replayed.stdout.fnmatch_lines(["*modelgate verdict: PASS*"])
    verdict = project.verdict()
    assert verdict["mode"] == "replay"
    assert verdict["verdict"] == "pass"
    assert verdict["complete"] is True
    # Replay reads the cassettes; it never writes them.
    assert _cassette_files(project) == files
    # Every measured call was answered from a recording and carries the recorded timing.
    calls = _calls(project)
    # All four clients are measured, the product's own httpx and httpx2 clients as "other".
    assert len(calls) == 12
    every = [c for c in calls if "::test_every_client" in c.test_id]
    assert sorted(c.client for c in every) == sorted(["modelgate", "openai", "other", "other"] * 2)
    assert all(c.timing == "recorded" for c in calls), [(c.test_id, c.timing) for c in calls]
    assert all(c.latency_ms is not None and c.latency_ms > 0 for c in calls)
    assert all(c.usage is not None and c.usage.total_tokens for c in calls)


def test_live_mode_calls_the_models_and_records_nothing(gate_project: MakeProject) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = _run(project, "live", *GATE)

    result.assert_outcomes(passed=6)
    assert result.ret == 0
    assert project.verdict()["mode"] == "live"
    assert _served(project) == {STABLE: 6, CANDIDATE: 6}
    assert not (project.pytester.path / "cassettes").exists()
    calls = _calls(project)
    assert all(c.timing == "live" for c in calls)
    assert sum(c.client == "other" for c in calls) == 4


def test_mode_from_the_ini_file_and_the_command_line_wins(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the command line and the ini file speak here.
    monkeypatch.delenv("MODELGATE_MODE", raising=False)
    project = gate_project({STABLE: FAST}, stable=STABLE)
    project.pytester.makeini("[pytest]\nmodelgate_mode = replay\n")
    project.pytester.makepyfile(
        test_wf="""
        def test_plain(llm):
            assert llm.chat([{"role": "user", "content": "Hello, I have a question."}]).text
        """
    )

    recorded = _run(project, "record")

    recorded.assert_outcomes(passed=1)
    assert project.verdict()["mode"] == "record"
    assert _served(project) == {STABLE: 1}
    assert sorted(_cassette_files(project)) == [f"test_wf/test_plain--{STABLE}.yaml"]

    _go_offline(project, monkeypatch)
    replayed = _run(project, None)

    replayed.assert_outcomes(passed=1)
    assert replayed.ret == 0
    assert project.verdict()["mode"] == "replay"
    assert [c.timing for c in _calls(project)] == ["recorded"]


def test_repeats_get_their_own_cassettes(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project({STABLE: FAST}, stable=STABLE)
    project.pytester.makepyfile(
        test_wf="""
        def test_plain(llm):
            assert llm.chat([{"role": "user", "content": "Hello, I have a question."}]).text
        """
    )

    recorded = _run(project, "record", "--modelgate-repeat", "3")

    recorded.assert_outcomes(passed=3)
    assert _served(project) == {STABLE: 3}
    # Repeat 1 has no suffix, so the recordings of a K = 1 run serve as the first repeat.
    assert sorted(_cassette_files(project)) == [
        f"test_wf/test_plain--{STABLE}--rep2.yaml",
        f"test_wf/test_plain--{STABLE}--rep3.yaml",
        f"test_wf/test_plain--{STABLE}.yaml",
    ]
    for path in _cassette_dir(project).iterdir():
        assert len(_interactions(path)) == 1, path.name

    _go_offline(project, monkeypatch)
    replayed = _run(project, "replay", "--modelgate-repeat", "3")

    replayed.assert_outcomes(passed=3)
    assert replayed.ret == 0
    assert project.verdict()["repeat"] == 3


# -- record fills gaps, rerecord replaces ----------------------------------------------------------

FIRST_TEST = """
    def test_first(llm):
        reply = llm.chat([{"role": "user", "content": "Hello, I have a question."}])
        print(f"FIRST SAYS: {reply.text[:28]}")
        assert reply.text.lower().startswith("thank you for contacting us.")
"""
SECOND_TEST = """
    def test_second(llm):
        reply = llm.chat([{"role": "user", "content": "Hello, I have another question."}])
        print(f"SECOND SAYS: {reply.text[:28]}")
        assert reply.text.lower().startswith("thank you for contacting us.")
"""


def _mark_recording(path: Path) -> None:
    """Edit the recorded answer (same length, so content-length stays right): a visible marker."""
    text = path.read_text(encoding="utf-8")
    assert "Thank you for contacting us." in text
    path.write_text(text.replace("contacting", "CONTACTING"), encoding="utf-8")


def test_record_replays_what_is_recorded_and_records_the_rest(gate_project: MakeProject) -> None:
    project = gate_project({STABLE: FAST}, stable=STABLE)
    project.pytester.makepyfile(test_wf=FIRST_TEST)
    first = _cassette(project, "test_first", STABLE)

    result = _run(project, "record", "-s")

    result.assert_outcomes(passed=1)
    assert _served(project) == {STABLE: 1}
    assert len(_interactions(first)) == 1
    _mark_recording(first)
    marked = first.read_bytes()

    # A second test joins; recording again calls the model only for what is missing.
    project.pytester.makepyfile(test_wf=FIRST_TEST + SECOND_TEST)
    result = _run(project, "record", "-s")

    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert _served(project) == {STABLE: 2}
    # test_first was answered from its (edited) recording, test_second by the model.
    result.stdout.fnmatch_lines(["*FIRST SAYS: Thank you for CONTACTING us.*"])
    result.stdout.fnmatch_lines(["*SECOND SAYS: Thank you for contacting us.*"])
    assert first.read_bytes() == marked
    assert len(_interactions(_cassette(project, "test_second", STABLE))) == 1
    timing = {r.case_id.split("::")[-1]: [c.timing for c in r.calls] for r in _records(project)}
    assert timing == {"test_first": ["recorded"], "test_second": ["live"]}
    assert project.verdict()["mode"] == "record"


def test_rerecord_replaces_the_recordings_of_the_selected_tests(
    gate_project: MakeProject,
) -> None:
    project = gate_project({STABLE: FAST}, stable=STABLE)
    project.pytester.makepyfile(test_wf=FIRST_TEST + SECOND_TEST)
    first = _cassette(project, "test_first", STABLE)
    second = _cassette(project, "test_second", STABLE)

    _run(project, "record").assert_outcomes(passed=2)
    assert _served(project) == {STABLE: 2}
    _mark_recording(first)
    _mark_recording(second)
    second_marked = second.read_bytes()

    result = _run(project, "rerecord", "-s", "-k", "test_first")

    result.assert_outcomes(passed=1, deselected=1)
    assert result.ret == 0
    # The model answered again, and its answer replaced the edited recording (not appended).
    assert _served(project) == {STABLE: 3}
    result.stdout.fnmatch_lines(["*FIRST SAYS: Thank you for contacting us.*"])
    assert "CONTACTING" not in first.read_text(encoding="utf-8")
    assert len(_interactions(first)) == 1
    # A test that was not selected keeps its recording.
    assert second.read_bytes() == second_marked
    assert [c.timing for c in _calls(project)] == ["live"]
    assert project.verdict()["mode"] == "rerecord"


# -- what replay refuses ---------------------------------------------------------------------------

ONE_CASE = """
    import pytest

    @pytest.mark.parametrize("ticket", ["I want a refund for my invoice"], ids=["refund"])
    def test_triage(llm, ticket):
        reply = llm.chat([{"role": "user", "content": ticket}])
        assert reply.text
"""


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_replay_without_a_recording_fails_and_says_how_to_record(
    gate_project: MakeProject, args: tuple[str, ...]
) -> None:
    # The simulator stays up: replay must not use it even when it could.
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=ONE_CASE)

    result = _run(project, "replay", *GATE, *args)

    result.assert_outcomes(failed=2)
    assert project.sim.requests == []
    # Each arm's failure names its model's cassette file and the command that records it.
    output = result.stdout.str()
    assert "no recording" in output
    assert "--modelgate-mode=record" in output
    for model in (STABLE, CANDIDATE):
        assert f"cassettes/test_wf/test_triage[refund]--{model}.yaml" in output, model
    verdict = project.verdict()
    assert verdict["mode"] == "replay"
    assert verdict["verdict"] == "error"
    assert any("recording" in reason for reason in verdict["reasons"]), verdict["reasons"]
    assert result.ret == 3
    assert verdict["exit_status"] == 3
    result.stdout.fnmatch_lines(["*modelgate verdict: ERROR*"])
    # Replay writes nothing, not even an empty cassette.
    assert _cassette_files(project) == {}


def test_a_missing_recording_on_one_arm_is_still_an_error(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=ONE_CASE)
    _run(project, "record", *GATE).assert_outcomes(passed=2)
    _cassette(project, "test_triage[refund]", CANDIDATE).unlink()

    _go_offline(project, monkeypatch)
    result = _run(project, "replay", *GATE)

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*no recording*{CANDIDATE}*"])
    verdict = project.verdict()
    # The stable arm alone cannot be compared: never pass on missing recordings.
    assert verdict["verdict"] == "error"
    assert any("recording" in reason for reason in verdict["reasons"]), verdict["reasons"]
    assert result.ret != 0


@pytest.mark.parametrize(
    "content",
    [
        b"::: not yaml",
        b"interactions: [\n  - {request: broken\n",
        # vcrpy's own format without our mark: a cassette from another tool.
        b"interactions: []\nversion: 1\n",
        b"\xff\xfe\x00 not utf-8",
    ],
    ids=["not-a-cassette", "broken-yaml", "other-tool", "not-utf8"],
)
def test_corrupt_cassette_is_an_error_naming_the_file(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=ONE_CASE)
    _run(project, "record", *GATE).assert_outcomes(passed=2)
    corrupt = _cassette(project, "test_triage[refund]", CANDIDATE)
    corrupt.write_bytes(content)

    _go_offline(project, monkeypatch)
    result = _run(project, "replay", *GATE)

    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1, outcomes
    # Opening the cassette may fail in setup (error) or at the first call (failed).
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == 1
    result.stdout.fnmatch_lines(["*cassettes/test_wf/test_triage[[]refund[]]--sim-candidate.yaml*"])
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert any(str(corrupt) in reason for reason in verdict["reasons"]), verdict["reasons"]
    assert result.ret != 0
    # The broken file is left for the user to look at, not overwritten.
    assert corrupt.read_bytes() == content


def test_corrupt_cassette_in_record_mode_is_kept_and_not_recorded_over(
    gate_project: MakeProject,
) -> None:
    project = gate_project({STABLE: FAST}, stable=STABLE)
    project.pytester.makepyfile(test_wf=ONE_CASE)
    corrupt = _cassette(project, "test_triage[refund]", STABLE)
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text("::: not yaml", encoding="utf-8")

    result = _run(project, "record")

    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, outcomes
    assert "passed" not in outcomes
    result.stdout.fnmatch_lines(["*cassettes/test_wf/test_triage[[]refund[]]--sim-stable.yaml*"])
    # The model was not called for a test whose recordings cannot be read or written.
    assert project.sim.requests == []
    assert corrupt.read_text(encoding="utf-8") == "::: not yaml"
    assert project.verdict()["verdict"] == "error"
    assert result.ret != 0


def test_changed_request_fails_with_a_diff_of_the_body(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    # The prompt lives in a data file, so the new text can only reach the output via the diff.
    prompt = project.pytester.path / "prompt.txt"
    prompt.write_text("I want a refund for my invoice", encoding="utf-8")
    project.pytester.makepyfile(
        test_wf="""
        from pathlib import Path

        def test_ask(llm):
            text = Path(__file__).with_name("prompt.txt").read_text(encoding="utf-8")
            assert llm.chat([{"role": "user", "content": text}]).text
        """
    )
    _run(project, "record", *GATE).assert_outcomes(passed=2)
    prompt.write_text("My parcel from Shenzhen never arrived", encoding="utf-8")

    _go_offline(project, monkeypatch)
    result = _run(project, "replay", *GATE)

    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            f"*cassettes/test_wf/test_ask--{STABLE}.yaml*",
            "*-*I want a refund for my invoice*",
            "*+*My parcel from Shenzhen never arrived*",
        ]
    )
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["mode"] == "replay"
    assert result.ret != 0


CAUGHT_MISS = """
    from pathlib import Path

    import httpx


    def own_client_call(llm):
        with httpx.Client(timeout=10) as client:
            response = client.post(
                llm.base_url.rstrip("/") + "/chat/completions",
                json={"model": llm.model, "messages": [{"role": "user", "content": "Extra."}]},
            )
        response.raise_for_status()


    def test_answer(llm):
        assert llm.chat([{"role": "user", "content": "Hello, I have a question."}]).text
        if Path(__file__).with_name("extra-call.txt").exists():
            # The product survives a failed call by taking its fallback path.
            try:
                if Path(__file__).with_name("extra-call.txt").read_text() == "llm":
                    llm.chat([{"role": "user", "content": "Extra."}])
                else:
                    own_client_call(llm)
            except Exception as exc:
                print(f"FALLBACK AFTER {type(exc).__name__}")
                llm.note_fallback("extra call failed")
"""


@pytest.mark.parametrize("client", ["llm", "own"])
def test_a_missing_recording_the_product_swallows_is_still_an_error(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=CAUGHT_MISS)
    _run(project, "record", *GATE).assert_outcomes(passed=2)
    # Now the test makes a call that was never recorded, and the product catches the failure.
    (project.pytester.path / "extra-call.txt").write_text(client, encoding="utf-8")

    _go_offline(project, monkeypatch)
    result = _run(project, "replay", *GATE, "-s")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*FALLBACK AFTER *"])
    verdict = project.verdict()
    # Both arms took the fallback alike, but the data came from a call nobody recorded.
    assert verdict["verdict"] == "error", verdict["reasons"]
    assert any("recording" in reason for reason in verdict["reasons"]), verdict["reasons"]
    assert result.ret == 3


def test_rerecord_drops_recordings_the_test_no_longer_makes(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project({STABLE: FAST}, stable=STABLE)
    prompt = project.pytester.path / "prompt.txt"
    prompt.write_text("I want a refund for my invoice", encoding="utf-8")
    project.pytester.makepyfile(
        test_wf="""
        from pathlib import Path

        def test_ask(llm):
            text = Path(__file__).with_name("prompt.txt").read_text(encoding="utf-8")
            assert llm.chat([{"role": "user", "content": text}]).text
        """
    )
    cassette = _cassette(project, "test_ask", STABLE)
    _run(project, "record").assert_outcomes(passed=1)
    prompt.write_text("My parcel from Shenzhen never arrived", encoding="utf-8")

    result = _run(project, "rerecord")

    result.assert_outcomes(passed=1)
    assert _served(project) == {STABLE: 2}
    # Replaced, not appended to: the old prompt's recording is gone.
    bodies = [i["request"]["body"] for i in _interactions(cassette)]
    assert len(bodies) == 1, bodies
    assert "My parcel from Shenzhen never arrived" in bodies[0]

    _go_offline(project, monkeypatch)
    _run(project, "replay").assert_outcomes(passed=1)


# -- timing ----------------------------------------------------------------------------------------

SLOW_MS = 300
SLOW_CASES = 8


def test_recorded_latency_survives_replay(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project(
        {STABLE: {"latency_ms": 20}, CANDIDATE: {"latency_ms": SLOW_MS}},
        stable=STABLE,
        # Only the p50 latency is gated: one regression to look for (a p95 over 8 calls is
        # reported, never gated). Each metric is corrected across its own scopes, and this suite
        # has one, so its significance does not hang on other metrics; replay rounds latencies to
        # 0.1 ms, which can tie per-case ratios and move the Wilcoxon test from its exact p (0.008
        # for 8 cases, all slower) to the normal approximation (0.014): both well below 0.05.
        gate={
            "pass_rate_max_drop": None,
            "error_rate_max_rise": None,
            "fallback_rate_max_rise": None,
            "latency_p95_max_ratio": None,
            "ttft_p95_max_ratio": None,
            "cost_per_call_max_ratio": None,
        },
    )
    project.pytester.makepyfile(
        test_wf=f"""
        import pytest

        @pytest.mark.parametrize("n", range({SLOW_CASES}))
        def test_ask(llm, n):
            assert llm.chat([{{"role": "user", "content": f"Question {{n}}, please."}}]).text
        """
    )

    started = time.perf_counter()
    recorded = _run(project, "record", *GATE)
    record_s = time.perf_counter() - started

    recorded.assert_outcomes(passed=2 * SLOW_CASES)
    assert project.verdict()["verdict"] == "fail"
    live = {(c.case_id, c.arm, c.call_index, c.attempt): c.latency_ms for c in _calls(project)}
    assert len(live) == 2 * SLOW_CASES
    candidate_total_s = sum(ms or 0 for (_, arm, _, _), ms in live.items() if arm == "candidate")
    candidate_total_s /= 1000
    assert candidate_total_s >= SLOW_CASES * SLOW_MS / 1000

    _go_offline(project, monkeypatch)
    started = time.perf_counter()
    replayed = _run(project, "replay", *GATE)
    replay_s = time.perf_counter() - started

    replayed.assert_outcomes(passed=2 * SLOW_CASES)
    # A slow model stays slow on replay: the gate still fails it on latency.
    assert replayed.ret == 1
    replayed.stdout.fnmatch_lines(["*p50 latency*REGRESSED*", "*modelgate verdict: FAIL*"])
    verdict = project.verdict()
    assert verdict["mode"] == "replay"
    assert verdict["verdict"] == "fail"
    assert [r["metric"] for r in verdict["regressions"]] == ["latency_p50_ms"]
    p50 = verdict["metrics"]["latency_p50_ms"]
    assert p50["samples"] == {"stable": SLOW_CASES, "candidate": SLOW_CASES}
    assert p50["candidate"] >= SLOW_MS
    # ... but replay itself does not wait: far below the 2.4 s the candidate took recording.
    # (Only against the time the model itself took: the whole record run's wall time includes
    # start-up, and comparing with it failed on a loaded machine.)
    assert replay_s < candidate_total_s / 2, (replay_s, candidate_total_s, record_s)
    # Every replayed call reports the latency measured when it was recorded.
    calls = _calls(project)
    assert len(calls) == 2 * SLOW_CASES
    for call in calls:
        assert call.timing == "recorded"
        was = live[(call.case_id, call.arm, call.call_index, call.attempt)]
        assert was is not None
        assert call.latency_ms == pytest.approx(was, abs=2), call


RETRY_AFTER_S = 2.0


@pytest.mark.parametrize("client", ["llm", "sdk"])
def test_replay_does_not_wait_for_a_recorded_retry_after(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    script = [{"status": 503, "message": "Upstream overloaded.", "retry_after_s": RETRY_AFTER_S}]
    project = gate_project({STABLE: {**FAST, "script": script}}, stable=STABLE)
    project.pytester.makepyfile(
        test_wf=f"""
        HELLO = [{{"role": "user", "content": "Hello, I have a question."}}]

        def test_answer(llm):
            if {client!r} == "sdk":
                reply = llm.openai().chat.completions.create(model=llm.model, messages=HELLO)
                assert reply.choices[0].message.content
            else:
                assert llm.chat(HELLO).attempts == 2
        """
    )

    started = time.perf_counter()
    _run(project, "record").assert_outcomes(passed=1)
    record_s = time.perf_counter() - started
    assert [status for _, _, status in project.sim.requests] == [503, 200]
    assert record_s >= RETRY_AFTER_S

    _go_offline(project, monkeypatch)
    started = time.perf_counter()
    result = _run(project, "replay")
    replay_s = time.perf_counter() - started

    result.assert_outcomes(passed=1)
    assert [(c.attempt, c.status, c.timing) for c in _calls(project)] == [
        (1, 503, "recorded"),
        (2, 200, "recorded"),
    ]
    # The recorded Retry-After is not waited out again: a replay that waited would take at least
    # RETRY_AFTER_S. The pytest session itself takes over 1 s on a loaded machine, hence 2 s.
    assert replay_s < RETRY_AFTER_S, (replay_s, record_s)


# -- streaming -------------------------------------------------------------------------------------

STREAMS = """
    HELLO = [{"role": "user", "content": "Hello, I have a question."}]

    def test_sdk_stream(llm):
        stream = llm.openai().chat.completions.create(
            model=llm.model, messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("Thank you for contacting us.")
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == []
        assert chunks[-1].usage.total_tokens > 0

    def test_chat_stream(llm):
        reply = llm.chat(HELLO, stream=True)
        assert reply.text.startswith("Thank you for contacting us.")
        assert reply.finish_reason == "stop"
        assert reply.usage.completion_tokens > 0
        # ttft_ms 5 and latency_ms 60 in the scenario: live, or as recorded on replay.
        assert reply.ttft_ms >= 5
        assert reply.latency_ms >= 60
        assert reply.ttft_ms < reply.latency_ms
"""


def test_streams_replay_offline(gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> None:
    timing = {"ttft_ms": 5, "latency_ms": 60}
    project = gate_project({STABLE: timing, CANDIDATE: timing}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=STREAMS)
    _run(project, "record", *GATE).assert_outcomes(passed=4)
    recorded = {(c.case_id, c.arm): c for c in _calls(project)}
    body = _cassette(project, "test_sdk_stream", CANDIDATE).read_text(encoding="utf-8")
    assert "data: [DONE]" in body

    _go_offline(project, monkeypatch)
    result = _run(project, "replay", *GATE)

    result.assert_outcomes(passed=4)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["metrics"]["ttft_p95_ms"]["samples"] == {"stable": 2, "candidate": 2}
    calls = _calls(project)
    assert len(calls) == 4
    for call in calls:
        assert call.streamed
        assert call.timing == "recorded"
        was = recorded[(call.case_id, call.arm)]
        assert call.ttft_ms is not None
        assert was.ttft_ms is not None
        assert call.ttft_ms == pytest.approx(was.ttft_ms, abs=2)
        assert call.ttft_ms >= 5
        assert call.latency_ms is not None
        assert call.latency_ms >= 60


# -- secrets ---------------------------------------------------------------------------------------

SECRET_WORKFLOWS = """
    import os

    import httpx

    KEY = os.environ["MODELGATE_TEST_SIM_KEY"]
    MESSAGES = [{"role": "user", "content": "I want a refund for my invoice"}]

    def test_chat(llm):
        assert llm.chat(MESSAGES).text
        assert llm.chat(MESSAGES, stream=True).text

    def test_sdk(llm):
        client = llm.openai()
        assert client.chat.completions.create(model=llm.model, messages=MESSAGES)
        stream = client.chat.completions.create(
            model=llm.model, messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    def test_key_in_body_and_query(llm):
        # A careless product: the key in the prompt, in the query string and in a header.
        message = {"role": "user", "content": f"My API key is {KEY}, is it valid?"}
        assert llm.chat([message]).text
        with httpx.Client() as client:
            response = client.post(
                llm.base_url.rstrip("/") + "/chat/completions",
                params={"key": KEY},
                json={"model": llm.model, "messages": [message]},
                headers={"Authorization": f"Bearer {KEY}", "x-api-key": KEY},
            )
        assert response.status_code == 200, response.text
"""


def _files_holding(root: Path, secret: bytes) -> list[str]:
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file() and secret in path.read_bytes()
    )


def test_no_key_reaches_any_file(gate_project: MakeProject) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=SECRET_WORKFLOWS)
    root = project.pytester.path
    key = project.key.encode()

    recorded = _run(project, "record", *GATE)

    recorded.assert_outcomes(passed=6)
    assert recorded.ret == 0
    files = _cassette_files(project)
    assert len(files) == 6
    assert _files_holding(root, key) == []
    assert project.key not in recorded.stdout.str() + recorded.stderr.str()
    # The key sent in the body was replaced, not just the headers dropped.
    leaky = _cassette(project, "test_key_in_body_and_query", CANDIDATE).read_text(encoding="utf-8")
    assert "<redacted>" in leaky
    for path in _cassette_dir(project).iterdir():
        for interaction in _interactions(path):
            assert "authorization" not in {h.lower() for h in interaction["request"]["headers"]}

    # The scrubbed recordings still answer the (unscrubbed) requests that made them.
    project.sim.stop()
    replayed = _run(project, "replay", *GATE)

    replayed.assert_outcomes(passed=6)
    assert replayed.ret == 0
    assert _files_holding(root, key) == []
    assert project.key not in replayed.stdout.str() + replayed.stderr.str()


# -- a model changes roles -------------------------------------------------------------------------


def test_promoted_candidate_reuses_its_cassettes(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)
    _run(project, "record", "--stable-model", STABLE, "--candidate-model", CANDIDATE)
    files = _cassette_files(project)
    assert len(files) == 2 * len(WORKFLOW_CALLS)

    # The candidate is now the stable model and the old stable model comes back as candidate.
    _go_offline(project, monkeypatch)
    result = _run(project, "replay", "-v", "--stable-model", CANDIDATE, "--candidate-model", STABLE)

    result.assert_outcomes(passed=6)
    assert result.ret == 0
    assert "no recording" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*test_triage[[]refund-stable-{CANDIDATE}[]] PASSED*",
            f"*test_triage[[]refund-candidate-{STABLE}[]] PASSED*",
        ]
    )
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["mode"] == "replay"
    assert verdict["stable"]["model"] == CANDIDATE
    assert verdict["candidate"]["model"] == STABLE
    assert _cassette_files(project) == files
    assert all(c.timing == "recorded" for c in _calls(project))
