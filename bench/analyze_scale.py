"""``modelgate analyze`` on a million shadow pairs: time and peak memory, per engine.

Writes synthetic shadow logs in the gateway's format (v1): 1,000,000 pairs of one route, a
healthy candidate (the stable model's twin) and a regressed one (errors 2% -> 4%, latency x1.3),
5% of lines carrying a second route and 0.1% corrupt. Then runs ``modelgate analyze`` on each
in a subprocess per engine and prints its wall time, peak resident memory (``ru_maxrss`` of the
child) and verdict. Target (issue 13): under 30 s and 500 MB.

    .venv/bin/python bench/analyze_scale.py [--pairs N] [--engines duckdb python]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stamp(i: int) -> str:
    """A distinct, ordered ISO time per pair (a millisecond apart)."""
    hours, minutes, seconds = i // 3_600_000, i // 60_000 % 60, i // 1000 % 60
    return f"2026-12-04T{hours:02d}:{minutes:02d}:{seconds:02d}.{i % 1000:03d}Z"


def write_log(path: Path, pairs: int, *, regressed: bool, seed: int) -> int:
    rng = random.Random(seed)
    lines = 0
    with path.open("w", encoding="utf-8") as out:
        for i in range(pairs):
            if i % 1000 == 999:
                out.write('{"route": "triage", "user": {"model": "a"}, "sha\n')
                lines += 1
            route = "reply" if rng.random() < 0.05 else "triage"
            sides = []
            for arm in ("stable", "candidate"):
                worse = regressed and arm == "candidate"
                failed = rng.random() < (0.04 if worse else 0.02)
                latency = rng.lognormvariate(6.0, 0.4) * (1.3 if worse else 1.0)
                side: dict[str, object] = {
                    "model": "deepseek-chat" if arm == "stable" else "qwen-max",
                    "error_kind": "server_error" if failed else None,
                    "contract_ok": None if failed else True,
                    "violations": 0,
                }
                if not failed:
                    side.update(
                        latency_ms=round(latency, 1), ttft_ms=None, prompt_tokens=420,
                        completion_tokens=90 + rng.randrange(20),
                        cost_usd=0.00012 if arm == "stable" else 0.00011, attempts=1,
                        tool_calls=[], reply_language="en", json_valid=rng.random() > 0.005,
                    )  # fmt: skip
                sides.append(side)
            out.write(
                json.dumps(
                    {
                        "v": 1,
                        "at": stamp(i),
                        "route": route,
                        "stable": "deepseek-chat",
                        "candidate": "qwen-max",
                        "case": f"{rng.getrandbits(64):016x}",
                        "prompt_language": "en",
                        "user": sides[0],
                        "shadow": sides[1],
                    }
                )
                + "\n"
            )
            lines += 1
    return lines


# The child reports its own peak (ru_maxrss of a child process is only known per process).
_CHILD = """
import resource, sys
from pytest_modelgate.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code)
"""


def run(log: Path, engine: str, verdict: Path) -> tuple[float, float, int, str]:
    peak_file = verdict.with_suffix(".peak")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(peak_file), "analyze", str(log), "--route", "triage",
         "--engine", engine, "--verdict", str(verdict)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    peak_mb = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    verdict_name = json.loads(verdict.read_text())["verdict"] if verdict.exists() else "-"
    if done.returncode not in (0, 1):
        print(done.stderr[-2000:], file=sys.stderr)
    return seconds, peak_mb, done.returncode, verdict_name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--engines", nargs="*", default=["duckdb", "python"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for regressed in (False, True):
            log = Path(folder) / f"shadow-{'regressed' if regressed else 'healthy'}.jsonl"
            started = time.perf_counter()
            lines = write_log(log, args.pairs, regressed=regressed, seed=1)
            size = log.stat().st_size / 1e6
            print(
                f"{log.name}: {lines:,} lines, {size:,.0f} MB, written in "
                f"{time.perf_counter() - started:.1f} s"
            )
            for engine in args.engines:
                seconds, peak_mb, code, verdict = run(log, engine, Path(folder) / "v.json")
                print(
                    f"  modelgate analyze --engine {engine}: {seconds:5.1f} s, peak "
                    f"{peak_mb:5.0f} MB (the analyze process), exit {code}, verdict {verdict}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
