"""The canary monitor's decisions on synthetic requests (a MemoryStore, no HTTP): how a trigger
is read, that an A/A canary checked after every request stays quiet, that regressions roll the
route back once even with two monitors racing, promotion through steps, reset."""

from __future__ import annotations

import logging
import math
import random
import threading
from dataclasses import replace
from typing import Any

import pytest

from pytest_modelgate.gateway.events import ModelCallEvent, RequestEvent
from pytest_modelgate.gateway.monitor import CanaryMonitor, latency_bucket
from pytest_modelgate.gateway.routes import RouteSettings
from pytest_modelgate.gateway.state import MemoryStore
from pytest_modelgate.judge.common import Margins
from pytest_modelgate.judge.sequential import quantile_sequence

RATE_TRIGGERS = [
    {"metric": "error_rate", "op": ">", "threshold": 0.03, "unit": "rate", "margin": 0.005},
    {"metric": "json_validity", "op": "<", "threshold": 0.9, "unit": "rate", "margin": 0.01},
    {"metric": "latency_p95_ms", "op": ">", "threshold": 900, "unit": "ms", "margin": 1.1},
]


def route(**fields: Any) -> RouteSettings:
    data: dict[str, Any] = {
        "stable": "a",
        "candidate": "b",
        "canary_percent": 5,
        "contract": {"json": True},
        "rollback": RATE_TRIGGERS,
    }
    data.update(fields)
    return RouteSettings.model_validate(data)


def request(
    arm: str, *, failed: bool = False, broken: bool = False, latency_s: float = 0.3
) -> RequestEvent:
    call = ModelCallEvent(
        route="r",
        arm=arm,  # type: ignore[arg-type]
        role="primary",
        model=arm,
        model_id=arm,
        provider=None,
        base_url="http://127.0.0.1/v1",
        started_ns=0,
        duration_s=latency_s,
        stream=False,
        error_kind="timeout" if failed else None,
        violations=("reply is not JSON: 'x'",) if broken else (),
    )
    return RequestEvent(route="r", arm=arm, primary=call, fallbacks=0, served_by=arm)  # type: ignore[arg-type]


def drive(
    monitor: CanaryMonitor,
    seed: int,
    requests: int,
    *,
    share: float = 0.05,
    errors: float = 0.02,
    valid_json: float = 0.98,
    slower: float = 1.0,
) -> int | None:
    """Feed a seeded canary; the request index of the rollback, or None."""
    rng = random.Random(seed)
    for index in range(requests):
        candidate = rng.random() < share
        failed = rng.random() < (errors if candidate else 0.02)
        broken = not failed and rng.random() >= (valid_json if candidate else 0.98)
        latency = rng.lognormvariate(-1.0, 0.4) * (slower if candidate else 1.0)
        arm = "candidate" if candidate else "stable"
        monitor.on_request(request(arm, failed=failed, broken=broken, latency_s=latency))
        if monitor.store.status("r").rolled_back:
            return index
    return None


def test_a_trigger_uses_its_margin_else_the_gate_margin_else_its_threshold() -> None:
    triggers = [
        {"metric": "error_rate", "op": ">", "threshold": 0.03, "unit": "rate", "margin": 0.002},
        {"metric": "fallback_rate", "op": ">", "threshold": 0.03, "unit": "rate"},
        {"metric": "cost_per_call_usd", "op": ">", "threshold": 0.002, "unit": "usd"},
    ]
    margins = Margins(fallback_rate=0.04, cost_per_call_ratio=None)
    monitor = CanaryMonitor({"r": route(rollback=triggers)}, MemoryStore(), margins=margins)
    for _ in range(3):
        monitor.on_request(request("stable"))
    figures = {f.metric: f for f in monitor.figures("r")}
    assert (figures["error_rate"].against, figures["error_rate"].limit) == ("relative", 0.002)
    assert (figures["fallback_rate"].against, figures["fallback_rate"].limit) == (
        "relative",
        0.04,
    )
    # No margin anywhere: the candidate's own cost against the threshold.
    assert (figures["cost_per_call_usd"].against, figures["cost_per_call_usd"].limit) == (
        "absolute",
        0.002,
    )
    assert not any(f.judged for f in figures.values())


