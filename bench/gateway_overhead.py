"""What the gateway adds to a call, next to a plain httpx call and to LiteLLM's Router (issue 12).

One bundled simulator on loopback at zero added latency serves every path, so what differs
between them is only the client side. ``--calls`` sequential calls (default 2,000) per path:

direct
    ``httpx.Client.post`` of the chat-completions body to the simulator and ``response.json()``:
    the floor every other path is measured against.
gateway
    ``Gateway.chat`` on a route with stable and candidate, ``canary_percent: 0`` and
    ``shadow_percent: 0``, no key: routing (kill-switch check, arm choice) plus the gate's own
    measuring client (timing, usage, cost, secret scrubbing, the ``Reply``).
gateway-canary5
    the same with ``canary_percent: 5`` and a sticky key per call (SHA-256 bucketing); 5% of
    the calls go to the candidate, which the same simulator answers the same way.
litellm
    ``litellm.Router.completion`` on a model group of two weighted deployments (95/5, the
    ``openai/`` provider with ``api_base`` at the simulator) and a ``fallbacks`` entry to a
    third group: the comparable LiteLLM setup. Skipped, saying why, when litellm is not
    importable (it is not our dependency: ``make bench-gateway`` installs it into
    ``bench/.venv-litellm``).

The simulator runs in its own process (``bench/_simproc.py``), so its threads do not share the
GIL with the client being timed. The paths are interleaved in rounds of ``--round`` calls
(default 1: call i of every path, then call i+1), the order rotating each round, so machine
noise falls on all of them alike (rounds of 100 let one burst of other work land on one path).
Each path gets ``--warmup`` untimed calls first (connections, lazy imports, LiteLLM's first-call
set-up). Printed per path: p50 and p95 of the per-call time, the added latency (that path's
quantile minus direct's), the median of the paired differences call by call, the calling
thread's CPU time per call (``time.thread_time``: barely moved by other processes' load, blind
to work a client hands to other threads) and what it adds; then the ratio of the gateway's
added p50 to LiteLLM's. Targets (issue 12): gateway added p50 < 0.3 ms and at most 1/5 of
LiteLLM Router's. The exit status is 0 whatever the figures (this reports, it does not gate),
1 when a call fails or a non-loopback connection is attempted.

No network beyond loopback: ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (the model cost map is read
from the installed package instead of fetched), ``LITELLM_TELEMETRY=False`` and
``litellm.telemetry = False``, no success/failure callbacks, and an audit hook that refuses
(and counts) every ``socket.connect`` / ``getaddrinfo`` to anything but 127.0.0.1 / localhost.

Usage::

    make bench-gateway        # makes bench/.venv-litellm, then runs this with it
    PYTHONPATH=/path/to/gateway/worktree bench/.venv-litellm/bin/python bench/gateway_overhead.py
    .venv/bin/python bench/gateway_overhead.py --calls 200   # without litellm: its line is skipped
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Before litellm can be imported anywhere: no cost-map download, no telemetry.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import httpx
import yaml
from _simproc import SimulatorProcess

KEY = "sk-bench-gateway-0123456789"
KEY_ENV = "MODELGATE_BENCH_GATEWAY_KEY"
MODELS = ("sim-stable", "sim-candidate", "sim-fallback")
MESSAGES = [{"role": "user", "content": "Classify this ticket as JSON: my invoice is wrong"}]
TARGET_P50_MS = 0.3
TARGET_RATIO = 0.2

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_BLOCKED: list[str] = []


def _loopback_only(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: refuse (and remember) any connection or lookup that is not loopback."""
    host: object = None
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else None
    elif event == "socket.getaddrinfo":
        host = args[0]
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host not in _LOOPBACK:
        _BLOCKED.append(f"{event} {host}")
        raise ConnectionRefusedError(f"bench: no network beyond loopback ({event} {host})")


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def direct_path(base_url: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    client = httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    url = f"{base_url}/chat/completions"

    def call(_: int) -> None:
        response = client.post(url, json={"model": MODELS[0], "messages": MESSAGES})
        response.raise_for_status()
        response.json()

    return call, client.close


def gateway_paths(
    base_url: str, tmp: Path
) -> tuple[dict[str, tuple[Callable[[int], None], Callable[[], None]]], str]:
    """The two gateway paths, or none and the reason the gateway cannot be imported."""
    try:
        from pytest_modelgate.gateway import Gateway
    except ImportError as exc:
        return {}, f"pytest_modelgate.gateway not importable ({exc})"
    model = {"base_url": base_url, "api_key_env": KEY_ENV, "price": {"input": 1.0, "output": 2.0}}
    route = {"stable": MODELS[0], "candidate": MODELS[1], "fallback": [MODELS[2]]}
    data = {
        "models": dict.fromkeys(MODELS, model),
        "client": {"max_retries": 0},
        "routes": {
            "plain": {**route, "canary_percent": 0, "shadow_percent": 0},
            "canary": {**route, "canary_percent": 5, "shadow_percent": 0, "sticky_key": "required"},
        },
    }
    path = tmp / "modelgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    gateway = Gateway.from_config(path, environ={KEY_ENV: KEY})

    def plain(_: int) -> None:
        gateway.chat("plain", MESSAGES)

    def canary(i: int) -> None:
        gateway.chat("canary", MESSAGES, key=f"user-{i}")

    def close() -> None:
        gateway.close(timeout_s=2)

    no_op: Callable[[], None] = lambda: None  # noqa: E731 - one close for both paths
    return {"gateway": (plain, close), "gateway-canary5": (canary, no_op)}, ""


def litellm_path(
    base_url: str,
) -> tuple[tuple[Callable[[int], None], Callable[[], None]] | None, str]:
    """The LiteLLM Router path and its version, or none and why litellm cannot be imported."""
    try:
        import litellm
    except ImportError as exc:
        return None, f"litellm not importable ({exc})"
    litellm.telemetry = False
    litellm.callbacks = []
    litellm.success_callback = []
    litellm.failure_callback = []
    litellm.suppress_debug_info = True

    def deployment(group: str, model: str, weight: int) -> dict[str, Any]:
        return {
            "model_name": group,
            "litellm_params": {
                "model": f"openai/{model}",
                "api_base": base_url,
                "api_key": KEY,
                "weight": weight,
            },
        }

    router = litellm.Router(
        model_list=[
            deployment("triage", MODELS[0], 95),
            deployment("triage", MODELS[1], 5),
            deployment("triage-fallback", MODELS[2], 1),
        ],
        fallbacks=[{"triage": ["triage-fallback"]}],
        num_retries=0,
        routing_strategy="simple-shuffle",
    )

    def call(_: int) -> None:
        router.completion(model="triage", messages=MESSAGES)

    from importlib.metadata import version

    return (call, lambda: None), f"litellm {version('litellm')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per path")
    parser.add_argument("--round", type=int, default=1, help="calls per path per round")
    parser.add_argument("--warmup", type=int, default=50, help="untimed calls per path first")
    args = parser.parse_args(argv)
    sys.addaudithook(_loopback_only)

    scenario = {"api_key": KEY, "models": {name: {} for name in MODELS}}
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(scenario, Path(tmp), "sim") as sim:
        paths: dict[str, tuple[Callable[[int], None], Callable[[], None]]] = {
            "direct": direct_path(sim.base_url)
        }
        gateways, gateway_skip = gateway_paths(sim.base_url, Path(tmp))
        paths.update(gateways)
        litellm_entry, litellm_note = litellm_path(sim.base_url)
        litellm_ok = litellm_entry is not None
        if litellm_entry is not None:
            paths["litellm"] = litellm_entry

        names = list(paths)
        times: dict[str, list[float]] = {name: [] for name in names}
        by_call: dict[str, dict[int, float]] = {name: {} for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        failures: dict[str, int] = dict.fromkeys(names, 0)
        for name in names:
            for i in range(args.warmup):
                paths[name][0](i)
        rounds = -(-args.calls // args.round)
        started = time.perf_counter()
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                call = paths[name][0]
                for i in range(r * args.round, min((r + 1) * args.round, args.calls)):
                    c0 = time.thread_time_ns()
                    t0 = time.perf_counter_ns()
                    try:
                        call(i)
                    except Exception as exc:  # reported below, the bench goes on
                        failures[name] += 1
                        if failures[name] == 1:
                            print(f"{name}: call failed: {type(exc).__name__}: {exc}")
                        continue
                    ms = (time.perf_counter_ns() - t0) / 1e6
                    cpu[name].append((time.thread_time_ns() - c0) / 1e6)
                    times[name].append(ms)
                    by_call[name][i] = ms
        wall = time.perf_counter() - started
        for _, close in paths.values():
            close()

    print(
        f"gateway_overhead: {args.calls} sequential calls per path, rounds of {args.round} "
        f"interleaved (order rotating), {args.warmup} warm-up calls each; simulator at 0 ms; "
        f"python {platform.python_version()}, {os.cpu_count()} cpus, {wall:.1f} s"
    )
    if gateway_skip:
        print(f"gateway: skipped: {gateway_skip}")
    print(f"litellm: {'Router, ' + litellm_note if litellm_ok else 'skipped: ' + litellm_note}")
    base50, base95 = quantile(times["direct"], 0.5), quantile(times["direct"], 0.95)
    print(
        f"{'path':16s} {'p50 ms':>8s} {'p95 ms':>8s} {'added p50':>10s} {'added p95':>10s} "
        f"{'paired p50':>10s} {'cpu p50':>8s} {'added cpu':>9s}"
    )
    added: dict[str, float] = {}
    added_cpu: dict[str, float] = {}
    for name in names:
        if not times[name]:
            print(f"{name:16s} no successful call")
            continue
        p50, p95 = quantile(times[name], 0.5), quantile(times[name], 0.95)
        added[name] = p50 - base50
        # The median of call i's time minus direct's call i: robust to load drifting over the run.
        pairs = [
            ms - by_call["direct"][i] for i, ms in by_call[name].items() if i in by_call["direct"]
        ]
        paired = quantile(pairs, 0.5) if pairs else float("nan")
        # CPU time of the calling thread: what the client side itself spends, barely moved by
        # other processes' load (the simulator's own work is in its process, not counted).
        cpu50 = quantile(cpu[name], 0.5)
        cpu_added = cpu50 - quantile(cpu["direct"], 0.5)
        added_cpu[name] = cpu_added
        print(
            f"{name:16s} {p50:8.3f} {p95:8.3f} {p50 - base50:10.3f} {p95 - base95:10.3f} "
            f"{paired:10.3f} {cpu50:8.3f} {cpu_added:9.3f}"
        )
    # The targets are judged on the calling thread's CPU time: on this shared machine the wall
    # figures drift with other processes' load by more than the overhead itself (even below 0).
    if "gateway" in added_cpu:
        ok = "met" if added_cpu["gateway"] < TARGET_P50_MS else "NOT met"
        print(
            f"gateway added cpu p50 {added_cpu['gateway']:.3f} ms (target < {TARGET_P50_MS} ms: "
            f"{ok}); wall p50 {added.get('gateway', float('nan')):+.3f} ms (load-sensitive)"
        )
    if "gateway" in added_cpu and added_cpu.get("litellm", 0) > 0:
        ratio = added_cpu["gateway"] / added_cpu["litellm"]
        ok = "met" if ratio <= TARGET_RATIO else "NOT met"
        canary = added_cpu.get("gateway-canary5", float("nan")) / added_cpu["litellm"]
        print(
            f"ratio gateway/litellm added cpu p50: {ratio:.3f} (target <= {TARGET_RATIO}: {ok}); "
            f"canary5 {canary:.3f}"
        )
    print(f"non-loopback connections attempted: {len(_BLOCKED)}")
    for entry in _BLOCKED[:5]:
        print(f"  refused: {entry}")
    return 1 if any(failures.values()) or _BLOCKED else 0


if __name__ == "__main__":
    sys.exit(main())
