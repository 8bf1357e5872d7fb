"""The documentation describes what the code does: example_project/README.md's demo section."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_project"


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("support_desk_demo", EXAMPLE / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _demo_section() -> str:
    text = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    return text.split("## The demo", 1)[1].split("\n## ", 1)[0]


def test_the_example_readme_lists_every_run_demo_py_makes_in_order() -> None:
    runs = _demo().RUNS
    section = _demo_section()
    items = re.findall(r"^(\d+)\. (.+?)(?=^\d+\. |^\S|\Z)", section, re.MULTILINE | re.DOTALL)
    assert [int(number) for number, _ in items] == list(range(1, len(runs) + 1)), items
    words = {1: "once", 2: "twice", 3: "three times", 4: "four times"}
    assert f"runs the gate\n{words[len(runs)]}" in section or (
        f"runs the gate {words[len(runs)]}" in " ".join(section.split())
    )
    for (_, text), run in zip(items, runs, strict=True):
        flat = " ".join(text.split())
        assert f"`--candidate-model {run.candidate}`" in flat, flat
        said = f"**{run.expected_verdict.upper()}**, exit status {run.expected_exit}"
        assert said in flat, flat
        if run.config is not None:
            assert f"--modelgate-config={run.config}" in flat, flat
            assert run.verdict_path.name in " ".join(section.split())


def test_the_example_readme_says_the_demo_replays_without_a_simulator() -> None:
    section = " ".join(_demo_section().split())
    demo = _demo()
    # demo.py's default is replay: no simulator is started for `make demo`.
    assert demo.main.__doc__ is not None
    assert "no option replays" in demo.main.__doc__
    assert "replays the recordings" in section
    assert "in-process" not in section
    assert "twice" not in section
    assert "both runs" not in section
    assert "make demo-record" in section
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:.*\n\t.*example_project/demo\.py\s*$", makefile, re.MULTILINE)
    assert re.search(r"^demo-record:.*\n\t.*example_project/demo\.py --record$", makefile, re.M)
