"""Build tools' remote caches (Nx, ccache, sccache, Bazel, Gradle, Rush) over
the tenant's build cache.

A tool's entry is a CacheEntry named "<tool>/<key>": turbo's hashes never
hold a '/', so no two tools (turbo included) can name the same entry, and
everything the turbo cache has — quotas, eviction, atomic replace, crash
safety, the storage totals — applies as it is. Names too long for the column
are stored by the key's digest instead.
"""

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import Connection, Row, select

from ..errors import (
    CacheUnavailable,
    InvalidRequest,
    NotFound,
    OverLimit,
    Paused,
    RemoteCachingDisabled,
    ToolDisabled,
)
from ..extensions import db
from ..models import CacheEntry, Tenant
from ..storage import keys
from . import cache

NX = "nx"
BAZEL = "bazel"
RUSH = "rush"
# Every tool served, in the order stats list them (turbo is /v8's).
TOOLS = (NX, "ccache", "sccache", BAZEL, "gradle", RUSH)
# Those whose clients follow a redirect to the object store; ccache's and
# Bazel's HTTP clients do not, so they always get the bytes from Hoard.
FOLLOWS_REDIRECTS = frozenset({NX, "sccache", "gradle", RUSH})
# The refusals that mean "not stored, carry on": a 403 for every tool but
# Rush, which fails its build on any refused write (rush-lib warns "Unable to
# set cloud cache entry." whatever the status, and `rush build` fails on
# warnings): Rush's write is declined with a 202 instead.
NOT_STORED = (RemoteCachingDisabled, Paused, ToolDisabled, OverLimit)

MAX_KEY_LENGTH = 1024
# One segment of a key: no '/', '\', NUL, '%' or space, and never '.' or '..'.
_SEGMENT = re.compile(r"[A-Za-z0-9_.+=@,:~-]{1,255}")
_NX_HASH = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Bazel's HTTP cache: the action cache and the CAS, keyed by SHA-256.
_BAZEL_KEY = re.compile(r"(ac|cas)/([0-9a-f]{64})")
NAME_LENGTH = CacheEntry.hash.type.length


@dataclass(frozen=True)
class Declined:
    """A Rush write the cache did not take: why (an error code) and what to tell."""

    code: str
    message: str


def check_tool(tool: str) -> str:
    if tool not in TOOLS:
        raise NotFound(f"no build tool '{tool}'; the tools served are {', '.join(TOOLS)}")
    return tool


def canonical_key(tool: str, key: str) -> str:
    """The key as stored: empty segments dropped (sccache doubles a slash
    after a base URL ending in one), every segment checked."""
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(f"keys are at most {MAX_KEY_LENGTH} characters")
    segments = [segment for segment in key.split("/") if segment]
    if not segments:
        raise InvalidRequest("the key is empty")
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidRequest(
                "each '/'-separated part of a key is 1-255 characters of A-Z, a-z, 0-9 and _.+=@,:~- "
                "and never '.' or '..'"
            )
    canonical = "/".join(segments)
    if tool == NX and not _NX_HASH.fullmatch(canonical):
        raise InvalidRequest("hash must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', '-'")
    if tool == BAZEL and not _BAZEL_KEY.fullmatch(canonical):
        raise InvalidRequest("Bazel keys are ac/<sha256> or cas/<sha256>, in lower-case hex")
    return canonical


def entry_name(tool: str, key: str) -> str:
    """The CacheEntry name of a canonical key: "<tool>/<key>", or, when that
    would not fit, "<tool>/#<sha256 of the key>" ('#' is never in a key)."""
    name = f"{tool}/{key}"
    if len(name) <= NAME_LENGTH:
        return name
    return f"{tool}/#{hashlib.sha256(key.encode()).hexdigest()}"


def tool_enabled(tenant: Tenant | Row, tool: str) -> bool:
    return tool not in (tenant.cache_tools_off or "").split(",")


def tools_off_field(off: Collection[str]) -> str:
    """`tenants.cache_tools_off` for the tools turned off, each checked."""
    return ",".join(sorted({check_tool(tool) for tool in off}))


def _require_writable(tenant: Tenant, tool: str) -> None:
    """Disabled and paused caches refuse writes with their own 403s (cache.py);
    so does a tool turned off for the tenant."""
    if not tool_enabled(tenant, tool):
        raise ToolDisabled(f"the {tool} cache is turned off for this team")


