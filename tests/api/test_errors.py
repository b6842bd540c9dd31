"""Bad input gets a JSON error with the right status and code, never a 500 or an HTML page."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import MAX_CONTEXT


def error_of(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code
    return error


def test_malformed_json_is_400(client):
    response = client.post("/api/execute", data='{"user_query": ', content_type="application/json")
    error_of(response, 400, "malformed_json")


@pytest.mark.parametrize("body", ["NaN", '{"user_query": "q", "context": "c", "wait": Infinity}', "1e999"])
def test_json_that_python_would_accept_but_is_not_json_is_400(client, body):
    error_of(client.post("/api/execute", data=body, content_type="application/json"), 400, "malformed_json")


def test_a_missing_field_is_named(client):
    error = error_of(client.post("/api/execute", json={"context": "text"}), 400, "missing_field")
    assert "user_query" in error["message"]
    error = error_of(client.post("/api/execute", json={"user_query": "q"}), 400, "missing_field")
    assert "context" in error["message"]
    error = error_of(client.post("/api/sessions", json={}), 400, "missing_field")
    assert "name" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"options": {"max_iterations": -1}}, "options.max_iterations"),
        ({"options": {"max_cost_usd": -0.5}}, "options.max_cost_usd"),
        ({"options": {"chunk_size": 3}}, "options.chunk_size"),
        ({"options": {"no_such_guard": 1}}, "options.no_such_guard"),
        ({"model": "definitely-not-a-model"}, "model"),
        ({"sub_model": "nonsense/xyz"}, "sub_model"),
        ({"wait": -1}, "wait"),
        ({"wait": 3600}, "wait"),
        ({"session_id": "../etc"}, "session_id"),
        ({"user_query": "nul \x00 byte"}, "user_query"),
        ({"context": "lone \ud800 surrogate"}, "context"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_values_are_422_naming_the_field(client, body, field):
    payload = {"user_query": "q", "context": "text", **body}
    raw = json.dumps(payload)  # keeps lone surrogates as \ud800 escapes, as a client could send
    error = error_of(
        client.post("/api/execute", data=raw, content_type="application/json"), 422, "invalid_field"
    )
    assert field in [d["field"] for d in error["details"]], error


def test_a_json_body_that_is_not_an_object_is_422(client):
    error_of(client.post("/api/execute", json=["user_query"]), 422, "invalid_field")


def test_other_media_types_are_415(client):
    error_of(
        client.post("/api/execute", data="<q/>", content_type="application/xml"),
        415,
        "unsupported_media_type",
    )
    error_of(client.post("/api/sessions", data="x"), 415, "unsupported_media_type")


def test_a_context_over_the_limit_is_413_with_the_limit(client):
    body = {"user_query": "q", "context": "x" * (MAX_CONTEXT + 1)}
    error = error_of(client.post("/api/execute", json=body), 413, "context_too_large")
    assert f"{MAX_CONTEXT:,}" in error["message"]
    plain = client.post("/api/sessions?name=big", data="y" * (MAX_CONTEXT + 1), content_type="text/plain")
    error_of(plain, 413, "context_too_large")


def test_a_body_over_max_content_length_is_413_before_it_is_read(client, open_app):
    limit = open_app.config["MAX_CONTENT_LENGTH"]
    body = b'{"user_query": "q", "context": "' + b"z" * limit + b'"}'
    error = error_of(
        client.post("/api/execute", data=body, content_type="application/json"), 413, "payload_too_large"
    )
    assert f"{MAX_CONTEXT:,}" in error["message"] and f"{limit:,}" in error["message"]


def test_unknown_executions_are_404(client):
    for suffix in ("", "/trace", "/events"):
        error_of(client.get(f"/api/executions/{'f' * 32}{suffix}"), 404, "not_found")
    error_of(client.post(f"/api/executions/{'f' * 32}/cancel"), 404, "not_found")


def test_bad_list_parameters_are_422(client):
    error_of(client.get("/api/executions?limit=-5"), 422, "invalid_field")
    error_of(client.get("/api/executions?status=sleeping"), 422, "invalid_field")
    error_of(client.get("/api/executions?cursor=bm90LWpzb24"), 422, "invalid_field")
    error_of(client.get("/api/sessions?limit=lots"), 422, "invalid_field")


def test_unknown_routes_and_methods_under_api_are_json(client):
    error_of(client.get("/api/no-such-thing"), 404, "not_found")
    response = client.put("/api/execute", json={})
    error_of(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
