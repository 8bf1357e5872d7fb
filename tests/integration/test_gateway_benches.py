"""The gateway benches (bench/gateway_overhead.py, bench/gateway_load.py) at a reduced size.

They run in their own processes, as a user runs them, against simulators on loopback. Their
figures are not asserted (timing belongs to the benches); what they print is: every path
measured, the gateway's paths present when the gateway is importable and reported as skipped
when it is not, and no connection beyond loopback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def importable(module: str) -> bool:
    """Whether the benches' interpreter, started as they are, can import ``module``.

    Asked of a fresh process: this one may have imported another copy of the package first.
    """
    probe = [sys.executable, "-c", f"import {module}"]
    return subprocess.run(probe, cwd=BENCH, capture_output=True, check=False).returncode == 0


HAS_GATEWAY = importable("pytest_modelgate.gateway.core")


def run_bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_overhead_bench_measures_every_path_it_can_and_says_which_it_skips() -> None:
    done = run_bench("gateway_overhead.py", "--calls", "20", "--round", "10", "--warmup", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("direct ") for line in lines), done.stdout
    if HAS_GATEWAY:
        assert any(line.startswith("gateway ") for line in lines), done.stdout
        assert any(line.startswith("gateway-canary5 ") for line in lines), done.stdout
        assert any(line.startswith("gateway added cpu p50 ") for line in lines), done.stdout
    else:
        assert any(line.startswith("gateway: skipped: ") for line in lines), done.stdout
    if not importable("litellm"):
        assert "litellm: skipped: litellm not importable" in done.stdout
    assert "non-loopback connections attempted: 0" in lines


def test_the_benches_refuse_any_connection_beyond_loopback() -> None:
    # The audit hook the benches install, in a fresh interpreter: a lookup and a connection to
    # another host are refused before they leave the process; loopback still connects.
    script = (
        "import socket, sys\n"
        "from gateway_overhead import _BLOCKED, _loopback_only\n"
        "sys.addaudithook(_loopback_only)\n"
        "for attempt in (lambda: socket.getaddrinfo('example.com', 443),\n"
        "                lambda: socket.socket().connect(('192.0.2.1', 443))):\n"
        "    try:\n"
        "        attempt()\n"
        "    except ConnectionRefusedError as exc:\n"
        "        print('refused', exc)\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()\n"
        "socket.create_connection(server.getsockname(), timeout=1).close()\n"
        "print('loopback ok;', len(_BLOCKED), 'blocked')\n"
    )
    done = run_bench("-c", script, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("refused bench: no network beyond loopback") == 2, done.stdout
    assert "socket.getaddrinfo example.com" in done.stdout
    assert "socket.connect 192.0.2.1" in done.stdout
    assert "loopback ok; 2 blocked" in done.stdout


def test_the_load_bench_runs_every_scenario_or_says_it_is_skipped() -> None:
    done = run_bench("gateway_load.py", "--requests", "40", "--concurrency", "8", "--drain-s", "5")
    if not HAS_GATEWAY:
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("gateway_load: skipped: pytest_modelgate.gateway"), (
            done.stdout
        )
        return
    # Exit 0: no user-visible failure, fallback seen with the candidate down, shadow accounting
    # balanced (sampled = calls + drops + not run) in every scenario, memory not growing.
    assert done.returncode == 0, done.stdout + done.stderr
    # The table's rows: 14 cells, the first the scenario's name.
    table = [line.split() for line in done.stdout.splitlines()]
    rows = {cells[0]: cells for cells in table if len(cells) == 14 and cells[0] != "scenario"}
    for name in ("healthy", "candidate-down", "candidate-slow", "tiny-queue", "healthy-again"):
        assert name in rows, done.stdout
        assert rows[name][5] == "0", f"{name}: failures seen by callers\n{done.stdout}"
        assert rows[name][11] == "ok", f"{name}: shadow accounting\n{done.stdout}"
    assert "PROBLEM" not in done.stdout
