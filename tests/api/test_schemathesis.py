"""Property-based API testing: schemathesis generates requests from our OpenAPI schema (a
bounded number per route, authenticated) and sends them to a real API process; no response may
be a 5xx or break the schema."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from tests.services import Service, running_service

EXAMPLES_PER_ROUTE = 25
# No 5xx; every status code, content type, header and body as documented; authentication never
# ignored. Not included: "every schema-valid request is accepted" (a spec's cross-field rules,
# such as fold < folds, are beyond what JSON Schema can say, so such requests rightly get a 422)
# and "every schema-invalid request is refused" (pydantic's lax mode takes `false` for 0 and
# "3" for 3 in a spec, on purpose: YAML written by people).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]

# The schema needs no database; the cases go to the server started below.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@pytest.fixture(scope="module")
def server() -> Iterator[Service]:
    env = {"TRAINLAB_SUBMIT_RATE_PER_MINUTE": "100000"}
    with running_service(env, Path(tempfile.mkdtemp(prefix="trainlab-contract-")), workers=0) as service:
        yield service


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_contract(case: schemathesis.Case, server: Service) -> None:
    case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, checks=CHECKS)
