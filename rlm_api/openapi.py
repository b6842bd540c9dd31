"""The OpenAPI 3.1 document, built from the same pydantic models the views validate with.

A small builder rather than a framework plugin: the views stay plain Flask, the operation table
below is the one place that says which model a route reads and returns, and pydantic's own
`models_json_schema` writes every schema (OpenAPI 3.1 is JSON Schema 2020-12, as pydantic emits).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from rlm_api import schemas as s
from rlm_api.evals import schemas as evals

REF = "#/components/schemas/{model}"
ERRORS = {
    400: "Malformed JSON (`malformed_json`) or a missing field (`missing_field`, naming it).",
    401: "No valid `Authorization: Bearer <token>` while `API_TOKENS` is set (`unauthorized`).",
    404: "No such id, or it belongs to another token (`not_found`).",
    409: "The execution already finished (`conflict`).",
    413: "The context exceeds `MAX_CONTEXT_SIZE` (`context_too_large`), the body is too big (`payload_too_large`), "
    "or an uploaded archive passes the input limits, e.g. a zip bomb (`input_too_large`).",
    415: "A body that is not JSON, multipart/form-data or text/plain (`unsupported_media_type`).",
    422: "A field has an invalid value, e.g. a negative limit, a blank question or an empty context, or a model "
    "litellm cannot route (`invalid_field`); an uploaded file cannot be read, named in the message "
    "(`unreadable_input`); an eval whose tasks cannot be made, named in the message (`invalid_eval`).",
    429: "Over the token's request rate (`rate_limited`) or active-execution quota (`quota_exceeded`); see Retry-After.",
    503: "The broker refused the execution (`broker_unavailable`).",
}
PROTECTED = (401, 429)


@dataclass
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    responses: dict[int, tuple[str, type[BaseModel] | str | None]]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    public: bool = False
    tags: list[str] = field(default_factory=list)
    headers: tuple[dict[str, Any], ...] = ()


EXECUTION_PATH = "/api/executions/{execution_id}"
AGENT_ID_PARAMETER = {
    "name": "X-Agent-Id",
    "in": "header",
    "required": False,
    "description": "The calling agent's id, recorded as the execution's `agent_id` (at most 200 characters).",
    "schema": {"type": "string", "maxLength": 200},
}
SESSION_PATH = "/api/sessions/{session_id}"

EVAL_PATH = "/api/evals/{eval_id}"
EVAL_OPERATIONS = [
    Operation(
        "post",
        "/api/evals",
        "createEval",
        "Run a task suite under one or more configurations, beside the base model alone; every item is an "
        "ordinary execution (docs/eval.md). 202 at once; follow `links.self`.",
        {202: ("Accepted: the eval and its executions are queued.", evals.EvalOut)},
        (400, 415, 422, 503),
        body=evals.EvalRequest,
        tags=["evals"],
    ),
    Operation(
        "get",
        "/api/evals",
        "listEvals",
        "Eval runs, newest first (at most 100).",
        {200: ("Eval runs.", evals.EvalList)},
        tags=["evals"],
    ),
    Operation(
        "get",
        EVAL_PATH,
        "getEval",
        "An eval's status; its finished items are scored as it is read, and `report` is set once all have.",
        {200: ("The eval.", evals.EvalOut)},
        (404,),
        tags=["evals"],
    ),
    Operation(
        "get",
        EVAL_PATH + "/report.md",
        "getEvalMarkdown",
        "The eval's report as Markdown (while it runs: over the items scored so far).",
        {200: ("The report.", "text/markdown")},
        (404,),
        tags=["evals"],
    ),
    Operation(
        "get",
        EVAL_PATH + "/plot.svg",
        "getEvalPlotSvg",
        "Accuracy and cost per item against input size, one line per configuration (dashed: the base model).",
        {200: ("The plot.", "image/svg+xml")},
        (404,),
        tags=["evals"],
    ),
    Operation(
        "get",
        EVAL_PATH + "/plot.png",
        "getEvalPlotPng",
        "The same plot as PNG.",
        {200: ("The plot.", "image/png")},
        (404,),
        tags=["evals"],
    ),
]

OPERATIONS = [
    Operation(
        "post",
        "/api/sessions",
        "createSession",
        "Create a session: a named context whose memory and variables carry over between executions.",
        {201: ("The session.", s.SessionOut)},
        (400, 413, 415, 422),
        body=s.SessionCreate,
        tags=["sessions"],
    ),
    Operation(
        "get",
        "/api/sessions",
        "listSessions",
        "List sessions, newest first.",
        {200: ("One page of sessions.", s.SessionList)},
        (422,),
        query=s.SessionQuery,
        tags=["sessions"],
    ),
    Operation(
        "get",
        SESSION_PATH,
        "getSession",
        "Read a session.",
        {200: ("The session.", s.SessionOut)},
        (404,),
        tags=["sessions"],
    ),
    Operation(
        "delete",
        SESSION_PATH,
        "deleteSession",
        "Delete a session; its executions remain, with `session_id` null.",
        {204: ("Deleted.", None)},
        (404,),
        tags=["sessions"],
    ),
    Operation(
        "post",
        "/api/execute",
        "execute",
        "Start an execution. 202 at once with the execution record (its `status` as it stands: "
        "`queued` or already `running`); with `wait`, 200 and the result if it finished in time. "
        "The id is `id`, as everywhere; `execution_id` repeats it for older clients.",
        {
            200: ("It finished within `wait` seconds.", s.ExecutionSubmitted),
            202: ("Accepted and not finished yet; follow `links`.", s.ExecutionSubmitted),
        },
        (400, 404, 413, 415, 422, 503),
        body=s.ExecuteRequest,
        tags=["executions"],
        headers=(AGENT_ID_PARAMETER,),
    ),
    Operation(
        "get",
        "/api/executions",
        "listExecutions",
        "List executions, newest first, optionally by status and session.",
        {200: ("One page of executions.", s.ExecutionList)},
        (422,),
        query=s.ExecutionQuery,
        tags=["executions"],
    ),
    Operation(
        "get",
        EXECUTION_PATH,
        "getExecution",
        "Status, final answer, error and totals.",
        {200: ("The execution.", s.ExecutionOut)},
        (404,),
        tags=["executions"],
    ),
    Operation(
        "get",
        EXECUTION_PATH + "/trace",
        "getTrace",
        "The execution's tree of agents, model calls and code cells, in display order.",
        {200: ("The trace.", s.Trace)},
        (404,),
        tags=["executions"],
    ),
    Operation(
        "get",
        EXECUTION_PATH + "/events",
        "streamEvents",
        "Server-Sent Events while it runs: `status`, `node` (new or changed nodes, without texts), `end`.",
        {200: ("An event stream; ends with `event: end` (or `event: timeout`).", "text/event-stream")},
        (404,),
        tags=["executions"],
    ),
    Operation(
        "post",
        EXECUTION_PATH + "/cancel",
        "cancelExecution",
        "Cancel a queued or running execution and every child; status becomes `cancelled`.",
        {200: ("The cancelled execution.", s.ExecutionOut)},
        (404, 409),
        tags=["executions"],
    ),
    Operation(
        "get",
        "/api/stats",
        "getStats",
        "Totals over your executions, and tokens and cost per model.",
        {200: ("Usage.", s.Stats)},
        tags=["service"],
    ),
    Operation(
        "get",
        "/api/health",
        "getHealth",
        "Database, broker and live workers per queue. No token needed.",
        {200: ("Up (maybe degraded).", s.Health), 503: ("Database or broker unreachable.", s.Health)},
        public=True,
        tags=["service"],
    ),
    Operation(
        "get",
        "/api/openapi.json",
        "getOpenAPI",
        "This document. No token needed.",
        {200: ("The OpenAPI 3.1 document.", "application/json")},
        public=True,
        tags=["service"],
    ),
]

BODY_MODELS = [s.SessionCreate, s.ExecuteRequest, evals.EvalRequest]
RESPONSE_MODELS = [
    evals.EvalOut,
    evals.EvalList,
    s.ErrorResponse,
    s.SessionOut,
    s.SessionList,
    s.ExecutionSubmitted,
    s.ExecutionOut,
    s.ExecutionList,
    s.Trace,
    s.Stats,
    s.Health,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _components() -> dict[str, Any]:
    pairs = [(m, "validation") for m in BODY_MODELS] + [(m, "serialization") for m in RESPONSE_MODELS]
    _, top = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    return top.get("$defs", {})


def _multipart_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """The same fields as form fields: the context as a file part, JSON-valued fields as JSON text."""
    schema = copy.deepcopy(components[model.__name__])
    properties = schema["properties"]
    for name in list(properties):
        if name == "context":
            properties[name] = {
                "type": "string",
                "format": "binary",
                "contentMediaType": "application/octet-stream",
                "description": (
                    "The context file: PDF, DOCX, PPTX, XLSX, CSV, HTML, Markdown, JSON or text in any "
                    "common encoding, or a zip/tar archive (a list of documents). Repeat the part to send "
                    "several files (a list of documents). A single part sent as application/json is "
                    "parsed to a list or object."
                ),
            }
        elif name in ("options", "memory"):
            properties[name] = {"type": "string", "description": f"`{name}` as JSON text."}
    return {"type": "object", "properties": properties, "required": schema.get("required", [])}


def _request_body(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    if model not in (s.SessionCreate, s.ExecuteRequest):  # JSON only
        return {"required": True, "content": {"application/json": {"schema": _ref(model)}}}
    text_field = "name" if model is s.SessionCreate else "user_query"
    return {
        "required": True,
        "content": {
            "application/json": {"schema": _ref(model)},
            "multipart/form-data": {"schema": _multipart_schema(model, components)},
            "text/plain": {
                "schema": {
                    "type": "string",
                    "description": (
                        f"The body is the context; `{text_field}` and the other fields go in the query string."
                    ),
                }
            },
        },
    }


def _query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter cannot be null: drop the `null` branch pydantic writes for optional fields."""
    schema = {k: v for k, v in prop.items() if k not in ("description", "title", "default")}
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    return schema


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": prop.get("description", ""),
            "schema": _query_schema(prop),
        }
        for name, prop in schema["properties"].items()
    ]


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "A 32-hex id.",
        }
        for n in names
    ]


