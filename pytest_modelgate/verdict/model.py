"""The verdict file: building it from a ``Judgement``, validating it, writing it atomically.

Pure: no pytest. The verdict is a JSON-compatible dict in a fixed, human-readable key order,
validated against ``data/verdict.schema.json`` (JSON Schema draft 2020-12, shipped with the package)
before it is written. ``docs/verdict.md`` documents every field.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from pytest_modelgate.calls.records import ModelIdentity
from pytest_modelgate.errors import ModelgateError
from pytest_modelgate.judge.metrics import ArmMetrics
from pytest_modelgate.judge.model import CaseRef, Judgement, MetricComparison, Regression
from pytest_modelgate.verdict.provenance import empty_provenance

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "VerdictValidationError",
    "build_verdict",
    "discard_verdict",
    "dump_verdict",
    "error_verdict",
    "load_schema",
    "read_verdict",
    "validate_verdict",
    "write_verdict_atomic",
]

SCHEMA_VERSION = "2"
_SCHEMA_RESOURCE = "data/verdict.schema.json"
# What kind of run wrote the verdict. gate: a candidate was compared with the stable model; smoke:
# the stable model alone (never a deployment approval). Kept in step with the schema's enum.
KINDS: tuple[str, ...] = ("gate", "smoke", "shadow")


class VerdictValidationError(ModelgateError, ValueError):
    """A verdict that does not match the shipped schema; ``problems`` lists ``path: message``."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"verdict does not match schema version {SCHEMA_VERSION}:\n{lines}")

    def __reduce__(self) -> tuple[type[VerdictValidationError], tuple[tuple[str, ...]]]:
        return (type(self), (self.problems,))


def load_schema() -> dict[str, Any]:
    """The verdict JSON Schema shipped with the package (a fresh copy on every call)."""
    loaded: dict[str, Any] = json.loads(_schema_text())
    return loaded


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return resources.files("pytest_modelgate").joinpath(_SCHEMA_RESOURCE).read_text("utf-8")


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    # No check_schema here: the shipped schema is checked by the unit tests (test_verdict), and
    # checking it again on every run cost more than validating the verdicts themselves.
    return Draft202012Validator(load_schema())


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _describe(error: ValidationError) -> str:
    # anyOf errors say only "is not valid under any of the given schemas"; the sub-error that got
    # deepest into the instance names the field that is actually wrong ("$.candidate.model"),
    # where the alternative that failed on the type alone ("is not of type 'null'") would not.
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    message = error.message
    if len(message) > 200:
        message = message[:197] + "..."
    return f"{_json_path(error)}: {message}"


