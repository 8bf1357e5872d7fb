"""Provenance: digests, the git state of a real repository, and the verdict lock."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_modelgate.verdict.lock import LockBusyError, VerdictLock, lock_path_for
from pytest_modelgate.verdict.provenance import (
    cassette_lines,
    cassettes_digest,
    changed_paths,
    config_digest,
    git_state,
    head_commit,
)
from pytest_modelgate.verdict.provenance import (
    tests_digest as digest_of_tests,
)


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_config_digest_is_canonical_and_changes_with_any_setting() -> None:
    one = config_digest({"mode": "replay", "gate": {"a": 1, "b": 2}})
    assert one == config_digest({"gate": {"b": 2, "a": 1}, "mode": "replay"})
    assert one != config_digest({"mode": "replay", "gate": {"a": 1, "b": 3}})
    assert one.startswith("sha256:")
    assert len(one) == 7 + 64


def test_tests_digest_is_over_sorted_distinct_ids() -> None:
    assert digest_of_tests(["b", "a", "b"]) == sha("a\nb")
    assert digest_of_tests([]) == sha("")


def test_cassettes_digest_covers_relative_paths_and_contents(tmp_path: Path) -> None:
    first = tmp_path / "cassettes" / "t" / "one.yaml"
    first.parent.mkdir(parents=True)
    first.write_text("interactions: []\n", encoding="utf-8")
    content = hashlib.sha256(first.read_bytes()).hexdigest()
    missing = tmp_path / "cassettes" / "t" / "gone.yaml"
    digest = cassettes_digest([first, missing, first], tmp_path)
    assert digest == sha(f"cassettes/t/gone.yaml missing\ncassettes/t/one.yaml {content}")
    first.write_text("interactions: [] # changed\n", encoding="utf-8")
    assert cassettes_digest([first, missing], tmp_path) != digest


def _reference_lines(paths: list[Path], root: Path) -> dict[str, str]:
    """cassette_lines as first written: every path through Path.resolve."""
    lines = {}
    for path in paths:
        resolved = Path(path).resolve()
        try:
            relative = resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            relative = resolved.as_posix()
        try:
            content = hashlib.sha256(resolved.read_bytes()).hexdigest()
        except OSError:
            content = "missing"
        lines[relative] = f"{relative} {content}"
    return lines


def test_cassette_lines_resolve_links_and_dots_as_path_resolve_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    real = root / "cassettes" / "real"
    real.mkdir(parents=True)
    for name in ("a.yaml", "b.yaml"):
        (real / name).write_text(f"interactions: [] # {name}\n", encoding="utf-8")
    (root / "cassettes" / "linked").symlink_to(real, target_is_directory=True)
    (real / "to-a.yaml").symlink_to(real / "a.yaml")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("interactions: []\n", encoding="utf-8")
    (real / "out.yaml").symlink_to(outside)
    (root / "alias").symlink_to(root, target_is_directory=True)
    monkeypatch.chdir(root)
    paths = [
        real / "a.yaml",
        root / "cassettes" / "linked" / "b.yaml",  # through a folder link
        real / "to-a.yaml",  # a link to a file
        real / "out.yaml",  # a link out of the root
        real / ".." / "real" / "b.yaml",
        Path("cassettes/real/a.yaml"),  # relative to the working directory
        real / "gone.yaml",
        outside,
    ]
    for given_root in (root, root / "alias", Path(".")):
        expected = _reference_lines(paths, given_root)
        assert cassette_lines(paths, given_root) == expected
    assert "cassettes/real/b.yaml" in expected
    assert outside.resolve().as_posix() in expected


def test_changed_paths_reads_porcelain_z_with_renames() -> None:
    output = " M a.py\0R  new.py\0old.py\0?? dir/untracked.txt\0"
    assert changed_paths(output) == ["a.py", "new.py", "dir/untracked.txt"]
    assert changed_paths("") == []


def git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "app.py").write_text("print('hi')\n", encoding="utf-8")
    (repo / ".gitignore").write_text("ignored/\n", encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "-c", "user.email=a@b.invalid", "-c", "user.name=a", "commit", "-q", "-m", "x")
    return repo


def test_git_state_of_a_clean_then_dirty_tree(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    verdict = repository / "modelgate-verdict.json"
    own = [verdict, repository / "modelgate-verdict.records.jsonl", lock_path_for(verdict)]
    for path in own:
        path.write_text("{}", encoding="utf-8")
    (repository / ".modelgate-verdict.json.abc.tmp").write_text("", encoding="utf-8")
    (repository / "ignored").mkdir()
    (repository / "ignored" / "x").write_text("", encoding="utf-8")

    assert git_state(repository, ignore=own) == {"commit": head, "dirty": False}
    assert head_commit(repository) == head
    # The gate's files count when not declared as its own; so does any other untracked file.
    assert git_state(repository) == {"commit": head, "dirty": True}
    for path in own:
        path.unlink()
    (repository / "new_test.py").write_text("", encoding="utf-8")
    assert git_state(repository, ignore=own) == {"commit": head, "dirty": True}
    (repository / "new_test.py").unlink()
    (repository / "app.py").write_text("print('changed')\n", encoding="utf-8")
    assert git_state(repository / "ignored", ignore=own) == {"commit": head, "dirty": True}


def test_git_state_outside_a_repository_or_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repository: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_state(outside) is None
    # No git binary on PATH: None, no crash.
    monkeypatch.setenv("PATH", str(tmp_path / "no-such-dir"))
    assert git_state(repository) is None
    assert head_commit(repository) is None


def test_git_state_of_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert git_state(tmp_path) is None


# -- the lock -------------------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="no lock on Windows (documented)")
def test_lock_is_exclusive_names_the_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    verdict = tmp_path / "out" / "modelgate-verdict.json"
    lock = VerdictLock.acquire(verdict)
    assert lock.held
    assert lock_path_for(verdict).read_text(encoding="ascii") == f"{os.getpid()}\n"
    with pytest.raises(LockBusyError) as busy:
        VerdictLock.acquire(verdict)
    assert busy.value.pid == os.getpid()
    assert f"pid {os.getpid()}" in str(busy.value)
    lock.release()
    lock.release()  # idempotent
    assert not lock_path_for(verdict).exists()
    again = VerdictLock.acquire(verdict)
    again.release()


@pytest.mark.skipif(sys.platform == "win32", reason="no lock on Windows (documented)")
def test_lock_held_by_another_process_and_dropped_when_it_dies(tmp_path: Path) -> None:
    verdict = tmp_path / "modelgate-verdict.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from pytest_modelgate.verdict.lock import VerdictLock;"
            f"VerdictLock.acquire(Path({str(verdict)!r})); print('held', flush=True);"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusyError) as busy:
            VerdictLock.acquire(verdict)
        assert busy.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # Killed without releasing: the sidecar is still there, but the kernel dropped the lock.
    assert lock_path_for(verdict).exists()
    lock = VerdictLock.acquire(verdict)
    assert lock_path_for(verdict).read_text(encoding="ascii") == f"{os.getpid()}\n"
    lock.release()
