"""Issue 10, bounds: every numeric setting of modelgate.yaml is finite and in range.

A value that would make every call fail (``timeout_s: .inf``), gate nothing (a ratio of
``1.0e300``) or never finish (``max_retries: 1000000``) is a ``ConfigError`` naming the file and
the field path, and YAML exponent floats (``1e5``, ``1.0e300``) are read as numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_modelgate.config.settings import ClientSettings, GateLimits, load_config
from pytest_modelgate.config.yamlfile import load_yaml
from pytest_modelgate.errors import ConfigError


def config_error(tmp_path: Path, text: str) -> str:
    path = tmp_path / "modelgate.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e5", 100000.0),
        ("1.0e300", 1.0e300),
        ("-2E-3", -0.002),
        (".5e3", 500.0),
        ("1.0e+3", 1000.0),
        (".inf", float("inf")),
        ("1_000", 1000),
        ("12", 12),
    ],
)
def test_yaml_exponent_floats_are_numbers(text: str, expected: float) -> None:
    value = load_yaml(f"x: {text}\n")["x"]
    assert value == expected
    assert isinstance(value, type(expected))


@pytest.mark.parametrize("text", ["1e", "e5", "1e5x", "2026-11-15", "v1.0e3", "1.2.3"])
def test_yaml_strings_that_look_numeric_stay_strings(text: str) -> None:
    assert load_yaml(f"x: {text}\n")["x"] == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Item 2: a value that makes every call fail is refused, naming the field.
        ("client: {timeout_s: .inf}\n", "client.timeout_s: Input should be a finite number"),
        ("client: {timeout_s: .nan}\n", "client.timeout_s: Input should be a finite number"),
        ("client: {timeout_s: 1.0e300}\n", "client.timeout_s: Input should be less than or equal"),
        ("client: {deadline_s: .inf}\n", "client.deadline_s: Input should be a finite number"),
        ("client: {deadline_s: 0}\n", "client.deadline_s: Input should be greater than 0"),
        ("client: {max_retries: 11}\n", "client.max_retries: Input should be less than or equal"),
        ("client: {max_retries: 1e5}\n", "client.max_retries: Input should be a valid integer"),
        ("client: {backoff_base_s: -.inf}\n", "client.backoff_base_s: Input should be a finite"),
        ("client: {retry_after_cap_s: 1e9}\n", "client.retry_after_cap_s: Input should be less"),
        ("client: {max_response_bytes: 10}\n", "client.max_response_bytes: Input should be great"),
        (
            "client: {max_response_bytes: 1e300}\n",
            "client.max_response_bytes: Input should be a valid integer",
        ),
        (
            "client: {timeout_s: 30, deadline_s: 10}\n",
            "client: deadline_s (10) must be >= timeout_s (30)",
        ),
        ("gate: {latency_p95_max_ratio: 1.0e300}\n", "gate.latency_p95_max_ratio: Input should be"),
        ("gate: {cost_per_call_max_ratio: .inf}\n", "gate.cost_per_call_max_ratio: Input should"),
        ("gate: {latency_p50_max_ratio: 0.9}\n", "gate.latency_p50_max_ratio: Input should be gr"),
        ("gate: {pass_rate_max_drop: .nan}\n", "gate.pass_rate_max_drop: Input should be a finite"),
        ("gate: {error_rate_max_rise: 1.5}\n", "gate.error_rate_max_rise: Input should be less"),
        ("gate: {score_max_drop: .inf}\n", "gate.score_max_drop: Input should be a finite number"),
        ("gate: {confidence: 1.0}\n", "gate.confidence: Input should be less than 1"),
        ("gate: {confidence: 0.5}\n", "gate.confidence: Input should be greater than 0.5"),
        ("gate: {resamples: 99}\n", "gate.resamples: Input should be greater than or equal to 100"),
        ("gate: {resamples: 100001}\n", "gate.resamples: Input should be less than or equal"),
        ("gate: {min_cases: 0}\n", "gate.min_cases: Input should be greater than or equal to 1"),
        (
            "models: {m: {base_url: http://x, price: {input: .inf, output: 1}}}\n",
            "models.m.price.input: Input should be a finite number",
        ),
        (
            "models: {m: {base_url: http://x, price: {input: 1, output: 1e400}}}\n",
            "models.m.price.output: Input should be a finite number",
        ),
        (
            "models: {m: {base_url: http://x, price: {input: 1, output: 2, peak: {multiplier: "
            ".inf, utc_hours: [[1, 4]]}}}}\n",
            "models.m.price.peak.multiplier: Input should be a finite number",
        ),
    ],
)
def test_out_of_range_numbers_name_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    message = config_error(tmp_path, text)
    assert f"{tmp_path / 'modelgate.yaml'}: {expected}" in message, message


def test_exponent_numbers_in_range_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "modelgate.yaml"
    path.write_text(
        "gate: {resamples: 1000, cost_per_call_max_ratio: 1.2e0, score_max_drop: 5e-2}\n"
        "client: {timeout_s: 5e0, deadline_s: 1.5e1, max_response_bytes: 65536}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.gate.cost_per_call_max_ratio == 1.2
    assert config.gate.score_max_drop == 0.05
    assert config.client.timeout_s == 5.0
    assert config.client.deadline_s == 15.0
    assert config.client.max_response_bytes == 65536


def test_defaults_and_limits() -> None:
    client = ClientSettings()
    assert client.deadline_s == 300.0
    assert client.max_response_bytes == 16 * 1024 * 1024
    assert client.deadline_s >= client.timeout_s
    ClientSettings(max_retries=10)
    GateLimits(latency_p50_max_ratio=1.0)


# --------------------------------------------------------------------------------------------
# Marker arguments: finite numbers too


@pytest.mark.parametrize(
    ("marker", "kwargs", "problem"),
    [
        # An int too large for a float used to crash collection with an OverflowError.
        ("latency_budget", {"p95_ms": 10**400}, "p95_ms must be a number > 0"),
        ("quality", {"min_pass_rate": 10**400}, "min_pass_rate must be a fraction in [0, 1]"),
        ("cost_budget", {"usd_per_call": -(10**400)}, "usd_per_call must be a number > 0"),
        ("latency_budget", {"max_ratio": 1.0e300}, "max_ratio must be a number >= 1 and <= 1000"),
        ("cost_budget", {"max_ratio": float("inf")}, "max_ratio must be a number >= 1 and <= 1000"),
    ],
)
def test_marker_numbers_are_finite_and_in_range(
    marker: str, kwargs: dict[str, object], problem: str
) -> None:
    from pytest_modelgate.markers import MarkerError, parse_markers

    with pytest.raises(MarkerError) as info:
        parse_markers("t.py::t", Path("t.py"), [(marker, (), kwargs)])
    assert problem in str(info.value)
    assert str(info.value).startswith(f"t.py::t: @pytest.mark.{marker}(")


# --------------------------------------------------------------------------------------------
# Simulator scenarios: finite numbers too


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("models:\n  a: {latency_ms: .inf}\n", "models.a.latency_ms.median: Input should be a fin"),
        ("models:\n  a: {retry_after_s: .nan}\n", "models.a.retry_after_s: Input should be a fin"),
        ("models:\n  a: {latency_ms: 1e3}\n", None),
    ],
)
def test_scenario_numbers_are_finite(tmp_path: Path, text: str, fragment: str | None) -> None:
    from pytest_modelgate.simulator import ScenarioError, load_scenario

    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    if fragment is None:
        assert load_scenario(path).models["a"].latency_ms.median == 1000.0
        return
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert f"{path}: {fragment}" in str(info.value)
