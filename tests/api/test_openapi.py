"""GET /openapi.json: served, valid OpenAPI 3.1, true to the routes Hoard
serves, and true to what they answer (checked with jsonschema here, and by
fuzzing a live server in tests/e2e/test_fuzz.py)."""

import json
import re
import uuid
from importlib import resources

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.api.helpers_v1 import (
    download_path,
    make_link,
    path_of,
    put_bytes,
    reserve,
    upload,
    upload_json,
)
from tests.factories import bearer

DOCUMENT = json.loads(resources.files("app").joinpath("openapi.json").read_text())
DOC_URI = "urn:hoard:openapi"
REGISTRY = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(DOCUMENT))
METHODS = ("get", "head", "put", "post", "delete", "options", "patch", "trace")

# Flask answers HEAD on every GET route and OPTIONS on every route by itself;
# they are documented where a contract gives them a meaning.
HEAD_DOCUMENTED = {"/v8/artifacts/{}", "/v1/blobs/{}", "/dl/{}", "/cache/{}/{}"}
# sccache's WebDAV methods, which OpenAPI cannot name: the path's description
# documents them.
WEBDAV_METHODS = {"MKCOL", "PROPFIND"}

# The /v8 operations keep the operationIds of the published Turborepo document
# (../shared/specs/turborepo-remote-cache.openapi.json, paths under /v8).
TURBOREPO_OPERATION_IDS = {
    ("/v8/artifacts/status", "get"): "getArtifactStatus",
    ("/v8/artifacts/{hash}", "head"): "artifactExists",
    ("/v8/artifacts/{hash}", "get"): "downloadArtifact",
    ("/v8/artifacts/{hash}", "put"): "uploadArtifact",
    ("/v8/artifacts", "post"): "queryArtifacts",
    ("/v8/artifacts/events", "post"): "recordCacheEvents",
}

# Response objects whose every property is always emitted.
RESPONSE_OBJECTS = (
    "Artifact",
    "ArtifactList",
    "UploadReservation",
    "ReceivedUpload",
    "DownloadUrl",
    "DeletedArtifact",
    "Link",
    "Session",
    "SessionList",
    "SealedSession",
    "Whoami",
    "Health",
    "CachingStatusResponse",
    "ArtifactUploadResponse",
    "ArtifactInfo",
)
HASH = "0123456789abcdef"


