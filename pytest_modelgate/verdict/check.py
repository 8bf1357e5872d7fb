"""``modelgate check``: may this verdict file be deployed on? One decision, one line saying why.

Pure: no pytest. ``cli.py`` only wires arguments to :func:`check_file`. Exit statuses (README,
"Deploying on the verdict"):

- 0 go: a complete, schema-valid gate (or shadow analysis) verdict ``pass`` (``inconclusive``
  too with ``allow_inconclusive``) meeting every expectation;
- 1 no-go: a valid, complete verdict that is not an approved pass: ``fail``, ``error``, an
  inconclusive one, a smoke run, another model, another or a dirty commit, too old;
- 2 usage error: a bad argument (``--max-age 5x``), ``--expect-commit HEAD`` outside a repository;
- 3 no verdict to judge: missing, a directory, unreadable, not UTF-8, not JSON, not matching the
  schema, or incomplete (provisional: the run is still going or was killed; it decided nothing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_GO",
    "EXIT_INVALID",
    "EXIT_NO_GO",
    "EXIT_USAGE",
    "PREFIX",
    "Decision",
    "Expectations",
    "VerdictFileError",
    "check_file",
    "decide",
    "format_age",
    "load_verdict_file",
    "parse_age",
    "parse_commit",
]

EXIT_GO = 0
EXIT_NO_GO = 1
EXIT_USAGE = 2
EXIT_INVALID = 3

PREFIX = "modelgate check: "

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_AGE_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_HEX = re.compile(r"^[0-9a-f]{7,64}$")


class VerdictFileError(Exception):
    """A verdict file that cannot be judged; the message is one line naming the file."""


@dataclass(frozen=True, kw_only=True)
class Expectations:
    """What the deploy step requires of the verdict beyond a complete ``pass``."""

    allow_inconclusive: bool = False
    candidate: str | None = None
    stable: str | None = None
    # A full or abbreviated (at least 7 hex digits) commit, lowercase; HEAD already resolved.
    commit: str | None = None
    max_age_s: float | None = None


@dataclass(frozen=True)
class Decision:
    """The exit status and the one line that explains it (stdout for go, stderr otherwise)."""

    exit_code: int
    line: str

    @property
    def go(self) -> bool:
        """Whether the verdict approves the deployment."""
        return self.exit_code == EXIT_GO


def parse_age(text: str) -> float:
    """``2h``, ``30m``, ``1d``, ``90s`` or plain seconds, as seconds; ValueError otherwise."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age: use SECONDS or a number with s, m, h or d")
    seconds = float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"{text!r}: the age must be more than zero")
    return seconds


def parse_commit(text: str) -> str:
    """A commit id as given on the command line (7 to 64 hex digits), lowercased."""
    commit = text.strip().lower()
    if not _HEX.match(commit):
        raise ValueError(f"{text!r} is not a commit id (7 to 40 hex digits) or HEAD")
    return commit


