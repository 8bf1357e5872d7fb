"""The gate's markers, validated at collection into keyword-only frozen dataclasses.

Markers and their arguments::

    @pytest.mark.model_contract(json=True, schema=..., tools=[...], language="match",
                                max_output_tokens=400)
    @pytest.mark.latency_budget(p50_ms=..., p95_ms=..., ttft_p95_ms=..., max_ratio=1.3)
    @pytest.mark.cost_budget(usd_per_call=..., usd_per_test=..., max_ratio=1.2)
    @pytest.mark.quality(min_pass_rate=0.9, max_drop=0.05)
    @pytest.mark.workflow("refunds")

The plugin hands :func:`parse_markers` the ``(name, args, kwargs)`` of a test's marks, closest
first, and turns a :class:`MarkerError` into ``pytest.UsageError``. Every message names the test
id, the marker with the offending argument, and what is wrong with it::

    tests/test_x.py::test_a: @pytest.mark.latency_budget(p95_ms=-3): p95_ms must be a number > 0

This module never imports pytest. pydantic, jsonschema and the records module are imported only
when a marker needs them, so registering the markers (``MARKER_HELP``) costs nothing.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_modelgate.calls.langdetect import _SCRIPT_LANGUAGE, LATIN_LANGUAGES

if TYPE_CHECKING:
    import pydantic

    from pytest_modelgate.calls.records import Budgets

__all__ = [
    "MARKER_HELP",
    "MARKER_NAMES",
    "SUPPORTED_LANGUAGES",
    "CostBudget",
    "LatencyBudget",
    "MarkerError",
    "MarkerSet",
    "ModelContract",
    "Quality",
    "marker_lines",
    "parse_markers",
]

MARKER_NAMES: tuple[str, ...] = (
    "model_contract",
    "latency_budget",
    "cost_budget",
    "quality",
    "workflow",
)

# Signatures shown by `pytest --markers`; the help line of each marker follows its signature.
_SIGNATURES: dict[str, str] = {
    "model_contract": "model_contract(json=False, schema=None, tools=None, language=None, "
    "max_output_tokens=None)",
    "latency_budget": "latency_budget(p50_ms=None, p95_ms=None, ttft_p95_ms=None, max_ratio=None)",
    "cost_budget": "cost_budget(usd_per_call=None, usd_per_test=None, max_ratio=None)",
    "quality": "quality(min_pass_rate=None, max_drop=None)",
    "workflow": "workflow(name)",
}

MARKER_HELP: dict[str, str] = {
    "model_contract": "every reply must be JSON / match a JSON Schema (dict, .json path or "
    "pydantic model) / call only the listed tools / be in a language ('match' = the prompt's) "
    "/ stay within max_output_tokens.",
    "latency_budget": "candidate latency limits in ms (p50, p95, time to first token p95) and "
    "the largest candidate/stable ratio (>= 1).",
    "cost_budget": "candidate cost limits in USD per call and per test, and the largest "
    "candidate/stable ratio (>= 1).",
    "quality": "the candidate's lowest pass rate and largest pass-rate drop versus stable, as "
    "fractions in [0, 1] (0.05 = 5 points).",
    "workflow": "the workflow this test belongs to in the verdict (default: the test function's "
    "name).",
}

# Every code calls.langdetect.detect_language can return: the Latin-script stop-word
# languages, zh/ja (Han and kana) and one language per other script.
SUPPORTED_LANGUAGES: frozenset[str] = frozenset(
    (*LATIN_LANGUAGES, "zh", "ja", *_SCRIPT_LANGUAGE.values())
)

_CONTRACT_ARGS = ("json", "schema", "tools", "language", "max_output_tokens")
_LATENCY_ARGS = ("p50_ms", "p95_ms", "ttft_p95_ms", "max_ratio")
_COST_ARGS = ("usd_per_call", "usd_per_test", "max_ratio")
_QUALITY_ARGS = ("min_pass_rate", "max_drop")
_WORKFLOW_ARGS = ("name",)

_SHOW_LIMIT = 80
# The largest ratio margin a marker may give, as in modelgate.yaml (beyond it: a typo).
_MAX_RATIO = 1000.0


class MarkerError(ValueError):
    """A gate marker with an unknown, mistyped or impossible argument (a usage error)."""


@dataclass(frozen=True, kw_only=True)
class ModelContract:
    """What every reply of a test must satisfy (``@pytest.mark.model_contract``).

    A ``schema`` implies ``json``. ``schema`` is always the JSON Schema (for a pydantic model its
    ``model_json_schema()``); ``schema_model`` is the model class when one was given, and replies
    are then validated with it. ``tools=()`` means the reply may call no tool at all.
    """

    json: bool = False
    # Not part of the hash: a dict is unhashable, and schema_source identifies it anyway.
    schema: Mapping[str, Any] | None = field(default=None, hash=False)
    schema_model: type[pydantic.BaseModel] | None = None
    # "inline", the resolved path of the .json file, or "pydantic:ClassName".
    schema_source: str | None = None
    tools: tuple[str, ...] | None = None
    # "match" (the language of the last user message) or an ISO 639-1 code.
    language: str | None = None
    max_output_tokens: int | None = None


@dataclass(frozen=True, kw_only=True)
class LatencyBudget:
    """Latency limits (``@pytest.mark.latency_budget``): absolute ms bind the candidate,
    ``max_ratio`` bounds candidate/stable."""

    p50_ms: float | None = None
    p95_ms: float | None = None
    ttft_p95_ms: float | None = None
    max_ratio: float | None = None


@dataclass(frozen=True, kw_only=True)
class CostBudget:
    """Cost limits (``@pytest.mark.cost_budget``): absolute USD bind the candidate,
    ``max_ratio`` bounds candidate/stable."""

    usd_per_call: float | None = None
    usd_per_test: float | None = None
    max_ratio: float | None = None


@dataclass(frozen=True, kw_only=True)
class Quality:
    """Pass-rate limits (``@pytest.mark.quality``) as fractions: ``max_drop=0.05`` is 5 points."""

    min_pass_rate: float | None = None
    max_drop: float | None = None


@dataclass(frozen=True, kw_only=True)
class MarkerSet:
    """Everything a test's gate markers say; ``None`` where no marker says anything."""

    contract: ModelContract | None = None
    latency: LatencyBudget | None = None
    cost: CostBudget | None = None
    quality: Quality | None = None
    workflow: str | None = None

    def budgets(self) -> Budgets | None:
        """The latency, cost and quality limits as a :class:`~.calls.records.Budgets`.

        ``None`` when none of ``latency_budget``, ``cost_budget`` and ``quality`` is set.
        """
        if self.latency is None and self.cost is None and self.quality is None:
            return None
        from pytest_modelgate.calls.records import Budgets

        latency = self.latency or LatencyBudget()
        cost = self.cost or CostBudget()
        quality = self.quality or Quality()
        return Budgets(
            latency_p50_ms=latency.p50_ms,
            latency_p95_ms=latency.p95_ms,
            ttft_p95_ms=latency.ttft_p95_ms,
            latency_max_ratio=latency.max_ratio,
            cost_usd_per_call=cost.usd_per_call,
            cost_usd_per_test=cost.usd_per_test,
            cost_max_ratio=cost.max_ratio,
            min_pass_rate=quality.min_pass_rate,
            max_pass_rate_drop=quality.max_drop,
        )


