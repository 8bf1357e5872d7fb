"""`modelgate show` with no argument finds the verdict the project's pytest configuration names."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from pytest_modelgate.cli import main
from pytest_modelgate.config.inifile import ini_verdict_path


def _write_verdict(path: Path, reason: str) -> None:
    from pytest_modelgate.calls.records import ModelIdentity
    from pytest_modelgate.verdict.model import error_verdict, write_verdict_atomic

    now = datetime.now(timezone.utc)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_verdict_atomic(
        path,
        error_verdict(
            reason,
            run_id="0" * 32,
            stable=ModelIdentity(model="a"),
            candidate=ModelIdentity(model="b"),
            mode="replay",
            repeat=1,
            strict=False,
            started_at=now,
            finished_at=now,
            exit_status=3,
            plugin_version="0",
        ),
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("pytest.ini", "[pytest]\nmodelgate_verdict = out/gate.json\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nmodelgate_verdict = "out/gate.json"\n'),
        ("tox.ini", "[pytest]\nmodelgate_verdict = out/gate.json\n"),
        ("setup.cfg", "[tool:pytest]\nmodelgate_verdict = out/gate.json\n"),
    ],
)
def test_show_reads_the_verdict_the_ini_names(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    _write_verdict(tmp_path / "out" / "gate.json", "the ini verdict")
    # A stray default-named file must not be shown instead of the configured one.
    _write_verdict(tmp_path / "modelgate-verdict.json", "the stray default")
    sub = tmp_path / "tests"
    sub.mkdir()
    monkeypatch.chdir(sub)  # pytest finds the ini upwards from here too

    assert main(["show"]) == 3

    out = capsys.readouterr().out
    assert "the ini verdict" in out
    assert "the stray default" not in out
    assert out.splitlines()[-1] == f"verdict read from {(tmp_path / 'out' / 'gate.json')}"
    assert "written" not in out


def test_show_without_an_ini_option_reads_the_default_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -q\n", encoding="utf-8")
    _write_verdict(tmp_path / "modelgate-verdict.json", "the default verdict")
    monkeypatch.chdir(tmp_path)

    assert main(["show"]) == 3

    out = capsys.readouterr().out
    assert "the default verdict" in out
    assert "verdict written to" not in out


def test_a_pyproject_without_a_pytest_section_is_passed_over(tmp_path: Path) -> None:
    # pytest skips a pyproject.toml with no [tool.pytest.ini_options]; so does the search.
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    (tmp_path / "tox.ini").write_text("[pytest]\nmodelgate_verdict = v.json\n", encoding="utf-8")
    found = ini_verdict_path(tmp_path)
    assert found.path == (tmp_path / "v.json").resolve()
    assert found.source == tmp_path / "tox.ini"


def test_pytest_ini_wins_over_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nmodelgate_verdict = "p.json"\n', encoding="utf-8"
    )
    assert ini_verdict_path(tmp_path).path == tmp_path.resolve() / "modelgate-verdict.json"


def test_show_of_a_missing_ini_verdict_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmodelgate_verdict = gone.json\n", "utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["show"]) == 3
    assert f"no verdict file at {tmp_path.resolve() / 'gone.json'}" in capsys.readouterr().err
