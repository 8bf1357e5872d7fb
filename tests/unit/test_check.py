"""``modelgate check``: every refusal, its exit status and its one line; the CLI wiring."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.calls.records import ModelIdentity
from pytest_modelgate.cli import main
from pytest_modelgate.verdict.check import (
    EXIT_GO,
    EXIT_INVALID,
    EXIT_NO_GO,
    EXIT_USAGE,
    Expectations,
    check_file,
    decide,
    format_age,
    load_verdict_file,
    parse_age,
    parse_commit,
)
from pytest_modelgate.verdict.model import error_verdict, validate_verdict, write_verdict_atomic

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FINISHED = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)
NOW = FINISHED + timedelta(minutes=2)
COUNTS = {"passed": 2, "failed": 0, "skipped": 0, "error": 0}


def a_verdict(**changes: Any) -> dict[str, Any]:
    """A schema-valid, complete gate `pass` for candidate qwen-max at COMMIT, then ``changes``."""
    data = error_verdict(
        "placeholder",
        run_id="a" * 32,
        stable=ModelIdentity(model="deepseek-chat"),
        candidate=ModelIdentity(model="qwen-max"),
        mode="replay",
        repeat=1,
        strict=False,
        started_at=FINISHED - timedelta(minutes=1),
        finished_at=FINISHED,
        exit_status=0,
        plugin_version="0.1.0",
        provenance={"git": {"commit": COMMIT, "dirty": False}},
    )
    data.update(
        verdict="pass",
        reasons=["non-inferiority shown"],
        tests={
            "stable": dict(COUNTS),
            "candidate": dict(COUNTS),
            "cases_failed_both": [],
            "cases_failed_candidate_only": [],
            "cases_failed_stable_only": [],
        },
    )
    data.update(changes)
    validate_verdict(data)
    return data


def no_go(data: dict[str, Any], expectations: Expectations | None = None) -> str:
    decision = decide(data, expectations or Expectations(), now=NOW)
    assert decision.exit_code == EXIT_NO_GO, decision
    assert not decision.go
    assert "\n" not in decision.line
    assert decision.line.startswith("modelgate check: no-go: ")
    return decision.line


# -- decisions ----------------------------------------------------------------------------------


def test_a_complete_gate_pass_is_go_with_candidate_commit_and_age() -> None:
    decision = decide(a_verdict(), Expectations(), now=NOW)
    assert decision.go
    assert decision.exit_code == EXIT_GO
    assert (
        decision.line
        == "modelgate check: go: pass for candidate qwen-max (commit 0123456, 2 min old)"
    )


def test_every_expectation_met_is_go() -> None:
    expectations = Expectations(
        candidate="qwen-max", stable="deepseek-chat", commit=COMMIT[:7], max_age_s=3600
    )
    assert decide(a_verdict(), expectations, now=NOW).go


def test_incomplete_verdict_is_no_verdict_to_judge() -> None:
    decision = decide(a_verdict(complete=False), Expectations(), now=NOW)
    assert decision.exit_code == EXIT_INVALID
    assert decision.line.startswith("modelgate check: invalid: the verdict is incomplete")


def test_smoke_run_is_refused_saying_so() -> None:
    data = a_verdict(kind="smoke", candidate=None)
    data["tests"]["candidate"] = None
    assert "a smoke run" in no_go(data)


def test_a_kind_this_check_does_not_know_is_refused() -> None:
    # Within schema version 2 new kinds may appear; only those this check knows approve one.
    data = a_verdict()
    data["kind"] = "canary-report"
    assert "a canary-report verdict, not a gate run" in no_go(data)


def test_a_shadow_analysis_pass_is_go() -> None:
    # `modelgate analyze` judged production pairs with the gate's judge: as good as a gate run.
    decision = decide(a_verdict(kind="shadow"), Expectations(), now=NOW)
    assert decision.go
    assert decision.line.startswith("modelgate check: go: pass for candidate qwen-max")


@pytest.mark.parametrize("verdict", ["fail", "error"])
def test_fail_and_error_are_no_go_with_the_first_reason(verdict: str) -> None:
    line = no_go(a_verdict(verdict=verdict, reasons=["p95 latency rose\nbeyond x1.2"]))
    assert line == f"modelgate check: no-go: verdict {verdict}: p95 latency rose beyond x1.2"


def test_inconclusive_only_with_allow_inconclusive() -> None:
    data = a_verdict(verdict="inconclusive")
    assert "--allow-inconclusive" in no_go(data)
    decision = decide(data, Expectations(allow_inconclusive=True), now=NOW)
    assert decision.go
    assert decision.line.startswith("modelgate check: go: inconclusive for candidate qwen-max")


def test_a_pass_whose_run_exited_non_zero_is_refused() -> None:
    assert "exited with status 1" in no_go(a_verdict(exit_status=1))


def test_another_candidate_or_stable_is_refused() -> None:
    line = no_go(a_verdict(), Expectations(candidate="glm-4"))
    assert "candidate 'qwen-max', not 'glm-4'" in line
    line = no_go(a_verdict(), Expectations(stable="gpt-4o"))
    assert "stable 'deepseek-chat', not 'gpt-4o'" in line


def test_another_commit_no_commit_or_a_dirty_tree_is_refused() -> None:
    assert "judged commit 0123456789ab, not ffffffffffff" in no_go(
        a_verdict(), Expectations(commit="f" * 40)
    )
    provenance = a_verdict()["provenance"]
    assert "records no git commit" in no_go(
        a_verdict(provenance={**provenance, "git": None}), Expectations(commit=COMMIT)
    )
    dirty = {**provenance, "git": {"commit": COMMIT, "dirty": True}}
    assert "dirty" in no_go(a_verdict(provenance=dirty), Expectations(commit=COMMIT))
    # Without --expect-commit a dirty verdict goes, and its line says it was dirty.
    line = decide(a_verdict(provenance=dirty), Expectations(), now=NOW).line
    assert "(commit 0123456, dirty, 2 min old)" in line


def test_an_old_or_future_verdict_is_refused_with_max_age() -> None:
    line = no_go(a_verdict(), Expectations(max_age_s=60))
    assert "the verdict is 2 min old, older than --max-age 1 min" in line
    future = decide(a_verdict(), Expectations(max_age_s=60), now=FINISHED - timedelta(hours=1))
    assert future.exit_code == EXIT_NO_GO
    assert "in the future" in future.line


# -- reading the file -----------------------------------------------------------------------------


def test_unreadable_files_are_invalid_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "latin1.json").write_bytes(b'{"verdict": "caf\xe9"}')
    (tmp_path / "empty.json").write_text("", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    (tmp_path / "v1.json").write_text(json.dumps({"schema_version": "1"}), encoding="utf-8")
    broken = a_verdict()
    del broken["provenance"]
    (tmp_path / "schema.json").write_text(json.dumps(broken), encoding="utf-8")
    expected = {
        "absent.json": "no verdict file at",
        "dir": "is a directory",
        "latin1.json": "is not UTF-8",
        "empty.json": "is empty",
        "bad.json": "is not JSON (line 1",
        "list.json": "holds a JSON list",
        "v1.json": "schema_version '1'",
        "schema.json": "does not match the verdict schema: $: 'provenance' is a required",
    }
    for name, words in expected.items():
        decision = check_file(tmp_path / name, Expectations())
        assert decision.exit_code == EXIT_INVALID, name
        assert decision.line.startswith(f"modelgate check: invalid: {tmp_path / name}") or (
            decision.line.startswith("modelgate check: invalid: no verdict file at")
        ), decision.line
        assert words in decision.line, (name, decision.line)
        assert "\n" not in decision.line


def test_load_verdict_file_returns_the_data(tmp_path: Path) -> None:
    path = tmp_path / "v.json"
    write_verdict_atomic(path, a_verdict())
    assert load_verdict_file(path)["verdict"] == "pass"


# -- argument parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), ("1.5H", 5400)],
)
def test_parse_age(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "-1h", "0", "h"])
def test_parse_age_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="age"):
        parse_age(text)


def test_parse_commit_and_format_age() -> None:
    assert parse_commit(" ABCDEF1 ") == "abcdef1"
    for bad in ("abc", "HEAD~1", "g" * 40):
        with pytest.raises(ValueError, match="not a commit id"):
            parse_commit(bad)
    assert [format_age(s) for s in (5, 150, 7200, 5 * 86400)] == ["5 s", "2 min", "2 h", "5 days"]


# -- the command line -----------------------------------------------------------------------------


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["check", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_go_prints_one_line_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v.json"
    recent = datetime.now(timezone.utc)
    write_verdict_atomic(path, a_verdict(finished_at=recent.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
    status, out, err = run_check(
        capsys,
        str(path),
        "--expect-candidate",
        "qwen-max",
        "--expect-commit",
        COMMIT,
        "--max-age",
        "1h",
    )
    assert (status, err) == (0, "")
    assert out.count("\n") == 1
    assert out.startswith("modelgate check: go: pass for candidate qwen-max (commit 0123456, ")


def test_cli_refusals_are_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "v.json"
    write_verdict_atomic(path, a_verdict(verdict="fail"))
    status, out, err = run_check(capsys, str(path))
    assert (status, out, err.count("\n")) == (1, "", 1)
    assert err.startswith("modelgate check: no-go: verdict fail")
    status, out, err = run_check(capsys, str(tmp_path))
    assert (status, out, err.count("\n")) == (3, "", 1)
    assert "is a directory" in err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--max-age", "soon"), "is not an age"),
        (("--expect-commit", "xyz"), "not a commit id"),
        (("--expect-candidate", " "), "--expect-candidate is empty"),
    ],
)
def test_cli_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], words: str
) -> None:
    path = tmp_path / "v.json"
    write_verdict_atomic(path, a_verdict())
    status, _, err = run_check(capsys, str(path), *args)
    assert status == EXIT_USAGE
    assert err.startswith("modelgate check: usage: ")
    assert words in err
    assert err.count("\n") == 1


def test_cli_expect_commit_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "v.json"
    write_verdict_atomic(path, a_verdict())
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    status, _, err = run_check(capsys, str(path), "--expect-commit", "HEAD")
    assert status == EXIT_USAGE
    assert "not in a git repository" in err

    repo = tmp_path / "repo"
    repo.mkdir()
    for command in (
        ["init", "-q"],
        [
            "-c",
            "user.email=a@b.invalid",
            "-c",
            "user.name=a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    ):
        subprocess.run(["git", *command], cwd=repo, check=True, capture_output=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    monkeypatch.chdir(repo)
    status, _, err = run_check(capsys, str(path), "--expect-commit", "head")
    assert status == EXIT_NO_GO
    assert f"not {head[:12]}" in err
    provenance = {**a_verdict()["provenance"], "git": {"commit": head, "dirty": False}}
    write_verdict_atomic(path, a_verdict(provenance=provenance))
    status, out, _ = run_check(capsys, str(path), "--expect-commit", "HEAD")
    assert status == EXIT_GO
    assert f"(commit {head[:7]}, " in out


def test_show_exits_3_in_one_line_for_a_directory_or_non_utf8_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err == f"modelgate: {tmp_path} is a directory, not a verdict file\n"
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b"\xff\xfe{}")
    assert main(["show", str(latin1)]) == 3
    err = capsys.readouterr().err
    assert err == f"modelgate: {latin1} is not UTF-8 text (byte 0)\n"
    listing = tmp_path / "list.json"
    listing.write_text("[1]", encoding="utf-8")
    assert main(["show", str(listing)]) == 3
    assert "expected a JSON object" in capsys.readouterr().err
