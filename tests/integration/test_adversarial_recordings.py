"""Issue 10, recordings: tampered cassettes, replay pricing by recorded time, safe pruning.

Every test records real cassettes from the simulator on loopback (``--modelgate-mode=record``),
then edits or replays them the way the issue describes, and checks the verdict on disk and the
exit status. The product under test catches every exception (``try: llm.chat(...) except
Exception: pass``), as a product with a fallback path does: a cassette that cannot be played must
still make the run an ``error``, never a quiet pass.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from gatesettings import loose_gate

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
GATE = ("--stable-model", STABLE, "--candidate-model", CANDIDATE)
FAST: dict[str, Any] = {"latency_ms": 4}
SMALL_RUN_GATE: dict[str, Any] = loose_gate()
RERECORD = "--modelgate-mode=rerecord"

MakeProject = Callable[..., "GateProject"]

# A product that survives any failure of the model call: what the gate must not be fooled by.
CATCHING = """
    import pytest

    @pytest.mark.parametrize("ticket", ["refund", "parcel", "invoice"])
    def test_triage(llm, ticket):
        try:
            llm.chat([{"role": "user", "content": f"Help me with my {ticket}, please."}])
        except Exception as exc:
            print(f"FALLBACK AFTER {type(exc).__name__}: {exc}")
"""


def _cassette(project: GateProject, case: str, model: str, suffix: str = "") -> Path:
    return project.pytester.path / "cassettes" / "test_wf" / f"{case}--{model}{suffix}.yaml"


def _cassettes(project: GateProject) -> list[str]:
    root = project.pytester.path / "cassettes"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml"))


def _go_offline(project: GateProject, monkeypatch: pytest.MonkeyPatch) -> None:
    project.sim.stop()
    monkeypatch.delenv(project.key_env)


def _recorded(project: GateProject, *args: str, passed: int = 6) -> None:
    project.pytester.makepyfile(test_wf=CATCHING)
    result = project.pytester.runpytest("--modelgate-mode=record", *GATE, *args)
    result.assert_outcomes(passed=passed)


def _edit(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Change the parsed cassette and write it back as YAML (as a person or a script would)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _response_headers(data: dict[str, Any]) -> dict[str, Any]:
    headers: dict[str, Any] = data["interactions"][0]["response"]["headers"]
    return headers


def _assert_error_naming(project: GateProject, result: pytest.RunResult, path: Path) -> None:
    verdict = project.verdict()
    assert verdict["verdict"] == "error", verdict["reasons"]
    assert result.ret == 3
    reasons = [r for r in verdict["reasons"] if str(path) in r]
    assert reasons, verdict["reasons"]
    assert any(RERECORD in r for r in reasons), reasons


# -- item 3: recordings without timing -------------------------------------------------------------


def _drop_timing(data: dict[str, Any]) -> None:
    del _response_headers(data)["x-modelgate-timing"]


def _garble_timing(data: dict[str, Any]) -> None:
    _response_headers(data)["x-modelgate-timing"] = ["{not json"]


def _negative_timing(data: dict[str, Any]) -> None:
    _response_headers(data)["x-modelgate-timing"] = [
        '{"v":1,"headers_ms":-5,"ttft_ms":null,"total_ms":-5,"chunks_ms":[],"cut":false}'
    ]


@pytest.mark.parametrize(
    "tamper", [_drop_timing, _garble_timing, _negative_timing], ids=["dropped", "garbled", "neg"]
)
def test_item3_a_replayed_call_without_its_recorded_timing_is_an_error(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, tamper: Callable[..., None]
) -> None:
    """Item 3: missing or invalid timing never turns into the replay clock's 0.4 ms latency."""
    project = gate_project(
        {STABLE: FAST, CANDIDATE: {"latency_ms": 60}}, stable=STABLE, gate=SMALL_RUN_GATE
    )
    _recorded(project)
    tampered = _cassette(project, "test_triage[refund]", CANDIDATE)
    _edit(tampered, tamper)

    _go_offline(project, monkeypatch)
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE)

    _assert_error_naming(project, result, tampered)
    assert "x-modelgate-timing" in result.stdout.str()


def test_item3_under_xdist_too(gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 3 with two xdist workers: the refusal on a worker reaches the controller's verdict."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    _recorded(project)
    tampered = _cassette(project, "test_triage[invoice]", STABLE)
    _edit(tampered, _drop_timing)

    _go_offline(project, monkeypatch)
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE, "-n", "2")

    _assert_error_naming(project, result, tampered)


