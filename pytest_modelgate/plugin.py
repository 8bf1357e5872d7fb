"""pytest glue: options, the ``llm`` fixture and hooks that delegate to ``GateSession``.

Everything heavy (httpx, the openai SDK, the judge) is imported inside the hooks that need it, so
``pytest --help`` and runs that never use ``llm`` pay almost nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_modelgate import hooks

if TYPE_CHECKING:
    from pytest_modelgate.client import LLM
    from pytest_modelgate.config import ModelgateConfig
    from pytest_modelgate.judge.allowances import Allowance
    from pytest_modelgate.judge.metrics import CustomMetric
    from pytest_modelgate.lock import VerdictLock
    from pytest_modelgate.markers import MarkerSet
    from pytest_modelgate.records import CallRecord
    from pytest_modelgate.session import ArmParam, GateSession, GateSettings

GATE_KEY = pytest.StashKey["GateSession"]()
_ITEM_KEY = pytest.StashKey["_ItemCalls"]()
_MARKERS_KEY: pytest.StashKey[MarkerSet] = pytest.StashKey()
_LOCK_KEY: pytest.StashKey[VerdictLock] = pytest.StashKey()
# The metrics plugins add (pytest_modelgate_metrics), worked out once per process.
_METRICS_KEY: pytest.StashKey[tuple[CustomMetric, ...]] = pytest.StashKey()
# What a recorded attempt is handed to: None when no plugin implements the hook.
_ON_RECORD_KEY: pytest.StashKey[Callable[[CallRecord], object] | None] = pytest.StashKey()

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

LLM_FIXTURE = "llm"
DEFAULT_VERDICT = "modelgate-verdict.json"


class _ItemCalls:
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


# --------------------------------------------------------------------------------------------
# options


# More repeats than this is a typo, not a plan: 1000 already makes every case a thousand calls.
_MAX_REPEAT = 1000


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"must be at least 1, got {number}")
    if number > _MAX_REPEAT:
        raise ValueError(f"must be at most {_MAX_REPEAT}, got {number}")
    return number


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``modelgate`` option group; every option has an ini twin."""
    group = parser.getgroup("modelgate", "pytest-modelgate: gate a model change")
    group.addoption(
        "--stable-model",
        metavar="NAME",
        default=None,
        help="model the product uses today (a catalog name or one from modelgate.yaml). "
        "ini: modelgate_stable_model",
    )
    group.addoption(
        "--candidate-model",
        metavar="NAME",
        default=None,
        help="model to compare against the stable one; every test using `llm` then runs on "
        "both. ini: modelgate_candidate_model",
    )
    group.addoption(
        "--modelgate-config",
        metavar="PATH",
        default=None,
        help="model and gate configuration (default: modelgate.yaml in the rootdir). "
        "ini: modelgate_config",
    )
    group.addoption(
        "--modelgate-verdict",
        metavar="PATH",
        default=None,
        help=f"where to write the JSON verdict (default: {DEFAULT_VERDICT} in the rootdir). "
        "ini: modelgate_verdict",
    )
    group.addoption(
        "--modelgate-repeat",
        metavar="K",
        default=None,
        help="run each test K times per arm (default 1). ini: modelgate_repeat",
    )
    group.addoption(
        "--modelgate-mode",
        metavar="MODE",
        default=None,
        help="how calls are made: replay = answer only from recordings, offline (default); "
        "record = replay what is recorded and record what is missing; rerecord = call the "
        "models and replace the recordings; live = call the models, record nothing. "
        "env: MODELGATE_MODE. ini: modelgate_mode",
    )
    group.addoption(
        "--modelgate-strict",
        action="store_true",
        default=None,
        help="also fail the run on any failed case, even one that fails on both arms. "
        "ini: modelgate_strict",
    )
    # default=None tells "not set" (None) from "set to nothing" (""): a blank value is an error.
    parser.addini("modelgate_stable_model", "stable model name (--stable-model)", default=None)
    parser.addini(
        "modelgate_candidate_model", "candidate model name (--candidate-model)", default=None
    )
    parser.addini("modelgate_config", "path of modelgate.yaml (--modelgate-config)", default=None)
    parser.addini(
        "modelgate_verdict", "path of the verdict file (--modelgate-verdict)", default=None
    )
    parser.addini("modelgate_repeat", "runs per test and arm (--modelgate-repeat)", default=None)
    parser.addini("modelgate_mode", "call mode (--modelgate-mode)", default=None)
    group.addoption(
        "--modelgate-prune",
        nargs="?",
        const="true",
        default=None,
        metavar="all|dry-run",
        help="after a full run (no -k/-m/paths, not stopped early) whose verdict is not error, "
        "delete recorded interactions no test played and cassettes of this run's models and "
        "repeats no collected test uses; =all also deletes other models' and repeats' "
        "cassettes; =dry-run only lists what would go. ini: modelgate_prune "
        "(true, false, all, dry-run)",
    )
    group.addoption(
        "--modelgate-records",
        metavar="PATH",
        default=None,
        help="also write this run's raw records, with a header saying what was run and how "
        "completely, to PATH: a shard's part for `modelgate merge PART... --verdict OUT`. "
        "ini: modelgate_records",
    )
    parser.addini(
        "modelgate_records", "path of the records part (--modelgate-records)", default=None
    )
    group.addoption(
        "--modelgate-allow",
        action="append",
        default=None,
        metavar="MARGIN=VALUE[:REASON]",
        help="widen one margin for this run, on purpose: e.g. "
        "'cost_per_call_max_ratio=12: moving to qwen-max'; repeatable; the verdict lists it "
        "under `allowances`. ini: modelgate_allow (one per line)",
    )
    parser.addini(
        "modelgate_allow",
        "margins widened on purpose, MARGIN=VALUE[:REASON] per line (--modelgate-allow)",
        type="linelist",
        default=[],
    )
    parser.addini("modelgate_strict", "fail on any failed case", type="bool", default=False)
    parser.addini(
        "modelgate_prune",
        "prune unused recordings: true, false, all, dry-run (--modelgate-prune)",
        default=None,
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add the ``pytest_modelgate_*`` hook specifications."""
    pluginmanager.add_hookspecs(hooks)


def _ini_str(config: pytest.Config, name: str) -> str | None:
    value = config.getini(name)
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return value.strip()
    from pytest_modelgate.errors import ConfigError

    # An ini value that is present but blank is a mistake (a template or variable that was never
    # filled in), not "use the default".
    raise ConfigError(f"ini option {name} is set but empty: give a value or remove the line")


def _option_str(config: pytest.Config, name: str, flag: str) -> str | None:
    """A string option from the command line; a blank one (an unset CI variable) is an error."""
    value: str | None = config.getoption(name)
    if value is None:
        return None
    if not value.strip():
        from pytest_modelgate.errors import ConfigError

        raise ConfigError(
            f"{flag} is empty (an unset CI variable?): give a name or leave the option out"
        )
    return value.strip()


def _ini_path(config: pytest.Config, name: str) -> Path | None:
    # Paths in an ini file are relative to that file's directory (as pytest does for testpaths).
    value = _ini_str(config, name)
    if value is None:
        return None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return (base / value).resolve()


def _verdict_path(config: pytest.Config) -> Path:
    # Precedence: command line (relative to the invocation directory), ini, rootdir default.
    option = _option_str(config, "modelgate_verdict", "--modelgate-verdict")
    if option:
        return (config.invocation_params.dir / option).resolve()
    return _ini_path(config, "modelgate_verdict") or config.rootpath / DEFAULT_VERDICT


def _build_settings(config: pytest.Config, verdict_path: Path) -> GateSettings:
    from pytest_modelgate.config import ModelgateConfig, find_config, load_config
    from pytest_modelgate.errors import ConfigError
    from pytest_modelgate.session import GateSettings

    explicit = _option_str(config, "modelgate_config", "--modelgate-config")
    explicit_path = (
        (config.invocation_params.dir / explicit).resolve()
        if explicit
        else _ini_path(config, "modelgate_config")
    )
    config_path = find_config(config.rootpath, explicit_path)
    file_config = load_config(config_path) if config_path else ModelgateConfig()
    # A blank name at any level is a usage error, never "no candidate": `--candidate-model
    # "$CANDIDATE"` with the variable unset would otherwise be a stable-only run that passes.
    for key in ("stable", "candidate"):
        value = getattr(file_config, key)
        if value is not None and not value.strip():
            raise ConfigError(f"{file_config.label}: `{key}:` is empty: give a model name")
    if config_path is not None:
        from pytest_modelgate.catalog import load_catalog
        from pytest_modelgate.config import check_config

        # Typos in modelgate.yaml (a stable name no catalog knows...) fail before any test.
        check_config(file_config, load_catalog())

    file_config, allowances = _allowances(config, file_config)

    # Option values are checked here rather than by argparse `type=`/`choices=`: argparse
    # rejects a value before pytest_configure runs, which would leave an earlier run's verdict
    # on disk as if it were this run's. A ConfigError here writes an `error` verdict first.
    repeat = _checked(config, "modelgate_repeat", "--modelgate-repeat", _positive_int, 1)
    # Replay is the default: a gate that calls two paid APIs on every pull request is slow,
    # costly and flaky. MODELGATE_MODE lets CI or a developer switch without editing files.
    mode = _checked(
        config, "modelgate_mode", "--modelgate-mode", _mode, "replay", env="MODELGATE_MODE"
    )

    strict = bool(config.getoption("modelgate_strict") or config.getini("modelgate_strict"))
    prune = _checked(config, "modelgate_prune", "--modelgate-prune", _prune_mode, "off")
    # Precedence for the model names: command line, ini, modelgate.yaml.
    stable = (
        _option_str(config, "stable_model", "--stable-model")
        or _ini_str(config, "modelgate_stable_model")
        or file_config.stable
    )
    candidate = (
        _option_str(config, "candidate_model", "--candidate-model")
        or _ini_str(config, "modelgate_candidate_model")
        or file_config.candidate
    )
    if candidate and not stable:
        raise ConfigError(
            f"--candidate-model {candidate} needs a stable model to compare with: pass "
            "--stable-model NAME or set `stable:` in modelgate.yaml"
        )
    records_part = _records_part(config, verdict_path)
    return GateSettings(
        records_part=records_part,
        stable=stable,
        candidate=candidate,
        mode=mode,  # type: ignore[arg-type]  # checked against MODES above
        repeat=repeat,
        strict=strict,
        prune=prune,  # type: ignore[arg-type]  # checked by _prune_mode
        verdict_path=verdict_path,
        config_path=config_path,
        config=file_config,
        allowances=allowances,
    )


def _records_part(config: pytest.Config, verdict_path: Path) -> Path | None:
    # Precedence: command line (relative to the invocation directory), ini (to its file).
    from pytest_modelgate.errors import ConfigError

    option = _option_str(config, "modelgate_records", "--modelgate-records")
    path = (
        (config.invocation_params.dir / option).resolve()
        if option
        else _ini_path(config, "modelgate_records")
    )
    records = verdict_path.with_name(f"{verdict_path.stem}.records.jsonl")
    if path is not None and path in (verdict_path, records):
        raise ConfigError(
            f"--modelgate-records {path} is the verdict or its records file: give the part "
            "its own path"
        )
    return path


def _allowances(
    config: pytest.Config, file_config: ModelgateConfig
) -> tuple[ModelgateConfig, tuple[Allowance, ...]]:
    """Apply ``modelgate_allow`` (ini) then ``--modelgate-allow``: the command line wins."""
    from pytest_modelgate.judge.allowances import apply_allowances, parse_allowance

    declared = [
        parse_allowance(line, "ini option modelgate_allow")
        for line in config.getini("modelgate_allow")
        if line.strip()
    ]
    declared += [
        parse_allowance(text, "--modelgate-allow")
        for text in config.getoption("modelgate_allow") or ()
    ]
    return apply_allowances(file_config, declared)


def _mode(value: str) -> str:
    from pytest_modelgate.session import MODES

    if value not in MODES:
        raise ValueError(f"{value!r} is not one of {', '.join(MODES)}")
    return value


_PRUNE_VALUES = {
    "true": "safe",
    "yes": "safe",
    "on": "safe",
    "1": "safe",
    "false": "off",
    "no": "off",
    "off": "off",
    "0": "off",
    "all": "all",
    "dry-run": "dry-run",
}


def _prune_mode(value: str) -> str:
    mode = _PRUNE_VALUES.get(value.strip().lower())
    if mode is None:
        # nargs="?" reads a path written after a bare --modelgate-prune as its value.
        raise ValueError(
            f"{value!r} is not one of all, dry-run (or true/false in the ini file); write the "
            "value as --modelgate-prune=VALUE, and a bare --modelgate-prune after the paths"
        )
    return mode


_T = TypeVar("_T")


def _checked(
    config: pytest.Config,
    name: str,
    flag: str,
    parse: Callable[[str], _T],
    default: _T,
    env: str | None = None,
) -> _T:
    """Parse an option, its environment variable or its ini twin, naming the source on error.

    Precedence: command line, environment variable (``env``, when the option has one), ini.
    """
    from pytest_modelgate.errors import ConfigError

    raw: str | None = config.getoption(name)
    source = flag
    if raw is None and env is not None and env in os.environ:
        raw, source = os.environ[env].strip(), f"environment variable {env}"
        if not raw:
            raise ConfigError(
                f"{source} is set but empty (an unset CI variable?): give a value or unset it"
            )
    if raw is None:
        raw, source = _ini_str(config, name), f"ini option {name}"
    if raw is None:
        return default
    try:
        return parse(str(raw))
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _gate(config: pytest.Config) -> GateSession | None:
    return config.stash.get(GATE_KEY, None)


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
    config.pluginmanager.register(_GateHooks(config), "modelgate-gate")
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

    worker = _is_worker(config)
    try:
        verdict_path = _verdict_path(config)
    except ModelgateError as exc:
        # No path to write an error verdict to: writing the default one could clobber another.
        raise pytest.UsageError(f"modelgate: {exc}") from None
    try:
        settings = _build_settings(config, verdict_path)
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
            lock = _lock_verdict(config, verdict_path)
            problem = _write_error_verdict_early(
                verdict_path, f"configuration error: {exc}", gate=_requested_gate(config)
            )
            if not isinstance(lock, OSError):
                lock.release()
                del config.stash[_LOCK_KEY]
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
        lock = _lock_verdict(config, verdict_path)
        gate.git = _git_state(gate)
        problem = _write_provisional(gate)
        if problem is None and isinstance(lock, OSError):
            # The provisional `error` is on disk; without the lock another run could race it.
            problem = _lock_failure(verdict_path, lock)
        if problem is not None:
            if not isinstance(lock, OSError):
                lock.release()
                del config.stash[_LOCK_KEY]
            raise pytest.UsageError(f"modelgate: {problem}")
    if not worker and not config.option.collectonly and settings.records_part is not None:
        problem = _write_provisional_part(gate)
        if problem is not None:
            raise pytest.UsageError(f"modelgate: {problem}")
    hooks_plugin = config.pluginmanager.get_plugin("modelgate-gate")
    if isinstance(hooks_plugin, _GateHooks):
        # Modules that failed to collect before the first test using `llm` was seen.
        gate.collection_errors.extend(hooks_plugin.pending_collection_errors)
        hooks_plugin.pending_collection_errors.clear()
    if config.pluginmanager.hasplugin("xdist") and not worker:
        config.pluginmanager.register(_XdistController(gate, config), "modelgate-xdist")
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
    lock = config.stash.get(_LOCK_KEY, None)
    if lock is not None:
        lock.release()
        del config.stash[_LOCK_KEY]


def _lock_verdict(config: pytest.Config, verdict_path: Path) -> VerdictLock | OSError:
    """Lock the verdict path for this run; a run already holding it is a usage error.

    Returns the OS error when the lock file cannot be created (a read-only directory): the
    caller first tries the verdict write, whose failure message is the clearer one, and refuses
    to run unlocked if that write succeeds.
    """
    from pytest_modelgate.lock import LockBusyError, VerdictLock

    held = config.stash.get(_LOCK_KEY, None)
    if held is not None:
        return held
    try:
        lock = VerdictLock.acquire(verdict_path)
    except LockBusyError as exc:
        owner = f"pid {exc.pid}" if exc.pid is not None else "another process"
        raise pytest.UsageError(
            f"modelgate: another run ({owner}) is writing the verdict {verdict_path}: wait for "
            "it to finish, or give this run its own --modelgate-verdict PATH"
        ) from None
    except OSError as exc:
        return exc
    config.stash[_LOCK_KEY] = lock
    return lock


def _lock_failure(verdict_path: Path, exc: OSError) -> str:
    from pytest_modelgate.lock import lock_path_for

    return (
        f"cannot create the lock file {lock_path_for(verdict_path)} for the verdict "
        f"{verdict_path}: {exc.strerror or exc}"
    )


def _git_state(gate: GateSession) -> dict[str, Any] | None:
    """The repository state of the rootdir, ignoring the gate's own output files."""
    from pytest_modelgate.lock import lock_path_for
    from pytest_modelgate.provenance import git_state

    verdict = gate.settings.verdict_path
    ignore = [verdict, gate.settings.records_path, lock_path_for(verdict)]
    if gate.settings.records_part is not None:
        ignore.append(gate.settings.records_part)
    return git_state(gate.rootdir or verdict.parent, ignore=ignore)


def _requested_gate(config: pytest.Config) -> bool:
    """Whether the command line or ini asked for a candidate (for an early error's ``kind``)."""
    with contextlib.suppress(Exception):
        return (
            config.getoption("candidate_model") is not None
            or config.getini("modelgate_candidate_model") is not None
        )
    return True


def _cannot_write(path: Path, exc: OSError, what: str) -> str:
    """The one-line usage error for a verdict that cannot be written, after discarding the old."""
    from pytest_modelgate.verdict import discard_verdict

    _done, happened = discard_verdict(path)
    reason = exc.strerror or exc.__class__.__name__
    return f"cannot write the {what} {path}: {reason}; {happened}"


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


def _write_error_verdict_early(path: Path, reason: str, *, gate: bool) -> str | None:
    """Write a configuration error's verdict; a one-line problem when it cannot be written."""
    import uuid
    from datetime import datetime, timezone

    from pytest_modelgate import __version__
    from pytest_modelgate.verdict import error_verdict, write_verdict_atomic

    now = datetime.now(timezone.utc)
    data = error_verdict(
        reason,
        run_id=uuid.uuid4().hex,
        stable=None,
        candidate=None,
        mode="live",
        repeat=1,
        strict=False,
        started_at=now,
        finished_at=now,
        exit_status=4,
        plugin_version=__version__,
        complete=True,
        kind="gate" if gate else "smoke",
    )
    try:
        write_verdict_atomic(path, data)
    except OSError as exc:
        return _cannot_write(path, exc, "error verdict")
    return None


def _write_provisional(gate: GateSession) -> str | None:
    """Put a provisional `error` over any earlier verdict; a one-line problem when impossible."""
    from pytest_modelgate.session import EXIT_ERROR as EXIT_PROVISIONAL
    from pytest_modelgate.verdict import error_verdict, write_verdict_atomic

    # If the run never gets to replace this, its meaning is an error (exit status 3).
    data = error_verdict(
        "the run has not finished: it is still running, or it was killed before the gate "
        "could decide",
        started_at=gate.started_at,
        finished_at=gate.started_at,
        exit_status=EXIT_PROVISIONAL,
        complete=False,
        **gate.verdict_common(final=False),
    )
    path = gate.settings.verdict_path
    try:
        write_verdict_atomic(path, data)
    except OSError as exc:
        # No traceback: the run could not record its verdict, so it must not run at all.
        return _cannot_write(path, exc, "verdict")
    gate.provisional_written = True
    # Records of an earlier run must not sit next to this run's verdict either.
    records = gate.settings.records_path
    try:
        records.unlink(missing_ok=True)
    except OSError as exc:
        return f"cannot remove an earlier run's records {records}: {exc.strerror or exc}"
    return None


def _write_provisional_part(gate: GateSession) -> str | None:
    """Put an incomplete part over any earlier one: a shard killed later cannot be merged."""
    from pytest_modelgate.judge.decide import write_part

    if gate.git is None:
        gate.git = _git_state(gate)
    try:
        write_part(gate, (), pytest_status=None, problems=[])
    except OSError as exc:
        return f"cannot write the records part {gate.settings.records_part}: {exc.strerror or exc}"
    return None


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize every test that uses ``llm`` (directly or via fixtures) by arm and repeat.

    Runs last so that the arm is the final part of the test id:
    ``test_triage[ticket-3-stable-deepseek-chat]``.
    """
    if LLM_FIXTURE not in metafunc.fixturenames:
        return
    gate = _gate(metafunc.config) or _start_gate(metafunc.config)
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
    gate = _gate(config)
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
        # workeroutput (see _GateHooks.pytest_sessionfinish) and exits with status 4.
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
            item.stash[_MARKERS_KEY] = parse_markers(item.nodeid, item.path, marks)
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
        config.stash[_METRICS_KEY] = ()
        return f"pytest_modelgate_metrics: {exc}"
    config.stash[_METRICS_KEY] = metrics
    return None


def _on_record(config: pytest.Config) -> Callable[[CallRecord], object] | None:
    """The pytest_modelgate_call_recorded hook as a callback, or None when nobody implements it.

    Looked up once per process, at the first test (every conftest is registered by then): replay
    runs are benchmarked, and an unextended one must not pay for a hook call per attempt.
    """
    if _ON_RECORD_KEY not in config.stash:
        hook = config.hook.pytest_modelgate_call_recorded
        config.stash[_ON_RECORD_KEY] = (
            (lambda record: hook(record=record, config=config)) if hook.get_hookimpls() else None
        )
    return config.stash[_ON_RECORD_KEY]


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


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Note that the selection is partial (-k, -m): unused recordings cannot be told then."""
    if items:
        gate = _gate(items[0].config)
        if gate is not None:
            gate.full_selection = False


# --------------------------------------------------------------------------------------------
# the fixture


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> Iterator[LLM]:
    """The model under test for this arm: ``llm.chat(messages, **params) -> Reply``.

    Every test that uses it runs once per arm (stable, and candidate when one is given) and
    ``--modelgate-repeat`` times per arm; every HTTP attempt it makes is measured and judged.
    Attributes: ``model``, ``arm``, ``base_url``, ``mode``. Methods: ``chat``, ``openai()`` (a real
    ``openai.OpenAI`` client whose calls are measured the same way), ``note_fallback(reason)``.
    """
    from pytest_modelgate.client import LLM
    from pytest_modelgate.transport import CallLog, measuring_every_client

    gate = _gate(request.config)
    if gate is not None and gate.config_errors:
        raise pytest.UsageError(f"modelgate: {gate.config_errors[0]}")
    param: ArmParam | None = getattr(request, "param", None)
    if gate is None or param is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the `llm` fixture must be requested as a test or fixture "
            "argument (it is parametrized by arm at collection), not via getfixturevalue()"
        )
    from pytest_modelgate.session import case_id_for

    model = gate.model_for(param.arm)
    test_id = request.node.nodeid
    log = CallLog(
        test_id=test_id,
        case_id=case_id_for(test_id, param.id),
        arm=param.arm,
        model=model.name,
        repeat=param.repeat,
        resolved=model,
    )
    mode = gate.settings.mode
    secrets = gate.secret_values()
    log.secrets = secrets
    markers = request.node.stash.get(_MARKERS_KEY, None)
    log.contract = markers.contract if markers is not None else None
    log.custom_metrics = request.config.stash.get(_METRICS_KEY, ())
    log.on_record = _on_record(request.config)
    client_settings = gate.settings.config.client
    client = LLM(
        model=model,
        arm=param.arm,
        api_key=gate.api_key(param.arm),
        log=log,
        max_retries=client_settings.max_retries,
        timeout_s=client_settings.timeout_s,
        deadline_s=client_settings.deadline_s,
        max_response_bytes=client_settings.max_response_bytes,
        retry_after_cap_s=client_settings.retry_after_cap_s,
        backoff_base_s=client_settings.backoff_base_s,
        # Replay must not wait: a recorded 429 or 5xx is retried at once.
        sleep=_no_sleep if mode == "replay" else time.sleep,
        mode=mode,
    )
    # The product's own httpx / httpx2 clients, measured too, are held to the same bounds.
    log.bounds = client.bounds
    state = _ItemCalls(client)
    request.node.stash[_ITEM_KEY] = state
    with contextlib.ExitStack() as stack:
        # Closed before the cassette: responses nobody read are recorded on close.
        stack.callback(client.close)
        if mode != "live":
            from pytest_modelgate.errors import ModelgateError

            opened: list[Any] = []
            # Registered first so that it runs after the cassette was saved.
            stack.callback(_note_opening, state, opened)
            try:
                recording = stack.enter_context(
                    _cassette(request, param, model.name, mode, secrets)
                )
            except ModelgateError as exc:  # an unreadable cassette: this test's data is lost
                state.problems.append(str(exc))
                raise
            opened += [recording, len(recording.cassette)]
            stack.callback(_note_refusals, state, recording, model.name)
        # After the cassette: clients the product builds are measured above vcrpy, as ours are.
        stack.enter_context(measuring_every_client(log))
        yield client