def test_metrics_the_gateway_cannot_see_per_request_are_listed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    triggers = [
        *RATE_TRIGGERS,
        {"metric": "language_match", "op": "<", "threshold": 0.9, "unit": "rate"},
    ]
    with caplog.at_level(logging.WARNING, "pytest_modelgate.gateway"):
        monitor = CanaryMonitor({"r": route(rollback=triggers)}, MemoryStore())
    assert monitor.routes == ("r",)
    (reason,) = monitor.unwatched["r"]
    assert "routes.r.rollback[3]: language_match is not measured per request" in reason
    assert "language_match" in caplog.text


def test_a_relative_trigger_with_the_wrong_direction_is_refused_naming_it() -> None:
    triggers = [{"metric": "json_validity", "op": ">", "threshold": 0.9, "unit": "rate"}]
    with pytest.raises(ValueError, match=r"routes\.r\.rollback\[0\]: json_validity .* '<'"):
        CanaryMonitor({"r": route(rollback=triggers)}, MemoryStore())


def test_an_aa_canary_checked_after_every_request_does_not_roll_back() -> None:
    # 12 seeded runs x 4,000 requests, three triggers at alpha 0.01 (bench/canary_monitor.py
    # measures the rate over 200 runs x 100,000 requests).
    fired = [
        seed
        for seed in range(12)
        if drive(CanaryMonitor({"r": route()}, MemoryStore()), seed, 4_000, share=0.2) is not None
    ]
    assert fired == []


@pytest.mark.parametrize(
    ("regression", "caught"),
    [({"errors": 0.10}, 10), ({"valid_json": 0.80}, 10), ({"slower": 1.6}, 10)],
)
def test_a_real_regression_is_rolled_back(regression: dict[str, float], caught: int) -> None:
    stops = [
        drive(CanaryMonitor({"r": route()}, MemoryStore()), seed, 6_000, share=0.2, **regression)
        for seed in range(10)
    ]
    assert sum(stop is not None for stop in stops) == caught


