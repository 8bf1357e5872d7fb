"""The package's architecture holds: only the pytest glue imports pytest.

The core (calls, recording, judge, verdict, config, simulator, gateway) must run in a web server or
a console script with no pytest machinery, so an import of pytest anywhere else is a defect.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pytest_modelgate"
GLUE = {"plugin", "options", "fixture", "stash", "phases", "verdictfile", "controller", "hooks"}


def _imports_pytest(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(name.split(".")[0] in {"pytest", "_pytest"} for name in names):
            lines.append(node.lineno)
    return lines


def test_only_the_glue_imports_pytest() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if not (path.parent == PACKAGE and path.stem in GLUE) and (lines := _imports_pytest(path))
    }
    assert offenders == {}


def test_the_glue_modules_exist() -> None:
    """Guards the test above against a rename that would make its allow-list stale."""
    assert {path.stem for path in PACKAGE.glob("*.py")} >= GLUE