# -- item 4: malformed cassettes -------------------------------------------------------------------


def _header_list(data: dict[str, Any]) -> None:
    _response_headers(data)["content-type"] = [["application/json"]]


def _header_int(data: dict[str, Any]) -> None:
    _response_headers(data)["x-request-id"] = [12345]


def _negative_status(data: dict[str, Any]) -> None:
    data["interactions"][0]["response"]["status"]["code"] = -1


def _binary_body(data: dict[str, Any]) -> None:
    data["interactions"][0]["response"]["body"]["string"] = b"\x89PNG\r\n\x1a\n\xff\xfe"


def _request_header_int(data: dict[str, Any]) -> None:
    data["interactions"][0]["request"]["headers"]["content-type"] = [7]


@pytest.mark.parametrize(
    "tamper",
    [_header_list, _header_int, _negative_status, _binary_body, _request_header_int],
    ids=["header-list", "header-int", "status-1", "binary-body", "request-header-int"],
)
def test_item4_a_cassette_that_cannot_be_played_is_an_error(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, tamper: Callable[..., None]
) -> None:
    """Item 4: a malformed interaction is refused on load, even if the product catches errors."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    _recorded(project)
    tampered = _cassette(project, "test_triage[parcel]", CANDIDATE)
    _edit(tampered, tamper)
    before = tampered.read_bytes()

    _go_offline(project, monkeypatch)
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE)

    _assert_error_naming(project, result, tampered)
    assert "interaction 1" in result.stdout.str()
    assert tampered.read_bytes() == before


def _alias_bomb(levels: int) -> str:
    """A YAML billion-laughs: each level repeats the previous one ten times."""
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return "\n".join(lines)


def test_item4_a_cassette_with_yaml_aliases_is_refused_before_expanding(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 4: vcrpy never writes aliases; a cassette with one is refused, quickly."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)
    _recorded(project)
    tampered = _cassette(project, "test_triage[invoice]", CANDIDATE)
    text = tampered.read_text(encoding="utf-8")
    # The bomb sits in the metadata, and one response header refers to it.
    text = text.replace("interactions:\n", f"metadata:\n{_alias_bomb(6)}\ninteractions:\n", 1)
    text = re.sub(r"(\n      x-request-id:\n)      - \S+", r"\1      - *l6", text, count=1)
    assert "*l6" in text
    tampered.write_text(text, encoding="utf-8")

    _go_offline(project, monkeypatch)
    started = time.perf_counter()
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE)
    elapsed = time.perf_counter() - started

    _assert_error_naming(project, result, tampered)
    result.stdout.fnmatch_lines(["*YAML alias*"])
    assert elapsed < 10, elapsed


# -- item 6: replay prices a call by the time it was recorded --------------------------------------

# A Tuesday: 12:00 UTC is off-peak for DeepSeek, 07:00 UTC is peak (2x).
OFF_PEAK = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc).timestamp()
PEAK = datetime(2026, 12, 1, 7, 0, tzinfo=timezone.utc).timestamp()
PRICED_CASES = 8
# deepseek-flash's off-peak list price, without a peak rule: what deepseek-chat costs off-peak.
FLASH_OFF_PEAK = {"input": 0.15, "cached_input": 0.003, "output": 0.60}


def _wall_clock_at(monkeypatch: pytest.MonkeyPatch, at: float) -> None:
    """Make the wall clock read ``at`` (and run on from there) for the in-process run."""
    real = time.time
    offset = at - real()
    monkeypatch.setattr(time, "time", lambda: real() + offset)


def test_item6_replay_prices_calls_by_their_recording_time(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 6: the same cassettes give the same cost and verdict at peak and off-peak."""
    project = gate_project(
        {STABLE: FAST, "deepseek-chat": FAST},
        stable=STABLE,
        gate={**SMALL_RUN_GATE, "cost_per_call_max_ratio": 1.5},
        prices={STABLE: FLASH_OFF_PEAK},
    )
    config = yaml.safe_load((project.pytester.path / "modelgate.yaml").read_text("utf-8"))
    # The catalog's deepseek-chat: billed as deepseek-flash, 2x at peak; only the URL is ours.
    del config["models"]["deepseek-chat"]["price"]
    (project.pytester.path / "modelgate.yaml").write_text(yaml.safe_dump(config), "utf-8")
    project.pytester.makepyfile(
        test_wf=f"""
        import pytest

        @pytest.mark.parametrize("n", range({PRICED_CASES}))
        def test_ask(llm, n):
            assert llm.chat([{{"role": "user", "content": f"Question {{n}}, please."}}]).text
        """
    )
    gate = ("--stable-model", STABLE, "--candidate-model", "deepseek-chat")
    with monkeypatch.context() as clock:
        _wall_clock_at(clock, OFF_PEAK)
        recorded = project.pytester.runpytest("--modelgate-mode=record", *gate)
    recorded.assert_outcomes(passed=2 * PRICED_CASES)
    assert project.verdict()["verdict"] == "pass", project.verdict()["reasons"]

    _go_offline(project, monkeypatch)
    costs = {}
    for name, at in (("off-peak", OFF_PEAK), ("peak", PEAK)):
        with monkeypatch.context() as clock:
            _wall_clock_at(clock, at)
            result = project.pytester.runpytest("--modelgate-mode=replay", *gate)
        verdict = project.verdict()
        assert verdict["verdict"] == "pass", (name, verdict["reasons"])
        assert result.ret == 0, name
        costs[name] = verdict["metrics"]["cost_per_call_usd"]
    assert costs["peak"] == costs["off-peak"]
    assert costs["peak"]["candidate"] == pytest.approx(costs["peak"]["stable"])


