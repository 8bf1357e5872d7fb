"""pytest-modelgate: a pytest plugin and CI gate for safe model rollouts.

The names a project's own code imports are exported here, so they stay put while the package's
folders change: ``from pytest_modelgate import LLM, Reply, detect_language, CustomMetric``.
They are imported on first use (PEP 562), so importing the package, which pytest does for every run
once the plugin is installed, costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the submodule that defines it; the README's "Package layout" section lists the same names.
_EXPORTS = {
    "LLM": "calls.client",
    "Reply": "calls.client",
    "ToolCall": "calls.client",
    "detect_language": "calls.langdetect",
    "CallRecord": "calls.records",
    "TestRecord": "calls.records",
    "CustomMetric": "judge.metrics",
    "MeasuredCall": "judge.metrics",
    "ModelgateError": "errors",
    "ModelAPIError": "errors",
    "ReplyFormatError": "errors",
    "Gateway": "gateway",
}

__all__ = [  # the same names as _EXPORTS (a unit test holds them equal)
    "LLM",
    "CallRecord",
    "CustomMetric",
    "Gateway",
    "MeasuredCall",
    "ModelAPIError",
    "ModelgateError",
    "Reply",
    "ReplyFormatError",
    "TestRecord",
    "ToolCall",
    "__version__",
    "detect_language",
]

if TYPE_CHECKING:
    from pytest_modelgate.calls.client import LLM, Reply, ToolCall
    from pytest_modelgate.calls.langdetect import detect_language
    from pytest_modelgate.calls.records import CallRecord, TestRecord
    from pytest_modelgate.errors import ModelAPIError, ModelgateError, ReplyFormatError
    from pytest_modelgate.gateway import Gateway
    from pytest_modelgate.judge.metrics import CustomMetric, MeasuredCall


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:  # pytest probes module attributes: a miss must stay free
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pytest_modelgate.lazyexports import lazy_attribute

    value = lazy_attribute(__name__, _EXPORTS, name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
