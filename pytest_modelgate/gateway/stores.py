"""Shared :class:`~pytest_modelgate.gateway.state.MonitorStore` backends: an SQLite file for the
processes of one host, Redis for the replicas of a service.

Both make every method one atomic step for every process that opens the same file or server:

* :class:`FileStore` (``state: {backend: file, path: ...}``): SQLite in WAL mode, standard
  library only. Writes are ``BEGIN IMMEDIATE`` transactions (one writer at a time, readers never
  blocked); ``status`` is served from a per-thread cache until SQLite's ``data_version`` says
  another connection committed, so the per-request read is one cheap pragma.
* :class:`RedisStore` (``state: {backend: redis, url: ...}``, the ``redis`` extra): three hashes
  per route (status, sums, counters) updated by Lua scripts, which Redis runs atomically: sums
  with ``HINCRBY``/``HINCRBYFLOAT`` (no count lost between replicas) and the status by a
  compare-and-set on its generation.

A store that cannot be reached never breaks user traffic: ``status`` answers a status that sends
the route to stable (not written anywhere: the store is back as soon as it answers), ``observe``
and ``count`` drop the update and count it in :attr:`lost`, and a warning says so at most once
every ten seconds. A Redis URL's password is never logged or shown.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.gateway.routes import StateSettings
from pytest_modelgate.gateway.state import (
    ARMS,
    ArmName,
    ArmSums,
    MemoryStore,
    MonitorStore,
    RouteStatus,
)
from pytest_modelgate.judge.sequential import StreamSums

__all__ = ["UNAVAILABLE", "FileStore", "RedisStore", "StoreUnavailable", "open_store"]

_LOGGER = logging.getLogger("pytest_modelgate.gateway")
# The generation of a status answered while the store cannot be reached (never stored).
UNAVAILABLE = -1
_WARN_EVERY_S = 10.0
_FIELDS = ("generation", "rolled_back", "killed", "step", "canary_bp", "reason", "changed_at")


class StoreUnavailable(ModelgateError):
    """A store operation that must not fail silently (``modelgate route``) could not be done."""


def open_store(settings: StateSettings, *, base: Path | None = None) -> MonitorStore:
    """The store ``state:`` names; a ``file`` path is relative to ``base`` (the config folder)."""
    if settings.backend == "memory":
        return MemoryStore()
    if settings.backend == "file":
        assert settings.path is not None
        path = Path(settings.path)
        if not path.is_absolute() and base is not None:
            path = base / path
        return FileStore(path, timeout_s=settings.timeout_s)
    assert settings.url is not None
    return RedisStore(settings.url, prefix=settings.prefix, timeout_s=settings.timeout_s)


def _unavailable(reason: str) -> RouteStatus:
    return RouteStatus(generation=UNAVAILABLE, rolled_back=True, reason=reason)


class _Outage:
    """Counts and reports failed store operations, a warning at most every ten seconds."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.lost = 0
        self._lock = threading.Lock()
        self._warned_at = -_WARN_EVERY_S

    def failed(self, operation: str, error: BaseException) -> str:
        reason = f"{self.what} unavailable ({type(error).__name__}: {_scrub(str(error))})"
        with self._lock:
            if operation != "status":
                self.lost += 1
            now = time.monotonic()
            warn = now - self._warned_at >= _WARN_EVERY_S
            if warn:
                self._warned_at = now
        if warn:
            _LOGGER.warning(
                "%s: %s failed, serving every route from stable until it answers; %d update(s) "
                "lost so far",
                reason,
                operation,
                self.lost,
            )
        return reason


_PASSWORD = re.compile(r"(?<=://)([^/@\s]*)@")


def _scrub(text: str) -> str:
    """A URL's user and password (``redis://user:secret@host``) replaced by ``***``."""
    return _PASSWORD.sub("***@", text)