def test_a_rollback_says_why_and_holds_until_reset(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    monitor = CanaryMonitor({"r": route()}, store)
    with caplog.at_level(logging.WARNING, "pytest_modelgate.gateway"):
        stop = drive(monitor, 1, 6_000, share=0.2, valid_json=0.5)
    assert stop is not None
    status = store.status("r")
    assert status.rolled_back
    assert status.generation == 1
    assert status.reason is not None
    assert "json_validity: candidate - stable" in status.reason
    assert "FIRED" in caplog.text
    # Rolled back: further requests are not even counted.
    before = store.sums("r")
    monitor.on_request(request("candidate", broken=True))
    assert store.sums("r") == before
    new = monitor.reset("r")
    assert (new.rolled_back, new.generation, new.step) == (False, 2, 0)
    assert store.sums("r") == {"stable": {}, "candidate": {}}


def test_two_monitors_on_one_store_roll_back_once(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    monitors = [CanaryMonitor({"r": route()}, store) for _ in range(2)]
    barrier = threading.Barrier(2)

    def feed(monitor: CanaryMonitor, seed: int) -> None:
        barrier.wait()
        drive(monitor, seed, 4_000, share=0.5, errors=0.5)

    threads = [threading.Thread(target=feed, args=(m, i)) for i, m in enumerate(monitors)]
    with caplog.at_level(logging.WARNING, "pytest_modelgate.gateway"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert store.status("r").rolled_back
    assert store.status("r").generation == 1
    assert caplog.text.count("rolled back:") == 1


def test_a_healthy_canary_is_promoted_step_by_step() -> None:
    store = MemoryStore()
    steps = [
        {"percent": 20, "min_requests": 300},
        {"percent": 50, "min_requests": 300},
        {"percent": 100},
    ]
    monitor = CanaryMonitor({"r": route(canary_percent=20, steps=steps)}, store)
    rng = random.Random(7)
    promoted_at: list[int] = []
    for index in range(20_000):
        share = [0.2, 0.5, 1.0][store.status("r").step]
        arm = "candidate" if rng.random() < share else "stable"
        monitor.on_request(request(arm, latency_s=rng.lognormvariate(-1.0, 0.1)))
        if len(promoted_at) < store.status("r").step:
            promoted_at.append(index)
        if store.status("r").step == 2:
            break
    status = store.status("r")
    assert (status.step, status.canary_bp, status.rolled_back) == (2, 10_000, False)
    assert status.reason is not None
    assert status.reason.startswith("promoted to 100%")
    assert len(promoted_at) == 2
    # A step starts a new sequence: the sums were cleared at the promotion.
    assert store.sums("r")["candidate"].get("error") is None


def test_latency_buckets_are_two_percent_wide() -> None:
    assert latency_bucket(0.0) == 0
    assert latency_bucket(0.05) == 0
    for ms in (0.2, 3.7, 100.0, 368.0, 12_345.6):
        k = latency_bucket(ms)
        low, high = 0.1 * 1.02**k, 0.1 * 1.02 ** (k + 1)
        assert low <= ms < high
        assert latency_bucket(high * 1.0001) == k + 1


def test_the_quantile_sequence_covers_the_p95_at_every_look() -> None:
    # 200 seeded streams of 1,500 log-normal latencies, looked at after every observation:
    # the 95% sequence must miss the true p95 at some look in at most about 5% of them.
    truth = math.exp(1.6448536269514722 * 0.5)
    missed = 0
    for seed in range(200):
        rng = random.Random(seed)
        counts: dict[int, int] = {}
        for t in range(1, 1_501):
            k = latency_bucket(rng.lognormvariate(0.0, 0.5) * 100.0)
            counts[k] = counts.get(k, 0) + 1
            if t % 25:
                continue
            histogram = [
                (0.0 if k == 0 else 0.1 * 1.02**k, 0.1 * 1.02 ** (k + 1), n)
                for k, n in sorted(counts.items())
            ]
            interval = quantile_sequence(histogram, 0.95, alpha=0.05, t_opt=500)
            if not interval.lower <= truth * 100.0 <= interval.upper:
                missed += 1
                break
    assert missed <= 14  # 5% of 200 is 10; a little room for the asymptotic form
    assert quantile_sequence([(1.0, 2.0, 1)], 0.5, alpha=0.05, t_opt=10).upper == math.inf


def test_tool_calls_that_break_the_contract_roll_the_route_back() -> None:
    triggers = [{"metric": "tool_call_accuracy", "op": "<", "threshold": 0.9, "unit": "rate"}]
    store = MemoryStore()
    monitor = CanaryMonitor(
        {"r": route(rollback=triggers, contract={"tools": ["lookup_order"]})}, store
    )
    rng = random.Random(3)
    for _ in range(3_000):
        arm = "candidate" if rng.random() < 0.3 else "stable"
        drifted = arm == "candidate" and rng.random() < 0.3
        event = request(arm)
        call = replace(
            event.primary,
            tool_calls=1,
            violations=('tool call "lookup" is not allowed by the contract',) if drifted else (),
        )
        monitor.on_request(replace(event, primary=call))
        if store.status("r").rolled_back:
            break
    status = store.status("r")
    assert status.rolled_back
    assert status.reason is not None
    assert "tool_call_accuracy" in status.reason
    assert monitor.unwatched == {}  # tool_call_accuracy is one the gateway measures
    # Only replies with tool calls count: every request here made one, on either arm.
    assert store.sums("r")["candidate"]["tool_valid"].n == store.sums("r")["candidate"]["error"].n
