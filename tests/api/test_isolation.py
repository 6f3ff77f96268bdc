"""Tenant isolation: one matrix of every route called with tenant B's key
against tenant A's objects and against missing objects of the same shape.

B must get the same answer either way (404 for /v1 objects and /v8 cache
entries, 403 for naming A's team on /v8), nothing of A's may appear in any
response, and A's world must be exactly as it was afterwards. The route list
comes from the app's url_map, so a new route cannot escape the matrix.

Public by design (not keyed by tenant, so not in the matrix): `/dl/<link_id>`
and the signed `/v1/blobs/<token>` and `/v1/uploads/<token>` URLs are
capabilities — holding the id or token is the whole authorisation, and a key
adds nothing. `/health` and `/openapi.json` hold no tenant data.
"""

import base64
import hashlib
import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from app.services.artifacts import uploads
from tests import clock
from tests.factories import bearer, make_tenant

ALNUM = string.ascii_letters + string.digits

A_BYTES = b"alpha-artifact-bytes-7f3a91"
A_FILENAME = "alpha-report-9c1e.txt"
A_AGENT = "alpha-agent-51d2"
A_META = {"owner": "alpha-owner-e04b"}
A_IDEMPOTENCY = "alpha-idempotency-3b7c"
A_SESSION = "alpha-session-sealed-82aa"
A_OPEN_SESSION = "alpha-session-open-1f0d"
A_HASH = "a1b2c3d4e5f60718"
A_CACHE_BYTES = b"alpha-cache-bytes-c4d5e6"
A_CACHE_TAG = "alpha-cache-tag-0a9b"

# A's entries in each build tool's cache (keys of the shapes the tools send).
A_TOOL_BYTES = b"alpha-tool-bytes-5e6f70"
A_TOOL_KEYS = {
    "ccache": "a1/b2c3d4e5f60718293a4b5c6d7e8f90",
    "sccache": "a/1/b/a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f",
    "bazel": "cas/" + hashlib.sha256(A_TOOL_BYTES).hexdigest(),
    "gradle": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
    "rush": "alpha-project_phase_build-a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4",
    "nx": "918273645546372819",
}
TOOL_ENTRIES = tuple(f"{tool}_entry" for tool in A_TOOL_KEYS)
HTTP_TOOL_ENTRIES = tuple(kind for kind in TOOL_ENTRIES if kind != "nx_entry")

B_BYTES = b"bravo bytes"
B_CACHE_HASH = "b0b0b0b0b0b0b0b0"
B_CACHE_BYTES = b"bravo cache"

# Fields that differ between any two fresh objects, whoever made them.
VOLATILE = {
    "artifact_id",
    "created_at",
    "expires_at",
    "upload_url",
    "upload_expires_at",
    "link_id",
    "url",
    "content_hash",
    "first_artifact_at",
    "last_artifact_at",
    "download_url",
    "usage_requests_month",  # counts B's own requests, one more each time
}


def rand(prefix: str, length: int, alphabet: str = ALNUM) -> str:
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class World:
    a_id: str
    a_slug: str
    a_key: dict
    b_id: str
    b_slug: str
    b_key: dict
    ids: dict[str, str] = field(default_factory=dict)  # kind -> A's identifier
    b_artifacts: set[str] = field(default_factory=set)
    a_snapshot: dict = field(default_factory=dict)

    @property
    def secrets(self) -> set[str]:
        """Everything of A's that B must never see (unless B sent it itself)."""
        return {
            self.a_id,
            self.a_slug,
            *self.ids.values(),
            A_FILENAME,
            A_AGENT,
            A_META["owner"],
            A_IDEMPOTENCY,
            A_SESSION,
            A_OPEN_SESSION,
            A_HASH,
            A_CACHE_TAG,
            A_BYTES.decode(),
            base64.b64encode(A_BYTES).decode(),
            A_CACHE_BYTES.decode(),
            A_TOOL_BYTES.decode(),
            *A_TOOL_KEYS.values(),
            self.ids["content_hash"],
        }


