"""WSGI middleware: a request id on every response and one log line per request.

It wraps the response iterable, so a stream is logged when it ends (with the bytes that
actually went out), and errors Flask never saw still get an id.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator

from ..streaming.resume import new_request_id

HEADER = "X-Request-ID"
ENVIRON_KEY = "dtesn.request_id"
CLIENT_CHOSE_KEY = "dtesn.request_id_from_client"
_VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")

log = logging.getLogger("dtesn.access")


def stream_id(environ: dict) -> str:
    """The id a stream's events (and so its resumes) carry: always the server's own random one.
    A client's X-Request-ID names its log lines only: reused by another client, it would
    otherwise let that client's stream take over (or break) the first one's resume."""
    return new_request_id() if environ.get(CLIENT_CHOSE_KEY) else environ[ENVIRON_KEY]


def assign_request_id(environ: dict) -> str:
    """The request's id (the client's X-Request-ID when valid, else a new one), once per request."""
    if ENVIRON_KEY not in environ:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        from_client = bool(_VALID_ID.fullmatch(incoming))
        environ[ENVIRON_KEY] = incoming if from_client else new_request_id()
        environ[CLIENT_CHOSE_KEY] = from_client
    return environ[ENVIRON_KEY]


def configure_access_log() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class RequestLog:
    def __init__(self, app: Callable, on_finish: Callable[[int, int], None] | None = None) -> None:
        self.app = app
        self.on_finish = on_finish

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request_id = assign_request_id(environ)
        record = _Record(environ, request_id)

        def start(status: str, headers: list, exc_info=None):
            record.status = int(status.split(" ", 1)[0])
            headers = [(k, v) for k, v in headers if k.lower() != HEADER.lower()]
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        return _Logged(self.app(environ, start), record, self.on_finish)


class _Record:
    def __init__(self, environ: dict, request_id: str) -> None:
        self.request_id = request_id
        self.method = environ.get("REQUEST_METHOD", "")
        self.path = environ.get("PATH_INFO", "")
        self.started = time.perf_counter()
        self.status = 0
        self.bytes = 0


class _Logged:
    def __init__(self, body: Iterable[bytes], record: _Record, on_finish) -> None:
        self._body = body
        self._record = record
        self._on_finish = on_finish

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._body:
            self._record.bytes += len(piece)
            yield piece

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            r = self._record
            ms = (time.perf_counter() - r.started) * 1000
            log.info(
                "request_id=%s method=%s path=%s status=%d bytes=%d duration_ms=%.1f",
                r.request_id, r.method, r.path, r.status, r.bytes, ms,
            )
            if self._on_finish is not None:
                self._on_finish(r.status, r.bytes)
