"""Reading the project's YAML files (modelgate.yaml, simulator scenarios, the catalog).

Shared so that every file fails the same way: a ``ModelgateError`` subclass whose message names the
file, the line of a YAML syntax error, or the field path of a validation error. Safe loading only;
duplicate keys are errors and dates stay strings. This module never imports pytest.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from re import Pattern
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ValidationError

from pytest_modelgate.errors import ModelgateError

# The C loader is several times faster; the pure-Python one behaves the same.
_BaseSafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_FLOAT_TAG = "tag:yaml.org,2002:float"

# YAML 1.1 (PyYAML) reads a float only with a dot and a signed exponent, so `1e5` and `1.0e300`
# would be strings; YAML 1.2 and every JSON reader call them numbers. This adds the exponent
# forms 1.1 misses (`1e5`, `1.0e300`, `.5e-3`); plain integers and `.inf` resolve as before.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _UniqueKeyLoader(_BaseSafeLoader):  # type: ignore[misc, valid-type]
    """Safe loader that rejects duplicate mapping keys (PyYAML silently keeps the last one).

    It also reads dates as plain strings: ``as_of: 2026-11-15`` is a label, not a ``date``, and
    would otherwise fail validation of a ``str`` field; and exponent floats without a dot or an
    exponent sign (``1e5``, ``1.0e300``) as numbers, as YAML 1.2 does.
    """

    yaml_implicit_resolvers: ClassVar[dict[Any, list[tuple[str, Pattern[str]]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
        + ([(_FLOAT_TAG, _EXPONENT_FLOAT)] if str(first) in tuple("+-.0123456789") else [])
        for first, resolvers in _BaseSafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]


def load_yaml(text: str) -> Any:
    """Parse YAML safely; duplicate keys are errors and dates stay strings.

    Raises ``yaml.YAMLError`` on bad input.
    """
    # Safe: the loader derives from (C)SafeLoader and only adds a duplicate-key check.
    return yaml.load(text, Loader=_UniqueKeyLoader)


def yaml_error_location(exc: yaml.YAMLError) -> str:
    """``":LINE"`` (1-based) for a YAML error that knows where it happened, else ``""``."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return ""
    return f":{mark.line + 1}"


def yaml_error_problem(exc: yaml.YAMLError) -> str:
    """The short reason of a YAML error, without PyYAML's multi-line source excerpt."""
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if problem and context:
        return f"{context}: {problem}"
    if problem:
        return str(problem)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model class found by following an error location from ``root``."""
    current: Any = root
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            # A dict value, tuple or list item: descend into the item type, whatever the key.
            args = typing.get_args(current)
            if not args:
                return None
            current = args[-1] if typing.get_origin(current) is dict else args[0]
    current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _short_repr(value: Any) -> str | None:
    if isinstance(value, (str, int, float, bool)) or value is None:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return None


def describe_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One short ``"field.path: problem"`` line per pydantic error, in pydantic's order.

    Unknown fields get a "did you mean" from the fields the model at that place accepts.
    """
    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            message = "unknown field"
            parent = _model_at(root, loc[:-1])
            if parent is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                if close:
                    message += f", did you mean {close[0]!r}?"
                else:
                    message += f" (allowed: {', '.join(parent.model_fields)})"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            shown = _short_repr(error.get("input"))
            if kind != "missing" and not kind.startswith("value_error") and shown is not None:
                message += f" (got {shown})"
        path = _format_loc(loc)
        lines.append(f"{path}: {message}" if path else message)
    return lines


def read_yaml_file(path: Path, error: type[ModelgateError]) -> Any:
    """Read and parse a YAML file; any problem raises ``error`` naming the file (and line).

    An empty file (or one holding only comments) reads as an empty mapping.
    """
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{label}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise error(f"{label}: cannot read the file: {exc.strerror or exc}") from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        location = yaml_error_location(exc)
        raise error(f"{label}{location}: invalid YAML: {yaml_error_problem(exc)}") from exc
    return {} if data is None else data
