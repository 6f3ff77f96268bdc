"""The real turbo CLI against Hoard under gunicorn.

Run 1 on a fresh tenant misses every task and uploads it; run 2, after wiping
the outputs and turbo's local traces, replays every task from Hoard and
restores the outputs byte for byte. Refused credentials never break a build
and store nothing.
"""

import base64
import hashlib
import hmac
import re
import secrets
import shutil
import string
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.e2e import turbo

SIGNATURE_KEY = "hoard-e2e-signature-key-0123456789abcdef"
ALL_TASKS = {f"{name}#build" for name in turbo.PACKAGES}


@dataclass(frozen=True)
class Team:
    """How a run names its team, and the query string turbo then sends."""

    flag: str | None
    env: dict[str, str] = field(default_factory=dict)
    query: str = ""
    signed: bool = False


def team_for(scenario: str, tenant) -> Team:
    signing = {"TURBO_REMOTE_CACHE_SIGNATURE_KEY": SIGNATURE_KEY}
    return {
        "slug": Team(tenant.slug, query=f"slug={tenant.slug}"),
        "signed": Team(tenant.slug, signing, query=f"slug={tenant.slug}", signed=True),
        # Users confuse the two: `--team team_...` arrives as ?slug=team_...
        "team-id-as-slug": Team(tenant.id, query=f"slug={tenant.id}"),
        "teamid-env": Team(None, {"TURBO_TEAMID": tenant.id}, query=f"teamId={tenant.id}"),
        "signed-teamid-and-slug": Team(
            tenant.slug,
            {"TURBO_TEAMID": tenant.id, **signing},
            query=f"teamId={tenant.id}&slug={tenant.slug}",
            signed=True,
        ),
    }[scenario]


@pytest.fixture(scope="module")
def monorepo_template(turbo_binary, tmp_path_factory) -> Path:
    return turbo.generate_monorepo(tmp_path_factory.mktemp("turbo") / "template")


@pytest.fixture
def repo(monorepo_template, tmp_path) -> Path:
    return Path(shutil.copytree(monorepo_template, tmp_path / "repo", symlinks=True))


