"""Declared intended changes: parsing and applying --modelgate-allow values."""

from __future__ import annotations

import pytest

from pytest_modelgate.config.settings import GateLimits, ModelgateConfig
from pytest_modelgate.errors import ConfigError
from pytest_modelgate.judge.allowances import (
    Allowance,
    allowance_json,
    apply_allowances,
    margin_names,
    parse_allowance,
)


def test_every_margin_can_be_allowed_and_nothing_else() -> None:
    names = margin_names()
    assert "cost_per_call_max_ratio" in names
    assert "pass_rate_max_drop" in names
    assert "error_rate_max_rise" in names
    # Judge settings are not margins: a run cannot declare its way to a weaker test.
    for setting in ("confidence", "resamples", "min_cases", "min_stable_pass_rate"):
        assert setting not in names


def test_parse_reads_the_value_and_the_reason() -> None:
    assert parse_allowance(" cost_per_call_max_ratio = 12 : qwen-max, on purpose", "src") == (
        Allowance("cost_per_call_max_ratio", 12.0, "qwen-max, on purpose", "src")
    )
    assert parse_allowance("latency_p95_max_ratio=none", "src").value is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "src: expected MARGIN=VALUE"),
        ("=3", "src: expected MARGIN=VALUE"),
        ("confidence=0.9", "src: unknown margin 'confidence'"),
        ("pass_rate_max_drop=lots", "src: pass_rate_max_drop: expected a number or none"),
    ],
)
def test_parse_errors_name_the_source(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message):
        parse_allowance(text, "src")


def test_apply_sets_the_margin_and_remembers_what_it_was() -> None:
    config = ModelgateConfig(gate=GateLimits(cost_per_call_max_ratio=1.3))
    new, applied = apply_allowances(
        config,
        [
            parse_allowance("cost_per_call_max_ratio=5", "ini"),
            parse_allowance("cost_per_call_max_ratio=12: on purpose", "cli"),  # later wins
        ],
    )
    assert new.gate.cost_per_call_max_ratio == 12.0
    assert new.gate.latency_p95_max_ratio == config.gate.latency_p95_max_ratio
    assert config.gate.cost_per_call_max_ratio == 1.3  # the original is untouched
    assert [allowance_json(a) for a in applied] == [
        {
            "margin": "cost_per_call_max_ratio",
            "value": 12.0,
            "was": 1.3,
            "reason": "on purpose",
            "source": "cli",
        }
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cost_per_call_max_ratio=0.9", "cli: cost_per_call_max_ratio=0.9: Input should be"),
        ("pass_rate_max_drop=2", "cli: pass_rate_max_drop=2: Input should be less than"),
    ],
)
def test_apply_checks_the_range_like_modelgate_yaml(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message):
        apply_allowances(ModelgateConfig(), [parse_allowance(text, "cli")])


def test_no_allowance_leaves_the_config_as_it_is() -> None:
    config = ModelgateConfig()
    assert apply_allowances(config, []) == (config, ())
