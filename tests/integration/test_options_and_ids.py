"""Options, their ini twins and the test ids: which items a gated run collects, and where it writes.

Every run here goes through a real pytest session (``pytester``) against a simulator on loopback.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from gatesettings import loose_gate

if TYPE_CHECKING:
    from conftest import GateProject

MakeProject = Callable[..., "GateProject"]

MODELS: dict[str, dict[str, Any]] = {
    "sim-a": {"latency_ms": 2},
    "sim-b": {"latency_ms": 2},
    "sim-c": {"latency_ms": 2},
}
GATE = ("--stable-model", "sim-a", "--candidate-model", "sim-b")
# These tests are about options and ids, so neither timing nor statistics may decide their
# verdicts. Millisecond loopback latencies jitter far beyond the default x1.2: not gated. The
# paired judge passes only what its intervals show, and with the one to three cases used here a
# rate's 95% interval is +-56 to +-79 points: rate margins wide enough for that.
SMALL_RUN_GATE: dict[str, Any] = loose_gate(0.8)

# The inner tests check that each arm really got its own model, so a wrong id cannot hide a
# wrong model behind it.
WORKFLOWS = """
import pytest

HELLO = [{"role": "user", "content": "Where is my order SO-10423?"}]


def test_reply(llm):
    assert llm.chat(HELLO).text


@pytest.mark.parametrize("text", ["refund please", "charged twice"], ids=["refund", "billing"])
def test_ticket(llm, text):
    assert llm.chat([{"role": "user", "content": text}]).text


def test_no_model():
    pass
