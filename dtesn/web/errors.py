"""Every error is JSON `{"error": ..., "field": ...}`; no stack trace ever reaches a client.

`ERRORS` is the one table from the kit's exceptions to HTTP: the modules that raise them
(engine, storage, streaming) know nothing of HTTP, and no view translates them itself. An
`APIError` is for refusals whose message depends on where they happen (limits, fields).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import orjson
from flask import Response, request
from werkzeug.exceptions import HTTPException

from ..engine import ParameterError
from ..storage.checkpoints import ResumeMismatch
from ..storage.datasets import DatasetNotFound
from ..storage.errors import StoreFull, StoreUnavailable
from ..storage.source import BodyError, BodyTimeout
from ..streaming.resume import MalformedEventId

log = logging.getLogger("dtesn.web")
RETRY_STORE = {"Retry-After": "60"}


class APIError(Exception):
    """A request the API refuses, answered before any work starts."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


class Mapping(NamedTuple):
    status: int
    field: str | None = None  # None: the exception's own `field`, if it has one
    message: str = "{}"  # "{}" is the exception's own message
    headers: dict[str, str] | None = None


#: Most specific first: the first class an exception is an instance of answers.
ERRORS: dict[type[Exception], Mapping] = {
    ParameterError: Mapping(400),  # field from the exception
    MalformedEventId: Mapping(400, "last_event_id"),
    ResumeMismatch: Mapping(409, "last_event_id"),
    DatasetNotFound: Mapping(404, "dataset_id", "no such dataset (unknown, deleted or expired)"),
    StoreFull: Mapping(507, None, "the dataset store is full: delete datasets or try later", RETRY_STORE),
    StoreUnavailable: Mapping(503, None, "datasets cannot be stored right now: {}", RETRY_STORE),
    BodyTimeout: Mapping(408),
    BodyError: Mapping(400),
}


def json_response(payload: object, status: int = 200, headers: dict | None = None) -> Response:
    """JSON by orjson, whatever the host app's JSON settings (the kit's answers look the same
    in every app), ending in a newline as Flask's do (a shell prompt after `curl`)."""
    return Response(orjson.dumps(payload) + b"\n", status=status, headers=headers, mimetype="application/json")


def error_response(status: int, message: str, field: str | None = None, headers: dict | None = None,
                   **extra: object) -> Response:
    return json_response({"error": message, "field": field, **extra}, status, headers)


def answer(exc: Exception) -> Response | None:
    """The JSON answer for one of the kit's exceptions; None for any other."""
    if isinstance(exc, APIError):
        return error_response(exc.status, exc.message, exc.field, exc.headers)
    for kind, m in ERRORS.items():
        if isinstance(exc, kind):
            message = m.message.format(getattr(exc, "message", None) or str(exc))
            return error_response(m.status, message, m.field or getattr(exc, "field", None), m.headers)
    return None


def http_error(exc: HTTPException) -> Response:
    headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
    return error_response(exc.code or 500, exc.description or exc.name, None, headers)


def unexpected(exc: Exception) -> Response:
    request_id = request.environ.get("dtesn.request_id")
    log.exception("unhandled error in request %s", request_id)
    return error_response(500, "internal server error", None, request_id=request_id)


def handle(exc: Exception) -> Response:
    """Any exception raised under the kit's prefix, as JSON."""
    if isinstance(exc, HTTPException):
        return http_error(exc)
    return answer(exc) or unexpected(exc)