def _ok(response, status: int = 201) -> dict:
    assert response.status_code == status, response.data[:500]
    return response.get_json()


def _a_snapshot(client, world: World) -> dict:
    """What A sees of its own world (bytes included); must not change."""
    key = world.a_key
    return {
        "artifacts": client.get("/v1/artifacts?limit=200", headers=key).get_json(),
        "sessions": client.get("/v1/sessions", headers=key).get_json(),
        "pending": client.get(f"/v1/artifacts/{world.ids['pending']}", headers=key).get_json(),
        "deleted": client.get(f"/v1/artifacts/{world.ids['deleted']}", headers=key).status_code,
        "expired": client.get(f"/v1/artifacts/{world.ids['expired']}", headers=key).status_code,
        "link": client.get(f"/dl/{world.ids['link']}").data,
        "query": client.post("/v8/artifacts", json={"hashes": [A_HASH]}, headers=key).get_json(),
        "cache": (
            (response := client.get(f"/v8/artifacts/{A_HASH}", headers=key)).status_code,
            response.data,
            response.headers.get("x-artifact-tag"),
        ),
        "tools": {
            tool: ((response := client.get(_tool_url(tool, entry), headers=key)).status_code, response.data)
            for tool, entry in A_TOOL_KEYS.items()
        },
    }


def _tool_url(tool: str, key: str) -> str:
    return f"/v1/cache/{key}" if tool == "nx" else f"/cache/{tool}/{key}"


@pytest.fixture
def world(app, client) -> World:
    """Tenant A with one of everything; tenant B with a little of its own."""
    tenant_b, key_b = make_tenant("bravo")
    tenant_a, key_a = make_tenant("alpha")
    w = World(
        a_id=tenant_a.id,
        a_slug=tenant_a.slug,
        a_key=bearer(key_a),
        b_id=tenant_b.id,
        b_slug=tenant_b.slug,
        b_key=bearer(key_b),
    )
    # B's own rows come first, so a cursor taken from A's newest row still
    # has B's rows behind it.
    b_art = _ok(
        client.post(
            "/v1/artifacts",
            json={
                "filename": "bravo.txt",
                "content": base64.b64encode(B_BYTES).decode(),
                "session_id": "bravo-s",
            },
            headers=w.b_key,
        )
    )
    w.b_artifacts.add(b_art["artifact_id"])
    assert client.put(f"/v8/artifacts/{B_CACHE_HASH}", data=B_CACHE_BYTES, headers=w.b_key).status_code == 202
    clock.advance(timedelta(seconds=1))

    def a_upload(**fields) -> dict:
        body = {"filename": A_FILENAME, "content": base64.b64encode(A_BYTES).decode(), **fields}
        return _ok(client.post("/v1/artifacts", json=body, headers=w.a_key))

    active = a_upload(session_id=A_SESSION, agent_id=A_AGENT, metadata=A_META)
    w.ids["active"] = active["artifact_id"]
    w.ids["content_hash"] = active["content_hash"]
    headers = {**w.a_key, "Idempotency-Key": A_IDEMPOTENCY}
    w.ids["idempotent"] = _ok(
        client.post(
            "/v1/artifacts",
            json={
                "filename": A_FILENAME,
                "content": base64.b64encode(A_BYTES).decode(),
                "session_id": A_OPEN_SESSION,
            },
            headers=headers,
        )
    )["artifact_id"]
    w.ids["expired"] = a_upload(ttl="1s")["artifact_id"]
    w.ids["deleted"] = a_upload()["artifact_id"]
    _ok(client.delete(f"/v1/artifacts/{w.ids['deleted']}", headers=w.a_key), 200)
    w.ids["pending"] = _ok(
        client.post(
            "/v1/artifacts/upload-url",
            json={"filename": A_FILENAME, "size_bytes": 1234, "session_id": A_SESSION, "agent_id": A_AGENT},
            headers=w.a_key,
        )
    )["artifact_id"]
    w.ids["link"] = _ok(client.post(f"/v1/artifacts/{w.ids['active']}/links", headers=w.a_key))["link_id"]
    _ok(client.post(f"/v1/sessions/{A_SESSION}/seal", headers=w.a_key), 200)
    put = client.put(
        f"/v8/artifacts/{A_HASH}",
        data=A_CACHE_BYTES,
        headers={**w.a_key, "x-artifact-duration": "4242", "x-artifact-tag": A_CACHE_TAG},
    )
    assert put.status_code == 202
    for tool, entry in A_TOOL_KEYS.items():
        assert client.put(_tool_url(tool, entry), data=A_TOOL_BYTES, headers=w.a_key).status_code == 200
    clock.advance(timedelta(seconds=2))  # past the 1 s TTL
    w.a_snapshot = _a_snapshot(client, w)
    assert w.a_snapshot["expired"] == 410 and w.a_snapshot["deleted"] == 410
    assert w.a_snapshot["cache"] == (200, A_CACHE_BYTES, A_CACHE_TAG)
    assert w.a_snapshot["tools"] == {tool: (200, A_TOOL_BYTES) for tool in A_TOOL_KEYS}
    return w


