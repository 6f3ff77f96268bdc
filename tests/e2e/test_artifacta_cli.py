"""The official `artifacta` CLI (artifacta-cli 0.3.0) against Hoard under gunicorn.

Each command runs as its own process, configured only through the
environment (ARTIFACTA_API_URL, ARTIFACTA_API_KEY) with an empty HOME. Its
stdout is not a TTY, so the CLI would pick JSON anyway; `--json` and
`--human` are passed explicitly to say which mode a test means.
"""

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.api.helpers_v1 import WHOAMI_INT_FIELDS

ARTIFACTA = Path(sys.executable).parent / "artifacta"
UNKNOWN_KEY = "ak_live_" + "0" * 32
MISSING_ID = "art_0000000000000000"


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    @property
    def text(self) -> str:
        return self.stdout.decode()


@pytest.fixture(scope="module")
def tenant(new_tenant):
    return new_tenant()


@pytest.fixture(scope="module")
def artifacta(hoard, tenant, artifacta_home):
    """Runs the CLI as `tenant` (or with another key) and returns its outcome."""

    def run(*args: str, key: str = tenant.key, stdin: bytes | None = None, cwd: Path | None = None) -> Run:
        env = {**os.environ, "ARTIFACTA_API_URL": hoard.url, "ARTIFACTA_API_KEY": key}
        done = subprocess.run(
            [str(ARTIFACTA), *map(str, args)],
            env=env,
            input=stdin,
            cwd=cwd or artifacta_home,
            capture_output=True,
            timeout=60,
        )
        assert "Traceback" not in done.stderr.decode(), done.stderr.decode()
        return Run(done.returncode, done.stdout, done.stderr.decode())

    return run


@pytest.fixture
def pushed(artifacta, tmp_path):
    """Pushes a file with the given bytes and options; returns its JSON body."""

    def push(data: bytes, name: str = "file.bin", *options: str) -> dict:
        path = tmp_path / "upload" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        run = artifacta("push", path, *options, "--json")
        assert run.code == 0, run.stderr
        return run.json()

    return push


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def error_code(run: Run) -> tuple[int, str, int]:
    """(exit code, error code, HTTP status) of a failed command in JSON mode."""
    error = run.json()["error"]
    return run.code, error["code"], error["status"]


# -- push ------------------------------------------------------------------------


def test_push_with_meta_session_and_agent(pushed):
    data = b"epoch,loss\n1,0.5\n2,0.25\n"

    body = pushed(
        data, "metrics.csv", "--session", "cli-run-1", "--agent", "trainer",
        "--meta", "stage=final", "--meta", "note=a=b c", "--ttl", "7d",
    )  # fmt: skip

    assert body["artifact_id"].startswith("art_")
    assert body["filename"] == "metrics.csv"
    assert body["content_type"] == "text/csv"
    assert (body["size_bytes"], body["content_hash"]) == (len(data), sha256(data))
    assert (body["session_id"], body["agent_id"]) == ("cli-run-1", "trainer")
    assert body["metadata"] == {"stage": "final", "note": "a=b c"}
    assert body["status"] == "active"
    assert body["expires_at"] is not None and body["deleted_at"] is None


def test_pushing_the_same_file_again_replays_the_first_artifact(pushed):
    # The CLI derives an Idempotency-Key from (bytes, name, session, agent);
    # metadata is not part of it, so the replay keeps the first metadata.
    first = pushed(b"same bytes", "same.txt", "--session", "cli-replay", "--meta", "try=1")
    again = pushed(b"same bytes", "same.txt", "--session", "cli-replay", "--meta", "try=2")
    elsewhere = pushed(b"same bytes", "same.txt", "--session", "cli-replay-2")

    assert again == first
    assert again["metadata"] == {"try": "1"}
    assert elsewhere["artifact_id"] != first["artifact_id"]


def test_push_from_stdin_and_presigned(artifacta, pushed):
    from_stdin = artifacta("push", "-", "--name", "out.json", "--json", stdin=b'{"ok": true}')
    big = os.urandom(2 * 1024 * 1024 + 3)
    presigned = pushed(big, "big.bin", "--presigned", "--meta", "kind=weights")

    assert from_stdin.code == 0, from_stdin.stderr
    assert from_stdin.json()["filename"] == "out.json"
    assert from_stdin.json()["content_type"] == "application/json"
    assert presigned["status"] == "active"
    assert (presigned["size_bytes"], presigned["content_hash"]) == (len(big), sha256(big))
    assert presigned["metadata"] == {"kind": "weights"}
    assert artifacta("pull", presigned["artifact_id"], "-o", "-").stdout == big


# -- pull ------------------------------------------------------------------------


