"""The one source of "now".

Times are naive UTC throughout (SQLite keeps no zone); serializers add the Z.
Every caller reads the time through `now`, so tests move it (tests/clock.py)
instead of sleeping.
"""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def unix() -> float:
    """Now as Unix seconds."""
    return now().replace(tzinfo=UTC).timestamp()
