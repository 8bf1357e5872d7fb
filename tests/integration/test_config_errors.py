"""Configuration errors: a usage error (exit 4) that says what is wrong and where, before any call.

Every case also checks the verdict file: a deploy step that only reads the file must see ``error``
and the same cause, never a missing file it might take for "nothing to gate" or an old pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from gatesettings import loose_gate

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 2}

WORKFLOW = """
    def test_reply(llm):
        llm.chat([{"role": "user", "content": "Hello, I have a question."}])
"""


# Latency is not gated, so that a healthy run passes whatever the machine's timing noise. The
# paired judge passes only what its intervals show, and one case leaves a rate's 95% interval at
# about +-79 points: rate margins wide enough for that, since these tests are about
# configuration, not statistics.
ONE_CASE_GATE: dict[str, Any] = loose_gate(0.8)


@pytest.fixture
def project(gate_project: Callable[..., GateProject]) -> GateProject:
    """Two simulated models declared in modelgate.yaml, ``sim-stable`` as the stable one."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=ONE_CASE_GATE)
    project.pytester.makepyfile(WORKFLOW)
    return project


def assert_usage_error(project: GateProject, result: pytest.RunResult, *cause: str) -> None:
    """Exit 4, ``cause`` on stderr, no test run, no request made, an ``error`` verdict naming it."""
    assert result.ret == 4
    errors = result.stderr.str()
    assert "ERROR: modelgate: " in errors
    for words in cause:
        assert words in errors, f"{words!r} not in stderr:\n{errors}"
    assert "passed" not in result.stdout.str()
    assert project.sim.requests == []
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["complete"] is True
    assert verdict["exit_status"] == 4
    assert verdict.get("rollout") is None
    reasons = "\n".join(verdict["reasons"])
    for words in cause:
        assert words in reasons, f"{words!r} not in the verdict reasons: {verdict['reasons']}"


def _config_path(project: GateProject) -> Path:
    return project.pytester.path / "modelgate.yaml"


@pytest.mark.parametrize("option", ["--stable-model", "--candidate-model"])
def test_unknown_model_on_the_command_line(project: GateProject, option: str) -> None:
    result = project.pytester.runpytest(option, "sim-stabel")

    assert_usage_error(project, result, "unknown model 'sim-stabel'", "closest known names:")
    # The close names are the ones declared in modelgate.yaml.
    result.stderr.fnmatch_lines(["*closest known names: sim-stable*"])


@pytest.mark.parametrize("field", ["stable", "candidate"])
def test_unknown_model_in_modelgate_yaml(project: GateProject, field: str) -> None:
    path = _config_path(project)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data[field] = "sim-candidat"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    result = project.pytester.runpytest()

    assert_usage_error(
        project, result, f"modelgate.yaml: {field}: unknown model 'sim-candidat'", "sim-candidate"
    )
    result.stderr.fnmatch_lines(["*closest known names: sim-candidate*"])


def test_malformed_yaml_names_file_and_line(project: GateProject) -> None:
    # Line 5 is indented one space less than the key above it.
    _config_path(project).write_text(
        "stable: sim-stable\n"
        "models:\n"
        "  sim-stable:\n"
        "    base_url: http://127.0.0.1:8900/v1\n"
        "   api_key_env: MODELGATE_TEST_SIM_KEY\n",
        encoding="utf-8",
    )

    result = project.pytester.runpytest()

    path = _config_path(project)
    assert_usage_error(project, result, f"{path}:5: invalid YAML: ")


