"""The human summary of a verdict: a comparison table and the lines that explain the verdict.

Pure: no pytest. Works from the verdict dict (the file format, see ``docs/verdict.md``) rather than
from a ``Judgement``, so the terminal summary and the ``modelgate`` console script, which reads a
verdict file, print the same thing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from pytest_modelgate.judge.metrics import MISSING, format_change, format_value, metric_spec

__all__ = [
    "allowance_line",
    "arms_text",
    "case_change_lines",
    "comparison_headers",
    "comparison_rows",
    "latency_timing_line",
    "metric_display_label",
    "not_gated_lines",
    "rollout_lines",
    "sample_noun",
    "summary_lines",
]

_STATUS_TEXT = {
    "ok": "ok",
    "regressed": "REGRESSED",
    "improved": "improved",
    "inconclusive": "INCONCLUSIVE",
    "no_data": "no data",
    "not_gated": "not gated",
}
# Cases listed by id in the summary before it switches to "and N more".
_MAX_LISTED_CASES = 5
_MAX_LISTED_REGRESSIONS = 10
# Changed cases the terminal shows from the verdict's cases_changed (the reports show them all).
_MAX_SHOWN_CHANGES = 5
WRAP_WIDTH = 100


def _stable_only(verdict: Mapping[str, Any]) -> bool:
    return verdict.get("candidate") is None


def metric_display_label(name: str, metric: Mapping[str, Any] | None = None) -> str:
    """A metric's name for people: ``pass rate``, ``p95 latency``, ``score: faithfulness``.

    ``metric`` is the verdict's entry: a plugin's metric carries its own ``label`` there.
    """
    label = metric.get("label") if metric is not None else None
    if isinstance(label, str) and label:
        return label
    spec = metric_spec(name)
    if spec is not None:
        return spec.label
    from pytest_modelgate.judge.paired import metric_label

    return metric_label(name)


# What a metric's ``samples`` count (docs/verdict.md, "samples"): the table says it, so its n
# is not read as the judge's paired cases, which the messages count ("n=12 cases").
_SAMPLE_NOUNS = {
    "pass_rate": "tests",
    "error_rate": "attempts",
    "fallback_rate": "tests",
    "latency_p50_ms": "calls",
    "latency_p95_ms": "calls",
    "ttft_p95_ms": "calls",
    "cost_per_call_usd": "calls",
    "tokens_per_call": "calls",
    "json_validity": "replies",
    "schema_validity": "replies",
    "tool_call_accuracy": "replies",
    "language_match": "replies",
}


def sample_noun(name: str) -> str | None:
    """What the ``samples`` of metric ``name`` count: tests, attempts, calls, replies, cases."""
    if name.startswith("score:") or name.endswith(":budget"):
        return "cases"
    return _SAMPLE_NOUNS.get(name)


def _value(name: str, unit: str, value: float | None, samples: int | None) -> str:
    text = format_value(unit, value)
    # A p95 over four calls is a different thing from one over four hundred: say which.
    if value is not None and samples is not None:
        noun = sample_noun(name)
        text += f" (n={samples} {noun})" if noun else f" (n={samples})"
    return text


def comparison_headers(verdict: Mapping[str, Any]) -> list[str]:
    """Column titles matching ``comparison_rows``: two columns for a stable-only run."""
    if _stable_only(verdict):
        return ["metric", "stable"]
    return ["metric", "stable", "candidate", "change", "limit", "status"]


def comparison_rows(verdict: Mapping[str, Any]) -> list[list[str]]:
    """One row of display strings per metric, in the verdict's order."""
    rows: list[list[str]] = []
    stable_only = _stable_only(verdict)
    for name, metric in verdict.get("metrics", {}).items():
        unit = metric["unit"]
        samples = metric["samples"]
        row = [
            metric_display_label(name, metric),
            _value(name, unit, metric["stable"], samples["stable"]),
        ]
        if not stable_only:
            row += [
                _value(name, unit, metric["candidate"], samples["candidate"]),
                _change(metric),
                metric["limit"] or MISSING,
                _STATUS_TEXT.get(metric["status"], metric["status"]),
            ]
        rows.append(row)
    return rows


def _change(metric: Mapping[str, Any]) -> str:
    """The change and, when the judge computed one, its 95% interval."""
    kind = metric["change_kind"]
    text = format_change(kind, metric["change"])
    interval = metric.get("change_interval")
    if metric["change"] is not None and interval and None not in interval:
        low, high = interval
        if kind == "points":
            text += f" [{round(low, 1) or 0.0:+.1f}, {round(high, 1) or 0.0:+.1f}]"
        else:
            text += f" [x{low:.2f}, x{high:.2f}]"
    return text


