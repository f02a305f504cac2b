"""Keep-alive connections idle between requests, so that a drain can end them at once.

gunicorn waits for every open connection before a worker exits; one idle on keep-alive when
SIGTERM came had its keep-alive timer started before the drain set keepalive to 0, and held
the deploy for the whole graceful_timeout (over 20 s, tested). `end_idle` ends them; the
gunicorn config calls it when it drains. `end_connection` is the one way the kit ends a
connection early (a failed body, a frozen reader, a drain).
"""

from __future__ import annotations

import _socket
import socket
import weakref
from collections.abc import Callable, Iterable

from werkzeug.wsgi import ClosingIterator


def end_connection(sock: socket.socket) -> None:
    """The kernel's shutdown: the server's pending read sees end-of-file and closes quietly
    (gevent's own shutdown() would cancel it with an error gunicorn logs)."""
    try:
        raw = _socket.socket(fileno=sock.fileno())
    except OSError:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        raw.detach()


class IdleConnections:
    """WSGI middleware: a connection is busy from a request's start until its response
    closes, then idle until the next request."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self._idle: weakref.WeakSet = weakref.WeakSet()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return self.app(environ, start_response)
        self._idle.discard(sock)
        return ClosingIterator(self.app(environ, start_response), lambda: self._idle.add(sock))

    def end_idle(self) -> int:
        """End every idle connection now (its pending read sees end-of-file); how many."""
        idle = list(self._idle)
        for sock in idle:
            end_connection(sock)
        return len(idle)
