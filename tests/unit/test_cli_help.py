"""`modelgate --help` and every subcommand's: a description, the exit statuses, the README table.

Each subcommand's help is printed by the real console entry point (`main([...,"--help"])`), and
its exit-status epilog is compared with `cli.EXIT_STATUSES` and with the README's "The
`modelgate` command" table, so the three cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from pytest_modelgate import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _subcommands() -> list[str]:
    parser = cli._build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return list(actions[0].choices)


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _readme_table() -> dict[str, set[int]]:
    """command -> the exit statuses its README row lists."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## The `modelgate` command\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[int]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `modelgate (\w+)[^`]*` \|.*\| ([^|]+) \|$", line)
        if match:
            rows[match[1]] = {int(code) for code in re.findall(r"(?:^|; )(\d) ", match[2])}
    return rows


def test_the_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help(capsys)
    for name in _subcommands():
        assert re.search(rf"^    {name}  +\S", out, re.MULTILINE), f"{name} missing:\n{out}"
    assert "modelgate COMMAND --help" in out.replace("\n", " ")


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_a_description_and_an_exit_status_epilog(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    out = _help(capsys, command)
    usage, _, rest = out.partition("\n\n")
    assert usage.startswith(f"usage: modelgate {command}")
    description = rest.split("\n\n", 1)[0]
    assert not description.startswith(("positional arguments:", "options:")), (
        f"`modelgate {command} --help` has no description"
    )
    epilog = out.rsplit("exit status:\n", 1)
    assert len(epilog) == 2, f"`modelgate {command} --help` does not end with its exit statuses"
    listed = [re.match(r"  (\d)  (.+)", line) for line in epilog[1].splitlines()]
    assert all(listed), epilog[1]
    assert [(int(m[1]), m[2]) for m in listed if m] == list(cli.EXIT_STATUSES[command])
    # 2 is argparse's own status for bad arguments: every command keeps that meaning.
    assert any(code == 2 and "bad arguments" in text for code, text in cli.EXIT_STATUSES[command])


def test_the_readme_table_lists_every_subcommand_with_its_exit_statuses() -> None:
    table = _readme_table()
    assert set(table) == set(_subcommands())
    for command, codes in table.items():
        assert codes == {code for code, _ in cli.EXIT_STATUSES[command]}, command


def test_bad_arguments_exit_2_for_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    for command in _subcommands():
        with pytest.raises(SystemExit) as exited:
            cli.main([command, "--no-such-option"])
        assert exited.value.code == 2, command
        # argparse names the parser that refused it (the top level, for an unknown option).
        assert re.search(r"^modelgate( \w+)?: error: ", capsys.readouterr().err, re.MULTILINE)


def test_models_shows_each_price_with_its_source_and_date(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["models", "--provider", "deepseek"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-3:] == ["as", "of", "source"]
    deepseek = next(line for line in lines if line.startswith("deepseek-chat "))
    assert "2026-11-15" in deepseek
    assert "DeepSeek pricing page" in deepseek


def test_models_json_matches_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_modelgate.calls.catalog import load_catalog

    assert cli.main(["models", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    catalog = load_catalog()
    assert [e["model"] for e in entries] == sorted(catalog.names(), key=str.lower)
    for entry in entries:
        model = catalog.resolve(entry["model"])
        price = None if model.price is None else model.price.model_dump(mode="json")
        assert entry["price"] == price
        assert (entry["provider"], entry["api_key_env"]) == (model.provider, model.api_key_env)
    assert any(e["price"] and e["price"]["source"] and e["price"]["as_of"] for e in entries)


def test_models_json_for_an_unknown_provider_is_still_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["models", "--provider", "nope", "--json"]) == 2
    assert "no models for provider 'nope'" in capsys.readouterr().err