def query_cache(hoard, tenant, hashes) -> dict:
    response = requests.post(
        f"{hoard.url}/v8/artifacts",
        json={"hashes": sorted(hashes)},
        headers={"Authorization": f"Bearer {tenant.key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def stored_objects(hoard, tenant) -> list[Path]:
    """The tenant's cache objects in local storage (cache/<tenant>/<hash>/<version>)."""
    tenant_root = hoard.var_dir / "storage" / "cache" / tenant.id
    return sorted(path for path in tenant_root.rglob("*") if path.is_file())


def logged_statuses(hoard, method: str, query: str, hashes, *, timeout: float = 5) -> dict[str, set[str]]:
    """Status codes gunicorn logged for `method /v8/artifacts/<hash>?query`,
    waiting briefly: a worker writes its access line after the response."""
    pattern = re.compile(rf'"{method} /v8/artifacts/([^? ]+)\?{re.escape(query)} HTTP/1\.1" (\d{{3}})')
    deadline = time.monotonic() + timeout
    while True:
        seen: dict[str, set[str]] = {}
        for artifact_hash, status in pattern.findall(hoard.log_path.read_text()):
            if artifact_hash in hashes:
                seen.setdefault(artifact_hash, set()).add(status)
        if set(hashes) <= set(seen) or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def expected_tag(artifact_hash: str, team_id: str, body: bytes) -> str:
    """turbo 2.11's artifact signature: HMAC-SHA256 over length-prefixed parts."""
    parts = (b"artifact-signature:v2", artifact_hash.encode(), team_id.encode(), body)
    message = b"".join(struct.pack("<Q", len(part)) + part for part in parts)
    return base64.b64encode(hmac.new(SIGNATURE_KEY.encode(), message, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    "scenario", ["slug", "signed", "team-id-as-slug", "teamid-env", "signed-teamid-and-slug"]
)
def test_second_run_replays_every_task_from_hoard(scenario, turbo_binary, hoard, repo, new_tenant):
    tenant = new_tenant()  # fresh, so no scenario sees another's cache
    team = team_for(scenario, tenant)
    turbo.write_turbo_json(repo, signature=team.signed)

    def build() -> turbo.Run:
        return turbo.run_build(
            turbo_binary, repo, api=hoard.url, token=tenant.key, team=team.flag, env=team.env
        )

    first = build()
    assert first.returncode == 0, first.output
    assert first.cache_sources() == dict.fromkeys(ALL_TASKS, ("MISS", None)), first.output
    hashes = set(first.hashes.values())
    assert len(hashes) == len(ALL_TASKS)
    assert logged_statuses(hoard, "PUT", team.query, hashes) == dict.fromkeys(hashes, {"202"})
    entries = query_cache(hoard, tenant, hashes)
    assert all(entries[h] is not None and entries[h]["size"] > 1_000_000 for h in hashes), entries
    objects = stored_objects(hoard, tenant)
    assert sorted(path.parent.name for path in objects) == sorted(hashes)
    assert {path.parent.name: path.stat().st_size for path in objects} == {
        h: entries[h]["size"] for h in hashes
    }
    if team.signed:
        tag_team_id = team.env.get("TURBO_TEAMID", "")
        for artifact_hash in hashes:
            stored = requests.get(
                f"{hoard.url}/v8/artifacts/{artifact_hash}",
                headers={"Authorization": f"Bearer {tenant.key}"},
                timeout=10,
            )
            assert stored.headers["x-artifact-tag"] == entries[artifact_hash]["tag"]
            assert entries[artifact_hash]["tag"] == expected_tag(artifact_hash, tag_team_id, stored.content)
    else:
        assert all(not entries[h]["tag"] for h in hashes)
    outputs = turbo.hash_outputs(repo)
    assert set(outputs) == turbo.expected_outputs()
    assert sum((repo / path).stat().st_size for path in outputs) > 8_000_000

    turbo.wipe(repo)
    assert turbo.hash_outputs(repo) == {}
    second = build()

    assert second.returncode == 0, second.output
    assert second.cache_sources() == dict.fromkeys(ALL_TASKS, ("HIT", "REMOTE")), second.output
    assert second.summary["execution"]["cached"] == second.summary["execution"]["attempted"] == len(ALL_TASKS)
    assert second.hashes == first.hashes
    assert logged_statuses(hoard, "GET", team.query, hashes) == dict.fromkeys(hashes, {"404", "200"})
    assert turbo.hash_outputs(repo) == outputs
    # turbo reports the x-artifact-duration Hoard kept as the time it saved.
    assert {task["hash"]: task["cache"]["timeSaved"] for task in second.tasks.values()} == {
        h: entries[h]["taskDurationMs"] for h in hashes
    }


def unknown_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "ak_live_" + "".join(secrets.choice(alphabet) for _ in range(32))


@pytest.mark.parametrize(("scenario", "refused_with"), [("unknown-key", "401"), ("foreign-team", "403")])
def test_refused_credentials_still_build_and_store_nothing(
    scenario, refused_with, turbo_binary, hoard, repo, new_tenant
):
    tenant, other = new_tenant(), new_tenant()
    if scenario == "unknown-key":
        token, team = unknown_key(), tenant.slug
    else:
        token, team = tenant.key, other.slug

    run = turbo.run_build(turbo_binary, repo, api=hoard.url, token=token, team=team)

    assert run.returncode == 0, run.output
    assert run.summary["execution"]["success"] == len(ALL_TASKS)
    assert run.cache_sources() == dict.fromkeys(ALL_TASKS, ("MISS", None))
    assert set(turbo.hash_outputs(repo)) == turbo.expected_outputs()
    hashes = set(run.hashes.values())
    # turbo asked, and Hoard refused every read and any upload it attempted.
    reads = logged_statuses(hoard, "GET", f"slug={team}", hashes)
    writes = logged_statuses(hoard, "PUT", f"slug={team}", hashes, timeout=0)
    assert reads
    assert set().union(*reads.values(), *writes.values()) == {refused_with}
    for owner in (tenant, other):
        assert query_cache(hoard, owner, hashes) == dict.fromkeys(hashes)
        assert stored_objects(hoard, owner) == []
