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
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    bucket: str,
    fmt: Callable[[float], str] | None = None,
) -> Markup:
    """A stacked bar per bucket (`labels` name them), one colour per series,
    with its table. Labels, names and titles are the console's own text."""
    fmt = fmt or _count
    count = len(labels)
    cells = [[fmt(value) for value in s.values] for s in series]
    top = _nice_top(max((sum(column) for column in zip(*(s.values for s in series), strict=True)), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(count, 1)
    width = f"{max(slot * 0.8, 1):.1f}"
    bar_w = float(width)
    scale = plot_h / top
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d"'
        f' class="chart"><title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(_description(series, labels, bucket, fmt))}</desc>'
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="{FONT}" fill="#57606a">'
            f"{fmt(top * fraction)}</text>"
        )
    names = [s.name for s in series]
    for i, label in enumerate(labels):
        x = f"{LEFT + i * slot + (slot - bar_w) / 2:.1f}"
        base = TOP + plot_h
        numbers = "; ".join(f"{name} {column[i]}" for name, column in zip(names, cells, strict=True))
        parts.append(f"<g><title>{label}: {numbers}</title>")
        for colour, s in zip(COLOURS, series, strict=False):
            value = s.values[i]
            if value > 0:
                height = value * scale
                base -= height
                parts.append(
                    f'<rect x="{x}" y="{base:.1f}" width="{width}" height="{height:.1f}" fill="{colour}"/>'
                )
        parts.append("</g>")
    for i in sorted({0, count // 2, count - 1} if count else set()):
        anchor = "start" if i == 0 else "end" if i == count - 1 else "middle"
        x = LEFT if anchor == "start" else WIDTH - RIGHT if anchor == "end" else LEFT + i * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="{FONT}" fill="#57606a">'
            f"{labels[i]}</text>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li><span class="swatch swatch-{n}" aria-hidden="true"></span>{escape(name)}</li>'
        for n, name in enumerate(names)
    )
    return Markup(
        f'<figure class="chart-figure" id="{chart_id}"><figcaption>{escape(title)}</figcaption>'
        f'{"".join(parts)}<ul class="legend">{legend}</ul>'
        f"{_table(title, labels, names, cells, bucket)}</figure>"
    )


def _count(value: float) -> str:
    """Counts are whole; only an axis' half-way mark (2.5 of 5) is not."""
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def _description(series, labels, bucket, fmt) -> str:
    if not labels:
        return "No data in this range."
    totals = ", ".join(f"{s.name}: {fmt(sum(s.values))} in total" for s in series)
    return f"{len(labels)} {bucket}s from {labels[0]} to {labels[-1]}; {totals}."


def _table(title, labels, names, cells, bucket) -> str:
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name in names)
    rows = "".join(
        f'<tr><th scope="row">{label}</th><td>{"</td><td>".join(row)}</td></tr>'
        for label, row in zip(labels, zip(*cells, strict=True), strict=True)
    )
    return (
        f"<details><summary>{escape(title)}: the numbers</summary>"
        f'<div class="table-wrap"><table><thead><tr><th scope="col">{bucket.title()}</th>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div></details>"
    )


def overview_charts(summary) -> list[Markup]:
    """The overview's charts, from insight.Overview's series."""
    points = summary.series
    bucket = summary.bucket
    labels = [_label(point.start, bucket) for point in points]

    def series(name: str, value: Callable) -> Series:
        return Series(name, [value(point) for point in points])

    # Time saved in the unit its largest point reads best in.
    most_saved = max((p.remote_saved_ms + p.local_saved_ms for p in points), default=0)
    unit, symbol, per_ms = next(u for u in TIME_UNITS if most_saved >= u[2] or u[0] == "seconds")

    def saved(value: float) -> str:
        return f"{value:,.2f} {symbol}"

    def mib(value: float) -> str:
        return f"{value:,.1f} MiB"

    return [
        stacked_bars(
            "chart-turbo",
            "Turbo cache lookups (remote and local)",
            labels,
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
            labels,
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
            labels,
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
            labels,
            [
                series("Served", lambda p: p.bytes_served / 1048576),
                series("Uploaded", lambda p: p.bytes_uploaded / 1048576),
            ],
            bucket=bucket,
            fmt=mib,
        ),
    ]