def missing_like(kind: str, ident: str) -> str:
    """A nonexistent identifier of the same shape as A's."""
    if kind in ("active", "pending", "deleted", "expired", "idempotent"):
        return uploads.new_artifact_id()
    if kind == "link":
        return rand("lnk_", 20)
    if kind == "hash":
        return secrets.token_hex(len(ident) // 2)
    if kind == "team_id":
        return rand("team_", 24)
    if kind.endswith("_entry"):
        # The same tool, path layout and characters: each character swapped
        # for another of its class (a digit stays a digit, hex stays hex).
        tool, _, entry = ident.partition("/")
        prefix = "cas/" if tool == "bazel" else ""
        swapped = "".join(
            c if c in "/_-" else secrets.choice(string.digits if c.isdigit() else "abcdef")
            for c in entry[len(prefix) :]
        )
        return f"{tool}/{prefix}{swapped}"
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in ident)


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Case:
    endpoint: str
    method: str
    targets: tuple[str, ...]  # kinds of A's objects to aim at
    call: Callable  # (client, headers, ident) -> response
    status: int
    code: str | None  # the error code expected, None for a success

    def __str__(self) -> str:
        return f"{self.endpoint}-{self.method}"


def _json(method: str, path: str, body=None):
    def call(client, headers, ident):
        payload = body(ident) if callable(body) else body
        kwargs = {"json": payload} if payload is not None else {}
        return client.open(path.format(ident=ident), method=method, headers=headers, **kwargs)

    return call


def _put(path: str):
    def call(client, headers, ident):
        return client.put(path.format(ident=ident), data=B_BYTES, headers=headers)

    return call


def _nx(method: str):
    def call(client, headers, ident):
        data = B_BYTES if method == "PUT" else None
        return client.open(f"/v1/cache/{ident.partition('/')[2]}", method=method, data=data, headers=headers)

    return call


ARTIFACT_KINDS = ("active", "pending", "deleted", "expired")
SESSION_KINDS = ("session", "open_session")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


