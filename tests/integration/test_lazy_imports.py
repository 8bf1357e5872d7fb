"""The plugin costs nothing when unused: no HTTP client, SDK or vcrpy import for --help or
for a run whose tests never ask for ``llm``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("httpx", "httpx2", "openai", "vcr")

PROBE = """
import sys
import pytest
code = pytest.main({args!r})
heavy = sorted(name for name in {heavy!r} if name in sys.modules)
print("HEAVY=" + ",".join(heavy))
print("CODE=" + str(int(code)))
"""


def _probe(tmp_path: Path, args: list[str]) -> tuple[list[str], int, str]:
    script = PROBE.format(args=args, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.splitlines()
    heavy_line = next(line for line in lines if line.startswith("HEAVY="))
    code_line = next(line for line in lines if line.startswith("CODE="))
    heavy = [name for name in heavy_line.removeprefix("HEAVY=").split(",") if name]
    return heavy, int(code_line.removeprefix("CODE=")), result.stdout


def test_help_imports_no_http_client(tmp_path: Path) -> None:
    heavy, code, out = _probe(tmp_path, ["--help"])
    assert code == 0
    assert "--candidate-model" in out
    assert heavy == []


def test_run_without_llm_imports_no_http_client(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    heavy, code, out = _probe(tmp_path, ["-q", "-p", "no:cacheprovider"])
    assert code == 0
    assert "1 passed" in out
    assert heavy == []
    # A run that gates nothing writes no verdict.
    assert not (tmp_path / "modelgate-verdict.json").exists()


# Not even the gate's session: pydantic, the YAML reader and the model catalog wait for a test that
# uses `llm` (or anything that asks for the gate).
UNUSED = (*HEAVY, "pydantic", "yaml", "pytest_modelgate.calls.catalog", "pytest_modelgate.session")


def _probe_modules(
    tmp_path: Path, args: list[str], names: tuple[str, ...]
) -> tuple[list[str], str]:
    script = PROBE.format(args=args, heavy=names)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELGATE_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    heavy_line = next(x for x in result.stdout.splitlines() if x.startswith("HEAVY="))
    return [n for n in heavy_line.removeprefix("HEAVY=").split(",") if n], result.stdout


@pytest.mark.parametrize("args", [["--collect-only", "-q"], ["-q"]], ids=["collect-only", "run"])
def test_an_unused_plugin_imports_neither_pydantic_nor_the_catalog(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    loaded, out = _probe_modules(tmp_path, [*args, "-p", "no:cacheprovider"], UNUSED)
    assert "CODE=0" in out
    assert loaded == []


def test_a_test_using_llm_still_builds_the_gate_without_any_configuration(tmp_path: Path) -> None:
    # Nothing named the gate, so the session is built at collection: the missing stable model is
    # still a usage error, and its `error` verdict is written.
    (tmp_path / "test_wf.py").write_text("def test_reply(llm):\n    llm.chat([])\n")
    loaded, out = _probe_modules(tmp_path, ["-q", "-p", "no:cacheprovider"], ("pydantic",))
    assert "CODE=4" in out
    assert loaded == ["pydantic"]
    verdict = json.loads((tmp_path / "modelgate-verdict.json").read_text(encoding="utf-8"))
    assert verdict["verdict"] == "error"
    assert "no stable model is set" in verdict["reasons"][0]


@pytest.mark.parametrize(
    ("setup", "args"),
    [
        ("modelgate.yaml", []),
        ("modelgate-verdict.json", []),
        (None, ["--modelgate-repeat=2"]),
    ],
    ids=["config-file", "earlier-verdict", "option"],
)
def test_whatever_names_the_gate_builds_it_at_configure(
    tmp_path: Path, setup: str | None, args: list[str]
) -> None:
    # These runs use no `llm`, yet each may have to fail or replace a verdict before any test.
    if setup == "modelgate.yaml":
        (tmp_path / setup).write_text("stable: no-such-model\n", encoding="utf-8")
    elif setup is not None:
        (tmp_path / setup).write_text('{"verdict": "pass"}', encoding="utf-8")
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert True\n")
    loaded, out = _probe_modules(tmp_path, ["-q", "-p", "no:cacheprovider", *args], ("pydantic",))
    assert loaded == ["pydantic"]
    if setup == "modelgate.yaml":
        assert "CODE=4" in out  # the typo is reported before any test runs
    else:
        assert "CODE=0" in out
    if setup == "modelgate-verdict.json":
        # Replaced by a provisional error at configure, dropped at the end: no stale pass left.
        assert not (tmp_path / setup).exists()