def test_pull_to_a_directory_to_stdout_and_to_the_working_directory(artifacta, pushed, tmp_path):
    data = os.urandom(40_000)
    artifact_id = pushed(data, "model card.md")["artifact_id"]
    out = tmp_path / "out"
    out.mkdir()

    to_dir = artifacta("pull", artifact_id, "-o", out, "--json")
    to_stdout = artifacta("pull", artifact_id, "-o", "-")
    to_cwd = artifacta("pull", artifact_id, "--human", cwd=out)

    assert to_dir.code == 0, to_dir.stderr
    assert to_dir.json() == {
        "artifact_id": artifact_id,
        "filename": "model card.md",
        "size_bytes": len(data),
        "path": str(out / "model card.md"),
    }
    assert (out / "model card.md").read_bytes() == data
    assert (to_stdout.code, to_stdout.stdout) == (0, data)
    assert (to_cwd.code, to_cwd.text) == (0, "model card.md\n")


# -- ls ------------------------------------------------------------------------


def test_ls_filters_and_pages(artifacta, pushed):
    def push(name: str, *options: str) -> str:
        return pushed(name.encode(), name, "--session", "cli-ls", *options)["artifact_id"]

    a = push("a.txt", "--agent", "alpha", "--meta", "stage=final")
    b = push("b.txt", "--agent", "beta", "--meta", "stage=draft")
    c = push("c.txt", "--agent", "alpha", "--meta", "stage=final", "--meta", "team=x")

    def ls(*filters: str) -> dict:
        run = artifacta("ls", "--session", "cli-ls", *filters, "--json")
        assert run.code == 0, run.stderr
        return run.json()

    def ids(*filters: str) -> list[str]:
        return [item["artifact_id"] for item in ls(*filters)["artifacts"]]

    assert ids() == [c, b, a]
    assert ids("--agent", "alpha") == [c, a]
    assert ids("--meta", "stage=final") == [c, a]
    assert ids("--meta", "stage=final", "--meta", "team=x") == [c]
    assert ids("--agent", "beta", "--meta", "stage=final") == []
    first = ls("--limit", "2")
    assert [item["artifact_id"] for item in first["artifacts"]] == [c, b]
    assert first["has_more"] is True
    rest = ls("--limit", "2", "--after", first["next_cursor"])
    assert [item["artifact_id"] for item in rest["artifacts"]] == [a]
    assert (rest["has_more"], rest["next_cursor"]) == (False, None)


# -- link ------------------------------------------------------------------------


def test_link_prints_a_url_that_needs_no_key(artifacta, pushed):
    data = os.urandom(30_000)
    artifact_id = pushed(data, "share.bin")["artifact_id"]

    as_json = artifacta("link", artifact_id, "--json")
    short = artifacta("link", artifact_id, "--expires", "24h", "--json")
    human = artifacta("link", artifact_id, "--human")

    assert as_json.code == short.code == human.code == 0
    assert as_json.json()["artifact_id"] == artifact_id
    assert as_json.json()["link_id"].startswith("lnk_")
    assert short.json()["expires_at"] < as_json.json()["expires_at"]
    for url in (as_json.json()["url"], short.json()["url"], human.text.strip()):
        response = requests.get(url, timeout=10)
        assert (response.status_code, response.content) == (200, data)


# -- rm ------------------------------------------------------------------------


def test_rm_deletes_and_tolerates_a_second_rm(artifacta, pushed):
    artifact_id = pushed(b"to delete", "rm.txt")["artifact_id"]

    removed = artifacta("rm", artifact_id, "--yes", "--json")
    inspected = artifacta("inspect", artifact_id, "--json")
    pulled = artifacta("pull", artifact_id, "-o", "-", "--json")
    again = artifacta("rm", artifact_id, "--yes", "--json")

    assert removed.code == 0, removed.stderr
    [deleted] = removed.json()["deleted"]
    assert (deleted["artifact_id"], deleted["deleted"]) == (artifact_id, True)
    assert deleted["deleted_at"].endswith("Z")
    assert removed.json()["failed"] == []
    assert error_code(inspected) == (1, "artifact_already_deleted", 410)
    assert error_code(pulled) == (1, "artifact_already_deleted", 410)
    assert again.code == 0
    assert again.json()["deleted"][0]["deleted_at"] == "already_deleted"


def test_rm_by_session(artifacta, pushed):
    ids = {pushed(f"{n}".encode(), f"{n}.txt", "--session", "cli-rm")["artifact_id"] for n in range(3)}

    dry = artifacta("rm", "--session", "cli-rm", "--dry-run", "--json")
    removed = artifacta("rm", "--session", "cli-rm", "--yes", "--json")

    assert {item["artifact_id"] for item in dry.json()["would_delete"]} == ids
    assert {item["artifact_id"] for item in removed.json()["deleted"]} == ids
    assert artifacta("ls", "--session", "cli-rm", "--json").json()["artifacts"] == []


