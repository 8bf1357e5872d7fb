"""The verdict file on the controller before the decision: its lock, the provisional ``error``
verdict written at the start (so an interrupted run never leaves an old ``pass``), early errors
and the repository state the verdict is bound to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.session import GateSession
    from pytest_modelgate.verdict.lock import VerdictLock
from pytest_modelgate.stash import LOCK_KEY


def lock_verdict(config: pytest.Config, verdict_path: Path) -> VerdictLock | OSError:
    """Lock the verdict path for this run; a run already holding it is a usage error.

    Returns the OS error when the lock file cannot be created (a read-only directory): the
    caller first tries the verdict write, whose failure message is the clearer one, and refuses
    to run unlocked if that write succeeds.
    """
    from pytest_modelgate.verdict.lock import LockBusyError, VerdictLock

    held = config.stash.get(LOCK_KEY, None)
    if held is not None:
        return held
    try:
        lock = VerdictLock.acquire(verdict_path)
    except LockBusyError as exc:
        owner = f"pid {exc.pid}" if exc.pid is not None else "another process"
        raise pytest.UsageError(
            f"modelgate: another run ({owner}) is writing the verdict {verdict_path}: wait for "
            "it to finish, or give this run its own --modelgate-verdict PATH"
        ) from None
    except OSError as exc:
        return exc
    config.stash[LOCK_KEY] = lock
    return lock


def lock_failure(verdict_path: Path, exc: OSError) -> str:
    from pytest_modelgate.verdict.lock import lock_path_for

    return (
        f"cannot create the lock file {lock_path_for(verdict_path)} for the verdict "
        f"{verdict_path}: {exc.strerror or exc}"
    )


def read_git_state(gate: GateSession) -> dict[str, Any] | None:
    """The repository state of the rootdir, ignoring the gate's own output files."""
    from pytest_modelgate.verdict.lock import lock_path_for
    from pytest_modelgate.verdict.provenance import git_state

    verdict = gate.settings.verdict_path
    ignore = [verdict, gate.settings.records_path, lock_path_for(verdict)]
    if gate.settings.records_part is not None:
        ignore.append(gate.settings.records_part)
    return git_state(gate.rootdir or verdict.parent, ignore=ignore)


def _cannot_write(path: Path, exc: OSError, what: str) -> str:
    """The one-line usage error for a verdict that cannot be written, after discarding the old."""
    from pytest_modelgate.verdict.model import discard_verdict

    _done, happened = discard_verdict(path)
    reason = exc.strerror or exc.__class__.__name__
    return f"cannot write the {what} {path}: {reason}; {happened}"


def write_error_verdict_early(path: Path, reason: str, *, gate: bool) -> str | None:
    """Write a configuration error's verdict; a one-line problem when it cannot be written."""
    import uuid
    from datetime import datetime, timezone

    from pytest_modelgate import __version__
    from pytest_modelgate.verdict.model import error_verdict, write_verdict_atomic

    now = datetime.now(timezone.utc)
    data = error_verdict(
        reason,
        run_id=uuid.uuid4().hex,
        stable=None,
        candidate=None,
        mode="live",
        repeat=1,
        strict=False,
        started_at=now,
        finished_at=now,
        exit_status=4,
        plugin_version=__version__,
        complete=True,
        kind="gate" if gate else "smoke",
    )
    try:
        write_verdict_atomic(path, data)
    except OSError as exc:
        return _cannot_write(path, exc, "error verdict")
    return None


def write_provisional(gate: GateSession) -> str | None:
    """Put a provisional `error` over any earlier verdict; a one-line problem when impossible."""
    from pytest_modelgate.session import EXIT_ERROR as EXIT_PROVISIONAL
    from pytest_modelgate.verdict.model import error_verdict, write_verdict_atomic

    # If the run never gets to replace this, its meaning is an error (exit status 3).
    data = error_verdict(
        "the run has not finished: it is still running, or it was killed before the gate "
        "could decide",
        started_at=gate.started_at,
        finished_at=gate.started_at,
        exit_status=EXIT_PROVISIONAL,
        complete=False,
        **gate.verdict_common(final=False),
    )
    path = gate.settings.verdict_path
    try:
        write_verdict_atomic(path, data)
    except OSError as exc:
        # No traceback: the run could not record its verdict, so it must not run at all.
        return _cannot_write(path, exc, "verdict")
    gate.provisional_written = True
    # Records of an earlier run must not sit next to this run's verdict either.
    records = gate.settings.records_path
    try:
        records.unlink(missing_ok=True)
    except OSError as exc:
        return f"cannot remove an earlier run's records {records}: {exc.strerror or exc}"
    return None


def write_provisional_part(gate: GateSession) -> str | None:
    """Put an incomplete part over any earlier one: a shard killed later cannot be merged."""
    from pytest_modelgate.judge.decide import write_part

    if gate.git is None:
        gate.git = read_git_state(gate)
    try:
        write_part(gate, (), pytest_status=None, problems=[])
    except OSError as exc:
        return f"cannot write the records part {gate.settings.records_part}: {exc.strerror or exc}"
    return None
