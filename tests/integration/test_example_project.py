"""The bundled example stays a working demo: a pass, an inconclusive run, a fail, production.

Runs ``example_project/demo.py`` (what ``make demo`` runs) on a copy of the example, so the
source tree is not written to.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from pytest_modelgate.verdict.model import validate_verdict

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"


def test_demo_shows_a_pass_an_inconclusive_run_and_a_fail(tmp_path: Path) -> None:
    example = tmp_path / "example_project"
    shutil.copytree(
        EXAMPLE, example, ignore=shutil.ignore_patterns("verdicts", "__pycache__", ".*cache")
    )

    result = subprocess.run(
        [sys.executable, str(example / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "modelgate verdict: PASS" in result.stdout
    assert "modelgate verdict: INCONCLUSIVE" in result.stdout
    assert "modelgate verdict: FAIL" in result.stdout
    verdicts = example / "verdicts"
    good = json.loads((verdicts / "simulated-candidate-good.json").read_text("utf-8"))
    unsure = json.loads(
        (verdicts / "simulated-candidate-good-default-margins.json").read_text("utf-8")
    )
    bad = json.loads((verdicts / "simulated-candidate-bad.json").read_text("utf-8"))
    for verdict in (good, unsure, bad):
        validate_verdict(verdict)
        assert verdict["complete"] is True
        assert verdict["stable"]["model"] == "simulated-stable"
    assert good["verdict"] == "pass"
    assert good["exit_status"] == 0
    assert good["regressions"] == []
    # The markers' checks are measured and compared: contract rates, per workflow and language.
    for name in ("json_validity", "schema_validity", "tool_call_accuracy", "language_match"):
        assert good["metrics"][name]["status"] == "ok", good["metrics"][name]
        assert good["metrics"][name]["n"] >= 17
    assert "workflow:order_lookup" in good["slices"]
    assert "language:zh" in good["slices"]
    assert [step["traffic_percent"] for step in good["rollout"]["plan"]] == [5, 25, 50, 100]
    assert good["rollout"]["kill_switch"]["route_to"] == "simulated-stable"
    # The same data with 1-2 point margins: 95 cases cannot tell, and the gate says so.
    assert unsure["verdict"] == "inconclusive"
    assert unsure["exit_status"] == 0
    assert unsure["regressions"] == []
    assert unsure["metrics"]["error_rate"]["status"] == "inconclusive"
    assert unsure["metrics"]["error_rate"]["cases_needed"] > 95
    assert unsure["rollout"]["plan"][0]["phase"] == "shadow"
    assert bad["verdict"] == "fail"
    assert bad["exit_status"] == 1
    assert bad["rollout"]["allowed"] is False
    regressed = {r["metric"] for r in bad["regressions"] if r["scope"] == "overall"}
    # The bad candidate breaks quality, speed and cost at once.
    assert {"pass_rate", "latency_p50_ms", "latency_p95_ms", "cost_per_call_usd"} <= regressed
    # Its later first tokens show, but a p95 over 36 streams is reported, not gated.
    ttft = bad["metrics"]["ttft_p95_ms"]
    assert ttft["status"] == "not_gated"
    assert ttft["change"] > 1.2
    assert ttft["samples"]["candidate"] < 100
    # Its extra errors show, but 95 cases cannot prove them beyond a 5-point margin.
    assert bad["metrics"]["error_rate"]["change"] > 0
    # Dozens of realistic cases per arm, not three.
    assert good["tests"]["stable"]["passed"] >= 90
    # The production scene: the product on its gateway, shadow, a sticky 5% canary, kill switch.
    scene = result.stdout.split(" production: the support desk on its gateway ", 1)[1]
    assert "$ modelgate rollout verdicts/simulated-candidate-good-default-margins.json" in scene
    assert "canary_percent 0, shadow_percent 100, 9 rollback triggers" in scene
    assert (
        "shadow: 20 requests answered by stable, 20 mirrored to the candidate (0 dropped)" in scene
    )
    assert "shadow.jsonl: 20 lines, 20 with a reply from simulated-candidate-good" in scene
    assert (
        "$ modelgate rollout verdicts/simulated-candidate-good.json --route ticket_triage" in scene
    )
    assert "canary_percent 5, shadow_percent 0" in scene
    # SHA-256 buckets: the same 16 of these 400 customer ids on every machine.
    assert "400 customers, 16 answered by the candidate (4.0%), 384 by stable" in scene
    assert "asked again, 0 customers change arm" in scene
    assert "is answered by simulated-stable; kill_switch_hits: 1" in scene
    assert "demo: OK" in scene
    # README.md's "The rollout path" shows these lines as the demo prints them.
    readme = (EXAMPLE.parent / "README.md").read_text(encoding="utf-8")
    shown = readme.split("## The rollout path", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert len(shown.splitlines()) >= 8
    printed = scene.splitlines()
    for line in shown.splitlines():
        assert line in printed, f"README.md shows a line the demo does not print: {line!r}"
