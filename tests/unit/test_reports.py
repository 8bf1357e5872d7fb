"""Unit tests of the reports: Markdown, HTML with inline SVG, GitHub annotations, the CLI."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.calls.records import CallRecord, ModelIdentity, TestRecord, Usage
from pytest_modelgate.cli import main
from pytest_modelgate.judge.model import RunData
from pytest_modelgate.judge.paired import PairedJudge
from pytest_modelgate.verdict.model import build_verdict, error_verdict, validate_verdict
from pytest_modelgate.verdict.reports import github_lines, render_html, render_markdown
from pytest_modelgate.verdict.reports.cases import Fields, case_changes, latencies, load_records
from pytest_modelgate.verdict.reports.github import (
    annotation_lines,
    append_step_summary,
    escape_data,
    escape_property,
)
from pytest_modelgate.verdict.reports.html import html_report
from pytest_modelgate.verdict.reports.markdown import markdown_report, md_escape

STARTED = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)
EVIL = '<script>alert("x")</script>'


def record(
    arm: str,
    case: str,
    *,
    outcome: str = "passed",
    workflow: str = "triage",
    language: str = "en",
    latency_ms: float = 400.0,
    json_valid: bool = True,
    message: str | None = None,
) -> TestRecord:
    call = CallRecord(
        test_id=f"{case}-{arm}",
        case_id=case,
        arm=arm,  # type: ignore[arg-type]
        model=f"{arm}-model",
        call_index=0,
        started_at=1_700_000_000.0,
        latency_ms=latency_ms,
        status=200,
        usage=Usage(prompt_tokens=100, completion_tokens=20),
        cost_usd=0.0001 if arm == "stable" else 0.0002,
        json_valid=json_valid,
        checks=("json",),
        prompt_language=language,
        reply_language=language,
    )
    return TestRecord(
        test_id=call.test_id,
        case_id=case,
        workflow=workflow,
        arm=arm,  # type: ignore[arg-type]
        model=call.model,
        outcome=outcome,  # type: ignore[arg-type]
        calls=(call,),
        message=message,
        language=language,
    )


def arms(
    n: int = 40, *, failing: Sequence[int] = (), case_name: str = "tests/test_flow.py::case"
) -> tuple[list[TestRecord], list[TestRecord]]:
    """``n`` paired cases in two workflows and two languages; ``failing`` fail on the candidate
    with broken JSON, and the candidate is 1.6x slower."""
    stable, candidate = [], []
    for i in range(n):
        case = f"{case_name}[{i}]"
        workflow = ("triage", "reply")[i % 2]
        language = ("en", "de")[(i // 2) % 2]
        base = 300.0 + 7 * i
        stable.append(record("stable", case, workflow=workflow, language=language, latency_ms=base))
        bad = i in failing
        candidate.append(
            record(
                "candidate",
                case,
                outcome="failed" if bad else "passed",
                workflow=workflow,
                language=language,
                latency_ms=base * 1.6,
                json_valid=not bad,
                message=f"AssertionError: broken JSON in case {i}" if bad else None,
            )
        )
    return stable, candidate


def make_verdict(
    stable_records: list[TestRecord], candidate_records: list[TestRecord], **overrides: Any
) -> dict[str, Any]:
    run = RunData(stable=stable_records, candidate=candidate_records)
    judgement = PairedJudge(min_cases=10).judge(run)
    kwargs: dict[str, Any] = {
        "run_id": "b" * 32,
        "stable": ModelIdentity(model="deepseek-chat", base_url="https://api.deepseek.com"),
        "candidate": ModelIdentity(model="qwen-max"),
        "mode": "replay",
        "repeat": 1,
        "strict": False,
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(minutes=1),
        "exit_status": 1,
        "plugin_version": "0.1.0",
    }
    kwargs.update(overrides)
    data = build_verdict(judgement, **kwargs)
    data["records_file"] = "verdict.records.jsonl"
    validate_verdict(data)
    return data


def write_run(
    tmp_path: Path,
    stable_records: list[TestRecord],
    candidate_records: list[TestRecord],
    **overrides: Any,
) -> tuple[dict[str, Any], Path]:
    data = make_verdict(stable_records, candidate_records, **overrides)
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "verdict.records.jsonl").write_text(
        "".join(r.model_dump_json() + "\n" for r in (*stable_records, *candidate_records)),
        encoding="utf-8",
    )
    return data, path


@pytest.fixture
def failing_run(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    return write_run(tmp_path, *arms(failing=range(0, 40, 3)))


# --------------------------------------------------------------------------------------------
# the per-case view


def test_case_changes_name_each_changed_case_with_reason_latency_and_cost(
    failing_run: tuple[dict[str, Any], Path],
) -> None:
    data, path = failing_run
    loaded = load_records(data, path)
    assert loaded.problem is None
    assert len(loaded.records) == 80
    changes = case_changes(loaded.records)
    ids = [c.case_id for c in changes]
    # Natural order: case[3] before case[12].
    assert ids == [f"tests/test_flow.py::case[{i}]" for i in range(0, 40, 3)]
    first = changes[0]
    assert first.changes == ("pass -> fail", "invalid JSON (candidate)")
    assert first.reason == "AssertionError: broken JSON in case 0"
    assert (first.stable.latency_ms, first.candidate.latency_ms) == (300.0, 480.0)
    assert (first.stable.cost_usd, first.candidate.cost_usd) == (0.0001, 0.0002)
    lat = latencies(loaded.records)
    assert len(lat["stable"]) == len(lat["candidate"]) == 40
    assert lat["stable"] == sorted(lat["stable"])


def test_records_read_undumped_give_the_changes_their_dumps_give() -> None:
    # The verdict builder reads its records through Fields; the reports read dumped ones.
    rng = random.Random(4)
    stable, candidate = [], []
    for i in range(120):
        case = f"c[{i}]"
        for arm, out in (("stable", stable), ("candidate", candidate)):
            calls = tuple(
                CallRecord(
                    test_id=case,
                    case_id=case,
                    arm=arm,  # type: ignore[arg-type]
                    model=arm,
                    call_index=call_index,
                    attempt=attempt,
                    started_at=1.0,
                    latency_ms=rng.choice([None, 120.0, rng.uniform(50, 900)]),
                    cost_usd=rng.choice([None, 1e-4, rng.uniform(1e-5, 1e-3)]),
                    error_kind=rng.choice([None, None, "server_error", "timeout"]),
                    json_valid=rng.choice([None, True, False]),
                    schema_valid=rng.choice([None, True, True, False]),
                    tool_calls=rng.choice([(), ("lookup",), ("refund", "lookup")]),
                    tool_calls_valid=rng.choice([None, True, False]),
                    reply_language=rng.choice([None, "en", "de"]),
                    language_match=rng.choice([None, True, False]),
                    checks=rng.choice([(), ("json",)]),
                    violations=rng.choice([(), ("answer too long",)]),
                )
                for call_index in range(rng.randint(0, 2))
                for attempt in range(1, rng.randint(1, 3) + 1)
            )
            out.append(
                TestRecord(
                    test_id=case,
                    case_id=case,
                    workflow=rng.choice(["a", "b"]),
                    language=rng.choice([None, "en"]),
                    arm=arm,  # type: ignore[arg-type]
                    model=arm,
                    repeat=i % 2,
                    outcome=rng.choice(["passed", "passed", "failed", "error"]),
                    message=rng.choice([None, "", "boom"]),
                    calls=calls,
                )
            )
    both = (*stable, *candidate)
    dumped = case_changes([r.model_dump(mode="json") for r in both])
    assert len(dumped) > 60
    assert case_changes([Fields(r) for r in both]) == dumped
    view = Fields(stable[0])
    assert set(view) == set(TestRecord.model_fields)
    assert len(view) == len(TestRecord.model_fields)
    assert view.get("no_such_field", 5) == 5
    assert view.get("calls") == view["calls"]
    with pytest.raises(KeyError):
        view["no_such_field"]


def test_fail_to_pass_is_a_change_for_the_better() -> None:
    stable = [record("stable", "c", outcome="failed", json_valid=False, message="boom")]
    candidate = [record("candidate", "c")]
    dumped = [r.model_dump(mode="json") for r in (*stable, *candidate)]
    (change,) = case_changes(dumped)
    assert change.changes == ("fail -> pass", "invalid JSON (stable)")
    assert change.worse is False
    assert change.reason == "boom"


def test_missing_or_garbled_records_degrade_to_a_note(tmp_path: Path) -> None:
    stable, candidate = arms(failing=[1])
    data, path = write_run(tmp_path, stable, candidate)
    records = tmp_path / "verdict.records.jsonl"
    records.write_text(records.read_text() + "{not json\n[1]\n", encoding="utf-8")
    loaded = load_records(data, path)
    assert loaded.skipped_lines == 2
    assert len(loaded.records) == 80
    assert "2 unreadable line(s)" in str(loaded.problem)
    records.unlink()
    text = render_markdown(data, path, max_chars=65_000)
    assert f"no records file at {md_escape(records)}" in text
    assert "modelgate: FAIL" in text.splitlines()[0]
    page = render_html(data, path)
    assert "no records file at" in page
    assert "<svg" in page


def test_a_records_file_name_cannot_point_outside_the_verdict_folder(tmp_path: Path) -> None:
    data, path = write_run(tmp_path, *arms())
    data["records_file"] = "../../etc/passwd"
    loaded = load_records(data, path)
    assert loaded.path == tmp_path / "passwd"


# --------------------------------------------------------------------------------------------
# Markdown


def test_markdown_holds_verdict_regressions_metrics_slices_rollout_and_cases(
    failing_run: tuple[dict[str, Any], Path],
) -> None:
    data, path = failing_run
    assert data["verdict"] == "fail"
    assert data["regressions"]
    text = render_markdown(data, path, max_chars=65_000)
    lines = text.splitlines()
    assert lines[0] == "## ❌ modelgate: FAIL, stable deepseek-chat vs candidate qwen-max"
    assert f"### Regressions ({len(data['regressions'])})" in lines
    for regression in data["regressions"]:
        assert md_escape(regression["message"]) in text
    assert "| metric | stable | candidate | change | limit | status |" in lines
    assert any(line.startswith("| pass rate | 100.0% (n=40 tests) | ") for line in lines)
    assert "<summary>Per workflow (2; " in text
    assert "| reply | pass rate |" in text
    assert "<summary>Per language (2; " in text
    assert "| de | pass rate |" in text
    assert "- rollout: none (the candidate regressed: no rollout)" in lines
    assert "### Cases that changed between the arms (14)" in lines
    assert "pass -> fail, invalid JSON (candidate)" in text
    assert "passed, 300 ms, $0.000100 | failed, 480 ms, $0.000200 |" in text
    assert "<summary>Failed on the candidate only (14)</summary>" in lines
    assert "| candidate | 26 | 14 | 0 | 0 |" in lines


def test_markdown_truncation_keeps_verdict_and_regressions_under_the_limit(
    tmp_path: Path,
) -> None:
    stable, candidate = arms(1200, failing=range(0, 1200, 2), case_name="tests/" + "x" * 100)
    data, path = write_run(tmp_path, stable, candidate)
    full = render_markdown(data, path, max_chars=10_000_000)
    assert len(full) > 65_000
    text = render_markdown(data, path, max_chars=65_000)
    assert len(text) <= 65_000
    assert text.splitlines()[0].startswith("## ❌ modelgate: FAIL")
    for regression in data["regressions"]:
        assert md_escape(regression["message"]) in text
    assert "### Cases that changed between the arms (600)" in text
    left_out = re.search(r"… (\d+) more changed case\(s\) left out", text)
    # The note is its own paragraph, not a last row of the table.
    assert re.search(r"\|\n\n\*… \d+ more changed case\(s\) left out", text)
    assert left_out is not None
    shown = text.count("| pass -> fail, invalid JSON (candidate) |")
    assert 0 < shown < 600
    assert shown + int(left_out.group(1)) == 600
    # A tighter limit drops the slice tables before the metric table.
    small = render_markdown(data, path, max_chars=6_000)
    assert len(small) <= 6_000
    assert "| pass rate | 100.0% (n=1200 tests) |" in small
    assert "Per-workflow and per-language tables left out" in small
    for regression in data["regressions"]:
        assert md_escape(regression["message"]) in small


def test_markdown_escapes_test_ids_and_messages() -> None:
    stable = [record("stable", f"t[{EVIL}|x]")]
    candidate = [record("candidate", f"t[{EVIL}|x]", outcome="failed", message="a | b\n<img>")]
    changes = case_changes([r.model_dump(mode="json") for r in (*stable, *candidate)])
    text = markdown_report(make_verdict(*arms()), changes)
    assert "<script>" not in text
    assert "<img>" not in text
    row = next(line for line in text.splitlines() if "alert" in line)
    # The row keeps its 7 cells: every | inside a cell is escaped.
    assert len(re.findall(r"(?<!\\)\|", row)) == 8
    assert "a \\| b &lt;img>" in row


def test_a_long_reason_is_shortened_in_markdown_and_whole_in_html() -> None:
    reason = "AssertionError: " + "word " * 200
    stable = [record("stable", "c")]
    candidate = [record("candidate", "c", outcome="failed", message=reason)]
    changes = case_changes([r.model_dump(mode="json") for r in (*stable, *candidate)])
    data = make_verdict(*arms())
    row = next(line for line in markdown_report(data, changes).splitlines() if "| c |" in line)
    assert "| AssertionError: word word" in row
    assert "…" in row
    assert len(row) < 450
    assert reason.strip() in html_report(data, changes)


def test_markdown_of_an_error_verdict_shows_its_reasons() -> None:
    data = error_verdict(
        "the run was interrupted",
        run_id="c" * 32,
        stable=None,
        candidate=None,
        mode="live",
        repeat=1,
        strict=False,
        started_at=STARTED,
        finished_at=STARTED,
        exit_status=2,
        plugin_version="0.1.0",
    )
    text = markdown_report(data)
    assert text.splitlines()[0] == "## 🛑 modelgate: ERROR, models unknown"
    assert "- the run was interrupted" in text


# --------------------------------------------------------------------------------------------
# HTML


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self.scripts += 1
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "data") or (
                value and "url(" in value
            ):
                self.urls.append(f"{name}={value}")


def test_html_is_self_contained_with_charts(failing_run: tuple[dict[str, Any], Path]) -> None:
    data, path = failing_run
    page = render_html(data, path)
    parser = _Collector()
    parser.feed(page)
    assert parser.urls == []
    assert parser.scripts == 0
    assert "@import" not in page
    assert "url(" not in page
    # The only URL is the stable model's base URL, as text.
    assert re.findall(r"https?://[^\s<\"]+", page) == ["https://api.deepseek.com"]
    assert "<td>https://api.deepseek.com</td>" in page
    assert parser.tags.count("svg") >= 5  # arms, two change charts, latency, language bars
    assert 'aria-label="latency distribution of both arms"' in page
    assert "pass rate per language" in page
    assert "pass rate per workflow" in page
    assert "<h1>modelgate: FAIL</h1>" in page
    for regression in data["regressions"]:
        assert regression["message"].replace(">", "&gt;") in page
    # All cases, none cut: 14 changed.
    assert page.count('<td class="regressed">pass -&gt; fail, invalid JSON (candidate)</td>') == 14


def test_html_escapes_everything_from_the_verdict_and_records(tmp_path: Path) -> None:
    stable, candidate = arms(case_name=f"tests/{EVIL}")
    candidate[0] = record(
        "candidate", stable[0].case_id, outcome="failed", message=f"boom {EVIL} <img src=x>"
    )
    data, path = write_run(
        tmp_path, stable, candidate, candidate=ModelIdentity(model=f"qwen{EVIL}")
    )
    data["reasons"].append(f"hook note {EVIL}")
    page = render_html(data, path)
    parser = _Collector()
    parser.feed(page)
    assert parser.scripts == 0
    assert parser.urls == []
    assert "<img" not in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_html_of_a_stable_only_verdict_says_there_is_nothing_to_compare(tmp_path: Path) -> None:
    stable, _ = arms()
    judgement = PairedJudge().judge(RunData(stable=stable, candidate=None))
    data = build_verdict(
        judgement,
        run_id="d" * 32,
        stable=ModelIdentity(model="deepseek-chat"),
        candidate=None,
        mode="replay",
        repeat=1,
        strict=False,
        started_at=STARTED,
        finished_at=STARTED,
        exit_status=0,
        plugin_version="0.1.0",
    )
    page = render_html(data, tmp_path / "v.json")
    assert "stable-only run of deepseek-chat" in page
    assert "there is no second arm to compare cases with" in page
    assert html_report(data).count("<svg") >= 1


# --------------------------------------------------------------------------------------------
# GitHub


def test_workflow_command_escaping() -> None:
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a: b, c%\n") == "a%3A b%2C c%25%0A"


def test_one_error_annotation_per_regression(failing_run: tuple[dict[str, Any], Path]) -> None:
    data, _ = failing_run
    data["regressions"][0]["message"] += "\n100% worse"
    lines = annotation_lines(data)
    assert len(lines) == len(data["regressions"])
    assert lines[0].startswith("::error title=modelgate regression%3A pass rate::pass rate: ")
    assert lines[0].endswith("%0A100%25 worse")
    assert all(line.startswith("::error title=modelgate regression%3A ") for line in lines)
    assert all("\n" not in line for line in lines)


def test_inconclusive_warns_and_error_errors() -> None:
    base = make_verdict(*arms())
    inconclusive = dict(base, verdict="inconclusive", regressions=[], reasons=["add 90 cases"])
    assert annotation_lines(inconclusive) == [
        "::warning title=modelgate inconclusive::add 90 cases"
    ]
    failed = dict(base, verdict="error", regressions=[], reasons=["worker crashed", "x"])
    assert annotation_lines(failed) == ["::error title=modelgate error::worker crashed; x"]
    assert annotation_lines(dict(base, verdict="pass", regressions=[])) == []


def test_step_summary_is_appended_within_the_limit(
    failing_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    data, path = failing_run
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    lines = github_lines(data, path, env)
    assert lines == annotation_lines(data)
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n\n## ❌ modelgate: FAIL")
    # Little room left: the report is cut to fit, verdict line and regressions kept.
    summary.write_text("x" * 20_000, encoding="utf-8")
    problem = append_step_summary(
        summary, lambda room: render_markdown(data, path, max_chars=room), limit=26_000
    )
    assert problem is None
    text = summary.read_text(encoding="utf-8")
    assert len(text.encode()) <= 26_000
    assert "## ❌ modelgate: FAIL" in text
    assert "more changed case(s) left out" in text
    for regression in data["regressions"]:
        assert md_escape(regression["message"]) in text


def test_step_summary_problems_are_one_warning_never_an_exception(
    failing_run: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    data, path = failing_run
    full = tmp_path / "full.md"
    full.write_bytes(b"x" * (1024 * 1024 - 100))
    lines = github_lines(data, path, {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(full)})
    assert lines[-1].startswith("::warning title=modelgate::modelgate: the step summary ")
    assert "is full" in lines[-1]
    assert full.stat().st_size == 1024 * 1024 - 100
    folder = github_lines(
        data, path, {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path)}
    )
    assert folder[-1].startswith("::warning title=modelgate::modelgate: cannot write the step")
    assert github_lines(data, path, {"GITHUB_STEP_SUMMARY": str(full)}) == []


# --------------------------------------------------------------------------------------------
# modelgate report


def test_report_command_writes_both_and_exits_0(
    failing_run: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = failing_run
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    assert main(["report", str(path), "--markdown", str(md), "--html", str(page)]) == 0
    assert md.read_text(encoding="utf-8").startswith("## ❌ modelgate: FAIL")
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert f"modelgate report: wrote {md}" in capsys.readouterr().out
    assert main(["report", str(path), "--markdown", str(md), "--max-chars", "2000"]) == 0
    assert len(md.read_text(encoding="utf-8")) <= 2000


def test_report_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "r.md")
    assert main(["report", str(tmp_path / "missing.json"), "--markdown", out]) == 3
    assert (
        capsys.readouterr().err
        == f"modelgate report: no verdict file at {tmp_path / 'missing.json'}\n"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "2"}', encoding="utf-8")
    assert main(["report", str(bad), "--html", out]) == 3
    err = capsys.readouterr().err
    assert err.startswith("modelgate report: ")
    assert err.count("\n") == 1
    assert main(["report", str(bad)]) == 2
    assert "give --markdown OUT.md, --html OUT.html or both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", str(bad), "--markdown", out, "--max-chars", "ten"])
    assert exc.value.code == 2
    assert not Path(out).exists()


def test_reports_tolerate_fields_they_do_not_know(
    failing_run: tuple[dict[str, Any], Path],
) -> None:
    """A newer judge may add fields (``rollout.triggers_left_out``): the reports ignore them."""
    data, path = failing_run
    data["rollout"]["triggers_left_out"] = [{"metric": "x", "why": "no data"}]
    data["metrics"]["pass_rate"]["new_statistic"] = 0.5
    data["something_new"] = {"a": 1}
    assert render_markdown(data, path, max_chars=65_000).startswith("## ❌ modelgate: FAIL")
    assert "<h1>modelgate: FAIL</h1>" in render_html(data, path)
    assert len(annotation_lines(data)) == len(data["regressions"])
