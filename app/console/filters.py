"""How the console writes numbers, sizes and times."""

import re
from datetime import datetime

from flask import Flask

from ..api.serializers import cursor
from .session import csrf_token, current_user


def size(count: int | None) -> str:
    """1,234 B; 1.2 KiB; 3.4 GiB."""
    if count is None:
        return "none"
    if count < 1024:
        return f"{count:,} B"
    value, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:,.1f} {unit}"


def exact_size(count: int | None) -> str:
    """A size as a form shows it for editing: in the largest unit that holds
    it whole (2GiB, 500MB), else in bytes, so saving the form unchanged
    keeps the value to the byte; empty for none."""
    if not count:
        return ""
    for unit, factor in _UNITS_LARGEST_FIRST:
        if count % factor == 0:
            return f"{count // factor}{unit}"
    return str(count)


_UNITS_LARGEST_FIRST = sorted(
    [(f"{letter}iB", 1024**power) for power, letter in enumerate("KMGT", start=1)]
    + [(f"{letter}B", 1000**power) for power, letter in enumerate("KMGT", start=1)],
    key=lambda unit: -unit[1],
)


def hours(milliseconds: int) -> str:
    """Time saved, in hours as Vercel reports it."""
    return f"{milliseconds / 3_600_000:,.2f} h"


def duration(milliseconds: int) -> str:
    """A part of the time saved in the unit it reads best in: 1.25 h, 12.5 min, 3.2 s."""
    if milliseconds >= 3_600_000:
        return hours(milliseconds)
    if milliseconds >= 60_000:
        return f"{milliseconds / 60_000:,.1f} min"
    return seconds(milliseconds)


def seconds(milliseconds: int) -> str:
    """The exact figure behind an hours one, for its title."""
    return f"{milliseconds / 1000:,.1f} s"


def percent(rate: float | None) -> str:
    return "no data" if rate is None else f"{rate * 100:.1f}%"


def when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def number(value: int | float) -> str:
    return f"{value:,}"


_ARTIFACT_ID = re.compile(r"art_[A-Za-z0-9]{16}")


def artifact_id(value: str) -> bool:
    """A test: whether `value` has an artifact id's shape (art_ + 16 alnum)."""
    return _ARTIFACT_ID.fullmatch(value) is not None


def init_app(app: Flask) -> None:
    for function in (size, exact_size, hours, duration, seconds, percent, when, number):
        app.add_template_filter(function)
    app.add_template_test(artifact_id)
    app.add_template_global(csrf_token)
    app.add_template_global(current_user)
    app.add_template_global(cursor, "cursor_of")
