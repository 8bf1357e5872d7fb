"""``modelgate analyze`` judges per-case aggregates, never a record per pair: the verdict of a
shadow log is the one the gate's records path gives for the same pairs read as test records
(each side one test of one call, each pair a repeat of its case), and both reading engines
(DuckDB and the streaming Python reader) give the same verdict."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, TestRecord, Usage
from pytest_modelgate.config.settings import GateLimits
from pytest_modelgate.judge.decide import judged_verdict
from pytest_modelgate.verdict.model import validate_verdict
from pytest_modelgate.verdict.shadow import analyze_logs
from pytest_modelgate.verdict.shadowpairs import error_kind, timestamp

duckdb = pytest.importorskip("duckdb", reason="the duckdb extra (make test installs it)")

# Fields a verdict may differ in between two analyses of the same pairs.
_OWN = ("run_id", "started_at", "finished_at")


def _side(rng: random.Random, model: str, worse: bool) -> dict[str, Any]:
    kind = rng.random()
    error = None
    if kind < (0.12 if worse else 0.06):
        error = rng.choice(("server_error", "timeout", "something_new"))
    side: dict[str, Any] = {"model": model, "error_kind": error, "violations": 0}
    if error is not None:
        side["contract_ok"] = None
        return side
    side.update(
        contract_ok=rng.random() > (0.1 if worse else 0.05),
        latency_ms=round(rng.lognormvariate(5.5, 0.4) * (1.2 if worse else 1.0), 1),
        ttft_ms=round(rng.uniform(20, 80), 1) if rng.random() < 0.3 else None,
        prompt_tokens=rng.randint(50, 400),
        completion_tokens=rng.randint(10, 200) if rng.random() < 0.97 else None,
        cost_usd=round(rng.uniform(1e-5, 1e-3), 8) if rng.random() < 0.97 else None,
        attempts=1,
        tool_calls=rng.choice(([], [], ["lookup"], ["lookup", "refund"], ["refund"])),
        reply_language=rng.choice(("en", "en", "en", "zh", None)),
    )
    if rng.random() < 0.8:
        side["json_valid"] = rng.random() > (0.08 if worse else 0.03)
        side["schema_valid"] = side["json_valid"] and rng.random() > 0.02
    return side


def _write_log(path: Path, pairs: int, seed: int, worse: bool) -> list[dict[str, Any]]:
    """Pairs of every shape: a popular question asked again (the same case, sometimes at the
    same millisecond), unknown error kinds, broken contracts, partial usage, tools, languages."""
    rng = random.Random(seed)
    written: list[dict[str, Any]] = []
    cases = [f"{rng.getrandbits(64):016x}" for _ in range(pairs // 2)]
    for i in range(pairs):
        case = cases[i % len(cases)] if rng.random() < 0.5 else rng.choice(cases)
        millis = (i // 3) * 7
        pair = {
            "v": 1,
            "at": f"2026-12-04T10:{millis // 60000 % 60:02d}:{millis // 1000 % 60:02d}."
            f"{millis % 1000:03d}Z",
            "route": "triage",
            "stable": "deepseek-chat",
            "candidate": "qwen-max",
            "case": case,
            "prompt_language": rng.choice(("en", "en", "zh", "de", None)),
            "user": _side(rng, "deepseek-chat", False),
            "shadow": _side(rng, "qwen-max", worse),
        }
        written.append(pair)
    with path.open("w", encoding="utf-8") as out:
        for pair in written:
            out.write(json.dumps(pair) + "\n")
        out.write('{"route": "triage", "user": {"model": "x"}, "sha')  # torn: skipped
    return written


def _records(pairs: list[Mapping[str, Any]]) -> tuple[list[TestRecord], list[TestRecord]]:
    """The pairs as the gate's test records (shadowpairs' docstring says how), written here
    independently of the engines: each pair a repeat of its case, in time order."""

    def order(pair: Mapping[str, Any]) -> tuple[str, float, float, float]:
        def latency(side: str) -> float:
            value = pair[side].get("latency_ms")
            return float("inf") if value is None else float(value)

        return (str(pair["case"]), timestamp(pair["at"]), latency("user"), latency("shadow"))

    seen: dict[str, int] = {}
    arms: dict[str, list[TestRecord]] = {"stable": [], "candidate": []}
    for pair in sorted(pairs, key=order):
        case = str(pair["case"])
        repeat = seen[case] = seen.get(case, -1) + 1
        for arm, side in (("stable", "user"), ("candidate", "shadow")):
            entry = pair[side]
            kind = error_kind(entry.get("error_kind"))
            prompt, completion = entry.get("prompt_tokens"), entry.get("completion_tokens")
            checks = tuple(
                check
                for check, field in (("json", "json_valid"), ("schema", "schema_valid"))
                if entry.get(field) is not None
            )
            call = CallRecord(
                test_id=f"shadow::triage[{case}]",
                case_id=case,
                arm=arm,  # type: ignore[arg-type]
                model=entry["model"],
                repeat=repeat,
                call_index=0,
                started_at=0.0,
                latency_ms=entry.get("latency_ms"),
                ttft_ms=entry.get("ttft_ms"),
                error_kind=kind,  # type: ignore[arg-type]
                usage=None
                if prompt is None and completion is None
                else Usage(prompt_tokens=prompt, completion_tokens=completion),
                cost_usd=entry.get("cost_usd"),
                checks=checks,
                json_valid=entry.get("json_valid"),
                schema_valid=entry.get("schema_valid"),
                tool_calls=tuple(entry.get("tool_calls") or ()),
                streamed=entry.get("ttft_ms") is not None,
                prompt_language=pair.get("prompt_language"),
                reply_language=entry.get("reply_language"),
            )
            passed = kind is None and entry.get("contract_ok") is not False
            arms[arm].append(
                TestRecord(
                    test_id=f"shadow::triage[{case}]",
                    case_id=case,
                    workflow="triage",
                    arm=arm,  # type: ignore[arg-type]
                    model=entry["model"],
                    repeat=repeat,
                    outcome="passed" if passed else "failed",
                    calls=(call,),
                    language=pair.get("prompt_language"),
                )
            )
    return arms["stable"], arms["candidate"]


def _judged_from_records(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    from pytest_modelgate import __version__
    from pytest_modelgate.calls.records import ModelIdentity

    verdict, _ = judged_verdict(
        _records(pairs),
        limits=GateLimits(),
        strict=False,
        has_candidate=True,
        pytest_status=0,
        started_at=datetime.now(timezone.utc),
        common={
            "run_id": "x",
            "kind": "shadow",
            "stable": ModelIdentity(model="deepseek-chat"),
            "candidate": ModelIdentity(model="qwen-max"),
            "mode": "live",
            "repeat": 1,
            "strict": False,
            "plugin_version": __version__,
            "provenance": {},
        },
    )
    return verdict


def _comparable(verdict: Mapping[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in verdict.items() if k not in (*_OWN, "shadow")}
    # Skipped lines are a reason of the analysis only, worded by the engine.
    found["reasons"] = [r for r in found["reasons"] if "skipped" not in r]
    return found


@pytest.mark.parametrize(("pairs", "worse"), [(240, False), (240, True), (5000, True)])
def test_the_aggregates_judge_as_the_records_of_the_same_pairs(
    tmp_path: Path, pairs: int, worse: bool
) -> None:
    log = tmp_path / "shadow.jsonl"
    written = _write_log(log, pairs, seed=pairs + worse, worse=worse)
    verdicts = {}
    for engine in ("python", "duckdb"):
        result = analyze_logs([log], engine=engine)  # type: ignore[arg-type]
        validate_verdict(result.verdict)
        verdicts[engine] = result.verdict
    reference = _judged_from_records(written)
    # The fixture has what the comparison must cover: repeats, failures, changed cases.
    assert verdicts["python"]["shadow"]["cases"] < pairs
    assert reference["cases_changed"]["total"] > 10
    assert reference["tests"]["candidate"]["failed"] > 5
    for engine, verdict in verdicts.items():
        assert verdict["shadow"]["pairs"] == pairs, engine
        assert verdict["shadow"]["skipped_lines"] == 1, engine
        assert _comparable(verdict) == _comparable(reference), engine
    python, duck = verdicts["python"]["shadow"], verdicts["duckdb"]["shadow"]
    assert python["whole_log"] == duck["whole_log"]
    assert python["cases"] == duck["cases"]


def test_numbers_that_are_not_numbers_read_the_same_in_both_engines(tmp_path: Path) -> None:
    base = {"route": "r", "stable": "a", "candidate": "b", "at": "2026-12-04T10:00:00Z"}
    lines = [
        {**base, "case": "c1", "user": {"model": "a", "latency_ms": 10, "cost_usd": "0.1",
         "error_kind": 5}, "shadow": {"model": "b", "latency_ms": 12.5, "json_valid": "yes",
         "tool_calls": ["x", None, 3]}},
        {**base, "case": 7, "at": "not a time", "prompt_language": 3,
         "user": {"model": "a", "latency_ms": True}, "shadow": {"model": "b"}},
        {**base, "case": None, "user": {"model": "a", "latency_ms": 9, "contract_ok": "no"},
         "shadow": {"model": "b", "latency_ms": 11, "error_kind": None}},
    ]  # fmt: skip
    log = tmp_path / "odd.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    results = {e: analyze_logs([log], engine=e) for e in ("python", "duckdb")}  # type: ignore[misc]
    for engine, result in results.items():
        shadow = result.verdict["shadow"]
        # A latency that is a boolean makes the line unusable; the others read as not logged.
        assert (shadow["pairs"], shadow["skipped_lines"], shadow["cases"]) == (2, 1, 2), engine
    assert _comparable(results["python"].verdict) == _comparable(results["duckdb"].verdict)
    assert results["python"].verdict["tests"]["stable"]["failed"] == 1  # the error kind 5


def test_packed_strings_read_back_every_string() -> None:
    import numpy as np

    from pytest_modelgate.verdict.shadowpairs import PackedStrings

    words = ["", "a", "héllo", "日本語", "x" * 40]
    packed = PackedStrings("".join(words), np.asarray([len(w) for w in words]))
    assert len(packed) == 5
    assert list(packed) == words
    assert packed[-1] == words[-1]
    assert packed[1:4] == words[1:4]
    with pytest.raises(IndexError):
        packed[5]
    with pytest.raises(ValueError, match="do not add up"):
        PackedStrings("abc", np.asarray([1, 1]))


def test_a_log_that_needs_more_memory_than_the_bound_is_read_again_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_modelgate.verdict import shadow

    log = tmp_path / "shadow.jsonl"
    _write_log(log, 200, seed=3, worse=False)
    bounded = analyze_logs([log], engine="duckdb")
    calls: list[str | None] = []
    original = shadow._duckdb_pass

    def counting(paths: Any, route: Any, memory: str | None) -> Any:
        calls.append(memory)
        return original(paths, route, memory)

    monkeypatch.setattr(shadow, "_duckdb_pass", counting)
    monkeypatch.setattr(shadow, "_DUCKDB_MEMORY", "64KB")  # far too little to read anything
    retried = analyze_logs([log], engine="duckdb")
    assert calls == ["64KB", None]
    assert _comparable(retried.verdict) == _comparable(bounded.verdict)
