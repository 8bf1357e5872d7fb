"""Declared intended changes: a margin widened for one run, on purpose, and said so in the verdict.

A deliberate move to a pricier model (deepseek-chat to qwen-max costs about 10x on list prices)
fails the default ``cost_per_call_max_ratio`` of x1.15 however good the candidate is. Editing
``modelgate.yaml`` for one rollout hides the decision in a diff; ``--modelgate-allow
cost_per_call_max_ratio=12`` (or the ini option ``modelgate_allow``) widens the margin for this
run only, and the verdict's ``allowances`` list records it for the reviewer. Pure: no pytest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from pytest_modelgate.config.settings import GateLimits, ModelgateConfig
from pytest_modelgate.errors import ConfigError

__all__ = ["Allowance", "allowance_json", "apply_allowances", "margin_names", "parse_allowance"]

_MARGIN_SUFFIXES = ("_max_ratio", "_max_drop", "_max_rise")
# A value that turns the margin off: the metric is reported, not gated.
_OFF = frozenset({"none", "null", "off"})


def margin_names() -> tuple[str, ...]:
    """The margins an allowance may set: the ``gate:`` fields that bound a change."""
    return tuple(name for name in GateLimits.model_fields if name.endswith(_MARGIN_SUFFIXES))


@dataclass(frozen=True)
class Allowance:
    """One margin set for this run: its new value, why, and where it was declared."""

    margin: str
    value: float | None
    reason: str | None
    source: str
    # The margin it replaced (modelgate.yaml's or the built-in default); set when applied.
    was: float | None = None


def parse_allowance(text: str, source: str) -> Allowance:
    """Parse ``NAME=VALUE`` or ``NAME=VALUE: reason``; ``ConfigError`` naming ``source`` if bad.

    VALUE is a number or ``none`` (report the metric, do not gate it). The range is checked when
    the allowance is applied (:func:`apply_allowances`), by the same rules as ``modelgate.yaml``.
    """
    name, equals, rest = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise ConfigError(
            f"{source}: expected MARGIN=VALUE (e.g. cost_per_call_max_ratio=12), got {text!r}"
        )
    value_text, _, reason = rest.partition(":")
    value_text = value_text.strip()
    known = margin_names()
    if name not in known:
        raise ConfigError(f"{source}: unknown margin {name!r}; one of: {', '.join(known)}")
    value: float | None
    if value_text.lower() in _OFF:
        value = None
    else:
        try:
            value = float(value_text)
        except ValueError:
            raise ConfigError(
                f"{source}: {name}: expected a number or none, got {value_text!r}"
            ) from None
    return Allowance(name, value, reason.strip() or None, source)


def apply_allowances(
    config: ModelgateConfig, allowances: Iterable[Allowance]
) -> tuple[ModelgateConfig, tuple[Allowance, ...]]:
    """``config`` with the allowances' margins set; a later allowance of a margin wins.

    Raises ``ConfigError`` naming the allowance's source for a value out of the margin's range.
    """
    chosen: dict[str, Allowance] = {}
    for allowance in allowances:
        chosen.pop(allowance.margin, None)
        chosen[allowance.margin] = allowance
    if not chosen:
        return config, ()
    limits = config.gate.model_dump()
    for allowance in chosen.values():
        try:
            GateLimits.model_validate({**limits, allowance.margin: allowance.value})
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise ConfigError(
                f"{allowance.source}: {allowance.margin}={allowance.value:g}: {problem}"
                if allowance.value is not None
                else f"{allowance.source}: {allowance.margin}: {problem}"
            ) from None
    applied = tuple(replace(a, was=limits[a.margin]) for a in chosen.values())
    for allowance in applied:
        limits[allowance.margin] = allowance.value
    gate = GateLimits.model_validate(limits)
    return config.model_copy(update={"gate": gate}), applied


def allowance_json(allowance: Allowance) -> dict[str, Any]:
    """The verdict's entry: ``{margin, value, was, reason, source}``."""
    return {
        "margin": allowance.margin,
        "value": allowance.value,
        "was": allowance.was,
        "reason": allowance.reason,
        "source": allowance.source,
    }
