import pytest

# Every test here moves bytes or checks the storage: it runs on S3 storage too.
pytestmark = pytest.mark.storage


def test_health_reports_database_and_storage(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["checks"] == {"database": "ok", "storage": "ok"}


def test_cache_round_trip(client, auth):
    put = client.put("/v8/artifacts/abc123", data=b"x" * 1000, headers={**auth, "x-artifact-duration": "42"})
    assert put.status_code == 202
    got = client.get("/v8/artifacts/abc123", headers=auth)
    assert got.status_code == 200
    assert got.data == b"x" * 1000
    assert got.headers["x-artifact-duration"] == "42"
