"""Unit tests of the built-in model catalog (calls/catalog.py, data/catalog.yaml)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from pytest_modelgate.calls.catalog import (
    Catalog,
    closest_names,
    load_catalog,
    load_yaml,
    parse_catalog,
)
from pytest_modelgate.calls.endpoints import Price
from pytest_modelgate.calls.records import Usage
from pytest_modelgate.errors import CatalogError, ConfigError, UnknownModelError


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# The reference table (docs: providers.md), USD per 1M tokens: input, cached input, output.
REFERENCE_PRICES = {
    "deepseek-flash": ("deepseek", 0.15, 0.003, 0.60),
    "deepseek-v4-pro": ("deepseek", 0.66, 0.022, 1.98),
    "deepseek-chat": ("deepseek", 0.15, 0.003, 0.60),
    "deepseek-reasoner": ("deepseek", 0.15, 0.003, 0.60),
    "qwen3.8-max": ("qwen", 2.00, 0.25, 6.00),
    "qwen3.8-flash": ("qwen", 0.15, 0.016, 0.47),
    "qwen3-max": ("qwen", 1.20, 0.24, 6.00),
    "qwen-max": ("qwen", 1.60, 0.32, 6.40),
    "qwen-plus": ("qwen", 0.40, 0.08, 1.20),
    "qwen-flash": ("qwen", 0.05, 0.01, 0.40),
    "qwen-turbo": ("qwen", 0.05, 0.01, 0.20),
    "kimi-k3": ("moonshot", 3.00, 0.30, 15.00),
    "kimi-k3.1-pro": ("moonshot", 2.00, 0.20, 10.00),
    "kimi-k2.6": ("moonshot", 0.95, 0.16, 4.00),
    "glm-5.3": ("zai", 1.40, 0.26, 4.40),
    "glm-5.3-flash": ("zai", 0.15, 0.03, 0.50),
    "glm-4.6": ("zai", 0.60, 0.11, 2.20),
    "MiniMax-M3": ("minimax", 0.30, 0.06, 1.20),
    "MiniMax-M2.7": ("minimax", 0.30, 0.06, 1.20),
    "doubao-seed-2-1-pro-260628": ("doubao", 0.8625, 0.1725, 4.3125),
    "seed-2-0-pro-260328": ("doubao", 0.50, 0.10, 3.00),
    "gpt-6.1-sol": ("openai", 2.00, 0.10, 10.00),
    "claude-sonnet-5-5": ("anthropic", 2.00, 0.10, 10.00),
    "gemini-3.8-flash": ("gemini", 0.75, 0.075, 3.75),
}

# provider -> (a model, base URL of its default region, key variables in lookup order)
PROVIDERS = {
    "deepseek": ("deepseek-flash", "https://api.deepseek.com", ("DEEPSEEK_API_KEY",)),
    "qwen": (
        "qwen-plus",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        ("DASHSCOPE_API_KEY",),
    ),
    "moonshot": ("kimi-k2.6", "https://api.moonshot.ai/v1", ("MOONSHOT_API_KEY",)),
    "zai": ("glm-4.6", "https://api.z.ai/api/paas/v4", ("ZAI_API_KEY", "ZHIPUAI_API_KEY")),
    "minimax": ("MiniMax-M2.7", "https://api.minimax.io/v1", ("MINIMAX_API_KEY",)),
    "doubao": (
        "seed-2-0-pro-260328",
        "https://ark.ap-southeast.bytepluses.com/api/v3",
        ("ARK_API_KEY",),
    ),
    "openai": ("gpt-6.1-sol", "https://api.openai.com/v1", ("OPENAI_API_KEY",)),
    "anthropic": ("claude-sonnet-5-5", "https://api.anthropic.com/v1", ("ANTHROPIC_API_KEY",)),
    "gemini": (
        "gemini-3.8-flash",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        ("GEMINI_API_KEY",),
    ),
    "mistral": ("mistral-large-4", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",)),
}

MILLION = 1_000_000


# --- loading ----------------------------------------------------------------------------------


def test_load_catalog_is_cached(catalog: Catalog) -> None:
    assert load_catalog() is catalog


def test_catalog_has_exactly_the_documented_providers(catalog: Catalog) -> None:
    assert set(catalog.providers) == set(PROVIDERS)


def test_every_provider_has_a_display_name_and_chinese_providers_have_quirk_notes(
    catalog: Catalog,
) -> None:
    for provider in catalog.providers.values():
        assert provider.display_name
    for provider_id in ("deepseek", "qwen", "moonshot", "zai", "minimax", "doubao"):
        assert catalog.providers[provider_id].notes


# --- resolving each provider -------------------------------------------------------------------


@pytest.mark.parametrize("provider_id", sorted(PROVIDERS))
def test_resolve_one_model_of_every_provider(catalog: Catalog, provider_id: str) -> None:
    model_name, base_url, keys = PROVIDERS[provider_id]
    model = catalog.resolve(model_name)
    assert model.name == model_name
    assert model.model_id == model_name
    assert model.provider == provider_id
    assert model.base_url == base_url
    assert model.key_variables() == keys
    assert model.region == catalog.providers[provider_id].default_region
    assert catalog.providers[provider_id].base_url == base_url


@pytest.mark.parametrize("name", sorted(REFERENCE_PRICES))
def test_prices_match_the_reference_and_carry_source_and_date(catalog: Catalog, name: str) -> None:
    provider_id, price_in, price_cached, price_out = REFERENCE_PRICES[name]
    model = catalog.resolve(name)
    assert model.provider == provider_id
    assert model.price is not None
    assert model.price.input == pytest.approx(price_in)
    assert model.price.cached_input == pytest.approx(price_cached)
    assert model.price.output == pytest.approx(price_out)
    assert model.price.source
    assert model.price.as_of


def test_every_table_model_is_a_catalog_name(catalog: Catalog) -> None:
    assert set(REFERENCE_PRICES) | {"mistral-large-4"} <= set(catalog.names())


def test_base_urls_are_https_without_trailing_slash(catalog: Catalog) -> None:
    for provider in catalog.providers.values():
        for url in provider.regions.values():
            assert url.startswith("https://")
            assert not url.endswith("/")


# --- legacy names, aliases and case -------------------------------------------------------------


@pytest.mark.parametrize("name", ["deepseek-chat", "deepseek-reasoner"])
def test_legacy_deepseek_names_send_their_own_id_and_are_billed_as_flash(
    catalog: Catalog, name: str
) -> None:
    model = catalog.resolve(name)
    flash = catalog.resolve("deepseek-flash")
    assert model.name == name
    assert model.model_id == name
    assert model.price is not None
    assert flash.price is not None
    assert model.price.model_dump(exclude={"source"}) == flash.price.model_dump(exclude={"source"})
    assert model.price.source is not None
    assert "billed as deepseek-flash" in model.price.source


@pytest.mark.parametrize(
    ("alias", "model_id", "region", "base_url"),
    [
        (
            "doubao-seed-2-1-pro",
            "doubao-seed-2-1-pro-260628",
            "cn",
            "https://ark.cn-beijing.volces.com/api/v3",
        ),
        (
            "seed-2-0-pro",
            "seed-2-0-pro-260328",
            "intl",
            "https://ark.ap-southeast.bytepluses.com/api/v3",
        ),
    ],
)
def test_alias_keeps_the_typed_name_and_sends_the_model_id(
    catalog: Catalog, alias: str, model_id: str, region: str, base_url: str
) -> None:
    model = catalog.resolve(alias)
    assert model.name == alias
    assert model.model_id == model_id
    assert model.region == region
    assert model.base_url == base_url
    assert model.price == catalog.resolve(model_id).price
    assert alias in catalog.names()


def test_names_are_matched_case_insensitively_and_reported_in_catalog_spelling(
    catalog: Catalog,
) -> None:
    model = catalog.resolve("minimax-m3")
    assert model.name == "MiniMax-M3"
    assert model.model_id == "MiniMax-M3"
    assert catalog.resolve("  QWEN-MAX ").name == "qwen-max"


def test_names_are_unique_case_insensitively(catalog: Catalog) -> None:
    names = [name.lower() for name in catalog.names()]
    assert len(names) == len(set(names))


def test_lookup_returns_none_for_unknown(catalog: Catalog) -> None:
    assert catalog.lookup("no-such-model") is None
    found = catalog.lookup("DeepSeek-Chat")
    assert found is not None
    assert (found.name, found.provider_id, found.model_id) == (
        "deepseek-chat",
        "deepseek",
        "deepseek-chat",
    )


# --- regions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "region", "base_url"),
    [
        ("qwen-max", "intl", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"),
        ("qwen-max", "cn", "https://dashscope.aliyuncs.com/compatible-mode/v1"),
        ("qwen-max", "us", "https://dashscope-us.aliyuncs.com/compatible-mode/v1"),
        ("kimi-k3", "cn", "https://api.moonshot.cn/v1"),
        ("glm-5.3", "cn", "https://open.bigmodel.cn/api/paas/v4"),
        ("MiniMax-M3", "cn", "https://api.minimaxi.com/v1"),
        ("seed-2-0-pro", "cn", "https://ark.cn-beijing.volces.com/api/v3"),
        ("doubao-seed-2-1-pro", "intl", "https://ark.ap-southeast.bytepluses.com/api/v3"),
    ],
)
def test_regional_endpoints(catalog: Catalog, name: str, region: str, base_url: str) -> None:
    model = catalog.resolve(name, region=region)
    assert model.region == region
    assert model.base_url == base_url


def test_price_applies_only_in_the_models_own_region(catalog: Catalog) -> None:
    assert catalog.resolve("qwen-max", region="intl").price is not None
    # Beijing bills differently (in CNY): unknown beats wrong.
    assert catalog.resolve("qwen-max", region="cn").price is None
    assert catalog.resolve("doubao-seed-2-1-pro-260628", region="cn").price is not None
    assert catalog.resolve("doubao-seed-2-1-pro-260628", region="intl").price is None


def test_region_is_case_insensitive(catalog: Catalog) -> None:
    assert catalog.resolve("qwen-max", region="CN").region == "cn"


def test_unknown_region_lists_the_valid_ones(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match=r"provider 'qwen' has no region 'eu'") as info:
        catalog.resolve("qwen-max", region="eu")
    assert "intl (default), cn, us" in str(info.value)
    assert not isinstance(info.value, UnknownModelError)


def test_single_region_provider_rejects_other_regions(catalog: Catalog) -> None:
    assert catalog.resolve("gpt-6.1-sol", region="global").region == "global"
    with pytest.raises(ConfigError, match=r"valid regions: global \(default\)"):
        catalog.resolve("gpt-6.1-sol", region="cn")


# --- prices -------------------------------------------------------------------------------------


def test_doubao_cny_billing_is_stated_in_the_source(catalog: Catalog) -> None:
    price = catalog.resolve("doubao-seed-2-1-pro-260628").price
    assert price is not None
    assert price.source is not None
    assert "CNY" in price.source


def test_mistral_large_4_has_no_price_and_says_why(catalog: Catalog) -> None:
    assert catalog.resolve("mistral-large-4").price is None
    notes = " ".join(catalog.providers["mistral"].models["mistral-large-4"].notes)
    assert "disagree" in notes


def test_deepseek_as_of_is_the_checked_date(catalog: Catalog) -> None:
    price = catalog.resolve("deepseek-flash").price
    assert price is not None
    assert price.as_of == "2026-11-15"


USAGE = Usage(prompt_tokens=MILLION, completion_tokens=MILLION, cached_tokens=0)
TUESDAY = datetime(2026, 11, 17, tzinfo=timezone.utc)
SATURDAY = datetime(2026, 11, 21, tzinfo=timezone.utc)


def _flash_price(catalog: Catalog) -> Price:
    price = catalog.resolve("deepseek-flash").price
    assert price is not None
    return price


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (TUESDAY.replace(hour=0, minute=59), 0.75),
        (TUESDAY.replace(hour=1), 1.50),
        (TUESDAY.replace(hour=3, minute=59), 1.50),
        (TUESDAY.replace(hour=4), 0.75),  # windows are [start, end)
        (TUESDAY.replace(hour=5, minute=30), 0.75),
        (TUESDAY.replace(hour=6), 1.50),
        (TUESDAY.replace(hour=9, minute=59), 1.50),
        (TUESDAY.replace(hour=10), 0.75),
        (TUESDAY.replace(hour=15), 0.75),
        (SATURDAY.replace(hour=2), 0.75),  # weekdays only
        # 10:30 in Beijing is 02:30 UTC: peak.
        (datetime(2026, 11, 17, 10, 30, tzinfo=timezone(timedelta(hours=8))), 1.50),
    ],
)
def test_deepseek_peak_hours_double_the_cost(
    catalog: Catalog, at: datetime, expected: float
) -> None:
    # 1M input (0.15) + 1M output (0.60) = 0.75 off-peak.
    assert _flash_price(catalog).cost_usd(USAGE, at=at) == pytest.approx(expected)


def test_deepseek_cost_without_a_time_is_off_peak(catalog: Catalog) -> None:
    assert _flash_price(catalog).cost_usd(USAGE) == pytest.approx(0.75)


def test_deepseek_cached_tokens_use_the_cached_price_and_peak_doubles_them(
    catalog: Catalog,
) -> None:
    usage = Usage(prompt_tokens=MILLION, completion_tokens=0, cached_tokens=MILLION // 2)
    off_peak = 0.5 * 0.15 + 0.5 * 0.003
    price = _flash_price(catalog)
    assert price.cost_usd(usage, at=TUESDAY.replace(hour=12)) == pytest.approx(off_peak)
    assert price.cost_usd(usage, at=TUESDAY.replace(hour=2)) == pytest.approx(2 * off_peak)


def test_legacy_deepseek_names_inherit_peak_pricing(catalog: Catalog) -> None:
    price = catalog.resolve("deepseek-chat").price
    assert price is not None
    assert price.cost_usd(USAGE, at=TUESDAY.replace(hour=2)) == pytest.approx(1.50)


def test_deepseek_v4_pro_peak_price(catalog: Catalog) -> None:
    price = catalog.resolve("deepseek-v4-pro").price
    assert price is not None
    assert price.cost_usd(USAGE, at=TUESDAY.replace(hour=7)) == pytest.approx(2 * (0.66 + 1.98))


def test_other_providers_have_no_peak(catalog: Catalog) -> None:
    price = catalog.resolve("qwen-plus").price
    assert price is not None
    assert price.peak is None
    assert price.cost_usd(USAGE, at=TUESDAY.replace(hour=2)) == pytest.approx(1.60)


# --- unknown names ------------------------------------------------------------------------------


def test_unknown_prefix_suggests_models_that_start_with_it(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("qwen")
    error = info.value
    assert error.name == "qwen"
    assert len(error.suggestions) == 5
    assert error.suggestions[:2] == ("qwen-max", "qwen-plus")
    assert all(name.startswith("qwen") for name in error.suggestions)
    assert "unknown model 'qwen'; closest known names: qwen-max, qwen-plus" in str(error)
    assert "modelgate.yaml" in str(error)


def test_unknown_typo_suggests_the_close_spelling(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("deepseek-caht")
    assert info.value.suggestions[0] == "deepseek-chat"


def test_unknown_name_containing_a_known_one_suggests_it(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("openai/gpt-6.1-sol")
    assert info.value.suggestions == ("gpt-6.1-sol",)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [("anthropic", "claude-sonnet-5-5"), ("moonshot", "kimi-k3"), ("zai", "glm-5.3")],
)
def test_a_provider_name_suggests_its_models(
    catalog: Catalog, provider: str, expected: str
) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve(provider)
    assert expected in info.value.suggestions
    assert set(info.value.suggestions) <= set(catalog.providers[provider].models)


def test_unknown_name_without_any_close_match(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("zzzzzz")
    assert info.value.suggestions == ()
    assert "closest" not in str(info.value)


def test_unknown_model_error_is_a_config_error_and_pickles(catalog: Catalog) -> None:
    with pytest.raises(ConfigError) as info:
        catalog.resolve("qwen")
    error = info.value
    assert isinstance(error, UnknownModelError)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, UnknownModelError)
    assert str(copy) == str(error)
    assert copy.suggestions == error.suggestions


def test_closest_names_limits_and_dedupes_case_insensitively() -> None:
    candidates = ["model-a", "MODEL-A", "model-b", "model-c", "model-d", "model-e", "model-f"]
    found = closest_names("model", candidates)
    assert len(found) == 5
    assert found[0] == "model-a"
    assert "MODEL-A" not in found
    assert closest_names("   ", candidates) == []
    assert closest_names("model", candidates, limit=2) == ["model-a", "model-b"]


# --- a broken catalog fails loudly --------------------------------------------------------------

GOOD = """
schema_version: 1
providers:
  acme:
    display_name: Acme
    default_region: global
    regions: {global: https://api.acme.test/v1}
    api_key_env: [ACME_API_KEY]
    models:
      acme-1:
        price: {input: 1, output: 2, source: acme docs, as_of: "2026-11-01"}
"""


def test_parse_catalog_accepts_a_minimal_catalog() -> None:
    catalog = parse_catalog(GOOD)
    assert catalog.resolve("acme-1").base_url == "https://api.acme.test/v1"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("acme-1:\n", "acme-1:\n        colour: red\n", "unknown field"),
        ("default_region: global", "default_region: eu", "default_region 'eu' is not in regions"),
        ("https://api.acme.test/v1}", "https://api.acme.test/v1/}", "without a trailing slash"),
        ('as_of: "2026-11-01"', "as_of: null", "needs a source and an as_of"),
        (
            '        price: {input: 1, output: 2, source: acme docs, as_of: "2026-11-01"}\n',
            "        aliases: []\n",
            "must explain why in notes",
        ),
        (
            "      acme-1:\n",
            "      acme-2: {price_as: acme-9}\n      acme-1:\n",
            "price_as 'acme-9' is not a priced model",
        ),
        (
            "      acme-1:\n",
            "      acme-2: {aliases: [ACME-1], notes: [x]}\n      acme-1:\n",
            "name 'acme-1' is used twice",
        ),
        ("api_key_env: [ACME_API_KEY]", "api_key_env: [acme key]", "not an environment variable"),
        ("schema_version: 1", "schema_version: 2", "schema_version"),
    ],
)
def test_parse_catalog_rejects_broken_files(old: str, new: str, problem: str) -> None:
    assert old in GOOD
    with pytest.raises(CatalogError, match=r"catalog\.yaml: invalid model catalog") as info:
        parse_catalog(GOOD.replace(old, new))
    assert problem in str(info.value)


def test_parse_catalog_reports_yaml_errors_with_the_line() -> None:
    with pytest.raises(CatalogError, match=r"^shipped\.yaml:3: "):
        parse_catalog("schema_version: 1\nproviders:\n  acme: x: y\n", source="shipped.yaml")


def test_load_yaml_rejects_duplicate_keys() -> None:
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        load_yaml("a: 1\nb: 2\na: 3\n")
    assert load_yaml("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n") == {
        "base": {"x": 1},
        "derived": {"x": 1, "y": 2},
    }


def test_load_yaml_keeps_dates_as_strings() -> None:
    assert load_yaml("as_of: 2026-11-15\nat: 2026-11-15T10:00:00Z\n") == {
        "as_of": "2026-11-15",
        "at": "2026-11-15T10:00:00Z",
    }
    # Only our loader changes: PyYAML's own safe loader still reads dates.
    assert not isinstance(yaml.safe_load("2026-11-15"), str)
