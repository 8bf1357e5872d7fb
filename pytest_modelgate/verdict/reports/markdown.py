"""The verdict as GitHub-flavoured Markdown: step summary and pull-request comment.

Everything a reviewer needs in one page: the verdict line, the regressions, the metric table, the
rollout, per-workflow and per-language tables, test counts and the cases that changed. A comment
body is limited to 65,536 characters and a step summary to 1 MiB, so the report fits
``max_chars`` by cutting the case lists first (saying how many were left out), then the slice
tables; the verdict line and the regressions are never cut unless they alone exceed the limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_modelgate.judge.metrics import format_value
from pytest_modelgate.verdict.reports.cases import CaseChange
from pytest_modelgate.verdict.reports.terminal import (
    arms_text,
    comparison_headers,
    comparison_rows,
    latency_timing_line,
    rollout_lines,
)

__all__ = ["DEFAULT_MAX_CHARS", "markdown_report", "md_escape", "verdict_line"]

# Under GitHub's 65,536-character limit on a comment body, with room for a marker line.
DEFAULT_MAX_CHARS = 65_000

_ICON = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️", "error": "🛑"}
# Characters Markdown (or the HTML GitHub lets through) would read as syntax.
_MD_SPECIAL = set("\\`*_[]|#~")


def md_escape(text: object) -> str:
    """``text`` as literal Markdown on one line: syntax characters backslash-escaped."""
    out = []
    for char in str(text).replace("\r", " ").replace("\n", " "):
        if char == "&":
            out.append("&amp;")
        elif char == "<":
            # An entity, not a backslash: literal in every Markdown context, never a tag.
            out.append("&lt;")
        elif char in _MD_SPECIAL:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def verdict_line(verdict: Mapping[str, Any]) -> str:
    """The first line of the report: the verdict and which models were compared."""
    kind = str(verdict.get("verdict", "error"))
    icon = _ICON.get(kind, "🛑")
    extra = []
    if verdict.get("kind") == "smoke" and kind != "error":
        extra.append("smoke run: approves no deployment")
    if verdict.get("complete") is False:
        extra.append("incomplete")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"## {icon} modelgate: {kind.upper()}, {md_escape(arms_text(verdict))}{tail}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = [
        "| " + " | ".join(md_escape(h) for h in headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]
    return lines


def _regressions(verdict: Mapping[str, Any], keep: int | None) -> list[str]:
    regressions = list(verdict.get("regressions") or [])
    if not regressions:
        return []
    lines = [f"### Regressions ({len(regressions)})", ""]
    shown = regressions if keep is None else regressions[:keep]
    for regression in shown:
        scope = regression.get("scope", "overall")
        where = "" if scope == "overall" else f" [{scope}]"
        lines.append(f"- {md_escape(str(regression.get('message', '')) + where)}")
    if len(shown) < len(regressions):
        lines.append(
            f"- … and {len(regressions) - len(shown)} more regression(s): too many for this "
            "report, see the verdict file"
        )
    return [*lines, ""]


def _reasons(verdict: Mapping[str, Any]) -> list[str]:
    shown = {str(r.get("message")) for r in verdict.get("regressions") or []}
    reasons = [str(r) for r in verdict.get("reasons") or [] if str(r) not in shown]
    if not reasons:
        return []
    title = {"error": "Why: error", "inconclusive": "Why: inconclusive"}.get(
        str(verdict.get("verdict")), "Notes"
    )
    return [f"### {title}", "", *(f"- {md_escape(r)}" for r in reasons), ""]


def _metrics(verdict: Mapping[str, Any]) -> list[str]:
    if not verdict.get("metrics"):
        return []
    lines = ["### Metrics", "", *_table(comparison_headers(verdict), comparison_rows(verdict))]
    timing = latency_timing_line(verdict)
    if timing:
        lines += ["", md_escape(timing)]
    return [*lines, ""]


def _rollout(verdict: Mapping[str, Any]) -> list[str]:
    lines = rollout_lines(verdict)
    if not lines:
        return []
    return ["### Rollout", "", *(f"- {md_escape(line)}" for line in lines), ""]


def _slice_tables(verdict: Mapping[str, Any], prefix: str, title: str) -> list[str]:
    slices = {
        scope: metrics
        for scope, metrics in (verdict.get("slices") or {}).items()
        if scope.startswith(prefix) and metrics
    }
    if not slices:
        return []
    headers = ["scope", *comparison_headers(verdict)]
    rows: list[list[str]] = []
    for scope, metrics in slices.items():
        view = {"metrics": metrics, "candidate": verdict.get("candidate")}
        rows += [[scope[len(prefix) :], *row] for row in comparison_rows(view)]
    regressed = sum(
        1 for metrics in slices.values() for m in metrics.values() if m["status"] == "regressed"
    )
    summary = f"{title} ({len(slices)}; {regressed} regressed metric(s))"
    # Folded: a pull-request comment stays short, the tables are one click away.
    return [
        "<details>",
        f"<summary>{md_escape(summary)}</summary>",
        "",
        *_table(headers, rows),
        "",
        "</details>",
        "",
    ]


def _tests(verdict: Mapping[str, Any]) -> list[str]:
    tests = verdict.get("tests") or {}
    rows = []
    for arm in ("stable", "candidate"):
        counts = tests.get(arm)
        if isinstance(counts, dict):
            rows.append(
                [arm, *(counts.get(k, 0) for k in ("passed", "failed", "skipped", "error"))]
            )
    if not rows:
        return []
    return ["### Tests", "", *_table(["arm", "passed", "failed", "skipped", "error"], rows), ""]


def _arm_cell(side: Any) -> str:
    latency = format_value("ms", side.latency_ms)
    cost = format_value("usd", side.cost_usd)
    return f"{side.outcome}, {latency}, {cost}"


# A case's reason in a table cell; the HTML report has it whole.
_MAX_REASON = 240


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _case_rows(changes: Sequence[CaseChange]) -> list[list[str]]:
    return [
        [
            change.label,
            change.workflow or "-",
            change.language or "-",
            ", ".join(change.changes),
            _shorten(change.reason or "-", _MAX_REASON),
            _arm_cell(change.stable),
            _arm_cell(change.candidate),
        ]
        for change in changes
    ]


def _left_out(count: int, what: str, max_chars: int) -> list[str]:
    if not count:
        return []
    # The blank line ends the table or list above: a line right after a table is another row.
    return [
        "",
        f"*… {count} more {what} left out to keep this report under {max_chars:,} characters "
        "(the HTML report and the records file have them all).*",
    ]


def _cases(
    verdict: Mapping[str, Any],
    changes: Sequence[CaseChange] | None,
    records_note: str | None,
    keep: int | None,
    max_chars: int,
) -> list[str]:
    lines: list[str] = []
    if changes is not None:
        shown = changes if keep is None else changes[:keep]
        lines += [f"### Cases that changed between the arms ({len(changes)})", ""]
        if shown:
            headers = ["case", "workflow", "language", "change", "reason", "stable", "candidate"]
            lines += _table(headers, _case_rows(shown))
        if changes:
            lines += _left_out(len(changes) - len(shown), "changed case(s)", max_chars)
            lines.append("")
            lines.append("*stable / candidate: outcome, latency of its calls, cost*")
        else:
            lines.append("No case changed between the arms.")
        lines.append("")
    if records_note:
        lines += [f"*Per-case view: {md_escape(records_note)}*", ""]
    tests = verdict.get("tests") or {}
    for key, title in (
        ("cases_failed_candidate_only", "Failed on the candidate only"),
        ("cases_failed_both", "Failed on both arms (not a regression)"),
        ("cases_failed_stable_only", "Failed on the stable model only"),
    ):
        refs = [r for r in tests.get(key) or [] if isinstance(r, dict)]
        if not refs:
            continue
        shown_refs = refs if keep is None else refs[:keep]
        lines += ["<details>", f"<summary>{md_escape(title)} ({len(refs)})</summary>", ""]
        for ref in shown_refs:
            repeat = ref.get("repeat", 0)
            suffix = f" (repeat {repeat})" if repeat else ""
            lines.append(f"- {md_escape(str(ref.get('case_id')) + suffix)}")
        lines += _left_out(len(refs) - len(shown_refs), "case(s)", max_chars)
        lines += ["", "</details>", ""]
    return lines


def _footer(verdict: Mapping[str, Any]) -> list[str]:
    bits = [
        f"mode {verdict.get('mode', '?')}",
        f"repeat {verdict.get('repeat', '?')}",
        f"run {verdict.get('run_id', '?')}",
        f"pytest-modelgate {verdict.get('plugin_version', '?')}",
    ]
    commit = (verdict.get("provenance") or {}).get("git") or {}
    if isinstance(commit, dict) and commit.get("commit"):
        bits.append(
            f"commit {str(commit['commit'])[:12]}{' (dirty)' if commit.get('dirty') else ''}"
        )
    return ["---", f"<sub>{md_escape(' · '.join(bits))}</sub>", ""]


def _render(
    verdict: Mapping[str, Any],
    changes: Sequence[CaseChange] | None,
    records_note: str | None,
    *,
    keep_cases: int | None,
    slices: bool,
    details: bool,
    keep_regressions: int | None,
    max_chars: int,
) -> str:
    lines = [verdict_line(verdict), ""]
    lines += _regressions(verdict, keep_regressions)
    lines += _reasons(verdict)
    if details:
        lines += _metrics(verdict)
        lines += _rollout(verdict)
    if slices:
        lines += _slice_tables(verdict, "workflow:", "Per workflow")
        lines += _slice_tables(verdict, "language:", "Per language")
    elif verdict.get("slices"):
        lines += [
            f"*Per-workflow and per-language tables left out to keep this report under "
            f"{max_chars:,} characters (see the HTML report).*",
            "",
        ]
    if details:
        lines += _tests(verdict)
    lines += _cases(verdict, changes, records_note, keep_cases, max_chars)
    if details:
        lines += _footer(verdict)
    return "\n".join(lines)


def markdown_report(
    verdict: Mapping[str, Any],
    changes: Sequence[CaseChange] | None = None,
    *,
    records_note: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """The Markdown report, at most ``max_chars`` characters (when the verdict line fits).

    ``changes``: the per-case view (``cases.case_changes``), or None when there are no records;
    ``records_note`` then says why (shown in the report).
    """
    longest = max(
        len(changes or ()),
        *(len((verdict.get("tests") or {}).get(key) or ()) for key in _CASE_LISTS),
    )

    def render(
        keep: int | None,
        *,
        slices: bool = True,
        details: bool = True,
        keep_regressions: int | None = None,
    ) -> str:
        return _render(
            verdict,
            changes,
            records_note,
            keep_cases=keep,
            slices=slices,
            details=details,
            keep_regressions=keep_regressions,
            max_chars=max_chars,
        )

    text = render(None)
    if len(text) <= max_chars:
        return text
    # Cut the case lists first (the most rows of each that fit: a binary search over one shared
    # count), then also leave out the slice tables, then the metric table, rollout and counts.
    for slices, details in ((True, True), (False, True), (False, False)):
        low, high = 0, longest
        while low < high:
            middle = (low + high + 1) // 2
            if len(render(middle, slices=slices, details=details)) <= max_chars:
                low = middle
            else:
                high = middle - 1
        text = render(low, slices=slices, details=details)
        if len(text) <= max_chars:
            return text
    # The regressions alone exceed the limit: keep as many as fit, say how many were cut.
    regressions = len(verdict.get("regressions") or ())
    low, high = 0, regressions
    while low < high:
        middle = (low + high + 1) // 2
        if len(render(0, slices=False, details=False, keep_regressions=middle)) <= max_chars:
            low = middle
        else:
            high = middle - 1
    return render(0, slices=False, details=False, keep_regressions=low)[:max_chars]


_CASE_LISTS = ("cases_failed_candidate_only", "cases_failed_both", "cases_failed_stable_only")
