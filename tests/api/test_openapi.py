"""The OpenAPI document covers every route, and schemathesis finds no 5xx and no off-schema reply.

The fuzzed app is the real one over a private Postgres database; executions it submits are
enqueued to a Redis database nobody consumes. Bounded: 25 examples per operation.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)


def flask_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_is_documented(open_app):
    document = open_app.test_client().get("/api/openapi.json").get_json()
    routes = {
        (flask_path(rule.rule), method.lower())
        for rule in open_app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes == documented
    assert document["openapi"] == "3.1.0"
    execute = document["paths"]["/api/execute"]["post"]
    assert set(execute["requestBody"]["content"]) == {"application/json", "multipart/form-data", "text/plain"}
    assert (
        document["components"]["schemas"]["ExecutionOptions"]["properties"]["max_iterations"]["minimum"] == 1
    )


@pytest.fixture()
def api_schema(open_app, clean):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", open_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract_under_fuzzing(case):
    case.call_and_validate(
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
        ]
    )
