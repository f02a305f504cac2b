"""Frozen readers: a client that accepts no byte for `timeout_s` loses its connection.

Before, a client that stopped reading kept its stream (and its slot) for good: five of them
made every new stream a 503. The guard arms a timer on the event loop while the server
writes each piece of a stream and disarms it when the write returns; if it fires, the
socket is shut down by the kernel (`shutdown.end_connection`; gevent's own shutdown would
cancel the blocked write with an error gunicorn logs with a traceback), the write fails with
a broken pipe (gunicorn logs that at debug level), and the stream is closed like any departed client's: computation stopped, slot freed, and
its checkpoints kept, so the client can resume.
"""

from __future__ import annotations

import socket
from collections.abc import Generator, Iterator

import gevent

from ..runtime.connections import end_connection


def guard_sends(pieces: Iterator[bytes], sock: socket.socket | None, timeout_s: float) -> Generator[bytes, None, None]:
    if sock is None or timeout_s <= 0:
        yield from pieces
        return
    timer = gevent.get_hub().loop.timer(timeout_s)
    try:
        for piece in pieces:
            timer.start(end_connection, sock)  # armed while the server writes `piece`
            yield piece
            timer.stop()
    finally:
        timer.close()
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