# ---------------------------------------------------------------- helpers


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _resolve(pointer: str) -> tuple[str, dict]:
    """Follow a chain of local $refs from the pointer; (final pointer, object)."""
    while True:
        node = DOCUMENT
        for part in pointer[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        if "$ref" not in node:
            return pointer, node
        pointer = node["$ref"]


def _validator(schema_pointer: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"$ref": DOC_URI + schema_pointer},
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def assert_schema(name: str, body) -> None:
    _validator(_pointer("components", "schemas", name)).validate(body)


def assert_documented(response, path: str) -> None:
    """The status is documented for this path and method, and the body is
    what that response documents (JSON validated against its schema)."""
    method = response.request.method.lower()
    responses = _pointer("paths", path, method, "responses")
    documented = _resolve(responses)[1]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered {status}: {response.data[:300]!r}"
    pointer, described = _resolve(responses + _pointer(status)[1:])
    content = described.get("content")
    for name, header in described.get("headers", {}).items():
        if _resolve_header(header).get("required"):
            assert name in response.headers, f"{method.upper()} {path} {status} lacks {name}"
    if response.status_code in (301, 302, 303, 307, 308):
        return  # Flask's redirect() adds a short HTML note; the Location is the answer
    if not content or method == "head":
        assert response.data == b""
        return
    if "application/json" not in content:
        assert response.mimetype != "application/json"
        return
    assert response.mimetype == "application/json", response.headers
    _validator(pointer + _pointer("content", "application/json", "schema")[1:]).validate(response.get_json())


def _resolve_header(header: dict) -> dict:
    return _resolve(header["$ref"])[1] if "$ref" in header else header


def _template(path: str) -> str:
    """/v1/artifacts/<artifact_id> and /v1/artifacts/{artifact_id} alike → /v1/artifacts/{}."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)


def _documented_operations() -> set[tuple[str, str]]:
    return {
        (_template(path), method.upper())
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in METHODS
    }


# ---------------------------------------------------------------- the document


def test_the_document_is_served_without_auth_or_rate_limit(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == DOCUMENT
    assert "X-RateLimit-Limit" not in response.headers
    assert_documented(response, "/openapi.json")


def test_the_document_is_valid_openapi_3_1():
    assert DOCUMENT["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(DOCUMENT).validate()


def test_every_route_is_documented_with_each_of_its_methods(app):
    documented = _documented_operations()
    missing = []
    for rule in app.url_map.iter_rules():
        methods = set(rule.methods)
        if getattr(rule, "provide_automatic_options", True):
            methods.discard("OPTIONS")
        path = _template(rule.rule)
        if path not in HEAD_DOCUMENTED:
            methods.discard("HEAD")
        methods -= WEBDAV_METHODS
        missing += [f"{method} {rule.rule}" for method in sorted(methods) if (path, method) not in documented]
    assert not missing, "routes missing from app/openapi.json: " + ", ".join(missing)


def test_every_documented_operation_is_served(app):
    adapter = app.url_map.bind("localhost")
    for path, item in DOCUMENT["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "sample", path)
        for method in (m for m in item if m in METHODS):
            endpoint, _ = adapter.match(concrete, method=method.upper())
            assert (endpoint == "cache.preflight") == (method == "options"), (method, path, endpoint)


def test_operation_ids_are_unique_and_the_v8_ones_are_turborepos():
    ids = {
        (path, method): operation["operationId"]
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    assert len(set(ids.values())) == len(ids)
    for key, operation_id in TURBOREPO_OPERATION_IDS.items():
        assert ids[key] == operation_id


def test_each_error_response_uses_its_apis_error_schema():
    for path, item in DOCUMENT["paths"].items():
        cache_shaped = path.startswith("/v8/") or path.startswith("/cache/")
        expected = "#/components/schemas/V8Error" if cache_shaped else "#/components/schemas/V1Error"
        for method in (m for m in item if m in METHODS):
            for status in item[method]["responses"]:
                if int(status) < 400 or path == "/health" and status == "503":
                    continue
                _, described = _resolve(_pointer("paths", path, method, "responses", status))
                if path.startswith("/v1/cache/"):
                    # Nx's document: errors are text for its CLI to print.
                    assert set(described["content"]) == {"text/plain"}, (method, path, status)
                    continue
                assert described["content"]["application/json"]["schema"] == {"$ref": expected}, (
                    method,
                    path,
                    status,
                )


def test_authenticated_operations_document_401_and_429():
    for path, item in DOCUMENT["paths"].items():
        for method in (m for m in item if m in METHODS):
            operation = item[method]
            if operation.get("security") == [] or method == "options":
                continue
            assert {"401", "429"} <= set(operation["responses"]), (method, path)


@pytest.mark.parametrize("name", RESPONSE_OBJECTS)
def test_response_objects_require_every_field(name):
    schema = DOCUMENT["components"]["schemas"][name]
    assert set(schema["required"]) == set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_the_two_error_shapes_do_not_accept_each_other():
    v1 = {"error": {"code": "unauthorized", "message": "A valid API key is required.", "status": 401}}
    v8 = {"code": "not_found", "message": "Gone.", "error": {"code": "not_found", "message": "Gone."}}
    assert_schema("V1Error", v1)
    assert_schema("V8Error", v8)
    assert not _validator("#/components/schemas/V1Error").is_valid(v8)
    assert not _validator("#/components/schemas/V8Error").is_valid(v1)


# ---------------------------------------------------------------- real responses


@pytest.mark.storage
def test_v1_responses_match_the_document(client, auth):
    created = upload(client, auth, fields={"session_id": "s-1", "metadata": '{"branch": "main"}'})
    assert_documented(created, "/v1/artifacts")
    artifact_id = created.get_json()["artifact_id"]
    as_json = upload_json(client, auth, headers={"Idempotency-Key": "k-1"}, ttl="never")
    assert_documented(as_json, "/v1/artifacts")
    replay = upload_json(client, auth, headers={"Idempotency-Key": "k-1"}, ttl="never")
    assert replay.status_code == 200
    assert_documented(replay, "/v1/artifacts")

    listed = client.get("/v1/artifacts?metadata.branch=main&limit=1", headers=auth)
    assert listed.get_json()["artifacts"][0]["artifact_id"] == artifact_id
    assert_documented(listed, "/v1/artifacts")
    assert_documented(client.get("/v1/artifacts?limit=1", headers=auth), "/v1/artifacts")
    assert_documented(client.get(f"/v1/artifacts/{artifact_id}", headers=auth), "/v1/artifacts/{artifact_id}")
    assert_documented(client.get("/v1/whoami", headers=auth), "/v1/whoami")

    ttl = client.post(f"/v1/artifacts/{artifact_id}/extend-ttl", json={"ttl": "60d"}, headers=auth)
    assert_documented(ttl, "/v1/artifacts/{artifact_id}/extend-ttl")
    link = make_link(client, auth, artifact_id)
    assert_documented(link, "/v1/artifacts/{artifact_id}/links")
    assert_documented(client.get(path_of(link.get_json()["url"])), "/dl/{link_id}")
    assert_documented(client.head(path_of(link.get_json()["url"])), "/dl/{link_id}")
    blob = client.get(download_path(client, auth, artifact_id), headers={"Range": "bytes=0-1"})
    assert blob.status_code == 206
    assert_documented(blob, "/v1/blobs/{token}")
    assert_documented(
        client.get(f"/v1/artifacts/{artifact_id}/download-url", headers=auth),
        "/v1/artifacts/{artifact_id}/download-url",
    )

    assert_documented(client.post("/v1/sessions/s-1/seal", headers=auth), "/v1/sessions/{session_id}/seal")
    assert_documented(client.get("/v1/sessions", headers=auth), "/v1/sessions")
    sealed = upload(client, auth, fields={"session_id": "s-1"})
    assert sealed.status_code == 409
    assert_documented(sealed, "/v1/artifacts")

    deleted = client.delete(f"/v1/artifacts/{artifact_id}", headers=auth)
    assert_documented(deleted, "/v1/artifacts/{artifact_id}")
    again = client.delete(f"/v1/artifacts/{artifact_id}", headers=auth)
    assert again.status_code == 410
    assert_documented(again, "/v1/artifacts/{artifact_id}")


@pytest.mark.storage
def test_presigned_upload_responses_match_the_document(app, client, auth):
    ticket = reserve(client, auth, size=5)
    assert_documented(ticket, "/v1/artifacts/upload-url")
    artifact_id = ticket.get_json()["artifact_id"]
    early = client.post(f"/v1/artifacts/{artifact_id}/complete", headers=auth)
    assert early.status_code == 400
    assert_documented(early, "/v1/artifacts/{artifact_id}/complete")
    if app.config["STORAGE_BACKEND"] == "local":
        received = put_bytes(client, ticket.get_json(), b"hello")
        assert_documented(received, "/v1/uploads/{token}")
    else:  # a real presigned URL: the bytes never pass through Hoard
        upload_url, headers = ticket.get_json()["upload_url"], ticket.get_json()["upload_headers"]
        requests.put(upload_url, data=b"hello", headers=headers, timeout=10).raise_for_status()
    assert_documented(
        client.post(f"/v1/artifacts/{artifact_id}/complete", headers=auth),
        "/v1/artifacts/{artifact_id}/complete",
    )


def test_v1_errors_match_the_document(client, auth):
    anonymous = client.get("/v1/whoami")
    assert anonymous.status_code == 401
    assert_documented(anonymous, "/v1/whoami")
    missing = client.get("/v1/artifacts/art_0000000000000000", headers=auth)
    assert missing.status_code == 404
    assert_documented(missing, "/v1/artifacts/{artifact_id}")
    bad_limit = client.get("/v1/artifacts?limit=0", headers=auth)
    assert bad_limit.status_code == 400
    assert_documented(bad_limit, "/v1/artifacts")
    bad_key = client.get("/v1/artifacts?metadata.9=x", headers=auth)
    assert bad_key.status_code == 400
    assert_documented(bad_key, "/v1/artifacts")
    unknown_link = client.get("/dl/lnk_00000000000000000000")
    assert unknown_link.status_code == 404
    assert_documented(unknown_link, "/dl/{link_id}")
    forged = client.get("/v1/blobs/not-a-token")
    assert forged.status_code == 403
    assert_documented(forged, "/v1/blobs/{token}")
    # Framework errors outside any operation still have the /v1 envelope.
    for response in (client.get("/v1/nowhere", headers=auth), client.put("/v1/whoami", headers=auth)):
        assert response.status_code in (404, 405)
        assert_schema("V1Error", response.get_json())


@pytest.mark.storage
def test_v8_responses_match_the_document(client, auth, tenant_and_key):
    tenant = tenant_and_key[0]
    body = b"\x1f\x8b cache archive"
    put = client.put(
        f"/v8/artifacts/{HASH}?slug={tenant.slug}",
        data=body,
        headers={**auth, "Content-Type": "application/octet-stream", "x-artifact-duration": "12"},
    )
    assert_documented(put, "/v8/artifacts/{hash}")
    got = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert got.data == body
    assert_documented(got, "/v8/artifacts/{hash}")
    assert_documented(client.head(f"/v8/artifacts/{HASH}", headers=auth), "/v8/artifacts/{hash}")

    query = client.post("/v8/artifacts", json={"hashes": [HASH, "fedcba9876543210", "../x"]}, headers=auth)
    result = query.get_json()
    assert (
        result[HASH]["size"] == len(body) and result["fedcba9876543210"] is None and "error" in result["../x"]
    )
    assert_documented(query, "/v8/artifacts")
    assert_documented(client.get("/v8/artifacts/status", headers=auth), "/v8/artifacts/status")
    event = {"sessionId": str(uuid.uuid4()), "source": "REMOTE", "event": "HIT", "hash": HASH, "duration": 5}
    assert_documented(client.post("/v8/artifacts/events", json=[event], headers=auth), "/v8/artifacts/events")
    for path in ("/v8/artifacts", "/v8/artifacts/{hash}", "/v8/artifacts/status", "/v8/artifacts/events"):
        preflight = client.options(path.replace("{hash}", HASH))
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        assert_documented(preflight, path)


def test_v8_errors_match_the_document(client, auth):
    miss = client.get("/v8/artifacts/fedcba9876543210", headers=auth)
    assert miss.status_code == 404
    assert_documented(miss, "/v8/artifacts/{hash}")
    bad_hash = client.put("/v8/artifacts/a%20b", data=b"x", headers=auth)
    assert bad_hash.status_code == 400
    assert_documented(bad_hash, "/v8/artifacts/{hash}")
    other_team = client.get("/v8/artifacts/status?teamId=team_someoneelse", headers=auth)
    assert other_team.status_code == 403
    assert_documented(other_team, "/v8/artifacts/status")
    bad_event = client.post("/v8/artifacts/events", json=[{"sessionId": "nope"}], headers=auth)
    assert bad_event.status_code == 400
    assert_documented(bad_event, "/v8/artifacts/events")
    anonymous = client.post("/v8/artifacts", json={"hashes": [HASH]}, headers=bearer("ak_live_" + "0" * 32))
    assert anonymous.status_code == 401
    assert_documented(anonymous, "/v8/artifacts")
    wrong_method = client.delete(f"/v8/artifacts/{HASH}", headers=auth)
    assert wrong_method.status_code == 405
    assert_schema("V8Error", wrong_method.get_json())


def test_health_matches_the_document(client):
    assert_documented(client.get("/health"), "/health")


@pytest.mark.storage
def test_redirects_match_the_document(app, client, auth, monkeypatch):
    if app.config["STORAGE_BACKEND"] != "s3":
        pytest.skip("presigned redirects need an object store (the postgresql-s3 variant)")
    monkeypatch.setitem(app.config, "DOWNLOAD_MODE", "redirect")
    artifact_id = upload_json(client, auth).get_json()["artifact_id"]
    link = make_link(client, auth, artifact_id).get_json()
    redirected = client.get(path_of(link["url"]))
    assert redirected.status_code == 302
    assert_documented(redirected, "/dl/{link_id}")
    assert_documented(
        client.get(f"/v1/artifacts/{artifact_id}/download-url", headers=auth),
        "/v1/artifacts/{artifact_id}/download-url",
    )
    client.put(f"/v8/artifacts/{HASH}", data=b"cache", headers=auth)
    cached = client.get(f"/v8/artifacts/{HASH}", headers=auth)
    assert cached.status_code == 302
    assert_documented(cached, "/v8/artifacts/{hash}")
