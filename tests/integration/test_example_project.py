"""The bundled example stays a working demo: the healthy candidate passes, the regressing one fails.

Runs ``example_project/demo.py`` (what ``make demo`` runs) on a copy of the example, so the
source tree is not written to.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from pytest_modelgate.verdict import validate_verdict

EXAMPLE = Path(__file__).resolve().parents[2] / "example_project"


def test_demo_shows_one_pass_and_one_fail(tmp_path: Path) -> None:
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
    assert "modelgate verdict: FAIL" in result.stdout
    good = json.loads((example / "verdicts/simulated-candidate-good.json").read_text("utf-8"))
    bad = json.loads((example / "verdicts/simulated-candidate-bad.json").read_text("utf-8"))
    for verdict in (good, bad):
        validate_verdict(verdict)
        assert verdict["complete"] is True
        assert verdict["stable"]["model"] == "simulated-stable"
    assert good["verdict"] == "pass"
    assert good["exit_status"] == 0
    assert good["regressions"] == []
    assert bad["verdict"] == "fail"
    assert bad["exit_status"] == 1
    regressed = {r["metric"] for r in bad["regressions"]}
    # The bad candidate breaks quality, reliability, speed and cost at once.
    assert {"pass_rate", "error_rate", "latency_p95_ms", "cost_per_call_usd"} <= regressed
    # Dozens of realistic cases per arm, not three.
    assert good["tests"]["stable"]["passed"] >= 90