# -- sessions ------------------------------------------------------------------------


def test_a_sealed_session_refuses_pushes(artifacta, pushed, tmp_path):
    pushed(b"before", "before.txt", "--session", "cli-seal")

    sealed = artifacta("session", "seal", "cli-seal", "--json")
    late = tmp_path / "late.txt"
    late.write_bytes(b"after")
    refused = artifacta("push", late, "--session", "cli-seal", "--json")
    refused_presigned = artifacta("push", late, "--session", "cli-seal", "--presigned", "--json")
    resealed = artifacta("session", "seal", "cli-seal", "--human")
    sessions = artifacta("session", "ls", "--json")

    assert sealed.code == 0, sealed.stderr
    body = sealed.json()
    assert (body["session_id"], body["status"], body["artifact_count"]) == ("cli-seal", "sealed", 1)
    assert body["sealed_at"].endswith("Z")
    assert error_code(refused) == (1, "session_sealed", 409)
    assert 'Session "cli-seal" is sealed' in refused.stderr
    assert error_code(refused_presigned) == (1, "session_sealed", 409)
    assert (resealed.code, resealed.text) == (0, "cli-seal\n")
    listed = {s["session_id"]: s for s in sessions.json()["sessions"]}
    assert (listed["cli-seal"]["is_sealed"], listed["cli-seal"]["artifact_count"]) == (True, 1)


def test_sealing_a_session_without_artifacts(artifacta):
    assert error_code(artifacta("session", "seal", "cli-empty", "--json")) == (1, "session_not_found", 404)


# -- whoami and human output ----------------------------------------------------


def test_whoami_json(artifacta, tenant):
    run = artifacta("whoami", "--json")

    assert run.code == 0, run.stderr
    body = run.json()
    assert (body["tenant_id"], body["tenant_slug"], body["tenant_name"]) == (
        tenant.id,
        tenant.slug,
        tenant.slug,
    )
    assert body["plan"] == "pro"
    assert body["api_key_last_4"] == tenant.key[-4:]
    for field in WHOAMI_INT_FIELDS:
        assert type(body[field]) is int, field


@pytest.mark.parametrize("plan", ["pro", "free"])
def test_whoami_human_does_not_crash(artifacta, new_tenant, plan):
    tenant = new_tenant(plan=plan)

    run = artifacta("whoami", "--human", key=tenant.key)

    assert run.code == 0, run.stderr
    assert run.text == f"{tenant.slug}\n"
    assert f"Plan:       {plan}" in run.stderr
    assert f"API Key:    ...{tenant.key[-4:]}" in run.stderr
    for label in ("Requests:", "Storage:", "Links:", "Rate limit:"):
        assert label in run.stderr


def test_human_output_of_every_data_command(artifacta, pushed):
    artifact_id = pushed(b"human", "human.txt", "--session", "cli-human", "--meta", "k=v")["artifact_id"]

    inspect = artifacta("inspect", artifact_id, "--human")
    ls = artifacta("ls", "--session", "cli-human", "--human")
    sessions = artifacta("session", "ls", "--human")

    assert (inspect.code, inspect.text) == (0, f"{artifact_id}\n")
    assert "Metadata:" in inspect.stderr and "k: v" in inspect.stderr
    assert ls.code == 0 and artifact_id in ls.stderr and "1 artifact," in ls.stderr
    assert sessions.code == 0 and "cli-human" in sessions.stderr


# -- errors ------------------------------------------------------------------------


def test_an_unknown_key_fails_with_exit_1(artifacta, tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(b"x")

    whoami = artifacta("whoami", "--json", key=UNKNOWN_KEY)
    ls = artifacta("ls", "--json", key=UNKNOWN_KEY)
    push = artifacta("push", path, "--json", key=UNKNOWN_KEY)

    assert whoami.code == 1
    assert "Authentication failed" in whoami.stderr
    assert error_code(ls) == (1, "unauthorized", 401)
    assert error_code(push) == (1, "unauthorized", 401)


def test_a_missing_artifact_fails_with_exit_1(artifacta):
    for command in (("inspect", MISSING_ID), ("pull", MISSING_ID, "-o", "-"), ("link", MISSING_ID)):
        assert error_code(artifacta(*command, "--json")) == (1, "artifact_not_found", 404)
    human = artifacta("inspect", MISSING_ID, "--human")
    assert (human.code, human.stdout) == (1, b"")
    assert f'Artifact "{MISSING_ID}" not found.' in human.stderr
