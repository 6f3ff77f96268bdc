"""The /v1 error envelope for what the framework answers (unknown route,
wrong method, body too large, malformed request) and for the unexpected (500)."""

import logging

import pytest

from app.errors import InvalidRequest
from app.extensions import db
from app.models import Artifact
from app.services import links, usage
from app.services.artifacts import lifecycle, reads
from tests.api import helpers_v1 as v1
from tests.api.helpers_v1 import assert_error, count_rows, create, reserve


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("GET", "/v1"),
        ("GET", "/v1/artifacts/art_0000000000000000/nope"),
        ("POST", "/v1/sessions/s/unseal"),
        ("GET", "/v2/artifacts"),
        ("GET", "/index.html"),
        ("GET", "/dl"),
        ("PUT", "/v1/uploads"),
        ("GET", "/v1/blobs/"),
    ],
)
def test_unknown_routes_answer_the_envelope(client, auth, method, path):
    response = client.open(path, method=method, headers=auth)
    assert_error(response, 404, "not_found")
    assert b"<" not in response.data


def test_unknown_route_without_auth_is_still_404_json(client):
    assert_error(client.get("/v1/whatever"), 404, "not_found")
    assert_error(client.head("/v1/whatever"), 404, "not_found")


def test_no_trailing_slash_redirects(client, auth):
    # httpx does not follow redirects on API calls; a 3xx reads as success.
    for path in ("/v1/artifacts/", "/v1/sessions/", "/v1/whoami/"):
        assert client.get(path, headers=auth).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/artifacts", {"GET", "POST"}),
        ("PATCH", "/v1/artifacts/art_0000000000000000", {"GET", "DELETE"}),
        ("GET", "/v1/artifacts/art_0000000000000000/complete", {"POST"}),
        ("GET", "/v1/artifacts/art_0000000000000000/links", {"POST"}),
        ("DELETE", "/v1/whoami", {"GET"}),
        ("POST", "/v1/sessions", {"GET"}),
        ("GET", "/v1/sessions/s/seal", {"POST"}),
        ("POST", "/v1/uploads/token", {"PUT"}),
        ("PUT", "/v1/blobs/token", {"GET", "HEAD"}),
        ("POST", "/dl/lnk_x", {"GET", "HEAD"}),
    ],
)
def test_wrong_method_is_405_with_allow(client, auth, method, path, allowed):
    response = client.open(path, method=method, headers=auth)
    assert_error(response, 405, "method_not_allowed")
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_framework_413(app, client, auth, monkeypatch):
    # Werkzeug refuses a body over MAX_CONTENT_LENGTH before the view reads it.
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 10)
    ticket = reserve(client, auth, size=20).get_json()
    response = client.put(v1.path_of(ticket["upload_url"]), data=b"x" * 20, headers=ticket["upload_headers"])
    assert_error(response, 413, "file_too_large")


def test_a_body_werkzeug_cannot_parse_is_400(client, auth):
    headers = {**auth, "Content-Type": "multipart/form-data"}  # no boundary
    assert_error(client.post("/v1/artifacts", data=b"--x\r\n", headers=headers), 400, "invalid_request")


def test_unsatisfiable_range_keeps_its_status(client, auth):
    made = create(client, auth, b"0123456789")
    response = client.get(
        v1.download_path(client, auth, made["artifact_id"]), headers={"Range": "bytes=50-60"}
    )
    assert_error(response, 416, "requested_range_not_satisfiable")
    assert response.headers["Content-Range"] == "bytes */10"


@pytest.mark.parametrize(
    ("target", "method", "path", "body"),
    [
        ((reads, "get_artifact"), "GET", "/v1/artifacts/art_0000000000000000", None),
        ((reads, "list_artifacts"), "GET", "/v1/artifacts", None),
        ((links, "create_link"), "POST", "/v1/artifacts/art_0000000000000000/links", {}),
        ((reads, "artifact_for_download_token"), "GET", "/v1/blobs/tok", None),
        ((links, "artifact_for_link"), "GET", "/dl/lnk_x", None),
    ],
)
def test_unexpected_errors_are_a_generic_500(client, auth, caplog, monkeypatch, target, method, path, body):
    def explode(*args, **kwargs):
        raise RuntimeError("db password is hunter2 at /srv/hoard/secret")

    monkeypatch.setattr(*target, explode)
    # Alembic's logging setup (run by the fixtures) disables existing loggers.
    monkeypatch.setattr(logging.getLogger("app.errors"), "disabled", False)

    with caplog.at_level(logging.ERROR, logger="app.errors"):
        response = client.open(path, method=method, json=body, headers=auth)

    error = assert_error(response, 500, "internal_error")
    assert set(error) == {"code", "message", "status"}
    assert "hunter2" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    assert "/srv" not in response.get_data(as_text=True)
    assert any(record.exc_info and "hunter2" in str(record.exc_info[1]) for record in caplog.records)


def test_a_500_rolls_back_the_session(client, auth, monkeypatch):
    made = create(client, auth)

    def half_done(tenant, artifact_id):
        row = reads.find_artifact(tenant, artifact_id)
        row.filename = "changed-before-the-crash.txt"
        db.session.flush()
        raise RuntimeError("boom")

    monkeypatch.setattr(lifecycle, "delete_artifact", half_done)
    assert_error(client.delete(f"/v1/artifacts/{made['artifact_id']}", headers=auth), 500, "internal_error")
    assert client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth).get_json() == made
    assert count_rows(Artifact) == 1


def test_a_4xx_after_a_partial_change_persists_nothing(client, auth, monkeypatch):
    # The request counter may commit the session after any authenticated
    # response; a service that changed a row and then refused must not have
    # that change committed for it.
    monkeypatch.setattr(usage, "FLUSH_SECONDS", 0)
    made = create(client, auth)

    def refuse_after_touching(artifact):
        artifact.filename = "half-written.txt"
        raise InvalidRequest("refused")

    monkeypatch.setattr(reads, "ensure_live", refuse_after_touching)
    response = client.post(
        f"/v1/artifacts/{made['artifact_id']}/extend-ttl", json={"ttl": "1d"}, headers=auth
    )
    assert_error(response, 400, "invalid_request")
    monkeypatch.undo()
    assert client.get(f"/v1/artifacts/{made['artifact_id']}", headers=auth).get_json() == made


def test_error_bodies_are_json_objects_never_html(client, auth):
    responses = [
        client.get("/v1/nope"),
        client.delete("/v1/whoami", headers=auth),
        client.get("/v1/whoami"),
        client.post("/v1/artifacts", data=b"{", headers={**auth, "Content-Type": "application/json"}),
        client.get("/v1/artifacts?limit=0", headers=auth),
        client.get("/dl/lnk_missing"),
        client.get("/v1/blobs/garbage"),
        client.put("/v1/uploads/garbage", data=b"x"),
    ]
    for response in responses:
        assert response.mimetype == "application/json"
        body = response.get_json()
        assert isinstance(body, dict) and isinstance(body["error"], dict)
        assert isinstance(body["error"]["code"], str)
        assert body["error"]["status"] == response.status_code
        assert not response.get_data(as_text=True).lstrip().startswith("<")
