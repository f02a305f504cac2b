"""Keep-alive connections between requests, known to the drain (see streaming/shutdown.py)."""

from __future__ import annotations

from typing import Callable, Iterable

from werkzeug.wsgi import ClosingIterator

from ..streaming import shutdown


class IdleConnections:
    """WSGI middleware: a connection is busy from a request's start until its response
    closes, then idle until the next request."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return self.app(environ, start_response)
        shutdown.connection_busy(sock)
        return ClosingIterator(self.app(environ, start_response), lambda: shutdown.connection_idle(sock))
