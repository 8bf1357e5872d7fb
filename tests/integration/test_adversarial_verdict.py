"""Issue 10, verdict part: a verdict is never this run's pass unless this run judged and wrote it.

Items: 1 (a blank model name is a usage error; a stable-only run is a smoke run), 5 (stale or
foreign verdicts: an unwritable path, a killed run, two runs on one path, "verdict written to"),
and "the verdict is bound to what it judged" (provenance, ``modelgate check``). Every test checks
the exit status and the verdict file on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from gatesettings import loose_gate

from pytest_modelgate.cli import main as modelgate_main

if TYPE_CHECKING:
    from conftest import GateProject

STABLE = "sim-stable"
CANDIDATE = "sim-candidate"
FAST: dict[str, Any] = {"latency_ms": 2}
GATE_ARGS = ("--candidate-model", CANDIDATE)
# Margins wide enough for the two cases below to give a genuine `pass` (see test_fail_closed.py).
SMALL_RUN_GATE: dict[str, Any] = loose_gate()

WORKFLOW = """
    import pytest

    @pytest.mark.parametrize("question", ["Hello, I have a question.", "Where is my parcel?"])
    def test_reply(llm, question):
        reply = llm.chat([{"role": "user", "content": question}])
        assert reply.text
"""


@pytest.fixture
def project(gate_project: Callable[..., GateProject]) -> GateProject:
    """Two healthy models, margins for two cases, no timing limits."""
    return gate_project({STABLE: FAST, CANDIDATE: FAST}, stable=STABLE, gate=SMALL_RUN_GATE)


def passing_verdict(project: GateProject) -> dict[str, Any]:
    """Run the healthy gate once: a real `pass` verdict on disk, as an earlier run leaves it."""
    project.pytester.makepyfile(test_workflow=WORKFLOW)
    result = project.pytester.runpytest(*GATE_ARGS)
    assert result.ret == 0
    verdict = project.verdict()
    assert verdict["verdict"] == "pass"
    assert verdict["complete"] is True
    assert verdict["kind"] == "gate"
    return verdict


def check(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``modelgate check ARGS``: exit status, stdout, stderr."""
    capsys.readouterr()  # drop what in-process pytester runs printed before
    status = modelgate_main(["check", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_usage_error(result: pytest.RunResult, *words: str) -> str:
    """Exit 4 with one ``modelgate:`` line containing ``words`` and no traceback."""
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "modelgate:" in line]
    assert lines, output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- item 1: empty candidate --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--candidate-model", ""), "--candidate-model"),
        (("--candidate-model", "   "), "--candidate-model"),
        (("--stable-model", "", "--candidate-model", CANDIDATE), "--stable-model"),
    ],
    ids=["empty-candidate", "blank-candidate", "empty-stable"],
)
def test_item1_blank_name_is_a_usage_error_not_a_stable_only_pass(
    project: GateProject, args: tuple[str, ...], flag: str
) -> None:
    """Item 1: `--candidate-model ""` (an unset CI variable) ran stable-only: pass, exit 0."""
    passing_verdict(project)

    result = project.pytester.runpytest(*args)

    assert_one_line_usage_error(result, flag, "empty")
    # The earlier `pass` is replaced by this run's configuration error.
    verdict = project.verdict()
    assert (verdict["verdict"], verdict["exit_status"], verdict["kind"]) == ("error", 4, "gate")
    assert flag in verdict["reasons"][0]


def test_item1_blank_verdict_path_is_a_usage_error(project: GateProject) -> None:
    """Item 1: `--modelgate-verdict ""` silently fell back to the default path."""
    old = passing_verdict(project)

    result = project.pytester.runpytest(*GATE_ARGS, "--modelgate-verdict", " ")

    assert_one_line_usage_error(result, "--modelgate-verdict", "empty")
    # Which file was meant is unknown: the default one is not this run's to touch.
    assert project.verdict() == old


