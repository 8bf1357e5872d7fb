"""The README's 30-second example, run exactly as written, prints what the README shows.

The files come from the README's code blocks (``# path`` first lines, ``$ cat FILE`` listings);
the simulator runs on a free port instead of 8900 (the only substitution in the files). The
commands are the README's: record with the key, then replay without it. The printed summary is
compared with the README's block after normalising what legitimately varies between runs: the
measured milliseconds (and figures derived from them), the table's column padding, and the
project's path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_modelgate.simulator import SimulatorServer, load_scenario

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("## A 30-second example", 1)[1].split("\n## ", 1)[0]


def _blocks(section: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w*)\n(.*?)\n```", section, re.DOTALL)


def _files(section: str) -> dict[str, str]:
    """Every file the example shows: code blocks headed by ``# path``, and ``$ cat`` listings."""
    files: dict[str, str] = {}
    for _, body in _blocks(section):
        first, _, rest = body.partition("\n")
        if re.fullmatch(r"# [\w./]+\.(py|ini)", first):
            files[first[2:]] = rest + "\n"
    console = next(body for lang, body in _blocks(section) if lang == "console")
    for match in re.finditer(r"^\$ cat (\S+)\n(.*?)(?=^\$ )", console, re.DOTALL | re.MULTILINE):
        files[match.group(1)] = match.group(2)
    return files


def _commands(section: str) -> list[str]:
    console = next(body for lang, body in _blocks(section) if lang == "console")
    return [
        line[2:].split("#", 1)[0].strip()
        for line in console.splitlines()
        if line.startswith("$ ") and not line.startswith("$ cat ")
    ]


def _shown_summary(section: str) -> list[str]:
    marker = "and the terminal summary shows"
    after = section.split(marker, 1)[1]
    body = next(b for lang, b in _blocks(after) if lang == "text")
    return body.splitlines()


def _normal(line: str) -> str:
    line = re.sub(r"verdict written to \S+", "verdict written to PATH", line)
    line = re.sub(r"\d[\d,.]* ms\b", "N ms", line)
    if "latency" in line or "rollback if" in line or "ttft" in line:
        line = re.sub(r"\d[\d,.]*", "N", line)
    if line.startswith("|"):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if all(set(cell) <= {"-"} for cell in cells):
            return "|---|"
        return "| " + " | ".join(cells) + " |"
    return line


def _flat(lines: list[str]) -> str:
    return " ".join(" ".join(_normal(line) for line in lines).split())


def test_the_readme_example_prints_what_the_readme_shows(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = _section()
    files = _files(section)
    assert set(files) == {
        "support_desk/triage.py",
        "tests/test_triage.py",
        "pytest.ini",
        "scenario.yaml",
        "modelgate.yaml",
    }, sorted(files)
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (pytester.path / "support_desk" / "__init__.py").write_text("", encoding="utf-8")
    scenario = load_scenario(pytester.path / "scenario.yaml")
    commands = _commands(section)
    assert commands == [
        "modelgate simulate --port 8900 --scenario scenario.yaml &",
        "SIM_KEY=sim-key pytest --candidate-model simulated-candidate --modelgate-mode=record",
        "pytest --candidate-model simulated-candidate",
    ]
    monkeypatch.delenv("MODELGATE_MODE", raising=False)  # the README relies on the default
    with SimulatorServer(scenario, port=0) as sim:
        config = pytester.path / "modelgate.yaml"
        config.write_text(
            config.read_text(encoding="utf-8").replace(
                "http://127.0.0.1:8900/v1", sim.base_url.rstrip("/")
            ),
            encoding="utf-8",
        )
        assert sim.base_url.rstrip("/") in config.read_text(encoding="utf-8")
        env, _, record = commands[1].partition(" pytest ")
        name, _, value = env.partition("=")
        monkeypatch.setenv(name, value)
        recorded = pytester.runpytest_subprocess(*record.split())
        assert recorded.ret == 0, recorded.stdout.str()
    monkeypatch.delenv(name)
    replayed = pytester.runpytest_subprocess(*commands[2].split()[1:], "-p", "no:randomly")

    assert replayed.ret == 0
    # Whitespace collapsed: wrapped lines break where the terminal's width and the figures' widths
    # put them, which is not what the README is about.
    printed = _flat(replayed.stdout.lines)
    shown = _shown_summary(section)
    assert len(shown) > 10
    position = 0
    for chunk in "\n".join(shown).split("\n...\n"):
        wanted = _flat(chunk.splitlines())
        found = printed.find(wanted, position)
        if found < 0:
            pytest.fail(
                f"README block not printed (in this order):\n{wanted}\n\nprinted:\n"
                + "\n".join(replayed.stdout.lines)
            )
        position = found + len(wanted)
