"""A plugin metric's label is stored in the verdict, so every reader of the file can print it.

A real pytester run against a real simulator on loopback; then the `modelgate` command on the
verdict it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from gatesettings import loose_gate

from pytest_modelgate.cli import main
from pytest_modelgate.verdict.model import validate_verdict

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]
CASES = 8
WORKFLOW = f"""
import pytest

@pytest.mark.parametrize("case", range({CASES}), ids=lambda i: f"q{{i}}")
def test_answer(llm, case):
    reply = llm.chat([{{"role": "user", "content": f"Where is my order {{case}}?"}}])
    assert reply.text
"""
METRICS = """
from pytest_modelgate.metrics import CustomMetric

def pytest_modelgate_metrics(config):
    return [
        CustomMetric(name="polite", label="politeness as judged", kind="rate",
                     extract=lambda call: "please" in call.text.lower()),
        CustomMetric(name="reply_chars", kind="ratio", higher_is_better=False,
                     extract=lambda call: len(call.text)),
    ]
"""
LABEL = "politeness as judged"


def _model(text: str) -> dict[str, Any]:
    return {"latency_ms": 2, "script": [{"content": text}] * CASES}


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_the_label_reaches_the_verdict_table_show_and_reports(
    gate_project: MakeProject, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    project = gate_project(
        {"sim-a": _model("Please see your account."), "sim-b": _model("See your account.")},
        stable="sim-a",
        gate=loose_gate(),
    )
    project.pytester.makeconftest(METRICS)
    project.pytester.makepyfile(test_wf=WORKFLOW)

    result = project.pytester.runpytest_subprocess("--candidate-model", "sim-b", *args)

    assert result.ret in (0, 1, 2), result.stdout.str()
    verdict = project.verdict()
    validate_verdict(verdict)
    assert verdict["metrics"]["polite"]["label"] == LABEL
    # A metric without a label, and every built-in one, carries none.
    assert "label" not in verdict["metrics"]["reply_chars"]
    assert "label" not in verdict["metrics"]["pass_rate"]
    assert [line for line in result.stdout.lines if line.startswith(f"| {LABEL} ")]
    assert [line for line in result.stdout.lines if line.startswith("| reply_chars ")]

    capsys.readouterr()
    assert main(["show", str(project.verdict_path)]) in (0, 1)
    shown = capsys.readouterr().out.splitlines()
    assert [line for line in shown if line.startswith(f"| {LABEL} ")], shown

    markdown = project.pytester.path / "report.md"
    html = project.pytester.path / "report.html"
    command = ["report", str(project.verdict_path), "--markdown", str(markdown)]
    assert main([*command, "--html", str(html)]) == 0
    assert f"| {LABEL} |" in markdown.read_text(encoding="utf-8")
    assert f">{LABEL}<" in html.read_text(encoding="utf-8")
