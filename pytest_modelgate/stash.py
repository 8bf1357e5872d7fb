"""The plugin's per-run and per-test state: stash keys and their accessors.

One place for every ``pytest.StashKey`` the glue modules share (STYLE: state lives in the stash,
never in module globals or config attributes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.calls.client import LLM
    from pytest_modelgate.calls.records import CallRecord
    from pytest_modelgate.judge.metrics import CustomMetric
    from pytest_modelgate.markers import MarkerSet
    from pytest_modelgate.session import GateSession
    from pytest_modelgate.verdict.lock import VerdictLock


GATE_KEY = pytest.StashKey["GateSession"]()
ITEM_KEY = pytest.StashKey["ItemCalls"]()
MARKERS_KEY: pytest.StashKey[MarkerSet] = pytest.StashKey()
LOCK_KEY: pytest.StashKey[VerdictLock] = pytest.StashKey()
# The metrics plugins add (pytest_modelgate_metrics), worked out once per process.
METRICS_KEY: pytest.StashKey[tuple[CustomMetric, ...]] = pytest.StashKey()
# What a recorded attempt is handed to: None when no plugin implements the hook.
ON_RECORD_KEY: pytest.StashKey[Callable[[CallRecord], object] | None] = pytest.StashKey()

LLM_FIXTURE = "llm"
DEFAULT_VERDICT = "modelgate-verdict.json"


class ItemCalls:
    """The live client of one test item and how many of its records earlier phases took."""

    def __init__(self, client: LLM) -> None:
        self.client = client
        self.taken_calls = 0
        self.taken_fallbacks = 0
        self.taken_scores = 0
        # Problems found by the fixture itself (an unreadable cassette).
        self.problems: list[str] = []
        # Cassette openings closed at teardown, for the inventory of recordings.
        self.cassettes: list[dict[str, Any]] = []
        self.call_passed = False
        # Our clients already explained a missing recording (in more detail than a refusal).
        self.missing_reported = False


def on_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def gate_of(config: pytest.Config) -> GateSession | None:
    return config.stash.get(GATE_KEY, None)