def rollout_lines(verdict: Mapping[str, Any]) -> list[str]:
    """The rollout the verdict allows: steps, rollback triggers, kill switch; [] when none."""
    rollout = verdict.get("rollout")
    if not rollout:
        return []
    if not rollout["allowed"]:
        return [f"rollout: none ({rollout['reason']})"]
    plan = rollout["plan"]
    least = min(step["min_requests"] for step in plan)
    if all(step["phase"] == "shadow" for step in plan):
        lines = [
            f"rollout: shadow only: mirror at least {least} requests, the candidate serves "
            "no traffic until the gate passes"
        ]
    else:
        steps = " -> ".join(
            "shadow" if step["phase"] == "shadow" else f"{step['traffic_percent']:g}%"
            for step in plan
        )
        lines = [f"rollout: {steps} (at least {least} requests per step)"]
    triggers = [
        f"{t['metric']} {t['op']} {format_value(t['unit'], t['threshold'])}"
        for t in rollout["rollback_triggers"]
    ]
    if triggers:
        lines.append("rollback if: " + "; ".join(triggers))
    left_out = [t["metric"] for t in rollout.get("triggers_left_out") or []]
    if left_out:
        lines.append(
            "no rollback trigger from: "
            + ", ".join(left_out)
            + " (too little data or out of range; see rollout.triggers_left_out)"
        )
    kill = rollout["kill_switch"]
    lines.append(f"kill switch: {kill['action']} ({kill['route_to'] or 'stable'})")
    return lines


def _model(identity: Mapping[str, Any] | None) -> str:
    return "?" if identity is None else str(identity["model"])


def arms_text(verdict: Mapping[str, Any]) -> str:
    """Which models were compared: ``stable A vs candidate B`` (or a stable-only run)."""
    if verdict.get("stable") is None and verdict.get("candidate") is None:
        return "models unknown"
    if _stable_only(verdict):
        return f"stable-only run of {_model(verdict.get('stable'))}"
    return f"stable {_model(verdict.get('stable'))} vs candidate {_model(verdict.get('candidate'))}"


def _case_list(cases: Sequence[Mapping[str, Any]]) -> str:
    names = [
        case["case_id"] if case["repeat"] == 0 else f"{case['case_id']} (repeat {case['repeat']})"
        for case in cases[:_MAX_LISTED_CASES]
    ]
    more = len(cases) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


def _arm_line(name: str, arm: Mapping[str, Any]) -> str:
    return (
        f"{name} {arm.get('outcome', '?')}, {format_value('ms', arm.get('latency_ms'))}, "
        f"{format_value('usd', arm.get('cost_usd'))}"
    )


