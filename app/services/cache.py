"""The build cache: Turborepo's remote cache rules, per tenant.

What turbo calls an artifact is here a cache entry (CacheEntry), named by its
hash; "artifact" elsewhere in Hoard means a /v1 artifact (services/artifacts/).
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from flask import current_app
from sqlalchemy import Connection, Row, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from .. import metrics
from ..clock import now
from ..errors import (
    Conflict,
    DigestMismatch,
    FileTooLarge,
    Forbidden,
    InvalidRequest,
    NotFound,
    OverLimit,
    Paused,
    RecordExists,
    RemoteCachingDisabled,
    Unauthorized,
    refused_body,
)
from ..extensions import db
from ..models import ApiKey, CacheEntry, CacheEvent, Tenant
from ..storage import BodyTooLarge, IncompleteBody, ObjectNotFound, StoredObject, get_storage, keys
from . import leases, usage
from .downloads import Download, open_download

MAX_QUERY_HASHES = 100
OPEN_ATTEMPTS = 20
# Each lost swap means another PUT of the hash committed meanwhile.
SWAP_ATTEMPTS = 64
MAX_EVENTS = 1000

# Every cache HEAD and GET runs this: the key, its team and the entry in one
# round trip. Built once, as building a statement costs more than running it.
READ_BY_KEY = (
    select(
        Tenant.id,
        Tenant.slug,
        Tenant.cache_status,
        Tenant.cache_tools_off,
        CacheEntry.storage_key,
        CacheEntry.size_bytes,
        CacheEntry.duration_ms,
        CacheEntry.tag,
        CacheEntry.git_sha,
        CacheEntry.dirty_hash,
        CacheEntry.last_read_at,
    )
    .select_from(ApiKey)
    .join(Tenant, Tenant.id == ApiKey.tenant_id)
    .outerjoin(CacheEntry, and_(CacheEntry.tenant_id == Tenant.id, CacheEntry.hash == bindparam("hash")))
    .where(ApiKey.digest == bindparam("digest"), ApiKey.revoked_at.is_(None))
)
# The condition on last_read_at keeps concurrent readers from writing twice.
TOUCH_ENTRY = (
    update(CacheEntry)
    .where(
        CacheEntry.tenant_id == bindparam("b_tenant_id"),
        CacheEntry.hash == bindparam("b_hash"),
        CacheEntry.last_read_at < bindparam("b_stale"),
    )
    .values(last_read_at=bindparam("b_now"))
)


@dataclass(frozen=True)
class EntryHeaders:
    """The x-artifact-* request headers kept with a cache entry."""

    duration_ms: int = 0
    tag: str | None = None
    git_sha: str | None = None
    dirty_hash: str | None = None
    client_ci: str | None = None
    client_interactive: bool | None = None


@dataclass(frozen=True)
class CacheRead:
    """What a cache read's one statement found: the key's team (id, slug,
    cache_status) and the entry's columns, or None when there is no entry."""

    team: Row
    entry: Row | None


@dataclass
class CacheDownload:
    entry: Row
    download: Download


def is_valid_hash(artifact_hash: str) -> bool:
    # A hash is part of its entry's storage key: the key part's rule is the hash's.
    return keys.is_safe_part(artifact_hash)


def validate_hash(artifact_hash: str) -> str:
    if not is_valid_hash(artifact_hash):
        raise InvalidRequest("hash must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', '-'")
    return artifact_hash


def check_team(tenant: Tenant | Row, *, team_id: str | None, slug: str | None) -> None:
    """Each team named in the query must be the key's own, by id or slug."""
    for named in (team_id, slug):
        if named is not None and named not in (tenant.id, tenant.slug):
            raise Forbidden(f"This key belongs to team '{tenant.slug}' ({tenant.id}), not '{named}'.")


def cache_status(tenant: Tenant) -> str:
    if tenant.cache_status in ("disabled", "paused"):
        return tenant.cache_status
    if usage.over_storage_quota(tenant):
        return "over_limit"
    return "enabled"


def _require_usable(tenant: Tenant | Row) -> None:
    """Refuse a disabled or paused cache. Reads are served even over the
    quota: it stops the cache growing, not serving what it holds."""
    if tenant.cache_status == "disabled":
        raise RemoteCachingDisabled()
    if tenant.cache_status == "paused":
        raise Paused()


