"""What checking a route's kill switch costs per call, and what the whole routing decision costs.

Prints nanoseconds per check measured in one run (median of 7 rounds): no switch, an env switch,
a file switch (one stat of a missing file), both; then ``Gateway.choose`` with a sticky key
(SHA-256 twice, kill switch, arm) to put the figures in proportion. No HTTP is made.

    python bench/gateway_killswitch.py [--rounds 7] [--n 200000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from pytest_modelgate.gateway import Gateway


def per_call_ns(fn: object, n: int, rounds: int) -> float:
    """Median over ``rounds`` of the ns per call of ``fn()`` run ``n`` times."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(n):
            fn()  # type: ignore[operator]
        samples.append((time.perf_counter_ns() - started) / n)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kill_file = str(Path(tmp) / "kill")
        model = {"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}
        routes = {
            "none": {"stable": "a", "candidate": "b", "canary_percent": 5},
            "env": {"stable": "a", "kill_switch": {"env": "MODELGATE_BENCH_KILL"}},
            "file": {"stable": "a", "kill_switch": {"file": kill_file}},
            "both": {
                "stable": "a",
                "candidate": "b",
                "canary_percent": 5,
                "kill_switch": {"env": "MODELGATE_BENCH_KILL", "file": kill_file},
            },
        }
        path = Path(tmp) / "modelgate.yaml"
        path.write_text(yaml.safe_dump({"models": {"a": model, "b": model}, "routes": routes}))
        with Gateway.from_config(path) as gateway:
            print(f"n={args.n} x {args.rounds} rounds, median ns per call")
            for name in routes:
                ns = per_call_ns(lambda name=name: gateway.killed(name), args.n, args.rounds)
                print(f"  kill switch check, {name:5s}: {ns:8.0f} ns")
            ns = per_call_ns(
                lambda: gateway.choose("both", key="user-42"), args.n // 4, args.rounds
            )
            print(f"  choose(both, key=...) whole decision: {ns:8.0f} ns")


if __name__ == "__main__":
    main()
