"""The real turbo against Hoard as it is deployed beyond one machine: S3
storage (bytes streamed through Hoard, or a redirect to a presigned URL),
and the real nginx in front of gunicorn with X-Accel-Redirect downloads."""

import re
import secrets
import shutil
from pathlib import Path

import pytest

from tests.e2e import turbo
from tests.live_server import HoardServer
from tests.nginx_proxy import NginxProxy

SIGNATURE_KEY = "hoard-e2e-deployments-signature-key"
ALL_TASKS = {f"{name}#build" for name in turbo.PACKAGES}


@pytest.fixture(scope="module")
def monorepo_template(turbo_binary, tmp_path_factory) -> Path:
    return turbo.generate_monorepo(tmp_path_factory.mktemp("deploy-template") / "repo")


@pytest.fixture(params=["s3-stream", "s3-redirect", "nginx"])
def deployment(request, new_postgres_database, tmp_path_factory):
    """(API URL turbo talks to, server) for each way Hoard is deployed."""
    var_dir = tmp_path_factory.mktemp(request.param)
    if request.param.startswith("s3"):
        # Small parts, so the several-MB artifacts go up as multipart uploads.
        env = request.getfixturevalue("s3_server_env")(
            "hoard-turbo",
            S3_PART_SIZE=str(5 * 1024 * 1024),
            DOWNLOAD_MODE="redirect" if request.param == "s3-redirect" else "sendfile",
        )
        with HoardServer(var_dir=var_dir, database_url=new_postgres_database(), env_overrides=env) as server:
            yield request.param, server.url, server
        return
    env = {"DOWNLOAD_MODE": "x-accel", "TRUSTED_PROXY_COUNT": "1"}
    with (
        HoardServer(var_dir=var_dir, database_url=new_postgres_database(), env_overrides=env) as server,
        NginxProxy(server.port, var_dir / "storage", tmp_path_factory.mktemp("nginx")) as proxy,
    ):
        yield request.param, proxy.url, server


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_second_run_replays_every_task(deployment, signed, turbo_binary, monorepo_template, tmp_path):
    name, api, server = deployment
    repo = Path(shutil.copytree(monorepo_template, tmp_path / "repo", symlinks=True))
    tenant = server.create_tenant(f"deploy-{secrets.token_hex(3)}")
    turbo.write_turbo_json(repo, signature=signed)
    signing = {"TURBO_REMOTE_CACHE_SIGNATURE_KEY": SIGNATURE_KEY, "TURBO_TEAMID": tenant.id} if signed else {}

    def build() -> turbo.Run:
        return turbo.run_build(turbo_binary, repo, api=api, token=tenant.key, team=tenant.slug, env=signing)

    first = build()
    assert first.returncode == 0, first.output
    assert first.cache_sources() == dict.fromkeys(ALL_TASKS, ("MISS", None)), first.output
    outputs = turbo.hash_outputs(repo)
    assert set(outputs) == turbo.expected_outputs()

    turbo.wipe(repo)
    second = build()

    assert second.returncode == 0, second.output
    # A signed artifact whose tag or bytes came back wrong would be a miss.
    assert second.cache_sources() == dict.fromkeys(ALL_TASKS, ("HIT", "REMOTE")), second.output
    assert turbo.hash_outputs(repo) == outputs
    log = server.log_path.read_text()
    gets = re.findall(rf'"GET /v8/artifacts/[0-9a-f]+\?[^ ]*slug={tenant.slug} HTTP/1\.1" (\d{{3}})', log)
    if name == "s3-redirect" and not signed:
        # Hoard answered with redirects, and turbo fetched from S3 itself.
        assert gets.count("302") == len(ALL_TASKS), gets
    else:
        # Signed artifacts are always sent by Hoard, with their tag.
        assert gets.count("200") == len(ALL_TASKS), gets
