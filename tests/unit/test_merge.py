"""Unit tests of ``verdict.merge``: reading parts, what is refused, the merged verdict."""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, ModelIdentity, TestRecord, Usage
from pytest_modelgate.config.settings import ModelgateConfig
from pytest_modelgate.judge.decide import judged_verdict, record_line
from pytest_modelgate.redaction import redactor_for
from pytest_modelgate.verdict.merge import (
    MergeRefused,
    Part,
    expand_parts,
    merge_parts,
    part_text,
    read_part,
    refusal_verdict,
    write_result,
)
from pytest_modelgate.verdict.model import validate_verdict
from pytest_modelgate.verdict.provenance import cassette_lines_digest, config_digest
from pytest_modelgate.verdict.provenance import tests_digest as digest_of_tests

KEY = "sk-unit-merge-0123456789abcdef"
CASES = [f"case-{i:02d}" for i in range(30)]
RUN_FIELDS = ("run_id", "started_at", "finished_at")


def _settings(**gate: Any) -> dict[str, Any]:
    config = ModelgateConfig.model_validate({"gate": {"min_cases": 4, **gate}})
    model = {
        "name": "m",
        "model_id": "m",
        "provider": None,
        "base_url": "http://127.0.0.1:1/v1",
        "api_key_env": "MODELGATE_UNIT_MERGE_KEY",
        "api_key_env_fallbacks": [],
        "price": None,
        "region": None,
    }
    return {
        "config": config.model_dump(mode="json"),
        "stable": {**model, "name": "stable-model"},
        "candidate": {**model, "name": "candidate-model"},
        "mode": "replay",
        "repeat": 1,
        "strict": False,
    }


def _record(arm: str, case: str, *, latency: float, outcome: str = "passed") -> TestRecord:
    call = CallRecord(
        test_id=f"t.py::test_flow[{case}-{arm}]",
        case_id=f"t.py::test_flow[{case}]",
        arm=arm,  # type: ignore[arg-type]
        model=f"{arm}-model",
        call_index=0,
        started_at=1_700_000_000.0,
        latency_ms=latency,
        status=200,
        usage=Usage(prompt_tokens=100, completion_tokens=20),
        cost_usd=0.001,
        timing="recorded",
    )
    return TestRecord(
        test_id=call.test_id,
        case_id=call.case_id,
        workflow="flow",
        arm=call.arm,
        model=call.model,
        outcome=outcome,  # type: ignore[arg-type]
        calls=(call,),
    )


def _records(cases: list[str]) -> list[TestRecord]:
    records = []
    for case in cases:
        rng = random.Random(case)  # a case's figures, whichever shard it is in
        records.append(_record("stable", case, latency=400 + rng.random() * 50))
        records.append(_record("candidate", case, latency=405 + rng.random() * 50))
    return records


def _header(records: list[TestRecord], **overrides: Any) -> dict[str, Any]:
    settings = overrides.pop("settings", _settings())
    header: dict[str, Any] = {
        "plugin_version": "0.1.0",
        "run_id": overrides.pop("run_id", None) or random.Random().randbytes(8).hex(),
        "kind": "gate",
        "stable": {"model": "stable-model", "provider": None, "base_url": None},
        "candidate": {"model": "candidate-model", "provider": None, "base_url": None},
        "mode": "replay",
        "repeat": 1,
        "strict": False,
        "config_digest": config_digest(settings),
        "settings": settings,
        "git": {"commit": "a" * 40, "dirty": False},
        "tests": {
            "collected": len(records),
            "ids": sorted(r.test_id for r in records),
        },
        "cassettes": sorted(f"cassettes/{r.case_id}-{r.arm}.yaml {'0' * 64}" for r in records),
        "args": [],
        "judge": "built-in",
        "verdict_hooks": [],
        "pytest_exit_status": 0,
        "complete": True,
        "problems": [],
        "started_at": "2026-12-03T10:00:00+00:00",
        "finished_at": "2026-12-03T10:01:00+00:00",
        "records": len(records),
    }
    header.update(overrides)
    return header


def _write(path: Path, records: list[TestRecord], **overrides: Any) -> Path:
    header = _header(records, **overrides)
    redactor = redactor_for(())
    path.write_text(part_text(header, (record_line(r, redactor) for r in records)), "utf-8")
    return path


def _split(tmp_path: Path, shards: int, **overrides: Any) -> list[Part]:
    parts = []
    for k in range(shards):
        cases = CASES[k::shards]
        parts.append(read_part(_write(tmp_path / f"part-{k}.jsonl", _records(cases), **overrides)))
    return parts


