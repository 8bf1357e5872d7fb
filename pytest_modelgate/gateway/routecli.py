"""``modelgate route status|reset|kill|unkill``: a route's shared state, read and moved by hand.

The route status lives in the ``state:`` store of modelgate.yaml (a file or Redis), so this
command, run anywhere that reaches the store, is seen by every process and replica on its next
call. The in-process ``memory`` backend has nothing to reach from outside: refused.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pytest_modelgate.errors import ModelgateError

if TYPE_CHECKING:
    from pytest_modelgate.gateway.monitor import CanaryMonitor
    from pytest_modelgate.gateway.state import MonitorStore, RouteStatus

__all__ = ["EXIT_DONE", "EXIT_MOVED", "EXIT_UNREACHABLE", "EXIT_USAGE", "route_command"]

Action = Literal["status", "reset", "kill", "unkill"]
EXIT_DONE = 0
# status: a route is rolled back or killed (so a script can tell).
EXIT_MOVED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def route_command(
    action: Action, names: list[str], config_path: Path, *, as_json: bool = False
) -> int:
    """Run one action on the named routes (``status`` with no name: every route)."""
    from pytest_modelgate.config.settings import load_config
    from pytest_modelgate.gateway.monitor import CanaryMonitor, reset_route
    from pytest_modelgate.gateway.stores import StoreUnavailable, open_store
    from pytest_modelgate.judge.common import Margins

    try:
        config = load_config(config_path)
    except ModelgateError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    unknown = [name for name in names if name not in config.routes]
    if unknown:
        print(
            f"{config_path}: no route {', '.join(map(repr, unknown))} under routes: "
            f"(routes: {', '.join(sorted(config.routes)) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not names and action != "status":
        print(f"modelgate route {action}: name the route", file=sys.stderr)
        return EXIT_USAGE
    if config.state is None or config.state.backend == "memory":
        print(
            f"{config_path}: the route state lives inside each gateway process (no state: "
            "section, or backend memory): nothing to reach from here. Configure "
            "state: {backend: file, path: ...} or {backend: redis, url: ...} to share it.",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    try:
        store = open_store(config.state, base=config_path.parent)
    except ModelgateError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        chosen = names or sorted(config.routes)
        if action == "status":
            monitor = CanaryMonitor(
                {name: config.routes[name] for name in chosen},
                store,
                margins=Margins.from_limits(config.gate),
            )
            return _status(store, monitor, chosen, as_json)
        for name in chosen:
            if action == "reset":
                new = reset_route(store, name, reason="reset by hand (modelgate route reset)")
            else:
                new = _set_killed(store, name, killed=action == "kill")
            print(f"route {name}: {_describe(new)}")
        return EXIT_DONE
    except StoreUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        store.close()


def _set_killed(store: MonitorStore, route: str, *, killed: bool) -> RouteStatus:
    while True:
        current = store.status(route)
        if current.generation < 0:
            from pytest_modelgate.gateway.stores import StoreUnavailable

            raise StoreUnavailable(current.reason or "the state store is unavailable")
        new = replace(
            current,
            generation=current.generation + 1,
            killed=killed,
            reason=f"{'killed' if killed else 'kill switch off'} by hand (modelgate route)",
            changed_at=time.time(),
        )
        if store.transition(route, current.generation, new):
            return new


def _describe(status: RouteStatus) -> str:
    if status.generation < 0:
        state = "store unavailable"
    elif status.killed:
        state = "KILLED (everything to stable)"
    elif status.rolled_back:
        state = "ROLLED BACK (everything to stable until reset)"
    else:
        state = "canary running"
    share = "as configured" if status.canary_bp is None else f"{status.canary_bp / 100:g}%"
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status.changed_at))
        if status.changed_at
        else "never"
    )
    lines = [
        f"{state}; step {status.step}, canary {share}; generation {status.generation}, "
        f"changed {when}"
    ]
    if status.reason:
        lines.append(f"  why: {status.reason}")
    return "\n".join(lines)


def _status(store: MonitorStore, monitor: CanaryMonitor, names: list[str], as_json: bool) -> int:
    from pytest_modelgate.gateway.stores import StoreUnavailable

    moved = False
    report: dict[str, object] = {}
    for name in names:
        status = store.status(name)
        if status.generation < 0:
            raise StoreUnavailable(status.reason or "the state store is unavailable")
        moved = moved or status.rolled_back or status.killed
        figures = monitor.figures(name)
        counters = store.counters(name)
        if as_json:
            report[name] = {
                "status": asdict(status),
                "triggers": [asdict(f) for f in figures],
                "counters": counters,
            }
            continue
        print(f"route {name}: {_describe(status)}")
        for figure in figures:
            print(f"  {figure.describe()}")
        for reason in monitor.unwatched.get(name, []):
            print(f"  not watched: {reason}")
        for arm in ("stable", "candidate"):
            values = counters["stable" if arm == "stable" else "candidate"]
            if values:
                listed = ", ".join(f"{k} {v}" for k, v in sorted(values.items()))
                print(f"  {arm}: {listed}")
    if as_json:
        print(json.dumps(report, indent=2, default=str, allow_nan=True))
    return EXIT_MOVED if moved else EXIT_DONE
