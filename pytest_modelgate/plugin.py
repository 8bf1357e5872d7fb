"""The plugin pytest loads: its hooks, each a few lines that delegate to the glue's rooms.

``options`` (options and settings), ``fixture`` (``llm``), ``stash`` (state keys), ``phases`` (what
each report carries), ``verdictfile`` (lock and provisional verdict), ``controller`` (the decision,
the summary, xdist) and ``GateSession`` (``session``), which never imports pytest.

Everything heavy (httpx, the openai SDK, the judge) is imported inside the hooks that need it, so
``pytest --help`` and runs that never use ``llm`` pay almost nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_modelgate import hooks
from pytest_modelgate.controller import GateHooks, XdistController
from pytest_modelgate.fixture import llm as llm  # pytest finds fixtures in the plugin module
from pytest_modelgate.options import add_options, build_settings, verdict_path_of
from pytest_modelgate.phases import phase_json, shorten_missing_recording
from pytest_modelgate.stash import (
    DEFAULT_VERDICT,
    GATE_KEY,
    ITEM_KEY,
    LLM_FIXTURE,
    LOCK_KEY,
    MARKERS_KEY,
    METRICS_KEY,
    gate_of,
    on_worker,
)
from pytest_modelgate.verdictfile import (
    lock_failure,
    lock_verdict,
    read_git_state,
    write_error_verdict_early,
    write_provisional,
    write_provisional_part,
)

if TYPE_CHECKING:
    from pytest_modelgate.session import ArmParam, GateSession


# For `pytest --markers`; the arguments are validated at collection (pytest_modelgate.markers).
_MARKER_LINES = (
    "model_contract(json=False, schema=None, tools=None, language=None, max_output_tokens=None): "
    "what every reply of this workflow must satisfy; each check is a per-call pass/fail the gate "
    "compares between the arms, and a violation fails the test quoting the reply",
    "latency_budget(p50_ms=None, p95_ms=None, ttft_p95_ms=None, max_ratio=None): absolute "
    "latency budgets for the candidate and the ratio allowed against the stable model",
    "cost_budget(usd_per_call=None, usd_per_test=None, max_ratio=None): cost budgets for the "
    "candidate and the ratio allowed against the stable model",
    "quality(min_pass_rate=None, max_drop=None): the candidate's minimum pass rate and the drop "
    "allowed against the stable model (fractions: 0.05 = 5 points)",
    "workflow(name): group several test functions into one workflow for the gate's slices",
)
# The names alone, for the collection hook (pytest_modelgate.markers holds the same tuple;
# tests/unit/test_markers.py checks they agree): importing markers would cost an unused plugin.
_MARKER_NAMES = tuple(line.split("(", 1)[0] for line in _MARKER_LINES)


# --------------------------------------------------------------------------------------------
# options


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add the ``pytest_modelgate_*`` hook specifications."""
    pluginmanager.add_hookspecs(hooks)