MATRIX = [
    Case(
        "artifacts.get_artifact",
        "GET",
        ARTIFACT_KINDS,
        _json("GET", "/v1/artifacts/{ident}"),
        404,
        "artifact_not_found",
    ),
    Case("artifacts.get_artifact", "HEAD", ARTIFACT_KINDS, _json("HEAD", "/v1/artifacts/{ident}"), 404, None),
    Case(
        "artifacts.download_url",
        "GET",
        ARTIFACT_KINDS,
        _json("GET", "/v1/artifacts/{ident}/download-url"),
        404,
        "artifact_not_found",
    ),
    Case(
        "artifacts.download_url",
        "HEAD",
        ARTIFACT_KINDS,
        _json("HEAD", "/v1/artifacts/{ident}/download-url"),
        404,
        None,
    ),
    Case(
        "artifacts.delete_artifact",
        "DELETE",
        ARTIFACT_KINDS,
        _json("DELETE", "/v1/artifacts/{ident}"),
        404,
        "artifact_not_found",
    ),
    Case(
        "artifacts.extend_ttl",
        "POST",
        ARTIFACT_KINDS,
        _json("POST", "/v1/artifacts/{ident}/extend-ttl", {"ttl": "7d"}),
        404,
        "artifact_not_found",
    ),
    Case(
        "artifacts.create_link",
        "POST",
        ARTIFACT_KINDS,
        _json("POST", "/v1/artifacts/{ident}/links"),
        404,
        "artifact_not_found",
    ),
    Case(
        "artifacts.complete_upload",
        "POST",
        ARTIFACT_KINDS,
        _json("POST", "/v1/artifacts/{ident}/complete"),
        404,
        "artifact_not_found",
    ),
    Case(
        "sessions.seal_session",
        "POST",
        SESSION_KINDS,
        _json("POST", "/v1/sessions/{ident}/seal"),
        404,
        "session_not_found",
    ),
    # A's sealed session and A's Idempotency-Key mean nothing to B: B's
    # uploads land in B's own namespace, exactly as with unknown ones.
    Case(
        "artifacts.upload",
        "POST",
        SESSION_KINDS,
        _json(
            "POST",
            "/v1/artifacts",
            lambda ident: {"filename": "b.txt", "content": _b64(B_BYTES), "session_id": ident},
        ),
        201,
        None,
    ),
    Case(
        "artifacts.upload",
        "POST",
        ("idempotency_key",),
        lambda client, headers, ident: client.post(
            "/v1/artifacts",
            json={"filename": "b.txt", "content": _b64(B_BYTES)},
            headers={**headers, "Idempotency-Key": ident},
        ),
        201,
        None,
    ),
    Case(
        "artifacts.reserve_upload",
        "POST",
        SESSION_KINDS,
        _json(
            "POST",
            "/v1/artifacts/upload-url",
            lambda ident: {"filename": "b.bin", "size_bytes": 9, "session_id": ident},
        ),
        201,
        None,
    ),
    Case(
        "artifacts.list_artifacts",
        "GET",
        ("session", "open_session", "agent", "filename", "metadata", "artifact_cursor"),
        None,  # built per kind below
        200,
        None,
    ),
    Case("artifacts.list_artifacts", "HEAD", ("session", "filename"), None, 200, None),
    Case("sessions.list_sessions", "GET", ("session_cursor",), None, 200, None),
    Case("sessions.list_sessions", "HEAD", ("session_cursor",), None, 200, None),
    Case("cache.download", "GET", ("hash",), _json("GET", "/v8/artifacts/{ident}"), 404, "not_found"),
    Case("cache.download", "HEAD", ("hash",), _json("HEAD", "/v8/artifacts/{ident}"), 404, None),
    Case(
        "cache.query",
        "POST",
        ("hash",),
        _json("POST", "/v8/artifacts", lambda ident: {"hashes": [ident]}),
        200,
        None,
    ),
    # The hash is a per-tenant namespace: B's PUT stores B's own entry.
    Case(
        "cache.upload",
        "PUT",
        ("hash",),
        lambda client, headers, ident: client.put(
            f"/v8/artifacts/{ident}", data=b"bravo put", headers=headers
        ),
        202,
        None,
    ),
    Case(
        "cache.events",
        "POST",
        ("hash",),
        _json(
            "POST",
            "/v8/artifacts/events",
            lambda ident: [
                {
                    "sessionId": "6f1e1b1e-8a53-4f4c-9c55-0d2f3d1c2b3a",
                    "source": "REMOTE",
                    "event": "HIT",
                    "hash": ident,
                }
            ],
        ),
        200,
        None,
    ),
    Case("cache.preflight", "OPTIONS", ("hash",), _json("OPTIONS", "/v8/artifacts/{ident}"), 200, None),
    Case("cache.status", "GET", ("team",), _json("GET", "/v8/artifacts/status"), 200, None),
    Case("cache.status", "HEAD", ("team",), _json("HEAD", "/v8/artifacts/status"), 200, None),
    Case("account.whoami", "GET", ("team",), _json("GET", "/v1/whoami"), 200, None),
    Case("tool_cache.read", "GET", HTTP_TOOL_ENTRIES, _json("GET", "/cache/{ident}"), 404, "not_found"),
    Case("tool_cache.read", "HEAD", HTTP_TOOL_ENTRIES, _json("HEAD", "/cache/{ident}"), 404, None),
    Case(
        "tool_cache.properties", "PROPFIND", HTTP_TOOL_ENTRIES, _json("PROPFIND", "/cache/{ident}"), 404, None
    ),
    Case(
        "tool_cache.make_collection", "MKCOL", HTTP_TOOL_ENTRIES, _json("MKCOL", "/cache/{ident}/"), 201, None
    ),
    # B's PUT under A's key is B's own entry (A's is checked intact after each).
    Case(
        "tool_cache.write",
        "PUT",
        tuple(kind for kind in HTTP_TOOL_ENTRIES if kind != "bazel_entry"),
        _put("/cache/{ident}"),
        200,
        None,
    ),
    # B's bytes do not hash to A's CAS key, nor to a missing one.
    Case("tool_cache.write", "PUT", ("bazel_entry",), _put("/cache/{ident}"), 400, "digest_mismatch"),
    Case("nx_cache.download", "GET", ("nx_entry",), _nx("GET"), 404, None),
    Case("nx_cache.download", "HEAD", ("nx_entry",), _nx("HEAD"), 404, None),
    Case("nx_cache.upload", "PUT", ("nx_entry",), _nx("PUT"), 200, None),
    Case("account.whoami", "HEAD", ("team",), _json("HEAD", "/v1/whoami"), 200, None),
]


