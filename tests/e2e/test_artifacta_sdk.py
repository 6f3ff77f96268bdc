"""The official Python SDK (artifacta-cli 0.3.0) against Hoard under gunicorn.

Every call goes through `artifacta.sdk.Client` exactly as a user would make
it; only the public-link fetch uses plain `requests`, because that is what a
person the link is shared with has.
"""

import hashlib
import os
import re
from collections import Counter

import pytest
import requests
from artifacta.errors import (
    ArtifactDeletedError,
    ArtifactNotFoundError,
    AuthenticationError,
    SessionSealedError,
)
from artifacta.sdk import Client

from tests.api.helpers_v1 import ARTIFACT_FIELDS, ARTIFACT_ID, TIMESTAMP, WHOAMI_INT_FIELDS
from tests.e2e.batch_urls import assert_downloads, assert_gone, batch_download_urls

MISSING_ID = "art_0000000000000000"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def sdk(hoard, artifacta_home):
    """Makes SDK clients for a key, pointed at the live server."""

    def make(key: str) -> Client:
        return Client(base_url=hoard.url, api_key=key)

    return make


@pytest.fixture(scope="module")
def client(sdk, new_tenant):
    """A client of one tenant shared by the tests that need no clean slate."""
    return sdk(new_tenant().key)


@pytest.fixture
def fresh(sdk, new_tenant):
    """A client of a tenant of its own, for tests that count what they see."""
    return sdk(new_tenant().key)


# -- push ------------------------------------------------------------------------


def test_push_from_a_path_returns_every_field(client, tmp_path):
    path = tmp_path / "report.txt"
    path.write_bytes(b"quarterly numbers\n" * 100)

    artifact = client.push(
        path, session_id="run-path", agent_id="agent-7", metadata={"stage": "final", "run": "7"}, ttl="7d"
    )

    body = artifact.to_dict()
    assert set(body) == ARTIFACT_FIELDS
    assert ARTIFACT_ID.match(artifact.id)
    assert artifact.filename == "report.txt"
    assert artifact.content_type == "text/plain"
    assert artifact.size_bytes == path.stat().st_size
    assert artifact.content_hash == sha256(path.read_bytes())
    assert (artifact.session_id, artifact.agent_id) == ("run-path", "agent-7")
    assert artifact.metadata == {"stage": "final", "run": "7"}
    assert body["status"] == "active"
    assert body["deleted_at"] is None
    assert TIMESTAMP.match(artifact.created_at)
    assert TIMESTAMP.match(artifact.expires_at)
    assert client.get(artifact.id).to_dict() == body


def test_push_bytes_keeps_the_name_and_the_given_type(client):
    data = b"\x00\x01\x02 not text"

    artifact = client.push(
        content=data, filename="résumé 2026.bin", content_type="application/x-thing", ttl="never"
    )

    assert artifact.filename == "résumé 2026.bin"
    assert artifact.content_type == "application/x-thing"
    assert artifact.size_bytes == len(data)
    assert artifact.content_hash == sha256(data)
    assert artifact.expires_at is None
    assert artifact.metadata == {}
    assert (artifact.session_id, artifact.agent_id) == (None, None)
    assert client.pull_bytes(artifact.id) == data


def test_push_dict_round_trips_as_json(client):
    payload = {"score": 0.93, "labels": ["a", "b"], "nested": {"ok": True}}

    artifact = client.push_dict(payload, metadata={"kind": "eval"})

    assert artifact.filename == "data.json"
    assert artifact.content_type == "application/json"
    assert client.pull_dict(artifact.id) == payload


def test_presigned_push_of_a_few_megabytes(client):
    data = os.urandom(3 * 1024 * 1024 + 17)

    artifact = client.push(
        content=data, filename="weights.bin", presigned=True, session_id="run-big", metadata={"k": "v"}
    )

    assert artifact.to_dict()["status"] == "active"
    assert artifact.size_bytes == len(data)
    assert artifact.content_hash == sha256(data)
    assert artifact.session_id == "run-big"
    assert artifact.metadata == {"k": "v"}
    assert client.get(artifact.id).to_dict() == artifact.to_dict()
    assert client.pull_bytes(artifact.id) == data


def test_an_idempotency_key_replays_the_first_push(client):
    first = client.push(content=b"once", filename="once.txt", idempotency_key="sdk-idem-1")
    again = client.push(content=b"once", filename="once.txt", idempotency_key="sdk-idem-1")

    assert again.to_dict() == first.to_dict()


# -- list ------------------------------------------------------------------------


def test_list_walks_every_page_once(client):
    session = Client.session_new()
    pushed = [
        client.push(content=f"item {n}".encode(), filename=f"item-{n}.txt", session_id=session).id
        for n in range(61)
    ]
    newest_first = pushed[::-1]

    everything = client.list(session_id=session)  # SDK default page size: 50
    small_pages = client.list(session_id=session, limit=7)

    for result in (everything, small_pages):
        ids = [artifact.id for artifact in result]
        assert Counter(ids) == Counter(pushed)
        assert ids == newest_first
        assert (result.has_more, result.next_cursor) == (False, None)


