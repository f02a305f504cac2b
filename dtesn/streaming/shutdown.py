"""Draining: on a deploy's SIGTERM, every open stream ends with a recoverable error event
that says where to resume, instead of being cut when the worker exits.

gunicorn's worker turns SIGTERM into `worker.alive = False`; `watch` notices that from a
greenlet (no gevent calls inside a signal handler) and interrupts the streams it tracks.
"""

from __future__ import annotations

import _socket
import socket
import weakref
from typing import Callable, Protocol

import gevent

REASON = "the server is restarting; resume from resume_from"
POLL_S = 0.1


class Interruptible(Protocol):
    def interrupt(self, reason: str) -> None: ...


_open: "weakref.WeakSet[Interruptible]" = weakref.WeakSet()
_draining = False


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


def track(stream: Interruptible) -> None:
    _open.add(stream)
    if _draining:
        stream.interrupt(REASON)


def untrack(stream: Interruptible) -> None:
    _open.discard(stream)


def drain() -> int:
    """Interrupt every open stream (and any that opens later); how many there were."""
    global _draining
    _draining = True
    streams = list(_open)
    for stream in streams:
        stream.interrupt(REASON)
    return len(streams)


def watch(alive: Callable[[], bool], then: Callable[[], None] | None = None) -> gevent.Greenlet:
    """Drain once `alive()` turns false (e.g. `lambda: worker.alive` under gunicorn), then
    call `then` (before the drained streams write their last event)."""

    def loop() -> None:
        while alive():
            gevent.sleep(POLL_S)
        drain()
        if then is not None:
            then()

    return gevent.spawn(loop)
