"""What the gate costs on replay: the same suite replayed with the gate and with plain vcrpy.

Builds a throw-away pytest project with ``--cases`` ticket-triage cases (default 1,000), records
both simulated models once from the bundled simulator (``--modelgate-mode=record``), stops the
simulator, then times, alternately and ``--repeats`` times each (default 3):

gate
    ``pytest --modelgate-mode=replay --candidate-model ...``: every case on both arms through the
    ``llm`` fixture, so 2 x cases tests and calls, judged, with the verdict written.
plain
    the same calls with the plugin off (``-p no:modelgate``): 2 x cases plain tests, each opening
    the cassette the gate recorded with a plain ``vcr.VCR`` (the serializer and body matcher of
    ``make_vcr``, so both sides load and match the same files the same way), sending the same
    request bytes with a plain ``httpx.Client`` and parsing the JSON answer. By default the plain
    tests share one client for the module: the leanest baseline, so the ratio is the gate's whole
    cost. ``--client-per-test`` builds one per test instead (each pays for a TLS context, which
    the gate shares), the way many suites are written.

Both are separate ``python -m pytest -q -p no:cacheprovider`` processes started the same way;
the wall time includes interpreter start-up, collection and everything pytest does. It prints
the median wall time of each, their ratio (target: at most 1.15, from issue 11), the overhead per
call in ms and the durations pytest itself reported. The exit status is 0 whatever the ratio:
this reports, it does not gate. It is 1 when a step fails (a pytest run with a non-zero exit
status, missing cassettes).

The replay runs see no API key, like an offline CI job; recording does. Simulator latency is
1 ms: recording is not timed, and replay reports the recorded latency without sleeping.

Usage::

    .venv/bin/python bench/replay_overhead.py                 # 1,000 cases, 3 runs each
    .venv/bin/python bench/replay_overhead.py --cases 200 --repeats 1 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

import pytest_modelgate
from pytest_modelgate.recording.cassettes import cassette_path
from pytest_modelgate.simulator import Scenario, SimulatorServer
from pytest_modelgate.simulator.tasks import classify

TARGET_RATIO = 1.15
STABLE = "bench-stable"
CANDIDATE = "bench-candidate"
MODELS = (STABLE, CANDIDATE)
KEY_ENV = "MODELGATE_BENCH_SIM_KEY"
SIM_KEY = "sk-bench-0123456789abcdef"
SIM_LATENCY_MS = 1
SYSTEM_PROMPT = (
    "You triage customer support tickets. Answer in JSON with the keys category "
    "(billing, refund, shipping, account, technical or other), priority, language and summary."
)

GATE_MODULE = "tests/test_triage.py"
PLAIN_MODULE = "plain/test_triage_plain.py"

# Ticket templates in the languages a support desk sees; {n} and {order} make every case distinct.
_TEMPLATES = (
    "I was charged twice on invoice INV-{n}, please fix the bill.",
    "I want a refund for order {order}, the blender arrived broken.",
    "Where is my parcel? Order {order} was shipped a week ago and tracking is stuck.",
    "I cannot log in to my account since the password reset this morning (ticket {n}).",
    "The app crashes with error {n} every time I open the settings page.",
    "Can you tell me whether you also sell gift cards? Asking for the store in branch {n}.",
    "我的快递还没到，订单号 {order}，已经等了十天了。",
    "上个月的发票金额不对，请帮我核对一下账单 {n}。",
    "Quiero un reembolso del pedido {order}, el producto llegó dañado.",
    "Mon colis {order} n'est toujours pas arrivé, pouvez-vous vérifier la livraison ?",
    "URGENT: payment failed three times for invoice INV-{n} and my service was cut off.",
    "注文 {order} の返金をお願いします。商品が届いていません。",
)

GATE_TEST = '''\
"""Ticket triage on the gate: every case runs on both arms through the `llm` fixture."""

import json
from pathlib import Path

import pytest

CASES = json.loads((Path(__file__).parent.parent / "cases.json").read_text(encoding="utf-8"))
SYSTEM = {{"role": "system", "content": {system!r}}}


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [(case["ticket"], case["expected"]) for case in CASES],
    ids=[case["id"] for case in CASES],
)
def test_triage(llm, ticket, expected):
    reply = llm.chat(
        [SYSTEM, {{"role": "user", "content": ticket}}],
        response_format={{"type": "json_object"}},
        temperature=0,
    )
    assert reply.json()["category"] == expected
'''

PLAIN_TEST = '''\
"""The same calls replayed with plain vcrpy and httpx, no gate (run with -p no:modelgate)."""

import contextlib
import json
from pathlib import Path

import httpx
import pytest

from pytest_modelgate.recording.cassettes import make_vcr

HERE = Path(__file__).parent
CASES = json.loads((HERE.parent / "cases.json").read_text(encoding="utf-8"))
SETTINGS = json.loads((HERE.parent / "plain.json").read_text(encoding="utf-8"))
SYSTEM = {{"role": "system", "content": {system!r}}}
# One recorder for the module, as a vcrpy user writes it: our serializer and body matcher, so
# both sides read the same files and match them the same way; no gate, no timing capture.
RECORDER = make_vcr(record_mode="none", secrets=())
# Default: one client for the module; --client-per-test: one per test.
SHARED = httpx.Client(timeout=60) if SETTINGS["shared_client"] else None


def http_client():
    if SHARED is not None:
        return contextlib.nullcontext(SHARED)
    return httpx.Client(timeout=60)


@pytest.mark.parametrize("model", SETTINGS["models"])
@pytest.mark.parametrize(
    ("case_id", "ticket", "expected"),
    [(case["id"], case["ticket"], case["expected"]) for case in CASES],
    ids=[case["id"] for case in CASES],
)
def test_triage(case_id, ticket, expected, model):
    # The gate's request, byte for byte: same URL, same body serialised the same way.
    body = {{
        "model": model,
        "messages": [SYSTEM, {{"role": "user", "content": ticket}}],
        "response_format": {{"type": "json_object"}},
        "temperature": 0,
    }}
    content = json.dumps(body, ensure_ascii=False).encode("utf-8")
    cassette = SETTINGS["cassettes"][model][case_id]
    with RECORDER.use_cassette(cassette), http_client() as client:
        response = client.post(
            SETTINGS["base_urls"][model] + "/chat/completions",
            content=content,
            headers={{"Content-Type": "application/json"}},
        )
    response.raise_for_status()
    answer = response.json()["choices"][0]["message"]["content"]
    assert json.loads(answer)["category"] == expected
'''


class BenchError(Exception):
    """A step that did not work: the figures would mean nothing."""


@dataclass(frozen=True)
class Run:
    """One timed pytest process."""

    kind: str
    wall_s: float
    pytest_s: float | None
    summary: str
    # User + system CPU seconds of the pytest process: far less sensitive to other load.
    cpu_s: float = 0.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cases(count: int) -> list[dict[str, str]]:
    cases = []
    for index in range(count):
        template = _TEMPLATES[index % len(_TEMPLATES)]
        ticket = template.format(n=10_000 + index, order=f"SO-{20_000 + index}")
        category, _priority = classify(ticket)
        cases.append({"id": f"t{index:04d}", "ticket": ticket, "expected": category})
    return cases


def _write_project(
    root: Path, cases: list[dict[str, str]], base_url: str, *, shared_client: bool
) -> None:
    (root / "tests").mkdir()
    (root / "plain").mkdir()
    # Its own ini file, so the project is the rootdir and no outer configuration applies.
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    price = {"input": 0.27, "output": 1.10, "cached_input": 0.07}
    config = {
        "stable": STABLE,
        "models": {
            name: {"base_url": base_url, "api_key_env": KEY_ENV, "price": price} for name in MODELS
        },
        # Recorded latencies of a 1 ms simulator are noise; cost and pass rate stay gated.
        "gate": {
            "latency_p50_max_ratio": None,
            "latency_p95_max_ratio": None,
            "ttft_p95_max_ratio": None,
        },
    }
    (root / "modelgate.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "cases.json").write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    (root / GATE_MODULE).write_text(GATE_TEST.format(system=SYSTEM_PROMPT), encoding="utf-8")
    (root / PLAIN_MODULE).write_text(PLAIN_TEST.format(system=SYSTEM_PROMPT), encoding="utf-8")
    gate_module = root / GATE_MODULE
    cassettes = {
        model: {
            case["id"]: str(cassette_path(gate_module, f"test_triage[{case['id']}]", model))
            for case in cases
        }
        for model in MODELS
    }
    plain = {
        "models": list(MODELS),
        "base_urls": dict.fromkeys(MODELS, base_url),
        # The files the gate recorded, by the gate's own naming rule.
        "cassettes": cassettes,
        "shared_client": shared_client,
    }
    (root / "plain.json").write_text(json.dumps(plain), encoding="utf-8")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _pytest(root: Path, args: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, encoding="utf-8", check=False
    )
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    output = done.stdout + done.stderr
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise BenchError(f"pytest {' '.join(command[3:])} exited with {done.returncode}:\n{tail}")
    return wall, output, cpu


_SUMMARY = re.compile(r"^=*\s*(\d+ passed.*?) in ([\d.]+)s", re.MULTILINE)


def _summary(output: str) -> tuple[str, float | None]:
    """pytest's final "N passed in S s" line: the counts and the seconds it reports."""
    found = _SUMMARY.findall(output)
    if not found:
        return "?", None
    counts, seconds = found[-1]
    return counts, float(seconds)