def format_age(seconds: float) -> str:
    """``12 s``, ``3 min``, ``5 h``, ``2 days``: how old a verdict is, for people."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def load_verdict_file(path: Path) -> dict[str, Any]:
    """Read and validate a verdict; ``VerdictFileError`` (one line) when it cannot be judged."""
    from pytest_modelgate.verdict.model import (
        SCHEMA_VERSION,
        VerdictValidationError,
        validate_verdict,
    )

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VerdictFileError(f"no verdict file at {path}") from None
    except IsADirectoryError:
        raise VerdictFileError(f"{path} is a directory, not a verdict file") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise VerdictFileError(f"cannot read {path}: {reason}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VerdictFileError(
            f"{path} is not UTF-8 text (byte {exc.start}): not a verdict file"
        ) from None
    if not text.strip():
        raise VerdictFileError(f"{path} is empty: not a verdict")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise VerdictFileError(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise VerdictFileError(f"{path} holds a JSON {type(data).__name__}, not a verdict object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise VerdictFileError(
            f"{path} has schema_version {version!r}; this modelgate reads version "
            f"{SCHEMA_VERSION!r}"
        )
    try:
        validate_verdict(data)
    except VerdictValidationError as exc:
        more = len(exc.problems) - 1
        extra = f" (and {more} more problem(s))" if more > 0 else ""
        raise VerdictFileError(
            f"{path} does not match the verdict schema: {_one_line(exc.problems[0], 200)}{extra}"
        ) from None
    return data


def _model(data: dict[str, Any], arm: str) -> str | None:
    identity = data.get(arm)
    return None if identity is None else str(identity["model"])


def _parse_time(stamp: str) -> datetime:
    return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


def _finished(data: dict[str, Any]) -> datetime | None:
    try:
        return _parse_time(str(data["finished_at"]))
    except ValueError:
        try:
            return datetime.strptime(str(data["finished_at"]), "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=timezone.utc
            )
        except ValueError:
            return None


def decide(
    data: dict[str, Any], expectations: Expectations, *, now: datetime | None = None
) -> Decision:
    """Judge a schema-valid verdict against ``expectations``; refusals come first to last."""
    now = now or datetime.now(timezone.utc)

    def no_go(reason: str) -> Decision:
        return Decision(EXIT_NO_GO, PREFIX + "no-go: " + _one_line(reason))

    verdict = str(data["verdict"])
    reasons = [str(r) for r in data.get("reasons", [])]
    first = f": {reasons[0]}" if reasons else ""
    if not data.get("complete", False):
        return Decision(
            EXIT_INVALID,
            PREFIX + "invalid: the verdict is incomplete (provisional): the run has not finished "
            "or was killed before the gate decided" + first,
        )
    if data.get("kind") == "smoke":
        return no_go(
            "a smoke run (stable model only, no candidate was compared): it approves no "
            "deployment; run the gate with --candidate-model"
        )
    if data.get("kind") not in ("gate", "shadow"):
        # Kinds added later approve nothing until this check learns them.
        return no_go(f"a {data.get('kind')} verdict, not a gate run: it approves no deployment")
    if verdict == "inconclusive" and not expectations.allow_inconclusive:
        return no_go(
            "verdict inconclusive: the data cannot show the candidate is within the margins "
            "(--allow-inconclusive accepts it)" + first
        )
    if verdict not in ("pass", "inconclusive"):
        return no_go(f"verdict {verdict}{first}")
    candidate = _model(data, "candidate")
    if candidate is None:
        return no_go("the verdict names no candidate model: it approves no deployment")
    if data.get("exit_status") != 0:
        return no_go(f"verdict {verdict} but the run exited with status {data.get('exit_status')}")
    if expectations.candidate is not None and candidate != expectations.candidate:
        return no_go(f"the verdict is for candidate {candidate!r}, not {expectations.candidate!r}")
    stable = _model(data, "stable")
    if expectations.stable is not None and stable != expectations.stable:
        return no_go(f"the verdict is against stable {stable!r}, not {expectations.stable!r}")
    git = (data.get("provenance") or {}).get("git")
    if expectations.commit is not None:
        if git is None:
            return no_go(
                "the verdict records no git commit (the run was not in a repository), so it "
                f"cannot be tied to commit {expectations.commit[:12]}"
            )
        if not str(git["commit"]).startswith(expectations.commit):
            return no_go(
                f"the verdict judged commit {str(git['commit'])[:12]}, not "
                f"{expectations.commit[:12]}"
            )
        if git.get("dirty"):
            return no_go(
                f"the verdict judged commit {str(git['commit'])[:12]} with uncommitted changes "
                "(dirty tree): it is not that commit's verdict"
            )
    finished = _finished(data)
    age = None if finished is None else (now - finished).total_seconds()
    if expectations.max_age_s is not None:
        if age is None:
            return no_go(f"the verdict's finished_at {data['finished_at']!r} cannot be read")
        if age < -300:
            return no_go(
                f"the verdict finished {format_age(-age)} in the future: this machine's clock "
                "or the file is wrong"
            )
        if age > expectations.max_age_s:
            return no_go(
                f"the verdict is {format_age(age)} old, older than --max-age "
                f"{format_age(expectations.max_age_s)}"
            )
    commit = f"commit {str(git['commit'])[:7]}" if git else "no commit recorded"
    if git and git.get("dirty"):
        commit += ", dirty"
    old = "age unknown" if age is None else f"{format_age(age)} old"
    return Decision(EXIT_GO, f"{PREFIX}go: {verdict} for candidate {candidate} ({commit}, {old})")


def check_file(path: Path, expectations: Expectations, *, now: datetime | None = None) -> Decision:
    """Load ``path`` and :func:`decide`; an unreadable or invalid file gives exit status 3."""
    try:
        data = load_verdict_file(path)
    except VerdictFileError as exc:
        return Decision(EXIT_INVALID, PREFIX + "invalid: " + _one_line(str(exc)))
    return decide(data, expectations, now=now)
