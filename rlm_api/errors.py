"""JSON errors for the API: `{"error": {"code", "message", "details"?}}`, never an HTML page.

Every failure a client can cause has a stable `code`; anything else is a logged 500 whose body
says nothing about the server's internals.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger("rlm.api")

#: Werkzeug's errors under `/api`, by status: our stable code for each.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class APIError(Exception):
    """An error the client can act on; `code` is a stable machine-readable name."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def not_found(kind: str, ident: str) -> APIError:
    return APIError(404, "not_found", f"{kind} {ident} not found")


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(exc: APIError) -> Response:
    response = jsonify(error_body(exc.code, exc.message, exc.details))
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _wants_json() -> bool:
    return request.path == "/api" or request.path.startswith(("/api/", "/v1/"))


def _too_large_message() -> str:
    settings = current_app.config["RLM_SETTINGS"]
    body_limit = current_app.config.get("MAX_CONTENT_LENGTH")
    message = (
        f"the request body is larger than this server accepts ({body_limit:,} bytes); "
        f"contexts may have at most {settings.max_context_size:,} characters (MAX_CONTEXT_SIZE)"
    )
    if request.mimetype == "multipart/form-data":
        message += "; send a large context as a file part, not a form field"
    return message


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def _api_error(exc: APIError):
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not _wants_json():
            return exc
        status = exc.code or 500
        if isinstance(exc, RequestEntityTooLarge):
            return error_response(APIError(413, "payload_too_large", _too_large_message()))
        code = _HTTP_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
        response = error_response(APIError(status, code, exc.description or exc.name))
        if status == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if not _wants_json():
            raise exc
        return jsonify(error_body("internal_error", "an unexpected error occurred")), 500
