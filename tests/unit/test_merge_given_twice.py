"""One records part given twice to ``modelgate merge`` is refused, not counted twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_merge import CASES, _records, _write

from pytest_modelgate.cli import main
from pytest_modelgate.verdict.merge import MergeRefused, merge_parts, read_part


def test_the_same_file_twice_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.jsonl", _records(CASES[:3]), run_id="r1")

    with pytest.raises(MergeRefused, match=r"a\.jsonl is given twice \(run r1\)"):
        merge_parts([read_part(path), read_part(path)])


def test_the_command_exits_3_and_writes_an_error_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the fix this merged 2x the records into a verdict (exit 0 or 1)."""
    path = _write(tmp_path / "a.jsonl", _records(CASES[:3]), run_id="r1")
    out = tmp_path / "merged.json"

    assert main(["merge", str(path), str(path), "--verdict", str(out)]) == 3

    assert "is given twice" in capsys.readouterr().err
    assert '"verdict": "error"' in out.read_text(encoding="utf-8")
