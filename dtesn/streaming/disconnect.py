"""Notice a client that leaves, without waiting for a write to fail.

gunicorn hands the client socket to the app (`environ["gunicorn.socket"]`). Once the request
body has been read, the only thing a well-behaved SSE client can still send is its close,
so the socket turning readable with nothing to read (EOF) means the client is gone.
"""

from __future__ import annotations

import socket
from typing import Callable

import gevent


def watch_for_close(sock: socket.socket, on_close: Callable[[], None]) -> gevent.Greenlet:
    def wait() -> None:
        try:
            data = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if not data:
            on_close()
        # Data means a pipelined request: not a close, and not ours to read. Stop watching.

    return gevent.spawn(wait)