# --------------------------------------------------------------------------------------------
# configure and collection


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Resolve settings and models when the run may gate; a bad configuration is a usage error.

    A run that names nothing of the gate (no option, ini value, ``MODELGATE_MODE``,
    ``modelgate.yaml`` or earlier verdict) defers all of it, and so the imports of pydantic and
    the catalog, to the first collected test that uses ``llm`` (pytest_generate_tests): a
    project that has the plugin installed but does not use it pays almost nothing.
    """
    for line in _MARKER_LINES:
        config.addinivalue_line("markers", line)
    if config.option.help:
        return
    config.pluginmanager.register(GateHooks(config), "modelgate-gate")
    if _may_gate(config):
        _start_gate(config)


def _may_gate(config: pytest.Config) -> bool:
    """Whether anything of this run asks for the gate before collection; cheap, imports nothing.

    When this is False, building the session at configure could neither fail nor write
    anything (no candidate, no earlier verdict to replace), so it may wait for a test that
    uses ``llm``. Under xdist the controller never collects: it always builds at configure.
    """
    if getattr(config.option, "dist", "no") != "no":
        return True
    if "MODELGATE_MODE" in os.environ:
        return True
    # Every option of the group (and, by the house rule, its ini twin) counts, including ones
    # added later: their dests are stable_model, candidate_model and modelgate_*.
    for dest, value in vars(config.option).items():
        if dest not in ("stable_model", "candidate_model") and not dest.startswith("modelgate_"):
            continue
        if value is not None:
            return True
        ini = dest if dest.startswith("modelgate_") else f"modelgate_{dest}"
        with contextlib.suppress(ValueError):  # an option without an ini twin
            if config.getini(ini):
                return True
    root = config.rootpath
    return any(
        path.exists() or path.is_symlink()
        for path in (root / "modelgate.yaml", root / DEFAULT_VERDICT)
    )


def _start_gate(config: pytest.Config) -> GateSession:
    """Build the run's GateSession, put it in the stash and write the provisional verdict."""
    from pytest_modelgate.errors import ModelgateError
    from pytest_modelgate.session import NETWORK_MODES, GateSession, resolve_models

    worker = on_worker(config)
    try:
        verdict_path = verdict_path_of(config)
    except ModelgateError as exc:
        # No path to write an error verdict to: writing the default one could clobber another.
        raise pytest.UsageError(f"modelgate: {exc}") from None
    try:
        settings = build_settings(config, verdict_path)
        stable, candidate = resolve_models(settings)
        gate = GateSession(
            settings=settings,
            stable=stable,
            candidate=candidate,
            is_worker=worker,
            rootdir=config.rootpath,
        )
        # A gate run (a candidate was named) must have its keys before any test runs.
        if candidate is not None and settings.mode in NETWORK_MODES:
            gate.check_api_keys()
    except ModelgateError as exc:
        message = f"modelgate: {exc}"
        if not worker:
            lock = lock_verdict(config, verdict_path)
            problem = write_error_verdict_early(
                verdict_path, f"configuration error: {exc}", gate=_requested_gate(config)
            )
            if not isinstance(lock, OSError):
                lock.release()
                del config.stash[LOCK_KEY]
            if problem:
                message += f"\nmodelgate: {problem}"
        raise pytest.UsageError(message) from None
    config.stash[GATE_KEY] = gate
    gate.invocation_args = tuple(str(a) for a in config.invocation_params.args)
    _scrub_logs_while_gated(config, gate)

    # Replace any verdict left by an earlier run at once, so that a run that dies before the end
    # can never be mistaken for a pass.
    replace_old = candidate is not None or verdict_path.exists() or verdict_path.is_symlink()
    if not worker and not config.option.collectonly and replace_old:
        # The lock first: a second run on this path must not touch the first one's verdict.
        lock = lock_verdict(config, verdict_path)
        gate.git = read_git_state(gate)
        problem = write_provisional(gate)
        if problem is None and isinstance(lock, OSError):
            # The provisional `error` is on disk; without the lock another run could race it.
            problem = lock_failure(verdict_path, lock)
        if problem is not None:
            if not isinstance(lock, OSError):
                lock.release()
                del config.stash[LOCK_KEY]
            raise pytest.UsageError(f"modelgate: {problem}")
    if not worker and not config.option.collectonly and settings.records_part is not None:
        problem = write_provisional_part(gate)
        if problem is not None:
            raise pytest.UsageError(f"modelgate: {problem}")
    hooks_plugin = config.pluginmanager.get_plugin("modelgate-gate")
    if isinstance(hooks_plugin, GateHooks):
        # Modules that failed to collect before the first test using `llm` was seen.
        gate.collection_errors.extend(hooks_plugin.pending_collection_errors)
        hooks_plugin.pending_collection_errors.clear()
    if config.pluginmanager.hasplugin("xdist") and not worker:
        config.pluginmanager.register(XdistController(gate, config), "modelgate-xdist")
    return gate


_UNDO_LOG_SCRUBBING = pytest.StashKey[Callable[[], None]]()


def pytest_unconfigure(config: pytest.Config) -> None:
    """The run is over: stop scrubbing the libraries' logs and release the verdict lock.

    The controller took the lock at configure or at the end of the run.
    """
    undo = config.stash.get(_UNDO_LOG_SCRUBBING, None)
    if undo is not None:
        del config.stash[_UNDO_LOG_SCRUBBING]
        undo()
    lock = config.stash.get(LOCK_KEY, None)
    if lock is not None:
        lock.release()
        del config.stash[LOCK_KEY]


def _requested_gate(config: pytest.Config) -> bool:
    """Whether the command line or ini asked for a candidate (for an early error's ``kind``)."""
    with contextlib.suppress(Exception):
        return (
            config.getoption("candidate_model") is not None
            or config.getini("modelgate_candidate_model") is not None
        )
    return True


def _scrub_logs_while_gated(config: pytest.Config, gate: GateSession) -> None:
    """Keep keys and raw bodies out of the logs of vcrpy, httpx, httpcore and openai.

    Their records reach ``caplog``, the report sections and ``log_cli``; removed at unconfigure.
    """
    from pytest_modelgate.redaction import redactor_for, scrub_library_logs

    config.stash[_UNDO_LOG_SCRUBBING] = scrub_library_logs(redactor_for(gate.secret_values()))


