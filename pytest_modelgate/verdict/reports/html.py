"""The verdict as one self-contained HTML page: inline CSS, inline SVG charts, no script.

The page loads nothing: no stylesheet, font, image or script from anywhere (its
Content-Security-Policy forbids it too), so it can be attached to a CI run and opened offline.
Every text taken from the verdict or the records (test ids, messages, model names, URLs) is
escaped and shown as text, never as a link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pytest_modelgate.judge.metrics import format_value
from pytest_modelgate.verdict.reports.cases import ArmCase, CaseChange
from pytest_modelgate.verdict.reports.svg import (
    ArmValues,
    BarGroup,
    ChangeRow,
    arms_chart,
    bars_chart,
    change_chart,
    ecdf_chart,
)
from pytest_modelgate.verdict.reports.terminal import (
    arms_text,
    comparison_headers,
    comparison_rows,
    latency_timing_line,
    metric_display_label,
    rollout_lines,
)

__all__ = ["html_report"]

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;margin:0;
background:#fff;line-height:1.4}
main{max-width:1180px;margin:0 auto;padding:0 24px 40px}
header.verdict{padding:18px 24px;color:#fff}
header.pass{background:#2e7d32}header.fail{background:#c62828}
header.inconclusive{background:#b26a00}header.error{background:#4a148c}
header h1{margin:0;font-size:28px}header p{margin:4px 0 0;font-size:15px;opacity:.95}
h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}
td.num{text-align:right;white-space:nowrap}
.regressed{color:#c62828;font-weight:600}.improved,.ok{color:#2e7d32}
.inconclusive{color:#b26a00;font-weight:600}.no_data,.not_gated{color:#777}
ul.regressions li{color:#c62828;margin:2px 0}
.note{color:#555;font-size:13px}.meta{font-size:13px;color:#555}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
.chart{overflow-x:auto;margin:6px 0 14px}
td.reason{max-width:420px;font-size:12px}
""".strip()

_STATUS_CLASS = {
    "REGRESSED": "regressed",
    "improved": "improved",
    "ok": "ok",
    "INCONCLUSIVE": "inconclusive",
    "no data": "no_data",
    "not gated": "not_gated",
}


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, status_col: int = -1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            css = ""
            if index == status_col or (status_col < 0 and index == len(row) + status_col):
                css = f' class="{_STATUS_CLASS.get(cell, "")}"'
            cells.append(f"<td{css}>{_e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _interval(value: Any) -> tuple[float, float] | None:
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int | float) for v in value)
    ):
        return (float(value[0]), float(value[1]))
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _metric_charts(verdict: Mapping[str, Any]) -> str:
    metrics = verdict.get("metrics") or {}
    arms: list[ArmValues] = []
    changes: dict[str, list[ChangeRow]] = {"points": [], "ratio": []}
    for name, metric in metrics.items():
        stable, candidate = _number(metric.get("stable")), _number(metric.get("candidate"))
        if stable is None and candidate is None:
            continue
        status = str(metric.get("status"))
        arms.append(
            ArmValues(
                label=metric_display_label(name, metric),
                unit=str(metric.get("unit")),
                stable=stable,
                candidate=candidate,
                stable_interval=_interval(metric.get("stable_interval")),
                candidate_interval=_interval(metric.get("candidate_interval")),
                regressed=status == "regressed",
            )
        )
        change = _number(metric.get("change"))
        kind = str(metric.get("change_kind"))
        if change is not None and kind in changes:
            changes[kind].append(
                ChangeRow(
                    label=metric_display_label(name, metric),
                    change=change,
                    interval=_interval(metric.get("change_interval")),
                    limit=_number(metric.get("limit_value")),
                    status=status,
                )
            )
    parts = []
    if arms:
        parts.append("<h3>Stable and candidate per metric</h3>")
        parts.append(f'<div class="chart">{arms_chart(arms)}</div>')
    if changes["points"] or changes["ratio"]:
        parts.append("<h3>The change against its margin</h3>")
    for kind in ("points", "ratio"):
        if changes[kind]:
            parts.append(f'<div class="chart">{change_chart(changes[kind], kind=kind)}</div>')
    return "".join(parts)