def _verdict_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("modelgate verdict:")]
    return lines[-1] if lines else "no verdict line"


def _environment(without_key: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MODELGATE_"))}
    if not without_key:
        env[KEY_ENV] = SIM_KEY
    return env


def run(cases_count: int, repeats: int, root: Path, *, shared_client: bool) -> int:
    cases = _cases(cases_count)
    calls = 2 * cases_count
    port = _free_port()
    scenario = Scenario.model_validate(
        {
            "api_key": SIM_KEY,
            "seed": 7,
            "models": {name: {"latency_ms": SIM_LATENCY_MS} for name in MODELS},
        }
    )
    gate_args = [GATE_MODULE, "--modelgate-mode=replay", "--candidate-model", CANDIDATE]
    plain_args = [PLAIN_MODULE, "-p", "no:modelgate"]

    print(
        f"replay overhead: {cases_count} cases x 2 models = {calls} tests and calls per run, "
        f"{repeats} run(s) each; plain tests use "
        f"{'one shared httpx.Client' if shared_client else 'one httpx.Client per test'}"
    )
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPU(s), "
        f"libyaml {'yes' if yaml.__with_libyaml__ else 'no'}, project {root}"
    )

    # Step 1: record both models once (host and port are part of matching: fixed port).
    sim = SimulatorServer(scenario, port=port).start()
    try:
        _write_project(root, cases, sim.base_url, shared_client=shared_client)
        started = time.perf_counter()
        _, output, _ = _pytest(
            root,
            [GATE_MODULE, "--modelgate-mode=record", "--candidate-model", CANDIDATE],
            _environment(without_key=False),
        )
        recorded = len(sim.requests)
    finally:
        sim.stop()
    record_s = time.perf_counter() - started
    files = list((root / "tests" / "cassettes").rglob("*.yaml"))
    if len(files) != calls or recorded != calls:
        raise BenchError(
            f"recording made {len(files)} cassettes from {recorded} calls, not {calls}"
        )
    print(f"recorded {len(files)} cassettes in {record_s:.1f} s ({_summary(output)[0]})")

    # An installed wheel ships bytecode; an editable install run with PYTHONDONTWRITEBYTECODE
    # (as here) would recompile the package's modules on every run, on both sides alike.
    compiled = compileall.compile_dir(
        str(Path(pytest_modelgate.__file__).parent), quiet=1, workers=1
    )
    print(f"package bytecode {'up to date' if compiled else 'NOT compiled'}")

    # Steps 2 and 3, alternating so that drift in machine load hits both alike.
    env = _environment(without_key=True)
    runs: list[Run] = []
    for index in range(repeats):
        for kind, args in (("gate", gate_args), ("plain", plain_args)):
            wall, output, cpu = _pytest(root, args, env)
            summary, pytest_s = _summary(output)
            if kind == "gate":
                summary += f"; {_verdict_line(output)}"
            runs.append(Run(kind, wall, pytest_s, summary, cpu))
            shown = "?" if pytest_s is None else f"{pytest_s:.2f}"
            print(
                f"  run {index + 1} {kind:<5} wall {wall:7.2f} s  cpu {cpu:6.2f} s  "
                f"pytest {shown:>6} s  {summary}"
            )

    gate = [r for r in runs if r.kind == "gate"]
    plain = [r for r in runs if r.kind == "plain"]
    gate_s = statistics.median(r.wall_s for r in gate)
    plain_s = statistics.median(r.wall_s for r in plain)
    ratio = gate_s / plain_s
    per_call_ms = (gate_s - plain_s) / calls * 1000
    gate_py = [r.pytest_s for r in gate if r.pytest_s is not None]
    plain_py = [r.pytest_s for r in plain if r.pytest_s is not None]

    rows = [
        ("runs (each)", str(repeats), str(repeats)),
        ("tests = calls per run", str(calls), str(calls)),
        ("median wall time", f"{gate_s:.2f} s", f"{plain_s:.2f} s"),
        (
            "median pytest-reported time",
            f"{statistics.median(gate_py):.2f} s" if gate_py else "?",
            f"{statistics.median(plain_py):.2f} s" if plain_py else "?",
        ),
        (
            "wall time per call",
            f"{gate_s / calls * 1000:.2f} ms",
            f"{plain_s / calls * 1000:.2f} ms",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print()
    print(f"{'':<{width}}  {'gate':>12}  {'plain vcrpy':>12}")
    for label, with_gate, without in rows:
        print(f"{label:<{width}}  {with_gate:>12}  {without:>12}")
    print(f"{'ratio gate / plain (wall)':<{width}}  {ratio:>12.2f}")
    if gate_py and plain_py:
        pytest_ratio = statistics.median(gate_py) / statistics.median(plain_py)
        print(f"{'ratio gate / plain (pytest)':<{width}}  {pytest_ratio:>12.2f}")
    cpu_ratio = statistics.median(r.cpu_s for r in gate) / statistics.median(r.cpu_s for r in plain)
    print(f"{'ratio gate / plain (CPU time)':<{width}}  {cpu_ratio:>12.2f}")
    print(f"{'overhead per call':<{width}}  {per_call_ms:>9.2f} ms")
    status = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    print(f"target ratio <= {TARGET_RATIO}: {status}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="test cases (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        type=Path,
        default=None,
        help="build the project in DIR (must not exist) and keep it, e.g. to profile a run",
    )
    parser.add_argument(
        "--client-per-test",
        action="store_true",
        help="plain tests build one httpx.Client each (default: one shared client, the leanest "
        "baseline)",
    )
    options = parser.parse_args(argv)
    if options.cases < 1 or options.repeats < 1:
        parser.error("--cases and --repeats must be at least 1")
    if options.keep is not None:
        root = options.keep.resolve()
        if root.exists():
            parser.error(f"--keep {options.keep}: already exists")
        root.mkdir(parents=True)
        cleanup = None
    else:
        cleanup = tempfile.mkdtemp(prefix="modelgate-bench-")
        root = Path(cleanup)
    try:
        return run(options.cases, options.repeats, root, shared_client=not options.client_per_test)
    except BenchError as exc:
        print(f"replay overhead: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
