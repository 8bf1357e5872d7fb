"""False rollbacks and detection of the canary monitor, next to a naive fixed-threshold check.

Simulated traffic on one route: a 5% canary (each request goes to the candidate with probability
0.05), stable with a 2% error rate, 98% valid JSON and log-normal latencies (median 368 ms).
The package's own :class:`~pytest_modelgate.gateway.monitor.CanaryMonitor` on a ``MemoryStore``
receives every request as the gateway reports it (a ``RequestEvent``) and checks its three
triggers after each one:

* ``error_rate``: candidate - stable rises by more than 0.5 points;
* ``json_validity``: candidate - stable drops by more than 1 point;
* ``latency_p95_ms``: candidate p95 above 1.1 x stable p95;

with a false-rollback budget ``alpha = 0.01`` for the route (the monitor's default).

Beside it, on the same requests, the check the canary tools do (Flagger's ``threshold`` on a
metric query at each interval, Argo's ``failureLimit``): every 100 requests, compare the
candidate's figures so far with fixed thresholds (stable's true rate + the margin, 1.1 x stable's
true p95), from 200 candidate requests on (the monitor's ``min_requests`` too), and roll back
after ``limit`` failed checks (1 and 5). It knows stable's true figures, which is more than a real
one does.

Scenarios: ``a/a`` (the candidate is stable's twin: every rollback is false), ``errors x2``
(4% errors), ``json -5 pts`` (93% valid JSON), ``p95 x1.5`` (every latency 1.5x). Printed per
scenario and check: the share of runs that rolled back within the requests, and the median number
of candidate requests at the rollback.

Usage::

    .venv/bin/python bench/canary_monitor.py                  # 200 runs x 100,000 requests
    .venv/bin/python bench/canary_monitor.py --runs 20 --requests 20000 --workers 2

Runs are seeded (``seed = run index``); the same arguments print the same figures. The exit status
is 0 whatever the figures; 1 when a step fails.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pytest_modelgate.gateway.events import ModelCallEvent, RequestEvent
from pytest_modelgate.gateway.monitor import CanaryMonitor
from pytest_modelgate.gateway.routes import RouteSettings
from pytest_modelgate.gateway.state import MemoryStore

SHARE = 0.05
STABLE_ERRORS = 0.02
STABLE_JSON = 0.98
LATENCY_MU, LATENCY_SIGMA = -1.0, 0.4  # seconds, log-normal
ERROR_MARGIN, JSON_MARGIN, P95_MARGIN = 0.005, 0.01, 1.1
CHECK_EVERY = 100
# Both checks wait for this many candidate requests (the triggers' default min_requests).
MIN_REQUESTS = 200
ROUTE = RouteSettings.model_validate(
    {
        "stable": "stable-model",
        "candidate": "candidate-model",
        "canary_percent": 5,
        "contract": {"json": True},
        "rollback": [
            {"metric": "error_rate", "op": ">", "threshold": 0.025, "unit": "rate",
             "margin": ERROR_MARGIN},
            {"metric": "json_validity", "op": "<", "threshold": 0.97, "unit": "rate",
             "margin": JSON_MARGIN},
            {"metric": "latency_p95_ms", "op": ">", "threshold": 700.0, "unit": "ms",
             "margin": P95_MARGIN},
        ],
    }
)  # fmt: skip
SCENARIOS = {
    "a/a": (STABLE_ERRORS, STABLE_JSON, 1.0),
    "errors x2": (2 * STABLE_ERRORS, STABLE_JSON, 1.0),
    "json -5 pts": (STABLE_ERRORS, STABLE_JSON - 0.05, 1.0),
    "p95 x1.5": (STABLE_ERRORS, STABLE_JSON, 1.5),
}
_BAD_JSON = ("reply is not JSON: 'Sure! {...'",)


@dataclass(frozen=True)
class RunResult:
    """At which candidate request each check rolled back (None: it never did)."""

    monitor: int | None
    naive: dict[int, int | None]
    seconds: float


def _stable_p95_ms() -> float:
    return 1000.0 * math.exp(LATENCY_MU + 1.6448536269514722 * LATENCY_SIGMA)


def one_run(args: tuple[str, int, int]) -> RunResult:
    """One seeded run of ``requests`` requests of a scenario through the monitor and the naive
    check; both stop looking once they rolled back."""
    scenario, seed, requests = args
    errors, valid_json, slower = SCENARIOS[scenario]
    rng = random.Random(seed)
    store = MemoryStore()
    monitor = CanaryMonitor({"route": ROUTE}, store)
    started = time.perf_counter()
    thresholds = (
        STABLE_ERRORS + ERROR_MARGIN,
        STABLE_JSON - JSON_MARGIN,
        P95_MARGIN * _stable_p95_ms(),
    )
    naive: dict[int, int | None] = {1: None, 5: None}
    failed_checks = 0
    c_requests = c_errors = c_replies = c_bad = 0
    c_latencies: list[float] = []
    monitor_at: int | None = None
    for index in range(1, requests + 1):
        candidate = rng.random() < SHARE
        failed = rng.random() < (errors if candidate else STABLE_ERRORS)
        broken = not failed and rng.random() >= (valid_json if candidate else STABLE_JSON)
        latency = rng.lognormvariate(LATENCY_MU, LATENCY_SIGMA) * (slower if candidate else 1.0)
        arm = "candidate" if candidate else "stable"
        if candidate:
            c_requests += 1
            c_errors += failed
            if not failed:
                c_replies += 1
                c_bad += broken
                c_latencies.append(latency * 1000.0)
        if monitor_at is None:
            call = ModelCallEvent(
                route="route",
                arm=arm,
                role="primary",
                model=arm,
                model_id=arm,
                provider=None,
                base_url="http://127.0.0.1/v1",
                started_ns=0,
                duration_s=latency,
                stream=False,
                error_kind="timeout" if failed else None,
                violations=_BAD_JSON if broken else (),
            )
            monitor.on_request(
                RequestEvent(route="route", arm=arm, primary=call, fallbacks=0, served_by=arm)
            )
            if store.status("route").rolled_back:
                monitor_at = c_requests
        if index % CHECK_EVERY == 0 and c_requests >= MIN_REQUESTS and naive[5] is None:
            p95 = statistics.quantiles(c_latencies, n=20, method="inclusive")[-1]
            failing = (
                c_errors / c_requests > thresholds[0]
                or 1 - c_bad / c_replies < thresholds[1]
                or p95 > thresholds[2]
            )
            if failing:
                failed_checks += 1
                for limit in naive:
                    if naive[limit] is None and failed_checks >= limit:
                        naive[limit] = c_requests
        if monitor_at is not None and naive[5] is not None:
            break
    return RunResult(monitor_at, naive, time.perf_counter() - started)


def _summary(stops: list[int | None]) -> str:
    fired = [s for s in stops if s is not None]
    share = len(fired) / len(stops)
    median = f"{statistics.median(fired):,.0f}" if fired else "-"
    return f"{share:7.1%} ({len(fired):3d}/{len(stops)})  median at {median:>6} candidate requests"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="seeded runs per scenario (200)")
    parser.add_argument("--requests", type=int, default=100_000, help="requests per run")
    parser.add_argument("--workers", type=int, default=2, help="processes (2)")
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = parser.parse_args(argv)
    print(
        f"canary monitor: {args.runs} runs x {args.requests:,} requests per scenario, "
        f"{SHARE:.0%} canary, checks after every request (monitor, alpha 0.01) and every "
        f"{CHECK_EVERY} requests (naive fixed thresholds)"
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for scenario in args.scenarios:
            jobs = [(scenario, seed, args.requests) for seed in range(args.runs)]
            results = list(pool.map(one_run, jobs, chunksize=max(1, args.runs // 20)))
            print(f"\n{scenario}:")
            print(f"  monitor (anytime-valid)      {_summary([r.monitor for r in results])}")
            for limit in (1, 5):
                stops = [r.naive[limit] for r in results]
                print(f"  naive, failure limit {limit}      {_summary(stops)}")
            cpu = sum(r.seconds for r in results)
            print(f"  ({cpu:.0f} s of run time in {args.workers} processes)")
    print(f"\nwall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
