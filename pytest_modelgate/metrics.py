"""The README's documented import path for a plugin's own metric, kept working.

``from pytest_modelgate.metrics import CustomMetric`` is what a ``pytest_modelgate_metrics`` hook
writes (README, "A metric of your own"); the metric definitions moved to
``pytest_modelgate.judge.metrics``. This module only re-exports the hook-facing names.
"""

from __future__ import annotations

from pytest_modelgate.judge.metrics import CustomMetric, MeasuredCall

__all__ = ["CustomMetric", "MeasuredCall"]