def case_change_lines(
    verdict: Mapping[str, Any], *, width: int = WRAP_WIDTH, shown: int = _MAX_SHOWN_CHANGES
) -> list[str]:
    """The first ``shown`` cases of ``cases_changed``, wrapped at ``width``; [] when none changed.

    Each says how the case changed, why (the failing arm's message) and what each arm took.
    """
    section = verdict.get("cases_changed") or {}
    cases = section.get("cases") or []
    total = int(section.get("total") or 0)
    if not total:
        return []
    lines = [f"{_plural(total, 'case')} changed between the arms (worse first):"]
    for case in cases[:shown]:
        label = (
            case["case_id"]
            if not case["repeat"]
            else f"{case['case_id']} (repeat {case['repeat']})"
        )
        text = f"{label}: {', '.join(case['changes'])}"
        if case.get("reason"):
            text += f": {case['reason']}"
        text += (
            f" ({_arm_line('stable', case['stable'])}; {_arm_line('candidate', case['candidate'])})"
        )
        lines += textwrap.wrap(
            text,
            width=max(width, 40),
            initial_indent="  ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
    more = total - min(shown, len(cases))
    if more:
        lines.append(f"  ... and {more} more: see modelgate report")
    return lines


def allowance_line(verdict: Mapping[str, Any]) -> str | None:
    """One line naming the margins this run widened on purpose; None when it widened none."""
    allowances = verdict.get("allowances") or []
    if not allowances:
        return None

    def shown(value: Any) -> str:
        return "not gated" if value is None else f"{value:g}"

    parts = []
    for entry in allowances:
        text = f"{entry['margin']} {shown(entry['value'])} (was {shown(entry['was'])}"
        text += f"; {entry['source']}"
        if entry.get("reason"):
            text += f": {entry['reason']}"
        parts.append(text + ")")
    return "margins widened on purpose for this run: " + "; ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def not_gated_lines(verdict: Mapping[str, Any]) -> list[str]:
    """Why each metric the table calls "not gated" is not: the judge's reason, or no margin."""
    held_back: list[str] = []
    no_margin: list[str] = []
    for name, metric in (verdict.get("metrics") or {}).items():
        if metric.get("status") != "not_gated":
            continue
        label = metric_display_label(name, metric)
        if not metric.get("limit"):
            no_margin.append(label)
            continue
        message = str(metric.get("message") or "")
        _, found, why = message.rpartition("reported, not gated (")
        held_back.append(f"{label} ({why[:-1]})" if found and why.endswith(")") else label)
    lines = [f"not gated: {entry}" for entry in held_back]
    if no_margin:
        lines.append(f"not gated (no margin set in gate:): {', '.join(no_margin)}")
    return lines


def latency_timing_line(verdict: Mapping[str, Any]) -> str | None:
    """Where the latency figures come from, when any were replayed from recordings."""
    sources = {
        source
        for metric in verdict.get("metrics", {}).values()
        for source in (metric.get("timing") or {}).values()
        if source is not None
    }
    if not sources or sources == {"live"}:
        return None
    if sources == {"recorded"}:
        return "latency: replayed from recordings, as measured when they were recorded"
    return "latency: partly replayed from recordings and partly measured live (mixed sources)"


def summary_lines(
    verdict: Mapping[str, Any],
    *,
    verdict_path: Path | str,
    written: bool | None = True,
    width: int = WRAP_WIDTH,
) -> list[str]:
    """The terminal summary of a verdict, one string per line, verdict line last but one.

    ``written``: whether the verdict reached ``verdict_path``; the last line says which. None:
    the verdict was read from ``verdict_path`` (``modelgate show``); the last line says that.
    ``width``: where the per-case lines wrap (the terminal's width).
    """
    lines: list[str] = []
    kind = str(verdict.get("verdict", "error"))
    reasons = [str(reason) for reason in verdict.get("reasons", [])]
    shown: set[str] = set()

    if kind == "error":
        # An error verdict has little else to show; its reasons are the whole story.
        lines += [f"modelgate ERROR: {reason}" for reason in reasons]
        shown.update(reasons)

    allowed = allowance_line(verdict)
    if allowed:
        lines.append(allowed)

    if verdict.get("metrics"):
        table = tabulate(
            comparison_rows(verdict),
            headers=comparison_headers(verdict),
            tablefmt="github",
            disable_numparse=True,
        )
        lines += table.splitlines()
        lines += not_gated_lines(verdict)
        timing = latency_timing_line(verdict)
        if timing:
            lines.append(timing)

    regressions = verdict.get("regressions", [])
    for regression in regressions[:_MAX_LISTED_REGRESSIONS]:
        lines.append(f"regression: {regression['message']}")
    shown.update(str(regression["message"]) for regression in regressions)
    if len(regressions) > _MAX_LISTED_REGRESSIONS:
        lines.append(
            f"... and "
            f"{len(regressions) - _MAX_LISTED_REGRESSIONS} more regression(s) in the verdict"
        )

    tests = verdict.get("tests") or {}
    both = tests.get("cases_failed_both", [])
    if both:
        consequence = (
            "not a regression, but --modelgate-strict fails on them"
            if verdict.get("strict")
            else "not a regression; --modelgate-strict fails on them"
        )
        lines.append(
            f"{_plural(len(both), 'case')} failed on both arms: {consequence} ({_case_list(both)})"
        )
    candidate_only = tests.get("cases_failed_candidate_only", [])
    if candidate_only:
        lines.append(
            f"{_plural(len(candidate_only), 'case')} failed on the candidate only: "
            f"{_case_list(candidate_only)}"
        )

    lines += case_change_lines(verdict, width=width)

    prefix = "inconclusive: " if kind == "inconclusive" else "note: "
    lines += [f"{prefix}{reason}" for reason in reasons if reason not in shown]
    lines += rollout_lines(verdict)
    if kind == "inconclusive":
        strict = verdict.get("strict")
        lines.append(
            "modelgate: INCONCLUSIVE: the data cannot show the candidate is within the margins; "
            + (
                "--modelgate-strict fails the run"
                if strict
                else "exit 0, but add cases or repeats (or --modelgate-strict to fail)"
            )
        )

    if verdict.get("complete") is False:
        lines.append("this verdict is incomplete: the run was interrupted or is still going")
    if verdict.get("kind") == "smoke" and kind != "error":
        lines.append("smoke run: no candidate was compared, this verdict approves no deployment")
    lines.append(f"modelgate verdict: {kind.upper()} ({arms_text(verdict)})")
    if written is None:
        lines.append(f"verdict read from {verdict_path}")
    elif written:
        lines.append(f"verdict written to {verdict_path}")
    else:
        lines.append(f"verdict NOT written: {verdict_path} could not be written (see above)")
    return lines