"""


def served(project: GateProject) -> Counter[str | None]:
    """How many chat requests the simulator answered per model."""
    return Counter(request.model for request in project.sim.requests)


def write_ini(pytester: pytest.Pytester, kind: str, options: dict[str, str]) -> Path:
    """Write the options into pytest.ini or pyproject.toml."""
    if kind == "pytest.ini":
        body = "".join(f"{name} = {value}\n" for name, value in options.items())
        return pytester.makefile(".ini", pytest=f"[pytest]\n{body}")
    body = "".join(f'{name} = "{value}"\n' for name, value in options.items())
    return pytester.makepyprojecttoml(f"[tool.pytest.ini_options]\n{body}")


INI_KINDS = pytest.mark.parametrize("ini_kind", ["pytest.ini", "pyproject.toml"])


# --------------------------------------------------------------------------------------------
# ids and selection


def test_each_gated_test_runs_once_per_arm_with_arm_and_model_in_its_id(
    gate_project: MakeProject,
) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest("-v", *GATE)

    result.assert_outcomes(passed=7)
    # Stable before candidate for each case; other parametrize ids come first, the arm last.
    result.stdout.fnmatch_lines(
        [
            "test_wf.py::test_reply[[]stable-sim-a[]] PASSED*",
            "test_wf.py::test_reply[[]candidate-sim-b[]] PASSED*",
            "test_wf.py::test_ticket[[]refund-stable-sim-a[]] PASSED*",
            "test_wf.py::test_ticket[[]refund-candidate-sim-b[]] PASSED*",
            "test_wf.py::test_ticket[[]billing-stable-sim-a[]] PASSED*",
            "test_wf.py::test_ticket[[]billing-candidate-sim-b[]] PASSED*",
            "test_wf.py::test_no_model PASSED*",
        ]
    )
    # The test that does not use `llm` runs once, unparametrized.
    result.stdout.no_fnmatch_line("*test_no_model[[]*")
    assert served(project) == {"sim-a": 3, "sim-b": 3}
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["stable"]["model"] == "sim-a"
    assert verdict["candidate"]["model"] == "sim-b"
    assert verdict["tests"]["stable"] == {"passed": 3, "failed": 0, "skipped": 0, "error": 0}
    assert verdict["tests"]["candidate"] == {"passed": 3, "failed": 0, "skipped": 0, "error": 0}


def test_an_item_talks_to_the_model_of_its_arm(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(
        test_wf="""
        def test_arm(llm, request):
            expected = {"stable": "sim-a", "candidate": "sim-b"}[llm.arm]
            assert llm.model == expected
            assert request.node.name.endswith(f"[{llm.arm}-{expected}]")
            reply = llm.chat([{"role": "user", "content": "hello"}])
            assert reply.model == expected
            assert reply.raw["model"] == expected
        """
    )

    result = project.pytester.runpytest(*GATE)

    result.assert_outcomes(passed=2)
    assert result.ret == 0
    assert served(project) == {"sim-a": 1, "sim-b": 1}


def test_keyword_expression_selects_one_arm(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest("-v", *GATE, "-k", "candidate")

    result.assert_outcomes(passed=3, deselected=4)
    result.stdout.fnmatch_lines(
        [
            "test_wf.py::test_reply[[]candidate-sim-b[]] PASSED*",
            "test_wf.py::test_ticket[[]refund-candidate-sim-b[]] PASSED*",
            "test_wf.py::test_ticket[[]billing-candidate-sim-b[]] PASSED*",
        ]
    )
    result.stdout.no_fnmatch_line("*-stable-sim-a*PASSED*")
    assert served(project) == {"sim-b": 3}

    project.sim.clear_requests()
    result = project.pytester.runpytest("-v", *GATE, "-k", "stable")

    result.assert_outcomes(passed=3, deselected=4)
    result.stdout.fnmatch_lines(
        [
            "test_wf.py::test_reply[[]stable-sim-a[]] PASSED*",
            "test_wf.py::test_ticket[[]refund-stable-sim-a[]] PASSED*",
            "test_wf.py::test_ticket[[]billing-stable-sim-a[]] PASSED*",
        ]
    )
    assert served(project) == {"sim-a": 3}
    # A candidate that was never called cannot be judged: error, not pass (judge rule 2).
    assert result.ret == 3
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["reasons"] == ["the candidate arm made no calls"]
    result.stdout.fnmatch_lines(["modelgate ERROR: the candidate arm made no calls"])


def test_a_run_of_the_candidate_arm_alone_is_not_a_pass(gate_project: MakeProject) -> None:
    # Nothing was compared (every metric lacks stable data), so the gate must not say "pass":
    # the mirror image of "the candidate arm made no calls".
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest(*GATE, "-k", "candidate")

    result.assert_outcomes(passed=3, deselected=4)
    verdict = project.verdict()
    assert verdict["verdict"] == "error", verdict["reasons"]
    assert result.ret == 3
    assert any("stable arm made no calls" in reason for reason in verdict["reasons"])


def test_repeat_runs_each_case_k_times_per_arm(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(
        test_wf="""
        import pytest

        def test_reply(llm):
            assert llm.chat([{"role": "user", "content": "hello"}]).text

        @pytest.mark.parametrize("n", [7])
        def test_wrong(llm, n):
            llm.chat([{"role": "user", "content": f"ticket {n}"}])
            assert n == 8

        def test_no_model():
            pass
        """
    )

    result = project.pytester.runpytest("-v", *GATE, "--modelgate-repeat", "3")

    result.assert_outcomes(passed=7, failed=6)
    # Repeat by repeat, stable then candidate within each.
    result.stdout.fnmatch_lines(
        [
            "test_wf.py::test_reply[[]stable-sim-a-rep1[]] PASSED*",
            "test_wf.py::test_reply[[]candidate-sim-b-rep1[]] PASSED*",
            "test_wf.py::test_reply[[]stable-sim-a-rep2[]] PASSED*",
            "test_wf.py::test_reply[[]candidate-sim-b-rep2[]] PASSED*",
            "test_wf.py::test_reply[[]stable-sim-a-rep3[]] PASSED*",
            "test_wf.py::test_reply[[]candidate-sim-b-rep3[]] PASSED*",
            "test_wf.py::test_wrong[[]7-stable-sim-a-rep1[]] FAILED*",
            "test_wf.py::test_wrong[[]7-candidate-sim-b-rep1[]] FAILED*",
            "test_wf.py::test_wrong[[]7-stable-sim-a-rep2[]] FAILED*",
            "test_wf.py::test_wrong[[]7-candidate-sim-b-rep2[]] FAILED*",
            "test_wf.py::test_wrong[[]7-stable-sim-a-rep3[]] FAILED*",
            "test_wf.py::test_wrong[[]7-candidate-sim-b-rep3[]] FAILED*",
            "test_wf.py::test_no_model PASSED*",
        ]
    )
    assert served(project) == {"sim-a": 6, "sim-b": 6}
    verdict = project.verdict()
    assert verdict["repeat"] == 3
    assert verdict["tests"]["stable"] == {"passed": 3, "failed": 3, "skipped": 0, "error": 0}
    assert verdict["tests"]["candidate"] == {"passed": 3, "failed": 3, "skipped": 0, "error": 0}
    # Arms are paired by case id and repeat: the arm and the repeat leave the id.
    assert verdict["tests"]["cases_failed_both"] == [
        {"case_id": "test_wf.py::test_wrong[7]", "repeat": k} for k in range(3)
    ]
    assert verdict["tests"]["cases_failed_candidate_only"] == []
    # Failing on both arms is no regression.
    assert verdict["verdict"] == "pass"
    assert result.ret == 0


def test_a_test_using_llm_only_through_fixtures_is_doubled(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makeconftest(
        """
        import pytest

        class Agent:
            def __init__(self, llm):
                self.llm = llm

            def answer(self, text):
                return self.llm.chat([{"role": "user", "content": text}]).text

        @pytest.fixture
        def agent(llm):
            return Agent(llm)

        @pytest.fixture
        def desk(agent):
            return agent
        """
    )
    project.pytester.makepyfile(
        test_wf="""
        def test_agent(agent):
            assert agent.answer("hello")

        def test_desk(desk):
            assert desk.answer("hi there")

        def test_no_model(tmp_path):
            assert tmp_path.exists()
        """
    )

    result = project.pytester.runpytest("-v", *GATE)

    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "test_wf.py::test_agent[[]stable-sim-a[]] PASSED*",
            "test_wf.py::test_agent[[]candidate-sim-b[]] PASSED*",
            "test_wf.py::test_desk[[]stable-sim-a[]] PASSED*",
            "test_wf.py::test_desk[[]candidate-sim-b[]] PASSED*",
            "test_wf.py::test_no_model PASSED*",
        ]
    )
    assert served(project) == {"sim-a": 2, "sim-b": 2}
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["metrics"]["error_rate"]["samples"] == {"stable": 2, "candidate": 2}


def test_llm_requested_dynamically_is_a_clear_error(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(
        test_wf="""
        def test_dynamic(request):
            request.getfixturevalue("llm")
        """
    )

    result = project.pytester.runpytest(*GATE)

    # Collected once (it does not name `llm`), and told why it cannot have it.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the `llm` fixture must be requested as a test or fixture*"])
    assert project.sim.requests == []


# --------------------------------------------------------------------------------------------
# ini twins and precedence


@INI_KINDS
def test_model_names_from_the_ini_file(gate_project: MakeProject, ini_kind: str) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    write_ini(
        pytester,
        ini_kind,
        {"modelgate_stable_model": "sim-a", "modelgate_candidate_model": "sim-b"},
    )
    pytester.makepyfile(test_wf=WORKFLOWS)

    result = pytester.runpytest("-v")

    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        ["*::test_reply[[]stable-sim-a[]] PASSED*", "*::test_reply[[]candidate-sim-b[]] PASSED*"]
    )
    assert served(project) == {"sim-a": 3, "sim-b": 3}
    verdict = project.verdict()
    assert (verdict["stable"]["model"], verdict["candidate"]["model"]) == ("sim-a", "sim-b")


@INI_KINDS
def test_config_path_from_the_ini_file_is_relative_to_it(
    gate_project: MakeProject, ini_kind: str
) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    moved = pytester.path / "conf" / "gate.yaml"
    moved.parent.mkdir()
    (pytester.path / "modelgate.yaml").rename(moved)
    write_ini(pytester, ini_kind, {"modelgate_config": "conf/gate.yaml"})
    pytester.makepyfile(test_wf=WORKFLOWS)

    result = pytester.runpytest(*GATE)

    # sim-a and sim-b are only declared in conf/gate.yaml: the run could not resolve them
    # without it.
    result.assert_outcomes(passed=7)
    assert result.ret == 0
    assert served(project) == {"sim-a": 3, "sim-b": 3}

    # Without the ini option the moved file is not found and the names are unknown.
    (pytester.path / ini_kind).unlink()
    result = pytester.runpytest(*GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*sim-a*"])


def test_config_option_beats_the_ini_file(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    moved = pytester.path / "conf" / "gate.yaml"
    moved.parent.mkdir()
    (pytester.path / "modelgate.yaml").rename(moved)
    write_ini(pytester, "pytest.ini", {"modelgate_config": "missing.yaml"})
    pytester.makepyfile(test_wf=WORKFLOWS)

    result = pytester.runpytest(*GATE, "--modelgate-config", "conf/gate.yaml")

    result.assert_outcomes(passed=7)
    assert result.ret == 0

    # The ini value alone points at a file that does not exist: a usage error naming it.
    result = pytester.runpytest(*GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*modelgate config file not found*missing.yaml*"])


@INI_KINDS
def test_verdict_path_from_the_ini_file_is_relative_to_it(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch, ini_kind: str
) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    write_ini(pytester, ini_kind, {"modelgate_verdict": "reports/gate.json"})
    test_file = pytester.makepyfile(test_wf=WORKFLOWS)
    # Started from a subdirectory: the ini file's directory anchors the path, not the cwd.
    subdir = pytester.mkdir("sub")
    monkeypatch.chdir(subdir)

    result = pytester.runpytest(*GATE, str(test_file))

    assert result.ret == 0
    written = pytester.path / "reports" / "gate.json"
    assert written.is_file()
    assert not (subdir / "reports").exists()
    assert not project.verdict_path.exists()
    result.stdout.fnmatch_lines([f"verdict written to {written}"])
    assert '"verdict": "pass"' in written.read_text(encoding="utf-8")


def test_verdict_option_is_relative_to_the_invocation_dir(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    # The ini file makes the project directory the rootdir wherever pytest is started from.
    write_ini(pytester, "pytest.ini", {})
    test_file = pytester.makepyfile(test_wf=WORKFLOWS)
    subdir = pytester.mkdir("sub")
    monkeypatch.chdir(subdir)

    result = pytester.runpytest(*GATE, "--modelgate-verdict", "out/verdict.json", str(test_file))

    result.assert_outcomes(passed=7)
    assert result.ret == 0
    written = subdir / "out" / "verdict.json"
    assert written.is_file()
    assert not (pytester.path / "out").exists()
    assert not project.verdict_path.exists()
    result.stdout.fnmatch_lines([f"verdict written to {written}"])


@INI_KINDS
def test_repeat_from_the_ini_file(gate_project: MakeProject, ini_kind: str) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    write_ini(pytester, ini_kind, {"modelgate_repeat": "2"})
    pytester.makepyfile(test_wf=WORKFLOWS)

    result = pytester.runpytest("-v", *GATE)

    result.assert_outcomes(passed=13)
    result.stdout.fnmatch_lines(
        [
            "*::test_reply[[]stable-sim-a-rep1[]] PASSED*",
            "*::test_reply[[]candidate-sim-b-rep1[]] PASSED*",
            "*::test_reply[[]stable-sim-a-rep2[]] PASSED*",
            "*::test_reply[[]candidate-sim-b-rep2[]] PASSED*",
        ]
    )
    assert project.verdict()["repeat"] == 2


@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_repeat_in_the_ini_file_is_a_usage_error(gate_project: MakeProject, value: str) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    write_ini(project.pytester, "pytest.ini", {"modelgate_repeat": value})
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest(*GATE)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*modelgate*ini option modelgate_repeat*"])
    assert project.sim.requests == []


@INI_KINDS
def test_mode_from_the_ini_file(gate_project: MakeProject, ini_kind: str) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    write_ini(project.pytester, ini_kind, {"modelgate_mode": "live"})
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest(*GATE)

    assert result.ret == 0
    assert project.verdict()["mode"] == "live"
    assert served(project) == {"sim-a": 3, "sim-b": 3}


def test_unknown_mode_in_the_ini_file_is_a_usage_error(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELGATE_MODE")  # the environment would beat the ini file
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    write_ini(project.pytester, "pytest.ini", {"modelgate_mode": "telepathy"})
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    result = project.pytester.runpytest(*GATE)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option modelgate_mode*'telepathy'*"])
    assert project.sim.requests == []


BOTH_FAIL = """
def test_reply(llm):
    assert llm.chat([{"role": "user", "content": "hello"}]).text

