"""What each phase's report carries: the test's new records as JSON (what xdist ships to the
controller), and the short form of a missing recording's failure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.session import ArmParam
from pytest_modelgate.stash import ITEM_KEY, MARKERS_KEY, gate_of


def shorten_missing_recording(report: pytest.TestReport, exc: BaseException) -> None:
    """A test that failed for want of a recording says so in a few lines, no traceback.

    The summary tells the count per model and the command once; a traceback per test through
    the client and vcrpy would bury it (a repeat run printed thousands of lines).
    """
    from pytest_modelgate.recording.use import (
        NO_CASSETTE_FILE,
        MissingRecordingError,
        is_missing_recording,
    )

    if not is_missing_recording(exc):
        return
    current: BaseException | None = exc
    while current is not None and not isinstance(current, MissingRecordingError):
        current = current.__cause__ or current.__context__
    text = (str(current) if current is not None else f"{type(exc).__name__}: {exc}").strip()
    first = text.splitlines()[0] if text else ""
    if first.endswith(NO_CASSETTE_FILE):
        # Told per model before the tests ran, with the command: one line per test is enough.
        report.longrepr = first
        return
    # The whole message: for a request that changed it is the diff against the recording.
    report.longrepr = text or "no recording for a call in replay"


def phase_json(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None], param: ArmParam
) -> dict[str, Any]:
    from pytest_modelgate.session import TestPhase, case_id_for

    state = item.stash.get(ITEM_KEY, None)
    calls: tuple[Any, ...] = ()
    fallbacks: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()
    problems: list[str] = []
    cassettes: tuple[dict[str, Any], ...] = ()
    missing: tuple[str, ...] = ()
    if state is not None:
        records = state.client.log.records()
        calls = records[state.taken_calls :]
        state.taken_calls = len(records)
        noted = state.client.fallbacks
        fallbacks = tuple(noted[state.taken_fallbacks :])
        state.taken_fallbacks = len(noted)
        scored = state.client.scores
        scores = scored[state.taken_scores :]
        state.taken_scores = len(scored)
        if state.client.log.problems:
            state.missing_reported = True
        problems = list(dict.fromkeys([*state.problems, *state.client.log.problems]))
        missing = _missing_recording(item, param, problems, call)
        if missing:
            # Counted per model at the end (GateSession.missing_recording_reasons), not told
            # once per test: a suite without its recordings would repeat it thousands of times.
            from pytest_modelgate.recording.use import MISSING_PREFIX

            problems = [p for p in problems if not p.startswith(MISSING_PREFIX)]
        state.problems.clear()
        state.client.log.problems.clear()
        cassettes = tuple(state.cassettes)
        state.cassettes.clear()
        if report.when == "call":
            state.call_passed = report.passed
    message = None
    if report.failed and call.excinfo is not None:
        from pytest_modelgate.redaction import redactor_for

        gate = gate_of(item.config)
        secrets = gate.secret_values() if gate is not None else ()
        if state is not None:
            secrets = (*secrets, *state.client.log.secrets)
        # The failure text lands in the records file: no key in it (vcrpy quotes URLs). Scrubbed
        # whole first, then cut: a key across the cut would otherwise leave its prefix.
        text = redactor_for(tuple(dict.fromkeys(secrets))).scrub_text(call.excinfo.exconly())
        lines = text.strip().splitlines()
        message = lines[0][:300] if lines else ""
    outcome = "skipped" if report.skipped else ("failed" if report.failed else "passed")
    if hasattr(report, "wasxfail"):
        outcome = "skipped"  # an expected failure decides nothing about the model
    markers = item.stash.get(MARKERS_KEY, None)
    workflow = (markers.workflow if markers is not None else None) or (
        getattr(item, "originalname", None) or item.name
    )
    phase = TestPhase(
        test_id=item.nodeid,
        case_id=case_id_for(item.nodeid, param.id),
        workflow=workflow,
        arm=param.arm,
        model=param.model,
        repeat=param.repeat,
        when=report.when,
        outcome=outcome,  # type: ignore[arg-type]
        duration_s=report.duration,
        calls=calls,
        fallbacks=fallbacks,
        message=message,
        problems=tuple(problems),
        cassettes=cassettes,
        scores=scores,
        budgets=markers.budgets() if markers is not None else None,
        missing_recordings=missing,
    )
    return phase.to_json()


def _missing_recording(
    item: pytest.Item,
    param: ArmParam,
    problems: list[str],
    call: pytest.CallInfo[None],
) -> tuple[str, ...]:
    """The test's cassette file, when replay could not answer one of its calls; else ()."""
    from pytest_modelgate.recording.use import MISSING_PREFIX, is_missing_recording

    refused = any(p.startswith(MISSING_PREFIX) for p in problems)
    if not refused and not (call.excinfo is not None and is_missing_recording(call.excinfo.value)):
        return ()
    from pytest_modelgate.recording.cassettes import cassette_path
    from pytest_modelgate.session import case_id_for

    path = cassette_path(
        item.path,
        case_id_for(item.nodeid, param.id),
        param.model,
        repeat=param.repeat,
        repeats=param.repeats,
    )
    try:
        shown = str(path.relative_to(item.config.rootpath))
    except ValueError:
        shown = str(path)
    return (shown,)