def validate_verdict(data: Mapping[str, Any]) -> None:
    """Check ``data`` against the shipped schema; raise ``VerdictValidationError`` listing paths."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise VerdictValidationError(dict.fromkeys(_describe(error) for error in errors))


def _timestamp(moment: datetime | float) -> str:
    """ISO 8601 in UTC with millisecond precision: ``2025-11-25T22:18:03.120Z``."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            # A naive time could be local or UTC; guessing would shift the record by hours.
            raise ValueError(f"timestamp {moment!r} has no time zone")
        moment = moment.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(moment, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _significant(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def _round_value(unit: str, value: float | None) -> float | None:
    """Round a metric value so the file stays readable; non-finite numbers become null."""
    if value is None or not math.isfinite(value):
        return None
    if unit == "rate":
        return round(value, 6)
    if unit in ("ms", "tokens"):
        return round(value, 1)
    if unit == "usd":
        return _significant(value, 8)
    return _significant(value, 6)


def _round_change(change_kind: str, value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3) if change_kind == "points" else round(value, 4)


def _identity(model: ModelIdentity | None) -> dict[str, Any] | None:
    if model is None:
        return None
    return {"model": model.model, "provider": model.provider, "base_url": model.base_url}


def _metric(comparison: MetricComparison, label: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {} if label is None else {"label": label}
    return entry | {
        "unit": comparison.unit,
        "stable": _round_value(comparison.unit, comparison.stable),
        "candidate": _round_value(comparison.unit, comparison.candidate),
        "change": _round_change(comparison.change_kind, comparison.change),
        "change_kind": comparison.change_kind,
        "limit": comparison.limit,
        "limit_value": _round_change(comparison.change_kind, comparison.limit_value),
        "status": comparison.status,
        "samples": {
            "stable": comparison.samples.stable,
            "candidate": comparison.samples.candidate,
        },
        "message": comparison.message,
        "scope": comparison.scope,
        "n": comparison.n,
        "stable_interval": _interval(comparison.unit, comparison.stable_interval),
        "candidate_interval": _interval(comparison.unit, comparison.candidate_interval),
        "change_interval": _change_interval(comparison.change_kind, comparison.change_interval),
        "test": comparison.test,
        "p_value": _probability(comparison.p_value),
        "p_adjusted": _probability(comparison.p_adjusted),
        "min_detectable_change": _round_change(
            comparison.change_kind, comparison.min_detectable_change
        ),
        "cases_needed": comparison.cases_needed,
        "repeats_needed": comparison.repeats_needed,
    }


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def _interval(unit: str, interval: tuple[float, float] | None) -> list[float | None] | None:
    if interval is None:
        return None
    return [_round_value(unit, _finite(v)) for v in interval]


def _change_interval(kind: str, interval: tuple[float, float] | None) -> list[float | None] | None:
    if interval is None:
        return None
    return [_round_change(kind, _finite(v)) for v in interval]


def _probability(value: float | None) -> float | None:
    value = _finite(value)
    return None if value is None else _significant(value, 6)


def _regression(regression: Regression, units: Mapping[str, str]) -> dict[str, Any]:
    unit = units.get(regression.metric, "number")
    return {
        "metric": regression.metric,
        "scope": regression.scope,
        "stable": _round_value(unit, regression.stable),
        "candidate": _round_value(unit, regression.candidate),
        "limit": regression.limit,
        "message": regression.message,
    }


def _outcomes(arm: ArmMetrics) -> dict[str, int]:
    return {"passed": arm.passed, "failed": arm.failed, "skipped": arm.skipped, "error": arm.error}


def _cases(cases: Iterable[CaseRef]) -> list[dict[str, Any]]:
    from pytest_modelgate.verdict.reports.cases import natural_key

    # Natural order (case-2 before case-10), as every case list people read.
    ordered = sorted(cases, key=lambda case: (natural_key(case.case_id), case.repeat))
    return [{"case_id": case.case_id, "repeat": case.repeat} for case in ordered]


def _envelope(
    *,
    verdict: str,
    reasons: Iterable[str],
    run_id: str,
    stable: ModelIdentity | None,
    candidate: ModelIdentity | None,
    mode: str,
    repeat: int,
    strict: bool,
    regressions: list[dict[str, Any]],
    metrics: dict[str, Any],
    tests: dict[str, Any] | None,
    exit_status: int,
    started_at: datetime | float,
    finished_at: datetime | float,
    plugin_version: str,
    complete: bool,
    kind: str | None,
    provenance: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if kind is None:
        # Without a candidate nothing was compared: a smoke run, whatever its verdict.
        kind = "smoke" if candidate is None else "gate"
    # This order is the order people read the file in: what was decided and why, about what,
    # with which evidence, then bookkeeping.
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "verdict": verdict,
        "kind": kind,
        "complete": complete,
        "reasons": list(reasons),
        "stable": _identity(stable),
        "candidate": _identity(candidate),
        "mode": mode,
        "repeat": repeat,
        "strict": strict,
        "regressions": regressions,
        "metrics": metrics,
        "tests": tests,
        "exit_status": exit_status,
        "started_at": _timestamp(started_at),
        "finished_at": _timestamp(finished_at),
        "provenance": {**empty_provenance(), **dict(provenance or {})},
        "plugin_version": plugin_version,
        "records_file": None,
        "slices": {},
        "rollout": None,
    }


def build_verdict(
    judgement: Judgement,
    *,
    run_id: str,
    stable: ModelIdentity,
    candidate: ModelIdentity | None,
    mode: str,
    repeat: int,
    strict: bool,
    started_at: datetime | float,
    finished_at: datetime | float,
    exit_status: int,
    plugin_version: str,
    complete: bool = True,
    kind: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    metric_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The verdict dict for a judged run (not validated here: ``write_verdict_atomic`` does).

    ``started_at``/``finished_at`` are aware datetimes or seconds since the epoch. Floats are
    rounded for reading: rates to 6 decimals, ms and tokens to 0.1, USD to 8 significant digits,
    point changes to 0.001 and ratios to 0.0001. ``kind`` defaults to ``gate`` with a candidate
    and ``smoke`` without; ``provenance`` (see ``verdict.provenance``) to all nulls.
    ``metric_labels`` names plugins' metrics for people (``CustomMetric.label``); a metric with
    a label carries it as ``label`` (built-in metrics have none: readers know their names).
    """
    labels = metric_labels or {}
    units = {comparison.name: comparison.unit for comparison in judgement.metrics}
    tests = {
        "stable": _outcomes(judgement.stable),
        "candidate": None if judgement.candidate is None else _outcomes(judgement.candidate),
        "cases_failed_both": _cases(judgement.cases_failed_both),
        "cases_failed_candidate_only": _cases(judgement.cases_failed_candidate_only),
        "cases_failed_stable_only": _cases(judgement.cases_failed_stable_only),
    }
    envelope = _envelope(
        verdict=judgement.verdict,
        reasons=judgement.reasons,
        run_id=run_id,
        stable=stable,
        candidate=candidate,
        mode=mode,
        repeat=repeat,
        strict=strict,
        regressions=[_regression(r, units) for r in judgement.regressions],
        metrics={
            comparison.name: _metric(comparison, labels.get(comparison.name))
            for comparison in judgement.metrics
            if comparison.scope == "overall"
        },
        tests=tests,
        exit_status=exit_status,
        started_at=started_at,
        finished_at=finished_at,
        plugin_version=plugin_version,
        complete=complete,
        kind=kind,
        provenance=provenance,
    )
    slices: dict[str, dict[str, Any]] = {}
    for comparison in judgement.metrics:
        if comparison.scope != "overall":
            slices.setdefault(comparison.scope, {})[comparison.name] = _metric(
                comparison, labels.get(comparison.name)
            )
    envelope["slices"] = slices
    envelope["rollout"] = None if judgement.rollout is None else dict(judgement.rollout)
    return envelope


def error_verdict(
    reason: str,
    *,
    run_id: str,
    stable: ModelIdentity | None,
    candidate: ModelIdentity | None,
    mode: str,
    repeat: int,
    strict: bool,
    started_at: datetime | float,
    finished_at: datetime | float,
    exit_status: int,
    plugin_version: str,
    complete: bool = True,
    kind: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A verdict of ``error``: the gate could not judge (no metrics, no test summary)."""
    return _envelope(
        verdict="error",
        reasons=[reason],
        run_id=run_id,
        stable=stable,
        candidate=candidate,
        mode=mode,
        repeat=repeat,
        strict=strict,
        regressions=[],
        metrics={},
        tests=None,
        exit_status=exit_status,
        started_at=started_at,
        finished_at=finished_at,
        plugin_version=plugin_version,
        complete=complete,
        kind=kind,
        provenance=provenance,
    )


def dump_verdict(data: Mapping[str, Any]) -> str:
    """The verdict as the file holds it: indented UTF-8 JSON in the dict's order, newline-ended."""
    # allow_nan=False: NaN and Infinity are not JSON; a consumer's parser would reject the file.
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_verdict_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Validate ``data`` and write it to ``path`` atomically (see :func:`write_text_atomic`)."""
    validate_verdict(data)
    write_text_atomic(path, dump_verdict(data))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating parent directories.

    Readers see either the old file or the complete new one, never a partial write: the text goes
    to a temporary file in the same directory (so ``os.replace`` stays on one file system), is
    fsynced, then renamed over ``path``. On any failure the temporary file is removed and an
    existing file at ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed explicitly before os.replace
        mode="w",
        encoding="utf-8",
        dir=path.parent,
        prefix=f".{path.name}.",
        suffix=".tmp",
        delete=False,
    )
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # NamedTemporaryFile creates the file 0600; a verdict is a CI artifact others must read.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise
    _fsync_directory(path.parent)


def discard_verdict(path: Path) -> tuple[bool, str]:
    """Make sure a file at ``path`` can no longer be read as a verdict; (done, what happened).

    Tried in order: remove it; empty it in place (a read-only directory may still hold a
    writable file, and an empty file is no verdict). ``done`` is False when a file that may be an
    earlier run's verdict is still there as it was.
    """
    path = Path(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return True, "there is no earlier verdict there"
    except OSError:
        pass
    else:
        return True, "the earlier verdict there was removed"
    if path.is_dir():
        return True, "it is a directory, so there is no earlier verdict there either"
    try:
        with open(path, "w", encoding="utf-8"):
            pass
    except OSError:
        return False, (
            "the earlier verdict there could not be removed or emptied either: it is NOT this "
            "run's verdict"
        )
    return True, "the earlier verdict there was emptied (it could not be removed)"


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened this way on Windows.
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_verdict(path: Path) -> dict[str, Any]:
    """Load and validate a verdict file written by ``write_verdict_atomic``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise VerdictValidationError([f"$: expected a JSON object, got {type(data).__name__}"])
    validate_verdict(data)
    return data
