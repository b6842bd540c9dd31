"""The OpenAPI document covers every route, and schemathesis finds no 5xx and no off-schema reply.

The fuzzed app is the real one over a private Postgres database; executions it submits are
enqueued to a Redis database nobody consumes. Bounded: 25 examples per operation.
"""

from __future__ import annotations

import re

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
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


def test_the_api_keeps_its_contract_under_fuzzing(open_app, clean):
    # Cases come from schemathesis's strategies and run under plain hypothesis rather than through its
    # pytest plugin, whose fixture-loaded schemas rename the test item through pytest internals
    # (`Function._nodeid`, gone in pytest 9.2).
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", open_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        try:
            fuzz(operation)
        except Exception as error:
            raise AssertionError(f"{operation.label}: {error}") from error


def fuzz(operation) -> None:
    """25 valid and invalid requests to one operation: no 5xx, and every reply matches the schema."""
    cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode])

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def check(case):
        case.call_and_validate(
            checks=[
                not_a_server_error,
                response_schema_conformance,
                status_code_conformance,
                content_type_conformance,
            ]
        )

    check()