def _slices(verdict: Mapping[str, Any], prefix: str, title: str) -> str:
    slices = {
        scope[len(prefix) :]: metrics
        for scope, metrics in (verdict.get("slices") or {}).items()
        if scope.startswith(prefix) and metrics
    }
    if not slices:
        return ""
    parts = [f"<h2>{_e(title)}</h2>"]
    groups = []
    for name, metrics in slices.items():
        rate = metrics.get("pass_rate") or {}
        groups.append(
            BarGroup(
                label=name,
                stable=_number(rate.get("stable")),
                candidate=_number(rate.get("candidate")),
                regressed=any(m.get("status") == "regressed" for m in metrics.values()),
            )
        )
    if any(g.stable is not None or g.candidate is not None for g in groups):
        parts.append(
            f'<div class="chart">{bars_chart(groups, title=f"pass rate per {title[4:]}")}</div>'
        )
    headers = [title[4:], *comparison_headers(verdict)]
    rows: list[list[str]] = []
    for name, metrics in slices.items():
        view = {"metrics": metrics, "candidate": verdict.get("candidate")}
        rows += [[name, *row] for row in comparison_rows(view)]
    # Folded (no script needed): the bars above are the overview, the table the detail.
    parts.append(
        f"<details><summary>every metric per {_e(title[4:])} ({len(rows)} rows)</summary>"
        f"{_table(headers, rows)}</details>"
    )
    return "".join(parts)


def _arm_cells(side: ArmCase) -> str:
    return (
        f"<td>{_e(side.outcome)}</td><td class=num>{_e(format_value('ms', side.latency_ms))}</td>"
        f"<td class=num>{_e(format_value('usd', side.cost_usd))}</td>"
    )


