"""The gateway under load on loopback (issue 12): canary, shadow, fallback, drops and memory.

Two bundled simulators in their own processes (``bench/_simproc.py``) give the two arms separate
behaviour: one serves the stable model and the fallback model, the other the candidate. Every
scenario sends ``--requests`` requests (default 1,000) from ``--concurrency`` threads (default
50) through ``Gateway.chat`` on a route with ``canary_percent: 5``, ``shadow_percent: 20``, a
sticky key per request (``user-<i>``, so the arm of each request is known in advance from
``Gateway.choose``) and a fallback model. Scenarios:

healthy
    both simulators answer after ``--latency-ms`` (default 10 ms).
candidate-down
    the candidate's simulator is stopped before the run (its port is closed): canary requests
    must all succeed through fallback, shadow calls fail (counted, never seen by the user).
candidate-slow
    the candidate answers after ``--slow-ms`` (default 200 ms): the stable-arm users' p99 must
    stay that of healthy within noise (the shadow never delays them); canary users do see the
    slow candidate, so their figures are printed apart.
tiny-queue
    the shadow pool has 1 worker and a queue of 1, the candidate answers after 50 ms: most
    shadow calls are dropped, and the drops must equal the sampled requests minus the shadow
    calls made (and minus the jobs still queued at close, reported as not run).
memory
    ``--memory-batches`` batches (default 3) of ``--requests`` on one healthy gateway under
    ``tracemalloc``: the memory traced after each batch must not grow with the requests served
    (the gateway's call log keeps nothing; the shadow queue is bounded).

Per scenario: user latency p50/p99 (all requests, and the stable arm alone), failures seen by
callers, fallbacks, requests sampled for shadow, shadow calls made, drops, not run at close,
the check ``sampled == calls + drops + not run``, and RSS (``/proc/self/status``) before and
after; the memory scenario prints the traced memory per batch and tracemalloc's peak. Bounded
in count and time: ``--max-seconds`` (default 300) stops the bench with exit status 1, as do
a failure seen by a caller in a scenario where there must be none, or a failed check. No
network beyond loopback (an audit hook refuses anything else).

Usage::

    PYTHONPATH=/path/to/gateway/worktree .venv/bin/python bench/gateway_load.py
    .venv/bin/python bench/gateway_load.py --requests 200 --concurrency 20   # reduced size
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import platform
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _simproc import SimulatorProcess
from gateway_overhead import MESSAGES, _loopback_only, quantile

KEY = "sk-bench-gateway-load-0123456789"
KEY_ENV = "MODELGATE_BENCH_GATEWAY_KEY"
ROUTE = "triage"


class _CountingHandler(logging.Handler):
    """Counts the gateway's warnings per scenario and message (a number in it made ``N``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.scenario = ""
        self.counts: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[self.scenario, re.sub(r"\d+", "N", record.getMessage())] += 1


@dataclass
class Outcome:
    """One scenario's figures."""

    name: str
    times_ms: list[float] = field(default_factory=list)
    stable_ms: list[float] = field(default_factory=list)
    canary_ms: list[float] = field(default_factory=list)
    failures: int = 0
    sampled: int = 0
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    not_run: int = 0
    rss_before_kb: int = 0
    rss_after_kb: int = 0
    wall_s: float = 0.0
    first_failure: str = ""

    @property
    def fallbacks(self) -> int:
        return sum(arm["fallbacks"] for arm in self.counters.values())

    @property
    def shadow_calls(self) -> int:
        return self.counters["candidate"]["shadow_calls"]

    @property
    def drops(self) -> int:
        return self.counters["candidate"]["shadow_drops"]

    @property
    def balanced(self) -> bool:
        return self.sampled == self.shadow_calls + self.drops + self.not_run


