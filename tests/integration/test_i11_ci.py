"""Issue 11, GitHub Actions: the composite action's scripts, run for real.

Each step script of ``.github/actions/modelgate/action.yml`` is run with bash as the runner runs
it, on a copy of example_project replaying its recordings (offline), with a fake
``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY``. The tests check the outputs written, the verdict
on disk and the exit status the last step fails the job with.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from actionfiles import ROOT, StepRun, run_step, step

EXAMPLE = ROOT / "example_project"
VERDICT = "verdicts/modelgate-verdict.json"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example project, so the source tree is not written to."""
    copy = tmp_path / "example_project"
    shutil.copytree(
        EXAMPLE, copy, ignore=shutil.ignore_patterns("verdicts", "__pycache__", ".*cache")
    )
    return copy


def _gate(example: Path, tmp_path: Path, **inputs: str) -> StepRun:
    return run_step(
        step("gate"),
        cwd=example,
        inputs={"python": sys.executable, "verdict-path": VERDICT, **inputs},
        runner_dir=tmp_path / "runner",
    )


def _fail_step(tmp_path: Path, gate: StepRun) -> int | None:
    """The action's last step as the runner runs it: its exit status, None when skipped."""
    last = step("Fail on the gate's exit status")
    assert last["if"] == "steps.gate.outputs.exit-status != '0'"
    if gate.outputs["exit-status"] == "0":
        return None
    return run_step(
        last,
        cwd=tmp_path,
        inputs={},
        steps={"gate": gate.outputs},
        runner_dir=tmp_path / "runner-last",
    ).returncode


def _report_command_exists() -> bool:
    # `modelgate report` comes with the reports part of issue 11; until then the action warns.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pytest_modelgate.cli import main; sys.exit(main())",
            "report",
            "--help",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def _assert_reports(run: StepRun, verdict_path: Path) -> None:
    if _report_command_exists():
        assert run.outputs["report-markdown"] == str(verdict_path.with_suffix(".md"))
        assert run.outputs["report-html"] == str(verdict_path.with_suffix(".html"))
        markdown = Path(run.outputs["report-markdown"]).read_text(encoding="utf-8")
        assert len(markdown) <= 65_000
        assert Path(run.outputs["report-html"]).is_file()
    else:
        assert run.outputs["report-markdown"] == ""
        assert run.outputs["report-html"] == ""
        assert "::warning title=modelgate::modelgate report exited 2" in run.stdout


