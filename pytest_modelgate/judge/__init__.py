"""The judge and its statistics: records of both arms in, a ``Judgement`` out.

Data flows one way: ``metrics`` (what is measured per call and arm) -> ``cases`` (the records
paired by case) -> one module per statistic and data shape on the shared ``common``,
``resampling``, ``inference`` and ``stats``: ``rates`` (paired pass/fail tables, McNemar and
Newcombe, the cluster bootstrap), ``ratios`` with ``quantiles`` (latency and TTFT quantile
ratios, ratios of sums for cost and tokens per call), ``means`` (scores and plugins' means),
``budgets`` (absolute budgets from markers) -> ``paired`` (the ``PairedJudge`` that composes
them, with ``messages`` and ``rollout``) -> ``decide`` (the judgement to the verdict).
``model`` holds the judgement types and the ``Judge`` protocol, ``allowances`` the declared
intended changes.

The public names are re-exported here and imported on first use (PEP 562), so that importing
one light module of the package (``pytest_modelgate.judge.metrics`` from a hook) does not pay for
the whole judge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pytest_modelgate.lazyexports import lazy_attribute

if TYPE_CHECKING:
    from pytest_modelgate.judge.metrics import CustomMetric, MeasuredCall
    from pytest_modelgate.judge.model import (
        FixedLimitJudge,
        Judge,
        Judgement,
        MetricComparison,
        Regression,
        RunData,
    )
    from pytest_modelgate.judge.paired import Margins, PairedJudge, metric_label, rollout_plan

__all__ = [
    "CustomMetric",
    "FixedLimitJudge",
    "Judge",
    "Judgement",
    "Margins",
    "MeasuredCall",
    "MetricComparison",
    "PairedJudge",
    "Regression",
    "RunData",
    "metric_label",
    "rollout_plan",
]

_HOMES = {
    "CustomMetric": "metrics",
    "MeasuredCall": "metrics",
    "FixedLimitJudge": "model",
    "Judge": "model",
    "Judgement": "model",
    "MetricComparison": "model",
    "Regression": "model",
    "RunData": "model",
    "Margins": "paired",
    "PairedJudge": "paired",
    "metric_label": "paired",
    "rollout_plan": "paired",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _HOMES, name)
