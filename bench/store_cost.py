"""What a request pays for shared route state: ``status()`` and ``observe()`` per store.

``status()`` runs on every request of a route in a store (the gateway reads the route's state);
``observe()`` after every request of a watched canary. Measured for the in-process store, the
SQLite file store and, when ``redis-server`` is installed, a Redis store on a loopback server
this bench starts and stops. Printed: microseconds of wall time per call, median of 5 rounds.

    .venv/bin/python bench/store_cost.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pytest_modelgate.gateway.state import MemoryStore, MonitorStore
from pytest_modelgate.gateway.stores import FileStore, RedisStore


def per_call_us(action: object, calls: int) -> float:
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            action()  # type: ignore[operator]
        rounds.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(rounds)


def measure(name: str, store: MonitorStore, calls: int) -> None:
    values = {"error": 0.0, "latency": 350.0, "latency#288": 1.0}
    status = per_call_us(lambda: store.status("triage"), calls)
    observe = per_call_us(lambda: store.observe("triage", "candidate", values), calls // 10)
    print(f"  {name:7s} status() {status:8.1f} us   observe() {observe:8.1f} us")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    counts = f"status x{args.calls}, observe x{args.calls // 10}"
    print(f"store cost per call (median of 5 rounds; {counts})")
    measure("memory", MemoryStore(), args.calls)
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(Path(folder) / "state.db")
        measure("file", store, args.calls)
        store.close()
        try:
            from redisserver import RedisServer, free_port

            server = RedisServer(free_port(), Path(folder))
            server.start()
        except Exception as exc:  # pytest.skip's exception too: no redis-server here
            print(f"  redis   skipped: {exc}")
            return 0
        try:
            redis_store = RedisStore(server.url)
            measure("redis", redis_store, args.calls)
            redis_store.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
