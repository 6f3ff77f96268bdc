"""What the hot paths ask of the database: which requests run in a
transaction, how many statements a cache read takes, and counters kept apart
from the request's own session."""

from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.services import usage
from tests.api.helpers_v1 import create

HASH = "0123456789abcdef"


def _autocommit(dbapi_connection) -> bool:
    if type(dbapi_connection).__module__.startswith("psycopg"):
        return dbapi_connection.autocommit
    # sqlite3 runs in autocommit when it has no isolation level.
    return dbapi_connection.isolation_level is None


@dataclass
class Statements:
    kinds: list[tuple[str, bool]] = field(default_factory=list)  # (SELECT/INSERT/..., ran in autocommit)
    texts: list[str] = field(default_factory=list)


@contextmanager
def statements(app):
    """Every statement the block sends."""
    seen = Statements()

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.kinds.append((statement.split()[0].upper(), _autocommit(conn.connection.dbapi_connection)))
        seen.texts.append(" ".join(statement.split()))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def put(client, auth, artifact_hash=HASH, body=b"archive"):
    response = client.put(
        f"/v8/artifacts/{artifact_hash}",
        data=body,
        headers={**auth, "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 202, response.json


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_cache_reads_run_without_a_transaction(app, client, auth, method):
    put(client, auth)
    with statements(app) as seen:
        response = client.open(f"/v8/artifacts/{HASH}", method=method, headers=auth)
    assert response.status_code == 200
    assert [kind for kind, _ in seen.kinds][:1] == ["SELECT"]  # the key, its team and the entry
    assert all(autocommit for _, autocommit in seen.kinds), seen.kinds


def test_v1_reads_run_without_a_transaction(app, client, auth):
    artifact = create(client, auth)
    with statements(app) as seen:
        assert client.get(f"/v1/artifacts/{artifact['artifact_id']}", headers=auth).status_code == 200
        assert client.get("/v1/artifacts", headers=auth).status_code == 200
    assert seen.kinds and all(autocommit for _, autocommit in seen.kinds), seen.kinds


def test_writes_keep_their_transaction(app, client, auth):
    # A read first: its connection goes back to the pool, and must come out
    # of it with transactions again.
    assert client.get(f"/v8/artifacts/{HASH}", headers=auth).status_code == 404
    with statements(app) as seen:
        put(client, auth)
    writes = [autocommit for kind, autocommit in seen.kinds if kind in ("INSERT", "UPDATE", "DELETE")]
    assert writes and not any(writes), seen.kinds


@pytest.mark.parametrize("artifact_hash", [HASH, "ffffffffffffffff"], ids=["hit", "miss"])
def test_a_cache_read_is_one_select(app, client, auth, artifact_hash):
    put(client, auth)
    with statements(app) as seen:
        client.head(f"/v8/artifacts/{artifact_hash}", headers=auth)
    # The key, its tenant and the entry in one statement, hit or miss.
    assert len(seen.texts) == 1, seen.texts
    assert "FROM api_keys JOIN tenants" in seen.texts[0]
    assert "LEFT OUTER JOIN cache_entries" in seen.texts[0]


def test_an_upload_does_not_reload_its_tenant(app, client, auth):
    with statements(app) as seen:
        put(client, auth)
    # The stored-bytes totals are read (one row, before and at commit); the
    # tenant itself is not loaded again.
    reloads = [text for text in seen.texts[1:] if "FROM tenants" in text and "JOIN api_keys" not in text]
    assert [text for text in reloads if "tenants.blob_bytes + tenants.cache_bytes" not in text] == []
    assert len(reloads) == 2


def test_counts_a_flush_could_not_write_wait_for_the_next(app, client, auth, monkeypatch):
    client.get("/v1/whoami", headers=auth)
    failing = OperationalError("UPDATE usage_months", {}, Exception("the database went away"))

    def refuse(*args, **kwargs):
        raise failing

    with monkeypatch.context() as patched:
        patched.setattr(usage, "_add", refuse)
        patched.setattr(usage.pending_counts(app), "last_flush", 0.0)  # due now
        # The request the flush follows is answered all the same.
        assert client.get("/v1/artifacts", headers=auth).status_code == 200
        with pytest.raises(OperationalError):
            usage.flush_counts()
    # The first whoami and the list were kept through both failures.
    assert client.get("/v1/whoami", headers=auth).json["usage_requests_month"] == 2