def _response(description: str, content: type[BaseModel] | str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if isinstance(content, str):
        schema = {"type": "string"} if content.startswith("text/") else {"type": "object"}
        out["content"] = {content: {"schema": schema}}
    elif content is not None:
        out["content"] = {"application/json": {"schema": _ref(content)}}
    return out


def _error_response(status: int) -> dict[str, Any]:
    response = _response(ERRORS[status], s.ErrorResponse)
    if status == 429:
        response["headers"] = {
            "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}
        }
    return response


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": op.tags}
    parameters = _path_parameters(op.path) + (_query_parameters(op.query) if op.query else [])
    parameters += list(op.headers)
    if parameters:
        out["parameters"] = parameters
    if op.body:
        out["requestBody"] = _request_body(op.body, components)
    responses = {str(code): _response(*spec) for code, spec in op.responses.items()}
    for status in sorted(set(op.errors) | (set() if op.public else set(PROTECTED))):
        responses[str(status)] = _error_response(status)
    out["responses"] = responses
    out["security"] = [] if op.public else [{"bearerAuth": []}, {}]
    return out


@functools.cache
def openapi_document() -> dict[str, Any]:
    components = _components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS + EVAL_OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RLM Engine API",
            "version": "1.0.0",
            "description": (
                "Submit questions over long contexts to Recursive Language Model executions, follow "
                'them, read their traces. Errors are `{"error": {"code", "message", "details"?}}`. '
                "When the server sets API_TOKENS, send `Authorization: Bearer <token>`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
