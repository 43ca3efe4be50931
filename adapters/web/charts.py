"""The dashboard's spend-per-day chart as SVG drawn on the server.

Server-rendered SVG rather than a chart library: the page needs one bar chart, which is ~80 lines
here, costs the browser no script at all, stays readable without JavaScript, can't load anything
from another host, and shows exactly the ledger's numbers (each bar's tooltip is its amounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from core.money import format_usd
from core.spending import DailySpend

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 24
PREVIOUS_COLOUR = "#9ca3af"
# Distinguishable, and each at least 3:1 against the white background (WCAG non-text contrast).
PALETTE = ("#1d4ed8", "#b45309", "#047857", "#be185d", "#6d28d9", "#0e7490", "#4d7c0f", "#b91c1c")


@dataclass(frozen=True, slots=True)
class Legend:
    label: str
    colour: str


def service_colours(services: list[str]) -> dict[str, str]:
    return {service: PALETTE[index % len(PALETTE)] for index, service in enumerate(sorted(services))}


def spend_chart(current: DailySpend, previous: DailySpend) -> tuple[str, list[Legend]]:
    """An SVG of ``current``'s spend per day stacked by service, each day beside the same day of
    ``previous`` (grey), on one scale; and its legend."""
    colours = service_colours(current.services)
    days = max(current.days, previous.days)
    tallest = max(max(current.total(day), previous.total(day)) for day in range(1, days + 1))
    scale = _nice_top(tallest)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / days
    bar = slot * 0.45

    def y(amount: int) -> float:
        return plot_h * amount / scale if scale else 0.0

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" '
        'class="chart" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">Spend per day in {current.period}, by service, '
        f"beside {previous.period}</title>",
        f'<desc id="chart-desc">Coloured bars: {escape(current.period)} by service; grey bars: '
        f"{escape(previous.period)}. The table below the chart has the same figures.</desc>",
    ]
    for fraction in (0, 0.5, 1):
        level = TOP + plot_h - plot_h * fraction
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{level:.1f}" y2="{level:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end">'
            f"{escape(format_usd(round(scale * fraction)))}</text>"
        )
    for day in range(1, days + 1):
        x = LEFT + (day - 1) * slot + slot * 0.05
        base = float(TOP + plot_h)
        spend = current.by_day.get(day, {})
        for service in sorted(spend):
            height = y(spend[service])
            base -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colours[service]}"><title>{current.period}-{day:02d} {escape(service)}: '
                f"{escape(format_usd(spend[service]))}</title></rect>"
            )
        before = previous.total(day)
        if before:
            height = y(before)
            parts.append(
                f'<rect x="{x + bar:.1f}" y="{TOP + plot_h - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{PREVIOUS_COLOUR}"><title>{previous.period}-{day:02d}: '
                f"{escape(format_usd(before))}</title></rect>"
            )
        if day == 1 or day % 5 == 0:
            parts.append(f'<text x="{x + bar:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{day}</text>')
    parts.append("</svg>")
    legend = [Legend(service, colour) for service, colour in colours.items()]
    legend.append(Legend(f"{previous.period} (all services)", PREVIOUS_COLOUR))
    return "".join(parts), legend


def _nice_top(amount: int) -> int:
    """A round ceiling for the axis: 1, 2 or 5 times a power of ten micro-dollars (at least a cent)."""
    top = 10_000
    while top < amount:
        top = _next_step(top)
    return top


def _next_step(value: int) -> int:
    digits = str(value)
    lead, zeros = int(digits[0]), len(digits) - 1
    step = 2 if lead == 1 else 5 if lead == 2 else 10
    return int(step * 10**zeros)