def _note_opening(state: _ItemCalls, opened: list[Any]) -> None:
    """What this test did with its cassette: which interactions it played or recorded."""
    if not opened:
        return
    recording, loaded = opened
    cassette = recording.cassette
    interactions = len(cassette)
    recorded = interactions - loaded
    played = {index for index, count in cassette.play_counts.items() if count}
    played |= set(range(interactions - recorded, interactions))
    state.cassettes.append(
        {
            "path": str(recording.path),
            "interactions": interactions,
            "played": sorted(played),
            # A test that did not pass may not have reached its later calls.
            "complete": state.call_passed,
        }
    )


def _note_refusals(state: _ItemCalls, recording: Any, model: str) -> None:
    """Calls replay refused that no client reported (the product may have caught the error)."""
    if recording.refusals and not (state.missing_reported or state.client.log.problems):
        calls = ", ".join(dict.fromkeys(recording.refusals))
        state.problems.append(
            f"no recording for {len(recording.refusals)} call(s) to model {model!r} in "
            f"{recording.path} ({calls}); record with --modelgate-mode=record"
        )


def _no_sleep(seconds: float) -> None:
    """Replay's wait between retries: none."""


def _cassette(
    request: pytest.FixtureRequest, param: ArmParam, model: str, mode: str, secrets: tuple[str, ...]
) -> contextlib.AbstractContextManager[Any]:
    """The test's cassette for ``model`` (keyed by model, not arm), to open in ``mode``."""
    from pytest_modelgate.recording.cassettes import cassette_path
    from pytest_modelgate.recording.use import recorded_calls
    from pytest_modelgate.session import case_id_for

    path = cassette_path(
        request.node.path,
        case_id_for(request.node.nodeid, param.id),
        model,
        repeat=param.repeat,
        repeats=param.repeats,
    )
    return recorded_calls(path=path, mode=mode, secrets=secrets, test_id=request.node.nodeid)