def _list_call(path: str, kind: str):
    params = {
        "session": "session_id={ident}",
        "open_session": "session_id={ident}",
        "agent": "agent_id={ident}",
        "filename": "filename={ident}",
        "metadata": "metadata.owner={ident}",
        "artifact_cursor": "cursor={ident}",
        "session_cursor": "after={ident}",
    }[kind]
    return lambda client, headers, ident, method: client.open(
        f"{path}?{params.format(ident=ident)}", method=method, headers=headers
    )


def _cursor(value: list) -> str:
    """A listing cursor in the app's own encoding."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def identify(kind: str, world: World) -> tuple[str, str]:
    """(A's identifier of this kind, a missing one of the same shape)."""
    if kind in world.ids:
        ident = world.ids[kind]
        return ident, missing_like(kind, ident)
    if kind == "session":
        return A_SESSION, missing_like(kind, A_SESSION)
    if kind == "open_session":
        return A_OPEN_SESSION, missing_like(kind, A_OPEN_SESSION)
    if kind == "idempotency_key":
        return A_IDEMPOTENCY, missing_like(kind, A_IDEMPOTENCY)
    if kind == "agent":
        return A_AGENT, missing_like(kind, A_AGENT)
    if kind == "filename":
        return A_FILENAME, missing_like(kind, A_FILENAME)
    if kind == "metadata":
        return A_META["owner"], missing_like(kind, A_META["owner"])
    if kind == "hash":
        return A_HASH, missing_like(kind, A_HASH)
    if kind == "team":
        return world.a_id, missing_like("team_id", world.a_id)
    if kind in TOOL_ENTRIES:
        tool = kind.removesuffix("_entry")
        ident = f"{tool}/{A_TOOL_KEYS[tool]}"
        return ident, missing_like(kind, ident)
    if kind == "artifact_cursor":
        # The cursor A would get for its newest artifact, and one naming a
        # missing artifact at the same instant.
        newest = world.a_snapshot["artifacts"]["artifacts"][0]
        raw = [newest["created_at"].replace("Z", ""), newest["artifact_id"]]
        made = [raw[0], uploads.new_artifact_id()]
        return _cursor(raw), _cursor(made)
    if kind == "session_cursor":
        session = next(s for s in world.a_snapshot["sessions"]["sessions"] if s["session_id"] == A_SESSION)
        at = session["last_artifact_at"].replace("Z", "")
        return _cursor([at, A_SESSION]), _cursor([at, missing_like("session", A_SESSION)])
    raise AssertionError(kind)


def normalize(body, ident: str):
    """The body with the caller's own identifier masked and volatile fields blanked."""
    if isinstance(body, dict):
        return {
            normalize(k, ident): "<volatile>" if k in VOLATILE else normalize(v, ident)
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [normalize(item, ident) for item in body]
    if isinstance(body, str):
        return body.replace(ident, "<ident>")
    return body


def assert_no_secrets(response, world: World, sent: str) -> None:
    text = response.get_data()
    for secret in world.secrets:
        if secret and secret != sent and secret not in sent:
            assert secret.encode() not in text, (secret, text[:500])
    for header, value in response.headers.items():
        for secret in world.secrets:
            if secret and secret != sent and secret not in sent:
                assert secret not in value, (header, value)


def assert_a_intact(client, world: World) -> None:
    assert _a_snapshot(client, world) == world.a_snapshot


def _call_for(case: Case, kind: str) -> Callable:
    if case.call is not None:
        return case.call
    path = "/v1/artifacts" if case.endpoint.startswith("artifacts.") else "/v1/sessions"
    make = _list_call(path, kind)
    return lambda client, headers, value: make(client, headers, value, case.method)


def _check_same_answer(client, world: World, case: Case, kind: str) -> None:
    ident, missing = identify(kind, world)
    call = _call_for(case, kind)

    on_a = call(client, world.b_key, ident)
    on_missing = call(client, world.b_key, missing)

    where = f"{case} on A's {kind}"
    assert on_a.status_code == case.status, (where, on_a.data[:500])
    assert on_missing.status_code == on_a.status_code, (where, on_missing.data[:500])
    assert on_a.mimetype == on_missing.mimetype, where
    if case.method == "HEAD" or case.endpoint == "cache.preflight":
        assert on_a.data == on_missing.data, where
    elif on_a.mimetype == "application/json":
        assert normalize(on_a.get_json(), ident) == normalize(on_missing.get_json(), missing), where
        if case.code is not None:
            body = on_a.get_json()
            flat = case.endpoint.startswith(("cache.", "tool_cache."))
            code = body["code"] if flat else body["error"]["code"]
            assert code == case.code, (where, body)
    else:
        assert on_a.data == on_missing.data, where
    assert_no_secrets(on_a, world, ident)
    assert_no_secrets(on_missing, world, ident)
    if case.endpoint == "artifacts.list_artifacts" and case.method == "GET":
        listed = {a["artifact_id"] for a in on_a.get_json()["artifacts"]}
        assert listed <= world.b_artifacts, where
    assert_a_intact(client, world)


@pytest.mark.parametrize("case", MATRIX, ids=str)
def test_b_cannot_tell_as_objects_from_missing_ones(client, world, case):
    # Every kind of A's object in one test: the world costs more to build
    # than the requests, and A's world is checked after each one anyway.
    for kind in case.targets:
        _check_same_answer(client, world, case, kind)


def test_bs_put_of_as_hash_is_bs_own_entry(client, world):
    assert client.put(f"/v8/artifacts/{A_HASH}", data=b"bravo's", headers=world.b_key).status_code == 202

    mine = client.get(f"/v8/artifacts/{A_HASH}", headers=world.b_key)
    assert (mine.status_code, mine.data, mine.headers["x-artifact-duration"]) == (200, b"bravo's", "0")
    assert "x-artifact-tag" not in mine.headers
    assert_a_intact(client, world)


# ---------------------------------------------------------------- naming A's team


V8_ROUTES = [
    ("cache.status", "GET", "/v8/artifacts/status", {}),
    ("cache.status", "HEAD", "/v8/artifacts/status", {}),
    ("cache.query", "POST", "/v8/artifacts", {"json": {"hashes": [A_HASH]}}),
    ("cache.events", "POST", "/v8/artifacts/events", {"json": []}),
    ("cache.upload", "PUT", f"/v8/artifacts/{A_HASH}", {"data": b"bravo via a's team"}),
    ("cache.download", "GET", f"/v8/artifacts/{A_HASH}", {}),
    ("cache.download", "HEAD", f"/v8/artifacts/{A_HASH}", {}),
]


TEAM_NAMES = [
    ("teamId", "a_id"),
    ("slug", "a_slug"),
    # Users confuse the two; either way round must still be refused.
    ("slug", "a_id"),
    ("teamId", "a_slug"),
]


@pytest.mark.parametrize(
    ("endpoint", "method", "path", "kwargs"), V8_ROUTES, ids=[f"{r[0]}-{r[1]}" for r in V8_ROUTES]
)
def test_naming_as_team_is_403_exactly_like_naming_no_team(client, world, endpoint, method, path, kwargs):
    for param, names in TEAM_NAMES:
        named = getattr(world, names)
        missing = (
            missing_like("team_id", named) if names == "a_id" else "no-such-team-" + secrets.token_hex(3)
        )

        on_a = client.open(f"{path}?{param}={named}", method=method, headers=world.b_key, **kwargs)
        on_missing = client.open(f"{path}?{param}={missing}", method=method, headers=world.b_key, **kwargs)

        where = f"?{param}=<A's {names}>"
        assert on_a.status_code == on_missing.status_code == 403, (where, on_a.data[:300])
        if method != "HEAD":
            assert on_a.get_json()["code"] == "forbidden", where
            assert normalize(on_a.get_json(), named) == normalize(on_missing.get_json(), missing), where
            # The message names the key's own team, so the user can fix the flag.
            assert world.b_slug in on_a.get_json()["message"], where
        assert_no_secrets(on_a, world, named)
        # Nothing B sent under A's name was stored anywhere.
        query = client.post("/v8/artifacts", json={"hashes": [A_HASH]}, headers=world.b_key).get_json()
        assert query == {A_HASH: None}, where
        assert_a_intact(client, world)


# ---------------------------------------------------------------- B's own view


def test_bs_lists_and_figures_show_only_bs_rows(client, world):
    artifacts = client.get("/v1/artifacts?limit=200", headers=world.b_key).get_json()
    assert {a["artifact_id"] for a in artifacts["artifacts"]} == world.b_artifacts
    sessions = client.get("/v1/sessions?limit=200", headers=world.b_key).get_json()
    assert [s["session_id"] for s in sessions["sessions"]] == ["bravo-s"]
    who = client.get("/v1/whoami", headers=world.b_key).get_json()
    assert who["usage_storage_bytes"] == len(B_BYTES) + len(B_CACHE_BYTES)
    assert who["active_links"] == 0
    query = client.post(
        "/v8/artifacts", json={"hashes": [A_HASH, B_CACHE_HASH]}, headers=world.b_key
    ).get_json()
    assert query[A_HASH] is None
    assert query[B_CACHE_HASH]["size"] == len(B_CACHE_BYTES)
    for response in (artifacts, sessions, who, query):
        text = json.dumps(response)
        for secret in world.secrets - {A_HASH}:
            assert secret not in text, secret


# ---------------------------------------------------------------- coverage


PUBLIC_BY_DESIGN = {
    ("public.link_download", "GET"),
    ("public.link_download", "HEAD"),
    ("public.signed_download", "GET"),
    ("public.signed_download", "HEAD"),
    ("public.receive_upload", "PUT"),
    ("account.health_check", "GET"),
    ("account.health_check", "HEAD"),
    ("docs.openapi_document", "GET"),
    ("docs.openapi_document", "HEAD"),
}


def test_the_matrix_covers_every_route(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods:
            # Flask's automatic OPTIONS carries no tenant data; /v8's own
            # preflight route is an explicit one and is in the matrix.
            if method == "OPTIONS" and rule.endpoint != "cache.preflight":
                continue
            routes.add((rule.endpoint, method))
    covered = {(case.endpoint, case.method) for case in MATRIX}
    covered |= {(endpoint, method) for endpoint, method, _, _ in V8_ROUTES}
    assert routes - covered - PUBLIC_BY_DESIGN == set(), "a route is missing from the isolation matrix"
    assert covered | PUBLIC_BY_DESIGN <= routes, "the matrix names a route that does not exist"
