"""The example's product code runs on the gateway, and under the gate every route is pinned.

``example_project/support_desk`` asks its gateway for a workflow and names no model; its routes
(``modelgate.yaml``) name only ``simulated-stable``. Run by the gate in replay mode, with no key
and no simulator, every call must still be answered by the test's own arm from the shipped
cassettes: a call the product's gateway made itself would need a key and a server. Runs on a copy
of the example, so the source tree is not written to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"
CANDIDATE = "simulated-candidate-bad"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    copy = tmp_path / "example_project"
    shutil.copytree(
        EXAMPLE, copy, ignore=shutil.ignore_patterns("verdicts", "__pycache__", ".*cache")
    )
    return copy


def _pytest(example: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "SUPPORT_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", *args],
        cwd=example,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _digest(directory: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(directory.rglob("*.yaml")):
        sha.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_product_code_on_the_gateway_is_pinned_to_each_arm_and_replayed(example: Path) -> None:
    cassettes = example / "tests" / "cassettes"
    before = _digest(cassettes)
    verdicts: dict[str, dict[str, Any]] = {}
    for name, extra in (("serial", ["-n", "0"]), ("xdist", ["-n", "2"])):
        result = _pytest(
            example,
            f"--candidate-model={CANDIDATE}",
            "--modelgate-mode=replay",
            f"--modelgate-verdict=verdicts/{name}.json",
            *extra,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 1, output[-3000:]
        assert "27 failed, 163 passed" in result.stdout, output[-3000:]
        assert "modelgate verdict: FAIL" in result.stdout
        verdict = json.loads((example / "verdicts" / f"{name}.json").read_text("utf-8"))
        assert verdict["verdict"] == "fail"
        assert verdict["complete"] is True
        verdicts[name] = verdict

        records = _records(example / "verdicts" / f"{name}.records.jsonl")
        assert len(records) == 190
        for record in records:
            # Every product call reached the gate, on the test's arm's model, not the route's.
            assert record["calls"], record["test_id"]
            assert {call["model"] for call in record["calls"]} == {record["model"]}
            assert record["model"] == (
                CANDIDATE if record["arm"] == "candidate" else "simulated-stable"
            )
        # The product's fallbacks (logged on support_desk.fallback) reached the gate: in these
        # recordings, six drifted tool calls of the bad candidate (as before the gateway).
        fallbacks = [
            reason
            for record in records
            if record["arm"] == "candidate"
            for reason in record["fallbacks"]
        ]
        assert len(fallbacks) == 6, fallbacks
        assert "orders: drifted tool call: unknown tool 'lookup_orders'" in fallbacks
        assert not any(record["fallbacks"] for record in records if record["arm"] == "stable")

    # Replay made no recording, and serial and xdist judged the same.
    assert _digest(cassettes) == before
    assert verdicts["serial"]["metrics"] == verdicts["xdist"]["metrics"]
    assert verdicts["serial"]["metrics"]["fallback_rate"]["candidate"] > 0.05


def test_a_workflow_without_a_route_fails_its_tests_naming_the_workflow(example: Path) -> None:
    """Pinned or not, the product depends on its routes: a missing one is a clear error."""
    config = example / "modelgate.yaml"
    text = config.read_text(encoding="utf-8")
    route = "  customer_reply:\n    stable: simulated-stable\n"
    assert route in text
    config.write_text(text.replace(route, ""), encoding="utf-8")

    result = _pytest(example, "tests/test_replies.py", "-k", "en-1", "--modelgate-mode=replay")

    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 failed" in result.stdout
    assert "no route for workflow 'customer_reply'" in result.stdout
    assert "routes: order_lookup, ticket_triage" in result.stdout