def _cases(changes: Sequence[CaseChange] | None, records_note: str | None) -> str:
    parts = ["<h2>Cases that changed between the arms</h2>"]
    if records_note:
        parts.append(f'<p class="note">{_e(records_note)}</p>')
    if changes is None:
        return "".join(parts)
    if not changes:
        parts.append("<p>No case changed between the arms.</p>")
        return "".join(parts)
    parts.append(f"<p>{len(changes)} case(s); the candidate's worse cases first.</p>")
    parts.append(
        "<table><thead><tr><th rowspan=2>case</th><th rowspan=2>workflow</th>"
        "<th rowspan=2>language</th><th rowspan=2>change</th><th rowspan=2>reason</th>"
        "<th colspan=3>stable</th><th colspan=3>candidate</th></tr><tr>"
        + "<th>outcome</th><th>latency</th><th>cost</th>" * 2
        + "</tr></thead><tbody>"
    )
    for change in changes:
        css = "regressed" if change.worse else "improved"
        parts.append(
            f"<tr><td><code>{_e(change.label)}</code></td><td>{_e(change.workflow or '-')}</td>"
            f"<td>{_e(change.language or '-')}</td>"
            f'<td class="{css}">{_e(", ".join(change.changes))}</td>'
            f'<td class="reason">{_e(change.reason or "-")}</td>'
            f"{_arm_cells(change.stable)}{_arm_cells(change.candidate)}</tr>"
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def _failed_lists(verdict: Mapping[str, Any]) -> str:
    tests = verdict.get("tests") or {}
    parts = []
    for key, title in (
        ("cases_failed_candidate_only", "Failed on the candidate only"),
        ("cases_failed_both", "Failed on both arms (not a regression)"),
        ("cases_failed_stable_only", "Failed on the stable model only"),
    ):
        refs = [r for r in tests.get(key) or [] if isinstance(r, dict)]
        if not refs:
            continue
        items = "".join(
            f"<li><code>{_e(r.get('case_id'))}</code>"
            + (f" (repeat {_e(r.get('repeat'))})" if r.get("repeat") else "")
            + "</li>"
            for r in refs
        )
        parts.append(f"<h3>{_e(title)} ({len(refs)})</h3><ul>{items}</ul>")
    return "".join(parts)


def _counts(verdict: Mapping[str, Any]) -> str:
    tests = verdict.get("tests") or {}
    rows = []
    for arm in ("stable", "candidate"):
        counts = tests.get(arm)
        if isinstance(counts, dict):
            rows.append(
                [arm, *(str(counts.get(k, 0)) for k in ("passed", "failed", "skipped", "error"))]
            )
    if not rows:
        return ""
    return "<h2>Tests</h2>" + _table(
        ["arm", "passed", "failed", "skipped", "error"], rows, status_col=99
    )


def _models(verdict: Mapping[str, Any]) -> str:
    rows = []
    for arm in ("stable", "candidate"):
        identity = verdict.get(arm)
        if isinstance(identity, dict):
            rows.append(
                [
                    arm,
                    str(identity.get("model")),
                    str(identity.get("provider") or "-"),
                    # A URL is shown as text: the report links nowhere.
                    str(identity.get("base_url") or "-"),
                ]
            )
    if not rows:
        return ""
    return _table(["arm", "model", "provider", "base URL"], rows, status_col=99)


def html_report(
    verdict: Mapping[str, Any],
    changes: Sequence[CaseChange] | None = None,
    *,
    latencies: Mapping[str, list[float]] | None = None,
    records_note: str | None = None,
) -> str:
    """The whole report as one HTML document (a string), all cases included.

    ``changes`` and ``latencies`` come from the records file (``reports.cases``); without them
    the page says so (``records_note``) and leaves out the per-case view and the latency chart.
    """
    kind = str(verdict.get("verdict", "error"))
    css_kind = kind if kind in ("pass", "fail", "inconclusive") else "error"
    subtitle = arms_text(verdict)
    flags = []
    if verdict.get("kind") == "smoke":
        flags.append("smoke run: approves no deployment")
    if verdict.get("complete") is False:
        flags.append("incomplete: the run was interrupted or is still going")
    meta = " · ".join(
        str(bit)
        for bit in (
            f"mode {verdict.get('mode', '?')}",
            f"repeat {verdict.get('repeat', '?')}",
            f"finished {verdict.get('finished_at', '?')}",
            f"run {verdict.get('run_id', '?')}",
            f"pytest-modelgate {verdict.get('plugin_version', '?')}",
        )
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Belt and braces: even a bug that let a URL through could not make the page load it.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>modelgate: {_e(kind.upper())}, {_e(subtitle)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header class="verdict {css_kind}"><h1>modelgate: {_e(kind.upper())}</h1>',
        f"<p>{_e(subtitle)}</p>",
        *(f"<p><strong>{_e(flag)}</strong></p>" for flag in flags),
        "</header><main>",
        f'<p class="meta">{_e(meta)}</p>',
    ]
    regressions = verdict.get("regressions") or []
    if regressions:
        items = "".join(
            f"<li>{_e(r.get('message'))}"
            f"{'' if r.get('scope', 'overall') == 'overall' else _e(' [' + str(r['scope']) + ']')}"
            "</li>"
            for r in regressions
        )
        parts.append(
            f'<h2>Regressions ({len(regressions)})</h2><ul class="regressions">{items}</ul>'
        )
    shown = {str(r.get("message")) for r in regressions}
    reasons = [str(r) for r in verdict.get("reasons") or [] if str(r) not in shown]
    if reasons:
        parts.append("<h2>Why</h2><ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>")
    parts.append(_models(verdict))
    if verdict.get("metrics"):
        parts.append("<h2>Metrics</h2>")
        parts.append(_table(comparison_headers(verdict), comparison_rows(verdict)))
        timing = latency_timing_line(verdict)
        if timing:
            parts.append(f'<p class="note">{_e(timing)}</p>')
        parts.append(_metric_charts(verdict))
    if latencies and any(latencies.values()):
        parts.append("<h2>Latency distribution</h2>")
        parts.append(f'<div class="chart">{ecdf_chart(dict(latencies))}</div>')
    lines = rollout_lines(verdict)
    if lines:
        parts.append("<h2>Rollout</h2><ul>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>")
    parts.append(_slices(verdict, "language:", "Per language"))
    parts.append(_slices(verdict, "workflow:", "Per workflow"))
    parts.append(_counts(verdict))
    parts.append(_cases(changes, records_note))
    parts.append(_failed_lists(verdict))
    parts.append("</main></body></html>\n")
    return "\n".join(p for p in parts if p)
