"""Writes a stream must never wait for: checkpoints and fingerprints bound for Redis.

A stream hands its write over and goes on; one greenlet per store does the writes in order.
Pending writes are keyed (one per stream): a newer checkpoint of a stream replaces one not
yet written, so a Redis that is slow costs a few checkpoints (a resume recomputes a little
more), never memory or a stream's heartbeats. A failed write is logged (rate-limited) and
dropped: checkpoints are an optimisation, a resume without one recomputes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import gevent
import redis
from gevent.event import Event

from .redis_connection import Warnings

#: Streams with a write pending, at most; past it the write is dropped (and counted).
MAX_PENDING = 10_000


class BackgroundWrites:
    def __init__(self, name: str, warnings: Warnings, max_pending: int = MAX_PENDING) -> None:
        self.name = name
        self.max_pending = max_pending
        self.failed = 0
        self.dropped = 0
        self._warnings = warnings
        self._pending: OrderedDict[str, Callable[[], object]] = OrderedDict()
        self._wake = Event()
        self._idle = Event()
        self._idle.set()
        self._greenlet: gevent.Greenlet | None = None

    def submit(self, key: str, write: Callable[[], object]) -> None:
        """Queue `write` (replacing the one pending under `key`); never blocks."""
        if key not in self._pending and len(self._pending) >= self.max_pending:
            self.dropped += 1
            return
        self._pending[key] = write
        self._idle.clear()
        self._wake.set()
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued write is done (or failed); False on timeout."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        while True:
            if not self._pending:
                self._idle.set()
                self._wake.clear()
                self._wake.wait()
                continue
            _, write = self._pending.popitem(last=False)
            try:
                write()
            except redis.RedisError as exc:
                self.failed += 1
                self._warnings.warn(self.name, f"{self.name} skipped (Redis is failing; resumes recompute meanwhile)", exc)
