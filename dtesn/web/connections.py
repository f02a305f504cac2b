"""Keep-alive connections between requests, known to the drain (see streaming/shutdown.py)."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

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
        return _Closing(self.app(environ, start_response), sock)


class _Closing:
    def __init__(self, body: Iterable[bytes], sock) -> None:
        self._body = body
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            shutdown.connection_idle(self._sock)
