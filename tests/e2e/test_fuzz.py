"""Fuzzing: schemathesis runs app/openapi.json against a live Hoard (gunicorn,
PostgreSQL), a bounded, deterministic number of examples per operation.

Every response must be documented (status, content type, headers, body
schema), never a 5xx, and every error must be JSON in its API's shape.
Generated ids would only ever meet 404s, so half of the path parameters are
swapped for real ones made before the run (artifacts live, pending and
deleted, a link, signed URLs, a cache entry, a session), the /v8 team
parameters often name the key's own team, and listings get `metadata.<key>`
filters, which OpenAPI cannot describe as parameters.

Stateless on purpose: a stateful run (the document's links) replays
differently against a server whose state moved on, which Hypothesis
rejects as flaky.
"""

import base64
import hashlib
import json
from importlib import resources
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.live_server import HoardServer

MAX_EXAMPLES = 40
SEED = 20260528
UNLIMITED = "1000000000 per second"
DOCUMENT = json.loads(resources.files("app").joinpath("openapi.json").read_text())

# A Bazel CAS key whose body (b"tool") the `known` fixture stores.
CAS_KEY = hashlib.sha256(b"tool").hexdigest()
# Real values for path parameters, filled in by the `known` fixture before
# any example is drawn.
KNOWN: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def fuzz_server(new_postgres_database, tmp_path_factory):
    env = {
        # 429s would only hide what the fuzzer is looking for.
        "RATE_LIMIT_BURST": 1_000_000_000,
        "RATE_LIMIT_SUSTAINED": 1_000_000_000,
        "RATE_LIMIT_ANONYMOUS": UNLIMITED,
        "RATE_LIMIT_PUBLIC": UNLIMITED,
    }
    with HoardServer(
        var_dir=tmp_path_factory.mktemp("fuzz"),
        database_url=new_postgres_database(),
        workers=1,
        threads=4,
        env_overrides=env,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_auth(fuzz_server):
    return {"Authorization": f"Bearer {fuzz_server.create_tenant('fuzz').key}"}


@pytest.fixture(scope="module")
def known(fuzz_server, fuzz_auth):
    """Real artifacts, links, tokens, a cache entry and a session, made through the API."""
    url, auth = fuzz_server.url, fuzz_auth

    def call(method: str, path: str, headers: dict | None = None, **kwargs) -> dict:
        response = requests.request(
            method, url + path, headers={**auth, **(headers or {})}, timeout=10, **kwargs
        )
        assert response.status_code in (200, 201, 202), response.text
        return response.json()

    def upload(**fields) -> str:
        body = {"filename": "fuzz.txt", "content": base64.b64encode(b"fuzz").decode(), **fields}
        return call("POST", "/v1/artifacts", json=body)["artifact_id"]

    active = [upload(session_id="fuzz-session", metadata={"branch": "main"}), upload(), upload(ttl="never")]
    # DELETE gets artifacts of its own, so the others stay live for the rest.
    doomed = [upload(), upload()]
    deleted = upload()
    call("DELETE", f"/v1/artifacts/{deleted}")
    pending = call("POST", "/v1/artifacts/upload-url", json={"filename": "big.bin", "size_bytes": 4})
    link = call("POST", f"/v1/artifacts/{active[0]}/links", json={})
    download = call("GET", f"/v1/artifacts/{active[1]}/download-url")
    call("PUT", "/v8/artifacts/0123456789abcdef", data=b"cache", headers={"x-artifact-duration": "7"})
    for path in ("/v1/cache/0123456789abcdef", "/cache/gradle/0123abcd", f"/cache/bazel/cas/{CAS_KEY}"):
        response = requests.put(url + path, data=b"tool", headers=auth, timeout=10)
        assert response.status_code == 200, response.text
    whoami = call("GET", "/v1/whoami")
    KNOWN.update(
        artifact_id=[*active, deleted, pending["artifact_id"]],
        doomed_artifact_id=[*doomed, deleted],
        link_id=[link["link_id"]],
        token=[_last_segment(download["download_url"]), _last_segment(pending["upload_url"])],
        hash=["0123456789abcdef"],
        session_id=["fuzz-session"],
        team=[whoami["tenant_slug"], whoami["tenant_id"]],
        tool=["gradle", "bazel"],
        key=["0123abcd", f"cas/{CAS_KEY}"],
    )
    return KNOWN


def _last_segment(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


# The package's own document, loaded at collection: the server starts later,
# in a fixture (test_the_server_serves_this_document ties the two together).
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(request_timeout=10)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
schema.config.seed = SEED


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half of the time, a real value for each parameter that has some."""
    if not path_parameters:
        return st.just(path_parameters)
    prefix = "doomed_" if context.operation.method.upper() == "DELETE" else ""
    options = {}
    for name, value in path_parameters.items():
        real = KNOWN.get(prefix + name)
        options[name] = st.one_of(st.just(value), st.sampled_from(real)) if real else st.just(value)
    return st.fixed_dictionaries(options)


@schema.hook
def flatmap_query(context, query):
    if not KNOWN:  # examples drawn at collection, before the server is up
        return st.just(query)
    query = dict(query or {})
    if context.operation.path.startswith("/v8/"):
        # Generated team names are all 403s; name the key's own team as often.
        others = {k: v for k, v in query.items() if k not in ("teamId", "slug")}
        return st.one_of(
            st.just(query),
            st.just(others),
            st.sampled_from(KNOWN["team"]).map(lambda team: {**others, "slug": team}),
            st.sampled_from(KNOWN["team"]).map(lambda team: {**others, "teamId": team}),
        )
    if context.operation.path == "/v1/artifacts" and context.operation.method.upper() == "GET":
        keys = st.one_of(st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9_-]{0,63}\Z"), st.text(max_size=8))
        filters = st.dictionaries(keys, st.one_of(st.just("main"), st.text(max_size=12)), max_size=3)
        return filters.map(lambda found: {**query, **{f"metadata.{k}": v for k, v in found.items()}})
    return st.just(query)


def error_shape(ctx, response, case):
    """Every 4xx/5xx is in its API's shape: /v8 and /cache flat JSON with the
    nested copy, Nx's /v1/cache plain text, else the /v1 envelope."""
    if response.status_code < 400:
        return None
    if case.method.upper() == "HEAD":
        assert response.content == b"", "a HEAD error has a body"
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    path = urlsplit(response.request.url).path
    if path.startswith("/v1/cache/"):
        assert content_type == "text/plain", f"an Nx error is {content_type!r}"
        return None
    assert content_type.startswith("application/json"), (
        f"error is {content_type!r}: {response.content[:200]!r}"
    )
    body = json.loads(response.content)
    if path.startswith(("/v8/", "/cache/")):
        assert isinstance(body.get("code"), str) and isinstance(body.get("message"), str), body
        assert body["error"] == {"code": body["code"], "message": body["message"]}, body
    else:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
        assert error["status"] == response.status_code, body
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_shape,
]


def test_the_server_serves_this_document(fuzz_server):
    assert requests.get(f"{fuzz_server.url}/openapi.json", timeout=10).json() == DOCUMENT


@schema.parametrize()
def test_fuzz(case, fuzz_server, fuzz_auth, known):
    case.call_and_validate(base_url=fuzz_server.url, headers=fuzz_auth, checks=CHECKS)
