"""Inline SVG charts for the HTML report: no script, no external resource, every text escaped.

Each function returns one ``<svg>`` element as a string, sized in pixels, readable without
JavaScript. Stable is drawn in blue, the candidate in orange, a regressed metric in red.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from pytest_modelgate.judge.metrics import format_value

__all__ = [
    "CANDIDATE_COLOUR",
    "STABLE_COLOUR",
    "ArmValues",
    "BarGroup",
    "ChangeRow",
    "arms_chart",
    "bars_chart",
    "change_chart",
    "ecdf_chart",
    "nice_ticks",
]

STABLE_COLOUR = "#3b6fb6"
CANDIDATE_COLOUR = "#e07b28"
REGRESSED_COLOUR = "#c62828"
_GRID = "#e3e3e3"
_TEXT = "#222"
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _svg(width: int, height: int, body: Sequence[str], label: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}" '
        f'style="{_FONT};font-size:12px">'
        f"<title>{_e(label)}</title>" + "".join(body) + "</svg>"
    )


def _text(
    x: float, y: float, text: object, *, anchor: str = "start", fill: str = _TEXT, **style: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in style.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{_e(fill)}"{extra}>'
        f"{_e(text)}</text>"
    )


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


@dataclass(frozen=True)
class ArmValues:
    """One metric's values on both arms, with their intervals when the judge computed them."""

    label: str
    unit: str
    stable: float | None
    candidate: float | None
    stable_interval: tuple[float, float] | None = None
    candidate_interval: tuple[float, float] | None = None
    regressed: bool = False


def _scale(low: float, high: float, x0: float, x1: float) -> Callable[[float], float]:
    span = (high - low) or 1.0
    return lambda v: x0 + (v - low) / span * (x1 - x0)


def arms_chart(rows: Sequence[ArmValues], *, width: int = 900) -> str:
    """Per metric, stable and candidate as a dot with its 95% interval, each row on its scale."""
    row_h, top, label_w, value_w = 46, 26, 190, 250
    x0, x1 = label_w, width - value_w
    height = top + row_h * len(rows) + 10
    body = [
        _text(x0, 16, "● stable", fill=STABLE_COLOUR, font_weight="600"),
        _text(x0 + 80, 16, "● candidate", fill=CANDIDATE_COLOUR, font_weight="600"),
        _text(x1, 16, "each row on its own scale; bars: 95% interval", anchor="end"),
    ]
    for index, row in enumerate(rows):
        y = top + index * row_h
        values = [v for v in (row.stable, row.candidate) if v is not None]
        for interval in (row.stable_interval, row.candidate_interval):
            if interval is not None:
                values += list(interval)
        if index % 2 == 0:
            body.append(f'<rect x="0" y="{y}" width="{width}" height="{row_h}" fill="#f7f7f7"/>')
        colour = REGRESSED_COLOUR if row.regressed else _TEXT
        body.append(_text(8, y + row_h / 2 + 4, row.label, fill=colour, font_weight="600"))
        if not values:
            body.append(_text(x0, y + row_h / 2 + 4, "no data", fill="#777"))
            continue
        low, high = min(values), max(values)
        pad = (high - low) * 0.08 or (abs(high) * 0.1 or 0.01)
        low, high = low - pad, high + pad
        if row.unit in ("rate", "ms", "usd", "tokens") and low < 0 <= min(values):
            low = 0.0
        if row.unit == "rate" and high > 1 >= max(values):
            high = 1.0
        scale = _scale(low, high, x0 + 6, x1 - 6)
        body.append(
            f'<line x1="{x0}" y1="{y + row_h - 6}" x2="{x1}" y2="{y + row_h - 6}" '
            f'stroke="{_GRID}"/>'
        )
        body.append(
            _text(x0, y + row_h - 8, format_value(row.unit, low), fill="#888", font_size="10")
        )
        body.append(
            _text(
                x1,
                y + row_h - 8,
                format_value(row.unit, high),
                anchor="end",
                fill="#888",
                font_size="10",
            )
        )
        for offset, value, interval, arm_colour in (
            (12, row.stable, row.stable_interval, STABLE_COLOUR),
            (26, row.candidate, row.candidate_interval, CANDIDATE_COLOUR),
        ):
            cy = y + offset
            if interval is not None:
                a, b = scale(interval[0]), scale(interval[1])
                body.append(
                    f'<line x1="{a:.1f}" y1="{cy}" x2="{b:.1f}" y2="{cy}" '
                    f'stroke="{arm_colour}" stroke-width="2.5"/>'
                    f'<line x1="{a:.1f}" y1="{cy - 4}" x2="{a:.1f}" y2="{cy + 4}" '
                    f'stroke="{arm_colour}" stroke-width="2"/>'
                    f'<line x1="{b:.1f}" y1="{cy - 4}" x2="{b:.1f}" y2="{cy + 4}" '
                    f'stroke="{arm_colour}" stroke-width="2"/>'
                )
            if value is not None:
                body.append(
                    f'<circle cx="{scale(value):.1f}" cy="{cy}" r="5" fill="{arm_colour}" '
                    'stroke="#fff" stroke-width="1"/>'
                )
        text = f"{format_value(row.unit, row.stable)}  →  {format_value(row.unit, row.candidate)}"
        body.append(_text(x1 + 14, y + row_h / 2 + 4, text, fill=colour))
    return _svg(width, height, body, "stable and candidate per metric, with 95% intervals")