def check_upload_size(content_length: int | None) -> None:
    """Refuse an announced body over the maximum before reading any of it."""
    if content_length is not None and content_length > current_app.config["CACHE_MAX_ARTIFACT_BYTES"]:
        raise FileTooLarge(f"artifacts may be at most {current_app.config['CACHE_MAX_ARTIFACT_BYTES']} bytes")


def put_entry(
    tenant: Tenant,
    artifact_hash: str,
    body: BinaryIO,
    *,
    content_length: int | None,
    headers: EntryHeaders,
) -> None:
    """Store a body under the hash, replacing any earlier one atomically."""
    validate_hash(artifact_hash)
    store_entry(
        tenant,
        artifact_hash,
        keys.cache_object(tenant.id, artifact_hash),
        body,
        content_length=content_length,
        headers=headers,
        # turbo verifies its own archives (and signs them when asked to).
        sha256=None,
        tool=usage.TURBO,
    )


def store_entry(
    tenant: Tenant,
    name: str,
    key: str,
    body: BinaryIO,
    *,
    content_length: int | None,
    headers: EntryHeaders,
    sha256: str | None,
    tool: str,
    replace: bool = True,
) -> None:
    """Store a body as the entry `name` (validated) at the fresh storage key
    `key`, replacing any earlier version atomically; with `sha256`, only a
    body of that digest. Without `replace`, an existing entry is kept and
    the PUT refused (RecordExists), however the race between two falls."""
    tenant_id = tenant.id  # still readable after the commits below expire the row
    check_upload_size(content_length)
    # A replacement frees the version it replaces: only the growth counts.
    replaced = db.session.get(CacheEntry, (tenant.id, name))
    if replaced is not None and not replace:
        raise RecordExists()
    replaced_size = replaced.size_bytes if replaced else 0
    _require_usable(tenant)
    # The room this PUT may fill: what is left, plus what it replaces. An
    # announced body is checked now; any body is held to it as it streams.
    max_size = current_app.config["CACHE_MAX_ARTIFACT_BYTES"]
    room = usage.storage_room(tenant)
    if room is not None and (content_length or 0) > room + replaced_size:
        raise OverLimit()
    quota_bound = room is not None and room + replaced_size < max_size
    store = get_storage()
    lease = leases.acquire(key)  # a body that fails leaves it to end as a dead writer's
    try:
        stored = store.put_stream(
            key,
            leases.Heartbeat(body, lease),
            max_size=max(0, room + replaced_size) if quota_bound else max_size,
            expected_size=content_length,
            sha256=sha256 is not None,
        )
    except BodyTooLarge as exc:
        if quota_bound:
            metrics.upload_aborted("over_quota")
            raise OverLimit() from None
        raise refused_body(exc, what="artifacts") from None
    except IncompleteBody as exc:
        raise refused_body(exc, what="artifacts") from None
    metrics.bytes_uploaded(stored.size)
    try:
        if sha256 is not None and stored.sha256 != sha256:
            raise DigestMismatch(f"the body's SHA-256 is {stored.sha256}, not its key's; nothing was stored")
        replaced_key = _point_entry_at(tenant, name, stored, headers, lease, replace=replace)
    except BaseException:
        store.delete(key)
        raise
    if replaced_key is not None:
        store.delete(replaced_key)
    usage.count(tenant_id, tool=tool, cache_uploads=1, cache_bytes_uploaded=stored.size)