# --------------------------------------------------------------------------------------------
# reports: each phase of a gated test carries its new records (this is what xdist ships)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail a gated test whose replies broke its ``model_contract``, quoting the replies."""
    __tracebackhide__ = True  # the failure is about the replies, not about this hook
    yield
    state = item.stash.get(_ITEM_KEY, None)
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
    gate = _gate(collector.config)
    if gate is not None:
        _scrub_report(gate, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the phase's call records and outcome to the report of every gated test."""
    report: pytest.TestReport = yield
    gate = _gate(item.config)
    if gate is not None:
        _scrub_report(gate, report)
    param = getattr(getattr(item, "callspec", None), "params", {}).get(LLM_FIXTURE)
    if param is None or gate is None:
        return report
    if report.failed and call.excinfo is not None:
        _shorten_missing_recording(report, call.excinfo.value)
    try:
        report.modelgate = _phase_json(item, report, call, param)  # type: ignore[attr-defined]
    except Exception as exc:  # fail closed: a broken record makes the run `error`
        report.modelgate_problem = (  # type: ignore[attr-defined]
            f"{item.nodeid}: could not record the {report.when} phase: {exc!r}"
        )
    # Everything the test measured is on its reports now; a big suite need not keep it.
    if report.when == "teardown" and _ITEM_KEY in item.stash:
        del item.stash[_ITEM_KEY]
    return report


def _shorten_missing_recording(report: pytest.TestReport, exc: BaseException) -> None:
    """A test that failed for want of a recording says so in a few lines, no traceback.

    The summary tells the count per model and the command once; a traceback per test through
    the client and vcrpy would bury it (a repeat run printed thousands of lines).
    """
    from pytest_modelgate.recording.use import MissingRecordingError, is_missing_recording

    if not is_missing_recording(exc):
        return
    current: BaseException | None = exc
    while current is not None and not isinstance(current, MissingRecordingError):
        current = current.__cause__ or current.__context__
    text = str(current) if current is not None else f"{type(exc).__name__}: {exc}"
    # The whole message: for a request that changed it is the diff against the recording.
    report.longrepr = text.strip() or "no recording for a call in replay"


def _phase_json(
    item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None], param: ArmParam
) -> dict[str, Any]:
    from pytest_modelgate.session import TestPhase, case_id_for

    state = item.stash.get(_ITEM_KEY, None)
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

        gate = _gate(item.config)
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
    markers = item.stash.get(_MARKERS_KEY, None)
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


