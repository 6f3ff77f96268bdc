"""Test time: moves app.clock's "now" forward instead of sleeping.

app.clock reads the time from its module's `datetime`; importing this module
puts in its place a datetime whose now() runs `offset` ahead.
"""

from datetime import datetime, timedelta

from app import clock as app_clock
from app.clock import now, unix

__all__ = ["advance", "now", "reset", "unix"]


class _MovedDatetime(datetime):
    offset = timedelta(0)

    @classmethod
    def now(cls, tz=None):
        return datetime.now(tz) + cls.offset


app_clock.datetime = _MovedDatetime


def advance(delta: timedelta) -> None:
    """Move the clock forward."""
    _MovedDatetime.offset += delta


def reset() -> None:
    _MovedDatetime.offset = timedelta(0)
