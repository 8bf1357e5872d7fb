"""Issue 11, reports: the gate under GitHub Actions, `modelgate report`, the HTML in a browser.

Each test runs a real gate through pytester against the bundled simulator and checks what a CI
job would see: the step summary file, the `::error` lines on stdout, the exit status, and the
report files written from the verdict and records on disk.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_modelgate.cli import main
from pytest_modelgate.verdict.reports.browser import find_chromium, screenshot

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]
GATE = ("--stable-model", "sim-a", "--candidate-model", "sim-b")
CASES = 50
# Pass rate at its default -2 pts margin; latency (loopback jitter) not gated; other rates wide.
LIMITS: dict[str, Any] = {
    "latency_p50_max_ratio": None,
    "latency_p95_max_ratio": None,
    "ttft_p95_max_ratio": None,
    "pass_rate_max_drop": 0.02,
    "error_rate_max_rise": 0.2,
    "fallback_rate_max_rise": 0.2,
}
WORKFLOW = """
import pytest

SYSTEM = {"role": "system", "content": "You triage support tickets. Answer in JSON."}
TICKETS = [
    ("I want a refund for my order", "refund"),
    ("I was charged twice this month", "billing"),
    ("My package has not arrived", "shipping"),
    ("I cannot log in to my account", "account"),
]

@pytest.mark.parametrize("case", range(@CASES@), ids=lambda i: f"ticket{i}")
def test_triage(llm, case):
    text, category = TICKETS[case % len(TICKETS)]
    reply = llm.chat(
        [SYSTEM, {"role": "user", "content": f"{text} (ticket {case})"}],
        response_format={"type": "json_object"},
    )
    assert reply.json()["category"] == category
""".replace("@CASES@", str(CASES))


def failing_project(gate_project: MakeProject) -> GateProject:
    """A candidate that misclassifies half the tickets: the gate fails on pass rate."""
    fast = {"latency_ms": 2}
    project = gate_project({"sim-a": fast, "sim-b": {**fast, "misclassify": 0.5}}, gate=LIMITS)
    project.pytester.makepyfile(test_wf=WORKFLOW)
    return project


@pytest.mark.parametrize("workers", [None, 2], ids=["in-process", "xdist"])
def test_github_actions_gets_the_step_summary_and_error_annotations(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, workers: int | None
) -> None:
    """Under GITHUB_ACTIONS=true the controller appends the Markdown report to
    $GITHUB_STEP_SUMMARY and prints one ::error line per regression (xdist: once)."""
    project = failing_project(gate_project)
    summary = project.pytester.path / "step-summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    if workers:
        result = project.pytester.runpytest_subprocess(*GATE, "-n", str(workers))
    else:
        result = project.pytester.runpytest(*GATE)

    assert result.ret == 1
    verdict = project.verdict()
    assert verdict["verdict"] == "fail"
    (regression,) = verdict["regressions"]
    assert regression["metric"] == "pass_rate"
    errors = [line for line in result.outlines if line.startswith("::error")]
    # GitHub's escaping: "100.0%" travels as "100.0%25".
    message = regression["message"].replace("%", "%25")
    assert "%25 -> " in message
    assert errors == [f"::error title=modelgate regression%3A pass rate::{message}"]
    assert not [line for line in result.outlines if line.startswith("::warning")]
    text = summary.read_text(encoding="utf-8")
    assert text.startswith(
        "# earlier step\n\n## ❌ modelgate: FAIL, stable sim-a vs candidate sim-b\n"
    )
    assert text.count("## ❌ modelgate: FAIL") == 1
    assert "### Regressions (1)" in text
    assert regression["message"].replace("[", "\\[").replace("]", "\\]") in text
    failed = verdict["tests"]["candidate"]["failed"]
    assert f"### Cases that changed between the arms ({failed})" in text
    assert "| test\\_wf.py::test\\_triage\\[ticket" in text
    assert len(text.encode("utf-8")) < 1024 * 1024


def test_no_annotations_or_summary_outside_github_actions(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without GITHUB_ACTIONS=true nothing is annotated and the summary file is not touched."""
    project = failing_project(gate_project)
    summary = project.pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = project.pytester.runpytest(*GATE)

    assert result.ret == 1
    assert project.verdict()["verdict"] == "fail"
    assert not [line for line in result.outlines if line.startswith("::")]
    assert not summary.exists()


def test_an_unwritable_step_summary_is_one_warning_and_keeps_the_exit_status(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step summary that cannot be written costs one warning line, never the run's status."""
    project = failing_project(gate_project)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.pytester.path))  # a directory

    result = project.pytester.runpytest(*GATE)

    assert result.ret == 1
    assert project.verdict()["verdict"] == "fail"
    warnings = [line for line in result.outlines if line.startswith("::warning")]
    assert len(warnings) == 1
    assert warnings[0].startswith("::warning title=modelgate::modelgate: cannot write the step")
    assert len([line for line in result.outlines if line.startswith("::error")]) == 1


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and how many distinct colours a sample of the PNG's rows holds."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height, depth, colour_type = struct.unpack(">IIBB", data[16:26])
    assert depth == 8, depth
    assert colour_type in (2, 6), colour_type
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if kind == b"IDAT":
            chunks.append(data[offset + 8 : offset + 8 + length])
        offset += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    pixel = 4 if colour_type == 6 else 3
    stride = 1 + width * pixel
    colours: set[bytes] = set()
    # Filter bytes make raw rows differ from pixels, but a blank page still has very few values.
    for row in range(0, height, max(1, height // 40)):
        line = raw[row * stride + 1 : (row + 1) * stride]
        colours.update(line[i : i + pixel] for i in range(0, len(line), pixel * 7))
    return width, height, len(colours)


def test_modelgate_report_writes_markdown_and_html_that_a_browser_renders(
    gate_project: MakeProject, tmp_path: Path
) -> None:
    """`modelgate report` on a real verdict and records file; the HTML renders in chromium."""
    project = failing_project(gate_project)
    assert project.pytester.runpytest(*GATE).ret == 1
    md, page = tmp_path / "report.md", tmp_path / "report.html"

    assert (
        main(["report", str(project.verdict_path), "--markdown", str(md), "--html", str(page)]) == 0
    )

    verdict = project.verdict()
    failed = verdict["tests"]["candidate"]["failed"]
    markdown = md.read_text(encoding="utf-8")
    assert markdown.startswith("## ❌ modelgate: FAIL, stable sim-a vs candidate sim-b\n")
    assert f"### Cases that changed between the arms ({failed})" in markdown
    html = page.read_text(encoding="utf-8")
    assert html.count('<td class="regressed">pass -&gt; fail') == failed
    assert 'aria-label="latency distribution of both arms"' in html

    browser = find_chromium()
    if browser is None:
        pytest.skip("chromium is not installed: the HTML report was not rendered in a browser")
    shot = tmp_path / "report.png"
    completed = screenshot(browser, page, shot)
    assert completed.returncode == 0, completed.stderr[-2000:]
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (1280, 2000)
    assert shot.stat().st_size > 50_000
    # A rendered report has a red header, tables and coloured charts; a blank page has 1 colour.
    assert colours > 20
