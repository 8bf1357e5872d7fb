"""The built-in model catalog: providers, regional endpoints, API-key variables and list prices.

The catalog ships as package data (``data/catalog.yaml``) and is validated on load, so a broken file
fails loudly with ``CatalogError`` instead of mispricing a run. ``Catalog.resolve`` turns a model
name typed by a user into a ``ResolvedModel``; ``modelgate.yaml`` can override any of it (see
``pytest_modelgate.config.settings``). This module never imports pytest.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from pytest_modelgate.calls.endpoints import Price, ResolvedModel
from pytest_modelgate.config.yamlfile import (
    describe_validation_error,
    load_yaml,
    yaml_error_location,
    yaml_error_problem,
)
from pytest_modelgate.errors import CatalogError, ConfigError, UnknownModelError

__all__ = [
    "Catalog",
    "CatalogMatch",
    "CatalogModel",
    "ProviderEntry",
    "closest_names",
    "load_catalog",
    "parse_catalog",
]

# How many names an unknown-model error suggests.
MAX_SUGGESTIONS = 5

# ---------------------------------------------------------------------------------------------
# Suggestions for unknown names
# ---------------------------------------------------------------------------------------------


def closest_names(
    name: str,
    candidates: Iterable[str],
    limit: int = MAX_SUGGESTIONS,
    *,
    related: Iterable[str] = (),
) -> list[str]:
    """Known names closest to ``name``, best first, case-insensitively.

    A candidate that contains the query or is contained in it (``qwen`` -> ``qwen-max``;
    ``openai/gpt-6.1-sol`` -> ``gpt-6.1-sol``), or that is listed in ``related``, ranks above a
    merely similar spelling; within each group names rank by ``difflib`` similarity (cut-off 0.6
    for merely similar ones, like ``difflib.get_close_matches``).
    """
    query = name.strip().lower()
    if not query:
        return []
    related_names = {candidate.lower() for candidate in related}
    # Lower-cased name -> (score, first spelling seen): a name listed twice is suggested once.
    scored: dict[str, tuple[float, str]] = {}
    for candidate in candidates:
        lowered = candidate.lower()
        if lowered in scored:
            continue
        ratio = difflib.SequenceMatcher(None, query, lowered).ratio()
        is_related = query in lowered or lowered in query or lowered in related_names
        if is_related or ratio >= 0.6:
            scored[lowered] = (ratio + (1.0 if is_related else 0.0), candidate)
    ranked = sorted(scored.items(), key=lambda item: (-item[1][0], item[0]))
    return [spelling for _, (_, spelling) in ranked[:limit]]


# ---------------------------------------------------------------------------------------------
# The catalog file
# ---------------------------------------------------------------------------------------------


class CatalogModel(BaseModel):
    """One model of a provider; its key in ``models`` is the id sent as ``model``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Other names for this model; resolving one still sends the model's own id.
    aliases: tuple[str, ...] = ()
    # Region (platform) the model is listed and priced on; ``None`` means the provider default.
    region: str | None = None
    price: Price | None = None
    # Bill like another model of the same provider (``deepseek-chat`` is billed as
    # ``deepseek-flash``) while sending this model's own id.
    price_as: str | None = None
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _price_is_explained(self) -> CatalogModel:
        if self.price is not None and self.price_as is not None:
            raise ValueError("give either price or price_as, not both")
        if self.price is None and self.price_as is None and not self.notes:
            # An unknown price is allowed, a silent one is not: the notes must say why.
            raise ValueError("a model without price or price_as must explain why in notes")
        if self.price is not None and (self.price.source is None or self.price.as_of is None):
            raise ValueError("every built-in price needs a source and an as_of")
        return self


