"""Leases on the storage keys that uploads are writing.

An upload takes a lease on its key before the first byte is written and
renews it (a heartbeat) while the bytes flow. The commit that makes a row
name the key ends the lease in the same transaction (claim), so at every
moment an object or partial upload is named by a row, by a live lease, or by
neither: then its writer is dead or gave up, and gc may delete it at once.
gc ends leases whose heartbeat stopped MISSED_BEATS intervals ago; a writer
that was only stalled then fails at its claim instead of naming bytes gc
may have deleted.

Leases are written on a connection of their own, so gc sees them at once,
whatever the request's transaction holds.
"""

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO

from flask import current_app
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..clock import now
from ..extensions import db
from ..models import UploadLease

# A writer whose heartbeat is this many intervals old is taken for dead.
MISSED_BEATS = 6


class LeaseHeld(Exception):
    """Another live upload is writing this key."""


class LeaseLost(Exception):
    """gc took this upload for dead and may have collected its bytes."""


@dataclass
class Lease:
    key: str
    owner: str = field(default_factory=lambda: secrets.token_hex(16))
    beaten_at: float = field(default_factory=time.monotonic)


def _interval() -> int:
    return current_app.config["UPLOAD_HEARTBEAT_SECONDS"]


def dead_before(at: datetime) -> datetime:
    """Heartbeats older than this belong to dead writers."""
    return at - timedelta(seconds=_interval() * MISSED_BEATS)


def acquire(key: str) -> Lease:
    """A lease on `key`; LeaseHeld while another live upload holds one."""
    lease = Lease(key)
    with db.engine.begin() as connection:
        try:
            with connection.begin_nested():
                connection.execute(insert(UploadLease).values(key=key, owner=lease.owner, heartbeat_at=now()))
            return lease
        except IntegrityError:
            pass
        # Taken over only from a dead writer, in one statement.
        taken = connection.execute(
            update(UploadLease)
            .where(UploadLease.key == key, UploadLease.heartbeat_at < dead_before(now()))
            .values(owner=lease.owner, heartbeat_at=now())
        ).rowcount
    if not taken:
        raise LeaseHeld(key)
    return lease


def beat(lease: Lease, *, force: bool = False) -> None:
    """Renew the lease once an interval has passed; LeaseLost if gc ended it."""
    if not force and time.monotonic() - lease.beaten_at < _interval():
        return
    with db.engine.begin() as connection:
        renewed = connection.execute(
            update(UploadLease)
            .where(UploadLease.key == lease.key, UploadLease.owner == lease.owner)
            .values(heartbeat_at=now())
        ).rowcount
    if not renewed:
        raise LeaseLost(lease.key)
    lease.beaten_at = time.monotonic()


def release(lease: Lease) -> None:
    """End the lease of an upload that gave up (its bytes are deleted or dead)."""
    with db.engine.begin() as connection:
        connection.execute(
            delete(UploadLease).where(UploadLease.key == lease.key, UploadLease.owner == lease.owner)
        )


def claim(lease: Lease) -> None:
    """End the lease inside the caller's transaction, the one that makes a row
    name the key; LeaseLost (roll back) if gc has ended it meanwhile."""
    ended = db.session.execute(
        delete(UploadLease).where(UploadLease.key == lease.key, UploadLease.owner == lease.owner),
        execution_options={"synchronize_session": False},
    ).rowcount
    if not ended:
        raise LeaseLost(lease.key)


class Heartbeat:
    """A request body that renews its upload's lease as it is read."""

    def __init__(self, stream: BinaryIO, lease: Lease):
        self._stream = stream
        self._lease = lease

    def read(self, size: int = -1) -> bytes:
        beat(self._lease)
        return self._stream.read(size)

    def readinto(self, buffer) -> int:
        beat(self._lease)
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:
            raise NotImplementedError  # HashingReader then uses read()
        return readinto(buffer)


# -- gc ------------------------------------------------------------------------


def end_dead(at: datetime) -> int:
    """End the leases of dead writers; how many."""
    ended = db.session.execute(
        delete(UploadLease).where(UploadLease.heartbeat_at < dead_before(at)),
        execution_options={"synchronize_session": False},
    ).rowcount
    db.session.commit()
    return ended


def held_keys() -> set[str]:
    keys = set(db.session.scalars(select(UploadLease.key)))
    db.session.commit()
    return keys
