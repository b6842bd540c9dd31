"""Request bodies and query strings to validated schemas, with the API's error codes.

A body may be JSON, `multipart/form-data` (the context as one or more file parts) or `text/plain`
(the body is the context; the other fields come from the query string). All three end in the same
pydantic model. Werkzeug bounds every body by `MAX_CONTENT_LENGTH` before it is read (413
`payload_too_large`). Uploaded files go through the input reader (`rlm_worker.documents`): PDF,
Office, HTML and text in any encoding become text, several files or an archive a list of documents;
the files it skipped inside an archive are kept in `flask.g` for the handler to record.
"""

from __future__ import annotations

import json
import math
from typing import Any, TypeVar

from flask import current_app, g, request
from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import FileStorage

from rlm_api.errors import APIError
from rlm_shared.contexts import context_size
from rlm_shared.storable import unstorable_field
from rlm_worker.documents import InputError, InputLimits, InputTooLarge, read_uploads
from rlm_worker.documents.text import decode_text

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Fields sent as JSON text inside a form field or a query parameter.
JSON_FIELDS = ("options", "memory")
JSON_TYPES = ("application/json",)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(data: bytes | str, what: str = "the request body") -> Any:
    """Strict JSON: no NaN/Infinity, no numbers that overflow; any failure is a 400."""
    try:
        return json.loads(data, parse_constant=_no_constants, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        message = f"{what} is not valid JSON"
        if isinstance(exc, json.JSONDecodeError):
            message += f": {exc.msg} at line {exc.lineno} column {exc.colno}"
        elif isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError):
            message += f": {exc}"
        raise APIError(400, "malformed_json", message) from None


def _is_json(mimetype: str) -> bool:
    return mimetype in JSON_TYPES or mimetype.endswith("+json")


def _decode_text(data: bytes, field: str) -> str:
    text = decode_text(data)
    if text is None:
        raise APIError(422, "invalid_field", f"invalid {field}: not text", [{"field": field}])
    return text


def _context_from_files(uploads: list[FileStorage]) -> Any:
    """One part sent as `application/json` is parsed to a list or object; any other upload, or
    several, is converted by the input reader (422 `unreadable_input` naming the file, 413
    `input_too_large` past the input limits)."""
    if len(uploads) == 1 and _is_json(uploads[0].mimetype or ""):
        return load_json(uploads[0].stream.read(), "the uploaded context")
    limits = InputLimits.from_settings(current_app.config["RLM_SETTINGS"])
    try:
        converted = read_uploads(((u.filename or "upload", u.stream.read()) for u in uploads), limits)
    except InputTooLarge as exc:
        raise APIError(413, "input_too_large", str(exc), [{"field": "context"}]) from None
    except InputError as exc:
        raise APIError(422, "unreadable_input", str(exc), [{"field": "context"}]) from None
    g.input_skipped = converted.skipped_dicts
    return converted.context


def input_skipped() -> list[dict[str, str]] | None:
    """The files of this request's uploads that were not read, and why; None when nothing was uploaded."""
    return g.get("input_skipped")


def _form_fields() -> dict[str, Any]:
    try:
        form, files = request.form, request.files
    except ValueError:
        raise APIError(400, "malformed_body", "the multipart body could not be parsed") from None
    data: dict[str, Any] = {key: form.get(key) for key in form}
    uploads = files.getlist("context")
    if uploads:
        data["context"] = _context_from_files(uploads)
    return data


def _decode_json_fields(data: dict[str, Any]) -> dict[str, Any]:
    for key in JSON_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = load_json(data[key], f"the field {key}")
    return data


def request_data() -> dict[str, Any]:
    """The body as a dict of fields, whatever its media type."""
    mimetype = request.mimetype or ""
    if _is_json(mimetype):
        body = load_json(request.get_data(cache=False))
        if not isinstance(body, dict):
            raise APIError(422, "invalid_field", "the JSON body must be an object", [{"field": "(body)"}])
        return body
    if mimetype == "multipart/form-data":
        return _decode_json_fields(_form_fields())
    if mimetype == "text/plain":
        data: dict[str, Any] = {key: request.args.get(key) for key in request.args}
        data["context"] = _decode_text(request.get_data(cache=False), "context")
        return _decode_json_fields(data)
    raise APIError(
        415,
        "unsupported_media_type",
        "send application/json, multipart/form-data (context as a file part) or text/plain (the context)",
    )


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(body)"


def refuse_unstorable(data: Any) -> None:
    """422 `invalid_field` naming the field that holds a NUL or a lone surrogate (Postgres stores
    neither; see `rlm_shared.storable`)."""
    found = unstorable_field(data)
    if found:
        field, message = found
        raise APIError(422, "invalid_field", message, [{"field": field, "message": message}])


def validate(schema: type[ModelT], data: Any) -> ModelT:
    """400 `missing_field` naming every missing field; 422 `invalid_field` for the rest (and
    for text that cannot be stored)."""
    refuse_unstorable(data)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        details = [
            {"field": _field(err["loc"]), "message": err["msg"].removeprefix("Value error, ")}
            for err in errors
        ]
        missing = [d["field"] for d, err in zip(details, errors, strict=True) if err["type"] == "missing"]
        if missing:
            raise APIError(400, "missing_field", f"missing field: {', '.join(missing)}", details) from None
        first = details[0]
        raise APIError(
            422, "invalid_field", f"invalid {first['field']}: {first['message']}", details
        ) from None


def parse_body(schema: type[ModelT]) -> ModelT:
    return validate(schema, request_data())


def parse_query(schema: type[ModelT]) -> ModelT:
    return validate(schema, {key: request.args.get(key) for key in request.args})


def check_context_size(value: Any) -> None:
    """413 with the limit in the message: the body fit `MAX_CONTENT_LENGTH`, the context does not."""
    limit = current_app.config["RLM_SETTINGS"].max_context_size
    size = context_size(value)
    if size > limit:
        raise APIError(
            413,
            "context_too_large",
            f"the context has {size:,} characters; MAX_CONTEXT_SIZE is {limit:,}",
            {"size": size, "limit": limit},
        )
