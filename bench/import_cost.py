"""What having pytest-modelgate installed costs a project that does not use it.

Runs ``pytest --collect-only -q`` on a tiny project (a few plain tests, no ``modelgate.yaml``,
no ``llm``) in a fresh subprocess, with the plugin and with ``-p no:modelgate``, best of N runs
each, and prints the wall time of each, the difference and the modules the plugin adds.

Target: at most 50 ms and none of pydantic, httpx, vcrpy, yaml or the model catalog imported.

    python bench/import_cost.py            # best of 15
    python bench/import_cost.py --runs 5

What it found (see README "Cost of an unused plugin"): the plugin's ``pytest_configure`` always
built the gate's session, which imported pydantic (with pydantic-core, annotated-types,
typing-inspection), PyYAML and the packaged model catalog, and resolved the settings, even when no
test asked for ``llm``: 89 extra modules and +368 to +662 ms on a loaded 2-core machine. Now a run
that names nothing of the gate (no option, ini value, ``MODELGATE_MODE``, ``modelgate.yaml`` or
earlier verdict, no xdist) builds the session only when collection meets the first test that uses
``llm``: 3 extra modules (the plugin and its hookspecs) and +1.5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROBE = """
import json, sys
import pytest
code = pytest.main(sys.argv[1:])
print("MODULES=" + json.dumps(sorted(sys.modules)))
raise SystemExit(int(code))
"""

TESTS = "".join(f"\ndef test_plain_{i}():\n    assert {i} + 1 == {i + 1}\n" for i in range(20))

HEAVY = ("pydantic", "httpx", "httpx2", "vcr", "yaml", "openai", "pytest_modelgate.calls.catalog")


def run_once(project: Path, extra: list[str]) -> tuple[float, list[str]]:
    """Wall time of one ``pytest --collect-only -q`` subprocess and the modules it had loaded."""
    # MODELGATE_* would ask for the gate. PYTHONDONTWRITEBYTECODE would make every run compile
    # the plugin from source (an editable install has no .pyc until one is written), which a
    # wheel's installed bytecode never does: that is not the cost a user pays.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MODELGATE_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"pytest failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    line = next(x for x in result.stdout.splitlines() if x.startswith("MODULES="))
    modules: list[str] = json.loads(line.removeprefix("MODULES="))
    return elapsed, modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per variant (best is kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "test_plain.py").write_text(TESTS, encoding="utf-8")
        variants = {"without": ["-p", "no:modelgate"], "with": []}
        best: dict[str, float] = {}
        modules: dict[str, list[str]] = {}
        run_once(project, [])  # writes the bytecode caches; not counted
        # Interleaved, so that a burst of load on the machine hits both variants alike.
        for _ in range(args.runs):
            for name, extra in variants.items():
                elapsed, loaded = run_once(project, extra)
                best[name] = min(best.get(name, elapsed), elapsed)
                modules[name] = loaded
    extra_modules = sorted(set(modules["with"]) - set(modules["without"]))
    heavy = [m for m in extra_modules if m.split(".")[0] in HEAVY or m in HEAVY]
    cost_ms = (best["with"] - best["without"]) * 1000
    print(f"pytest --collect-only -q, 20 plain tests, best of {args.runs} runs each:")
    print(f"  without the plugin (-p no:modelgate): {best['without'] * 1000:7.1f} ms")
    print(f"  with the plugin installed:            {best['with'] * 1000:7.1f} ms")
    print(f"  cost of the plugin:                   {cost_ms:+7.1f} ms (target <= 50 ms)")
    print(f"  extra modules: {len(extra_modules)}: {', '.join(extra_modules)}")
    print(f"  heavy modules among them: {', '.join(heavy) or 'none'}")
    return 0 if cost_ms <= 50 and not heavy else 1


if __name__ == "__main__":
    raise SystemExit(main())
