"""The plugin costs nothing when unused: no HTTP client, SDK or vcrpy import for --help or
for a run whose tests never ask for ``llm``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