def test_a_passing_candidate_sets_every_output_and_does_not_fail(
    example: Path, tmp_path: Path
) -> None:
    """Item: the action's outputs. pass: verdict, absolute paths, exit status 0, no failing step.

    The quoted -k expression reaches pytest as one argument (split like a shell would).
    """
    run = _gate(
        example,
        tmp_path,
        **{
            "candidate-model": "simulated-candidate-good",
            "pytest-args": "-p no:randomly -k 'not no_such_test'",
        },
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    verdict_path = (example / VERDICT).resolve()
    assert run.outputs["verdict"] == "pass"
    assert run.outputs["exit-status"] == "0"
    assert run.outputs["verdict-path"] == str(verdict_path)
    assert run.outputs["records-path"] == str(
        verdict_path.with_name("modelgate-verdict.records.jsonl")
    )
    verdict = json.loads(verdict_path.read_text(encoding="utf-8"))
    assert verdict["verdict"] == "pass"
    assert verdict["kind"] == "gate"
    assert verdict["candidate"]["model"] == "simulated-candidate-good"
    assert verdict["complete"] is True
    assert Path(run.outputs["records-path"]).is_file()
    assert "PASS" in run.summary.upper()
    _assert_reports(run, verdict_path)
    assert _fail_step(tmp_path, run) is None


def test_a_failing_candidate_sets_the_outputs_then_fails_with_exit_status_1(
    example: Path, tmp_path: Path
) -> None:
    """Item: fail the job on `fail`, once the outputs are set (the comment and upload use them)."""
    run = _gate(example, tmp_path, **{"candidate-model": "simulated-candidate-bad"})

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.outputs["verdict"] == "fail"
    assert run.outputs["exit-status"] == "1"
    verdict = json.loads(Path(run.outputs["verdict-path"]).read_text(encoding="utf-8"))
    assert verdict["verdict"] == "fail"
    assert verdict["regressions"]
    _assert_reports(run, Path(run.outputs["verdict-path"]))
    assert _fail_step(tmp_path, run) == 1


def test_pytest_args_are_data_never_shell(example: Path, tmp_path: Path) -> None:
    """Item: pytest-args through an env var. `$(...)` and `;` are not run; pytest sees words."""
    pwned = tmp_path / "pwned"

    run = _gate(
        example,
        tmp_path,
        **{
            "candidate-model": "simulated-candidate-good",
            "pytest-args": f"--co $(touch {pwned}) ; touch {pwned}",
        },
    )

    assert not pwned.exists()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # pytest got "$(touch", a path, ")", ";", ... as file arguments, and stopped: no verdict.
    assert run.outputs["exit-status"] == "4"
    assert run.outputs["verdict"] == "error"
    assert "$(touch" in run.stdout + run.stderr
    assert _fail_step(tmp_path, run) == 4


def test_unsplittable_pytest_args_are_a_usage_error_not_a_pass(
    example: Path, tmp_path: Path
) -> None:
    """Item: an unbalanced quote in pytest-args: no run, verdict error, exit status 4."""
    run = _gate(
        example,
        tmp_path,
        **{"candidate-model": "simulated-candidate-good", "pytest-args": "-k 'triage"},
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.outputs["verdict"] == "error"
    assert run.outputs["exit-status"] == "4"
    assert "::error title=modelgate::pytest-args cannot be split" in run.stdout
    assert "::error title=modelgate::no readable verdict" in run.stdout
    assert not (example / VERDICT).exists()
    assert "ERROR" in run.summary
    assert _fail_step(tmp_path, run) == 4


def test_a_stale_pass_never_stands_for_a_run_that_wrote_no_verdict(
    example: Path, tmp_path: Path
) -> None:
    """Item: outputs from this run only. An empty candidate (an unset CI variable) is a usage
    error; the pass and report an earlier run left at the verdict path are not reported."""
    stale = example / VERDICT
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"verdict": "pass", "kind": "gate"}), encoding="utf-8")
    stale.with_suffix(".md").write_text("## modelgate: PASS\n", encoding="utf-8")

    run = _gate(example, tmp_path, **{"candidate-model": ""})

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.outputs["exit-status"] == "4"
    assert run.outputs["verdict"] == "error"
    # This run's own verdict: the plugin's error verdict naming the empty option.
    verdict = json.loads(stale.read_text(encoding="utf-8"))
    assert verdict["verdict"] == "error"
    assert "--candidate-model is empty" in verdict["reasons"][0]
    assert not stale.with_suffix(".md").exists() or _report_command_exists()
    assert "error" in run.summary.lower()
    assert _fail_step(tmp_path, run) == 4


def test_pytest_args_cannot_inject_workflow_commands(example: Path, tmp_path: Path) -> None:
    """Item: pytest-args never start an output line: no `::` command of its own reaches the log."""
    run = _gate(
        example,
        tmp_path,
        **{
            "candidate-model": "simulated-candidate-good",
            "pytest-args": "-k 'x\n::error title=forged::pass\n",
        },
    )

    assert run.outputs["exit-status"] == "4"
    lines = (run.stdout + run.stderr).splitlines()
    assert not [line for line in lines if line.startswith("::error title=forged")]
    assert "::error title=modelgate::pytest-args cannot be split like shell words" in run.stdout


def test_a_verdict_path_cannot_forge_outputs(example: Path, tmp_path: Path) -> None:
    """Item: outputs. A line break in verdict-path would add `verdict=pass` to $GITHUB_OUTPUT."""
    run = _gate(
        example,
        tmp_path,
        **{"candidate-model": "simulated-candidate-good", "verdict-path": "v.json\nverdict=pass"},
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.outputs["verdict"] == "error"
    assert run.outputs["exit-status"] == "4"
    assert run.outputs["verdict-path"] == ""
    assert "::error title=modelgate::verdict-path contains a line break" in run.stdout
    assert _fail_step(tmp_path, run) == 4