def _status_from(values: Mapping[str, Any]) -> RouteStatus:
    def number(name: str) -> float | None:
        value = values.get(name)
        return None if value is None or value == "" else float(value)

    generation = number("generation")
    if generation is None:
        return RouteStatus()
    canary_bp = number("canary_bp")
    reason = values.get("reason")
    return RouteStatus(
        generation=int(generation),
        rolled_back=bool(int(number("rolled_back") or 0)),
        killed=bool(int(number("killed") or 0)),
        step=int(number("step") or 0),
        canary_bp=None if canary_bp is None else int(canary_bp),
        reason=None if reason in (None, "") else str(reason),
        changed_at=number("changed_at"),
    )


def _check_generation(route: str, expected: int, new: RouteStatus) -> None:
    if new.generation != expected + 1:
        raise ValueError(
            f"route {route!r}: a new status has generation {expected + 1}, got {new.generation}"
        )


def _empty_sums() -> ArmSums:
    return {"stable": {}, "candidate": {}}


# ---------------------------------------------------------------------------------------------
# SQLite


_SCHEMA = """
CREATE TABLE IF NOT EXISTS status (
    route TEXT PRIMARY KEY, generation INTEGER NOT NULL, rolled_back INTEGER NOT NULL,
    killed INTEGER NOT NULL, step INTEGER NOT NULL, canary_bp INTEGER, reason TEXT,
    changed_at REAL);
CREATE TABLE IF NOT EXISTS sums (
    route TEXT NOT NULL, arm TEXT NOT NULL, metric TEXT NOT NULL, n INTEGER NOT NULL,
    total REAL NOT NULL, squares REAL NOT NULL, PRIMARY KEY (route, arm, metric));
CREATE TABLE IF NOT EXISTS counters (
    route TEXT NOT NULL, arm TEXT NOT NULL, counter TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (route, arm, counter));
"""
_ADD_SUM = (
    "INSERT INTO sums (route, arm, metric, n, total, squares) VALUES (?, ?, ?, 1, ?, ?) "
    "ON CONFLICT (route, arm, metric) DO UPDATE SET n = n + 1, "
    "total = total + excluded.total, squares = squares + excluded.squares"
)
_ADD_COUNT = (
    "INSERT INTO counters (route, arm, counter, n) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (route, arm, counter) DO UPDATE SET n = n + excluded.n"
)


class _Connection(threading.local):
    conn: sqlite3.Connection | None = None
    pid: int = 0
    # Commits made through this connection (data_version does not see one's own).
    writes: int = 0
    cache: dict[str, tuple[int, int, RouteStatus]]

    def __init__(self) -> None:
        self.cache = {}


