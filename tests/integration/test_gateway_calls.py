"""The gateway against the real simulator on loopback: fallback, kill switch, sticky arms,
shadow, counters, asyncio and the openai SDK. Real HTTP through the gate's own client."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_modelgate.errors import ModelAPIError
from pytest_modelgate.gateway import NoRouteError
from tests.conftest import SIM_KEY
from tests.gatewaybench import KEY_ENV, MESSAGES, STICKY


def test_an_unknown_workflow_names_it_and_the_routes(make_gateway: Any) -> None:
    gateway, _ = make_gateway({"triage": {"stable": "sim-a"}})
    with pytest.raises(NoRouteError, match=r"no route for workflow 'billing' \(routes: triage\)"):
        gateway.chat("billing", MESSAGES)


def test_a_failed_candidate_falls_back_to_stable_and_is_counted(make_gateway: Any) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-down", "canary_percent": 100}}
    )
    reply = gateway.chat("triage", MESSAGES, key=STICKY, response_format={"type": "json_object"})
    assert reply.model == "sim-a"
    assert reply.json()["category"] == "billing"
    candidate = gateway.counters()["triage"]["candidate"]
    assert (candidate["requests"], candidate["errors"], candidate["fallbacks"]) == (1, 1, 1)


def test_a_contract_break_falls_back_in_order_and_the_last_failure_is_raised(
    make_gateway: Any,
) -> None:
    gateway, _ = make_gateway(
        {
            "triage": {
                "stable": "sim-broken",
                "fallback": ["sim-b"],
                "contract": {"json": True},
            },
            "doomed": {
                "stable": "sim-broken",
                "fallback": ["sim-down"],
                "contract": {"json": True},
            },
        }
    )
    reply = gateway.chat("triage", MESSAGES, response_format={"type": "json_object"})
    assert reply.model == "sim-b"
    assert reply.json()
    stable = gateway.counters()["triage"]["stable"]
    assert (stable["contract_breaks"], stable["fallbacks"], stable["errors"]) == (1, 1, 0)
    with pytest.raises(ModelAPIError) as info:
        gateway.chat("doomed", MESSAGES)
    assert info.value.error_kind == "server_error"
    assert gateway.counters()["doomed"]["stable"]["fallbacks"] == 1


def test_the_kill_switch_takes_effect_on_the_next_call(make_gateway: Any, tmp_path: Path) -> None:
    environ = {KEY_ENV: SIM_KEY}
    kill_file = tmp_path / "kill-triage"
    gateway, _ = make_gateway(
        {
            "triage": {
                "stable": "sim-a",
                "candidate": "sim-b",
                "canary_percent": 100,
                "kill_switch": {"env": "KILL_TRIAGE", "file": str(kill_file)},
            }
        },
        environ=environ,
    )
    assert gateway.chat("triage", MESSAGES).model == "sim-b"
    environ["KILL_TRIAGE"] = "1"
    assert gateway.chat("triage", MESSAGES).model == "sim-a"
    environ["KILL_TRIAGE"] = ""  # an empty variable is unset (CI exports missing ones as "")
    assert gateway.chat("triage", MESSAGES).model == "sim-b"
    kill_file.touch()
    assert gateway.chat("triage", MESSAGES).model == "sim-a"
    kill_file.unlink()
    assert gateway.chat("triage", MESSAGES).model == "sim-b"
    counters = gateway.counters()["triage"]
    assert counters["stable"]["kill_switch_hits"] == 2
    assert (counters["stable"]["requests"], counters["candidate"]["requests"]) == (2, 3)


_STICKY_SCRIPT = """
import json, sys
from pytest_modelgate.gateway import Gateway
gateway = Gateway.from_config(sys.argv[1], environ={%r: %r})
messages = [{"role": "user", "content": "hello"}]
print(json.dumps([gateway.chat("triage", messages, key=f"user-{i}").model for i in range(40)]))
gateway.close()
"""


def test_sticky_keys_keep_their_arm_across_two_processes(make_gateway: Any, tmp_path: Path) -> None:
    gateway, path = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 50}}
    )
    script = tmp_path / "sticky.py"
    script.write_text(_STICKY_SCRIPT % (KEY_ENV, SIM_KEY), encoding="utf-8")
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, str(script), str(path)],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
                env={"PYTHONHASHSEED": str(seed), "PATH": ""},
            ).stdout
        )
        for seed in (1, 2)
    ]
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"sim-a", "sim-b"}
    here = [gateway.choose("triage", key=f"user-{i}").model for i in range(40)]
    assert here == runs[0]


def test_a_required_sticky_key_must_be_passed(make_gateway: Any) -> None:
    gateway, _ = make_gateway({"triage": {"stable": "sim-a", "sticky_key": "required"}})
    with pytest.raises(ValueError, match="sticky_key: required"):
        gateway.chat("triage", MESSAGES)


def test_shadow_never_delays_the_user_and_logs_whole_pairs_without_keys(
    make_gateway: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_path = tmp_path / "shadow.jsonl"
    gateway, _ = make_gateway(
        {
            "plain": {"stable": "sim-a"},
            "shadowed": {"stable": "sim-a", "candidate": "sim-slow", "shadow_percent": 100},
        },
        shadow_log=log_path,
        shadow_workers=4,
        shadow_queue=16,
    )
    caplog.set_level(logging.DEBUG, logger="pytest_modelgate.gateway")
    gateway.chat("plain", MESSAGES)  # connections warm

    def wall_ms(workflow: str) -> list[float]:
        times = []
        for i in range(6):
            started = time.perf_counter()
            reply = gateway.chat(workflow, MESSAGES, key=f"{STICKY}-{i}")
            times.append((time.perf_counter() - started) * 1000)
            assert reply.model == "sim-a"
        return sorted(times)

    plain, shadowed = wall_ms("plain"), wall_ms("shadowed")
    # The candidate takes 400 ms; the user's answer does not wait for it.
    assert shadowed[len(shadowed) // 2] < 150, (plain, shadowed)
    assert gateway.close(timeout_s=10) == 0
    lines = log_path.read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines]
    assert len(pairs) == 6
    for pair in pairs:
        assert pair["route"] == "shadowed"
        assert pair["user"]["model"] == "sim-a"
        assert pair["shadow"]["model"] == "sim-slow"
        assert pair["shadow"]["latency_ms"] >= 350
        assert pair["user"]["completion_tokens"] > 0
        assert "messages" not in pair
        assert "text" not in pair["user"]
    counters = json.dumps(gateway.counters())
    assert gateway.counters()["shadowed"]["candidate"]["shadow_calls"] == 6
    for text in (log_path.read_text(encoding="utf-8"), counters, caplog.text):
        assert SIM_KEY not in text
        assert STICKY not in text


def test_a_full_shadow_queue_drops_and_counts(make_gateway: Any) -> None:
    gateway, _ = make_gateway(
        {"shadowed": {"stable": "sim-a", "candidate": "sim-slow", "shadow_percent": 100}},
        shadow_workers=1,
        shadow_queue=1,
    )
    for _ in range(8):
        gateway.chat("shadowed", MESSAGES)
    gateway.close(timeout_s=10)
    candidate = gateway.counters()["shadowed"]["candidate"]
    # One running and one queued at most while the fast user calls go by.
    assert candidate["shadow_drops"] >= 5
    assert candidate["shadow_calls"] + candidate["shadow_drops"] == 8


def test_log_text_puts_the_messages_and_replies_in_the_shadow_log(
    make_gateway: Any, tmp_path: Path
) -> None:
    log_path = tmp_path / "shadow.jsonl"
    gateway, _ = make_gateway(
        {
            "shadowed": {
                "stable": "sim-a",
                "candidate": "sim-b",
                "shadow_percent": 100,
                "log_text": True,
            }
        },
        shadow_log=log_path,
    )
    reply = gateway.chat("shadowed", MESSAGES)
    gateway.close(timeout_s=10)
    (pair,) = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert pair["messages"] == MESSAGES
    assert pair["user"]["text"] == reply.text
    assert pair["shadow"]["text"]


def test_achat_runs_concurrently_and_keeps_the_loop_free(make_gateway: Any) -> None:
    gateway, _ = make_gateway({"triage": {"stable": "sim-100ms"}}, async_workers=16)

    async def main() -> tuple[list[str], float, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(gateway.achat("triage", MESSAGES, key=f"k{i}") for i in range(16))
        )
        elapsed = time.perf_counter() - started
        done.set()
        await tick_task
        return [r.model for r in replies], elapsed, ticks

    models, elapsed, ticks = asyncio.run(main())
    assert models == ["sim-100ms"] * 16
    # 16 calls of 100 ms each, serially 1.6 s: concurrent, they take a fraction of that.
    assert elapsed < 1.0, elapsed
    assert ticks >= 5
    assert gateway.counters()["triage"]["stable"]["requests"] == 16


def test_the_openai_sdk_client_is_pinned_to_the_arm_model(make_gateway: Any) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-b", "canary_percent": 100}}
    )
    client = gateway.openai("triage", key=STICKY)
    response = client.chat.completions.create(model="anything", messages=MESSAGES)  # type: ignore[arg-type]
    assert response.model == "sim-b"
    assert response.choices[0].message.content
    assert gateway.counters()["triage"]["candidate"]["requests"] == 1


def test_a_long_lived_sdk_client_obeys_the_kill_switch_on_its_next_request(
    make_gateway: Any, tmp_path: Path
) -> None:
    kill_file = tmp_path / "kill"
    gateway, _ = make_gateway(
        {
            "triage": {
                "stable": "sim-a",
                "candidate": "sim-b",
                "canary_percent": 100,
                "kill_switch": {"file": str(kill_file)},
            }
        }
    )
    client = gateway.openai("triage", key=STICKY)  # made once, as an app does at start-up

    def ask() -> str:
        response = client.chat.completions.create(model="anything", messages=MESSAGES)  # type: ignore[arg-type]
        return response.model

    assert ask() == "sim-b"
    kill_file.touch()
    assert ask() == "sim-a"
    kill_file.unlink()
    assert ask() == "sim-b"
    counters = gateway.counters()["triage"]
    assert (counters["candidate"]["requests"], counters["stable"]["kill_switch_hits"]) == (2, 1)


def test_the_sdk_client_falls_back_when_the_candidate_fails_and_streams(
    make_gateway: Any,
) -> None:
    gateway, _ = make_gateway(
        {"triage": {"stable": "sim-a", "candidate": "sim-down", "canary_percent": 100}}
    )
    client = gateway.openai("triage", key=STICKY)
    response = client.chat.completions.create(model="x", messages=MESSAGES)  # type: ignore[arg-type]
    assert response.model == "sim-a"
    stream = client.chat.completions.create(model="x", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    counters = gateway.counters()["triage"]["candidate"]
    assert (counters["requests"], counters["fallbacks"], counters["errors"]) == (2, 2, 2)
