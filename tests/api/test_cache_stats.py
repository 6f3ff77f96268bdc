"""Hits, misses, bytes moved and reported events are counted per tenant."""

import json
import uuid

import pytest

from tests.factories import bearer, make_tenant

# Every test here moves bytes: it runs on S3 storage too.
pytestmark = pytest.mark.storage


def test_cache_traffic_is_counted_per_tenant(client, runner, auth):
    _, other_key = make_tenant("other")
    client.put("/v8/artifacts/aaa111", data=b"x" * 1000, headers=auth)
    assert client.get("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/missing1", headers=auth).status_code == 404
    assert client.head("/v8/artifacts/aaa111", headers=auth).status_code == 200
    assert client.get("/v8/artifacts/aaa111", headers=bearer(other_key)).status_code == 404
    session_id = str(uuid.uuid4())
    events = [
        {"sessionId": session_id, "source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 1500},
        {"sessionId": session_id, "source": "REMOTE", "event": "HIT", "hash": "aaa111", "duration": 500},
        {"sessionId": session_id, "source": "LOCAL", "event": "MISS", "hash": "bbb222"},
    ]
    assert client.post("/v8/artifacts/events", json=events, headers=auth).status_code == 200

    result = runner.invoke(args=["tenants", "stats", "acme"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["hits"] == 2  # HEAD is not a hit: nothing was served
    assert stats["misses"] == 1
    assert stats["hit_rate"] == round(2 / 3, 4)
    assert stats["bytes_served"] == 2000
    assert stats["bytes_uploaded"] == 1000
    assert stats["reported_events"] == {"remote_hits": 2, "local_misses": 1}
    assert stats["time_saved_ms"] == 2000

    other = json.loads(runner.invoke(args=["tenants", "stats", "other"]).output)
    assert (other["hits"], other["misses"], other["bytes_uploaded"]) == (0, 1, 0)