def _unsharded() -> dict[str, Any]:
    records = _records(CASES)
    settings = _settings()
    header = _header(records)
    verdict, _status = judged_verdict(
        ([r for r in records if r.arm == "stable"], [r for r in records if r.arm == "candidate"]),
        limits=ModelgateConfig.model_validate(settings["config"]).gate,
        strict=False,
        has_candidate=True,
        pytest_status=0,
        started_at=datetime(2026, 12, 3, 10, tzinfo=timezone.utc),
        common={
            "run_id": "x",
            "kind": "gate",
            "stable": ModelIdentity(model="stable-model"),
            "candidate": ModelIdentity(model="candidate-model"),
            "mode": "replay",
            "repeat": 1,
            "strict": False,
            "plugin_version": "0.1.0",
            "provenance": {
                "git": header["git"],
                "config_digest": header["config_digest"],
                "cassettes_digest": cassette_lines_digest(header["cassettes"]),
                "tests_digest": digest_of_tests(header["tests"]["ids"]),
                "tests_collected": len(records),
            },
        },
    )
    return verdict


def _judged(verdict: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in verdict.items() if key not in RUN_FIELDS}


# -- the merged verdict ------------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_the_merged_verdict_is_the_unsharded_one(tmp_path: Path, shards: int) -> None:
    result = merge_parts(_split(tmp_path, shards))

    validate_verdict(result.verdict)
    assert result.verdict["verdict"] in ("pass", "inconclusive")
    assert result.exit_status == 0
    assert _judged(result.verdict) == _judged(_unsharded())
    assert len(result.records) == 2 * len(CASES)


def test_the_order_of_the_parts_does_not_matter(tmp_path: Path) -> None:
    parts = _split(tmp_path, 3)

    forward = merge_parts(parts).verdict
    backward = merge_parts(parts[::-1]).verdict

    assert _judged(forward) == _judged(backward)
    assert json.dumps(_judged(forward)) == json.dumps(_judged(backward))


def test_the_merged_provenance_combines_the_parts(tmp_path: Path) -> None:
    parts = _split(tmp_path, 2)

    provenance = merge_parts(parts).verdict["provenance"]

    lines = [line for p in parts for line in p.header["cassettes"]]
    ids = [i for p in parts for i in p.header["tests"]["ids"]]
    assert provenance == {
        "git": {"commit": "a" * 40, "dirty": False},
        "config_digest": parts[0].header["config_digest"],
        "cassettes_digest": cassette_lines_digest(lines),
        "tests_digest": digest_of_tests(ids),
        "tests_collected": 2 * len(CASES),
    }


def test_a_regression_in_one_shard_fails_the_merged_verdict(tmp_path: Path) -> None:
    good = _records(CASES[:15])
    bad = [
        _record(arm, case, latency=400, outcome="failed" if arm == "candidate" else "passed")
        for case in CASES[15:]
        for arm in ("stable", "candidate")
    ]
    parts = [
        read_part(_write(tmp_path / "a.jsonl", good)),
        read_part(_write(tmp_path / "b.jsonl", bad)),
    ]

    result = merge_parts(parts)

    assert result.verdict["verdict"] == "fail"
    assert result.exit_status == 1
    assert len(result.verdict["tests"]["cases_failed_candidate_only"]) == 15


def test_an_incomplete_part_makes_the_verdict_error_naming_it(tmp_path: Path) -> None:
    parts = _split(tmp_path, 1)
    broken = read_part(
        _write(
            tmp_path / "crashed.jsonl",
            _records(["late"]),
            complete=False,
            problems=["xdist worker gw1 crashed: node down"],
            pytest_exit_status=1,
        )
    )

    result = merge_parts([*parts, broken])

    validate_verdict(result.verdict)
    assert result.verdict["verdict"] == "error"
    assert result.exit_status == 3
    assert result.verdict["reasons"] == [
        f"shard {tmp_path / 'crashed.jsonl'} is incomplete: xdist worker gw1 crashed: node down"
    ]
    assert result.verdict["rollout"] is None


# -- refused -----------------------------------------------------------------------------------


def test_no_parts_is_refused() -> None:
    with pytest.raises(MergeRefused, match="no records parts"):
        merge_parts([])