def marker_lines() -> tuple[str, ...]:
    """One ``"signature: help"`` line per marker.

    The plugin registers each with ``config.addinivalue_line("markers", line)``.
    """
    return tuple(f"{_SIGNATURES[name]}: {MARKER_HELP[name]}" for name in MARKER_NAMES)


# --------------------------------------------------------------------------------------------
# Argument checking


def _show(value: Any) -> str:
    """A short rendering of an argument value for an error message."""
    if isinstance(value, type):
        return value.__qualname__
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = repr(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


@dataclass(frozen=True)
class _Call:
    """One marker application being parsed; builds the error messages that name it."""

    test_id: str
    marker: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    def error(self, problem: str, *names: str) -> MarkerError:
        """An error about the keyword arguments ``names`` (all shown with their values)."""
        shown = ", ".join(f"{name}={_show(self.kwargs[name])}" for name in names)
        return self.raw_error(shown, problem)

    def raw_error(self, shown: str, problem: str) -> MarkerError:
        """An error whose argument list is already rendered."""
        return MarkerError(f"{self.test_id}: @pytest.mark.{self.marker}({shown}): {problem}")

    def check_names(self, valid: tuple[str, ...], *, positional: int = 0) -> None:
        """Reject unknown keywords and more positional arguments than ``positional``."""
        unknown = [name for name in self.kwargs if name not in valid]
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            raise self.error(
                f"unknown argument{plural} {', '.join(unknown)}; valid arguments: "
                f"{', '.join(valid)}",
                *unknown,
            )
        if len(self.args) > positional:
            shown = ", ".join(_show(arg) for arg in self.args)
            if positional == 0:
                problem = f"takes no positional arguments; use keywords: {', '.join(valid)}"
            else:
                problem = f"takes at most {positional} positional argument, got {len(self.args)}"
            raise self.raw_error(shown, problem)

    def nothing_set(self, valid: tuple[str, ...]) -> MarkerError:
        """The error for a marker that sets no limit at all."""
        shown = ", ".join(f"{name}={_show(value)}" for name, value in self.kwargs.items())
        return self.raw_error(shown, f"sets nothing; give at least one of {', '.join(valid)}")

    def number(
        self, name: str, *, above: float, inclusive: bool = False, at_most: float | None = None
    ) -> float | None:
        """The float value of ``name`` (``None`` when absent), which must be finite, exceed
        ``above`` (or equal it when ``inclusive``) and not exceed ``at_most`` when given."""
        value = self.kwargs.get(name)
        if value is None:
            return None
        bound = f">= {above:g}" if inclusive else f"> {above:g}"
        if at_most is not None:
            bound += f" and <= {at_most:g}"
        # bool is an int subclass, but True is not a budget.
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.error(f"{name} must be a number {bound}, got {type(value).__name__}", name)
        number = _finite_float(value)
        if (
            number is None
            or number < above
            or (number == above and not inclusive)
            or (at_most is not None and number > at_most)
        ):
            raise self.error(f"{name} must be a number {bound}", name)
        return number

    def fraction(self, name: str) -> float | None:
        """The value of ``name`` (``None`` when absent), a number in [0, 1]."""
        value = self.kwargs.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.error(
                f"{name} must be a fraction in [0, 1], got {type(value).__name__}", name
            )
        number = _finite_float(value)
        if number is None or not 0.0 <= number <= 1.0:
            number = math.inf if number is None else number
            hint = f" ({number / 100:g}, not {number:g})" if 1.0 < number <= 100.0 else ""
            raise self.error(f"{name} must be a fraction in [0, 1]{hint}", name)
        return number


def _finite_float(value: numbers.Real) -> float | None:
    """``value`` as a float, or ``None`` when it is not finite (an int too large for a float)."""
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------------------------
# model_contract


def _canonical_schema(call: _Call, value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain-JSON copy of an inline schema (so later mutation of the original cannot leak in)."""
    try:
        copied = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise call.error(f"schema must be JSON-serialisable: {exc}", "schema") from None
    if not isinstance(copied, dict):  # a Mapping that json dumped as something else
        raise call.error("schema must be a JSON object", "schema")
    return copied


def _schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why ``schema`` is not a valid draft 2020-12 JSON Schema, or ``None`` when it is."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        message = exc.message if len(exc.message) <= 160 else exc.message[:159] + "…"
        return f"not a valid JSON Schema at {exc.json_path}: {message}"
    return None


def _schema_from_file(
    call: _Call, value: str | os.PathLike[str], test_path: Path
) -> tuple[dict[str, Any], str]:
    """The schema held by a ``.json`` file (relative to the test file's directory)."""
    raw = os.fspath(value)
    if not raw.strip():
        raise call.error("schema must not be an empty path", "schema")
    path = Path(raw)
    if not path.is_absolute():
        path = test_path.parent / path
    path = path.resolve()
    if not path.is_file():
        raise call.error(f"schema file {path} does not exist", "schema")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise call.error(f"cannot read schema file {path}: {exc}", "schema") from None
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise call.error(f"schema file {path} is not valid JSON: {exc}", "schema") from None
    if not isinstance(loaded, dict):
        raise call.error(f"schema file {path} must hold a JSON object", "schema")
    problem = _schema_problem(loaded)
    if problem is not None:
        raise call.error(f"schema file {path}: {problem}", "schema")
    return loaded, str(path)


def _schema_from_model(call: _Call, model: type[pydantic.BaseModel]) -> tuple[dict[str, Any], str]:
    """The JSON Schema pydantic generates for ``model``."""
    try:
        schema = model.model_json_schema()
    except Exception as exc:  # pydantic raises several unrelated types for ungeneratable schemas
        raise call.error(
            f"cannot build a JSON Schema from {model.__qualname__}: {exc}", "schema"
        ) from None
    return schema, f"pydantic:{model.__qualname__}"


def _parse_schema(
    call: _Call, test_path: Path
) -> tuple[dict[str, Any] | None, type[pydantic.BaseModel] | None, str | None]:
    """``(schema, schema_model, schema_source)`` for the ``schema`` argument."""
    value = call.kwargs.get("schema")
    if value is None:
        return None, None, None
    if isinstance(value, (str, os.PathLike)):
        schema, source = _schema_from_file(call, value, test_path)
        return schema, None, source
    if isinstance(value, Mapping):
        schema = _canonical_schema(call, value)
        problem = _schema_problem(schema)
        if problem is not None:
            raise call.error(f"schema is {problem}", "schema")
        return schema, None, "inline"
    import pydantic

    if isinstance(value, type) and issubclass(value, pydantic.BaseModel):
        schema, source = _schema_from_model(call, value)
        return schema, value, source
    if isinstance(value, pydantic.BaseModel):
        raise call.error(
            f"schema must be the pydantic model class {type(value).__qualname__}, not an instance",
            "schema",
        )
    raise call.error(
        "schema must be a dict (JSON Schema), a path to a .json file or a pydantic BaseModel "
        f"subclass, got {type(value).__name__}",
        "schema",
    )


def _parse_tools(call: _Call) -> tuple[str, ...] | None:
    value = call.kwargs.get("tools")
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise call.error(f"tools must be a list of tool names, got {type(value).__name__}", "tools")
    names: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise call.error(f"tools must hold non-empty strings, got {_show(item)}", "tools")
        if item not in names:
            names.append(item)
    return tuple(names)


def _parse_language(call: _Call) -> str | None:
    value = call.kwargs.get("language")
    if value is None:
        return None
    supported = ", ".join(sorted(SUPPORTED_LANGUAGES))
    if not isinstance(value, str):
        raise call.error(
            f"language must be 'match' or a language code ({supported}), "
            f"got {type(value).__name__}",
            "language",
        )
    if value != "match" and value not in SUPPORTED_LANGUAGES:
        hint = " (codes are lower case)" if value.lower() in SUPPORTED_LANGUAGES else ""
        raise call.error(
            f"language must be 'match' or a supported language code{hint}: {supported}",
            "language",
        )
    return value


def _parse_contract(call: _Call, test_path: Path) -> ModelContract:
    call.check_names(_CONTRACT_ARGS)
    json_flag = call.kwargs.get("json")
    if json_flag is not None and not isinstance(json_flag, bool):
        raise call.error(f"json must be True or False, got {type(json_flag).__name__}", "json")
    max_tokens = call.kwargs.get("max_output_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise call.error("max_output_tokens must be a whole number >= 1", "max_output_tokens")
    schema, schema_model, schema_source = _parse_schema(call, test_path)
    if schema is not None and json_flag is False:
        raise call.error("json=False contradicts schema (a schema implies json)", "json", "schema")
    contract = ModelContract(
        json=bool(json_flag) or schema is not None,
        schema=schema,
        schema_model=schema_model,
        schema_source=schema_source,
        tools=_parse_tools(call),
        language=_parse_language(call),
        max_output_tokens=max_tokens,
    )
    if contract == ModelContract():
        raise call.nothing_set(_CONTRACT_ARGS)
    return contract


# --------------------------------------------------------------------------------------------
# Budgets, quality and workflow


def _parse_latency(call: _Call, _test_path: Path) -> LatencyBudget:
    call.check_names(_LATENCY_ARGS)
    budget = LatencyBudget(
        p50_ms=call.number("p50_ms", above=0),
        p95_ms=call.number("p95_ms", above=0),
        ttft_p95_ms=call.number("ttft_p95_ms", above=0),
        max_ratio=call.number("max_ratio", above=1, inclusive=True, at_most=_MAX_RATIO),
    )
    if budget == LatencyBudget():
        raise call.nothing_set(_LATENCY_ARGS)
    if budget.p50_ms is not None and budget.p95_ms is not None and budget.p50_ms > budget.p95_ms:
        raise call.error("p50_ms cannot exceed p95_ms", "p50_ms", "p95_ms")
    return budget


def _parse_cost(call: _Call, _test_path: Path) -> CostBudget:
    call.check_names(_COST_ARGS)
    budget = CostBudget(
        usd_per_call=call.number("usd_per_call", above=0),
        usd_per_test=call.number("usd_per_test", above=0),
        max_ratio=call.number("max_ratio", above=1, inclusive=True, at_most=_MAX_RATIO),
    )
    if budget == CostBudget():
        raise call.nothing_set(_COST_ARGS)
    return budget


def _parse_quality(call: _Call, _test_path: Path) -> Quality:
    call.check_names(_QUALITY_ARGS)
    quality = Quality(
        min_pass_rate=call.fraction("min_pass_rate"), max_drop=call.fraction("max_drop")
    )
    if quality == Quality():
        raise call.nothing_set(_QUALITY_ARGS)
    return quality


def _parse_workflow(call: _Call, _test_path: Path) -> str:
    call.check_names(_WORKFLOW_ARGS, positional=1)
    if call.args and "name" in call.kwargs:
        shown = f"{_show(call.args[0])}, name={_show(call.kwargs['name'])}"
        raise call.raw_error(shown, "give the name once, positionally or as name=")
    if call.args:
        value, shown = call.args[0], _show(call.args[0])
    elif "name" in call.kwargs:
        value, shown = call.kwargs["name"], f"name={_show(call.kwargs['name'])}"
    else:
        raise call.raw_error("", 'name is required, e.g. @pytest.mark.workflow("refunds")')
    if not isinstance(value, str) or not value.strip():
        raise call.raw_error(shown, "name must be a non-empty string")
    return value


_PARSERS: dict[str, Callable[[_Call, Path], Any]] = {
    "model_contract": _parse_contract,
    "latency_budget": _parse_latency,
    "cost_budget": _parse_cost,
    "quality": _parse_quality,
    "workflow": _parse_workflow,
}

# MarkerSet field per marker name.
_FIELDS: dict[str, str] = {
    "model_contract": "contract",
    "latency_budget": "latency",
    "cost_budget": "cost",
    "quality": "quality",
    "workflow": "workflow",
}


def parse_markers(
    test_id: str,
    test_path: Path,
    marks: Sequence[tuple[str, tuple[Any, ...], Mapping[str, Any]]],
) -> MarkerSet:
    """Validate a test's gate markers into a :class:`MarkerSet`.

    ``marks`` are ``(name, args, kwargs)`` closest first (function, then class, then module);
    for each marker name only the closest application counts, the others are neither merged nor
    validated. Marks that are not gate markers are ignored. ``test_path`` is the test file: a
    relative ``schema`` path is resolved against its directory.

    Raises :class:`MarkerError` naming ``test_id``, the marker and the argument.
    """
    values: dict[str, Any] = {}
    for name, args, kwargs in marks:
        parser = _PARSERS.get(name)
        if parser is None or _FIELDS[name] in values:
            continue
        values[_FIELDS[name]] = parser(_Call(test_id, name, tuple(args), kwargs), test_path)
    return MarkerSet(**values)