class ProviderEntry(BaseModel):
    """A provider: its regional OpenAI-compatible endpoints, key variables and models."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    display_name: str = Field(min_length=1)
    default_region: str
    # Region name -> base URL (no trailing slash; the client appends ``/chat/completions``).
    regions: dict[str, str] = Field(min_length=1)
    # Key variables in lookup order: the first is the documented one, the others fallbacks.
    api_key_env: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    models: dict[str, CatalogModel] = Field(min_length=1)

    @field_validator("regions")
    @classmethod
    def _urls_are_bases(cls, regions: dict[str, str]) -> dict[str, str]:
        for region, url in regions.items():
            if region != region.lower():
                raise ValueError(f"region names are lower case: {region!r}")
            if not url.startswith("https://") or url.endswith("/"):
                raise ValueError(f"{region}: base URL must be https:// without a trailing slash")
        return regions

    @field_validator("api_key_env")
    @classmethod
    def _env_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if not name.isidentifier() or name != name.upper():
                raise ValueError(f"not an environment variable name: {name!r}")
        return names

    @model_validator(mode="after")
    def _references_exist(self) -> ProviderEntry:
        if self.default_region not in self.regions:
            raise ValueError(f"default_region {self.default_region!r} is not in regions")
        for model_id, model in self.models.items():
            if model.region is not None and model.region not in self.regions:
                raise ValueError(f"{model_id}: region {model.region!r} is not in regions")
            if model.price_as is None:
                continue
            target = self.models.get(model.price_as)
            if target is None or target.price is None:
                raise ValueError(f"{model_id}: price_as {model.price_as!r} is not a priced model")
            if self.home_region(target) != self.home_region(model):
                raise ValueError(f"{model_id}: price_as {model.price_as!r} is priced elsewhere")
        return self

    @property
    def base_url(self) -> str:
        """Base URL of the default region."""
        return self.regions[self.default_region]

    def home_region(self, model: CatalogModel) -> str:
        """The region a model is listed and priced on."""
        return model.region or self.default_region

    def region_named(self, provider_id: str, region: str) -> str:
        """Canonical spelling of ``region``; unknown -> ``ConfigError`` listing valid regions."""
        wanted = region.strip().lower()
        if wanted in self.regions:
            return wanted
        valid = ", ".join(
            f"{name} (default)" if name == self.default_region else name for name in self.regions
        )
        raise ConfigError(
            f"provider {provider_id!r} has no region {region!r}; valid regions: {valid}"
        )


@dataclass(frozen=True)
class CatalogMatch:
    """A name found in the catalog: which provider and model it means."""

    # The catalog's spelling of the name that matched (a model id or an alias).
    name: str
    provider_id: str
    provider: ProviderEntry
    model_id: str
    model: CatalogModel


class Catalog(BaseModel):
    """The validated built-in catalog; ``load_catalog()`` returns the shipped one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1]
    providers: dict[str, ProviderEntry] = Field(min_length=1)

    # Lower-cased name (model id or alias) -> (spelling, provider id, model id).
    _index: dict[str, tuple[str, str, str]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _names_are_unique(self) -> Catalog:
        # Names are matched case-insensitively, so they must be unique case-insensitively too.
        owners: dict[str, str] = {}
        for provider_id, model_id, name in self._all_names():
            owner = f"{provider_id}/{model_id}"
            previous = owners.get(name.lower())
            if previous is not None:
                raise ValueError(f"name {name!r} is used twice ({previous} and {owner})")
            owners[name.lower()] = owner
        return self

    def model_post_init(self, context: Any, /) -> None:
        """Build the case-insensitive name index."""
        for provider_id, model_id, name in self._all_names():
            self._index[name.lower()] = (name, provider_id, model_id)

    def _all_names(self) -> list[tuple[str, str, str]]:
        return [
            (provider_id, model_id, name)
            for provider_id, provider in self.providers.items()
            for model_id, model in provider.models.items()
            for name in (model_id, *model.aliases)
        ]

    def names(self) -> list[str]:
        """Every name the catalog resolves (model ids and aliases), grouped by provider."""
        return [name for _, _, name in self._all_names()]

    def lookup(self, name: str) -> CatalogMatch | None:
        """The catalog entry ``name`` means (case-insensitive), or ``None``."""
        found = self._index.get(name.strip().lower())
        if found is None:
            return None
        spelling, provider_id, model_id = found
        provider = self.providers[provider_id]
        return CatalogMatch(spelling, provider_id, provider, model_id, provider.models[model_id])

    def suggest(self, name: str, extra: Iterable[str] = ()) -> list[str]:
        """The known names (catalog plus ``extra``) closest to an unknown ``name``.

        A provider id (``anthropic``, ``moonshot``) suggests that provider's models first.
        """
        provider = self.providers.get(name.strip().lower())
        related = provider.models if provider is not None else ()
        return closest_names(name, [*extra, *self.names()], related=related)

    def resolve(self, name: str, *, region: str | None = None) -> ResolvedModel:
        """Resolve a model name (case-insensitive; ids and aliases) to a callable model.

        ``region`` picks one of the provider's regional endpoints; by default the model's own
        region. The list price applies only in the model's own region: elsewhere it is ``None``.
        Raises ``UnknownModelError`` (with suggestions) or ``ConfigError`` (unknown region).
        """
        match = self.lookup(name)
        if match is None:
            raise UnknownModelError(
                name,
                self.suggest(name),
                hint="To use a model the catalog does not know, declare it under 'models:' "
                "in modelgate.yaml with a base_url.",
            )
        return self.resolve_match(match, region=region)

    def resolve_match(self, match: CatalogMatch, *, region: str | None = None) -> ResolvedModel:
        """Turn a ``lookup`` result into a ``ResolvedModel`` for ``region`` (default: its own)."""
        provider = match.provider
        home = provider.home_region(match.model)
        chosen = home if region is None else provider.region_named(match.provider_id, region)
        price: Price | None = None
        if chosen == home:
            price = match.model.price
            if match.model.price_as is not None:
                target = provider.models[match.model.price_as].price
                assert target is not None  # checked by ProviderEntry validation
                price = target.model_copy(
                    update={"source": f"{target.source}; billed as {match.model.price_as}"}
                )
        keys = provider.api_key_env
        return ResolvedModel(
            name=match.name,
            model_id=match.model_id,
            provider=match.provider_id,
            base_url=provider.regions[chosen],
            api_key_env=keys[0] if keys else None,
            api_key_env_fallbacks=keys[1:],
            price=price,
            region=chosen,
        )


def parse_catalog(text: str, *, source: str = "catalog.yaml") -> Catalog:
    """Validate catalog YAML text; any problem raises ``CatalogError`` naming ``source``."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        location = yaml_error_location(exc)
        raise CatalogError(f"{source}{location}: {yaml_error_problem(exc)}") from exc
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(describe_validation_error(exc, Catalog))
        raise CatalogError(f"{source}: invalid model catalog: {problems}") from exc


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped with the package, validated once per process."""
    path = resources.files("pytest_modelgate") / "data" / "catalog.yaml"
    text = path.read_text(encoding="utf-8")
    return parse_catalog(text, source="pytest_modelgate/data/catalog.yaml")
