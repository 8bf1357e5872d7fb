"""Unit tests of modelgate.yaml loading, model resolution and API keys (config/settings.py)."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pydantic
import pytest

from pytest_modelgate.calls.catalog import Catalog, load_catalog
from pytest_modelgate.calls.endpoints import Price, ResolvedModel
from pytest_modelgate.config.settings import (
    ClientSettings,
    GateLimits,
    ModelgateConfig,
    api_key_for,
    check_config,
    find_config,
    load_config,
    require_api_key,
    resolve_model,
)
from pytest_modelgate.errors import ConfigError, MissingAPIKeyError, UnknownModelError

BRIEF_EXAMPLE = """\
stable: deepseek-chat            # optional default stable model name
candidate: qwen-max              # optional (the option usually gives it)
models:
  support-sim-a:                 # a new model: base_url required
    base_url: http://127.0.0.1:8900/v1
    api_key_env: SIM_API_KEY     # optional
    model_id: something          # optional, default the key
    provider: simulator          # optional
    price: {input: 0.27, output: 1.10, cached_input: 0.07}
  qwen-max:                      # an override of a catalog model: any subset of fields
    region: cn
    price: {input: 1.0, output: 2.0}
gate:
  pass_rate_max_drop: 0.02
  error_rate_max_rise: 0.01
  fallback_rate_max_rise: 0.02
  latency_p50_max_ratio: 1.2
  latency_p95_max_ratio: 1.2
  ttft_p95_max_ratio: 1.2
  cost_per_call_max_ratio: 1.15
  tokens_per_call_max_ratio: null   # null = reported, not gated
client:
  max_retries: 2
  timeout_s: 60
  retry_after_cap_s: 30
  backoff_base_s: 0.5
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def write(tmp_path: Path, text: str, name: str = "modelgate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_from(tmp_path: Path, text: str) -> ModelgateConfig:
    return load_config(write(tmp_path, text))


def config_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    # Every line of every config error names the file.
    assert all(line.startswith(f"{path}") for line in message.splitlines()), message
    return message


# --- defaults and loading -----------------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    config = ModelgateConfig()
    assert config.stable is None
    assert config.candidate is None
    assert config.models == {}
    assert config.path is None
    assert config.label == "modelgate.yaml"
    assert config.gate == GateLimits(
        pass_rate_max_drop=0.02,
        error_rate_max_rise=0.01,
        fallback_rate_max_rise=0.02,
        latency_p50_max_ratio=1.2,
        latency_p95_max_ratio=1.2,
        ttft_p95_max_ratio=1.2,
        cost_per_call_max_ratio=1.15,
        tokens_per_call_max_ratio=None,
    )
    assert config.client == ClientSettings(
        max_retries=2, timeout_s=60, retry_after_cap_s=30, backoff_base_s=0.5
    )


def test_load_the_documented_example(tmp_path: Path) -> None:
    path = write(tmp_path, BRIEF_EXAMPLE)
    config = load_config(path)
    assert config.path == path
    assert config.label == str(path)
    assert (config.stable, config.candidate) == ("deepseek-chat", "qwen-max")
    assert set(config.models) == {"support-sim-a", "qwen-max"}
    sim = config.models["support-sim-a"]
    assert sim.base_url == "http://127.0.0.1:8900/v1"
    assert sim.price == Price(input=0.27, output=1.10, cached_input=0.07)
    assert config.gate == GateLimits()
    assert config.client == ClientSettings()


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "models:\ngate:\nclient:\n"])
def test_empty_file_and_empty_sections_mean_defaults(tmp_path: Path, text: str) -> None:
    config = config_from(tmp_path, text)
    assert config.models == {}
    assert config.gate == GateLimits()
    assert config.client == ClientSettings()


def test_partial_sections_keep_other_defaults(tmp_path: Path) -> None:
    config = config_from(tmp_path, "gate: {cost_per_call_max_ratio: null}\nclient: {timeout_s: 5}")
    assert config.gate.cost_per_call_max_ratio is None
    assert config.gate.latency_p95_max_ratio == 1.2
    assert config.client.timeout_s == 5
    assert config.client.max_retries == 2