def test_list_pages_by_hand_end_with_no_cursor(client):
    session = Client.session_new()
    pushed = [
        client.push(content=f"page {n}".encode(), filename="same.txt", session_id=session).id
        for n in range(12)
    ]

    seen, cursor, pages = [], None, []
    for _ in range(10):  # bounded: a server that repeats a cursor fails, not hangs
        page = client.list(session_id=session, limit=5, auto_paginate=False, cursor=cursor)
        seen += [artifact.id for artifact in page]
        pages.append((len(page), page.has_more, page.next_cursor is not None))
        if not page.has_more:
            break
        cursor = page.next_cursor

    assert pages == [(5, True, True), (5, True, True), (2, False, False)]
    assert seen == pushed[::-1]


def test_list_filters_by_session_agent_and_metadata(fresh):
    def push(name: str, **fields) -> str:
        return fresh.push(content=name.encode(), filename=name, **fields).id

    a = push("a.txt", session_id="s1", agent_id="alpha", metadata={"stage": "final", "team": "x"})
    b = push("b.txt", session_id="s1", agent_id="beta", metadata={"stage": "draft", "team": "x"})
    c = push("c.txt", session_id="s2", agent_id="alpha", metadata={"stage": "final"})
    d = push("d.txt", agent_id="beta", metadata={"note": "a&b +c=d"})
    gone = push("e.txt", session_id="s1", agent_id="alpha", metadata={"stage": "final"})
    fresh.delete(gone)

    def ids(**filters) -> set[str]:
        return {artifact.id for artifact in fresh.list(**filters)}

    assert ids() == {a, b, c, d}
    assert ids(session_id="s1") == {a, b}
    assert ids(agent_id="alpha") == {a, c}
    assert ids(session_id="s1", agent_id="beta") == {b}
    assert ids(metadata={"stage": "final"}) == {a, c}
    assert ids(metadata={"stage": "final", "team": "x"}) == {a}
    assert ids(metadata={"note": "a&b +c=d"}) == {d}
    assert ids(session_id="s2", metadata={"stage": "draft"}) == set()
    assert ids(session_id="no-such-session") == set()


# -- pull and links ----------------------------------------------------------------


def test_pull_to_a_directory_writes_the_original_name(client, tmp_path):
    data = os.urandom(70_000)
    artifact = client.push(content=data, filename="notes v2.md")

    into_existing = client.pull(artifact.id, output=tmp_path)
    into_new = client.pull(artifact.id, output=f"{tmp_path / 'new' / 'dir'}/")
    as_file = client.pull(artifact.id, output=tmp_path / "renamed.bin")

    assert into_existing == tmp_path / "notes v2.md"
    assert into_new == tmp_path / "new" / "dir" / "notes v2.md"
    assert as_file == tmp_path / "renamed.bin"
    for path in (into_existing, into_new, as_file):
        assert path.read_bytes() == data


def test_pull_bytes_is_byte_identical(client):
    data = bytes(range(256)) * 1000

    artifact = client.push(content=data, filename="all-bytes.bin")

    assert client.pull_bytes(artifact.id) == data


def test_a_link_serves_the_bytes_to_anyone(client):
    data = os.urandom(50_000)
    artifact = client.push(content=data, filename="shared.bin")

    link = client.create_link(artifact.id)
    short = client.create_link(artifact.id, expires_in=3600)

    assert re.match(r"^lnk_[A-Za-z0-9]{20}$", link.link_id)
    assert link.artifact_id == artifact.id
    assert TIMESTAMP.match(link.created_at) and TIMESTAMP.match(link.expires_at)
    assert short.expires_at < link.expires_at
    for url in (link.url, short.url):
        response = requests.get(url, timeout=10)  # no Authorization: the link is the credential
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert 'filename="shared.bin"' in response.headers["Content-Disposition"]


def test_a_sessions_outputs_in_one_batch_of_download_urls(hoard, sdk, new_tenant):
    """What an agent pipeline does with V1.1: push a session's outputs with the
    SDK, then fetch every URL in one request instead of one per artifact."""
    tenant = new_tenant()
    client = sdk(tenant.key)
    outputs = {f"out-{i} é.txt": os.urandom(1000 + i) for i in range(3)}
    for name, data in outputs.items():
        client.push(content=data, filename=name, session_id="run-batch", content_type="text/plain")
    listed = list(client.list(session_id="run-batch"))
    gone = client.push(content=b"deleted", filename="gone.txt", session_id="run-batch")
    ids = [artifact.id for artifact in listed] + [gone.id, MISSING_ID]

    entries = batch_download_urls(hoard.url, tenant.key, ids)

    client.delete(gone.id)
    assert [entry.get("error", {}).get("code") for entry in entries] == [None] * 4 + ["artifact_not_found"]
    for entry, artifact in zip(entries, listed, strict=False):
        assert entry["download_url"].startswith(f"{hoard.url}/v1/blobs/")
        name = artifact._data["filename"]
        assert_downloads(entry["download_url"], outputs[name], content_type="text/plain", filename=name)
    assert_gone(entries[3]["download_url"])