def rss_kb() -> int:
    """Resident set size of this process in KiB (Linux), 0 elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_config(tmp: Path, stable_url: str, candidate_url: str, *, timeout_s: float = 5.0) -> Path:
    model = {"api_key_env": KEY_ENV, "price": {"input": 1.0, "output": 2.0}}
    data = {
        "models": {
            "sim-stable": {**model, "base_url": stable_url},
            "sim-fallback": {**model, "base_url": stable_url},
            "sim-candidate": {**model, "base_url": candidate_url},
        },
        "client": {"max_retries": 0, "timeout_s": timeout_s, "deadline_s": timeout_s * 2},
        "routes": {
            ROUTE: {
                "stable": "sim-stable",
                "candidate": "sim-candidate",
                "canary_percent": 5,
                "shadow_percent": 20,
                "sticky_key": "required",
                "fallback": ["sim-fallback"],
            }
        },
    }
    path = tmp / "modelgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def run_requests(
    gateway: Any, outcome: Outcome, requests: int, concurrency: int, offset: int = 0
) -> None:
    """``requests`` calls from ``concurrency`` threads; each call timed around ``chat``."""
    lock = threading.Lock()
    keys = [f"user-{offset + i}" for i in range(requests)]
    arms = {key: gateway.choose(ROUTE, key=key) for key in keys}
    outcome.sampled += sum(1 for choice in arms.values() if choice.shadow_model is not None)

    def one(key: str) -> None:
        t0 = time.perf_counter_ns()
        try:
            gateway.chat(ROUTE, MESSAGES, key=key)
        except Exception as exc:  # a failure the user would see: counted, the load goes on
            with lock:
                outcome.failures += 1
                outcome.first_failure = outcome.first_failure or f"{type(exc).__name__}: {exc}"
            return
        ms = (time.perf_counter_ns() - t0) / 1e6
        with lock:
            outcome.times_ms.append(ms)
            arm_times = outcome.canary_ms if arms[key].arm == "candidate" else outcome.stable_ms
            arm_times.append(ms)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, keys))


def warm_up(gateway: Any, args: argparse.Namespace, requests: int) -> dict[str, dict[str, int]]:
    """Untimed requests first (connections, clients, lazy imports), then the counters to subtract.

    Waits (within ``--drain-s``) for the warm-up's shadow jobs, so none lands in the timed part.
    """
    warm = Outcome("warm-up")
    run_requests(gateway, warm, requests, args.concurrency, offset=-(10**6))
    deadline = time.monotonic() + args.drain_s
    while time.monotonic() < deadline:
        counts = gateway.counters()[ROUTE]["candidate"]
        if counts["shadow_calls"] + counts["shadow_drops"] >= warm.sampled:
            break
        time.sleep(0.02)
    baseline: dict[str, dict[str, int]] = gateway.counters()[ROUTE]
    return baseline


def minus(
    after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    return {
        arm: {k: v - before[arm][k] for k, v in counts.items()} for arm, counts in after.items()
    }


def scenario(
    name: str,
    args: argparse.Namespace,
    tmp: Path,
    *,
    candidate_ms: float,
    candidate_down: bool = False,
    shadow_workers: int = 2,
    shadow_queue: int = 64,
) -> Outcome:
    from pytest_modelgate.gateway import Gateway

    outcome = Outcome(name)
    stable_models = {"sim-stable": {"latency_ms": args.latency_ms}}
    stable_models["sim-fallback"] = {"latency_ms": args.latency_ms}
    candidate = {"sim-candidate": {"latency_ms": candidate_ms}}
    workdir = tmp / name
    workdir.mkdir()
    with (
        SimulatorProcess({"api_key": KEY, "models": stable_models}, workdir, "stable") as stable,
        SimulatorProcess({"api_key": KEY, "models": candidate}, workdir, "candidate") as cand,
    ):
        if candidate_down:
            cand.stop()  # its port is closed now: every call to the candidate is refused
        path = write_config(workdir, stable.base_url, cand.base_url)
        gateway = Gateway.from_config(
            path,
            environ={KEY_ENV: KEY},
            shadow_workers=shadow_workers,
            shadow_queue=shadow_queue,
            shadow_log=workdir / "shadow.jsonl",
        )
        baseline = warm_up(gateway, args, args.concurrency)
        gc.collect()
        outcome.rss_before_kb = rss_kb()
        started = time.perf_counter()
        run_requests(gateway, outcome, args.requests, args.concurrency)
        outcome.wall_s = time.perf_counter() - started
        # Drained within a bound: what is still queued then is reported as not run.
        outcome.not_run = gateway.close(timeout_s=args.drain_s)
        outcome.counters = minus(gateway.counters()[ROUTE], baseline)
        outcome.rss_after_kb = rss_kb()
    return outcome


# The bench keeps every request's time: its own lists are not the gateway's memory.
_NOT_THE_BENCH = (
    tracemalloc.Filter(False, __file__),
    tracemalloc.Filter(False, tracemalloc.__file__),
)


_FRAMES = 12


def _where(traceback: tracemalloc.Traceback) -> str:
    """The allocating line, and the innermost line of the package that led to it."""
    frames = list(traceback)
    ours = [f for f in frames if "pytest_modelgate" in f.filename]
    where = f"{frames[-1]}" if frames else "?"
    if ours:
        where += f" via {ours[-1]}"
    return where


def memory_scenario(
    args: argparse.Namespace, tmp: Path, grew: list[str]
) -> tuple[list[int], int, Outcome]:
    from pytest_modelgate.gateway import Gateway

    outcome = Outcome("memory")
    models = {"sim-stable": {}, "sim-fallback": {}}
    workdir = tmp / "memory"
    workdir.mkdir()
    traced: list[int] = []
    snapshots: list[tracemalloc.Snapshot] = []
    with (
        SimulatorProcess({"api_key": KEY, "models": models}, workdir, "stable") as stable,
        SimulatorProcess(
            {"api_key": KEY, "models": {"sim-candidate": {}}}, workdir, "candidate"
        ) as cand,
    ):
        path = write_config(workdir, stable.base_url, cand.base_url)
        gateway = Gateway.from_config(
            path, environ={KEY_ENV: KEY}, shadow_log=workdir / "shadow.jsonl"
        )
        # One untraced batch first: connections, lazy imports and caches are made once.
        baseline = warm_up(gateway, args, args.requests)
        outcome.rss_before_kb = rss_kb()
        tracemalloc.start(_FRAMES)
        started = time.perf_counter()
        for batch in range(args.memory_batches):
            run_requests(gateway, outcome, args.requests, args.concurrency, batch * args.requests)
            # Let the shadow pool catch up, so queued jobs are not counted as growth.
            deadline = time.monotonic() + args.drain_s
            while time.monotonic() < deadline:
                counts = minus(gateway.counters()[ROUTE], baseline)["candidate"]
                if counts["shadow_calls"] + counts["shadow_drops"] >= outcome.sampled:
                    break
                time.sleep(0.02)
            gc.collect()
            snapshots.append(tracemalloc.take_snapshot().filter_traces(_NOT_THE_BENCH))
            traced.append(sum(stat.size for stat in snapshots[-1].statistics("filename")))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        growth = snapshots[-1].compare_to(snapshots[0], "traceback")[:3]
        grew.extend(f"{stat.size_diff / 1024:+.1f} KiB {_where(stat.traceback)}" for stat in growth)
        outcome.wall_s = time.perf_counter() - started
        outcome.not_run = gateway.close(timeout_s=args.drain_s)
        outcome.counters = minus(gateway.counters()[ROUTE], baseline)
        outcome.rss_after_kb = rss_kb()
    return traced, peak, outcome


def p(values: list[float], q: float) -> str:
    return f"{quantile(values, q):8.1f}" if values else f"{'-':>8s}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per scenario")
    parser.add_argument("--concurrency", type=int, default=50, help="caller threads")
    parser.add_argument("--latency-ms", type=float, default=10.0, help="simulator latency")
    parser.add_argument("--slow-ms", type=float, default=200.0, help="the slow candidate's")
    parser.add_argument("--drain-s", type=float, default=10.0, help="bound on the shadow drain")
    parser.add_argument("--memory-batches", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on the bench")
    args = parser.parse_args(argv)
    try:
        import pytest_modelgate.gateway.core  # noqa: F401
    except ImportError as exc:
        print(f"gateway_load: skipped: pytest_modelgate.gateway not importable ({exc})")
        return 0
    sys.addaudithook(_loopback_only)
    # The gateway warns on each fallback and drop: counted here instead of printed.
    logger = logging.getLogger("pytest_modelgate.gateway")
    counter = _CountingHandler()
    logger.addHandler(counter)
    logger.propagate = False
    # The bound on the whole bench: a hung scenario ends the process with exit status 1.
    watchdog = threading.Timer(args.max_seconds, lambda: os._exit(1))
    watchdog.daemon = True
    watchdog.start()

    print(
        f"gateway_load: {args.requests} requests per scenario from {args.concurrency} threads, "
        f"route canary 5% shadow 20% (2 shadow workers, queue 64 unless said), stable latency "
        f"{args.latency_ms:g} ms; python {platform.python_version()}, {os.cpu_count()} cpus"
    )
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        runs: list[tuple[str, dict[str, Any]]] = [
            ("healthy", {"candidate_ms": args.latency_ms}),
            ("candidate-down", {"candidate_ms": args.latency_ms, "candidate_down": True}),
            ("candidate-slow", {"candidate_ms": args.slow_ms}),
            ("tiny-queue", {"candidate_ms": 50, "shadow_workers": 1, "shadow_queue": 1}),
            # healthy once more, last: the load of the machine drifts; slow is compared with both.
            ("healthy-again", {"candidate_ms": args.latency_ms}),
        ]
        for name, options in runs:
            counter.scenario = name
            outcomes.append(scenario(name, args, tmp, **options))
        counter.scenario = "memory"
        grew: list[str] = []
        traced, peak, memory = memory_scenario(args, tmp, grew)
        outcomes.append(memory)

    header = (
        f"{'scenario':15s} {'p50 ms':>8s} {'p99 ms':>8s} {'st p99':>8s} {'can p99':>8s} "
        f"{'fail':>5s} {'fallbk':>6s} {'sampled':>7s} {'shadow':>6s} {'drops':>6s} "
        f"{'notrun':>6s} {'check':>5s} {'rss MiB':>13s} {'wall s':>6s}"
    )
    print(header)
    for o in outcomes:
        rss = f"{o.rss_before_kb / 1024:.0f}->{o.rss_after_kb / 1024:.0f}"
        print(
            f"{o.name:15s} {p(o.times_ms, 0.5)} {p(o.times_ms, 0.99)} {p(o.stable_ms, 0.99)} "
            f"{p(o.canary_ms, 0.99)} {o.failures:5d} {o.fallbacks:6d} {o.sampled:7d} "
            f"{o.shadow_calls:6d} {o.drops:6d} {o.not_run:6d} "
            f"{'ok' if o.balanced else 'BAD':>5s} {rss:>13s} {o.wall_s:6.1f}"
        )
    print("(st/can p99: the stable-arm and canary requests alone; check: sampled = shadow + drops")
    print(" + not run at close; rss: before -> after the scenario's requests)")
    mib = ", ".join(f"{t / 2**20:.2f}" for t in traced)
    print(
        f"memory: traced after each batch of {args.requests} (the bench's own lists left out): "
        f"{mib} MiB; tracemalloc peak {peak / 2**20:.2f} MiB; most growth first to last batch:"
    )
    for line in grew:
        print(f"  {line}")
    print("gateway warnings logged, per scenario:")
    for (name, message), count in sorted(counter.counts.items()):
        print(f"  {name:15s} {count:5d} x {message}")
    by_name = {o.name: o for o in outcomes}
    slow = by_name["candidate-slow"]
    for name in ("healthy", "healthy-again"):
        healthy = by_name[name]
        if healthy.stable_ms and slow.stable_ms:
            ratio = quantile(slow.stable_ms, 0.99) / quantile(healthy.stable_ms, 0.99)
            print(f"stable-arm p99, candidate slow / {name}: {ratio:.2f}")
    problems = [
        f"{o.name}: {o.failures} failed, first {o.first_failure}" for o in outcomes if o.failures
    ]
    problems += [f"{o.name}: shadow accounting off" for o in outcomes if not o.balanced]
    if by_name["candidate-down"].fallbacks == 0:
        problems.append("candidate-down: no fallback happened")
    if len(traced) >= 2 and traced[-1] > traced[0] + 2 * 2**20:
        problems.append("memory: traced memory grew by more than 2 MiB between batches")
    for problem in problems:
        print(f"PROBLEM {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
