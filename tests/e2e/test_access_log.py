"""gunicorn's access log under gunicorn.conf.py: where it goes and in what
format come from config (ACCESS_LOG, ACCESS_LOG_FORMAT), and the tokens of
public links, signed downloads and signed uploads never reach it."""

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from tests.live_server import HoardServer

# Every atom that can hold the path, read from the request line, the parsed
# path, the environ and the Referer header.
EVERY_PATH_ATOM = (
    '%(m)s|%(U)s|%(q)s|"%(r)s"|%({raw_uri}e)s|%({path_info}e)s|%(f)s|%(s)s'
    "|%(u)s|%({authorization}i)s|%({http_authorization}e)s"
)


def _serve(tmp_path_factory, name: str, **env: str) -> HoardServer:
    return HoardServer(var_dir=tmp_path_factory.mktemp(name), workers=1, threads=4, env_overrides=env)


def _capabilities(server: HoardServer) -> dict[str, str]:
    """Use a public link, a signed download and a signed upload once each;
    the secret part of each URL."""
    tenant = server.create_tenant("logged")
    auth = {"Authorization": f"Bearer {tenant.key}"}
    made = requests.post(
        f"{server.url}/v1/artifacts", json={"filename": "a.txt", "content": "aGVsbG8="}, headers=auth
    ).json()
    link = requests.post(f"{server.url}/v1/artifacts/{made['artifact_id']}/links", headers=auth).json()["url"]
    blob = requests.get(f"{server.url}/v1/artifacts/{made['artifact_id']}/download-url", headers=auth).json()
    ticket = requests.post(
        f"{server.url}/v1/artifacts/upload-url", json={"filename": "b.bin", "size_bytes": 5}, headers=auth
    ).json()

    assert requests.get(link, headers={"Referer": link}).status_code == 200
    assert requests.head(link).status_code == 200
    assert requests.get(blob["download_url"] + "?download=1").status_code == 200
    assert (
        requests.put(ticket["upload_url"], data=b"hello", headers=ticket["upload_headers"]).status_code == 200
    )
    # The router decodes the path: this is the link too.
    link_path = urlsplit(link).path
    encoded = link_path.replace("/dl/", "/d%6C/")
    assert requests.get(f"{server.url}{encoded}").status_code == 200
    # A build tool configured with the key as Basic's user name (and password).
    assert requests.get(f"{server.url}/cache/gradle/k1", auth=(tenant.key, tenant.key)).status_code == 404
    return {
        "key": tenant.key,
        "link": link_path.rsplit("/", 1)[1].removeprefix("lnk_"),
        "blob": urlsplit(blob["download_url"]).path.rsplit("/", 1)[1],
        "upload": urlsplit(ticket["upload_url"]).path.rsplit("/", 1)[1],
    }


def _access_lines(path: Path, marker: str, count: int) -> list[str]:
    """The access log's lines naming `marker`, once there are `count`."""
    deadline = time.monotonic() + 10
    while True:
        lines = [line for line in path.read_text().splitlines() if marker in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def _assert_redacted(log: str, secrets: dict[str, str]) -> None:
    for kind, secret in secrets.items():
        assert secret not in log, f"the {kind} token is in the access log"


def test_the_default_logs_to_stdout_in_gunicorns_format_without_tokens(tmp_path_factory):
    with _serve(tmp_path_factory, "log-default") as server:
        secrets = _capabilities(server)
        lines = _access_lines(server.log_path, "[redacted]", 5)

    log = server.log_path.read_text()
    _assert_redacted(log, secrets)
    assert len(lines) == 5
    # gunicorn's own default format: `host - - [time] "request line" status size "referer" "agent"`.
    default_format = re.compile(
        r'127\.0\.0\.1 - - \[[^]]+\] "GET /dl/lnk_\[redacted\] HTTP/1\.1" 200 \d+ '
        r'"http://127\.0\.0\.1:\d+/dl/lnk_\[redacted\]" "python-requests/[0-9.]+"'
    )
    assert any(default_format.fullmatch(line) for line in lines), lines
    assert any('"PUT /v1/uploads/[redacted] HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /v1/blobs/[redacted]?download=1 HTTP/1.1" 200' in line for line in lines), lines
    assert '"POST /v1/artifacts HTTP/1.1" 201' in log  # and everything else as it was


def test_a_file_and_a_format_from_config_and_every_path_atom_redacted(tmp_path_factory, tmp_path):
    access_log = tmp_path / "access.log"
    with _serve(
        tmp_path_factory, "log-file", ACCESS_LOG=str(access_log), ACCESS_LOG_FORMAT=EVERY_PATH_ATOM
    ) as server:
        secrets = _capabilities(server)
        lines = _access_lines(access_log, "[redacted]", 5)

    log = access_log.read_text()
    _assert_redacted(log, secrets)
    assert "[redacted]" not in server.log_path.read_text()  # not on stdout as well
    assert len([line for line in lines if "|/dl/lnk_[redacted]|" in line]) == 3  # GET, HEAD, encoded GET
    fields = [line.split("|") for line in log.splitlines()]
    referred = next(line for line in fields if line[:2] == ["GET", "/dl/lnk_[redacted]"] and line[6] != "-")
    method, path, query, request_line, raw_uri, path_info, referer, status, *credentials = referred
    assert (method, path, query, status, credentials) == ("GET", "/dl/lnk_[redacted]", "", "200", ["-"] * 3)
    assert request_line == '"GET /dl/lnk_[redacted] HTTP/1.1"'
    assert raw_uri == path_info == "/dl/lnk_[redacted]"
    assert referer.endswith("/dl/lnk_[redacted]")
    basic = next(line for line in fields if line[1] == "/cache/gradle/k1")
    assert basic[-3:] == ["-", "[redacted]", "[redacted]"]  # no user name; Authorization from neither place


def test_the_access_log_can_be_switched_off(tmp_path_factory):
    with _serve(tmp_path_factory, "log-off", ACCESS_LOG="off") as server:
        _capabilities(server)
        requests.get(f"{server.url}/health")
        time.sleep(0.5)

    log = server.log_path.read_text()
    assert "HTTP/1.1" not in log and "[redacted]" not in log
    assert "Booting worker" in log or "Listening at" in log  # the error log still writes