def test_always_wrong(llm):
    llm.chat([{"role": "user", "content": "hi"}])
    assert False, "wrong on every model"
"""


@INI_KINDS
def test_strict_from_the_ini_file(gate_project: MakeProject, ini_kind: str) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    pytester.makepyfile(test_wf=BOTH_FAIL)

    lenient = pytester.runpytest(*GATE)

    assert lenient.ret == 0
    assert project.verdict()["strict"] is False
    assert project.verdict()["verdict"] == "pass"

    write_ini(pytester, ini_kind, {"modelgate_strict": "true"})
    strict = pytester.runpytest(*GATE)

    strict.assert_outcomes(passed=2, failed=2)
    assert strict.ret == 1
    verdict = project.verdict()
    assert verdict["strict"] is True
    assert verdict["verdict"] == "fail"
    # Failed by the case that fails on both arms, not by an inconclusive judgement.
    assert verdict["reasons"][0] == "--modelgate-strict: 1 case(s) failed on at least one arm"


def test_command_line_beats_the_ini_file(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    write_ini(
        pytester,
        "pytest.ini",
        {
            "modelgate_stable_model": "sim-c",
            "modelgate_candidate_model": "sim-c",
            "modelgate_repeat": "3",
            "modelgate_verdict": "ini-verdict.json",
        },
    )
    pytester.makepyfile(test_wf=WORKFLOWS)

    result = pytester.runpytest(
        "-v",
        "--stable-model",
        "sim-a",
        "--candidate-model",
        "sim-b",
        "--modelgate-repeat",
        "1",
        "--modelgate-verdict",
        "cli-verdict.json",
    )

    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        ["*::test_reply[[]stable-sim-a[]] PASSED*", "*::test_reply[[]candidate-sim-b[]] PASSED*"]
    )
    assert served(project) == {"sim-a": 3, "sim-b": 3}
    assert not (pytester.path / "ini-verdict.json").exists()
    written = pytester.path / "cli-verdict.json"
    assert '"model": "sim-b"' in written.read_text(encoding="utf-8")


def test_ini_file_beats_modelgate_yaml(gate_project: MakeProject) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    pytester = project.pytester
    config_file = pytester.path / "modelgate.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config.update(stable="sim-a", candidate="sim-c")
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    pytester.makepyfile(test_wf=WORKFLOWS)

    from_yaml = pytester.runpytest("-v")

    from_yaml.stdout.fnmatch_lines(["*::test_reply[[]candidate-sim-c[]] PASSED*"])
    assert served(project) == {"sim-a": 3, "sim-c": 3}

    project.sim.clear_requests()
    write_ini(pytester, "pytest.ini", {"modelgate_candidate_model": "sim-b"})
    from_ini = pytester.runpytest("-v")

    from_ini.stdout.fnmatch_lines(["*::test_reply[[]candidate-sim-b[]] PASSED*"])
    assert served(project) == {"sim-a": 3, "sim-b": 3}


# --------------------------------------------------------------------------------------------
# help and usage errors


def test_help_lists_every_option_and_ini_name(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "pytest-modelgate: gate a model change:",
            "*--stable-model=NAME*",
            "*--candidate-model=NAME*",
            "*--modelgate-config=PATH*",
            "*--modelgate-verdict=PATH*",
            "*--modelgate-repeat=K*",
            "*--modelgate-mode=*",
            "*--modelgate-strict*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*modelgate_stable_model (string):*",
            "*modelgate_candidate_model (string):*",
            "*modelgate_config (string):*",
            "*modelgate_verdict (string):*",
            "*modelgate_repeat (string):*",
            "*modelgate_mode (string):*",
            "*modelgate_strict (bool):*",
        ]
    )
    assert not (pytester.path / "modelgate-verdict.json").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be at least 1, got 0"), ("abc", "expected a whole number, got 'abc'")],
)
def test_bad_repeat_option_is_a_usage_error(
    gate_project: MakeProject, value: str, message: str
) -> None:
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)
    assert project.pytester.runpytest(*GATE).ret == 0
    earlier = project.verdict()
    assert earlier["verdict"] == "pass"
    project.sim.clear_requests()

    result = project.pytester.runpytest(*GATE, "--modelgate-repeat", value)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--modelgate-repeat: {message}"])
    assert project.sim.requests == []
    # The earlier pass must not survive a run that never started.
    verdict = project.verdict()
    assert verdict["run_id"] != earlier["run_id"]
    assert verdict["verdict"] == "error"
    assert verdict["exit_status"] == 4


def test_mode_defaults_to_replay_and_the_environment_beats_the_ini(
    gate_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELGATE_MODE")
    project = gate_project(MODELS, gate=SMALL_RUN_GATE)
    project.pytester.makepyfile(test_wf=WORKFLOWS)

    # No recordings and the default mode: replay refuses to call the models.
    result = project.pytester.runpytest(*GATE)
    assert result.ret != 0
    assert project.verdict()["mode"] == "replay"
    assert project.verdict()["verdict"] == "error"
    assert project.sim.requests == []

    write_ini(project.pytester, "pytest.ini", {"modelgate_mode": "replay"})
    monkeypatch.setenv("MODELGATE_MODE", "live")
    result = project.pytester.runpytest(*GATE)
    assert result.ret == 0
    assert project.verdict()["mode"] == "live"
    assert project.sim.requests != []

    monkeypatch.setenv("MODELGATE_MODE", "sometimes")
    result = project.pytester.runpytest(*GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*environment variable MODELGATE_MODE*'sometimes'*"])
