"""The wheel holds every folder of the package and its data: an editable install hides a gap.

A subpackage missing from the build configuration imports fine from the source tree (and so in
every other test) but is absent for `pip install pytest-modelgate`; this builds the real wheel.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pytest_modelgate"


def test_the_wheel_holds_every_subpackage_and_the_package_data(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build reuses build/lib, which may hold files from before.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "dist", "*.egg-info", "__pycache__", "tests", "bench", "example_project"
        ),
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    (wheel,) = tmp_path.glob("pytest_modelgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    sources = {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources, "no sources found"
    assert sources - names == set(), "left out of the wheel"
    for data in ("py.typed", "data/catalog.yaml", "data/verdict.schema.json"):
        assert f"pytest_modelgate/{data}" in names
