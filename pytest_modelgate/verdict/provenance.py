"""What a verdict judged: the git commit, and digests of the configuration, recordings and tests.

Pure: no pytest. A deploy step compares these with what it is about to ship (``modelgate check
--expect-commit``); a reviewer compares two verdicts' digests to see whether they judged the same
thing. Every digest is ``sha256:`` and 64 lowercase hex digits over a canonical byte string, so
that equal inputs give equal digests on every machine. See ``docs/verdict.md``, "Provenance".
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

__all__ = [
    "GIT_TIMEOUT_S",
    "cassette_lines",
    "cassette_lines_digest",
    "cassettes_digest",
    "changed_paths",
    "config_digest",
    "empty_provenance",
    "git_state",
    "head_commit",
    "tests_digest",
]

# git answers in milliseconds; a hung credential helper or network file system must not hang CI.
GIT_TIMEOUT_S = 5.0


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    # Sorted keys and no whitespace: the same settings give the same bytes wherever they come from.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def empty_provenance() -> dict[str, Any]:
    """Provenance with nothing known (an error verdict written before the settings were read)."""
    return {
        "git": None,
        "config_digest": None,
        "cassettes_digest": None,
        "tests_digest": None,
        "tests_collected": None,
    }


def config_digest(settings: Mapping[str, Any]) -> str:
    """Digest of the resolved settings that affect judging (JSON-compatible, no key values).

    The caller passes the parsed ``modelgate.yaml`` (models, gate limits, client settings, with
    key variable *names* only), the resolved stable and candidate models, mode, repeat and strict.
    """
    return _sha256(_canonical(dict(settings)))


def tests_digest(test_ids: Iterable[str]) -> str:
    """Digest of the sorted, distinct collected gated test ids (one per line)."""
    return _sha256("\n".join(sorted(set(test_ids))).encode("utf-8"))


def cassettes_digest(paths: Iterable[Path], root: Path) -> str:
    """Digest over every cassette's path (relative to ``root``, ``/``-separated) and content.

    Each distinct cassette contributes ``<relative path> <sha256 of its bytes>``, sorted by path;
    a cassette missing or unreadable at the end of the run contributes ``<path> missing``.
    """
    return cassette_lines_digest(cassette_lines(paths, root).values())


def cassette_lines_digest(lines: Iterable[str]) -> str:
    """The ``cassettes_digest`` of ``<relative path> <sha256>`` lines (as ``cassette_lines``
    gives them): ``modelgate merge`` combines the lines of every shard into one digest."""
    by_path = {line.rsplit(" ", 1)[0]: line for line in lines}
    return _sha256("\n".join(by_path[key] for key in sorted(by_path)).encode("utf-8"))


def cassette_lines(paths: Iterable[Path], root: Path) -> dict[str, str]:
    """``{relative path: "<relative path> <sha256 or missing>"}`` for ``cassettes_digest``.

    Each path is resolved as ``Path.resolve`` does (``os.path.realpath``), its folder once for
    all the cassettes in it: a run plays thousands of cassettes from a handful of folders.
    """
    lines: dict[str, str] = {}
    resolved_root = os.path.realpath(root)
    prefix = resolved_root.rstrip(os.sep) + os.sep
    folders: dict[str, str] = {}
    for path in paths:
        folder, name = os.path.split(os.path.abspath(path))
        real_folder = folders.get(folder)
        if real_folder is None:
            real_folder = folders[folder] = os.path.realpath(folder)
        resolved = os.path.join(real_folder, name)
        if os.path.islink(resolved):
            resolved = os.path.realpath(resolved)
        inside = resolved.startswith(prefix)
        relative = PurePath(resolved[len(prefix) :] if inside else resolved).as_posix()
        try:
            with open(resolved, "rb") as file:
                content = hashlib.sha256(file.read()).hexdigest()
        except OSError:
            content = "missing"
        lines[relative] = f"{relative} {content}"
    return lines


def _git(directory: Path, *args: str) -> str | None:
    """The output of ``git args`` run in ``directory``; None when git is missing or fails."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=directory,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "surrogateescape")


def head_commit(directory: Path) -> str | None:
    """``git rev-parse HEAD`` in ``directory`` (40 hex digits), or None outside a repository."""
    out = _git(directory, "rev-parse", "--verify", "--quiet", "HEAD")
    commit = (out or "").strip().lower()
    if len(commit) not in (40, 64) or any(c not in "0123456789abcdef" for c in commit):
        return None
    return commit


def changed_paths(porcelain_z: str) -> list[str]:
    """The paths of ``git status --porcelain=v1 -z`` output (a rename gives its new path)."""
    entries = porcelain_z.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if len(entry) < 4:
            continue
        status, path = entry[:2], entry[3:]
        paths.append(path)
        if "R" in status or "C" in status:
            index += 1  # the original path follows a rename or copy
    return paths


def git_state(directory: Path, *, ignore: Iterable[Path] = ()) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the repository holding ``directory``; None outside one.

    ``dirty``: a tracked file differs from HEAD or an untracked, not-ignored file exists, except
    the files under ``ignore`` (the gate's own outputs: the verdict, its records, its lock, and
    their temporary files, which every run rewrites).
    """
    commit = head_commit(directory)
    if commit is None:
        return None
    top = _git(directory, "rev-parse", "--show-toplevel")
    status = _git(directory, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    if top is None or status is None:
        # A commit but no status: do not claim a clean tree that was never checked.
        return {"commit": commit, "dirty": True}
    root = Path(top.strip()).resolve()
    own = [Path(p).resolve() for p in ignore]

    def ours(relative: str) -> bool:
        candidate = (root / relative).resolve()
        return any(
            candidate == path
            or (candidate.parent == path.parent and candidate.name.startswith(f".{path.name}."))
            for path in own
        )

    dirty = any(not ours(path) for path in changed_paths(status))
    return {"commit": commit, "dirty": dirty}
