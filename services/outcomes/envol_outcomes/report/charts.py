"""Inline SVG charts, drawn here in Python: the page must open offline and print without JS.

Each function returns one ``<svg class="chart">`` element. Coordinates come only from numbers
checked by texts.num; every text (labels, names) goes through html.escape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from .texts import STAGE_LABELS, checkpoint_name, count, label, money_short, num, percent

WIDTH = 720
FONT = 'font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="11"'
INK, GRID, MUTED = "#1d2733", "#d5dbe3", "#5b6675"
PARTICIPANTS, COMPARISON = "#1f5fa8", "#d9822b"
STAGE_COLOURS = {"applied": "#2f6f9f", "eligible": "#3f86bd", "ineligible": "#a7b1bd", "enrolled": "#1f5fa8",
                 "waitlisted": "#e0b44c", "denied": "#b9524a", "withdrawn": "#8a94a1",
                 "completed": "#2e8b57"}
MONTHS_SHOWN = 36


def _svg(height: float, title: str, body: list[str]) -> str:
    # role=img + <title>: screen readers and the browser's tooltip say what the chart is.
    return (f'<svg class="chart" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'role="img" aria-label="{escape(title)}" {FONT}><title>{escape(title)}</title>'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "start", fill: str = INK, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}"{extra}>'
            f"{escape(text)}</text>")


def nice_ticks(low: float, high: float, wanted: int = 5) -> list[float]:
    """Round tick values covering [low, high] (0 always among them when in range)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / wanted
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = [start]
    while ticks[-1] < high - 1e-9 * step:
        ticks.append(ticks[-1] + step)
    return ticks


def funnel_chart(totals: dict[str, int], lang: str, title: str) -> str:
    """Horizontal bars, one per stage, in the order an SME goes through them."""
    left, right, row, top = 150, WIDTH - 70, 26, 12
    largest = max([*totals.values(), 1])
    body: list[str] = []
    for index, (stage, value) in enumerate(totals.items()):
        y = top + index * row
        length = (right - left) * value / largest
        body.append(_text(left - 8, y + 15, STAGE_LABELS[lang][stage], "end"))
        body.append(f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" rx="2" '
                    f'fill="{STAGE_COLOURS[stage]}"/>')
        body.append(_text(left + length + 6, y + 15, str(value)))
    body.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + row * len(totals)}" stroke="{MUTED}"/>')
    return _svg(top * 2 + row * len(totals), title, body)


def _points(timeline: Sequence[Any], key: str) -> list[tuple[float, float]]:
    found = []
    for point in timeline:
        if isinstance(point, dict):
            month, value = num(point.get("month")), num(point.get(key))
            if month is not None and value is not None and 0 <= month <= MONTHS_SHOWN:
                found.append((month, value))
    return sorted(found)


def _panel(top: float, height: float, points: list[tuple[float, float]], top_value: float | None,
           fmt: Callable[[float], str], colour: str, axis: str, lang: str) -> list[str]:
    """One line chart: months 0..36 across, the cumulative figure up."""
    left, right = 90, WIDTH - 30
    plot_top, plot_bottom = top + 22, top + height - 34
    highest = top_value if top_value is not None else max([v for _, v in points] + [0])
    ticks = nice_ticks(0, highest or 1, 4)
    ceiling = ticks[-1]

    def x_of(month: float) -> float:
        return left + (right - left) * month / MONTHS_SHOWN

    def y_of(value: float) -> float:
        return plot_bottom - (plot_bottom - plot_top) * value / ceiling

    body = [_text(left, top + 12, axis, fill=MUTED, extra=' font-weight="bold"')]
    shown = ""
    for tick in ticks:
        body.append(f'<line x1="{left}" y1="{y_of(tick):.1f}" x2="{right}" y2="{y_of(tick):.1f}" '
                    f'stroke="{GRID}"/>')
        # Nothing yet (every value 0): the ticks in between round to the same label; show it once.
        if fmt(tick) != shown:
            shown = fmt(tick)
            body.append(_text(left - 6, y_of(tick) + 4, shown, "end", MUTED))
    for month in range(0, MONTHS_SHOWN + 1, 6):
        body.append(_text(x_of(month), plot_bottom + 15, str(month), "middle", MUTED))
    body.append(_text((left + right) / 2, plot_bottom + 30, label(lang, "months_axis"), "middle", MUTED))
    body.append(f'<line x1="{left}" y1="{plot_bottom}" x2="{right}" y2="{plot_bottom}" stroke="{MUTED}"/>')
    if points:
        path = " ".join(f"{x_of(m):.1f},{y_of(v):.1f}" for m, v in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5" '
                    'stroke-linejoin="round"/>')
        month, value = points[-1]
        body.append(f'<circle cx="{x_of(month):.1f}" cy="{y_of(value):.1f}" r="4" fill="{colour}"/>')
        anchor = "end" if month > MONTHS_SHOWN * 0.8 else "start"
        shift = -8 if anchor == "end" else 8
        body.append(_text(x_of(month) + shift, y_of(value) - 8, fmt(value), anchor, colour,
                          ' font-weight="bold"'))
    return body