@pytest.mark.parametrize(
    ("models", "gate", "field_path", "problem"),
    [
        pytest.param(
            {STABLE: {"price": {"input": -0.27, "output": 1.1}}},
            None,
            "models.sim-stable.price.input",
            "greater than or equal to 0",
            id="negative-price",
        ),
        pytest.param(
            {STABLE: None},
            {"latency_p99_max_ratio": 1.2},
            "gate.latency_p99_max_ratio",
            "unknown field",
            id="unknown-gate-key",
        ),
        pytest.param(
            {STABLE: None},
            {"pass_rate_max_drop": 2},
            "gate.pass_rate_max_drop",
            "less than or equal to 1",
            id="rate-above-one",
        ),
        pytest.param(
            {STABLE: {"base_url": "127.0.0.1:8900/v1"}},
            None,
            "models.sim-stable.base_url",
            "http:// or https://",
            id="base-url-without-scheme",
        ),
    ],
)
def test_invalid_field_names_file_and_path(
    project: GateProject,
    models: dict[str, Any],
    gate: dict[str, Any] | None,
    field_path: str,
    problem: str,
) -> None:
    project.write_config(models, stable=STABLE, gate=gate)

    result = project.pytester.runpytest()

    assert_usage_error(project, result, f"modelgate.yaml: {field_path}: ", problem)


def test_missing_api_key_names_the_variable(
    project: GateProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # qwen-max comes from the built-in catalog, whose key variable is DASHSCOPE_API_KEY.
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)

    result = project.pytester.runpytest("--candidate-model", "qwen-max")

    assert_usage_error(project, result, "'qwen-max' needs an API key", "DASHSCOPE_API_KEY")


def test_missing_api_key_of_a_stable_only_run(
    project: GateProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No candidate: the key is needed as soon as a selected test uses `llm`.
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)

    result = project.pytester.runpytest("--stable-model", "qwen-max")

    assert_usage_error(project, result, "'qwen-max' needs an API key", "DASHSCOPE_API_KEY")


def test_blank_api_key_counts_as_missing(
    project: GateProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI systems export a secret that is not configured as an empty string.
    monkeypatch.setenv("DASHSCOPE_API_KEY", "  ")

    result = project.pytester.runpytest("--candidate-model", "qwen-max")

    assert_usage_error(project, result, "DASHSCOPE_API_KEY")


def test_candidate_without_stable(project: GateProject) -> None:
    project.write_config({STABLE: None, CANDIDATE: None})  # no `stable:`

    result = project.pytester.runpytest("--candidate-model", CANDIDATE)

    assert_usage_error(
        project, result, f"--candidate-model {CANDIDATE} needs a stable model", "--stable-model"
    )


def test_llm_tests_without_a_stable_model(project: GateProject) -> None:
    project.write_config({STABLE: None, CANDIDATE: None})  # no `stable:`, no options

    result = project.pytester.runpytest()

    assert_usage_error(
        project,
        result,
        "1 selected test(s) use the `llm` fixture but no stable model is set",
        "--stable-model",
    )


def test_invalid_repeat_in_the_ini_file(project: GateProject) -> None:
    project.pytester.makeini("[pytest]\nmodelgate_repeat = 0\n")

    result = project.pytester.runpytest()

    assert_usage_error(project, result, "ini option modelgate_repeat: must be at least 1, got 0")


def test_invalid_repeat_on_the_command_line_replaces_a_stale_verdict(project: GateProject) -> None:
    # A pass left by an earlier run must not survive a run that could not even start.
    project.pytester.runpytest("--candidate-model", CANDIDATE)
    assert project.verdict()["verdict"] == "pass"
    project.sim.clear_requests()

    result = project.pytester.runpytest("--candidate-model", CANDIDATE, "--modelgate-repeat", "0")

    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--modelgate-repeat: must be at least 1, got 0*"])
    assert project.sim.requests == []
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert "modelgate-repeat" in "\n".join(verdict["reasons"])
    assert verdict.get("rollout") is None


def test_missing_config_file(project: GateProject) -> None:
    result = project.pytester.runpytest("--modelgate-config", "conf/missing.yaml")

    missing = project.pytester.path / "conf" / "missing.yaml"
    assert_usage_error(project, result, f"modelgate config file not found: {missing}")


def test_no_llm_tests_and_no_models_is_not_an_error(project: GateProject) -> None:
    # The other side of the coin: a project that gates nothing runs as plain pytest.
    project.write_config({STABLE: None})
    project.pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")

    result = project.pytester.runpytest("test_plain.py")

    result.assert_outcomes(passed=1)
    assert result.ret == 0
    assert not project.verdict_path.exists()
