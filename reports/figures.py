"""Inline SVG figures generated in Python (no chart library, no network) and the colour scales the
report uses. Every text that goes into SVG is escaped; numbers are formatted, never interpolated raw.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# Token colouring by perceptual influence I_t^area: 0 = language prior (orange), 1 = visual evidence
# (blue); a colour-blind-safe diverging pair through a light neutral, 11 steps.
INFLUENCE_PALETTE = (
    "#e66101",
    "#ec7f33",
    "#f29c60",
    "#f6b88c",
    "#f9d3b8",
    "#f2f0ee",
    "#c9d9ea",
    "#a0c0e0",
    "#76a5d3",
    "#4b89c4",
    "#1f6db3",
)
HIGHLIGHT = "#d62728"
SERIES = "#1f4e8c"


def influence_css() -> str:
    """CSS gradient of INFLUENCE_PALETTE for the legend."""
    n = len(INFLUENCE_PALETTE) - 1
    return (
        "linear-gradient(to right, "
        + ", ".join(f"{c} {100 * i / n:.0f}%" for i, c in enumerate(INFLUENCE_PALETTE))
        + ")"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Point:
    key: str  # run id
    when: dt.datetime
    value: float | None


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def trend_svg(
    points: Sequence[Point], *, highlight: str, title: str, better: str, width: int = 640, height: int = 190
) -> Markup:
    """A line chart of one metric per run (oldest left), the `highlight` run marked with a red ring,
    a dashed guide and a label. `better` ("lower" / "higher") goes into the accessible description."""
    left, right, top, bottom = 48, 16, 14, 34
    values = [p.value for p in points if p.value is not None]
    desc = f"{title} per run, {better} is better; {len(points)} runs; the report's run is ringed in red."
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="t-{escape(title)}">'
        f'<title id="t-{escape(title)}">{escape(title)}</title><desc>{escape(desc)}</desc>'
    )
    if not values:
        return Markup(
            head + f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">'
            "no yes/no results in these runs</text></svg>"
        )
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.05)
    lo, hi = max(0.0, lo - 0.15 * span), min(1.0, hi + 0.15 * span)
    plot_w, plot_h = width - left - right, height - top - bottom

    def x_of(i: int) -> float:
        return left + (plot_w / 2 if len(points) == 1 else i * plot_w / (len(points) - 1))

    def y_of(v: float) -> float:
        return top + (hi - v) / max(hi - lo, 1e-9) * plot_h

    parts = [head]
    for k in range(5):  # horizontal grid with labels
        v = lo + (hi - lo) * k / 4
        y = y_of(v)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
            f'<text class="tick" x="{left - 6}" y="{_fmt(y + 4)}" text-anchor="end">{v:.3f}</text>'
        )
    segments: list[list[str]] = [[]]
    for i, p in enumerate(points):
        if p.value is None:
            segments.append([])
        else:
            segments[-1].append(f"{_fmt(x_of(i))},{_fmt(y_of(p.value))}")
    for seg in segments:
        if len(seg) > 1:
            parts.append(
                f'<polyline class="series" fill="none" stroke="{SERIES}" stroke-width="2" '
                f'points="{" ".join(seg)}"/>'
            )
    step = max(1, len(points) // 8)
    same_days = (max(p.when for p in points) - min(p.when for p in points)) < dt.timedelta(days=2)
    stamp = "%m-%d %H:%M" if same_days else "%m-%d"  # several runs a day need the time to tell apart
    for i, p in enumerate(points):
        x = x_of(i)
        if i % step == 0 or p.key == highlight:
            parts.append(
                f'<text class="tick" x="{_fmt(x)}" y="{height - 12}" text-anchor="middle">'
                f"{escape(p.when.strftime(stamp))}</text>"
            )
        if p.value is None:
            continue
        y = y_of(p.value)
        label = escape(f"{p.key} ({p.when:%Y-%m-%d %H:%M} UTC): {p.value:.4f}")
        if p.key == highlight:
            parts.append(
                f'<line class="guide" x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{top}" y2="{top + plot_h}" '
                f'stroke="{HIGHLIGHT}" stroke-dasharray="4 3"/>'
                f'<circle class="point current" data-run="{escape(p.key)}" cx="{_fmt(x)}" cy="{_fmt(y)}" '
                f'r="7" fill="#fff" stroke="{HIGHLIGHT}" stroke-width="3">'
                f"<title>{label} (this report)</title></circle>"
                f'<text class="callout" x="{_fmt(min(max(x, left + 40), width - right - 40))}" '
                f'y="{_fmt(y - 12 if y > top + 20 else y + 22)}" text-anchor="middle">'
                f"this run {p.value:.3f}</text>"
            )
        else:
            parts.append(
                f'<circle class="point" data-run="{escape(p.key)}" cx="{_fmt(x)}" cy="{_fmt(y)}" r="4" '
                f'fill="{SERIES}"><title>{label}</title></circle>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
