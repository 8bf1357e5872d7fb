"""An exclusive lock on a verdict path, so that two runs never write the same verdict file.

Pure: no pytest. The lock is an advisory ``fcntl.flock`` on a sidecar file ``<verdict>.lock``
holding the owner's pid, taken by the run's controller from configure to unconfigure. The kernel
drops it when the process dies (even by SIGKILL), so a crashed run never leaves a stale lock.
The sidecar is removed on release; since another run may have opened the old file just before,
``acquire`` re-checks after locking that the file it locked is still the one at the path.

Limitation: ``fcntl`` is POSIX-only; on Windows no lock is taken (``acquire`` returns a lock that
holds nothing), and advisory locks may not work across machines on some network file systems.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["LockBusyError", "VerdictLock", "lock_path_for"]


class LockBusyError(Exception):
    """Another live process holds the lock; ``pid`` is its process id when it wrote one."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        owner = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"{path} is locked by another run ({owner})")


def lock_path_for(verdict_path: Path) -> Path:
    """The sidecar lock file of a verdict path: ``modelgate-verdict.json.lock``."""
    return verdict_path.with_name(verdict_path.name + ".lock")


def _read_pid(descriptor: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(descriptor, 0, os.SEEK_SET)
        return int(os.read(descriptor, 32).decode("ascii").strip() or "x")
    return None


class VerdictLock:
    """A held lock on one verdict path; :meth:`release` (idempotent) gives it up."""

    def __init__(self, path: Path, descriptor: int | None) -> None:
        self.path = path
        self._descriptor = descriptor

    @property
    def held(self) -> bool:
        """Whether this object holds an OS lock (always False on Windows)."""
        return self._descriptor is not None

    @classmethod
    def acquire(cls, verdict_path: Path) -> VerdictLock:
        """Lock ``verdict_path`` without waiting.

        Raises ``LockBusyError`` when another process holds it and ``OSError`` when the lock file
        cannot be created (a read-only directory, say).
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: documented limitation
            return cls(lock_path_for(verdict_path), None)
        path = lock_path_for(verdict_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(descriptor)
                os.close(descriptor)
                raise LockBusyError(verdict_path, pid) from None
            except BaseException:
                os.close(descriptor)
                raise
            try:
                same = os.fstat(descriptor).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            # The holder released (and removed) the file between our open and our lock: retry
            # on the file now at the path, or two runs would each hold a lock on a different one.
            os.close(descriptor)
        try:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            pass  # the pid is for messages only; the lock itself is held
        return cls(path, descriptor)

    def release(self) -> None:
        """Remove the sidecar and unlock; safe to call twice."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        # Unlink while still holding the lock: a waiting run then re-checks the inode and retries.
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(descriptor)
