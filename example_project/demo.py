"""The support-desk gate demo: what ``make demo`` runs.

It runs the example's workflow tests through the gate three times, as CI would:

1. ``--candidate-model simulated-candidate-good``: expected verdict PASS, exit status 0;
2. the same with the library's default margins (``modelgate.default-margins.yaml``): 95 cases
   cannot show a 1-point margin, so the verdict is INCONCLUSIVE, exit status 0;
3. ``--candidate-model simulated-candidate-bad``: expected verdict FAIL, exit status 1.

By default it replays the recordings shipped in ``tests/cassettes``: offline, free, no simulator
and no key, with each call's latency as measured when it was recorded. ``--record`` (what
``make demo-record`` runs) re-records them: each run starts a fresh simulator on the port
``modelgate.yaml`` names (8900; cassettes match on the URL), so its seeded draws repeat.

pytest's own output (with the gate's comparison table) is shown as it runs, then a recap, then a
short production scene (``production.py``): the product on its gateway against a simulator on a
free loopback port, in shadow (the inconclusive verdict), as a 5% canary (the passing verdict,
applied by ``modelgate rollout``), then with its kill switch on. The demo is also a check: it
exits 0 only when every run and every step of the scene ends as expected.

    python example_project/demo.py            # the three gate runs, replayed
    python example_project/demo.py --record   # re-record from the simulator, then check
    python example_project/demo.py --serve    # only the simulator, on port 8900, for exploring
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pytest_modelgate.simulator import Scenario, SimulatorServer, load_scenario, main_simulate

HERE = Path(__file__).resolve().parent
SCENARIO = HERE / "scenario.yaml"
CONFIG = HERE / "modelgate.yaml"
VERDICTS = HERE / "verdicts"
KEY_VARIABLE = "MODELGATE_SIM_KEY"
# A run that takes longer than this is stuck (a gate run takes a few seconds).
RUN_TIMEOUT_S = 300
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class GateRun:
    """One pytest run through the gate and the outcome the demo expects of it."""

    candidate: str
    expected_verdict: str
    expected_exit: int
    # Another modelgate.yaml (the same models, other margins); None: modelgate.yaml.
    config: str | None = None

    @property
    def verdict_path(self) -> Path:
        suffix = "" if self.config is None else "-" + Path(self.config).stem.split(".")[-1]
        return VERDICTS / f"{self.candidate}{suffix}.json"


RUNS = (
    GateRun("simulated-candidate-good", expected_verdict="pass", expected_exit=0),
    # The same recordings judged with the library's default margins (1-2 points): 95 cases
    # cannot show that, so the honest answer is "inconclusive" (exit 0, shadow traffic only).
    GateRun(
        "simulated-candidate-good",
        expected_verdict="inconclusive",
        expected_exit=0,
        config="modelgate.default-margins.yaml",
    ),
    GateRun("simulated-candidate-bad", expected_verdict="fail", expected_exit=1),
)


@dataclass(frozen=True)
class RunResult:
    """What a gate run ended with; ``verdict`` is None when no readable verdict was written."""

    run: GateRun
    exit_status: int | None
    verdict: dict[str, Any] | None
    seconds: float

    @property
    def as_expected(self) -> bool:
        return (
            self.exit_status == self.run.expected_exit
            and self.verdict is not None
            and self.verdict.get("verdict") == self.run.expected_verdict
        )


def simulator_port() -> int:
    """The port modelgate.yaml's simulated models point at (8900): recordings are made there."""
    data = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    ports = {
        urlsplit(model["base_url"]).port
        for model in (data.get("models") or {}).values()
        if model.get("base_url") and urlsplit(model["base_url"]).hostname in _LOOPBACK
    }
    if len(ports) != 1 or None in ports:
        raise SystemExit(f"demo: {CONFIG} must point every simulated model at one port")
    port = ports.pop()
    assert port is not None
    return port


def gate_run(run: GateRun, scenario: Scenario, mode: str) -> RunResult:
    """Run pytest through the gate in ``mode`` and read the verdict.

    ``replay`` answers from the recordings shipped in tests/cassettes: offline, no simulator,
    no key. Any other mode starts a fresh simulator on the port of modelgate.yaml (cassettes
    match on the URL, so recordings must be made where replays will look).
    """
    run.verdict_path.unlink(missing_ok=True)
    env = dict(os.environ)
    env.pop("MODELGATE_MODE", None)  # the command line says the mode
    env.pop(KEY_VARIABLE, None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        # No tracebacks: the failed cases are listed by name, and the gate's table is what the
        # demo is about. Run pytest by hand (README.md) to see why a case failed.
        "--tb=no",
        f"--candidate-model={run.candidate}",
        f"--modelgate-verdict={run.verdict_path}",
        f"--modelgate-mode={mode}",
        *([f"--modelgate-config={HERE / run.config}"] if run.config else []),
    ]
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        if mode == "replay":
            where = "replaying the recordings in tests/cassettes (offline)"
        else:
            if scenario.api_key is not None:
                env[KEY_VARIABLE] = scenario.api_key
            sim = stack.enter_context(SimulatorServer(scenario, port=simulator_port()))
            where = f"{mode}: calling the simulator on {sim.base_url}"
        print(f"$ cd {_shown(HERE)} && pytest --candidate-model {run.candidate} ...", flush=True)
        print(f"  ({where})\n", flush=True)
        try:
            completed = subprocess.run(command, cwd=HERE, env=env, timeout=RUN_TIMEOUT_S)
            exit_status: int | None = completed.returncode
        except subprocess.TimeoutExpired:
            print(f"\ndemo: the run did not finish within {RUN_TIMEOUT_S} s", file=sys.stderr)
            exit_status = None
    return RunResult(run, exit_status, _read_verdict(run.verdict_path), time.monotonic() - started)