class FileStore:
    """A :class:`MonitorStore` in an SQLite file shared by the processes of one host."""

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 0.25) -> None:
        self.path = Path(path)
        self._timeout_s = timeout_s
        self._local = _Connection()
        self._outage = _Outage(f"state file {self.path}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._conn()
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise StoreUnavailable(f"state file {self.path}: cannot open it: {error}") from error

    @property
    def lost(self) -> int:
        """Updates (observations, counts) dropped because the file could not be written."""
        return self._outage.lost

    def __repr__(self) -> str:
        return f"FileStore({str(self.path)!r})"

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        # A connection never crosses a fork: SQLite forbids it.
        if local.conn is None or local.pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=max(self._timeout_s, 1.0), isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit is durable against a crash of the process, not of the OS.
            conn.execute("PRAGMA synchronous=NORMAL")
            local.conn, local.pid, local.writes, local.cache = conn, os.getpid(), 0, {}
        return local.conn

    def _write(self, statements: Any) -> Any:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = statements(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        self._local.writes += 1
        return result

    def status(self, route: str) -> RouteStatus:
        try:
            conn = self._conn()
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            cached = self._local.cache.get(route)
            if cached is not None and cached[:2] == (version, self._local.writes):
                return cached[2]
            row = conn.execute(
                f"SELECT {', '.join(_FIELDS)} FROM status WHERE route = ?", (route,)
            ).fetchone()
        except sqlite3.Error as error:
            return _unavailable(self._outage.failed("status", error))
        status = (
            RouteStatus() if row is None else _status_from(dict(zip(_FIELDS, row, strict=True)))
        )
        self._local.cache[route] = (version, self._local.writes, status)
        return status

    def observe(self, route: str, arm: ArmName, values: Mapping[str, float]) -> ArmSums:
        rows = [(route, arm, metric, float(v), float(v) * float(v)) for metric, v in values.items()]

        def add(conn: sqlite3.Connection) -> list[tuple[str, str, int, float, float]]:
            conn.executemany(_ADD_SUM, rows)
            return conn.execute(
                "SELECT arm, metric, n, total, squares FROM sums WHERE route = ?", (route,)
            ).fetchall()

        try:
            return _sums_of(self._write(add))
        except sqlite3.Error as error:
            self._outage.failed("observe", error)
            return _empty_sums()

    def sums(self, route: str) -> ArmSums:
        try:
            rows = (
                self._conn()
                .execute(
                    "SELECT arm, metric, n, total, squares FROM sums WHERE route = ?", (route,)
                )
                .fetchall()
            )
        except sqlite3.Error as error:
            self._outage.failed("sums", error)
            return _empty_sums()
        return _sums_of(rows)

    def transition(
        self, route: str, expected_generation: int, new: RouteStatus, *, clear_sums: bool = False
    ) -> bool:
        _check_generation(route, expected_generation, new)

        def swap(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT generation FROM status WHERE route = ?", (route,)).fetchone()
            if (0 if row is None else int(row[0])) != expected_generation:
                return False
            conn.execute(
                f"INSERT OR REPLACE INTO status (route, {', '.join(_FIELDS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    route,
                    new.generation,
                    int(new.rolled_back),
                    int(new.killed),
                    new.step,
                    new.canary_bp,
                    new.reason,
                    new.changed_at,
                ),
            )
            if clear_sums:
                conn.execute("DELETE FROM sums WHERE route = ?", (route,))
            return True

        try:
            return bool(self._write(swap))
        except sqlite3.Error as error:
            raise StoreUnavailable(
                f"state file {self.path}: route {route!r}: transition failed: {error}"
            ) from error

    def count(self, route: str, arm: ArmName, counter: str, n: int = 1) -> None:
        try:
            self._write(lambda conn: conn.execute(_ADD_COUNT, (route, arm, counter, n)))
        except sqlite3.Error as error:
            self._outage.failed("count", error)

    def counters(self, route: str) -> dict[ArmName, dict[str, int]]:
        result: dict[ArmName, dict[str, int]] = {"stable": {}, "candidate": {}}
        try:
            rows = (
                self._conn()
                .execute("SELECT arm, counter, n FROM counters WHERE route = ?", (route,))
                .fetchall()
            )
        except sqlite3.Error as error:
            self._outage.failed("counters", error)
            return result
        for arm, counter, n in rows:
            if arm in result:
                result[arm][counter] = int(n)
        return result

    def close(self) -> None:
        """Close this thread's connection (other threads' close with their thread)."""
        conn = self._local.conn
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None


def _sums_of(rows: Any) -> ArmSums:
    arms = _empty_sums()
    for arm, metric, n, total, squares in rows:
        if arm in arms:
            arms[arm][metric] = StreamSums(int(n), float(total), float(squares))
    return arms


# ---------------------------------------------------------------------------------------------
# Redis

_OBSERVE = """
local arm = ARGV[1]
for i = 2, #ARGV, 3 do
  local field = arm .. '|' .. ARGV[i]
  redis.call('HINCRBY', KEYS[1], field .. '|n', 1)
  redis.call('HINCRBYFLOAT', KEYS[1], field .. '|t', ARGV[i + 1])
  redis.call('HINCRBYFLOAT', KEYS[1], field .. '|s', ARGV[i + 2])
end
return redis.call('HGETALL', KEYS[1])
"""
_TRANSITION = """
local current = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
return 1
"""


class RedisStore:
    """A :class:`MonitorStore` on a Redis server shared by every replica (the ``redis`` extra)."""

    def __init__(self, url: str, *, prefix: str = "modelgate", timeout_s: float = 0.25) -> None:
        try:
            import redis
        except ImportError as error:
            raise ModelgateError(
                "the redis state backend needs the redis client: "
                "pip install 'pytest-modelgate[redis]'"
            ) from error
        self.url = _scrub(url)
        self.prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            retry_on_timeout=False,
        )
        self._observe = self._client.register_script(_OBSERVE)
        self._transition = self._client.register_script(_TRANSITION)
        self._outage = _Outage(f"redis {self.url}")

    @property
    def lost(self) -> int:
        """Updates (observations, counts) dropped because Redis did not answer."""
        return self._outage.lost

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    def _key(self, route: str, what: str) -> str:
        return f"{self.prefix}:route:{route}:{what}"

    def status(self, route: str) -> RouteStatus:
        try:
            values = self._client.hgetall(self._key(route, "status"))
        except self._errors as error:
            return _unavailable(self._outage.failed("status", error))
        return _status_from(_text(values))

    def observe(self, route: str, arm: ArmName, values: Mapping[str, float]) -> ArmSums:
        args: list[str] = [arm]
        for metric, value in values.items():
            v = float(value)
            args += [metric, repr(v), repr(v * v)]
        try:
            flat = self._observe(keys=[self._key(route, "sums")], args=args)
        except self._errors as error:
            self._outage.failed("observe", error)
            return _empty_sums()
        return _redis_sums(dict(zip(flat[::2], flat[1::2], strict=True)))

    def sums(self, route: str) -> ArmSums:
        try:
            values = self._client.hgetall(self._key(route, "sums"))
        except self._errors as error:
            self._outage.failed("sums", error)
            return _empty_sums()
        return _redis_sums(_text(values))

    def transition(
        self, route: str, expected_generation: int, new: RouteStatus, *, clear_sums: bool = False
    ) -> bool:
        _check_generation(route, expected_generation, new)
        fields: list[str] = []
        for name in _FIELDS:
            value = getattr(new, name)
            if value is None:
                continue
            fields += [name, str(int(value)) if isinstance(value, bool) else str(value)]
        try:
            done = self._transition(
                keys=[self._key(route, "status"), self._key(route, "sums")],
                args=[str(expected_generation), "1" if clear_sums else "0", *fields],
            )
        except self._errors as error:
            raise StoreUnavailable(
                f"redis {self.url}: route {route!r}: transition failed: {_scrub(str(error))}"
            ) from error
        return bool(done)

    def count(self, route: str, arm: ArmName, counter: str, n: int = 1) -> None:
        try:
            self._client.hincrby(self._key(route, "counters"), f"{arm}|{counter}", n)
        except self._errors as error:
            self._outage.failed("count", error)

    def counters(self, route: str) -> dict[ArmName, dict[str, int]]:
        result: dict[ArmName, dict[str, int]] = {"stable": {}, "candidate": {}}
        try:
            values = self._client.hgetall(self._key(route, "counters"))
        except self._errors as error:
            self._outage.failed("counters", error)
            return result
        for field, n in _text(values).items():
            arm, _, counter = field.partition("|")
            if arm in ARMS:
                result[arm][counter] = int(n)
        return result

    def close(self) -> None:
        """Close the connection pool (the server keeps the data)."""
        self._client.close()


def _text(values: Any) -> dict[str, str]:
    # The client decodes replies (decode_responses=True): keys and values are str.
    return cast("dict[str, str]", values)


def _redis_sums(values: Mapping[str, str]) -> ArmSums:
    arms = _empty_sums()
    parts: dict[tuple[str, str], dict[str, float]] = {}
    for field, value in values.items():
        arm, _, rest = field.partition("|")
        metric, _, part = rest.rpartition("|")
        parts.setdefault((arm, metric), {})[part] = float(value)
    for (arm, metric), got in parts.items():
        if arm in arms:
            arms[arm][metric] = StreamSums(
                int(got.get("n", 0)), got.get("t", 0.0), got.get("s", 0.0)
            )
    return arms
