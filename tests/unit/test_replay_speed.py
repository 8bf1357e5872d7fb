"""Replay shortcuts keep vcrpy's behaviour: only absent transports fail fast, only inside."""

from __future__ import annotations

import importlib
import sys
import time

import pytest

from pytest_modelgate.recording import cassettes
from pytest_modelgate.recording.cassettes import absent_imports_fail_fast


def test_absent_optional_transports_are_the_ones_not_installed() -> None:
    import importlib.util

    absent = cassettes._absent_optional_modules()
    for name in cassettes._OPTIONAL_HTTPX_MODULES:
        assert (name in absent) == (importlib.util.find_spec(name) is None)


def test_imports_of_absent_transports_fail_at_once_and_only_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cassettes, "_absent_optional_modules", lambda: ("modelgate_no_such_mod",))
    assert "modelgate_no_such_mod" not in sys.modules
    with absent_imports_fail_fast():
        started = time.perf_counter()
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("modelgate_no_such_mod")
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("modelgate_no_such_mod.sub")
        # No sys.path scan: well under what one scan of a venv's path costs.
        assert time.perf_counter() - started < 0.05
    assert "modelgate_no_such_mod" not in sys.modules


def test_a_module_someone_else_put_in_sys_modules_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = object()
    monkeypatch.setattr(cassettes, "_absent_optional_modules", lambda: ("modelgate_fake_mod",))
    monkeypatch.setitem(sys.modules, "modelgate_fake_mod", marker)  # type: ignore[arg-type]
    with absent_imports_fail_fast():
        assert sys.modules["modelgate_fake_mod"] is marker
    assert sys.modules["modelgate_fake_mod"] is marker


def test_the_mark_is_removed_when_the_block_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cassettes, "_absent_optional_modules", lambda: ("modelgate_no_such_mod",))
    seen = []

    def enter_fails() -> None:
        with absent_imports_fail_fast():
            seen.append(sys.modules["modelgate_no_such_mod"])
            raise RuntimeError("cassette enter failed")

    with pytest.raises(RuntimeError):
        enter_fails()
    assert seen == [None]
    assert "modelgate_no_such_mod" not in sys.modules


def test_installed_httpx_is_still_importable_inside() -> None:
    with absent_imports_fail_fast():
        assert importlib.import_module("httpx").HTTPTransport is not None
