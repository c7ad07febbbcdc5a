"""Horizontal bar charts as SVG geometry (attributes only, so the CSP allows them)."""

from __future__ import annotations

from dataclasses import dataclass

LABEL_W, BAR_W, VALUE_W = 220, 320, 90
ROW_H, BAR_H, GAP = 28, 18, 4


@dataclass(frozen=True)
class Bar:
    series: str  # CSS modifier naming the series, e.g. "respond"
    y: float
    width: float
    text: str  # the value as printed beside the bar


@dataclass(frozen=True)
class Row:
    label: str
    y: float  # text baseline of the label
    bars: list[Bar]


@dataclass(frozen=True)
class BarChart:
    title: str
    rows: list[Row]
    height: int
    width: int = LABEL_W + BAR_W + VALUE_W
    bar_x: int = LABEL_W
    value_x: int = LABEL_W + BAR_W + 6


def bar_chart(
    title: str,
    rows: list[tuple[str, list[tuple[str, float | None, str]]]],
    *,
    top: float | None = None,
) -> BarChart:
    """Rows of (label, [(series, value, text)]); bars scale to `top` (default the largest)."""
    values = [v for _, bars in rows for _, v, _ in bars if v is not None]
    scale = top if top is not None else max(values, default=0.0)
    out: list[Row] = []
    y = 0.0
    for label, bars in rows:
        drawn = []
        for i, (series, value, text) in enumerate(bars):
            width = BAR_W * (value or 0.0) / scale if scale else 0.0
            drawn.append(Bar(series, y + GAP + i * (BAR_H + GAP), round(width, 1), text))
        span = max(ROW_H, GAP + len(bars) * (BAR_H + GAP))
        out.append(Row(label, y + span / 2 + 5, drawn))
        y += span
    return BarChart(title, out, int(y) or ROW_H)