def _read_verdict(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def recap(results: list[RunResult]) -> list[str]:
    """The closing summary: one block per run, then whether the demo behaved as expected."""
    lines = ["", "=" * 30 + " demo recap " + "=" * 30]
    for result in results:
        run = result.run
        verdict = result.verdict.get("verdict", "?") if result.verdict else "(no verdict file)"
        mark = "as expected" if result.as_expected else "UNEXPECTED"
        lines.append(
            f"{run.candidate}: verdict {str(verdict).upper()}, exit status {result.exit_status} "
            f"({mark}: {run.expected_verdict.upper()}, exit {run.expected_exit}; "
            f"{result.seconds:.1f} s)"
        )
        lines.append(f"    verdict file: {_shown(run.verdict_path)}")
        for reason in (result.verdict or {}).get("reasons", [])[:6]:
            lines.append(f"    - {reason}")
    return lines


def demo(mode: str = "replay") -> int:
    """Run every gate run of RUNS and report; 0 when each ended with its expected verdict."""
    scenario = load_scenario(SCENARIO)
    results = []
    for number, run in enumerate(RUNS, start=1):
        title = (
            f" run {number}/{len(RUNS)}: simulated-stable vs {run.candidate} "
            f"(expected: {run.expected_verdict.upper()}) "
        )
        print(f"\n{title:=^100}", flush=True)
        results.append(gate_run(run, scenario, mode))
    for line in recap(results):
        print(line)
    problems = scene(results, scenario)
    if all(result.as_expected for result in results) and not problems:
        print(
            "demo: OK, the gate let the good candidate through and stopped the bad one; "
            "in production the good one went to shadow, then a 5% canary, then was switched off"
        )
        return 0
    for problem in problems:
        print(f"demo: production scene: {problem}", file=sys.stderr)
    print("demo: FAILED, a step did not end as expected (see above)", file=sys.stderr)
    return 1


def scene(results: list[RunResult], scenario: Scenario) -> list[str]:
    """The production scene (production.py) on the verdicts of runs 1 and 2; what went wrong."""
    print(f"\n{' production: the support desk on its gateway (simulator, offline) ':=^100}")
    by_verdict = {result.run.expected_verdict: result for result in results}
    passed, inconclusive = by_verdict["pass"], by_verdict["inconclusive"]
    if not (inconclusive.as_expected and passed.as_expected):
        return ["skipped: the pass and inconclusive runs did not end as expected"]
    # The product package and production.py live next to this file.
    sys.path.insert(0, str(HERE))
    from production import production_scene

    started = time.monotonic()
    try:
        problems = production_scene(
            CONFIG,
            scenario,
            KEY_VARIABLE,
            inconclusive_verdict=inconclusive.run.verdict_path,
            pass_verdict=passed.run.verdict_path,
        )
    except Exception as exc:  # a demo reports, it does not print a traceback
        problems = [f"{type(exc).__name__}: {exc}"]
    print(f"(production scene: {time.monotonic() - started:.1f} s)")
    return problems


def serve(port: int) -> int:
    """Serve the scenario until Ctrl-C, with the commands to point the tests at it."""
    scenario = load_scenario(SCENARIO)
    lines = [
        "Run the gate against it from another shell:",
        f"    cd {_shown(HERE)}",
        f"    export {KEY_VARIABLE}={scenario.api_key}",
        "    pytest --candidate-model simulated-candidate-good",
    ]
    if port != 8900:
        lines.append("(modelgate.yaml points at port 8900: edit its base_url entries to match.)")
    lines.append("Ctrl-C stops the simulator.")
    print("\n".join(lines), flush=True)
    return main_simulate(port, SCENARIO)


def main(argv: list[str] | None = None) -> int:
    """Command line: no option replays the demo; ``--record`` re-records it; ``--serve`` serves."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--serve", action="store_true", help="only run the simulator, until interrupted"
    )
    parser.add_argument(
        "--port", type=int, default=8900, help="port for --serve (default 8900, 0 = any free port)"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="re-record tests/cassettes from the simulator (port 8900), then check as usual",
    )
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.port)
    return demo("rerecord" if args.record else "replay")


if __name__ == "__main__":
    sys.exit(main())
