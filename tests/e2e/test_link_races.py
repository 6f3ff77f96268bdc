"""Concurrent public-link requests against a plan's active-link cap, under
gunicorn on PostgreSQL and on SQLite.

Each request sees room for one more link when it starts; together they do
not. Counting and creating are one step per tenant, so the cap holds.
"""

import threading

import pytest
import requests

from tests.live_server import HoardServer

CAP = 50  # the free plan's active links
BEFORE = CAP - 4
AT_ONCE = 12


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
def test_concurrent_links_never_pass_the_plans_cap(database, request, tmp_path):
    database_url = request.getfixturevalue("new_postgres_database")() if database == "postgresql" else None
    server = HoardServer(
        var_dir=tmp_path / "hoard", database_url=database_url, env_overrides={"RATELIMIT_ENABLED": "false"}
    )
    with server:
        team = server.create_tenant("links", plan="free")
        auth = {"Authorization": f"Bearer {team.key}"}
        made = requests.post(
            f"{server.url}/v1/artifacts", json={"filename": "a.txt", "content": "aGVsbG8="}, headers=auth
        ).json()
        links_url = f"{server.url}/v1/artifacts/{made['artifact_id']}/links"
        with requests.Session() as session:
            for _ in range(BEFORE):
                assert session.post(links_url, headers=auth).status_code == 201
        barrier = threading.Barrier(AT_ONCE)
        answers = []

        def ask() -> None:
            barrier.wait()
            response = requests.post(links_url, headers=auth)
            answers.append((response.status_code, response.json().get("error", {}).get("code")))

        threads = [threading.Thread(target=ask) for _ in range(AT_ONCE)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        active = requests.get(f"{server.url}/v1/whoami", headers=auth).json()["active_links"]

    print(f"answers: {sorted(answers, key=str)}")
    assert set(answers) <= {(201, None), (403, "quota_exceeded")}
    assert answers.count((201, None)) == CAP - BEFORE
    assert active == CAP
