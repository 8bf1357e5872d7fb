"""The import paths users write keep working: the top-level names and every path the docs name."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_modelgate

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "example_project" / "README.md",
]

# `from pytest_modelgate.x.y import A, B` and dotted references `pytest_modelgate.x.y.Name`.
FROM_IMPORT = re.compile(r"from (pytest_modelgate(?:\.\w+)*) import ([\w, ]+)")
DOTTED = re.compile(r"`(pytest_modelgate(?:\.\w+)+)(?:\([^`]*\))?[^`]*`")


def _documented_imports() -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for module, names in FROM_IMPORT.findall(text):
            found += [(doc.name, module, name.strip()) for name in names.split(",") if name.strip()]
        for dotted in DOTTED.findall(text):
            found.append((doc.name, dotted, ""))
    return found


def test_the_docs_name_import_paths_at_all() -> None:
    """Guards the scan below: the README documents at least the metric and simulator imports."""
    documented = {(module, name) for _, module, name in _documented_imports()}
    assert ("pytest_modelgate.metrics", "CustomMetric") in documented or (
        "pytest_modelgate",
        "CustomMetric",
    ) in documented
    assert any(module.startswith("pytest_modelgate.simulator") for module, _ in documented)


@pytest.mark.parametrize(("doc", "path", "name"), _documented_imports())
def test_every_documented_import_resolves(doc: str, path: str, name: str) -> None:
    if name:
        assert hasattr(importlib.import_module(path), name), f"{doc}: from {path} import {name}"
        return
    # A dotted reference: the longest importable prefix, then attributes.
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            assert hasattr(obj, attribute), f"{doc}: `{path}` does not resolve"
            obj = getattr(obj, attribute)
        return
    pytest.fail(f"{doc}: `{path}` names no module")


@pytest.mark.parametrize("name", sorted(set(pytest_modelgate.__all__) - {"__version__"}))
def test_top_level_names_resolve(name: str) -> None:
    value = getattr(pytest_modelgate, name)
    assert getattr(value, "__name__", name) == name


def test_all_matches_the_lazy_exports() -> None:
    assert set(pytest_modelgate.__all__) == {"__version__", *pytest_modelgate._EXPORTS}


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Gatewy'"):
        _ = pytest_modelgate.Gatewy  # type: ignore[attr-defined]


def test_importing_the_package_imports_no_part_of_it() -> None:
    """pytest imports the package for every run once the plugin is installed: it must stay free."""
    code = (
        "import sys, pytest_modelgate; "
        "print(sorted(m for m in sys.modules if m.startswith('pytest_modelgate.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_readme_lists_the_top_level_names() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Package layout", 1)[1].split("\n## ", 1)[0]
    statement = section.split("from pytest_modelgate import (", 1)[1].split(")", 1)[0]
    listed = set(re.findall(r"\w+", statement))
    assert set(pytest_modelgate.__all__) - {"__version__"} <= listed