def test_config_is_frozen(tmp_path: Path) -> None:
    config = config_from(tmp_path, BRIEF_EXAMPLE)
    with pytest.raises(pydantic.ValidationError):
        config.stable = "other"
    with pytest.raises(pydantic.ValidationError):
        config.gate.pass_rate_max_drop = 0.5


# --- find_config --------------------------------------------------------------------------------


def test_find_config_prefers_the_explicit_path(tmp_path: Path) -> None:
    write(tmp_path, "")
    explicit = write(tmp_path, "", name="other.yaml")
    assert find_config(tmp_path, explicit) == explicit


def test_find_config_explicit_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"not found: .*nope\.yaml"):
        find_config(tmp_path, missing)


def test_find_config_explicit_must_be_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        find_config(tmp_path, tmp_path)


def test_find_config_uses_rootdir_file_or_none(tmp_path: Path) -> None:
    assert find_config(tmp_path, None) is None
    path = write(tmp_path, "")
    assert find_config(tmp_path, None) == path


# --- error messages name the file and the field -------------------------------------------------


def test_validation_error_names_file_and_field_path(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        """\
        models:
          support-sim-a:
            base_url: http://127.0.0.1:8900/v1
            price: {input: -0.27, output: 1.10}
        """,
    )
    path = tmp_path / "modelgate.yaml"
    assert message == (
        f"{path}: models.support-sim-a.price.input: Input should be greater than or equal to 0"
        " (got -0.27)"
    )


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    message = config_error(
        tmp_path,
        """\
        gate:
          pass_rate_max_drp: 0.02
          pass_rate_max_drop: 2
        client:
          max_retries: 2.5
          timeout_s: "60"
        """,
    )
    lines = message.splitlines()
    assert len(lines) == 4
    assert any(
        "gate.pass_rate_max_drp: unknown field, did you mean 'pass_rate_max_drop'?" in line
        for line in lines
    )
    assert any(
        "gate.pass_rate_max_drop: Input should be less than or equal to 1" in x for x in lines
    )
    assert any("client.max_retries: Input should be a valid integer (got 2.5)" in x for x in lines)
    # Strict: a quoted number is a mistake, not a number.
    assert any("client.timeout_s: Input should be a valid number (got '60')" in x for x in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stabel: qwen-max\n", "stabel: unknown field, did you mean 'stable'?"),
        ("colour: red\n", "colour: unknown field (allowed: stable, candidate, models, gate,"),
        (
            "models: {m: {base_url: http://x, price: {input: 1, output: 2, cached: 1}}}\n",
            "models.m.price.cached: unknown field, did you mean 'cached_input'?",
        ),
        ("models: {m: {base_url: http://x, price: {input: 1}}}\n", "models.m.price.output: Field"),
        (
            "models: {m: {base_url: ftp://x}}\n",
            "models.m.base_url: base_url must be an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            "models: {m: {base_url: http://x, api_key_env: my key}}\n",
            "models.m.api_key_env: api_key_env must name an environment variable",
        ),
        (
            "models: {m: {base_url: http://x, regoin: cn}}\n",
            "models.m.regoin: unknown field, did you mean 'region'?",
        ),
        (
            "models: {m: {base_url: http://x, price: {input: 1, output: 2, peak: {multiplier: 0, "
            "utc_hours: [[1, 4]]}}}}\n",
            "models.m.price.peak.multiplier: Input should be greater than 0",
        ),
        ("models: {Qwen-Max: {}, qwen-max: {}}\n", "models: 'Qwen-Max' and 'qwen-max' name the"),
        ("models: {m: 3}\n", "models.m: Input should be a valid dictionary or instance"),
        ("models: [qwen-max]\n", "models: Input should be a valid dictionary"),
        ("stable: ''\n", "stable: String should have at least 1 character"),
        ("gate: {latency_p95_max_ratio: 0}\n", "gate.latency_p95_max_ratio: Input should be"),
        ("client: {max_retries: -1}\n", "client.max_retries: Input should be greater than or"),
    ],
)
def test_config_errors_name_the_field(tmp_path: Path, text: str, expected: str) -> None:
    message = config_error(tmp_path, text)
    assert f"{tmp_path / 'modelgate.yaml'}: {expected}" in message


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = config_error(tmp_path, "stable: qwen-max\nmodels:\n  m: x: y\n")
    assert message.startswith(f"{tmp_path / 'modelgate.yaml'}:3: invalid YAML:")
    assert "mapping values are not allowed" in message


def test_duplicate_keys_are_an_error(tmp_path: Path) -> None:
    message = config_error(tmp_path, "models:\n  a: {base_url: http://x}\n  a: {region: cn}\n")
    assert message.startswith(f"{tmp_path / 'modelgate.yaml'}:3: invalid YAML:")
    assert "duplicate key 'a'" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- qwen-max\n- deepseek-chat\n", "list"), ("qwen-max\n", "string"), ("3\n", "number")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    message = config_error(tmp_path, text)
    assert "the top level must be a mapping of settings" in message
    assert message.endswith(f"not a {kind}")


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^{tmp_path}: cannot read the file"):
        load_config(tmp_path)
    path = tmp_path / "modelgate.yaml"
    path.write_bytes(b"stable: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"modelgate\.yaml: not UTF-8 text"):
        load_config(path)


# --- resolve_model: precedence config > catalog -------------------------------------------------


def test_catalog_model_without_config_entry(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, BRIEF_EXAMPLE)
    assert resolve_model("deepseek-chat", config, catalog) == catalog.resolve("deepseek-chat")
    assert resolve_model("glm-5.3", ModelgateConfig(), catalog) == catalog.resolve("glm-5.3")


def test_new_model_from_config(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, BRIEF_EXAMPLE)
    model = resolve_model("support-sim-a", config, catalog)
    assert model == ResolvedModel(
        name="support-sim-a",
        model_id="something",
        provider="simulator",
        base_url="http://127.0.0.1:8900/v1",
        api_key_env="SIM_API_KEY",
        # A price without a source names the file it came from.
        price=Price(input=0.27, output=1.10, cached_input=0.07, source="modelgate.yaml"),
        region=None,
    )


def test_new_model_defaults(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {local: {base_url: 'http://127.0.0.1:9/v1/'}}")
    model = resolve_model("LOCAL", config, catalog)
    assert model.name == "local"
    assert model.model_id == "local"
    assert model.base_url == "http://127.0.0.1:9/v1"  # no trailing slash, like the catalog
    assert model.api_key_env is None
    assert model.provider is None
    assert model.price is None


def test_override_region_only(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {qwen-max: {region: cn}}")
    model = resolve_model("qwen-max", config, catalog)
    assert model.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert model.region == "cn"
    assert model.api_key_env == "DASHSCOPE_API_KEY"
    assert model.model_id == "qwen-max"
    # The catalog's Singapore list price does not hold in Beijing.
    assert model.price is None


def test_override_price_only(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(
        tmp_path,
        "models: {qwen-max: {price: {input: 1.0, output: 2.0, source: contract, as_of: 2026-12}}}",
    )
    model = resolve_model("qwen-max", config, catalog)
    catalog_model = catalog.resolve("qwen-max")
    assert model.base_url == catalog_model.base_url
    assert model.region == "intl"
    # The price is replaced as a whole: cached input does not leak in from the catalog.
    assert model.price == Price(input=1.0, output=2.0, source="contract", as_of="2026-12")


def test_unquoted_price_date_is_read_as_text(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(
        tmp_path, "models: {qwen-max: {price: {input: 1, output: 2, as_of: 2026-11-20}}}"
    )
    price = resolve_model("qwen-max", config, catalog).price
    assert price is not None
    assert price.as_of == "2026-11-20"


def test_override_region_and_price_as_in_the_example(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, BRIEF_EXAMPLE)
    model = resolve_model("QWEN-MAX", config, catalog)
    assert model.name == "qwen-max"
    assert model.region == "cn"
    assert model.base_url == "https://dashscope.aliyuncs.com/compatible-mode/v1"
    assert model.price == Price(input=1.0, output=2.0, source="modelgate.yaml")


def test_override_base_url_keeps_the_catalog_price(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(
        tmp_path, "models: {deepseek-chat: {base_url: 'http://proxy.internal/v1', model_id: x}}"
    )
    model = resolve_model("deepseek-chat", config, catalog)
    assert model.base_url == "http://proxy.internal/v1"
    assert model.model_id == "x"
    assert model.price == catalog.resolve("deepseek-chat").price
    assert model.api_key_env == "DEEPSEEK_API_KEY"


def test_override_key_variable_drops_catalog_fallbacks(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {glm-5.3: {api_key_env: TEAM_GLM_KEY}}")
    model = resolve_model("glm-5.3", config, catalog)
    assert model.key_variables() == ("TEAM_GLM_KEY",)


def test_explicit_nulls_clear_catalog_values(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {gpt-6.1-sol: {price: null, api_key_env: null}}")
    model = resolve_model("gpt-6.1-sol", config, catalog)
    assert model.price is None
    assert model.key_variables() == ()


def test_override_with_unknown_region_names_file_entry_and_valid_regions(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = config_from(tmp_path, "models: {kimi-k3: {region: eu}}")
    with pytest.raises(ConfigError) as info:
        resolve_model("kimi-k3", config, catalog)
    assert str(info.value) == (
        f"{config.label}: models.kimi-k3.region: provider 'moonshot' has no region 'eu'; "
        "valid regions: intl (default), cn"
    )


def test_override_region_of_a_doubao_model_on_its_own_platform(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = config_from(tmp_path, "models: {doubao-seed-2-1-pro: {region: cn}}")
    model = resolve_model("doubao-seed-2-1-pro", config, catalog)
    assert model.model_id == "doubao-seed-2-1-pro-260628"
    assert model.price == catalog.resolve("doubao-seed-2-1-pro-260628").price


def test_config_model_without_base_url_not_in_catalog(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {qwen-mx: {region: cn}}")
    with pytest.raises(ConfigError) as info:
        resolve_model("qwen-mx", config, catalog)
    message = str(info.value)
    assert message.startswith(f"{config.label}: models.qwen-mx: 'qwen-mx' is not in the built-in")
    assert "closest catalog names: qwen-max" in message
    assert "needs a base_url" in message
    assert not isinstance(info.value, UnknownModelError)


def test_new_model_of_a_catalog_provider_uses_its_endpoint_and_keys(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = config_from(
        tmp_path,
        """\
        models:
          my-doubao:
            provider: doubao
            region: CN
            model_id: ep-20261101-abcde
            price: {input: 0.8625, output: 4.3125, source: mapped to doubao-seed-2-1-pro}
          glm-next: {provider: zai}
        """,
    )
    model = resolve_model("my-doubao", config, catalog)
    assert model.base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert model.region == "cn"
    assert model.model_id == "ep-20261101-abcde"
    assert model.key_variables() == ("ARK_API_KEY",)
    assert model.price is not None
    assert model.price.source == "mapped to doubao-seed-2-1-pro"
    glm = resolve_model("glm-next", config, catalog)
    assert glm.base_url == "https://api.z.ai/api/paas/v4"
    assert glm.region == "intl"
    assert glm.key_variables() == ("ZAI_API_KEY", "ZHIPUAI_API_KEY")


def test_new_model_of_a_catalog_provider_with_a_bad_region(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = config_from(tmp_path, "models: {x: {provider: minimax, region: us}}")
    with pytest.raises(ConfigError, match=r"models\.x\.region: provider 'minimax' has no region"):
        resolve_model("x", config, catalog)


def test_unknown_name_suggests_from_catalog_and_config(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, BRIEF_EXAMPLE)
    with pytest.raises(UnknownModelError) as info:
        resolve_model("support-sim", config, catalog)
    assert info.value.suggestions[0] == "support-sim-a"
    assert f"under 'models:' in {config.label}" in str(info.value)
    with pytest.raises(UnknownModelError) as info:
        resolve_model("qwen", config, catalog)
    assert info.value.suggestions[0] == "qwen-max"
    # A name in both config and catalog is suggested once.
    assert info.value.suggestions.count("qwen-max") == 1


# --- check_config -------------------------------------------------------------------------------


def test_check_config_accepts_the_example(tmp_path: Path, catalog: Catalog) -> None:
    check_config(config_from(tmp_path, BRIEF_EXAMPLE), catalog)


def test_check_config_names_the_field_of_an_unknown_default_model(
    tmp_path: Path, catalog: Catalog
) -> None:
    config = config_from(tmp_path, "stable: deepseek-chat\ncandidate: kimi-k4\n")
    with pytest.raises(UnknownModelError) as info:
        check_config(config, catalog)
    assert str(info.value).startswith(f"{config.label}: candidate: unknown model 'kimi-k4'")
    assert "kimi-k3" in info.value.suggestions


def test_check_config_finds_a_broken_model_entry(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {orphan: {model_id: x}}")
    with pytest.raises(ConfigError, match=r"models\.orphan: 'orphan' is not in the built-in"):
        check_config(config, catalog)


# --- API keys -----------------------------------------------------------------------------------


def test_api_key_lookup_with_fallbacks(catalog: Catalog) -> None:
    glm = catalog.resolve("glm-5.3")
    assert api_key_for(glm, {}) is None
    assert api_key_for(glm, {"ZHIPUAI_API_KEY": "fallback"}) == "fallback"
    assert api_key_for(glm, {"ZAI_API_KEY": "primary", "ZHIPUAI_API_KEY": "fallback"}) == "primary"
    # A blank variable (a missing CI secret) counts as unset.
    assert api_key_for(glm, {"ZAI_API_KEY": " ", "ZHIPUAI_API_KEY": "fallback"}) == "fallback"
    assert api_key_for(glm, {"ZAI_API_KEY": "key\n"}) == "key"


def test_require_api_key(catalog: Catalog) -> None:
    qwen = catalog.resolve("qwen-max")
    assert require_api_key(qwen, {"DASHSCOPE_API_KEY": "sk"}) == "sk"
    with pytest.raises(MissingAPIKeyError) as info:
        require_api_key(qwen, {"OPENAI_API_KEY": "sk"})
    assert str(info.value) == "model 'qwen-max' needs an API key: set DASHSCOPE_API_KEY"
    assert info.value.variables == ("DASHSCOPE_API_KEY",)


def test_require_api_key_names_every_variable(catalog: Catalog) -> None:
    with pytest.raises(MissingAPIKeyError) as info:
        require_api_key(catalog.resolve("glm-5.3"), {"ZAI_API_KEY": ""})
    assert str(info.value) == (
        "model 'glm-5.3' needs an API key: set ZAI_API_KEY (or ZHIPUAI_API_KEY)"
    )
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)


def test_model_without_key_variable_needs_no_key(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, "models: {local: {base_url: 'http://127.0.0.1:9/v1'}}")
    local = resolve_model("local", config, catalog)
    assert api_key_for(local, {"ANY": "x"}) is None
    assert require_api_key(local, {}) is None


def test_config_declared_key_variable_is_required(tmp_path: Path, catalog: Catalog) -> None:
    config = config_from(tmp_path, BRIEF_EXAMPLE)
    sim = resolve_model("support-sim-a", config, catalog)
    assert require_api_key(sim, {"SIM_API_KEY": "s"}) == "s"
    with pytest.raises(MissingAPIKeyError, match=r"set SIM_API_KEY$"):
        require_api_key(sim, {})
