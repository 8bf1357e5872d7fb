"""Reports of a verdict for people: Markdown (step summary, pull-request comment), HTML with
inline SVG charts, and GitHub Actions annotations.

Pure: no pytest. Every function takes the verdict dict (the file format, ``docs/verdict.md``)
and, when available, the run's records (``<verdict>.records.jsonl``, read by
:mod:`.cases`), and returns text. Fields they do not know are ignored,
so a verdict from a newer judge still renders.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["github_lines", "render_html", "render_markdown"]


def _case_view(verdict: Mapping[str, Any], verdict_path: Path) -> tuple[Any, Any, str | None]:
    """The per-case view and latencies from the records next to the verdict, and a note."""
    from pytest_modelgate.verdict.reports.cases import case_changes, latencies, load_records

    if verdict.get("candidate") is None:
        return None, None, "a stable-only run: there is no second arm to compare cases with"
    loaded = load_records(verdict, verdict_path)
    if not loaded.records:
        return None, None, loaded.problem or "the records file holds no records"
    return case_changes(loaded.records), latencies(loaded.records), loaded.problem


def render_markdown(verdict: Mapping[str, Any], verdict_path: Path, *, max_chars: int) -> str:
    """The Markdown report of the verdict at ``verdict_path`` (records read from beside it)."""
    from pytest_modelgate.verdict.reports.markdown import markdown_report

    changes, _, note = _case_view(verdict, Path(verdict_path))
    return markdown_report(verdict, changes, records_note=note, max_chars=max_chars)


def render_html(verdict: Mapping[str, Any], verdict_path: Path) -> str:
    """The HTML report of the verdict at ``verdict_path`` (records read from beside it)."""
    from pytest_modelgate.verdict.reports.html import html_report

    changes, latency, note = _case_view(verdict, Path(verdict_path))
    return html_report(verdict, changes, latencies=latency, records_note=note)


def github_lines(
    verdict: Mapping[str, Any], verdict_path: Path, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """Under GitHub Actions: append the step summary, return the annotation lines to print.

    Outside GitHub Actions (``GITHUB_ACTIONS`` not ``true``): nothing, and no file is touched.
    A summary that cannot be written adds one warning line; it never fails the run.
    """
    from pytest_modelgate.verdict.reports.github import (
        annotation_lines,
        append_step_summary,
        escape_data,
        running_on_github,
    )

    if not running_on_github(environ):
        return []
    lines = annotation_lines(verdict)
    try:
        problem = append_step_summary(
            environ.get("GITHUB_STEP_SUMMARY"),
            lambda room: render_markdown(verdict, verdict_path, max_chars=room),
        )
    except Exception as exc:  # a report bug must not cost the verdict its exit status
        problem = f"modelgate: could not write the step summary: {exc!r}"
    if problem is not None:
        lines.append(f"::warning title=modelgate::{escape_data(problem)}")
    return lines
