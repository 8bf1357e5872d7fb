"""How the paired judge scales: build time, judge time and peak memory at 1,000 to 100,000 cases.

Each size builds a suite of paired cases from the package's own record models (``TestRecord``
and ``CallRecord``): 2 arms, 10 workflows, 5 prompt languages, one call per case and arm. The
workflows differ in what a call carries, so every kind of comparison runs: JSON checks (wf0-wf2),
tool calls (wf3-wf5), streamed replies with a time to first token and a language check (wf6-wf9),
quality scores (wf0, wf1), token usage and a cost on every successful call, a failed call now and
then. The candidate is a healthy twin of the stable model (the same rates, independent draws).
``PairedJudge()`` at its defaults (1000 resamples, 95% intervals) then judges the run.

Every size runs in a subprocess of its own, so one size's memory never shows in another's
figures. Printed per size: the time to build the records, the time ``judge()`` takes, the peak
resident memory of that process (``ru_maxrss``: the records, the interpreter and the judge) and
how much the peak rose during ``judge()`` alone, the verdict, and a digest of the whole
judgement (every figure to the last bit) to compare two versions of the judge.

Usage::

    .venv/bin/python bench/judge_scale.py                     # 1,000 / 10,000 / 100,000 cases
    .venv/bin/python bench/judge_scale.py --sizes 1000 5000 --resamples 200
    .venv/bin/python bench/judge_scale.py --digest --sizes 100 300 1000   # digests only

The exit status is 0 whatever the figures (this reports, it does not gate); 1 when a step fails.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import random
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pytest_modelgate.calls.records import Arm, CallRecord, TestRecord, Usage  # noqa: E402
from pytest_modelgate.judge.model import RunData  # noqa: E402
from pytest_modelgate.judge.paired import PairedJudge  # noqa: E402

WORKFLOWS = 10
LANGUAGES = ("en", "zh", "ja", "es", "fr")
PRICE_IN, PRICE_OUT = 0.4e-6, 1.2e-6


def build(n: int, seed: int = 11) -> RunData:
    """``n`` paired cases, one call per case and arm, reproducibly from ``seed``."""
    rng = random.Random(seed)
    arms: dict[Arm, list[TestRecord]] = {"stable": [], "candidate": []}
    for index in range(n):
        workflow = index % WORKFLOWS
        language = LANGUAGES[(index // WORKFLOWS) % len(LANGUAGES)]
        case_id = f"wf{workflow}[case{index:06d}]"
        # A hard case (a quarter of them) fails more often on both arms alike.
        hard = rng.random() < 0.25
        for arm in ("stable", "candidate"):
            model = "stable-model" if arm == "stable" else "candidate-model"
            failed_call = rng.random() < 0.01
            streamed = workflow >= 6
            latency = rng.lognormvariate(math.log(800 if streamed else 500), 0.4)
            checks: tuple[str, ...] = ()
            fields: dict[str, object] = {}
            if workflow <= 2:
                checks = ("json",)
                fields["json_valid"] = rng.random() > (0.1 if hard else 0.01)
            elif workflow <= 5:
                checks = ("tools",)
                fields["tool_calls"] = ("lookup_order",)
                fields["tool_calls_valid"] = rng.random() > (0.15 if hard else 0.02)
            else:
                checks = ("language",)
                fields["language_match"] = rng.random() > (0.1 if hard else 0.02)
                fields["ttft_ms"] = latency * rng.uniform(0.1, 0.3)
            prompt, completion = rng.randint(200, 600), rng.randint(40, 400)
            call = CallRecord(
                test_id=case_id,
                case_id=case_id,
                arm=arm,
                model=model,
                call_index=0,
                started_at=1_700_000_000.0 + index,
                latency_ms=latency,
                status=500 if failed_call else 200,
                error_kind="server_error" if failed_call else None,
                usage=None
                if failed_call
                else Usage(
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    total_tokens=prompt + completion,
                ),
                cost_usd=None if failed_call else prompt * PRICE_IN + completion * PRICE_OUT,
                finish_reason=None if failed_call else "stop",
                streamed=streamed,
                prompt_language=language,
                reply_language=language,
                checks=() if failed_call else checks,
                **({} if failed_call else fields),  # type: ignore[arg-type]
            )
            passed = not failed_call and rng.random() > (0.2 if hard else 0.03)
            scores = (("helpfulness", rng.uniform(0.5, 1.0)),) if workflow <= 1 else ()
            arms[arm].append(
                TestRecord(
                    test_id=case_id,
                    case_id=case_id,
                    workflow=f"wf{workflow}",
                    arm=arm,
                    model=model,
                    outcome="passed" if passed else "failed",
                    calls=(call,),
                    language=language,
                    scores=scores,
                )
            )
    return RunData(stable=arms["stable"], candidate=arms["candidate"])


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _current_rss_mb() -> float:
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return math.nan
    return int(fields[1]) * resource.getpagesize() / 2**20


def measure(n: int, resamples: int, seed: int) -> dict[str, object]:
    """Build and judge one size in this process; the figures as a dict."""
    started = time.perf_counter()
    run = build(n, seed)
    built = time.perf_counter()
    gc.collect()
    before = _current_rss_mb()
    judgement = PairedJudge(resamples=resamples).judge(run)
    judged = time.perf_counter()
    return {
        "cases": n,
        "build_s": built - started,
        "judge_s": judged - built,
        "peak_rss_mb": _rss_mb(),
        "rss_before_judge_mb": before,
        "judge_rise_mb": _rss_mb() - before,
        "verdict": judgement.verdict,
        "comparisons": len(judgement.metrics),
        "digest": hashlib.sha256(repr(judgement).encode()).hexdigest()[:16],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--digest", action="store_true", help="print size and digest only")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one size, JSON
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.resamples, args.seed)))
        return 0
    if not args.digest:
        print(f"PairedJudge(resamples={args.resamples}), seed {args.seed}, one process per size")
        print(
            f"{'cases':>8} {'build s':>8} {'judge s':>8} {'peak MB':>8} {'judge +MB':>9} "
            f"{'verdict':>12} {'metrics':>7}  digest"
        )
    for n in args.sizes:
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                str(n),
                "--resamples",
                str(args.resamples),
                "--seed",
                str(args.seed),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"{n:>8} failed (exit {child.returncode}):\n{child.stderr[-2000:]}")
            return 1
        row = json.loads(child.stdout.strip().splitlines()[-1])
        if args.digest:
            print(f"{row['cases']} {row['digest']} {row['verdict']}")
            continue
        print(
            f"{row['cases']:>8} {row['build_s']:>8.2f} {row['judge_s']:>8.2f} "
            f"{row['peak_rss_mb']:>8.0f} {row['judge_rise_mb']:>9.0f} {row['verdict']:>12} "
            f"{row['comparisons']:>7}  {row['digest']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
