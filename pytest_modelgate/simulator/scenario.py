"""What the simulator serves: the scenario file, validated by pydantic.

A scenario names the simulated models and, for each, its latency and the faults it injects. Every
rate is a fraction of requests in ``[0, 1]``; see ``docs/simulator.md`` for the exact effect of
each key. ``load_scenario`` reads the YAML form and reports errors with the file name and the
field path (``scenario.yaml: models.simulated-stable.latency_ms.p95: ...``).
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_modelgate.config.yamlfile import describe_validation_error, read_yaml_file
from pytest_modelgate.errors import ConfigError

__all__ = [
    "LatencySpec",
    "ModelBehaviour",
    "Scenario",
    "ScenarioError",
    "ScriptEntry",
    "load_scenario",
]

# z-score of the 95th percentile of the standard normal distribution.
_Z95 = NormalDist().inv_cdf(0.95)


class ScenarioError(ConfigError):
    """A scenario file that cannot be read or does not validate; names the file and the field."""


class _Frozen(BaseModel):
    # Finite: a latency of `.inf` would hang the server thread (or crash its sleep).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LatencySpec(_Frozen):
    """A latency distribution in milliseconds: lognormal with the given median and 95th percentile.

    A bare number in YAML (``latency_ms: 20``) means a fixed latency (median = p95). ``p95``
    defaults to the median, which also means a fixed latency.
    """

    median: float = Field(default=0.0, ge=0)
    p95: float | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"median": data}
        return data

    @model_validator(mode="after")
    def _p95_not_below_median(self) -> LatencySpec:
        if self.p95 is not None and self.p95 < self.median:
            raise ValueError(f"p95 ({self.p95}) must not be below the median ({self.median})")
        if self.p95 is not None and self.median == 0 and self.p95 > 0:
            raise ValueError("a lognormal latency needs a median above 0 when p95 is above 0")
        return self

    def sample_ms(self, u: float) -> float:
        """The latency at quantile ``u`` (a uniform draw in ``[0, 1)``), in milliseconds."""
        if self.median == 0:
            return 0.0
        p95 = self.median if self.p95 is None else self.p95
        sigma = math.log(p95 / self.median) / _Z95
        # Clamp away from 0 and 1: inv_cdf is undefined there.
        z = NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12))
        return self.median * math.exp(sigma * z)


class ScriptEntry(_Frozen):
    """One forced response; a model's ``script`` is consumed by its first requests, in order.

    An entry replaces the random fault draws for that request: a non-200 ``status`` answers with
    that error, a 200 entry answers normally with exactly the faults it switches on.
    """

    status: int = 200
    message: str | None = None
    # OpenAI ``error.code``; by default derived from the status (429 -> rate_limit_exceeded ...).
    code: str | None = None
    # Sent as Retry-After / retry-after-ms; defaults to the model's ``retry_after_s`` for 429.
    retry_after_s: float | None = Field(default=None, ge=0)
    # Fixed total latency for this request; by default drawn from the model's distribution.
    latency_ms: float | None = Field(default=None, ge=0)
    stream_cut: bool = False
    json_breakage: bool = False
    misclassify: bool = False
    tool_drift: bool = False
    language_drift: bool = False
    # Exact reply text, replacing whatever the task would answer.
    content: str | None = None

    @model_validator(mode="after")
    def _status_is_answerable(self) -> ScriptEntry:
        if self.status != 200 and not 400 <= self.status <= 599:
            raise ValueError(f"status must be 200 or an error status 400-599, not {self.status}")
        if self.status != 200 and (
            self.stream_cut
            or self.json_breakage
            or self.misclassify
            or self.tool_drift
            or self.language_drift
            or self.content is not None
        ):
            raise ValueError("fault switches and content only apply to status 200 entries")
        return self


class ModelBehaviour(_Frozen):
    """How one simulated model answers: latency, error rates and quality drift."""

    latency_ms: LatencySpec = Field(default_factory=LatencySpec)
    ttft_ms: LatencySpec = Field(default_factory=LatencySpec)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    server_error_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=0.0, ge=0)
    json_breakage: float = Field(default=0.0, ge=0, le=1)
    misclassify: float = Field(default=0.0, ge=0, le=1)
    tool_drift: float = Field(default=0.0, ge=0, le=1)
    language_drift: float = Field(default=0.0, ge=0, le=1)
    verbosity: float = Field(default=1.0, gt=0, le=20)
    stream_cut: float = Field(default=0.0, ge=0, le=1)
    balance_error: bool = False
    script: tuple[ScriptEntry, ...] = ()

    @model_validator(mode="after")
    def _error_rates_fit(self) -> ModelBehaviour:
        # One uniform draw picks 429, 5xx or success, so both rates are exact only if they fit in 1.
        if self.rate_limit_rate + self.server_error_rate > 1:
            raise ValueError("rate_limit_rate + server_error_rate must not exceed 1")
        return self


class Scenario(_Frozen):
    """A simulator configuration: the models it serves and an optional API key and seed."""

    api_key: str | None = None
    seed: int = 0
    models: dict[str, ModelBehaviour] = Field(min_length=1)


def load_scenario(path: Path) -> Scenario:
    """Read and validate a YAML scenario file.

    Raises ``ScenarioError`` naming the file and, for validation errors, each offending field
    (``scenario.yaml: models.sim-stable.misclassify: Input should be less than or equal to 1``).
    """
    label = str(path)
    data = read_yaml_file(path, ScenarioError)
    if not isinstance(data, dict):
        raise ScenarioError(f"{label}: a scenario must be a mapping with a 'models' key")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = describe_validation_error(exc, Scenario)
        raise ScenarioError("\n".join(f"{label}: {line}" for line in lines)) from exc