def _scrub_report(gate: GateSession, report: pytest.TestReport | pytest.CollectReport) -> None:
    """Scrub keys from what pytest prints of a report: the failure (with --showlocals, every
    frame's locals, including those of the HTTP libraries) and the captured output and logs.

    Only a report whose text holds a key changes. Its failure is scrubbed in place, keeping its
    layout and crash line (the short summary quotes it); should the rendered text still hold a
    key, the failure becomes that text, scrubbed.
    """
    if report.longrepr is None and not report.sections:
        return
    from pytest_modelgate.redaction import redactor_for

    redactor = redactor_for(gate.secret_values())
    if not redactor:
        return
    longrepr = report.longrepr
    if isinstance(longrepr, (str, tuple)):
        report.longrepr = redactor.scrub_value(longrepr)
    elif longrepr is not None:
        text = str(longrepr)
        if redactor.scrub_text(text) != text:
            redactor.scrub_fields(longrepr)
            text = str(longrepr)
            if redactor.scrub_text(text) != text:
                report.longrepr = redactor.scrub_text(text)
    report.sections = [(title, redactor.scrub_text(body)) for title, body in report.sections]


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    """A test with a modelgate marker but no ``llm`` argument uses the fixture anyway.

    The marker says the test checks a workflow; product code built on the gateway is pinned to
    the arm, recorded and judged only through the fixture. ``usefixtures`` is added to the
    function before pytest computes its fixtures (a later hook would be too late: pytest prunes
    the closure to what the function asks for). Returns None: pytest then makes the item.
    """
    if not callable(obj) or not name.startswith("test"):
        return
    own = {getattr(mark, "name", None) for mark in getattr(obj, "pytestmark", ())}
    marked = bool(own.intersection(_MARKER_NAMES)) or any(
        next(collector.iter_markers(marker), None) is not None for marker in _MARKER_NAMES
    )
    if not marked:
        return
    import inspect

    try:
        parameters = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    if LLM_FIXTURE not in parameters and "usefixtures" not in own:
        pytest.mark.usefixtures(LLM_FIXTURE)(obj)


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses ``llm`` (directly or via fixtures) by arm and repeat.

    Runs last so that the arm is the final part of the test id:
    ``test_triage[ticket-3-stable-deepseek-chat]``.
    """
    if LLM_FIXTURE not in metafunc.fixturenames:
        return
    gate = gate_of(metafunc.config) or _start_gate(metafunc.config)
    params = gate.arm_params()
    if not params:
        # No stable model: reported once, as a usage error, in pytest_collection_modifyitems.
        return
    metafunc.parametrize(LLM_FIXTURE, params, ids=[p.id for p in params], indirect=True)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Check, once the selection is final, that the tests using ``llm`` can run at all."""
    gate = gate_of(config)
    if gate is None:
        return
    gated = [item for item in items if LLM_FIXTURE in getattr(item, "fixturenames", ())]
    # The verdict's tests_digest: what was selected to be judged (the final selection).
    gate.gated_test_ids = {item.nodeid for item in gated}
    gate.tests_known = True
    if not gated:
        return
    gate.used = True
    if gate.settings.mode != "live":
        _expect_cassettes(gate, config, gated)
    from pytest_modelgate.errors import ModelgateError

    # Marker arguments first: a typo in a marker is the most specific problem to report.
    message = _parse_markers(gated) or _load_custom_metrics(config, gate)
    if message is None and gate.stable is None:
        message = (
            f"{len(gated)} selected test(s) use the `llm` fixture but no stable model is set: "
            "pass --stable-model NAME, set modelgate_stable_model in the ini file, or `stable:` "
            "in modelgate.yaml"
        )
    elif message is None and gate.settings.mode != "replay":
        try:
            gate.check_api_keys()
        except ModelgateError as exc:
            message = str(exc)
    if message is None:
        return
    # Raised after sessionstart, so sessionfinish still writes the `error` verdict: give it the
    # cause, not just "usage error".
    gate.config_errors.append(message)
    if gate.is_worker:
        # A UsageError on an xdist worker crashes the controller's scheduler. Instead each gated
        # test errors at setup with the message, and the controller learns it through
        # workeroutput (see GateHooks.pytest_sessionfinish) and exits with status 4.
        return
    raise pytest.UsageError(f"modelgate: {message}")


def _parse_markers(gated: list[pytest.Item]) -> str | None:
    """Validate the gate's markers of every gated test; the first problem, or None."""
    from pytest_modelgate.markers import MARKER_NAMES, MarkerError, parse_markers

    for item in gated:
        marks = [
            (mark.name, tuple(mark.args), dict(mark.kwargs))
            for mark in item.iter_markers()
            if mark.name in MARKER_NAMES
        ]
        try:
            item.stash[MARKERS_KEY] = parse_markers(item.nodeid, item.path, marks)
        except MarkerError as exc:
            return str(exc)
    return None


