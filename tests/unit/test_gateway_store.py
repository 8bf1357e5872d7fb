"""MemoryStore: compare-and-set transitions, sums that add up across threads, counters."""

from __future__ import annotations

import threading

import pytest

from pytest_modelgate.gateway.routes import RouteSettings
from pytest_modelgate.gateway.state import MemoryStore, RouteState, RouteStatus, StoreState


def test_a_transition_from_a_stale_generation_is_refused_and_changes_nothing() -> None:
    store = MemoryStore()
    assert store.status("r") == RouteStatus()
    assert store.transition("r", 0, RouteStatus(generation=1, rolled_back=True))
    # A second replica that also saw generation 0 loses the race.
    assert not store.transition("r", 0, RouteStatus(generation=1, step=3))
    assert store.status("r") == RouteStatus(generation=1, rolled_back=True)
    with pytest.raises(ValueError, match="route 'r': a new status has generation 2, got 5"):
        store.transition("r", 1, RouteStatus(generation=5))


def test_clear_sums_drops_the_route_sums_in_the_same_step() -> None:
    store = MemoryStore()
    store.observe("r", "stable", {"error": 1.0})
    store.observe("r", "candidate", {"error": 0.0, "latency": 0.5})
    store.observe("other", "stable", {"error": 1.0})
    sums = store.sums("r")
    assert (sums["stable"]["error"].n, sums["candidate"]["latency"].n) == (1, 1)
    assert store.transition("r", 0, RouteStatus(generation=1), clear_sums=False)
    assert store.sums("r")["stable"]["error"].n == 1
    assert store.transition("r", 1, RouteStatus(generation=2), clear_sums=True)
    assert store.sums("r") == {"stable": {}, "candidate": {}}
    assert store.sums("other")["stable"]["error"].n == 1


def test_sums_and_counters_from_many_threads_add_up_exactly() -> None:
    store = MemoryStore()
    threads = 8
    per_thread = 500

    def work(index: int) -> None:
        for i in range(per_thread):
            store.observe("r", "candidate", {"error": float((index + i) % 2)})
            store.count("r", "candidate", "requests")

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * per_thread
    error = store.sums("r")["candidate"]["error"]
    assert error.n == total
    assert error.total == pytest.approx(total / 2)
    assert store.counters("r") == {"stable": {}, "candidate": {"requests": total}}


def test_observe_returns_a_snapshot_the_caller_cannot_corrupt() -> None:
    store = MemoryStore()
    snapshot = store.observe("r", "stable", {"error": 1.0})
    snapshot["stable"].clear()
    assert store.sums("r")["stable"]["error"].n == 1


def test_store_state_set_state_writes_a_new_generation() -> None:
    routes = {
        "r": RouteSettings.model_validate(
            {"stable": "a", "candidate": "b", "canary_percent": 5, "shadow_percent": 20}
        )
    }
    store = MemoryStore()
    state = StoreState(routes, store)
    base = state.state("r")
    assert (base.canary_bp, base.shadow_bp, base.rolled_back) == (500, 2000, False)
    state.set_state("r", RouteState("a", "b", canary_bp=2500, shadow_bp=2000))
    assert store.status("r").generation == 1
    assert state.state("r").canary_bp == 2500
    state.set_state("r", RouteState("a", "b", canary_bp=2500, shadow_bp=2000, rolled_back=True))
    assert store.status("r") == RouteStatus(generation=2, canary_bp=2500, rolled_back=True)
    assert state.state("r").rolled_back