def test_a_missing_shard_is_refused_with_expect_parts(tmp_path: Path) -> None:
    with pytest.raises(MergeRefused, match=r"2 records part\(s\) .* --expect-parts says 3"):
        merge_parts(_split(tmp_path, 2), expect_parts=3)


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("candidate", {"model": "other", "provider": None, "base_url": None}, "candidate model"),
        ("stable", {"model": "other", "provider": None, "base_url": None}, "stable model"),
        ("git", {"commit": "b" * 40, "dirty": False}, "git commit"),
        ("git", {"commit": "a" * 40, "dirty": True}, "git commit / dirty state"),
        ("plugin_version", "0.0.9", "plugin version"),
        ("repeat", 2, "repeat"),
        ("strict", True, "strict"),
        ("mode", "live", "mode"),
    ],
)
def test_parts_of_different_runs_are_refused(
    tmp_path: Path, field: str, value: Any, label: str
) -> None:
    first = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3])))
    second = read_part(_write(tmp_path / "b.jsonl", _records(CASES[3:6]), **{field: value}))

    with pytest.raises(MergeRefused) as caught:
        merge_parts([first, second])

    message = str(caught.value)
    assert message.startswith(f"{first.path} and {second.path} come from different runs: ")
    assert label in message


def test_parts_of_different_configurations_are_refused(tmp_path: Path) -> None:
    first = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3])))
    other = _settings(min_cases=10)
    second = read_part(_write(tmp_path / "b.jsonl", _records(CASES[3:6]), settings=other))

    with pytest.raises(MergeRefused, match=r"configuration \(config_digest\)"):
        merge_parts([first, second])


def test_a_case_in_two_parts_is_refused(tmp_path: Path) -> None:
    first = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3]), tests={"ids": None}))
    second = read_part(_write(tmp_path / "b.jsonl", _records(CASES[2:5]), tests={"ids": None}))

    with pytest.raises(MergeRefused, match=r"case-02.*is in both .*a\.jsonl and .*b\.jsonl"):
        merge_parts([first, second])


def test_a_test_selected_in_two_parts_is_refused(tmp_path: Path) -> None:
    first = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3])))
    second = _header(_records(CASES[3:5]))
    second["tests"]["ids"].append(first.header["tests"]["ids"][0])
    path = tmp_path / "b.jsonl"
    records = _records(CASES[3:5])
    path.write_text(part_text(second, (record_line(r, redactor_for(())) for r in records)))

    with pytest.raises(MergeRefused, match="was selected in both"):
        merge_parts([first, read_part(path)])


def test_the_same_part_twice_is_refused(tmp_path: Path) -> None:
    part = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3]), run_id="r1"))
    copy = tmp_path / "copy.jsonl"
    copy.write_text((tmp_path / "a.jsonl").read_text())

    with pytest.raises(MergeRefused, match="are the same part"):
        merge_parts([part, read_part(copy)])


def test_a_recording_that_differs_between_parts_is_refused(tmp_path: Path) -> None:
    first = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:2]), cassettes=["c.yaml 1"]))
    second = read_part(_write(tmp_path / "b.jsonl", _records(CASES[2:4]), cassettes=["c.yaml 2"]))

    with pytest.raises(MergeRefused, match=r"the recording c\.yaml differs between"):
        merge_parts([first, second])


@pytest.mark.parametrize(
    ("overrides", "names"),
    [({"judge": "hook"}, "pytest_modelgate_judge"), ({"verdict_hooks": ["conftest"]}, "conftest")],
)
def test_parts_judged_by_hooks_are_refused(
    tmp_path: Path, overrides: dict[str, Any], names: str
) -> None:
    part = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3]), **overrides))

    with pytest.raises(MergeRefused, match=f"used gate hooks \\({names}\\)"):
        merge_parts([part])


def test_parts_with_plugin_metrics_are_refused(tmp_path: Path) -> None:
    """Merge has no pytest_modelgate_metrics hook: judging without it would drop those metrics."""
    part = read_part(_write(tmp_path / "a.jsonl", _records(CASES[:3]), custom_metrics=["polite"]))

    with pytest.raises(MergeRefused, match=r"plugin metrics \(polite\)"):
        merge_parts([part])


# -- reading parts -----------------------------------------------------------------------------


