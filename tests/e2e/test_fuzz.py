"""Fuzzing: schemathesis runs app/openapi.json against a live Hoard (gunicorn,
PostgreSQL), a bounded and deterministic number of examples per operation.

Every response must be documented (status, content type, headers, body
schema), never a 5xx, and every error must be JSON in its API's shape.
"""

import json
from importlib import resources

import pytest
from hypothesis import HealthCheck, settings
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.live_server import HoardServer

MAX_EXAMPLES = 30
SEED = 20260528
WORKFLOWS = 30
STEPS = 6
UNLIMITED = "1000000 per second"


@pytest.fixture(scope="module")
def fuzz_server(new_postgres_database, tmp_path_factory):
    env = {
        # 429s would only hide what the fuzzer is looking for.
        "RATE_LIMIT_BURST": 1_000_000_000,
        "RATE_LIMIT_SUSTAINED": 1_000_000_000,
        "RATE_LIMIT_ANONYMOUS": UNLIMITED,
        "RATE_LIMIT_PUBLIC": UNLIMITED,
        # Small bodies are enough to find parsing faults; keep the run fast.
        "CACHE_MAX_ARTIFACT_BYTES": 64 * 1024,
    }
    with HoardServer(
        var_dir=tmp_path_factory.mktemp("fuzz"),
        database_url=new_postgres_database(),
        workers=2,
        threads=4,
        env_overrides=env,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def fuzz_auth(fuzz_server):
    tenant = fuzz_server.create_tenant("fuzz")
    return {"Authorization": f"Bearer {tenant.key}"}


def error_shape(ctx, response, case):
    """Every 4xx/5xx is JSON in its API's shape: /v8 flat with the nested copy, else the /v1 envelope."""
    if response.status_code < 400:
        return None
    if case.method.upper() == "HEAD":
        assert response.content == b"", "a HEAD error has a body"
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), f"error is {content_type!r}: {response.content[:200]!r}"
    body = json.loads(response.content)
    if case.formatted_path.startswith("/v8/"):
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

# The package's own document, loaded at collection (the server starts later,
# in a fixture; the test checks below that it serves this same document).
schema = schemathesis.openapi.from_dict(
    json.loads(resources.files("app").joinpath("openapi.json").read_text())
)
schema.config.update(request_timeout=10)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
schema.config.seed = SEED


@schema.parametrize()
def test_fuzz(case, fuzz_server, fuzz_auth):
    case.call_and_validate(base_url=fuzz_server.url, headers=fuzz_auth, checks=CHECKS)


def test_fuzz_workflows(fuzz_server, fuzz_auth):
    """Operations chained along the document's links: an upload, then its
    artifact read, linked, extended, completed, deleted; a link downloaded."""

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": fuzz_server.url, "headers": fuzz_auth}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Workflow.run(
        settings=settings(
            max_examples=WORKFLOWS,
            stateful_step_count=STEPS,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