def test_item6_a_call_recorded_at_peak_replays_at_the_peak_price(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 6: the recording time is what counts, whatever the time of the replay."""
    project = gate_project(
        {STABLE: FAST, "deepseek-chat": FAST},
        stable=STABLE,
        gate={**SMALL_RUN_GATE, "cost_per_call_max_ratio": 1.5},
        prices={STABLE: FLASH_OFF_PEAK},
    )
    config = yaml.safe_load((project.pytester.path / "modelgate.yaml").read_text("utf-8"))
    del config["models"]["deepseek-chat"]["price"]
    (project.pytester.path / "modelgate.yaml").write_text(yaml.safe_dump(config), "utf-8")
    project.pytester.makepyfile(
        test_wf=f"""
        import pytest

        @pytest.mark.parametrize("n", range({PRICED_CASES}))
        def test_ask(llm, n):
            assert llm.chat([{{"role": "user", "content": f"Question {{n}}, please."}}]).text
        """
    )
    gate = ("--stable-model", STABLE, "--candidate-model", "deepseek-chat")
    with monkeypatch.context() as clock:
        _wall_clock_at(clock, PEAK)
        project.pytester.runpytest("--modelgate-mode=record", *gate)
    live = project.verdict()
    assert live["verdict"] == "fail", live["reasons"]

    _go_offline(project, monkeypatch)
    with monkeypatch.context() as clock:
        _wall_clock_at(clock, OFF_PEAK)
        result = project.pytester.runpytest("--modelgate-mode=replay", *gate)
    verdict = project.verdict()
    assert verdict["verdict"] == "fail", verdict["reasons"]
    assert result.ret == 1
    assert verdict["metrics"]["cost_per_call_usd"] == live["metrics"]["cost_per_call_usd"]


# -- item 9: pruning -------------------------------------------------------------------------------


def _prune_project(gate_project: MakeProject) -> GateProject:
    return gate_project(
        {STABLE: FAST, CANDIDATE: FAST, "sim-other": FAST},
        stable=STABLE,
        gate=SMALL_RUN_GATE,
    )


def _forget_model(project: GateProject, model: str) -> None:
    """Drop ``model`` from modelgate.yaml, as if it was named on the command line once."""
    path = project.pytester.path / "modelgate.yaml"
    config = yaml.safe_load(path.read_text("utf-8"))
    del config["models"][model]
    path.write_text(yaml.safe_dump(config), "utf-8")


def test_item9_plain_prune_keeps_repeats_and_other_models(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: --modelgate-prune on a plain run keeps -rep2 and another model's cassettes."""
    project = _prune_project(gate_project)
    _recorded(project, "--modelgate-repeat=2", passed=12)
    other = ("--stable-model", STABLE, "--candidate-model", "sim-other")
    project.pytester.runpytest("--modelgate-mode=record", *other).assert_outcomes(passed=6)
    # A retired test of this run's models: the only thing a plain prune may delete.
    retired = _cassette(project, "test_retired", CANDIDATE)
    retired.write_bytes(_cassette(project, "test_triage[refund]", CANDIDATE).read_bytes())
    _forget_model(project, "sim-other")
    everything = _cassettes(project)
    # 3 cases x 2 models x 2 repeats, 3 cases of sim-other, the retired test.
    assert len(everything) == 12 + 3 + 1

    _go_offline(project, monkeypatch)
    dry = project.pytester.runpytest("--modelgate-mode=replay", *GATE, "--modelgate-prune=dry-run")
    dry.assert_outcomes(passed=6)
    assert dry.ret == 0
    dry.stdout.fnmatch_lines(["*test_retired--sim-candidate.yaml*would be deleted*"])
    assert _cassettes(project) == everything

    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE, "--modelgate-prune")

    result.assert_outcomes(passed=6)
    assert result.ret == 0
    remaining = _cassettes(project)
    assert sorted(set(everything) - set(remaining)) == ["test_wf/test_retired--sim-candidate.yaml"]
    assert sum("--rep2" in name for name in remaining) == 6
    assert sum("--sim-other" in name for name in remaining) == 3
    result.stdout.fnmatch_lines(["*--modelgate-prune=all*"])

    everything = remaining
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE, "--modelgate-prune=all")
    result.assert_outcomes(passed=6)
    remaining = _cassettes(project)
    assert len(remaining) == 6
    assert not any("--rep2" in name or "sim-other" in name for name in remaining)


