"""Draining: on a deploy's SIGTERM, every open stream ends with a recoverable error event
that says where to resume, instead of being cut when the worker exits.

gunicorn's worker turns SIGTERM into `worker.alive = False`; `watch` notices that from a
greenlet (no gevent calls inside a signal handler) and interrupts the streams it tracks.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Protocol

import gevent

REASON = "the server is restarting; resume from resume_from"
POLL_S = 0.1


class Interruptible(Protocol):
    def interrupt(self, reason: str) -> None: ...


class Drain:
    """The open streams of one runtime, and whether it is draining."""

    def __init__(self) -> None:
        self._open: weakref.WeakSet[Interruptible] = weakref.WeakSet()
        self.draining = False

    def track(self, stream: Interruptible) -> None:
        self._open.add(stream)
        if self.draining:
            stream.interrupt(REASON)

    def untrack(self, stream: Interruptible) -> None:
        self._open.discard(stream)

    def drain(self) -> int:
        """Interrupt every open stream (and any that opens later); how many there were."""
        self.draining = True
        streams = list(self._open)
        for stream in streams:
            stream.interrupt(REASON)
        return len(streams)

    def watch(self, alive: Callable[[], bool], then: Callable[[], None] | None = None) -> gevent.Greenlet:
        """Drain once `alive()` turns false (e.g. `lambda: worker.alive` under gunicorn), then
        call `then` (before the drained streams write their last event)."""

        def loop() -> None:
            while alive():
                gevent.sleep(POLL_S)
            self.drain()
            if then is not None:
                then()

        return gevent.spawn(loop)