# --------------------------------------------------------------------------------------------
# the decision


class _GateHooks:
    """Hooks that need the gate but get no config argument; registered at configure time.

    The gate itself may be built later (see pytest_configure): until then every hook but
    pytest_collectreport has nothing to do.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        # Collection errors seen before the gate was built; it takes them over when it is.
        self.pending_collection_errors: list[str] = []

    @property
    def gate(self) -> GateSession:
        gate = _gate(self.config)
        assert gate is not None  # every caller checked _gate() first
        return gate

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Remember modules that failed to collect: their cases never ran on either arm."""
        if not report.failed or _is_worker(self.config):
            return
        gate = _gate(self.config)
        errors = self.pending_collection_errors if gate is None else gate.collection_errors
        errors.append(report.nodeid or "<rootdir>")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """On the controller, fold each phase report into the session (once per phase)."""
        if _gate(self.config) is None or self.gate.is_worker:
            return
        problem = getattr(report, "modelgate_problem", None)
        if problem is not None:
            self.gate.problems.append(problem)
        data = getattr(report, "modelgate", None)
        if data is None:
            return
        from pytest_modelgate.session import TestPhase

        try:
            self.gate.receive(TestPhase.from_json(data))
        except Exception as exc:
            self.gate.problems.append(f"{report.nodeid}: unreadable gate record: {exc!r}")
        # The session holds the phase now; pytest keeps every report until the end of the run.
        del report.modelgate

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Judge, write the verdict atomically and set the exit status (controller only)."""
        if _gate(self.config) is None:
            return  # no test used `llm` and nothing asked for the gate: nothing to say
        if self.gate.is_worker:
            # Worker-level facts travel in workeroutput; per-test records ride on the reports.
            workeroutput: dict[str, Any] = self.config.workeroutput  # type: ignore[attr-defined]
            workeroutput["modelgate"] = {
                "used": self.gate.used,
                "config_errors": list(self.gate.config_errors),
                "cassettes_expected": sorted(self.gate.cassettes_expected),
                "cassette_roots": sorted(self.gate.cassette_roots),
                "full_selection": self.gate.full_selection,
                "gated_test_ids": sorted(self.gate.gated_test_ids),
                "tests_known": self.gate.tests_known,
                # The controller collects nothing: it judges the plugins' metrics from these.
                "custom_metrics": [m.definition() for m in self.config.stash.get(_METRICS_KEY, ())],
            }
            return
        if self.config.option.collectonly:
            return
        if not self.gate.provisional_written and (
            self.gate.used or self.gate.config_errors or self.gate.candidate is not None
        ):
            # A run that wrote nothing at configure (a smoke run, no earlier verdict) locks the
            # path now, before it writes; if another run holds it, this one writes nothing.
            path = self.gate.settings.verdict_path
            try:
                lock = _lock_verdict(self.config, path)
            except pytest.UsageError as exc:
                self.gate.lock_problem = str(exc)
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
                return
            if isinstance(lock, OSError):
                self.gate.lock_problem = f"modelgate: {_lock_failure(path, lock)}"
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
                return
            if self.gate.git is None:
                self.gate.git = _git_state(self.gate)
        from pytest_modelgate.judge.decide import finish

        self.gate.verdict_hooks = tuple(
            impl.plugin_name for impl in self.config.hook.pytest_modelgate_verdict.get_hookimpls()
        )
        self.gate.custom_metrics = tuple(m.name for m in self.config.stash.get(_METRICS_KEY, ()))
        # Missing recordings are one reason per model, however many tests lacked them.
        for reason in self.gate.missing_recording_reasons():
            if reason not in self.gate.problems:
                self.gate.problems.append(reason)
        outcome = finish(
            self.gate,
            pytest_status=int(exitstatus),
            stopped_early=bool(session.shouldstop or session.shouldfail),
            judge=lambda: (
                self.config.hook.pytest_modelgate_judge(config=self.config)
                or _judge_with_custom_metrics(self.config, self.gate)
            ),
            amend=lambda verdict: self.config.hook.pytest_modelgate_verdict(
                config=self.config, verdict=verdict
            ),
        )
        if outcome is not None:
            session.exitstatus = outcome
        if self.gate.settings.mode != "live" and self.gate.cassettes_played:
            complete = int(exitstatus) in (0, 1) and not (session.shouldstop or session.shouldfail)
            verdict = self.gate.verdict.get("verdict") if self.gate.verdict else None
            self.gate.inventory_lines = _recordings_inventory(
                self.gate,
                full=complete and self.gate.full_selection,
                judged=verdict not in (None, "error"),
                rootdir=self.config.rootpath,
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the comparison table, the verdict and where it was written."""
        if _gate(self.config) is None:
            return
        if self.gate.lock_problem is not None:
            terminalreporter.section("modelgate")
            terminalreporter.write_line(f"{self.gate.lock_problem}; no verdict written")
            return
        if self.gate.verdict is None:
            return
        from pytest_modelgate.report import summary_lines

        terminalreporter.section("modelgate")
        lines = summary_lines(
            self.gate.verdict,
            verdict_path=self.gate.settings.verdict_path,
            written=self.gate.verdict_written,
            # The terminal's width (COLUMNS when set), 100 when output is not a terminal.
            width=max(shutil.get_terminal_size((100, 24)).columns, 60),
        )
        for line in lines:
            terminalreporter.write_line(line)
        if os.environ.get("GITHUB_ACTIONS"):
            from pytest_modelgate.reports import github_lines

            # Annotations go to stdout at the start of a line, where the runner reads them.
            for line in github_lines(self.gate.verdict, self.gate.settings.verdict_path):
                terminalreporter.write_line(line)
        if self.gate.inventory_lines:
            terminalreporter.write_line("recordings:")
            for line in self.gate.inventory_lines:
                terminalreporter.write_line(f"  {line}")


