"""The console's forms and query strings → typed values; InvalidRequest
(an HTML error page in the console) for anything else. Listings reuse the
API's parsing, so their filters and cursors are the API's own."""

import re
from decimal import Decimal, localcontext
from typing import Any

from werkzeug.datastructures import MultiDict

from ..api import parsing
from ..errors import InvalidRequest
from ..services.insight import PERIODS
from ..services.tenants import CACHE_STATUSES, MAX_RETENTION_DAYS, MAX_SIZE_BYTES
from ..services.tool_cache import TOOLS

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1}
for _power, _letter in enumerate("kmgt", start=1):
    _UNITS[_letter] = _UNITS[_letter + "b"] = 1000**_power
    _UNITS[_letter + "i"] = _UNITS[_letter + "ib"] = 1024**_power
MAX_LINK_DAYS = 365


def period(args) -> str:
    value = args.get("range") or next(iter(PERIODS))
    if value not in PERIODS:
        raise InvalidRequest(f"range must be one of {', '.join(PERIODS)}")
    return value


def artifact_listing(args) -> dict[str, Any]:
    """list_artifacts' arguments, as /v1/artifacts reads them; the form's
    `meta` field ("key=value") is one more metadata.<key> filter."""
    args = MultiDict((name, value) for name, value in args.items(multi=True) if value != "")
    meta = args.pop("meta", "").strip()
    if meta:
        key, sep, value = meta.partition("=")
        if not sep:
            raise InvalidRequest("the metadata filter must read key=value")
        args.add(f"metadata.{key.strip()}", value.strip())
    return parsing.artifact_listing(args)


def session_listing(args) -> dict[str, Any]:
    return parsing.session_listing(MultiDict((n, v) for n, v in args.items(multi=True) if v != ""))


def size(value: str, name: str) -> int:
    """`10GiB`, `1.5 GB`, `1073741824`, whole bytes (a fraction is dropped);
    empty is 0 (no limit). Decimal arithmetic: a number of bytes is kept
    exactly however large, and 0.5 is refused rather than read as no limit."""
    if not value.strip():
        return 0
    match = _SIZE.match(value)
    if match is None:
        raise InvalidRequest(f"{name} must be a size such as 10GiB, 500MB or a number of bytes")
    number, unit = match.groups()
    if len(number) > 40:  # far past 8 EiB, and Decimal's work grows with it
        raise InvalidRequest(f"{name} must be below {MAX_SIZE_BYTES:,} bytes (8 EiB)")
    # Enough digits for the 40 allowed and the unit: no rounding before int().
    with localcontext(prec=60):
        amount = int(Decimal(number) * _UNITS[(unit or "").lower()])
    if amount == 0 and Decimal(number) != 0:
        raise InvalidRequest(f"{name} must be at least one byte, or empty for none")
    if amount >= MAX_SIZE_BYTES:
        raise InvalidRequest(f"{name} must be below {MAX_SIZE_BYTES:,} bytes (8 EiB)")
    return amount


def whole_number(value: str, name: str, *, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
    return number


def cache_settings(form) -> dict[str, Any]:
    """update_tenant's cache arguments; an empty cap is no cap (0)."""
    status = form.get("cache_status", "")
    if status not in CACHE_STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(CACHE_STATUSES)}")
    return {
        "cache_status": status,
        "cache_retention_days": whole_number(
            form.get("cache_retention_days", ""), "retention", low=1, high=MAX_RETENTION_DAYS
        ),
        "cache_max_bytes": size(form.get("cache_max_bytes", ""), "cache cap"),
        "cache_tools_off": tools_off(form),
    }


def tools_off(form) -> set[str] | None:
    """The build tools left unticked. The form always sends an empty
    `tools_on` beside its checkboxes, so a post without the field changes
    no tool (an unticked checkbox sends nothing)."""
    if "tools_on" not in form:
        return None
    ticked = {tool for tool in form.getlist("tools_on") if tool}
    unknown = ticked - set(TOOLS)
    if unknown:
        raise InvalidRequest(f"no build tool {sorted(unknown)[0]!r}; the tools are {', '.join(TOOLS)}")
    return set(TOOLS) - ticked


def key_is_admin(form) -> bool:
    role = form.get("role", "member")
    if role not in ("member", "admin"):
        raise InvalidRequest("role must be member or admin")
    return role == "admin"


def link_seconds(form) -> int | None:
    """A public link's life from its form (days); empty: the default."""
    days = form.get("days", "").strip()
    if not days:
        return None
    return whole_number(days, "days", low=1, high=MAX_LINK_DAYS) * 86400
