"""Every error is JSON `{"error": ..., "field": ...}`; no stack trace ever reaches a client."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..streaming.source import BodyError, BodyTimeout
from .body import after_response

log = logging.getLogger("dtesn.web")


class APIError(Exception):
    """A request the API refuses, answered before any work starts."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(status: int, message: str, field: str | None = None, headers: dict | None = None, **extra):
    response = jsonify({"error": message, "field": field, **extra})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(APIError)
    def api_error(exc: APIError):
        return error_response(exc.status, exc.message, exc.field, exc.headers)

    @app.errorhandler(BodyError)
    def body_error(exc: BodyError):
        return error_response(408 if isinstance(exc, BodyTimeout) else 400, str(exc), None)

    @app.after_request
    def settle_the_connection(response):
        environ = request.environ
        response.call_on_close(lambda: after_response(environ))
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.code or 500, exc.description or exc.name, None, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        request_id = request.environ.get("dtesn.request_id")
        log.exception("unhandled error in request %s", request_id)
        return error_response(500, "internal server error", None, request_id=request_id)
