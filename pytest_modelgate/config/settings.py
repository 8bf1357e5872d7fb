"""``modelgate.yaml``: default models, model declarations and overrides, limits, client settings.

The file is optional: without one every setting has its default and models come from the built-in
catalog. Every problem in it is a ``ConfigError`` whose message names the file and the field path
(``modelgate.yaml: models.sim.price.input: ...``). This module never imports pytest.

Example::

    stable: deepseek-chat
    candidate: qwen-max
    models:
      support-sim-a:                # a model the catalog does not know: base_url required
        base_url: http://127.0.0.1:8900/v1
        api_key_env: SIM_API_KEY
        price: {input: 0.27, output: 1.10, cached_input: 0.07}
      qwen-max:                     # an override of a catalog model: any subset of fields
        region: cn
        price: {input: 1.0, output: 2.0}
    gate:
      cost_per_call_max_ratio: 1.15
      tokens_per_call_max_ratio: null   # reported, not gated
    client:
      max_retries: 2                # 0..10
      timeout_s: 60                 # per connect / read
      deadline_s: 300               # the whole call, retries included
      max_response_bytes: 16777216  # 16 MiB
    routes:                         # the access layer (docs/gateway.md)
      ticket_triage: {stable: deepseek-chat, candidate: qwen-max, canary_percent: 5}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pytest_modelgate.calls.catalog import Catalog, CatalogMatch
from pytest_modelgate.calls.endpoints import Price, ResolvedModel
from pytest_modelgate.config.yamlfile import describe_validation_error, read_yaml_file
from pytest_modelgate.errors import ConfigError, MissingAPIKeyError, UnknownModelError
from pytest_modelgate.gateway.routes import (
    RouteSettings,
    StateSettings,
    TelemetrySettings,
    validate_route_names,
)

__all__ = [
    "CONFIG_FILENAME",
    "ClientSettings",
    "GateLimits",
    "ModelOverride",
    "ModelgateConfig",
    "api_key_for",
    "check_config",
    "find_config",
    "load_config",
    "require_api_key",
    "resolve_model",
]

CONFIG_FILENAME = "modelgate.yaml"

_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Upper bounds that no sensible margin reaches; beyond them a value is a typo (or 1e300).
_MAX_RATIO = 1000.0
_MAX_SCORE_DROP = 1e6


class _Settings(BaseModel):
    # Strict: "60" is not a number and `yes` is not a count; YAML already gives real types.
    # Finite: `.inf` or `.nan` is never a usable margin, count or duration.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class GateLimits(_Settings):
    """The margins of the judge (``gate:`` in modelgate.yaml); ``None``: reported, not gated.

    Rate margins are absolute differences (``0.02`` = two percentage points); ratio margins compare
    candidate to stable (``1.2`` lets the candidate be 20% slower). Markers override them per
    workflow.
    """

    pass_rate_max_drop: float | None = Field(default=0.02, ge=0, le=1)
    error_rate_max_rise: float | None = Field(default=0.01, ge=0, le=1)
    fallback_rate_max_rise: float | None = Field(default=0.02, ge=0, le=1)
    # A ratio below 1 would fail a candidate exactly as good as stable: never a margin.
    latency_p50_max_ratio: float | None = Field(default=1.2, ge=1, le=_MAX_RATIO)
    latency_p95_max_ratio: float | None = Field(default=1.2, ge=1, le=_MAX_RATIO)
    ttft_p95_max_ratio: float | None = Field(default=1.2, ge=1, le=_MAX_RATIO)
    cost_per_call_max_ratio: float | None = Field(default=1.15, ge=1, le=_MAX_RATIO)
    tokens_per_call_max_ratio: float | None = Field(default=None, ge=1, le=_MAX_RATIO)
    json_validity_max_drop: float | None = Field(default=0.01, ge=0, le=1)
    schema_validity_max_drop: float | None = Field(default=0.01, ge=0, le=1)
    tool_call_accuracy_max_drop: float | None = Field(default=0.02, ge=0, le=1)
    language_match_max_drop: float | None = Field(default=0.02, ge=0, le=1)
    # Quality scores recorded with llm.score(); reported, and gated when set (absolute drop).
    score_max_drop: float | None = Field(default=None, ge=0, le=_MAX_SCORE_DROP)
    # The statistical judge: interval confidence (1 - family-wise alpha), bootstrap resamples,
    # and the paired cases below which a workflow or language slice is reported but not gated.
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    resamples: int = Field(default=1000, ge=100, le=100_000)
    min_cases: int = Field(default=20, ge=1, le=100_000)
    # A stable arm passing fewer of its tests than this cannot vouch for a candidate (a suite
    # that fails everywhere shows "no change"): the verdict is `error`. None: no floor.
    min_stable_pass_rate: float | None = Field(default=0.5, ge=0, le=1)
    # Margins of the metrics plugins add (pytest_modelgate_metrics), by name; each replaces the
    # metric's own (None: reported, not gated). Checked against the metrics after collection.
    metrics: dict[str, float | None] = Field(default_factory=dict)


class ClientSettings(_Settings):
    """How the gate's HTTP client retries, times out and bounds a call (``client:``).

    ``timeout_s`` bounds connecting and each single read; ``deadline_s`` bounds a whole logical
    call, from sending its first attempt to the last byte of its reply, retries and their waits
    included, so a server trickling bytes cannot keep a call alive. ``max_response_bytes`` bounds
    one response body (a stream counts every byte it sends).
    """

    # Retries after the first attempt, for retryable errors only (429, 5xx, timeouts, ...).
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    deadline_s: float = Field(default=300.0, gt=0, le=86_400)
    max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=1024**3)
    # The longest Retry-After we honour; a longer one is capped, not obeyed.
    retry_after_cap_s: float = Field(default=30.0, ge=0, le=3600)
    # Exponential backoff starts here when the server gives no Retry-After.
    backoff_base_s: float = Field(default=0.5, ge=0, le=60)

    @model_validator(mode="after")
    def _deadline_covers_a_read(self) -> ClientSettings:
        # A deadline shorter than one read would make timeout_s meaningless: say so.
        if self.deadline_s < self.timeout_s:
            raise ValueError(
                f"deadline_s ({self.deadline_s:g}) must be >= timeout_s ({self.timeout_s:g}): "
                "the deadline bounds the whole call, timeout_s each read"
            )
        return self


class ModelOverride(_Settings):
    """One entry under ``models:``: a new model, or an override of a catalog model.

    For a catalog model only the fields written in the file replace the catalog's (an explicit
    ``price: null`` means "price unknown", an explicit ``api_key_env: null`` means "no key").
    A new model needs ``base_url``, unless ``provider`` names a catalog provider whose endpoint
    (for ``region``) and key variables it then uses, e.g. a Doubao endpoint id ``ep-...``.
    """

    base_url: str | None = None
    api_key_env: str | None = None
    # The id sent as ``model``; default: the entry's name.
    model_id: str | None = Field(default=None, min_length=1)
    provider: str | None = Field(default=None, min_length=1)
    region: str | None = Field(default=None, min_length=1)
    # USD per 1M tokens; ``source`` and ``as_of`` are optional here.
    price: Price | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {url!r}")
        # Invariant shared with the catalog: no trailing slash, the client appends the path.
        return url.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_VAR.fullmatch(name):
            raise ValueError(f"api_key_env must name an environment variable, got {name!r}")
        return name


class ModelgateConfig(_Settings):
    """The whole ``modelgate.yaml``; ``ModelgateConfig()`` is the configuration without a file."""

    # Default model names; the --stable-model / --candidate-model options take precedence.
    stable: str | None = Field(default=None, min_length=1)
    candidate: str | None = Field(default=None, min_length=1)
    models: dict[str, ModelOverride] = Field(default_factory=dict)
    gate: GateLimits = Field(default_factory=GateLimits)
    client: ClientSettings = Field(default_factory=ClientSettings)
    # Per workflow, the models the access layer (pytest_modelgate.gateway) routes to.
    routes: dict[str, RouteSettings] = Field(default_factory=dict)
    # Where route status and canary sums live (pytest_modelgate.gateway.stores); None: memory.
    state: StateSettings | None = None
    # Spans and metrics of the gateway's model calls (pytest_modelgate.gateway.otel).
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    # The file this came from; set by load_config, not by the file's contents.
    _path: Path | None = PrivateAttr(default=None)

    @field_validator("models", "gate", "client", "routes", "telemetry", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        # A section whose entries are all commented out parses as null: treat it as empty.
        return {} if value is None else value

    @field_validator("models")
    @classmethod
    def _distinct_names(cls, models: dict[str, ModelOverride]) -> dict[str, ModelOverride]:
        seen: dict[str, str] = {}
        for name in models:
            if not name.strip() or name != name.strip():
                raise ValueError(f"model name {name!r} is empty or has surrounding spaces")
            # Names match case-insensitively, so two spellings would be ambiguous.
            previous = seen.setdefault(name.lower(), name)
            if previous != name:
                raise ValueError(f"{previous!r} and {name!r} name the same model")
        return models

    @field_validator("routes")
    @classmethod
    def _route_names(cls, routes: dict[str, RouteSettings]) -> dict[str, RouteSettings]:
        return validate_route_names(routes)

    @property
    def path(self) -> Path | None:
        """The file this configuration was loaded from; ``None`` for the defaults."""
        return self._path

    @property
    def label(self) -> str:
        """How messages name the file: its path, or ``modelgate.yaml`` for the defaults."""
        return str(self._path) if self._path is not None else CONFIG_FILENAME

    def model_key(self, name: str) -> str | None:
        """The key under ``models:`` that ``name`` means (case-insensitive), or ``None``."""
        wanted = name.strip().lower()
        for key in self.models:
            if key.lower() == wanted:
                return key
        return None


def find_config(rootdir: Path, explicit: Path | None) -> Path | None:
    """The config file to use: ``explicit`` (which must exist), else ``rootdir/modelgate.yaml``.

    Returns ``None`` when there is no file, meaning "use the defaults".
    """
    if explicit is not None:
        if not explicit.exists():
            raise ConfigError(f"modelgate config file not found: {explicit}")
        if not explicit.is_file():
            raise ConfigError(f"modelgate config path is not a file: {explicit}")
        return explicit
    default = rootdir / CONFIG_FILENAME
    return default if default.is_file() else None


def load_config(path: Path) -> ModelgateConfig:
    """Read and validate ``modelgate.yaml``; every problem is a ``ConfigError`` naming the file."""
    label = str(path)
    data = read_yaml_file(path, ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{label}: the top level must be a mapping of settings "
            f"(stable, candidate, models, gate, client, routes), not a {_yaml_kind(data)}"
        )
    try:
        config = ModelgateConfig.model_validate(data)
    except ValidationError as exc:
        lines = describe_validation_error(exc, ModelgateConfig)
        raise ConfigError("\n".join(f"{label}: {line}" for line in lines)) from exc
    config._path = path
    return config


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def resolve_model(name: str, config: ModelgateConfig, catalog: Catalog) -> ResolvedModel:
    """Resolve a model name through ``modelgate.yaml`` and the catalog.

    An entry under ``models:`` overrides (field by field) or extends the catalog; a name known to
    neither raises ``UnknownModelError`` with suggestions from both.
    """
    key = config.model_key(name)
    match = catalog.lookup(name)
    if key is None:
        if match is None:
            raise UnknownModelError(
                name,
                catalog.suggest(name, extra=config.models),
                hint=f"To use a model the catalog does not know, declare it under 'models:' in "
                f"{config.label} with a base_url.",
            )
        return catalog.resolve_match(match)
    if match is not None:
        return _override_catalog_model(key, config, match, catalog)
    return _declared_model(key, config, catalog)


def _override_catalog_model(
    key: str, config: ModelgateConfig, match: CatalogMatch, catalog: Catalog
) -> ResolvedModel:
    entry = config.models[key]
    where = f"{config.label}: models.{key}"
    written = entry.model_fields_set
    # Precedence, field by field: a field written in the modelgate.yaml entry > the catalog.
    # `region` goes first because it picks the catalog endpoint and decides whether the catalog
    # price still applies (list prices hold only in the model's own region); an explicit
    # base_url or price then wins over what the region implied. Fields absent from the entry
    # keep the catalog's value; model_id, base_url and region written as null count as absent.
    try:
        base = catalog.resolve_match(match, region=entry.region)
    except ConfigError as exc:
        raise ConfigError(f"{where}.region: {exc}") from exc
    fields: dict[str, Any] = dict(base)
    if entry.base_url is not None:
        fields["base_url"] = entry.base_url
    if entry.model_id is not None:
        fields["model_id"] = entry.model_id
    if "provider" in written:
        fields["provider"] = entry.provider
    if "api_key_env" in written:
        # The user named the variable: the catalog's fallbacks no longer apply.
        fields["api_key_env"] = entry.api_key_env
        fields["api_key_env_fallbacks"] = ()
    if "price" in written:
        fields["price"] = _price_with_source(entry.price, config)
    return ResolvedModel(**fields)


def _declared_model(key: str, config: ModelgateConfig, catalog: Catalog) -> ResolvedModel:
    entry = config.models[key]
    where = f"{config.label}: models.{key}"
    provider = catalog.providers.get(entry.provider) if entry.provider is not None else None
    region = entry.region
    if provider is not None and region is not None:
        try:
            region = provider.region_named(str(entry.provider), region)
        except ConfigError as exc:
            raise ConfigError(f"{where}.region: {exc}") from exc
    base_url = entry.base_url
    if base_url is None:
        if provider is None:
            suggestions = catalog.suggest(key)
            hint = f" (closest catalog names: {', '.join(suggestions)})" if suggestions else ""
            raise ConfigError(
                f"{where}: {key!r} is not in the built-in catalog{hint}, so it needs a base_url "
                f"(or a provider among: {', '.join(catalog.providers)})"
            )
        region = region or provider.default_region
        base_url = provider.regions[region]
    api_key_env = entry.api_key_env
    fallbacks: tuple[str, ...] = ()
    if "api_key_env" not in entry.model_fields_set and provider is not None:
        # A new model of a catalog provider uses that provider's key variables.
        keys = provider.api_key_env
        api_key_env, fallbacks = (keys[0] if keys else None), keys[1:]
    return ResolvedModel(
        name=key,
        model_id=entry.model_id or key,
        provider=entry.provider,
        base_url=base_url,
        api_key_env=api_key_env,
        api_key_env_fallbacks=fallbacks,
        price=_price_with_source(entry.price, config),
        region=region,
    )


def _price_with_source(price: Price | None, config: ModelgateConfig) -> Price | None:
    # Reports show where every price came from: a user price without a source names the file.
    if price is None or price.source is not None:
        return price
    source = config.path.name if config.path is not None else CONFIG_FILENAME
    return price.model_copy(update={"source": source})


def check_config(config: ModelgateConfig, catalog: Catalog) -> None:
    """Resolve every model the file names, so that mistakes surface before any test runs."""
    for key in config.models:
        resolve_model(key, config, catalog)
    for arm in ("stable", "candidate"):
        name = getattr(config, arm)
        if name is None:
            continue
        try:
            resolve_model(name, config, catalog)
        except UnknownModelError as exc:
            raise UnknownModelError(
                exc.name, exc.suggestions, exc.hint, where=f"{config.label}: {arm}"
            ) from exc
    for route_name, route in config.routes.items():
        for field_path, model in route.models():
            try:
                resolve_model(model, config, catalog)
            except UnknownModelError as exc:
                raise UnknownModelError(
                    exc.name,
                    exc.suggestions,
                    exc.hint,
                    where=f"{config.label}: routes.{route_name}.{field_path}",
                ) from exc


def api_key_for(model: ResolvedModel, environ: Mapping[str, str]) -> str | None:
    """The model's API key from ``environ``: the first of its key variables that is set.

    An empty or blank variable counts as unset (CI systems export missing secrets as ``""``).
    """
    for variable in model.key_variables():
        value = environ.get(variable, "").strip()
        if value:
            return value
    return None


def require_api_key(model: ResolvedModel, environ: Mapping[str, str]) -> str | None:
    """Like ``api_key_for``, but a model that declares a key variable must have one set.

    Returns ``None`` for a model that declares no key variable (a local simulator); raises
    ``MissingAPIKeyError`` naming the variables otherwise.
    """
    variables = model.key_variables()
    if not variables:
        return None
    key = api_key_for(model, environ)
    if key is None:
        raise MissingAPIKeyError(model.name, variables)
    return key
