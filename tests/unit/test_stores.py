"""Every MonitorStore backend against one contract: memory, the SQLite file, a real Redis.

Compare-and-set transitions, sums that add up exactly from many threads (and, for the shared
backends, from several processes), counters, clearing, and the fall back to stable when the
store cannot be reached."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.gateway.routes import StateSettings
from pytest_modelgate.gateway.state import MemoryStore, MonitorStore, RouteStatus
from pytest_modelgate.gateway.stores import (
    UNAVAILABLE,
    FileStore,
    RedisStore,
    StoreUnavailable,
    open_store,
)

BACKENDS = ["memory", "file", "redis"]


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], MonitorStore]]:
    """``make_store()``: a new handle on one store (several handles share it, as processes do)."""
    made: list[MonitorStore] = []
    memory = MemoryStore()
    prefix = f"t-{uuid.uuid4().hex[:8]}"

    def make() -> MonitorStore:
        store: MonitorStore
        if request.param == "memory":
            store = memory
        elif request.param == "file":
            store = FileStore(tmp_path / "state.db")
        else:
            server = request.getfixturevalue("redis_server")
            store = RedisStore(server.url, prefix=prefix)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_a_stale_transition_is_refused_and_changes_nothing(
    make_store: Callable[[], MonitorStore],
) -> None:
    one, two = make_store(), make_store()
    assert one.status("r") == RouteStatus()
    rolled = RouteStatus(
        generation=1, rolled_back=True, reason="error_rate: +3 pts", changed_at=5.5
    )
    assert one.transition("r", 0, rolled)
    # Another process that also saw generation 0 loses the race.
    assert not two.transition("r", 0, RouteStatus(generation=1, step=3))
    assert two.status("r") == rolled
    assert one.status("r") == rolled
    with pytest.raises(ValueError, match="route 'r': a new status has generation 2, got 5"):
        one.transition("r", 1, RouteStatus(generation=5))
    promoted = RouteStatus(generation=2, step=1, canary_bp=2500, killed=True)
    assert two.transition("r", 1, promoted)
    # None fields of the new status are cleared, not kept from the old one.
    assert one.status("r") == promoted


def test_sums_add_up_exactly_from_many_threads(make_store: Callable[[], MonitorStore]) -> None:
    stores = [make_store() for _ in range(4)]

    def feed(store: MonitorStore, arm: str) -> None:
        for i in range(250):
            store.observe("r", arm, {"error": float(i % 2), "cost": 0.5})  # type: ignore[arg-type]
            store.count("r", arm, "requests")  # type: ignore[arg-type]

    threads = [
        threading.Thread(target=feed, args=(store, arm))
        for store in stores
        for arm in ("stable", "candidate")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sums = stores[0].sums("r")
    for arm in ("stable", "candidate"):
        error = sums[arm]["error"]  # type: ignore[index]
        assert (error.n, error.total, error.squares) == (1000, 500.0, 500.0)
        assert sums[arm]["cost"].total == 500.0  # type: ignore[index]
        assert stores[1].counters("r")[arm]["requests"] == 1000  # type: ignore[index]
    assert stores[2].counters("other") == {"stable": {}, "candidate": {}}


def test_observe_returns_both_arms_and_clear_sums_drops_them(
    make_store: Callable[[], MonitorStore],
) -> None:
    store = make_store()
    store.observe("r", "stable", {"latency#300": 1.0, "latency": 123.25})
    after = store.observe("r", "candidate", {"error": 1.0})
    assert after["stable"]["latency"].total == 123.25
    assert after["candidate"]["error"].n == 1
    store.observe("other", "stable", {"error": 1.0})
    assert store.transition("r", 0, RouteStatus(generation=1), clear_sums=True)
    assert store.sums("r") == {"stable": {}, "candidate": {}}
    assert store.sums("other")["stable"]["error"].n == 1


def _processes_feed(settings: dict[str, Any], base: str) -> None:
    store = open_store(StateSettings.model_validate(settings), base=Path(base))
    for _ in range(300):
        store.observe("r", "candidate", {"error": 1.0})
        store.count("r", "candidate", "requests")
    store.close()


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_two_processes_add_up_exactly(backend: str, tmp_path: Path, request: Any) -> None:
    if backend == "file":
        settings: dict[str, Any] = {"backend": "file", "path": "state.db"}
    else:
        url = request.getfixturevalue("redis_server").url
        settings = {"backend": "redis", "url": url, "prefix": f"p-{uuid.uuid4().hex[:8]}"}
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_processes_feed, args=(settings, str(tmp_path))) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = open_store(StateSettings.model_validate(settings), base=tmp_path)
    assert store.sums("r")["candidate"]["error"].n == 600
    assert store.counters("r")["candidate"]["requests"] == 600
    store.close()


def test_an_unreachable_redis_sends_routes_to_stable_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redisserver import free_port

    store = RedisStore(f"redis://user:s3cret-pass@127.0.0.1:{free_port()}/0", timeout_s=0.1)
    with caplog.at_level(logging.WARNING, "pytest_modelgate.gateway"):
        status = store.status("r")
        store.observe("r", "candidate", {"error": 1.0})
        store.count("r", "candidate", "requests")
    assert (status.generation, status.rolled_back) == (UNAVAILABLE, True)
    assert status.reason is not None
    assert "unavailable" in status.reason
    assert store.lost == 2
    assert "serving every route from stable" in caplog.text
    # One warning for the burst, and the password never shown.
    assert caplog.text.count("serving every route") == 1
    assert "s3cret" not in caplog.text + repr(store) + status.reason
    with pytest.raises(StoreUnavailable, match="transition failed"):
        store.transition("r", 0, RouteStatus(generation=1, rolled_back=True))


def test_state_settings_name_the_missing_field() -> None:
    with pytest.raises(ValueError, match="backend 'file' needs path"):
        StateSettings.model_validate({"backend": "file"})
    with pytest.raises(ValueError, match="backend 'redis' needs url"):
        StateSettings.model_validate({"backend": "redis"})
    with pytest.raises(ValueError, match="url must start with redis://"):
        StateSettings.model_validate({"backend": "redis", "url": "http://x"})
    with pytest.raises(ValueError, match="backend"):
        StateSettings.model_validate({"backend": "etcd"})
