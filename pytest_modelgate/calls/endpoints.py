"""A model as the gate calls it: endpoint, key variable and price, resolved from catalog and config.

``ResolvedModel`` is what the catalog and ``modelgate.yaml`` produce and what the client consumes.
Prices are USD per one million tokens; a price we do not know is ``None``, never a made-up zero.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field

from pytest_modelgate.calls.records import Usage


class PeakPricing(BaseModel):
    """A time-of-day surcharge (DeepSeek bills peak hours at 2x): UTC hour windows, [start, end)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    multiplier: float = Field(gt=0, le=100)
    utc_hours: tuple[tuple[int, int], ...]
    weekdays_only: bool = True

    def applies(self, at: datetime) -> bool:
        """Whether a call started at ``at`` is billed at the peak price."""
        at = at.astimezone(timezone.utc)
        if self.weekdays_only and at.weekday() >= 5:
            return False
        return any(start <= at.hour < end for start, end in self.utc_hours)


class Price(BaseModel):
    """List price in USD per 1M tokens, with where the number came from."""

    # Finite: an `.inf` price would make every cost comparison meaningless.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    # When a provider has no cache discount (or we do not know it) cached input costs as input.
    cached_input: float | None = Field(default=None, ge=0)
    source: str | None = None
    as_of: str | None = None
    peak: PeakPricing | None = None

    def cost_usd(self, usage: Usage | None, *, at: datetime | None = None) -> float | None:
        """Cost of one call; ``None`` when the usage does not say how many tokens were used."""
        if usage is None or usage.prompt_tokens is None or usage.completion_tokens is None:
            return None
        cached = min(usage.cached_tokens or 0, usage.prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        # Reasoning tokens are already inside completion_tokens and billed as output.
        total = (
            (usage.prompt_tokens - cached) * self.input
            + cached * cached_price
            + usage.completion_tokens * self.output
        ) / 1_000_000
        if self.peak is not None and at is not None and self.peak.applies(at):
            total *= self.peak.multiplier
        return total


class ResolvedModel(BaseModel):
    """Everything needed to call one model and price its calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The name the user typed (``qwen-max``); the key of cassettes and verdict entries.
    name: str
    # The id sent as ``model`` in the request body (often equal to ``name``).
    model_id: str
    provider: str | None = None
    base_url: str
    # Environment variable holding the API key; ``None`` for endpoints that need no key.
    api_key_env: str | None = None
    # Other accepted variables, tried in order after ``api_key_env`` (ZAI_API_KEY, ZHIPUAI_API_KEY).
    api_key_env_fallbacks: tuple[str, ...] = ()
    price: Price | None = None
    region: str | None = None

    def key_variables(self) -> tuple[str, ...]:
        """All environment variables that may hold this model's key, in lookup order."""
        if self.api_key_env is None:
            return ()
        return (self.api_key_env, *self.api_key_env_fallbacks)
