"""The repository's GitHub Actions files, read and run the way the runner would.

Shared by the workflow unit tests and the composite action's integration tests. A composite
step's ``run`` script is executed with bash as ``shell: bash`` runs it on a runner
(``bash --noprofile --norc -eo pipefail FILE``), its ``env`` resolved from the action's inputs,
and ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY`` pointing at files the test reads back.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTION = ROOT / ".github" / "actions" / "modelgate" / "action.yml"

# `${{ inputs.name }}` and `${{ steps.id.outputs.name }}` as whole values, the only expressions
# the action's env blocks may hold; anything else is refused so that the tests notice it.
_WHOLE_EXPR = re.compile(r"^\$\{\{\s*(?P<expr>[^}]*?)\s*\}\}$")
EXPRESSION = re.compile(r"\$\{\{\s*(?P<expr>.*?)\s*\}\}")


def load_yaml(path: Path) -> dict[str, Any]:
    """A workflow or action file as a mapping, its `on:` key a string as GitHub reads it."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    # YAML 1.1 reads a bare `on` as the boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return data


def workflow_files() -> list[Path]:
    """Every workflow file, .yml and .yaml."""
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def tool(name: str) -> str:
    """A tool installed with the test dependencies (next to this interpreter), or on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def action_steps() -> list[dict[str, Any]]:
    """The composite action's steps."""
    steps = load_yaml(ACTION)["runs"]["steps"]
    assert isinstance(steps, list)
    return steps


def step(step_id_or_name: str) -> dict[str, Any]:
    """One step of the composite action, by id or name."""
    for candidate in action_steps():
        if step_id_or_name in (candidate.get("id"), candidate.get("name")):
            return candidate
    raise AssertionError(f"the action has no step {step_id_or_name!r}")


def input_defaults() -> dict[str, str]:
    """Each declared input's default ('' when it has none)."""
    inputs = load_yaml(ACTION)["inputs"]
    return {name: str(spec.get("default", "")) for name, spec in inputs.items()}


@dataclass(frozen=True)
class StepRun:
    """What one step did: its exit status, its output lines and the files it wrote."""

    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def resolve(value: str, inputs: Mapping[str, str], steps: Mapping[str, Mapping[str, str]]) -> str:
    """An env value of the action, with its one `${{ }}` expression evaluated."""
    match = _WHOLE_EXPR.match(value)
    if match is None:
        assert "${{" not in value, f"an expression inside a longer value: {value!r}"
        return value
    expr = match.group("expr")
    parts = expr.split(".")
    if parts[0] == "inputs" and len(parts) == 2:
        assert parts[1] in inputs, f"{value!r}: no input {parts[1]!r}"
        return inputs[parts[1]]
    if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
        return steps.get(parts[1], {}).get(parts[3], "")
    raise AssertionError(f"an expression the tests cannot evaluate: {value!r}")


def parse_outputs(text: str) -> dict[str, str]:
    """`$GITHUB_OUTPUT` lines (`name=value`, each name once)."""
    outputs: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        assert sep, f"not an output line: {line!r}"
        assert re.fullmatch(r"[A-Za-z_][\w-]*", name), f"not an output name: {line!r}"
        assert name not in outputs, f"output {name!r} written twice"
        outputs[name] = value
    return outputs


def run_step(
    spec: Mapping[str, Any],
    *,
    cwd: Path,
    inputs: Mapping[str, str],
    steps: Mapping[str, Mapping[str, str]] | None = None,
    runner_dir: Path,
    timeout: float = 300,
) -> StepRun:
    """Run one `shell: bash` step of the action as the runner would."""
    assert spec.get("shell") == "bash", spec
    runner_dir.mkdir(parents=True, exist_ok=True)
    script = runner_dir / f"step-{spec.get('id') or 'anon'}.sh"
    script.write_text(spec["run"], encoding="utf-8")
    output_file = runner_dir / "github_output"
    summary_file = runner_dir / "step_summary"
    output_file.write_text("", encoding="utf-8")
    if not summary_file.exists():
        summary_file.write_text("", encoding="utf-8")
    merged = {**input_defaults(), **inputs}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("GITHUB_", "MODELGATE_", "PYTEST_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_OUTPUT": str(output_file),
            "GITHUB_STEP_SUMMARY": str(summary_file),
            "RUNNER_TEMP": str(runner_dir),
        }
    )
    for key, value in (spec.get("env") or {}).items():
        env[key] = resolve(str(value), merged, steps or {})
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return StepRun(
        returncode=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        outputs=parse_outputs(output_file.read_text(encoding="utf-8")),
        summary=summary_file.read_text(encoding="utf-8"),
    )
