"""Live calls under pytest-xdist: how close ``-n N`` comes to calls x latency / N.

Starts the simulator with two models answering every request after a fixed latency, writes a
project whose gated workflow makes one call per test (``--calls`` calls in all: half the cases on
each arm), and runs the gate live, serially and with ``-n WORKERS``, each in a fresh subprocess.
Prints the wall time of each run against its ideal (calls x latency / workers) and where the
time went, from timestamps every test writes on its worker:

- start-up: from launching pytest to the first test starting on each worker (interpreter,
  plugins, our session, xdist's worker bootstrap and collection on every worker);
- per-test overhead: a test's own duration minus the latency (client, measuring, records);
- idle: time workers spent waiting between tests (scheduling, the controller's report handling);
- tail: from the last test ending to the end of the process (judging, writing, shutdown).

    python bench/xdist_live.py                       # 400 calls, 200 ms, serial and -n 8
    python bench/xdist_live.py --calls 160 --no-serial

Target: the parallel run within 1.3x its ideal.

What it found (see README "Speed under xdist"), on a 2-core machine shared with other work
(load average 4 to 6): serial 86.8 s against 80 s (1.08x: 10.8 ms per test over the latency);
-n 8 between 21.7 and 26.7 s against 10 s (2.2x to 2.7x). The simulator serves requests in
parallel (a ``ThreadingHTTPServer`` whose latency is a wait outside every lock; its listen
backlog is now 128, not 5) and the steady state is close to ideal: later tests take 210 ms at
p50 and 224 ms at p95, workers wait 2-3 ms between tests, the load scheduler ends every worker
within 0.3 s of the others. The gap is fixed costs: 6 to 9 s before the first test (eight new
interpreters importing pytest, xdist, the plugin, pydantic and collecting, on two cores: xdist
sends no test until every worker has collected), about 1.7 s for each worker's first test (the
HTTP stack is imported on first use) and 1 to 6 s after the last test (the controller judges
and writes, the workers shut down). That is about 14 CPU-seconds of start-up for 8 workers,
which two busy cores cannot hide behind 10 s of waiting; it does not grow with the calls.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pytest_modelgate.simulator import Scenario, SimulatorServer

KEY = "sk-bench-0123456789abcdef"
KEY_ENV = "MODELGATE_BENCH_KEY"

WORKFLOW = """
import pytest


@pytest.mark.parametrize("case", range({cases}))
def test_reply(llm, case):
    assert llm.chat([{{"role": "user", "content": f"hello {{case}}"}}]).text
"""

# The same calls with the plugin off (-p no:modelgate): pytest-xdist alone, one plain httpx call
# per test, a client per worker process; what the machine gives any suite of these calls.
PLAIN_WORKFLOW = """
import os

import httpx
import pytest

CLIENT = httpx.Client(timeout=60)
URL = os.environ["XDIST_BENCH_URL"] + "/chat/completions"
HEADERS = {{"Authorization": "Bearer " + os.environ["{key_env}"]}}


@pytest.mark.parametrize("model", ["sim-a", "sim-b"])
@pytest.mark.parametrize("case", range({cases}))
def test_reply(case, model):
    body = {{"model": model, "messages": [{{"role": "user", "content": f"hello {{case}}"}}]}}
    response = CLIENT.post(URL, json=body, headers=HEADERS)
    response.raise_for_status()
    assert response.json()["choices"][0]["message"]["content"]
"""

# Timestamps of every test on its worker, one JSON line each (O_APPEND writes are atomic).
CONFTEST = """
import json, os, time
import pytest

_LOG = os.environ["XDIST_BENCH_LOG"]


@pytest.fixture(autouse=True)
def _stamp():
    start = time.time()
    yield
    line = json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                       "start": start, "end": time.time()})
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, (line + "\\n").encode())
    os.close(fd)