def _point_entry_at(
    tenant: Tenant,
    artifact_hash: str,
    stored: StoredObject,
    headers: EntryHeaders,
    lease: leases.Lease,
    *,
    replace: bool,
) -> str | None:
    """Point the entry at the new object in one transaction; return the key it
    replaced. The last commit wins whole: body, size, duration and tag.

    The swap is a compare-and-swap on the key this PUT saw, so each replaced
    key is returned to exactly one PUT, to delete, on every database (SQLite
    ignores FOR UPDATE). A lost swap means another PUT committed: look again.
    """
    for _ in range(SWAP_ATTEMPTS):
        entry = db.session.scalar(
            select(CacheEntry)
            .where(CacheEntry.tenant_id == tenant.id, CacheEntry.hash == artifact_hash)
            .with_for_update()
            # The row as it is now: not the copy this session loaded before
            # the body streamed in, which a concurrent PUT may have replaced.
            .execution_options(populate_existing=True)
        )
        timestamp = now()
        values = {
            "storage_key": stored.key,
            "size_bytes": stored.size,
            "duration_ms": headers.duration_ms,
            "tag": headers.tag,
            "git_sha": headers.git_sha,
            "dirty_hash": headers.dirty_hash,
            "client_ci": headers.client_ci,
            "client_interactive": headers.client_interactive,
            "created_at": timestamp,
            "last_read_at": timestamp,
        }
        replaced_key = entry.storage_key if entry is not None else None
        if replaced_key is not None and not replace:
            db.session.rollback()
            raise RecordExists()
        try:
            if entry is None:
                db.session.add(CacheEntry(tenant_id=tenant.id, hash=artifact_hash, **values))
                db.session.flush()
            elif not db.session.execute(
                update(CacheEntry)
                .where(
                    CacheEntry.tenant_id == tenant.id,
                    CacheEntry.hash == artifact_hash,
                    CacheEntry.storage_key == replaced_key,
                )
                .values(**values),
                execution_options={"synchronize_session": False},
            ).rowcount:
                db.session.rollback()
                continue
            # Concurrent PUTs each fit the room they saw; the totals the
            # triggers keep decide, under the tenant row's lock, which fit together.
            if usage.over_storage_quota(tenant):
                db.session.rollback()
                raise OverLimit()
            leases.claim(lease)
            db.session.commit()
            return replaced_key
        except IntegrityError:
            # Another PUT inserted the first row meanwhile; update it instead.
            db.session.rollback()
        except leases.LeaseLost:
            db.session.rollback()
            raise Conflict("the upload stalled and was taken for dead; retry it") from None
    raise Conflict("the entry changed too often while this upload committed; retry it")


def find_read(connection: Connection, *, key_digest: str, artifact_hash: str) -> CacheRead | None:
    """The key's team and its entry for the hash, in one statement; None when
    no unrevoked key has this digest."""
    # A malformed hash is refused later, after the key and the limit.
    looked_up = artifact_hash if is_valid_hash(artifact_hash) else ""
    row = connection.execute(READ_BY_KEY, {"digest": key_digest, "hash": looked_up}).first()
    if row is None:
        return None
    return CacheRead(team=row, entry=row if row.storage_key is not None else None)


def open_read(
    connection: Connection,
    read: CacheRead,
    artifact_hash: str,
    *,
    key_digest: str,
    team_id: str | None,
    slug: str | None,
    with_body: bool,
) -> CacheDownload:
    """The entry and its body ready to send (a stream or a redirect), recording the read."""
    check_team(read.team, team_id=team_id, slug=slug)
    validate_hash(artifact_hash)
    _require_usable(read.team)
    # turbo verifies a signed artifact against the x-artifact-tag of the
    # response it finally reads; after a redirect that would be the object
    # store's, which cannot carry it. Signed entries are therefore always
    # sent by Hoard.
    opened = open_entry(
        connection,
        read,
        artifact_hash,
        tool=usage.TURBO,
        with_body=with_body,
        may_redirect=lambda entry: not entry.tag,
        find_again=lambda: find_read(connection, key_digest=key_digest, artifact_hash=artifact_hash),
    )
    if opened is None:
        raise NotFound("Artifact not found.")
    return opened