@dataclass(frozen=True)
class ChangeRow:
    """One metric's change (points or ratio) with its interval and the worst change allowed."""

    label: str
    change: float
    interval: tuple[float, float] | None
    limit: float | None
    status: str


def change_chart(rows: Sequence[ChangeRow], *, kind: str, width: int = 900) -> str:
    """The change of each metric with its 95% interval against its margin (dashed red).

    ``kind``: ``points`` (linear, 0 marked) or ``ratio`` (log scale, x1 marked).
    """
    ratio = kind == "ratio"

    def position(value: float) -> float:
        return math.log(value) if ratio else value

    values = [1.0 if ratio else 0.0]
    for row in rows:
        values.append(row.change)
        if row.interval is not None:
            values += list(row.interval)
        if row.limit is not None:
            values.append(row.limit)
    values = [v for v in values if not ratio or v > 0]
    low, high = position(min(values)), position(max(values))
    pad = (high - low) * 0.06 or 0.1
    low, high = low - pad, high + pad
    row_h, top, label_w, value_w = 30, 30, 190, 150
    x0, x1 = label_w, width - value_w
    scale = _scale(low, high, x0, x1)
    height = top + row_h * len(rows) + 24
    body: list[str] = []
    if ratio:
        ticks = [t for t in nice_ticks(math.exp(low), math.exp(high), 6) if t > 0]
    else:
        ticks = nice_ticks(low, high, 7)
    for tick in ticks:
        if not low <= position(tick) <= high:
            continue
        x = scale(position(tick))
        body.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 20}" stroke="{_GRID}"/>'
        )
        label = f"x{tick:g}" if ratio else f"{tick:+g} pts"
        body.append(_text(x, height - 6, label, anchor="middle", fill="#666", font_size="10"))
    zero = scale(0.0)
    body.append(
        f'<line x1="{zero:.1f}" y1="{top - 6}" x2="{zero:.1f}" y2="{height - 20}" '
        'stroke="#555" stroke-width="1.5"/>'
    )
    title = "change as candidate / stable (log scale)" if ratio else "change in points"
    body.append(_text(x0, 16, title + "; dashed red: the margin allowed", font_weight="600"))
    for index, row in enumerate(rows):
        y = top + index * row_h
        cy = y + row_h / 2
        colour = {
            "regressed": REGRESSED_COLOUR,
            "improved": "#2e7d32",
            "ok": "#2e7d32",
            "inconclusive": "#b26a00",
        }.get(row.status, "#666")
        if index % 2 == 0:
            body.append(f'<rect x="0" y="{y}" width="{width}" height="{row_h}" fill="#f7f7f7"/>')
        body.append(_text(8, cy + 4, row.label, font_weight="600"))
        if row.limit is not None and (not ratio or row.limit > 0):
            lx = scale(position(row.limit))
            body.append(
                f'<line x1="{lx:.1f}" y1="{y + 3}" x2="{lx:.1f}" y2="{y + row_h - 3}" '
                f'stroke="{REGRESSED_COLOUR}" stroke-width="2" stroke-dasharray="4 3"/>'
            )
        if row.interval is not None and (not ratio or min(row.interval) > 0):
            a, b = scale(position(row.interval[0])), scale(position(row.interval[1]))
            body.append(
                f'<line x1="{a:.1f}" y1="{cy}" x2="{b:.1f}" y2="{cy}" stroke="{colour}" '
                'stroke-width="3"/>'
            )
        if not ratio or row.change > 0:
            body.append(
                f'<circle cx="{scale(position(row.change)):.1f}" cy="{cy}" r="5" fill="{colour}"/>'
            )
        text = f"x{row.change:.2f}" if ratio else f"{row.change:+.1f} pts"
        body.append(_text(x1 + 14, cy + 4, f"{text}  {row.status}", fill=colour))
    return _svg(width, height, body, title)