# -- sessions ------------------------------------------------------------------------


def test_a_sealed_session_refuses_new_artifacts(client):
    session = Client.session_new()
    first = client.push(content=b"before the seal", filename="one.txt", session_id=session)

    seal = client.seal_session(session)
    again = client.seal_session(session)

    assert (seal.session_id, seal.status, seal.artifact_count) == (session, "sealed", 1)
    assert TIMESTAMP.match(seal.sealed_at)
    assert again.sealed_at == seal.sealed_at
    with pytest.raises(SessionSealedError) as direct:
        client.push(content=b"after", filename="two.txt", session_id=session)
    with pytest.raises(SessionSealedError) as presigned:
        client.push(content=b"after", filename="two.txt", session_id=session, presigned=True)
    assert direct.value.status == presigned.value.status == 409
    assert [artifact.id for artifact in client.list(session_id=session)] == [first.id]


def test_list_sessions_pages_with_an_unencoded_query(fresh):
    for session, count in (("s-one", 1), ("s-two", 2), ("s-three", 3)):
        for n in range(count):
            fresh.push(content=f"{session} {n}".encode(), filename="x.txt", session_id=session)
    fresh.seal_session("s-two")

    everything = fresh.list_sessions()
    one_per_page = fresh.list_sessions(limit=1)
    # The SDK does not URL-encode this query: the '+' arrives as a space.
    since_2000 = fresh.list_sessions(created_after="2000-01-01T00:00:00+00:00")
    before_2000 = fresh.list_sessions(created_before="2000-01-01T00:00:00Z")

    summary = {s.session_id: (s.artifact_count, s.is_sealed) for s in everything}
    assert summary == {"s-one": (1, False), "s-two": (2, True), "s-three": (3, False)}
    assert [s.session_id for s in everything] == ["s-three", "s-two", "s-one"]
    assert [s.session_id for s in one_per_page] == ["s-three", "s-two", "s-one"]
    assert len(since_2000) == 3
    assert before_2000 == []
    for s in everything:
        assert TIMESTAMP.match(s.first_artifact_at) and TIMESTAMP.match(s.last_artifact_at)


# -- delete ------------------------------------------------------------------------


def test_a_deleted_artifact_is_gone(client):
    artifact = client.push(content=b"short-lived", filename="gone.txt", session_id="run-delete")

    deleted = client.delete(artifact.id)

    assert deleted["artifact_id"] == artifact.id
    assert deleted["deleted"] is True
    assert TIMESTAMP.match(deleted["deleted_at"])
    with pytest.raises(ArtifactDeletedError) as got:
        client.get(artifact.id)
    assert got.value.status == 410
    with pytest.raises(ArtifactDeletedError):
        client.pull_bytes(artifact.id)
    with pytest.raises(ArtifactDeletedError):
        client.create_link(artifact.id)
    assert client.delete(artifact.id) == {"artifact_id": artifact.id, "deleted": True}
    assert list(client.list(session_id="run-delete")) == []


# -- whoami ------------------------------------------------------------------------


def test_whoami_reports_typed_figures(sdk, new_tenant):
    tenant = new_tenant()
    client = sdk(tenant.key)
    data = os.urandom(12_345)
    artifact = client.push(content=data, filename="a.bin")
    client.push(content=data, filename="same-bytes.bin")  # deduplicated: counted once
    client.create_link(artifact.id)

    info = client.whoami()

    body = info.to_dict()
    assert body["tenant_id"] == tenant.id
    assert info.tenant_name == tenant.slug
    assert info.plan == "pro"
    assert info.api_key_last_4 == tenant.key[-4:]
    for field in WHOAMI_INT_FIELDS:
        assert type(body[field]) is int, field
    assert info.usage_storage_bytes == len(data)
    assert info.active_links == 1
    # Request counts are batched per worker process, so only the bounds hold.
    assert 0 <= info.usage_requests_month <= info.plan_requests_limit_month
    assert info.usage_storage_bytes <= info.plan_storage_limit_bytes
    assert info.rate_limit_sustained <= info.rate_limit_burst


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.whoami(),
        lambda c: c.list(),
        lambda c: c.get(MISSING_ID),
        lambda c: c.push(content=b"x", filename="x.txt"),
    ],
    ids=["whoami", "list", "get", "push"],
)
def test_an_unknown_key_is_an_authentication_error(sdk, call):
    with pytest.raises(AuthenticationError) as error:
        call(sdk("ak_live_" + "0" * 32))

    assert (error.value.code, error.value.status) == ("unauthorized", 401)


def test_a_missing_artifact_is_not_found(client):
    for call in (client.get, client.pull_bytes, client.delete, client.create_link):
        with pytest.raises(ArtifactNotFoundError) as error:
            call(MISSING_ID)
        assert error.value.status == 404


def test_another_tenants_artifact_is_not_found(client, fresh):
    theirs = fresh.push(content=b"private", filename="private.txt")

    for call in (client.get, client.pull_bytes, client.delete, client.create_link):
        with pytest.raises(ArtifactNotFoundError):
            call(theirs.id)
    assert fresh.pull_bytes(theirs.id) == b"private"
