"""Frozen readers: a client that accepts no byte for `timeout_s` loses its connection.

Before, a client that stopped reading kept its stream (and its slot) for good: five of them
made every new stream a 503. The guard arms a timer on the event loop while the server
writes each piece of a stream and disarms it when the write returns; if it fires, the
socket is shut down, the blocked write fails (gunicorn logs a broken pipe at debug level),
and the stream is closed like any departed client's: computation stopped, slot freed, and
its checkpoints kept, so the client can resume.
"""

from __future__ import annotations

import _socket
import socket
from typing import Iterator

import gevent


def guard_sends(pieces: Iterator[bytes], sock: socket.socket | None, timeout_s: float) -> Iterator[bytes]:
    if sock is None or timeout_s <= 0:
        yield from pieces
        return
    timer = gevent.get_hub().loop.timer(timeout_s)
    try:
        for piece in pieces:
            timer.start(_shut, sock)  # armed while the server writes `piece`
            yield piece
            timer.stop()
    finally:
        timer.close()
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def _shut(sock: socket.socket) -> None:
    """Shut the connection down under gevent's feet: gevent's own shutdown() cancels the
    blocked write with EBADF, which gunicorn logs as a socket error with a traceback; the
    kernel's makes that write fail with EPIPE, which gunicorn ignores quietly."""
    try:
        raw = _socket.socket(fileno=sock.fileno())
    except OSError:
        return
    try:
        raw.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        raw.detach()  # the fd stays the server's to close
