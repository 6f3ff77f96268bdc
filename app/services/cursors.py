"""Opaque, URL-safe keyset cursors: a (timestamp, id) position in a listing.

base64url without padding: the SDK sends the sessions cursor unencoded, so it
must survive a query string as it is.
"""

import base64
import json
from collections.abc import Callable
from datetime import datetime

from ..errors import InvalidRequest
from . import validation


def encode(at: datetime, item_id: str) -> str:
    raw = json.dumps([at.isoformat(), item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str, *, name: str, valid_id: Callable[[str], bool]) -> tuple[datetime, str]:
    """The position a cursor names; InvalidRequest for anything a caller crafted."""
    invalid = InvalidRequest(f"{name} is not a valid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, item_id = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        raise invalid from None
    # Whatever reaches the query is a timestamp and a well-formed id.
    if not isinstance(at, str) or not isinstance(item_id, str) or not valid_id(item_id):
        raise invalid
    return validation.timestamp(at, name), item_id
