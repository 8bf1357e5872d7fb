"""GitHub Actions: workflow-command annotations and the step summary.

Under ``GITHUB_ACTIONS=true`` the gate prints one ``::error`` line per regression (``::warning``
for an inconclusive verdict, ``::error`` for a failed or error verdict without regressions) and
appends the Markdown report to the file ``$GITHUB_STEP_SUMMARY`` names. GitHub limits a step's
summary to 1 MiB: the report is cut to what still fits in the file, and a summary that cannot be
written costs one warning line, never the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_modelgate.verdict.reports.terminal import metric_display_label

__all__ = [
    "STEP_SUMMARY_LIMIT",
    "annotation_lines",
    "append_step_summary",
    "escape_data",
    "escape_property",
    "running_on_github",
]

# GitHub's limit on one step's summary file, in bytes.
STEP_SUMMARY_LIMIT = 1024 * 1024
# Below this much room a summary would say nothing useful: skip it and warn.
_MIN_SUMMARY_BYTES = 512


def running_on_github(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process runs as a GitHub Actions step (``GITHUB_ACTIONS=true``)."""
    return environ.get("GITHUB_ACTIONS", "").strip().lower() == "true"


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF percent-encoded, as GitHub requires."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``title=``): also ``:`` and ``,`` encoded."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(level: str, title: str, message: str) -> str:
    return f"::{level} title={escape_property(title)}::{escape_data(message)}"


def annotation_lines(verdict: Mapping[str, Any]) -> list[str]:
    """The workflow commands for a verdict: one per regression, or one for the verdict."""
    kind = str(verdict.get("verdict", "error"))
    reasons = [str(r) for r in verdict.get("reasons") or []]
    lines: list[str] = []
    metrics: Mapping[str, Any] = verdict.get("metrics") or {}
    for regression in verdict.get("regressions") or []:
        name = str(regression.get("metric"))
        scope = str(regression.get("scope", "overall"))
        where = "" if scope == "overall" else f" in {scope}"
        title = f"modelgate regression: {metric_display_label(name, metrics.get(name))}{where}"
        lines.append(_command("error", title, str(regression.get("message", ""))))
    if kind == "error":
        lines.append(
            _command("error", "modelgate error", "; ".join(reasons) or "the gate ended in error")
        )
    elif kind == "inconclusive":
        lines.append(
            _command(
                "warning",
                "modelgate inconclusive",
                "; ".join(reasons) or "the data cannot show the candidate is within the margins",
            )
        )
    elif kind == "fail" and not lines:
        lines.append(_command("error", "modelgate fail", "; ".join(reasons) or "the gate failed"))
    return lines


def append_step_summary(
    path: str | os.PathLike[str] | None,
    render: Callable[[int], str],
    *,
    limit: int = STEP_SUMMARY_LIMIT,
) -> str | None:
    """Append ``render(max_chars)`` to the step summary at ``path``, within ``limit`` bytes.

    The file may already hold earlier steps' text (the limit is per step, on the whole file), so
    the report is rendered for the room left. Returns None when written, else one warning line.
    """
    if not path:
        return "modelgate: GITHUB_STEP_SUMMARY is not set; no step summary written"
    target = Path(path)
    try:
        used = target.stat().st_size if target.exists() else 0
    except OSError as exc:
        return f"modelgate: cannot write the step summary {target}: {exc.strerror or exc}"
    room = limit - used - 2  # the blank lines around the report
    if room < _MIN_SUMMARY_BYTES:
        return (
            f"modelgate: the step summary {target} is full ({used:,} of {limit:,} bytes); "
            "report not added"
        )
    text = render(room)
    if len(text.encode("utf-8")) > room:
        # Characters are not bytes: a UTF-8 character takes at most 4.
        text = render(room // 4)
    try:
        with target.open("a", encoding="utf-8") as handle:
            handle.write(("\n" if used else "") + text + "\n")
    except OSError as exc:
        return f"modelgate: cannot write the step summary {target}: {exc.strerror or exc}"
    return None