def open_entry(
    connection: Connection,
    read: CacheRead,
    name: str,
    *,
    tool: str,
    with_body: bool,
    may_redirect: Callable[[Row], bool],
    find_again: Callable[[], CacheRead | None],
) -> CacheDownload | None:
    """The entry `read` found under `name` (any tool's), its body ready to
    send, the hit or miss counted; None on a miss."""
    tenant_id = read.team.id
    method = "GET" if with_body else "HEAD"
    # A concurrent PUT may replace the object between reading the row and
    # opening the body; the row read again then names the new object. Each
    # retry means another PUT completed meanwhile, so this ends unless the
    # entry is being rewritten faster than it can be opened.
    for _ in range(OPEN_ATTEMPTS):
        entry = read.entry
        if entry is None:
            break
        _touch(connection, tenant_id, name, entry.last_read_at)
        try:
            download = open_download(
                entry.storage_key, entry.size_bytes, with_body=with_body, may_redirect=may_redirect(entry)
            )
        except ObjectNotFound:
            read = find_again()
            if read is None:
                raise Unauthorized() from None
            continue
        if with_body:
            usage.count(tenant_id, tool=tool, cache_hits=1, cache_bytes_served=entry.size_bytes)
            usage.count_read(tenant_id, name)
        metrics.cache_lookup(method, hit=True)
        return CacheDownload(entry=entry, download=download)
    if with_body:
        usage.count(tenant_id, tool=tool, cache_misses=1)
    metrics.cache_lookup(method, hit=False)
    return None


def _touch(connection: Connection, tenant_id: str, artifact_hash: str, last_read_at: datetime) -> None:
    # Reads refresh last_read_at for eviction, but at most once per interval:
    # a write on every cache hit would cost more than the hit itself.
    timestamp = now()
    interval = timedelta(seconds=current_app.config["CACHE_READ_TOUCH_SECONDS"])
    if timestamp - last_read_at >= interval:
        connection.execute(
            TOUCH_ENTRY,
            {
                "b_tenant_id": tenant_id,
                "b_hash": artifact_hash,
                "b_stale": timestamp - interval,
                "b_now": timestamp,
            },
        )


@dataclass
class QueryAnswer:
    """What a query found: each asked hash's entry, None when there is none;
    hashes no entry could have are in `invalid`."""

    hashes: list[str]
    entries: dict[str, CacheEntry]
    invalid: set[str]


def query_entries(tenant: Tenant, hashes: list[str]) -> QueryAnswer:
    _require_usable(tenant)
    valid = [h for h in hashes if is_valid_hash(h)]
    entries = {
        entry.hash: entry
        for entry in db.session.scalars(
            select(CacheEntry).where(CacheEntry.tenant_id == tenant.id, CacheEntry.hash.in_(valid))
        )
    }
    return QueryAnswer(hashes=hashes, entries=entries, invalid=set(hashes) - set(valid))


@dataclass(frozen=True)
class EventInput:
    """One of turbo's cache events, parsed (app/api/parsing.py)."""

    session_id: str
    source: str  # LOCAL | REMOTE
    event: str  # HIT | MISS
    hash: str
    duration_ms: int | None


def record_events(
    tenant: Tenant, events: list[EventInput], *, client_ci: str | None, client_interactive: bool | None
) -> int:
    """Store a checked batch of events, and add them to the tenant's hour."""
    if events:
        received = now()
        # One multi-row INSERT, without the unit of work: turbo sends a batch
        # at the end of every run and waits for the answer before it exits.
        db.session.execute(
            insert(CacheEvent),
            [
                {
                    "tenant_id": tenant.id,
                    "session_id": item.session_id,
                    "source": item.source,
                    "event": item.event,
                    "hash": item.hash,
                    "duration_ms": item.duration_ms,
                    "client_ci": client_ci,
                    "client_interactive": client_interactive,
                    "created_at": received,
                }
                for item in events
            ],
        )
        usage.add_hour(
            db.session.connection(),
            tenant.id,
            usage.hour_of(received),
            _event_counts(events, client_ci=client_ci, client_interactive=client_interactive),
        )
    db.session.commit()
    return len(events)


# No cached task saves more than a day: a larger duration is counted as one,
# so a client's figure cannot swamp the tenant's time saved.
MAX_SAVED_MS_PER_HIT = 24 * 3600 * 1000


def _event_counts(
    events: list[EventInput], *, client_ci: str | None, client_interactive: bool | None
) -> Counter:
    counts: Counter = Counter()
    for item in events:
        source = item.source.lower()
        counts[f"{source}_{'hits' if item.event == 'HIT' else 'misses'}"] += 1
        if item.event == "HIT":
            counts[f"{source}_saved_ms"] += min(item.duration_ms or 0, MAX_SAVED_MS_PER_HIT)
    origin = "ci_events" if client_ci else "interactive_events" if client_interactive else "other_events"
    counts[origin] = len(events)
    return counts