def test_item1_blank_ini_yaml_and_environment_values_are_usage_errors(
    project: GateProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1: blank ini values, a blank `candidate:` in modelgate.yaml, a blank MODELGATE_MODE."""
    project.pytester.makepyfile(test_workflow=WORKFLOW)

    project.pytester.makeini("[pytest]\nmodelgate_candidate_model =\n")
    result = project.pytester.runpytest()
    assert_one_line_usage_error(result, "modelgate_candidate_model", "empty")
    assert project.verdict()["verdict"] == "error"

    project.pytester.makeini("[pytest]\n")
    config = yaml.safe_load((project.pytester.path / "modelgate.yaml").read_text("utf-8"))
    config["candidate"] = "  "
    (project.pytester.path / "modelgate.yaml").write_text(yaml.safe_dump(config), "utf-8")
    result = project.pytester.runpytest()
    assert_one_line_usage_error(result, "candidate:", "empty")

    del config["candidate"]
    (project.pytester.path / "modelgate.yaml").write_text(yaml.safe_dump(config), "utf-8")
    monkeypatch.setenv("MODELGATE_MODE", "")
    result = project.pytester.runpytest(*GATE_ARGS)
    assert_one_line_usage_error(result, "MODELGATE_MODE", "empty")


def test_item1_stable_only_run_is_a_smoke_run_that_check_refuses(
    project: GateProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 1: a stable-only `pass` says `kind: smoke`, and `modelgate check` refuses it."""
    project.pytester.makepyfile(test_workflow=WORKFLOW)

    result = project.pytester.runpytest()

    assert result.ret == 0
    result.stdout.fnmatch_lines(["*smoke run: no candidate was compared*"])
    verdict = project.verdict()
    assert (verdict["verdict"], verdict["kind"], verdict["candidate"]) == ("pass", "smoke", None)
    status, out, err = check(str(project.verdict_path), capsys=capsys)
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("modelgate check: no-go: a smoke run")


# -- item 5: stale or foreign verdicts ----------------------------------------------------------


def test_item5_verdict_path_that_cannot_be_written_is_one_line_not_a_traceback(
    project: GateProject,
) -> None:
    """Item 5: an unwritable verdict path (here a directory) used to end in INTERNALERROR."""
    project.pytester.makepyfile(test_workflow=WORKFLOW)
    blocked = project.verdict_path
    (blocked / "inside").mkdir(parents=True)

    result = project.pytester.runpytest(*GATE_ARGS)

    line = assert_one_line_usage_error(result, str(blocked), "cannot write the verdict")
    assert "directory" in line
    assert blocked.is_dir()


FILE_SIZE_LIMIT_CONFTEST = """
    import resource
    import signal

    # The disk is "full" for this process: any file write beyond 64 bytes fails with EFBIG
    # (SIGXFSZ ignored), as ENOSPC would. The earlier verdict can still be removed.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_item5_provisional_write_failure_removes_the_old_pass(project: GateProject) -> None:
    """Item 5: when the provisional verdict cannot be written (full disk), the old pass survived."""
    passing_verdict(project)
    project.pytester.makeconftest(FILE_SIZE_LIMIT_CONFTEST)

    # Pipes, not files, for the output: the file size limit would cut pytester's capture files.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *GATE_ARGS],
        cwd=project.pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "INTERNALERROR" not in output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "modelgate:" in line]
    assert len(lines) == 1, output
    assert str(project.verdict_path) in lines[0]
    assert "File too large" in lines[0]
    assert "the earlier verdict there was removed" in lines[0]
    assert not project.verdict_path.exists()


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root ignores directory permissions"
)
def test_item5_read_only_verdict_directory(project: GateProject) -> None:
    """Item 5: `chmod 0o555` on the verdict directory: one line, non-zero, the old pass not kept."""
    out = project.pytester.path / "out"
    out.mkdir()
    old = passing_verdict(project)
    (out / "v.json").write_text(json.dumps(old), encoding="utf-8")
    out.chmod(0o555)
    try:
        result = project.pytester.runpytest(*GATE_ARGS, "--modelgate-verdict", "out/v.json")
    finally:
        out.chmod(0o755)
    line = assert_one_line_usage_error(result, str(out / "v.json"), "cannot write the verdict")
    assert "emptied" in line
    assert (out / "v.json").read_text(encoding="utf-8") == ""


KILLED_WORKFLOW = """
    import os
    import signal

    import pytest

    @pytest.mark.parametrize("question", ["Hello, I have a question.", "Where is my parcel?"])
    def test_reply(llm, question):
        llm.chat([{"role": "user", "content": question}])
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_item5_sigkill_right_after_start_leaves_no_pass(
    project: GateProject, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 5: a run killed right after it started must not leave the previous `pass`."""
    old = passing_verdict(project)
    project.pytester.makepyfile(test_workflow=KILLED_WORKFLOW)

    result = project.pytester.runpytest_subprocess(*GATE_ARGS)

    assert result.ret == -9
    verdict = project.verdict()
    assert verdict["verdict"] == "error"
    assert verdict["complete"] is False
    assert verdict["run_id"] != old["run_id"]
    assert "killed" in verdict["reasons"][0]
    # The deploy step's check: no verdict to judge (3), and the kernel released the lock.
    status, _, err = check(str(project.verdict_path), capsys=capsys)
    assert status == 3
    assert "incomplete" in err
    project.pytester.makepyfile(test_workflow=WORKFLOW)
    assert project.pytester.runpytest(*GATE_ARGS).ret == 0


BLOCKING_WORKFLOW = """
    import pathlib
    import time

    import pytest

    HERE = pathlib.Path(__file__).parent

    @pytest.mark.parametrize("question", ["Hello, I have a question.", "Where is my parcel?"])
    def test_reply(llm, question):
        assert llm.chat([{"role": "user", "content": question}]).text
        (HERE / "started").touch()
        deadline = time.monotonic() + 60
        while not (HERE / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
"""


def test_item5_second_run_on_the_same_verdict_path_is_refused(project: GateProject) -> None:
    """Item 5: two runs on one verdict path raced (last writer won); the second must refuse."""
    path = project.pytester.path
    project.pytester.makepyfile(test_workflow=BLOCKING_WORKFLOW)
    first = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *GATE_ARGS],
        cwd=path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (path / "started").exists():
            assert first.poll() is None, first.communicate()[0]
            assert time.monotonic() < deadline, "the first run never started its tests"
            time.sleep(0.05)
        provisional = project.verdict()
        assert provisional["complete"] is False

        second = project.pytester.runpytest_subprocess(*GATE_ARGS)

        line = assert_one_line_usage_error(
            second, "another run", f"pid {first.pid}", str(project.verdict_path)
        )
        assert "--modelgate-verdict" in line
        # The second run wrote nothing: the first one's provisional verdict is untouched.
        assert project.verdict() == provisional
    finally:
        (path / "go").touch()
        output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    verdict = project.verdict()
    assert verdict["run_id"] == provisional["run_id"]
    assert (verdict["verdict"], verdict["complete"]) == ("pass", True)
    assert not (path / "modelgate-verdict.json.lock").exists()


VERDICT_PATH_REPLACED = """
    import os
    import pathlib

    import pytest

    VERDICT = pathlib.Path(__file__).parent / "modelgate-verdict.json"

    @pytest.mark.parametrize("question", ["Hello, I have a question.", "Where is my parcel?"])
    def test_reply(llm, question):
        assert llm.chat([{"role": "user", "content": question}]).text
        if VERDICT.is_file():
            # Something replaces the verdict file by a directory while the run goes on.
            VERDICT.unlink()
            (VERDICT / "blocked").mkdir(parents=True)
"""


def test_item5_verdict_written_line_only_when_it_was_written(project: GateProject) -> None:
    """Item 5: "verdict written to" was printed even when the final write had failed."""
    project.pytester.makepyfile(test_workflow=VERDICT_PATH_REPLACED)

    result = project.pytester.runpytest(*GATE_ARGS)

    assert result.ret == 3
    result.stdout.no_fnmatch_line("*verdict written to*")
    result.stdout.fnmatch_lines(
        [
            "*modelgate ERROR: the verdict could not be written to*",
            "*modelgate verdict: ERROR*",
            f"verdict NOT written: {project.verdict_path} could not be written*",
        ]
    )
    assert project.verdict_path.is_dir()


# -- the verdict is bound to what it judged -----------------------------------------------------


def git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def init_repository(directory: Path) -> str:
    git(directory, "init", "-q")
    git(directory, "config", "user.email", "gate@example.invalid")
    git(directory, "config", "user.name", "gate")
    git(directory, "config", "commit.gpgsign", "false")
    (directory / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n", encoding="utf-8")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "project")
    return git(directory, "rev-parse", "HEAD")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_provenance_binds_the_verdict_to_commit_config_cassettes_and_tests(
    project: GateProject, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Binding: commit and dirty flag, digests of config, cassettes and tests; `check` uses them."""
    path = project.pytester.path
    project.pytester.makepyfile(test_workflow=WORKFLOW)
    # Record the cassettes, then commit everything and replay offline.
    assert project.pytester.runpytest("--modelgate-mode=record", *GATE_ARGS).ret == 0
    (path / "modelgate-verdict.json").unlink()
    (path / "modelgate-verdict.records.jsonl").unlink()
    head = init_repository(path)

    assert project.pytester.runpytest("--modelgate-mode=replay", *GATE_ARGS).ret == 0

    verdict = project.verdict()
    provenance = verdict["provenance"]
    # The verdict and its records, which every run rewrites, do not make the tree dirty.
    assert provenance["git"] == {"commit": head, "dirty": False}
    ids = sorted(
        f"test_workflow.py::test_reply[{question}-{arm}]"
        for question in ("Hello, I have a question.", "Where is my parcel?")
        for arm in (f"stable-{STABLE}", f"candidate-{CANDIDATE}")
    )
    assert provenance["tests_collected"] == 4
    assert provenance["tests_digest"] == sha256("\n".join(ids).encode())
    cassettes = sorted((path / "cassettes").rglob("*.yaml"))
    assert len(cassettes) == 4
    expected = "\n".join(
        f"{c.relative_to(path).as_posix()} {hashlib.sha256(c.read_bytes()).hexdigest()}"
        for c in cassettes
    )
    assert provenance["cassettes_digest"] == sha256(expected.encode())
    assert provenance["config_digest"].startswith("sha256:")

    status, out, _ = check(
        str(project.verdict_path),
        "--expect-candidate",
        CANDIDATE,
        "--expect-commit",
        head[:10],
        "--max-age",
        "1h",
        capsys=capsys,
    )
    assert status == 0
    assert out.startswith(f"modelgate check: go: pass for candidate {CANDIDATE} (commit {head[:7]}")
    monkeypatch.chdir(path)
    assert check(str(project.verdict_path), "--expect-commit", "HEAD", capsys=capsys)[0] == 0
    status, _, err = check(
        str(project.verdict_path), "--expect-candidate", "qwen-max", capsys=capsys
    )
    assert (status, err.count("\n")) == (1, 1)
    assert f"candidate {CANDIDATE!r}, not 'qwen-max'" in err

    # A changed cassette: another cassettes digest, and the tree is dirty.
    with cassettes[0].open("a", encoding="utf-8") as handle:
        handle.write("# edited\n")
    assert project.pytester.runpytest("--modelgate-mode=replay", *GATE_ARGS).ret == 0
    changed = project.verdict()["provenance"]
    assert changed["git"] == {"commit": head, "dirty": True}
    assert changed["cassettes_digest"] != provenance["cassettes_digest"]
    assert changed["config_digest"] == provenance["config_digest"]
    assert changed["tests_digest"] == provenance["tests_digest"]
    status, _, err = check(str(project.verdict_path), "--expect-commit", "HEAD", capsys=capsys)
    assert status == 1
    assert "dirty" in err

    # A changed gate limit: another config digest.
    git(path, "checkout", "-q", "--", ".")
    config = yaml.safe_load((path / "modelgate.yaml").read_text("utf-8"))
    config["gate"]["pass_rate_max_drop"] = 0.69
    (path / "modelgate.yaml").write_text(yaml.safe_dump(config), "utf-8")
    assert project.pytester.runpytest("--modelgate-mode=replay", *GATE_ARGS).ret == 0
    assert project.verdict()["provenance"]["config_digest"] != provenance["config_digest"]


def test_provenance_outside_a_repository_and_in_live_mode(project: GateProject) -> None:
    """Binding: no repository gives `git: null`; live mode has no cassettes digest."""
    project.pytester.makepyfile(test_workflow=WORKFLOW)
    # pytester's directory lives under the system temp directory, outside any repository.
    assert git_toplevel(project.pytester.path) is None

    result = project.pytester.runpytest(*GATE_ARGS, "-n", "2")

    assert result.ret == 0
    provenance = project.verdict()["provenance"]
    assert provenance["git"] is None
    assert provenance["cassettes_digest"] is None
    # Under xdist the ids come from the workers' collection.
    assert provenance["tests_collected"] == 4


def git_toplevel(directory: Path) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def test_item5_a_lock_that_cannot_be_created_stops_the_run(project: GateProject) -> None:
    """Item 5: without the lock two runs could race; a run that cannot lock does not run."""
    project.pytester.makepyfile(test_workflow=WORKFLOW)
    (project.pytester.path / "modelgate-verdict.json.lock" / "blocked").mkdir(parents=True)

    result = project.pytester.runpytest(*GATE_ARGS)

    assert_one_line_usage_error(result, "cannot create the lock file", "modelgate-verdict.json")
    # What is on disk is the provisional `error`, never a pass.
    verdict = project.verdict()
    assert (verdict["verdict"], verdict["complete"]) == ("error", False)


LOCK_TAKEN_DURING_THE_RUN = """
    import pathlib
    import subprocess
    import sys

    import pytest

    VERDICT = pathlib.Path(__file__).parent / "modelgate-verdict.json"
    HOLDER = (
        "import sys, time; from pathlib import Path;"
        " from pytest_modelgate.verdict.lock import VerdictLock;"
        f"VerdictLock.acquire(Path({str(VERDICT)!r})); print('held', flush=True); time.sleep(120)"
    )

    def test_reply(llm):
        assert llm.chat([{"role": "user", "content": "hello"}]).text
        # Another run takes the verdict path while this smoke run (which had nothing to
        # replace at its start) is still going.
        holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        (pathlib.Path(__file__).parent / "holder.pid").write_text(str(holder.pid))
"""


def test_item5_smoke_run_writes_nothing_when_another_run_took_the_path(
    project: GateProject,
) -> None:
    """Item 5: a run that writes only at its end locks then, and writes nothing if it cannot."""
    project.pytester.makepyfile(test_workflow=LOCK_TAKEN_DURING_THE_RUN)

    result = project.pytester.runpytest_subprocess()

    holder = int((project.pytester.path / "holder.pid").read_text())
    try:
        assert result.ret == 4
        result.stdout.fnmatch_lines(
            [f"modelgate: another run (pid {holder}) is writing the verdict *; no verdict written"]
        )
        assert not project.verdict_path.exists()
    finally:
        os.kill(holder, signal.SIGKILL)
