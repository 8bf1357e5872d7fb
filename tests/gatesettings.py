"""Gate settings the integration tests share: margins a handful of cases can show.

A run of a few cases gives intervals of tens of points on the rates, and fewer than five cases
give no bootstrap interval for a ratio at all, so a healthy small run can only `pass` with rate
margins this wide and the ratios (cost, latency) not gated.
"""

from __future__ import annotations

from typing import Any

# The price every simulated model gets unless a test sets its own (USD per million tokens).
DEFAULT_PRICE = {"input": 0.27, "output": 1.10, "cached_input": 0.07}


def loose_gate(rate_margin: float = 0.7, *, gate_cost: bool = False) -> dict[str, Any]:
    """The ``gate:`` section of a small test suite: latency not gated, wide rate margins.

    ``gate_cost=True`` keeps the deterministic cost ratio at its default (x1.15).
    """
    gate: dict[str, Any] = {
        "pass_rate_max_drop": rate_margin,
        "error_rate_max_rise": rate_margin,
        "fallback_rate_max_rise": rate_margin,
        "latency_p50_max_ratio": None,
        "latency_p95_max_ratio": None,
        "ttft_p95_max_ratio": None,
    }
    if not gate_cost:
        gate["cost_per_call_max_ratio"] = None
    return gate