"""


def write_project(root: Path, sim: SimulatorServer, cases: int) -> None:
    models = {
        name: {
            "base_url": sim.base_url,
            "api_key_env": KEY_ENV,
            "price": {"input": 0.27, "output": 1.10},
        }
        for name in ("sim-a", "sim-b")
    }
    config = {"models": models, "stable": "sim-a", "client": {"backoff_base_s": 0.01}}
    (root / "modelgate.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "test_workflow.py").write_text(WORKFLOW.format(cases=cases), encoding="utf-8")
    (root / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (root / "plain").mkdir()
    (root / "plain" / "test_plain.py").write_text(
        PLAIN_WORKFLOW.format(cases=cases, key_env=KEY_ENV), encoding="utf-8"
    )


def run(
    root: Path, workers: int | None, log: Path, *, base_url: str, plain: bool = False
) -> tuple[float, float, int, str]:
    """One run; returns (launch time, wall seconds, exit code, last output line).

    ``plain``: the same calls without the plugin (``-p no:modelgate``), pytest-xdist alone.
    """
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    env |= {KEY_ENV: KEY, "XDIST_BENCH_LOG": str(log), "XDIST_BENCH_URL": base_url}
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if plain:
        args += ["plain/test_plain.py", "-p", "no:modelgate"]
    else:
        env["MODELGATE_MODE"] = "live"
        args += ["test_workflow.py", "--candidate-model", "sim-b"]
    if workers:
        args += ["-n", str(workers)]
    launched = time.time()
    started = time.perf_counter()
    result = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = [x for x in result.stdout.splitlines() if x.strip()]
    verdict = next((x for x in lines if x.startswith("modelgate verdict:")), lines[-1:])
    return launched, wall, result.returncode, str(verdict)


def breakdown(log: Path, launched: float, wall: float, latency_s: float) -> list[str]:
    stamps = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines()]
    by_worker: dict[str, list[dict[str, float]]] = {}
    for stamp in stamps:
        by_worker.setdefault(str(stamp["worker"]), []).append(stamp)
    firsts = [min(s["start"] for s in v) - launched for v in by_worker.values()]
    lasts = [max(s["end"] for s in v) - launched for v in by_worker.values()]
    # A worker's first test also pays the imports of the HTTP stack and the client (lazy, on
    # first use): it belongs to start-up, not to the per-test cost.
    firsts_d = [min(v, key=lambda s: s["start"]) for v in by_worker.values()]
    first_ms = statistics.mean(s["end"] - s["start"] for s in firsts_d) * 1000
    durations = [s["end"] - s["start"] for s in stamps if s not in firsts_d]
    idle = []
    for entries in by_worker.values():
        entries.sort(key=lambda s: s["start"])
        idle += [b["start"] - a["end"] for a, b in itertools.pairwise(entries)]
    counts = sorted(len(v) for v in by_worker.values())
    return [
        f"    tests per worker: {counts}",
        f"    start-up: first test after {min(firsts):.2f} s on the fastest worker, "
        f"{max(firsts):.2f} s on the slowest",
        f"    a worker's first test: {first_ms:.0f} ms mean (imports the HTTP stack)",
        f"    later tests: {statistics.mean(durations) * 1000:.1f} ms mean, overhead "
        f"{(statistics.mean(durations) - latency_s) * 1000:.1f} ms over the latency",
        f"    test duration: p50 {_quantile(durations, 0.5):.0f} ms, p95 "
        f"{_quantile(durations, 0.95):.0f} ms, max {max(durations) * 1000:.0f} ms; "
        f"{sum(d > latency_s + 0.5 for d in durations)} test(s) over latency + 500 ms",
        f"    idle between tests: {statistics.mean(idle) * 1000 if idle else 0:.1f} ms mean, "
        f"{sum(idle):.2f} s in all",
        f"    last test ended: {min(lasts):.2f} s (first worker done) .. {max(lasts):.2f} s",
        f"    tail (judge, write, shutdown): {wall - max(lasts):.2f} s",
    ]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="live calls (even; both arms)")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument(
        "--workers",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[8],
        help="worker counts, comma-separated (default 8; e.g. 2,4,8)",
    )
    parser.add_argument("--no-serial", action="store_true", help="skip the serial run")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also run each worker count without the plugin (pytest-xdist and httpx alone)",
    )
    args = parser.parse_args()
    cases = args.calls // 2
    calls = cases * 2
    latency_s = args.latency_ms / 1000
    scenario = Scenario.model_validate(
        {
            "api_key": KEY,
            "seed": 7,
            "models": {name: {"latency_ms": args.latency_ms} for name in ("sim-a", "sim-b")},
        }
    )
    print(f"{calls} live calls ({cases} cases x 2 arms), {args.latency_ms:.0f} ms each, ")
    print(f"on {os.cpu_count()} CPU(s)")
    status = 0
    with SimulatorServer(scenario, port=0) as sim, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, sim, cases)
        log = root / "stamps.jsonl"
        counts: list[int | None] = [*([] if args.no_serial else [None]), *args.workers]
        runs = [(w, plain) for w in counts for plain in ((False, True) if args.plain else (False,))]
        for workers, plain in runs:
            launched, wall, code, verdict = run(
                root, workers, log, base_url=sim.base_url, plain=plain
            )
            ideal = calls * latency_s / (workers or 1)
            label = ("serial" if workers is None else f"-n {workers}") + (" plain" if plain else "")
            ratio = wall / ideal
            print(f"  {label:>13}: {wall:6.2f} s, ideal {ideal:6.2f} s, ratio {ratio:.2f}x")
            print(f"    exit {code}; {verdict}")
            print("\n".join(breakdown(log, launched, wall, latency_s)))
            served = len(sim.requests)
            sim.clear_requests()
            print(f"    requests served: {served}")
            if workers is not None and not plain and ratio > 1.3:
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
