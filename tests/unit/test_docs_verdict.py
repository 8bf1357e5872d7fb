"""The example in docs/verdict.md is a verdict the shipped schema accepts, field for field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pytest_modelgate.verdict.model import load_schema, validate_verdict

DOC = Path(__file__).resolve().parents[2] / "docs" / "verdict.md"


def example() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Example", 1)[1]
    match = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert match is not None, "no ```json block under '## Example' in docs/verdict.md"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def test_the_documented_example_is_valid() -> None:
    validate_verdict(example())


def test_the_example_shows_every_top_level_field_and_the_table_lists_them() -> None:
    data = example()
    properties = list(load_schema()["properties"])
    assert sorted(data) == sorted(properties)
    table = DOC.read_text(encoding="utf-8").split("## Top-level fields", 1)[1].split("\n## ", 1)[0]
    for name in properties:
        assert f"`{name}`" in table, name
