"""What the gateway's call records carry: no language detection (nobody judges them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from pytest_modelgate.calls.transport import CallLog
from pytest_modelgate.gateway import ContractBreakError, Gateway
from pytest_modelgate.simulator import SimulatorServer
from tests.conftest import SIM_KEY

KEY_ENV = "MODELGATE_GW_RECORDS_KEY"
MESSAGES = [{"role": "user", "content": "Classify this ticket as JSON: my invoice is wrong"}]


def test_gateway_records_have_no_languages_and_a_contract_is_still_checked(
    start_simulator: Callable[..., SimulatorServer], tmp_path: Path
) -> None:
    # The simulator answers this prompt in prose: a JSON contract is broken by every reply.
    sim = start_simulator({"sim-a": {}})
    model = {"base_url": sim.base_url, "api_key_env": KEY_ENV}
    data = {
        "models": {"sim-a": model},
        "client": {"max_retries": 0},
        "routes": {
            "plain": {"stable": "sim-a"},
            "json": {"stable": "sim-a", "contract": {"json": True}},
        },
    }
    path = tmp_path / "modelgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with Gateway.from_config(path, environ={KEY_ENV: SIM_KEY}) as gateway:
        reply = gateway.chat("plain", MESSAGES)
        assert reply.record is not None
        assert reply.record.prompt_language is None
        assert reply.record.reply_language is None
        assert reply.usage.completion_tokens > 0
        with pytest.raises(ContractBreakError, match="reply is not JSON"):
            gateway.chat("json", MESSAGES)
        assert gateway.counters()["json"]["stable"]["contract_breaks"] == 1
    # The gate's own logs still detect languages (the judge's language metrics need them).
    log = CallLog(test_id="t", case_id="c", arm="stable", model="m")
    assert log.detect_languages is True
