"""Inline SVG charts for the monthly HTML report: no JavaScript, no CDN, renders offline.

svg = bar_chart("Executions per day", ["01", "02"], [3, 5], unit=str)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 36, 40


def _frame(
    title: str, labels: Sequence[str], maximum: float, unit: Callable[[float], str]
) -> list[str]:
    plot_height = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold" fill="#222">'
        f"{escape(title)}</text>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_height * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
            f"{escape(unit(maximum * fraction))}</text>"
        )
    step = max(1, len(labels) // 10)
    for index, label in enumerate(labels):
        if index % step == 0:
            x = _x(index, len(labels))
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" '
                f'fill="#555">{escape(label)}</text>'
            )
    return parts


def _x(index: int, count: int) -> float:
    slot = (WIDTH - LEFT - RIGHT) / max(count, 1)
    return LEFT + slot * (index + 0.5)


def _y(value: float, maximum: float) -> float:
    plot_height = HEIGHT - TOP - BOTTOM
    return TOP + plot_height * (1 - (value / maximum if maximum else 0.0))


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    unit: Callable[[float], str],
    colour: str = "#3b7dd8",
) -> str:
    maximum = max(values, default=0.0) or 1.0
    parts = _frame(title, labels, maximum, unit)
    slot = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    for index, value in enumerate(values):
        top = _y(value, maximum)
        parts.append(
            f'<rect x="{_x(index, len(values)) - slot * 0.35:.1f}" y="{top:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{HEIGHT - BOTTOM - top:.1f}" fill="{colour}">'
            f"<title>{escape(labels[index])}: {escape(unit(value))}</title></rect>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def line_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    unit: Callable[[float], str],
    maximum: float = 1.0,
    colour: str = "#2e9e5b",
) -> str:
    """Gaps (None) break the line: a day without runs has no success rate."""
    parts = _frame(title, labels, maximum, unit)
    segment: list[str] = []
    segments: list[list[str]] = []
    for index, value in enumerate(values):
        if value is None:
            if segment:
                segments.append(segment)
            segment = []
            continue
        x, y = _x(index, len(values)), _y(value, maximum)
        segment.append(f"{x:.1f},{y:.1f}")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
    if segment:
        segments.append(segment)
    for points in segments:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
            'stroke-width="2"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
