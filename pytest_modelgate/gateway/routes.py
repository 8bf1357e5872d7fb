"""``routes:`` in modelgate.yaml: which model serves a workflow, and how traffic moves to another.

Pure pydantic models, no I/O and no pytest. :class:`RouteSettings` validates what one route can
check alone (percentages, a fallback loop, a fallback naming the route's own models, a canary
without a candidate); :func:`check_routes` then resolves every model name through the catalog and
``models:``, so an unknown model is an error naming ``routes.<workflow>.<field>``.

Example::

    routes:
      ticket_triage:
        stable: deepseek-chat
        candidate: qwen-max
        canary_percent: 5          # 0..100, of the sticky buckets
        shadow_percent: 20         # 0..100, sampled independently of the canary
        sticky_key: optional       # required | optional | ignored
        fallback: [qwen-plus]      # tried in order after the arm's own model (and stable)
        kill_switch: {env: MODELGATE_KILL_TICKET_TRIAGE, file: /run/modelgate/kill}
        log_text: false            # message text in the shadow log only when true
        contract: {json: true, schema: {type: object, required: [label]}, tools: null}
        rollback:                  # checked after every request by the canary monitor
          - {metric: error_rate, op: ">", threshold: 0.015, unit: rate, min_requests: 200}
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "CanaryStep",
    "KillSwitchSettings",
    "RollbackTrigger",
    "RouteContract",
    "RouteSettings",
    "StateSettings",
    "StickyKey",
    "TelemetrySettings",
    "validate_route_names",
]

StickyKey = Literal["required", "optional", "ignored"]

_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROUTE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class KillSwitchSettings(_Settings):
    """What sends a route's whole traffic to stable: a set environment variable or a file.

    Either is enough; both are checked on every call (a dict lookup and one ``stat``).
    """

    env: str | None = None
    file: str | None = Field(default=None, min_length=1)

    @field_validator("env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_VAR.fullmatch(name):
            raise ValueError(f"env must name an environment variable, got {name!r}")
        return name

    @model_validator(mode="after")
    def _one_of(self) -> KillSwitchSettings:
        if self.env is None and self.file is None:
            raise ValueError("a kill_switch needs env, file or both")
        return self


class RouteContract(_Settings):
    """What every reply of the route must satisfy, as ``model_contract`` in a test.

    A reply that breaks it counts as a failed call: the next fallback model is tried.
    """

    json_: bool = Field(default=False, alias="json")
    # A JSON Schema (implies json).
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    # The tools a reply may call; [] means none; None: not checked (beyond the request's own).
    tools: tuple[str, ...] | None = None
    language: str | None = Field(default=None, min_length=2)
    max_output_tokens: int | None = Field(default=None, ge=1)

    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True
    )

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_list(cls, value: Any) -> Any:
        # YAML gives a list; strict mode would refuse it for a tuple.
        return tuple(value) if isinstance(value, list) else value


_METRIC = re.compile(r"[a-z][a-z0-9_]*")


class RollbackTrigger(_Settings):
    """One rollback condition of the canary, in the form of the verdict's rollback_triggers.

    ``{metric, op, threshold, unit, margin}``: with a margin (this one's, else the ``gate:``
    margin of the metric) the canary monitor rolls back when the candidate is shown worse than
    stable on the same route by more than it; without one, when the candidate's own ``metric``
    is shown ``op`` (``>`` or ``<``) ``threshold``, e.g. ``{metric: error_rate, op: ">",
    threshold: 0.015, unit: rate}``; judged once ``min_requests`` candidate requests were seen
    (:mod:`~pytest_modelgate.gateway.monitor`). ``modelgate rollout`` copies a verdict's
    triggers here unchanged.
    """

    metric: str = Field(min_length=1)
    op: Literal[">", "<"]
    threshold: float
    unit: Literal["rate", "ms", "usd", "tokens", "number"]
    basis: str | None = None
    min_requests: int = Field(default=200, ge=1, le=10_000_000)
    # How much worse than stable on the same route the candidate may be (a rate: absolute
    # points, 0.01 = 1 point; ms and usd: a ratio, 1.2 = 20% more). None: the ``gate:``
    # section's margin for the metric; without one either, ``threshold`` is an absolute limit.
    margin: float | None = None

    @field_validator("threshold", mode="before")
    @classmethod
    def _int_threshold(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _in_range(self) -> RollbackTrigger:
        if not _METRIC.fullmatch(self.metric):
            raise ValueError(
                f"metric must be a metric name such as error_rate, got {self.metric!r}"
            )
        if self.unit == "rate" and not 0 <= self.threshold <= 1:
            raise ValueError(f"a rate threshold lies in [0, 1], got {self.threshold:g}")
        if self.unit in ("ms", "usd", "tokens") and self.threshold < 0:
            raise ValueError(f"a {self.unit} threshold is >= 0, got {self.threshold:g}")
        if self.margin is not None:
            if not math.isfinite(self.margin):
                raise ValueError(f"margin must be a finite number, got {self.margin!r}")
            if self.unit == "rate" and not 0 <= self.margin < 1:
                raise ValueError(f"a rate margin lies in [0, 1), got {self.margin:g}")
            if self.unit != "rate" and self.margin < 1:
                raise ValueError(f"a {self.unit} margin is a ratio >= 1, got {self.margin:g}")
        return self


class CanaryStep(_Settings):
    """One step of a canary's promotion: its share of traffic and the requests it needs first."""

    percent: float = Field(gt=0, le=100)
    # Candidate requests at this step before the monitor may promote to the next one.
    min_requests: int = Field(default=200, ge=1, le=10_000_000)

    @field_validator("percent", mode="before")
    @classmethod
    def _int_percent(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


class RouteSettings(_Settings):
    """One entry under ``routes:``: the models and traffic shares of one workflow."""

    stable: str = Field(min_length=1)
    candidate: str | None = Field(default=None, min_length=1)
    # Percent of the sticky buckets (basis points: 0.01% resolution).
    canary_percent: float = Field(default=0.0, ge=0, le=100)
    shadow_percent: float = Field(default=0.0, ge=0, le=100)
    sticky_key: StickyKey = "optional"
    fallback: tuple[str, ...] = ()
    kill_switch: KillSwitchSettings | None = None
    log_text: bool = False
    contract: RouteContract | None = None
    rollback: tuple[RollbackTrigger, ...] = ()
    # The canary's promotion path (e.g. 5 -> 25 -> 50 -> 100 %); the first step is
    # ``canary_percent``. The canary monitor moves to the next step once non-inferiority is
    # shown at the current one; empty: the canary stays at ``canary_percent``.
    steps: tuple[CanaryStep, ...] = ()

    @field_validator("fallback", "rollback", "steps", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if value is None:
            return ()
        return tuple(value) if isinstance(value, list) else value

    @field_validator("canary_percent", "shadow_percent", mode="before")
    @classmethod
    def _int_percent(cls, value: Any) -> Any:
        # `5` is a percentage as much as `5.0`; strict mode would refuse the int for a float.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _consistent(self) -> RouteSettings:
        if self.candidate is None and (self.canary_percent or self.shadow_percent):
            raise ValueError("canary_percent and shadow_percent need a candidate")
        own = {self.stable.lower()} | ({self.candidate.lower()} if self.candidate else set())
        seen: set[str] = set()
        for index, name in enumerate(self.fallback):
            if name.lower() in own:
                raise ValueError(
                    f"fallback[{index}] names {name!r}, a model of the route itself "
                    "(the candidate falls back to stable anyway)"
                )
            if name.lower() in seen:
                raise ValueError(f"fallback[{index}] names {name!r} twice: a fallback loop")
            seen.add(name.lower())
        if self.candidate is not None and self.candidate.lower() == self.stable.lower():
            raise ValueError("candidate is the same model as stable")
        if self.steps and not self.rollback:
            raise ValueError(
                "steps need rollback triggers: a promotion waits for non-inferiority on them"
            )
        if self.steps:
            percents = [step.percent for step in self.steps]
            if any(b <= a for a, b in itertools.pairwise(percents)):
                raise ValueError(f"steps must grow, got {percents}")
            if percents[0] != self.canary_percent:
                raise ValueError(
                    f"steps[0] is {percents[0]:g}%, canary_percent {self.canary_percent:g}%: "
                    "the first step is the canary's current share"
                )
        return self

    def models(self) -> tuple[tuple[str, str], ...]:
        """Every (field path, model name) the route names, for resolving them."""
        named = [("stable", self.stable)]
        if self.candidate is not None:
            named.append(("candidate", self.candidate))
        named += [(f"fallback[{i}]", name) for i, name in enumerate(self.fallback)]
        return tuple(named)


class StateSettings(_Settings):
    """``state:`` in modelgate.yaml: where route status, canary sums and counters live.

    ``memory`` (the default without the section): in the process, nothing shared. ``file``: an
    SQLite file every process on the host opens (``path``, relative to modelgate.yaml); nothing
    to install. ``redis``: a Redis server every replica reaches (``url``; the ``redis`` extra).
    """

    backend: Literal["memory", "file", "redis"]
    path: str | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, min_length=1)
    # Key prefix in Redis (several services may share one server).
    prefix: str = Field(default="modelgate", min_length=1, pattern=r"^[A-Za-z0-9_.:\-]+$")
    # How long a store operation may take before the gateway falls back to stable for the call.
    timeout_s: float = Field(default=0.25, gt=0, le=30)

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _int_timeout(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _where(self) -> StateSettings:
        if self.backend == "file" and self.path is None:
            raise ValueError("backend 'file' needs path (the SQLite file every process opens)")
        if self.backend == "redis" and self.url is None:
            raise ValueError("backend 'redis' needs url, e.g. redis://127.0.0.1:6379/0")
        if (
            self.backend == "redis"
            and self.url is not None
            and not self.url.startswith(("redis://", "rediss://", "unix://"))
        ):
            raise ValueError("url must start with redis://, rediss:// or unix://")
        return self


class TelemetrySettings(_Settings):
    """``telemetry:`` in modelgate.yaml: what the gateway reports beyond its own counters.

    ``opentelemetry: true``: a span and the GenAI metrics per model call, through the global
    OpenTelemetry providers (``pytest_modelgate.gateway.otel``; the ``otel`` extra).
    """

    opentelemetry: bool = False


def validate_route_names(routes: dict[str, RouteSettings]) -> dict[str, RouteSettings]:
    """Route (workflow) names are identifiers: they appear in logs, counters and file names."""
    for name in routes:
        if not _ROUTE_NAME.fullmatch(name):
            raise ValueError(
                f"route name {name!r} must be letters, digits, '_', '.' or '-' (a workflow name)"
            )
    return routes