def _judge_with_custom_metrics(config: pytest.Config, gate: GateSession) -> Any:
    """The built-in judge comparing the plugins' metrics too; None when there are none."""
    metrics = config.stash.get(_METRICS_KEY, ())
    if not metrics:
        return None
    from pytest_modelgate.judge.decide import default_judge
    from pytest_modelgate.judge.paired import PairedJudge

    judge = default_judge(gate.settings.config.gate)
    return judge.with_metrics(metrics) if isinstance(judge, PairedJudge) else judge


def _recordings_inventory(
    gate: GateSession, *, full: bool, judged: bool, rootdir: Path
) -> list[str]:
    """Summarise recordings this run did not use; prune them when asked and the run allows it.

    A prune needs a full run (only it shows what is unused) that the gate judged (``judged``:
    the verdict is not ``error``, so the tests ran as they were meant to).
    """
    from pytest_modelgate.errors import ModelgateError
    from pytest_modelgate.recording.inventory import PlayedCassette, PruneScope, take_inventory
    from pytest_modelgate.recording.inventory import prune as prune_recordings

    mode = gate.settings.prune
    played = [
        PlayedCassette(
            path=Path(c["path"]),
            interactions=int(c["interactions"]),
            played=frozenset(int(i) for i in c["played"]),
            complete=bool(c["complete"]),
        )
        for c in gate.cassettes_played
    ]
    # Only a full run can say a cassette is an orphan; otherwise judge just what was opened.
    expected = [Path(p) for p in gate.cassettes_expected] if full else [c.path for c in played]
    roots = [Path(r) for r in gate.cassette_roots] if full else []
    # A plain prune never deletes another model's recordings or a larger repeat count's.
    scope = (
        PruneScope.everything()
        if mode == "all"
        else PruneScope(
            models=frozenset(name for _, name in gate.arms()), repeats=gate.settings.repeat
        )
    )
    try:
        inventory = take_inventory(played, expected=expected, roots=roots)
        lines = inventory.summary(scope, rootdir, can_prune=full)
        if mode == "dry-run":
            lines += inventory.dry_run_lines(scope, rootdir)
            lines.append("--modelgate-prune=dry-run: nothing was removed")
        elif mode != "off" and not inventory.within(scope).clean:
            if not full:
                lines.append(
                    "--modelgate-prune: nothing removed, only a full run (no -k/-m/paths, not "
                    "stopped early) shows which recordings are unused"
                )
            elif not judged:
                lines.append(
                    "--modelgate-prune: nothing removed, the verdict is error: recordings are "
                    "pruned only after a run the gate could judge"
                )
            else:
                lines += prune_recordings(inventory, scope).lines(rootdir)
    except ModelgateError as exc:
        lines = [f"could not take the inventory of recordings: {exc}"]
    return lines


