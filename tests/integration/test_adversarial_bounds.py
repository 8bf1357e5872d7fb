"""Issue 10, bounds: no setting, server or body can make the gate hang, buffer without end or
read a nonsense number as a setting.

Each test names its item. Configuration errors are usage errors (exit 4) naming the file and the
field, with an ``error`` verdict on disk; calls that outlive ``client.deadline_s`` or send more
than ``client.max_response_bytes`` fail with the reason in the records, in seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 2}

WORKFLOW = """
    def test_reply(llm):
        llm.chat([{"role": "user", "content": "Hello, I have a question."}])
"""


@pytest.fixture
def project(gate_project: Callable[..., GateProject]) -> GateProject:
    """Two simulated models declared in modelgate.yaml, ``sim-stable`` as the stable one."""
    project = gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE)
    project.pytester.makepyfile(WORKFLOW)
    return project


def _edit_config(project: GateProject, section: str, text: str) -> None:
    """Append raw YAML ``text`` (written as typed, e.g. ``.inf``) under ``section``."""
    path = project.pytester.path / "modelgate.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.pop(section, None)
    body = (
        yaml.safe_dump(data) + f"{section}:\n" + "".join(f"  {line}\n" for line in text.split(";"))
    )
    path.write_text(body, encoding="utf-8")


@pytest.mark.parametrize(
    ("section", "text", "field", "problem"),
    [
        pytest.param(
            "client", "timeout_s: .inf", "client.timeout_s", "finite number", id="timeout-inf"
        ),
        pytest.param(
            "client",
            "timeout_s: 1.0e300",
            "client.timeout_s",
            "less than or equal to 3600",
            id="timeout-1e300",
        ),
        pytest.param(
            "client",
            "max_retries: 1000000",
            "client.max_retries",
            "less than or equal to 10",
            id="retries",
        ),
        pytest.param(
            "client", "deadline_s: .nan", "client.deadline_s", "finite number", id="deadline-nan"
        ),
        pytest.param(
            "gate",
            "cost_per_call_max_ratio: 1e300",
            "gate.cost_per_call_max_ratio",
            "less than or equal to 1000",
            id="ratio-1e300",
        ),
        pytest.param(
            "gate", "resamples: 1e9", "gate.resamples", "valid integer", id="resamples-float"
        ),
    ],
)
def test_non_finite_or_out_of_range_settings_are_config_errors(
    project: GateProject, section: str, text: str, field: str, problem: str
) -> None:
    """Items 2 and "Bounds": a setting that makes every call fail, or gates nothing, is refused.

    ``timeout_s: .inf`` used to be accepted and every call then failed; ``1.0e300`` was read as
    a string. Now each is a usage error naming the file and the field, before any request.
    """
    _edit_config(project, section, text)

    result = project.pytester.runpytest()

    path = project.pytester.path / "modelgate.yaml"
    assert result.ret == 4
    errors = result.stderr.str()
    assert f"ERROR: modelgate: {path}: {field}: " in errors, errors
    assert problem in errors, errors
    assert "passed" not in result.stdout.str()
    assert project.sim.requests == []
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["exit_status"] == 4
    assert any(f"{path}: {field}: " in reason for reason in verdict["reasons"])