def _readable(tenant: Tenant | Row, tool: str) -> bool:
    return tenant.cache_status not in ("disabled", "paused") and tool_enabled(tenant, tool)


def put_entry(
    tenant: Tenant,
    tool: str,
    key: str,
    body: BinaryIO,
    *,
    content_length: int | None,
) -> Declined | None:
    """Store the body under the tool's key, replacing any earlier version
    atomically (Nx's entries are never replaced: RecordExists). A Bazel CAS
    body must hash to its key, or nothing is stored (DigestMismatch). A PUT
    the cache may not take (NOT_STORED) is refused, or for Rush declined."""
    check_tool(tool)
    key = canonical_key(tool, key)
    name = entry_name(tool, key)
    bazel_key = _BAZEL_KEY.fullmatch(key) if tool == BAZEL else None
    try:
        _require_writable(tenant, tool)
        cache.store_entry(
            tenant,
            name,
            keys.tool_object(tenant.id, tool, name),
            body,
            content_length=content_length,
            headers=cache.EntryHeaders(),
            sha256=bazel_key.group(2) if bazel_key and bazel_key.group(1) == "cas" else None,
            tool=tool,
            replace=tool != NX,
        )
    except NOT_STORED as refused:
        if tool != RUSH:
            raise
        return Declined(code=refused.code, message=refused.message)
    return None


def entry_size(tenant: Tenant, tool: str, path: str) -> int:
    """WebDAV PROPFIND (sccache): an entry's size; NotFound for anything else,
    the base URL included, which sccache takes as "create it" (MKCOL)."""
    check_tool(tool)
    if not path.strip("/"):
        raise NotFound("collections are implied by the keys under them")
    name = entry_name(tool, canonical_key(tool, path))
    if not _readable(tenant, tool):
        raise CacheUnavailable()
    size = db.session.scalar(
        select(CacheEntry.size_bytes).where(CacheEntry.tenant_id == tenant.id, CacheEntry.hash == name)
    )
    if size is None:
        raise NotFound("No entry under this key.")
    return size


def find_read(connection: Connection, *, key_digest: str, tool: str, key: str) -> cache.CacheRead | None:
    """The key's team and the tool's entry under `key`, in one statement
    (cache.READ_BY_KEY); None when no unrevoked key has this digest. A key
    that is not valid for the tool finds no entry; open_read refuses it."""
    try:
        name = entry_name(check_tool(tool), canonical_key(tool, key))
    except (InvalidRequest, NotFound):
        name = ""
    row = connection.execute(cache.READ_BY_KEY, {"digest": key_digest, "hash": name}).first()
    if row is None:
        return None
    return cache.CacheRead(team=row, entry=row if row.storage_key is not None else None)


def open_read(
    connection: Connection, read: cache.CacheRead, tool: str, key: str, *, key_digest: str, with_body: bool
) -> cache.CacheDownload:
    """The entry find_read found, ready to send (api/cache_reads.py), the hit
    or miss counted. A cache or tool that is off answers a miss
    (CacheUnavailable): no tool fails a build on a miss."""
    check_tool(tool)
    name = entry_name(tool, canonical_key(tool, key))
    if not _readable(read.team, tool):
        raise CacheUnavailable()
    opened = cache.open_entry(
        connection,
        read,
        name,
        tool=tool,
        with_body=with_body,
        may_redirect=lambda entry: tool in FOLLOWS_REDIRECTS,
        find_again=lambda: find_read(connection, key_digest=key_digest, tool=tool, key=key),
    )
    if opened is None:
        raise NotFound("No entry under this key.")
    return opened


def make_collection(tenant: Tenant, tool: str, path: str) -> None:
    """WebDAV MKCOL (sccache): collections are implied by the keys under
    them, so only the path and the tool are checked."""
    check_tool(tool)
    if path.strip("/"):
        canonical_key(tool, path)
    _require_writable(tenant, tool)


def set_tool(tenant: Tenant, tool: str, *, enabled: bool) -> Tenant:
    """Turn one tool's cache on or off for the tenant."""
    check_tool(tool)
    off = {name for name in TOOLS if not tool_enabled(tenant, name)}
    tenant.cache_tools_off = tools_off_field(off - {tool} if enabled else off | {tool})
    db.session.commit()
    return tenant
