"""Find the verdict path a project's pytest configuration names, without starting pytest.

``modelgate show`` with no argument must print the verdict the project's own ``pytest`` run wrote,
so it reads ``modelgate_verdict`` from the same file pytest would: the first of ``pytest.ini``,
``.pytest.ini``, ``pyproject.toml`` (``[tool.pytest.ini_options]``), ``tox.ini`` (``[pytest]``)
and ``setup.cfg`` (``[tool:pytest]``) that holds a pytest section, searched from the directory
upwards, as pytest does when no file or argument is given. Pure: no pytest import.
"""

from __future__ import annotations

import configparser
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_VERDICT", "IniVerdict", "ini_verdict_path"]

DEFAULT_VERDICT = "modelgate-verdict.json"
_OPTION = "modelgate_verdict"


@dataclass(frozen=True)
class IniVerdict:
    """Where the verdict is, and which file said so (None: the default name in ``start``)."""

    path: Path
    source: Path | None


def _cfg_section(path: Path, section: str) -> dict[str, object] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError, OSError):
        return None
    if not parser.has_section(section):
        return None
    return dict(parser.items(section))


def _pyproject(path: Path) -> dict[str, object] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return None
        options = data.get("tool", {}).get("pytest", {}).get("ini_options")
        return options if isinstance(options, dict) else None
    return _pyproject_by_lines(text)  # pragma: no cover - Python 3.10 has no tomllib


def _pyproject_by_lines(text: str) -> dict[str, object] | None:
    """Python 3.10: the table's simple ``key = "value"`` lines, enough for a path option."""
    options: dict[str, object] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            if options is not None:
                break
            if line.replace(" ", "") == "[tool.pytest.ini_options]":
                options = {}
            continue
        if options is not None and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            options[key.strip()] = value.strip().strip("'\"")
    return options


def _pytest_options(directory: Path) -> tuple[Path, dict[str, object]] | None:
    """The pytest options of the first configuration file in ``directory``, in pytest's order."""
    for name in ("pytest.ini", ".pytest.ini"):
        path = directory / name
        if path.is_file():
            # pytest takes a pytest.ini even without a [pytest] section.
            return path, _cfg_section(path, "pytest") or {}
    candidates: tuple[tuple[str, str | None], ...] = (
        ("pyproject.toml", None),
        ("tox.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
    )
    for name, section in candidates:
        path = directory / name
        if not path.is_file():
            continue
        options: dict[str, object] | None = (
            _pyproject(path) if section is None else _cfg_section(path, section)
        )
        if options is not None:
            return path, options
    return None


def ini_verdict_path(start: Path) -> IniVerdict:
    """The verdict file ``pytest`` run from ``start`` would write (command-line options aside).

    The value is relative to the configuration file's directory, as the plugin reads it; with
    no configuration file, or none naming ``modelgate_verdict``, the default name next to the
    configuration file (pytest's rootdir) or in ``start``.
    """
    start = start.resolve()
    for directory in (start, *start.parents):
        found = _pytest_options(directory)
        if found is None:
            continue
        path, options = found
        value = options.get(_OPTION)
        if isinstance(value, str) and value.strip():
            return IniVerdict((path.parent / value.strip()).resolve(), path)
        return IniVerdict(path.parent / DEFAULT_VERDICT, None)
    return IniVerdict(start / DEFAULT_VERDICT, None)