def _load_custom_metrics(config: pytest.Config, gate: GateSession) -> str | None:
    """Ask the pytest_modelgate_metrics hooks (after collection: every conftest is known)."""
    from pytest_modelgate.judge.metrics import resolve_custom_metrics

    try:
        defined = config.hook.pytest_modelgate_metrics(config=config)
        metrics = resolve_custom_metrics(
            [metric for result in defined if result for metric in result],
            gate.settings.config.gate.metrics,
        )
    except Exception as exc:
        config.stash[METRICS_KEY] = ()
        return f"pytest_modelgate_metrics: {exc}"
    config.stash[METRICS_KEY] = metrics
    return None


def _expect_cassettes(gate: GateSession, config: pytest.Config, gated: list[pytest.Item]) -> None:
    """The cassettes the selected gated tests use, for every model a run could gate."""
    from pytest_modelgate.recording.cassettes import cassette_path
    from pytest_modelgate.session import case_id_for

    # Recordings of every configured model stay, not just this run's arms: a stable-only run
    # must not declare the candidate's recordings orphans.
    models = set(gate.settings.config.models) | {name for _, name in gate.arms()}
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        gate.full_selection = False  # paths or node ids on the command line
    for item in gated:
        param: ArmParam | None = getattr(getattr(item, "callspec", None), "params", {}).get(
            LLM_FIXTURE
        )
        if param is None:
            continue
        case = case_id_for(item.nodeid, param.id)
        gate.cassette_roots.add(str(item.path.parent / "cassettes"))
        for model in models:
            path = cassette_path(item.path, case, model, repeat=param.repeat, repeats=param.repeats)
            gate.cassettes_expected.add(str(path))


def pytest_report_collectionfinish(
    config: pytest.Config, items: list[pytest.Item]
) -> list[str] | None:
    """Replay: say which models lack recordings before the first test runs, one line each.

    Under xdist the controller collects nothing; it tells the same lines from the workers' node
    ids (see XdistController.pytest_xdist_node_collection_finished).
    """
    gate = gate_of(config)
    if gate is None or gate.is_worker or gate.preflight_told:
        return None
    gated: list[tuple[Path, str, ArmParam]] = []
    for item in items:
        param = getattr(getattr(item, "callspec", None), "params", {}).get(LLM_FIXTURE)
        if param is not None:
            gated.append((item.path, item.nodeid, param))
    gate.preflight_told = True
    return gate.preflight_lines(gated) or None


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Note that the selection is partial (-k, -m): unused recordings cannot be told then."""
    if items:
        gate = gate_of(items[0].config)
        if gate is not None:
            gate.full_selection = False


# --------------------------------------------------------------------------------------------
# the fixture


# --------------------------------------------------------------------------------------------
# reports: each phase of a gated test carries its new records (this is what xdist ships)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail a gated test whose replies broke its ``model_contract``, quoting the replies."""
    __tracebackhide__ = True  # the failure is about the replies, not about this hook
    yield
    state = item.stash.get(ITEM_KEY, None)
    if state is None:
        return
    if state.client.log.hook_errors:
        # Fail closed: the call's data is incomplete (the verdict is `error` through problems).
        shown = "\n".join(f"  - {e}" for e in state.client.log.hook_errors[:5])
        pytest.fail(f"modelgate: an extension hook failed:\n{shown}", pytrace=False)
    violations = [v for record in state.client.log.records() for v in record.violations]
    if violations:
        from pytest_modelgate.errors import ContractViolation

        shown = "\n".join(f"  - {v}" for v in dict.fromkeys(violations[:5]))
        more = f"\n  ... and {len(violations) - 5} more" if len(violations) > 5 else ""
        raise ContractViolation(
            f"model {state.client.model!r} broke the model_contract "
            f"({len(violations)} violation(s)):\n{shown}{more}"
        )


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Scrub keys from a collection error's text (a conftest that quotes one, say)."""
    report: pytest.CollectReport = yield
    gate = gate_of(collector.config)
    if gate is not None:
        _scrub_report(gate, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the phase's call records and outcome to the report of every gated test."""
    report: pytest.TestReport = yield
    gate = gate_of(item.config)
    if gate is not None:
        _scrub_report(gate, report)
    param = getattr(getattr(item, "callspec", None), "params", {}).get(LLM_FIXTURE)
    if param is None or gate is None:
        return report
    if report.failed and call.excinfo is not None:
        shorten_missing_recording(report, call.excinfo.value)
    try:
        report.modelgate = phase_json(item, report, call, param)  # type: ignore[attr-defined]
    except Exception as exc:  # fail closed: a broken record makes the run `error`
        report.modelgate_problem = (  # type: ignore[attr-defined]
            f"{item.nodeid}: could not record the {report.when} phase: {exc!r}"
        )
    # Everything the test measured is on its reports now; a big suite need not keep it.
    if report.when == "teardown" and ITEM_KEY in item.stash:
        del item.stash[ITEM_KEY]
    return report


# --------------------------------------------------------------------------------------------
# the decision