def ecdf_chart(latencies: dict[str, list[float]], *, width: int = 900, height: int = 300) -> str:
    """The share of successful calls at or under each latency, per arm (empirical CDF)."""
    left, right, top, bottom = 60, 20, 30, 40
    every = [v for values in latencies.values() for v in values]
    high = max(every) if every else 1.0
    ticks = nice_ticks(0.0, high, 6)
    high = max(ticks[-1] if ticks else high, high)
    sx = _scale(0.0, high, left, width - right)
    sy = _scale(0.0, 1.0, height - bottom, top)
    body: list[str] = []
    for tick in ticks:
        x = sx(tick)
        body.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}" stroke="{_GRID}"/>'
        )
        body.append(
            _text(
                x,
                height - bottom + 16,
                f"{tick:g} ms",
                anchor="middle",
                fill="#666",
                font_size="10",
            )
        )
    for share in (0.0, 0.25, 0.5, 0.75, 0.95, 1.0):
        y = sy(share)
        dash = ' stroke-dasharray="3 3"' if share == 0.95 else ""
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{_GRID}"{dash}/>'
        )
        body.append(
            _text(left - 6, y + 4, f"{share:.0%}", anchor="end", fill="#666", font_size="10")
        )
    legend_x = left + 10
    for arm, colour in (("stable", STABLE_COLOUR), ("candidate", CANDIDATE_COLOUR)):
        values = latencies.get(arm) or []
        if values:
            points = [f"{sx(values[0]):.1f},{sy(0.0):.1f}"]
            count = len(values)
            for index, value in enumerate(values):
                points.append(f"{sx(value):.1f},{sy(index / count):.1f}")
                points.append(f"{sx(value):.1f},{sy((index + 1) / count):.1f}")
            body.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
            p50 = values[min(count - 1, math.ceil(0.5 * count) - 1)]
            p95 = values[min(count - 1, math.ceil(0.95 * count) - 1)]
            text = f"{arm}: {count} calls, p50 {p50:,.0f} ms, p95 {p95:,.0f} ms"
        else:
            text = f"{arm}: no successful calls"
        body.append(_text(legend_x, 18, "● " + text, fill=colour, font_weight="600"))
        legend_x += 330
    body.append(
        _text(
            width - right,
            height - 4,
            "latency of each successful call",
            anchor="end",
            fill="#666",
            font_size="10",
        )
    )
    return _svg(width, height, body, "latency distribution of both arms")


@dataclass(frozen=True)
class BarGroup:
    """One slice (a language, a workflow) with a rate on both arms."""

    label: str
    stable: float | None
    candidate: float | None
    regressed: bool = False


def bars_chart(groups: Sequence[BarGroup], *, title: str, width: int = 900) -> str:
    """Grouped bars of a rate (0-100%) per slice, stable beside candidate."""
    left, right, top, bottom = 50, 20, 34, 44
    height = 260
    slot = (width - left - right) / max(len(groups), 1)
    bar = min(28.0, slot * 0.34)
    sy = _scale(0.0, 1.0, height - bottom, top)
    body = [
        _text(left, 16, title, font_weight="600"),
        _text(width - right - 150, 16, "● stable", fill=STABLE_COLOUR, font_weight="600"),
        _text(width - right - 80, 16, "● candidate", fill=CANDIDATE_COLOUR, font_weight="600"),
    ]
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = sy(share)
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{_GRID}"/>'
        )
        body.append(
            _text(left - 6, y + 4, f"{share:.0%}", anchor="end", fill="#666", font_size="10")
        )
    for index, group in enumerate(groups):
        centre = left + slot * (index + 0.5)
        for offset, value, colour in (
            (-bar - 1, group.stable, STABLE_COLOUR),
            (1, group.candidate, CANDIDATE_COLOUR),
        ):
            if value is None:
                continue
            y = sy(max(0.0, min(1.0, value)))
            body.append(
                f'<rect x="{centre + offset:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{sy(0.0) - y:.1f}" fill="{colour}"><title>{_e(group.label)}: '
                f"{value:.1%}</title></rect>"
            )
            body.append(
                _text(
                    centre + offset + bar / 2,
                    y - 3,
                    f"{value * 100:.0f}",
                    anchor="middle",
                    fill="#444",
                    font_size="10",
                )
            )
        colour = REGRESSED_COLOUR if group.regressed else _TEXT
        body.append(
            _text(
                centre,
                height - bottom + 16,
                group.label,
                anchor="middle",
                fill=colour,
                font_weight="600",
            )
        )
    return _svg(width, height, body, title)
