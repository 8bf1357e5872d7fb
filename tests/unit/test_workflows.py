"""The GitHub Actions files: actionlint finds nothing, the composite action is well formed.

actionlint (with ShellCheck on every ``run:`` script) checks the workflows, and through them the
local action's interface: an input the action does not declare, or an output it does not have,
is an error there. The action file itself is not a workflow, so its structure is checked here:
required keys, inputs and outputs that exist, a shell for every run step, no expression inside a
script, ShellCheck on each script.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from actionfiles import (
    ACTION,
    EXPRESSION,
    ROOT,
    WORKFLOWS,
    action_steps,
    load_yaml,
    tool,
    workflow_files,
)

# The current major of each action used (GitHub's release notes and the bumps that followed
# them in 2026: checkout v7, setup-python v7, upload-artifact v7, sticky comment v3).
CURRENT_MAJORS = {
    "actions/checkout": 7,
    "actions/setup-python": 7,
    "actions/upload-artifact": 7,
    "actions/download-artifact": 8,
    "marocchino/sticky-pull-request-comment": 3,
}
GITHUB_COMMENT_LIMIT = 65_536
STEP_SUMMARY_LIMIT = 1024 * 1024


def _actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # -verbose writes to stderr only; it says which project (where .git is) was found, without
    # which actionlint cannot read the local action and checks less.
    return subprocess.run(
        [
            tool("actionlint"),
            "-verbose",
            "-oneline",
            "-no-color",
            f"-shellcheck={tool('shellcheck')}",
            # pyflakes is not a test dependency: off explicitly, so the result never depends on
            # what else is on PATH.
            "-pyflakes=",
            *map(str, files),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _uses(document: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for job in (document.get("jobs") or {}).values():
        found.extend(s["uses"] for s in job.get("steps", []) if "uses" in s)
    found.extend(s["uses"] for s in (document.get("runs") or {}).get("steps", []) if "uses" in s)
    return found


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [e for key, value in node.items() for e in _expressions(key) + _expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in _expressions(value)]
    if isinstance(node, str):
        return [m.group("expr") for m in EXPRESSION.finditer(node)]
    return []


def test_the_workflows_are_ci_and_the_model_gate() -> None:
    """One example gate: model-gate.yml replaced gate-example.yml."""
    assert [path.name for path in workflow_files()] == ["ci.yml", "model-gate.yml"]


def test_actionlint_finds_nothing_in_any_workflow() -> None:
    result = _actionlint(*workflow_files())

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert f"Using project at {ROOT}" in result.stderr


def test_actionlint_catches_a_wrong_input_or_output_of_the_local_action(tmp_path: Path) -> None:
    """The check above can fail: a misspelt input and output of the action are reported."""
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    (tmp_path / ".git").mkdir()
    gate = tmp_path / ".github" / "workflows" / "model-gate.yml"
    text = gate.read_text(encoding="utf-8")
    assert "verdict-path: verdicts/" in text
    assert "steps.gate.outputs.report-markdown" in text
    text = text.replace("verdict-path: verdicts/", "verdict-file: verdicts/", 1)
    text = text.replace("steps.gate.outputs.report-markdown", "steps.gate.outputs.report-md")
    gate.write_text(text, encoding="utf-8")

    result = _actionlint(gate, cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr
    assert 'input "verdict-file" is not defined in action "modelgate"' in result.stdout
    assert 'property "report-md" is not defined' in result.stdout


def test_actionlint_and_shellcheck_catch_script_injection(tmp_path: Path) -> None:
    """An untrusted value interpolated into a script, and an unquoted variable, are reported."""
    workflow = tmp_path / ".github" / "workflows" / "bad.yml"
    workflow.parent.mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    workflow.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  j:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }} $HOME\n",
        encoding="utf-8",
    )

    result = _actionlint(workflow, cwd=tmp_path)

    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout
    assert "SC2086" in result.stdout


def test_every_action_is_pinned_to_its_current_major() -> None:
    for path in [*workflow_files(), ACTION]:
        for uses in _uses(load_yaml(path)):
            if uses.startswith("./"):
                assert (ROOT / uses / "action.yml").is_file(), f"{path.name}: {uses}"
                continue
            name, _, ref = uses.partition("@")
            assert re.fullmatch(r"v\d+", ref), f"{path.name}: {uses} is not pinned to a major"
            assert name in CURRENT_MAJORS, f"{path.name}: {uses}: add its current major here"
            assert int(ref[1:]) >= CURRENT_MAJORS[name], f"{path.name}: {uses} is an old major"


# The composite action.


def test_the_action_declares_what_github_requires() -> None:
    action = load_yaml(ACTION)

    for key in ("name", "description", "inputs", "outputs", "runs"):
        assert action.get(key), f"action.yml: no {key}"
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {
        "candidate-model",
        "stable-model",
        "mode",
        "pytest-args",
        "verdict-path",
        "working-directory",
    }
    assert set(action["outputs"]) >= {"verdict", "verdict-path"}
    assert action["inputs"]["candidate-model"]["required"] is True
    assert action["inputs"]["mode"]["default"] == "replay"
    for kind in ("inputs", "outputs"):
        for name, spec in action[kind].items():
            assert str(spec.get("description", "")).strip(), f"{kind}.{name}: no description"
    for name, spec in action["inputs"].items():
        assert spec.get("required") is True or "default" in spec, f"inputs.{name}: no default"


def test_every_expression_of_the_action_names_a_declared_input_or_a_step() -> None:
    action = load_yaml(ACTION)
    step_ids = {s["id"] for s in action_steps() if "id" in s}
    expressions = _expressions(action)

    assert expressions
    for expr in expressions:
        for name in re.findall(r"\binputs\.([\w-]+)", expr):
            assert name in action["inputs"], f"${{{{ {expr} }}}}: no input {name!r}"
        for step_id in re.findall(r"\bsteps\.([\w-]+)", expr):
            assert step_id in step_ids, f"${{{{ {expr} }}}}: no step {step_id!r}"


def test_every_output_is_written_by_the_step_it_names() -> None:
    action = load_yaml(ACTION)
    steps = {s["id"]: s for s in action_steps() if "id" in s}

    for name, spec in action["outputs"].items():
        match = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", spec["value"])
        assert match, f"outputs.{name}: {spec['value']!r} is not a step's output"
        step_id, output = match.groups()
        assert step_id in steps, f"outputs.{name}: no step {step_id!r}"
        assert f'echo "{output}=' in steps[step_id]["run"], f"step {step_id} never sets {output}"


def test_every_run_step_has_a_shell_and_no_expression_in_its_script() -> None:
    """Inputs reach the scripts through env: an input is data, never script text."""
    runs = [s for s in action_steps() if "run" in s]

    assert runs
    for spec in runs:
        assert spec.get("shell") == "bash", spec.get("name")
        assert "${{" not in spec["run"], f"{spec.get('name')}: an expression in the script"


def test_shellcheck_finds_nothing_in_the_action_scripts(tmp_path: Path) -> None:
    for index, spec in enumerate(s for s in action_steps() if "run" in s):
        script = tmp_path / f"step{index}.sh"
        script.write_text(spec["run"], encoding="utf-8")
        result = subprocess.run(
            [tool("shellcheck"), "--shell=bash", "--format=gcc", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{spec.get('name')}:\n{result.stdout}{result.stderr}"


def test_shellcheck_is_not_blind(tmp_path: Path) -> None:
    script = tmp_path / "bad.sh"
    script.write_text('echo $1\nrm -rf "$dir"/*\n', encoding="utf-8")

    result = subprocess.run(
        [tool("shellcheck"), "--shell=bash", "--format=gcc", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "SC2086" in result.stdout


# The example gate: the comment, the artifacts, the deploy decision.


def _gate_job() -> dict[str, Any]:
    workflow = load_yaml(WORKFLOWS / "model-gate.yml")
    assert workflow["permissions"] == {"contents": "read"}
    job = workflow["jobs"]["gate"]
    assert isinstance(job, dict)
    return job


def _step_using(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [s for s in job["steps"] if str(s.get("uses", "")).startswith(prefix)]
    assert len(found) == 1, f"{len(found)} steps use {prefix}"
    return found[0]


def test_the_gate_runs_the_action_in_replay_mode_and_checks_the_verdict() -> None:
    job = _gate_job()
    gate = _step_using(job, "./.github/actions/modelgate")

    assert gate["id"] == "gate"
    assert gate["with"]["mode"] == "replay"
    assert gate["with"]["working-directory"] == "example_project"
    assert gate["with"]["candidate-model"] == "${{ matrix.candidate }}"
    check = [s for s in job["steps"] if "modelgate check" in s.get("run", "")]
    assert len(check) == 1
    assert "--expect-commit HEAD" in check[0]["run"]
    assert "--expect-candidate" in check[0]["run"]
    assert "if" not in check[0], "the deploy decision runs only when the gate succeeded"


def test_the_verdict_records_and_reports_are_uploaded_even_after_a_fail() -> None:
    upload = _step_using(_gate_job(), "actions/upload-artifact@")

    assert upload["if"] == "${{ !cancelled() }}"
    assert "${{ matrix.candidate }}" in upload["with"]["name"]
    paths = upload["with"]["path"].split()
    for suffix in (".json", ".records.jsonl", ".md", ".html"):
        assert any(p.endswith(f"modelgate-verdict{suffix}") for p in paths), suffix


def test_the_sticky_comment_has_a_header_and_skips_pushes_and_forks() -> None:
    job = _gate_job()
    comment = _step_using(job, "marocchino/sticky-pull-request-comment@")

    # The header is the comment's key: one comment per candidate, updated on every push.
    assert comment["with"]["header"] == "modelgate-${{ matrix.candidate }}"
    assert comment["with"]["path"] == "${{ steps.gate.outputs.report-markdown }}"
    condition = " ".join(comment["if"].split())
    assert "!cancelled()" in condition
    assert "github.event_name == 'pull_request'" in condition
    # A fork's pull request has a read-only token: no comment there.
    assert "github.event.pull_request.head.repo.full_name == github.repository" in condition
    assert "steps.gate.outputs.report-markdown != ''" in condition
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_the_report_fits_a_comment_and_the_step_summary() -> None:
    """The Markdown report is cut to max-report-chars by `modelgate report --max-chars`."""
    action = load_yaml(ACTION)
    max_chars = int(action["inputs"]["max-report-chars"]["default"])
    gate = next(s for s in action_steps() if s.get("id") == "gate")
    header = _step_using(_gate_job(), "marocchino/sticky-pull-request-comment@")["with"]["header"]
    # What the sticky comment action appends to the body to find it again.
    marker = f"\n<!-- Sticky Pull Request Comment{header} -->"

    assert gate["env"]["MODELGATE_INPUT_MAX_CHARS"] == "${{ inputs.max-report-chars }}"
    assert '--max-chars "${MODELGATE_INPUT_MAX_CHARS:-65000}"' in gate["run"]
    assert max_chars == 65_000
    assert max_chars + len(marker) + 100 <= GITHUB_COMMENT_LIMIT
    # The step summary gets the same report: 4 bytes a character at worst.
    assert 4 * max_chars <= STEP_SUMMARY_LIMIT


def _jobs() -> dict[str, Any]:
    jobs: dict[str, Any] = load_yaml(WORKFLOWS / "model-gate.yml")["jobs"]
    return jobs


def test_each_shard_runs_its_slice_and_uploads_its_records_part() -> None:
    job = _jobs()["gate-shards"]
    groups = job["strategy"]["matrix"]["include"]
    run = next(s for s in job["steps"] if "--modelgate-records" in s.get("run", ""))
    upload = _step_using(job, "actions/upload-artifact@")

    assert [g["group"] for g in groups] == [1, 2]
    # The slices are disjoint and cover every test file of the example project.
    files = [path for g in groups for path in g["tests"].split()]
    assert sorted(files) == sorted(
        f"tests/{p.name}" for p in (ROOT / "example_project" / "tests").glob("test_*.py")
    )
    assert run["env"]["GROUP"] == "${{ matrix.group }}"
    assert '--modelgate-records "verdicts/parts/part-$GROUP.jsonl"' in run["run"]
    assert "--modelgate-mode replay" in run["run"]
    # Every part has its own name and file: merge-multiple puts them in one directory.
    assert upload["with"]["name"] == "modelgate-records-${{ matrix.group }}"
    assert upload["with"]["path"].endswith("part-${{ matrix.group }}.jsonl")
    assert upload["if"] == "${{ !cancelled() }}"


def test_the_merge_job_merges_every_part_and_checks_the_verdict() -> None:
    jobs = _jobs()
    job = jobs["merge"]
    download = _step_using(job, "actions/download-artifact@")
    merge = next(s for s in job["steps"] if "modelgate merge" in s.get("run", ""))
    check = next(s for s in job["steps"] if "modelgate check" in s.get("run", ""))
    groups = jobs["gate-shards"]["strategy"]["matrix"]["include"]

    assert job["needs"] == "gate-shards"
    assert job["if"] == "${{ !cancelled() }}"
    assert download["with"]["pattern"] == "modelgate-records-*"
    assert download["with"]["merge-multiple"] is True
    assert download["with"]["path"] == "example_project/verdicts/parts"
    assert f"--expect-parts {len(groups)}" in merge["run"]
    assert "modelgate merge verdicts/parts" in merge["run"]
    assert "--expect-commit HEAD" in check["run"]
    assert "if" not in check, "the deploy decision runs only when the merge succeeded"


# The project's own CI.


def test_ci_lints_tests_every_python_and_builds() -> None:
    workflow = load_yaml(WORKFLOWS / "ci.yml")
    jobs = workflow["jobs"]
    classifiers = (ROOT / "pyproject.toml").read_text(encoding="utf-8")

    assert workflow["permissions"] == {"contents": "read"}
    assert "group" in workflow["concurrency"]
    assert [s["run"] for s in jobs["lint"]["steps"] if "run" in s] == ["make lint PYTHON=python"]
    versions = jobs["test"]["strategy"]["matrix"]["python-version"]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    for version in versions:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "make test PYTHON=python" in [s.get("run") for s in jobs["test"]["steps"]]
    build = "\n".join(s.get("run", "") for s in jobs["build"]["steps"])
    for command in (
        "python -m build",
        "twine check --strict dist/*",
        "python -m venv",
        "/dist/*.whl",
        "modelgate --version",
        "pytest --help | grep -- --candidate-model",
    ):
        assert command in build, command


def test_the_ci_entry_point_still_runs_make_test() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()

    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    assert lines[-1] == "make test"


@pytest.mark.parametrize("path", [*workflow_files(), ACTION], ids=lambda p: p.name)
def test_no_workflow_interpolates_untrusted_event_text(path: Path) -> None:
    """Titles, bodies and branch names of pull requests never appear in an expression."""
    for expr in _expressions(load_yaml(path)):
        assert not re.search(r"\.(title|body|head_ref|label|message)\b", expr), expr


def test_the_readme_gate_job_passes_actionlint(tmp_path: Path) -> None:
    """The CI section's example steps, in a workflow of their own, are a valid gate job."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## CI\n") : readme.index("\n## Limitations")]
    snippet = section[section.index("```yaml\n") + 8 :]
    snippet = snippet[: snippet.index("```")]
    snippet = snippet.replace(
        "<owner>/pytest-modelgate/.github/actions/modelgate@<tag>", "./.github/actions/modelgate"
    )
    shutil.copytree(ROOT / ".github" / "actions", tmp_path / ".github" / "actions")
    (tmp_path / ".git").mkdir()
    workflow = tmp_path / ".github" / "workflows" / "readme.yml"
    workflow.parent.mkdir(parents=True)
    body = "\n".join(f"    {line}" if line else "" for line in snippet.splitlines())
    workflow.write_text(
        f"on: pull_request\njobs:\n  gate:\n    runs-on: ubuntu-latest\n{body}\n",
        encoding="utf-8",
    )

    result = _actionlint(workflow, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "sticky-pull-request-comment@v3" in snippet
    assert "header: modelgate" in snippet
