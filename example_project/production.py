"""The demo's production scene: the support desk on its gateway, shadow, 5% canary, kill switch.

What ``make demo`` shows after the three gate runs, offline: a simulator on a free loopback port,
a copy of ``modelgate.yaml`` pointing at it, and the product's own ``triage_ticket`` called as a
web server would, with a customer id as the sticky key.

1. Shadow: ``modelgate rollout`` applies the INCONCLUSIVE verdict (``--allow-inconclusive``): its
   plan starts with shadow traffic, so every request is answered by stable and mirrored to the
   candidate in the background; each pair is a line of the shadow log.
2. Canary: ``modelgate rollout`` applies the PASS verdict: 5% of the customers (sticky SHA-256
   buckets) are answered by the candidate.
3. Kill switch: the route's kill-switch file appears; the next call goes to stable.

Every step is checked (shadow lines written, a canary share near 5%, the same arm for a customer
twice, the next call after the switch on stable), so the scene is part of the demo's check.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from pytest_modelgate.gateway import Gateway
from pytest_modelgate.gateway.rollout import apply_rollout
from pytest_modelgate.simulator import Scenario, SimulatorServer

__all__ = ["ROUTE", "production_scene"]

ROUTE = "ticket_triage"
# A few tickets, asked by many customers: enough for a share of about 5% to show.
TICKETS = (
    "I was charged twice for my last order, please fix it.",
    "My package has not arrived yet and the tracking page shows no updates.",
    "我忘记了登录密码，手机也收不到验证码。",
    "Quiero un reembolso, el producto llegó roto.",
)
SHADOW_REQUESTS = 20
CANARY_CUSTOMERS = 400
# Concurrent requests of the canary step (the simulator answers in ~30 ms; 400 in ~2 s).
WORKERS = 8
# The canary step passes when the candidate's share of customers lies in this range (percent).
CANARY_SHARE_RANGE = (3.0, 7.0)


def _copy_of_config(config: Path, base_url: str, kill_file: Path, directory: Path) -> Path:
    """``config`` copied into ``directory``, its models and kill-switch file made local."""
    data: dict[str, Any] = yaml.safe_load(config.read_text(encoding="utf-8"))
    for model in data["models"].values():
        model["base_url"] = base_url
    data["routes"][ROUTE]["kill_switch"]["file"] = str(kill_file)
    copy = directory / "modelgate.yaml"
    copy.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return copy


def _rollout(verdict: Path, config: Path, echo: Callable[[str], object], **options: bool) -> None:
    flag = " --allow-inconclusive" if options.get("allow_inconclusive") else ""
    echo(f"$ modelgate rollout {_name(verdict)} --route {ROUTE}{flag}")
    # The diff it prints is long (every rollback trigger); the route's new state says enough.
    apply_rollout(verdict, ROUTE, config, echo=lambda line: None, **options)
    route = yaml.safe_load(config.read_text(encoding="utf-8"))["routes"][ROUTE]
    echo(
        f"  routes.{ROUTE}: candidate {route['candidate']}, canary_percent "
        f"{route.get('canary_percent', 0)}, shadow_percent {route.get('shadow_percent', 0)}, "
        f"{len(route.get('rollback') or [])} rollback triggers"
    )


def _name(path: Path) -> str:
    return f"verdicts/{path.name}"


def _set_route(config: Path, **values: Any) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["routes"][ROUTE].update(values)
    config.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def production_scene(
    config: Path,
    scenario: Scenario,
    key_variable: str,
    *,
    inconclusive_verdict: Path,
    pass_verdict: Path,
    echo: Callable[[str], object] = print,
) -> list[str]:
    """Run the scene; returns what did not happen as expected (empty: all went as expected)."""
    from support_desk import triage_ticket

    problems: list[str] = []
    environ = {key_variable: scenario.api_key or ""}
    with (
        tempfile.TemporaryDirectory(prefix="support-desk-production-") as temp,
        SimulatorServer(scenario, port=0) as sim,
    ):
        directory = Path(temp)
        kill_file = directory / "kill-ticket-triage"
        shadow_log = directory / "shadow.jsonl"
        copy = _copy_of_config(config, sim.base_url.rstrip("/"), kill_file, directory)
        echo(f"(a copy of modelgate.yaml pointing at the simulator on {sim.base_url})")

        # 1. Shadow: stable answers, the candidate is called in the background.
        _rollout(inconclusive_verdict, copy, echo, allow_inconclusive=True)
        with Gateway.from_config(copy, environ=environ, shadow_log=shadow_log) as gateway:
            for number in range(SHADOW_REQUESTS):
                triage_ticket(
                    TICKETS[number % len(TICKETS)], key=f"customer-{number}", gateway=gateway
                )
        counters = gateway.counters()[ROUTE]
        lines = shadow_log.read_text(encoding="utf-8").splitlines()
        pairs = [json.loads(line) for line in lines]
        shadowed = sum(1 for pair in pairs if pair["shadow"]["error_kind"] is None)
        echo(
            f"  shadow: {counters['stable']['requests']} requests answered by stable, "
            f"{counters['candidate']['shadow_calls']} mirrored to the candidate "
            f"({counters['candidate']['shadow_drops']} dropped); shadow.jsonl: {len(lines)} "
            f"lines, {shadowed} with a reply from {pairs[0]['shadow']['model'] if pairs else '?'}"
        )
        if not (len(lines) == counters["candidate"]["shadow_calls"] == SHADOW_REQUESTS):
            problems.append(f"shadow: {len(lines)} log lines for {SHADOW_REQUESTS} requests")

        # 2. Canary: 5% of the customers, sticky.
        _set_route(copy, shadow_percent=0)
        echo("  (shadow phase over: shadow_percent: 0)")
        _rollout(pass_verdict, copy, echo)
        with Gateway.from_config(copy, environ=environ) as gateway:
            customers = [f"customer-{number}" for number in range(CANARY_CUSTOMERS)]

            def ask(number: int) -> str:
                customer = customers[number]
                triage_ticket(TICKETS[number % len(TICKETS)], key=customer, gateway=gateway)
                return gateway.choose(ROUTE, key=customer).model

            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                arms = list(pool.map(ask, range(len(customers))))
            again = [gateway.choose(ROUTE, key=customer).model for customer in customers]
            counters = gateway.counters()[ROUTE]
            on_candidate = counters["candidate"]["requests"]
            share = 100 * on_candidate / max(1, on_candidate + counters["stable"]["requests"])
            moved = sum(1 for first, second in zip(arms, again, strict=True) if first != second)
            echo(
                f"  canary: {CANARY_CUSTOMERS} customers, {on_candidate} answered by the "
                f"candidate ({share:.1f}%), {counters['stable']['requests']} by stable; "
                f"asked again, {moved} customers change arm"
            )
            low, high = CANARY_SHARE_RANGE
            if not low <= share <= high or moved:
                problems.append(f"canary: {share:.1f}% on the candidate, {moved} moved")

            # 3. Kill switch: a file appears; the next call goes to stable.
            canary_customer = next(
                c for c, model in zip(customers, arms, strict=True) if model != "simulated-stable"
            )
            echo(f"$ touch {kill_file.name}    # the route's kill_switch.file")
            kill_file.touch()
            reply_model = gateway.choose(ROUTE, key=canary_customer).model
            triage_ticket(TICKETS[0], key=canary_customer, gateway=gateway)
            hits = gateway.counters()[ROUTE]["stable"]["kill_switch_hits"]
            echo(
                f"  kill switch: {canary_customer} (on the candidate until now) is answered "
                f"by {reply_model}; kill_switch_hits: {hits}"
            )
            if reply_model != "simulated-stable" or hits != 1:
                problems.append(f"kill switch: next call on {reply_model}, {hits} hits")
    return problems