def test_item9_no_prune_after_an_error_verdict(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: a run whose verdict is `error` prunes nothing."""
    project = _prune_project(gate_project)
    _recorded(project)
    retired = _cassette(project, "test_retired", CANDIDATE)
    retired.write_bytes(_cassette(project, "test_triage[refund]", CANDIDATE).read_bytes())
    # One broken cassette makes the verdict `error`.
    _cassette(project, "test_triage[parcel]", STABLE).write_text("::: not yaml", "utf-8")

    _go_offline(project, monkeypatch)
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE, "--modelgate-prune")

    assert project.verdict()["verdict"] == "error"
    assert result.ret == 3
    assert retired.exists()
    result.stdout.fnmatch_lines(["*nothing removed*error*"])


def test_item9_a_full_run_summarises_unused_recordings_in_one_line(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 9: the inventory is one summary line, not one line per file."""
    project = _prune_project(gate_project)
    _recorded(project)
    for name in ("test_old_a", "test_old_b", "test_old_c"):
        _cassette(project, name, CANDIDATE).write_bytes(
            _cassette(project, "test_triage[refund]", CANDIDATE).read_bytes()
        )

    _go_offline(project, monkeypatch)
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE)

    assert result.ret == 0
    out = result.stdout.str()
    assert "test_old_a" not in out
    result.stdout.fnmatch_lines(["recordings:", "*3 recordings unused: 3 cassettes*"])


@pytest.mark.parametrize("value", ["sometimes", "tests"])
def test_item9_a_bad_prune_value_is_a_usage_error(gate_project: MakeProject, value: str) -> None:
    """Item 9: --modelgate-prune takes all or dry-run; anything else is refused, naming it."""
    project = _prune_project(gate_project)
    project.pytester.makepyfile(test_wf=CATCHING)

    result = project.pytester.runpytest(*GATE, f"--modelgate-prune={value}")

    assert result.ret == 4
    result.stderr.fnmatch_lines([f"*--modelgate-prune*{value}*all*dry-run*"])
    assert project.verdict()["verdict"] == "error"


@pytest.mark.parametrize("value", ["true", "dry-run", "all", "false"])
def test_item9_the_ini_twin_accepts_the_same_values(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Item 9: modelgate_prune in the ini file keeps working (true/false/all/dry-run)."""
    project = _prune_project(gate_project)
    _recorded(project)
    retired = _cassette(project, "test_retired", CANDIDATE)
    retired.write_bytes(_cassette(project, "test_triage[refund]", CANDIDATE).read_bytes())
    project.pytester.makeini(f"[pytest]\nmodelgate_prune = {value}\n")

    _go_offline(project, monkeypatch)
    result = project.pytester.runpytest("--modelgate-mode=replay", *GATE)

    assert result.ret == 0
    assert retired.exists() == (value in ("dry-run", "false"))