def timeline_chart(timeline: Sequence[Any], kind: str, lang: str, title: str) -> str:
    """Cumulative money over the months since enrolment; for export also the share of SMEs
    with a first contract abroad, in a second panel (another unit: no double axis to misread)."""
    money_axis = label(lang, "money_axis_export" if kind == "export" else "money_axis_financing")
    body = _panel(0, 230, _points(timeline, "cumulative_cents"), None,
                  lambda v: money_short(v, lang), PARTICIPANTS, money_axis, lang)
    if kind != "export":
        return _svg(230, title, body)
    body += _panel(230, 210, _points(timeline, "share_with_outcome"), 1.0,
                   lambda v: percent(v, lang), "#2e8b57", label(lang, "share_axis"), lang)
    return _svg(440, title, body)


def _side(checkpoint: dict[str, Any], side: str) -> tuple[int, float | None, tuple[float, float] | None]:
    group = checkpoint.get(side) or {}
    interval = group.get("interval")
    bounds = None
    if isinstance(interval, list | tuple) and len(interval) == 2:
        low, high = num(interval[0]), num(interval[1])
        bounds = (min(low, high), max(low, high)) if low is not None and high is not None else None
    return count(group.get("n")), num(group.get("mean_change_cents")), bounds


def comparison_chart(checkpoints: Sequence[dict[str, Any]], lang: str, title: str, minimum: int) -> str:
    """Per checkpoint, the mean change of both groups with its interval (the whisker); a hollow
    marker when a group is too small to compare."""
    left, right, plot_top, plot_bottom, height = 90, WIDTH - 20, 40, 210, 262
    sides = [(c, s, _side(c, s)) for c in checkpoints for s in ("participants", "comparison")]
    values = [0.0]
    for _, _, (_, mean, bounds) in sides:
        values += [mean] if mean is not None else []
        values += list(bounds) if bounds else []
    ticks = nice_ticks(min(values), max(values), 5)

    def y_of(value: float) -> float:
        return plot_bottom - (plot_bottom - plot_top) * (value - ticks[0]) / (ticks[-1] - ticks[0])

    body = [f'<circle cx="{left + 6}" cy="14" r="5" fill="{PARTICIPANTS}"/>',
            _text(left + 16, 18, label(lang, "participants")),
            f'<rect x="{left + 170}" y="9" width="10" height="10" fill="{COMPARISON}"/>',
            _text(left + 186, 18, label(lang, "comparison"))]
    for tick in ticks:
        stroke = MUTED if tick == 0 else GRID
        body.append(f'<line x1="{left}" y1="{y_of(tick):.1f}" x2="{right}" y2="{y_of(tick):.1f}" '
                    f'stroke="{stroke}"/>')
        body.append(_text(left - 6, y_of(tick) + 4, money_short(tick, lang), "end", MUTED))
    slot = (right - left) / max(len(checkpoints), 1)
    for index, checkpoint in enumerate(checkpoints):
        centre = left + slot * (index + 0.5)
        sizes = []
        for offset, side, colour in ((-22, "participants", PARTICIPANTS), (22, "comparison", COMPARISON)):
            n, mean, bounds = _side(checkpoint, side)
            sizes.append(str(n))
            x = centre + offset
            if bounds:
                low, high = y_of(bounds[0]), y_of(bounds[1])
                body.append(f'<line x1="{x:.1f}" y1="{low:.1f}" x2="{x:.1f}" y2="{high:.1f}" '
                            f'stroke="{colour}" stroke-width="2"/>')
                for end in (low, high):
                    body.append(f'<line x1="{x - 6:.1f}" y1="{end:.1f}" x2="{x + 6:.1f}" y2="{end:.1f}" '
                                f'stroke="{colour}" stroke-width="2"/>')
            if mean is None:
                body.append(_text(x, y_of(0) - 6, "–", "middle", MUTED))
                continue
            fill = colour if n >= minimum else "#ffffff"  # hollow: too few SMEs to trust
            y = y_of(mean)
            shape = (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6"' if side == "participants"
                     else f'<rect x="{x - 6:.1f}" y="{y - 6:.1f}" width="12" height="12"')
            body.append(f'{shape} fill="{fill}" stroke="{colour}" stroke-width="2"/>')
        body.append(_text(centre, plot_bottom + 20, checkpoint_name(checkpoint.get("checkpoint"), lang),
                          "middle", INK, ' font-weight="bold"'))
        body.append(_text(centre, plot_bottom + 36, f"n = {sizes[0]} / {sizes[1]}", "middle", MUTED))
    return _svg(height, title, body)
