"""The /v1 value rules: what a filename, label, content type, metadata or TTL
may be. Reading the values out of a request is app/api/parsing.py's job."""

import json
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain

from ..errors import InvalidRequest, TtlExceedsPlanLimit
from .plans import Plan, upgrade_offer

METADATA_KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")
MAX_METADATA_BYTES = 8 * 1024
OCTET_STREAM = "application/octet-stream"


@dataclass
class ArtifactFields:
    """What a caller may say about a new artifact, validated."""

    filename: str
    content_type: str
    session_id: str | None = None
    agent_id: str | None = None
    ttl: timedelta | None = None  # None: never expires
    metadata: dict[str, str] = field(default_factory=dict)

    def expires_after(self, created_at: datetime) -> datetime | None:
        """The TTL runs from the moment the artifact is created."""
        return None if self.ttl is None else created_at + self.ttl


def has_control(text: str) -> bool:
    # Lone surrogates (a JSON "\ud800") have no UTF-8 form, and U+FFFD is what
    # a form parser leaves where the client's bytes were not UTF-8: refused
    # with the control characters.
    return any(
        ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0xD800 <= ord(c) <= 0xDFFF or c == "\ufffd" for c in text
    )


# Code points that draw as nothing or reorder the text around them, so that a
# name shows as another (`invoice\u202etxt.exe` reads as `invoiceexe.txt`):
# format characters (bidi overrides and isolates, zero-width spaces and
# joiners, the BOM, soft hyphens, tags), line and paragraph separators, and
# the rest of what Unicode marks Default_Ignorable_Code_Point.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp"})
_INVISIBLE_CODE_POINTS = frozenset(
    chain(
        [0x034F, 0x2065, 0x3164, 0xFFA0],  # grapheme joiner, unassigned, Hangul fillers
        range(0x115F, 0x1161),  # Hangul fillers
        range(0x17B4, 0x17B6),  # Khmer inherent vowels
        range(0x180B, 0x1810),  # Mongolian variation selectors and vowel separator
        range(0xFE00, 0xFE10),  # variation selectors
        range(0xFFF0, 0xFFF9),  # unassigned, reserved as ignorable
        range(0xE0000, 0xE1000),  # tags, variation selectors supplement
    )
)


def _invisible(text: str) -> str | None:
    """The first character of `text` that is invisible or changes direction."""
    if text.isascii():
        return None
    for c in text:
        if ord(c) in _INVISIBLE_CODE_POINTS or unicodedata.category(c) in _INVISIBLE_CATEGORIES:
            return c
    return None


def storable(text: str) -> bool:
    """Text every database keeps: no NUL (PostgreSQL refuses it), no lone surrogates."""
    return "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def filename(value: object) -> str:
    # The SDK's pull joins the name onto a local directory: a path separator
    # here would let one uploader write anywhere on a downloader's disk.
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise InvalidRequest("filename must be 1-255 characters")
    if "/" in value or "\\" in value or has_control(value) or value in (".", ".."):
        raise InvalidRequest("filename may not contain '/', '\\' or control characters")
    # The SDK's pull also writes the file under this name, where a downloader
    # sees it shown as something it is not.
    if (c := _invisible(value)) is not None:
        name = unicodedata.name(c, "unnamed")
        raise InvalidRequest(
            f"filename may not contain U+{ord(c):04X} ({name}): invisible and "
            "direction-changing characters are refused"
        )
    return value


def label(value: object, name: str) -> str | None:
    """session_id / agent_id: absent, or 1-128 characters without '/' or controls."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 128:
        raise InvalidRequest(f"{name} must be 1-128 characters")
    if "/" in value or has_control(value):
        raise InvalidRequest(f"{name} may not contain '/' or control characters")
    return value


def content_type(explicit: object, part_type: str | None, name: str) -> str:
    """Explicit field, else the part's header unless octet-stream, else a guess.

    ASCII only: it is sent back as a header (and signed into S3's presigned
    PUT), where other characters are not valid."""
    if explicit not in (None, ""):
        if not isinstance(explicit, str) or not _header_safe(explicit):
            raise InvalidRequest("content_type must be an ASCII media type of at most 255 characters")
        return explicit
    if part_type and part_type != OCTET_STREAM and _header_safe(part_type):
        return part_type
    return mimetypes.guess_type(name)[0] or OCTET_STREAM


def _header_safe(value: str) -> bool:
    return len(value) <= 255 and value.isascii() and not has_control(value)


def metadata(value: object) -> dict[str, str]:
    """A flat object of strings."""
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be an object of strings")
    for key, item in value.items():
        if not METADATA_KEY.match(key):
            raise InvalidRequest(f"metadata key {key!r} must match {METADATA_KEY.pattern}")
        if not isinstance(item, str) or not storable(item) or "\ufffd" in item:
            raise InvalidRequest(
                f"metadata value for {key!r} must be a string of valid UTF-8 text without NUL"
            )
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise InvalidRequest("metadata may be at most 8 KB serialized")
    return value


def lifetime(seconds: int | None, plan: Plan) -> timedelta | None:
    """A TTL in seconds (None: never) under the plan's limits; None: never expires."""
    if seconds is None:
        if not plan.allows_never:
            raise TtlExceedsPlanLimit(
                f"ttl 'never' is not available on the {plan.name} plan",
                **upgrade_offer(plan, lambda other: other.allows_never),
            )
        return None
    # Compared in seconds: a well-formed but huge TTL (9999999999w) is over
    # the plan's limit, not a timedelta overflow.
    if seconds > plan.max_ttl.total_seconds():
        raise TtlExceedsPlanLimit(
            f"the {plan.name} plan allows a ttl of at most {plan.max_ttl.days}d",
            **upgrade_offer(plan, lambda other: seconds <= other.max_ttl.total_seconds()),
        )
    return timedelta(seconds=seconds)
