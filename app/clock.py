"""The one source of "now", so tests can move time instead of sleeping.

Times are naive UTC throughout (SQLite keeps no zone); serializers add the Z.
"""

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) + _offset


def advance(delta: timedelta) -> None:
    """Move the clock forward (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)


def unix() -> float:
    """Now as Unix seconds."""
    return now().replace(tzinfo=UTC).timestamp()


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