def test_a_plain_records_file_is_not_a_part(tmp_path: Path) -> None:
    path = tmp_path / "modelgate-verdict.records.jsonl"
    path.write_text(record_line(_records(CASES[:1])[0], redactor_for(())))

    with pytest.raises(MergeRefused, match=r"not a records part .* --modelgate-records PATH"):
        read_part(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "not a records part"),
        (b"{not json\n", "not a records part"),
        (b"\xff\xfe\n", "not UTF-8 text"),
        (b'{"format": "modelgate-records", "version": 2}\n', "version 2, this modelgate reads"),
        (b'{"format": "modelgate-records", "version": 1}\n', "the header has no 'settings'"),
    ],
)
def test_an_unreadable_part_is_refused_naming_it(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / "part.jsonl"
    path.write_bytes(text)

    with pytest.raises(MergeRefused, match=message) as caught:
        read_part(path)
    assert str(caught.value).startswith(str(path))


def test_a_missing_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MergeRefused, match="no such records part"):
        read_part(tmp_path / "nowhere.jsonl")


def test_a_truncated_part_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "part.jsonl", _records(CASES[:3]))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n")

    with pytest.raises(MergeRefused, match=r"announces 6 record\(s\), the file holds 4"):
        read_part(path)


def test_a_corrupt_record_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "part.jsonl", _records(CASES[:3]))
    lines = path.read_text().splitlines()
    lines[3] = '{"case_id": 1}'
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(MergeRefused, match=re.escape(f"{path}: line 4: not a test record")):
        read_part(path)


def test_edited_settings_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "part.jsonl", _records(CASES[:3]))
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["settings"]["config"]["gate"]["min_cases"] = 1
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")

    with pytest.raises(MergeRefused, match="do not match its config_digest"):
        read_part(path)


def test_a_directory_stands_for_its_jsonl_files(tmp_path: Path) -> None:
    (tmp_path / "shards").mkdir()
    for name in ("b.jsonl", "a.jsonl", "notes.txt"):
        (tmp_path / "shards" / name).write_text("")
    single = tmp_path / "c.jsonl"

    assert expand_parts([tmp_path / "shards", single]) == [
        tmp_path / "shards" / "a.jsonl",
        tmp_path / "shards" / "b.jsonl",
        single,
    ]


# -- writing -----------------------------------------------------------------------------------


def test_the_result_is_written_with_its_records_and_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELGATE_UNIT_MERGE_KEY", KEY)
    records = [
        r.model_copy(update={"message": f"failed with key {KEY}"}) for r in _records(CASES[:6])
    ]
    part = read_part(_write(tmp_path / "a.jsonl", records))
    out = tmp_path / "out" / "verdict.json"

    write_result(out, merge_parts([part]), [part])

    verdict = json.loads(out.read_text())
    written = out.with_name("verdict.records.jsonl").read_text()
    assert verdict["records_file"] == "verdict.records.jsonl"
    assert len(written.splitlines()) == 12
    assert KEY not in written
    assert KEY not in out.read_text()


def test_a_refusal_is_an_error_verdict() -> None:
    verdict = refusal_verdict("a.jsonl and b.jsonl come from different runs", [])

    validate_verdict(verdict)
    assert verdict["verdict"] == "error"
    assert verdict["kind"] == "gate"
    assert verdict["exit_status"] == 3
    assert verdict["reasons"] == [
        "modelgate merge refused the parts: a.jsonl and b.jsonl come from different runs"
    ]


# -- the command -------------------------------------------------------------------------------


def test_the_command_needs_parts_and_a_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_modelgate.cli import main

    for argv in (["merge", "--verdict", "v.json"], ["merge", "part.jsonl"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
    assert "required" in capsys.readouterr().err


def test_an_empty_directory_is_refused_and_replaces_an_old_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_modelgate.cli import main

    (tmp_path / "parts").mkdir()
    out = tmp_path / "modelgate-verdict.json"
    out.write_text('{"verdict": "pass"}')

    status = main(["merge", str(tmp_path / "parts"), "--verdict", str(out)])

    assert status == 3
    err = capsys.readouterr().err
    assert (
        err
        == "modelgate merge: refused: no records parts to merge (did every shard fail to upload?)\n"
    )
    assert json.loads(out.read_text())["verdict"] == "error"


def test_the_command_writes_the_merged_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_modelgate.cli import main

    (tmp_path / "parts").mkdir()
    _split(tmp_path / "parts", 2)
    out = tmp_path / "out" / "modelgate-verdict.json"

    status = main(["merge", str(tmp_path / "parts"), "--expect-parts", "2", "--verdict", str(out)])

    verdict = json.loads(out.read_text())
    assert status == verdict["exit_status"] == 0
    assert _judged(verdict) == {
        **_judged(_unsharded()),
        "records_file": "modelgate-verdict.records.jsonl",
    }
    assert capsys.readouterr().out == (
        f"modelgate merge: 2 part(s), 60 record(s): verdict {verdict['verdict']} written to {out}\n"
    )