class _XdistController:
    """Hooks that exist only when pytest-xdist is installed, registered on the controller."""

    def __init__(self, gate: GateSession, config: pytest.Config) -> None:
        self.gate = gate
        self.config = config

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: object | None) -> None:
        """Merge the worker's facts; one that went down with an error leaves the run incomplete."""
        facts = getattr(node, "workeroutput", {}).get("modelgate")
        if facts:
            self.gate.used = self.gate.used or bool(facts.get("used"))
            for message in facts.get("config_errors", ()):
                if message not in self.gate.config_errors:
                    self.gate.config_errors.append(message)
            self.gate.cassettes_expected.update(facts.get("cassettes_expected", ()))
            self.gate.cassette_roots.update(facts.get("cassette_roots", ()))
            if not facts.get("full_selection", True):
                self.gate.full_selection = False
            # Every worker collects the whole selection: the union is the selection.
            self.gate.gated_test_ids.update(facts.get("gated_test_ids", ()))
            self.gate.tests_known = self.gate.tests_known or bool(facts.get("tests_known"))
            self._merge_custom_metrics(facts.get("custom_metrics") or [])
        if error is not None:
            gateway = getattr(node, "gateway", None)
            name = getattr(gateway, "id", None) or str(node)
            self.gate.problems.append(f"xdist worker {name} crashed: {error}")

    def _merge_custom_metrics(self, definitions: list[dict[str, Any]]) -> None:
        """Every worker asks the same hooks: the first that defined metrics gives them."""
        from pytest_modelgate.judge.metrics import CustomMetric

        if not definitions:
            return
        known = self.config.stash.get(_METRICS_KEY, ())
        if not known:
            self.config.stash[_METRICS_KEY] = tuple(
                CustomMetric.from_definition(d) for d in definitions
            )
        elif [m.definition() for m in known] != definitions:
            self.gate.problems.append(
                "xdist workers disagree on the metrics pytest_modelgate_metrics defines: "
                "the values they recorded cannot be compared"
            )
