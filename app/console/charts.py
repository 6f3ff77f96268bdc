"""Charts drawn on the server as SVG: no script, no request elsewhere.

Each chart is a <figure> whose SVG has a title and a description, each bar
a <title> of its numbers, and a table below with every number, for screen
readers and for anyone who wants the figures.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 30
FONT = 13
TIME_UNITS = (("hours", "h", 3_600_000), ("minutes", "min", 60_000), ("seconds", "s", 1000))
# Colours that keep their contrast on white and to colour-blind eyes.
COLOURS = ("#1f6feb", "#d29922", "#8250df", "#2da44e")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _label(start: datetime, bucket: str) -> str:
    return f"{start:%d %b %H:00}" if bucket == "hour" else f"{start:%d %b}"


def _nice_top(value: float) -> float:
    """The axis' top: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def stacked_bars(
    chart_id: str,
    title: str,
    starts: Sequence[datetime],
    series: Sequence[Series],
    *,
    bucket: str,
    fmt: Callable[[float], str] = lambda value: f"{value:,.0f}",
) -> Markup:
    """A stacked bar per bucket, one colour per series, with its table."""
    totals = [sum(s.values[i] for s in series) for i in range(len(starts))]
    top = _nice_top(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(starts), 1)
    bar_w = max(slot * 0.8, 1)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d"'
        f' class="chart">',
        f'<title id="{chart_id}-t">{escape(title)}</title>',
        f'<desc id="{chart_id}-d">{escape(_description(series, starts, bucket, fmt))}</desc>',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{FONT}" fill="#57606a">'
            f"{escape(fmt(top * fraction))}</text>"
        )
    for i, start in enumerate(starts):
        x = LEFT + i * slot + (slot - bar_w) / 2
        base = TOP + plot_h
        numbers = "; ".join(f"{s.name} {fmt(s.values[i])}" for s in series)
        parts.append(f"<g><title>{escape(_label(start, bucket))}: {escape(numbers)}</title>")
        for colour, s in zip(COLOURS, series, strict=False):
            height = plot_h * s.values[i] / top
            if height <= 0:
                continue
            base -= height
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{height:.1f}"'
                f' fill="{colour}"/>'
            )
        parts.append("</g>")
    for i in sorted({0, len(starts) // 2, len(starts) - 1} if starts else set()):
        x = LEFT + i * slot + slot / 2
        anchor = "start" if i == 0 else "end" if i == len(starts) - 1 else "middle"
        x = LEFT if anchor == "start" else WIDTH - RIGHT if anchor == "end" else x
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="{FONT}" fill="#57606a">'
            f"{escape(_label(starts[i], bucket))}</text>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch swatch-{n}" aria-hidden="true"></span>{escape(s.name)}</li>'
        for n, s in enumerate(series)
    )
    return Markup(
        f'<figure class="chart-figure" id="{chart_id}"><figcaption>{escape(title)}</figcaption>'
        f'{"".join(parts)}<ul class="legend">{legend}</ul>'
        f"{_table(title, starts, series, bucket, fmt)}</figure>"
    )


def _description(series, starts, bucket, fmt) -> str:
    if not starts:
        return "No data in this range."
    totals = ", ".join(f"{s.name}: {fmt(sum(s.values))} in total" for s in series)
    first, last = _label(starts[0], bucket), _label(starts[-1], bucket)
    return f"{len(starts)} {bucket}s from {first} to {last}; {totals}."


def _table(title, starts, series, bucket, fmt) -> str:
    head = "".join(f'<th scope="col">{escape(s.name)}</th>' for s in series)
    rows = "".join(
        f'<tr><th scope="row">{escape(_label(start, bucket))}</th>'
        + "".join(f"<td>{escape(fmt(s.values[i]))}</td>" for s in series)
        + "</tr>"
        for i, start in enumerate(starts)
    )
    return (
        f"<details><summary>{escape(title)}: the numbers</summary>"
        f'<div class="table-wrap"><table><thead><tr><th scope="col">{bucket.title()}</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div></details>"
    )


def overview_charts(summary) -> list[Markup]:
    """The overview's charts, from insight.Overview's series."""
    points = summary.series
    starts = [point.start for point in points]

    def series(name: str, value: Callable) -> Series:
        return Series(name, [value(point) for point in points])

    # Time saved in the unit its largest point reads best in.
    most_saved = max((p.remote_saved_ms + p.local_saved_ms for p in points), default=0)
    unit, symbol, per_ms = next(u for u in TIME_UNITS if most_saved >= u[2] or u[0] == "seconds")

    def saved(value: float) -> str:
        return f"{value:,.2f} {symbol}"

    def mib(value: float) -> str:
        return f"{value:,.1f} MiB"

    bucket = summary.bucket
    return [
        stacked_bars(
            "chart-turbo",
            "Turbo cache lookups (remote and local)",
            starts,
            [
                series("Remote hits", lambda p: p.remote_hits),
                series("Remote misses", lambda p: p.remote_misses),
                series("Local hits", lambda p: p.local_hits),
                series("Local misses", lambda p: p.local_misses),
            ],
            bucket=bucket,
        ),
        stacked_bars(
            "chart-saved",
            f"Time saved ({unit})",
            starts,
            [
                series("Remote", lambda p: p.remote_saved_ms / per_ms),
                series("Local", lambda p: p.local_saved_ms / per_ms),
            ],
            bucket=bucket,
            fmt=saved,
        ),
        stacked_bars(
            "chart-requests",
            "Requests served by /v8",
            starts,
            [
                series("Hits", lambda p: p.lookups_hit),
                series("Misses", lambda p: p.lookups_miss),
                series("Uploads", lambda p: p.uploads),
            ],
            bucket=bucket,
        ),
        stacked_bars(
            "chart-bytes",
            "Bytes moved (MiB)",
            starts,
            [
                series("Served", lambda p: p.bytes_served / 1048576),
                series("Uploaded", lambda p: p.bytes_uploaded / 1048576),
            ],
            bucket=bucket,
            fmt=mib,
        ),
    ]
