"""The plugin's options and ini values: registration, validation and the settings they make.

Precedence, where the merge happens (``build_settings``): command line, then ini, then
``modelgate.yaml``, then the defaults. Bad values are ``pytest.UsageError``s naming the option.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest

if TYPE_CHECKING:
    from pytest_modelgate.config.settings import ModelgateConfig
    from pytest_modelgate.judge.allowances import Allowance
    from pytest_modelgate.session import GateSettings
from pytest_modelgate.stash import DEFAULT_VERDICT

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


def add_options(parser: pytest.Parser) -> None:
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


def verdict_path_of(config: pytest.Config) -> Path:
    # Precedence: command line (relative to the invocation directory), ini, rootdir default.
    option = _option_str(config, "modelgate_verdict", "--modelgate-verdict")
    if option:
        return (config.invocation_params.dir / option).resolve()
    return _ini_path(config, "modelgate_verdict") or config.rootpath / DEFAULT_VERDICT


def build_settings(config: pytest.Config, verdict_path: Path) -> GateSettings:
    from pytest_modelgate.config.settings import ModelgateConfig, find_config, load_config
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
        from pytest_modelgate.calls.catalog import load_catalog
        from pytest_modelgate.config.settings import check_config

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
