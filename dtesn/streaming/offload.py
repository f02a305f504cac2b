"""Run CPU-bound engine work off the gevent hub.

NumPy releases the GIL inside its kernels, so a real OS thread from gevent's pool keeps the
event loop (heartbeats, other streams, gunicorn's liveness check) running while it computes.
Outside a gevent-patched process (Flask's test client, scripts) the call runs inline.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import gevent
from gevent import monkey

T = TypeVar("T")

# A real lock even when threading is patched: the counter is touched from pool threads.
_lock = monkey.get_original("_thread", "allocate_lock")()
_running = 0


def running_tasks() -> int:
    """Engine tasks executing right now in this process (a cancelled stream's drop to 0)."""
    return _running


def _counted(fn: Callable[..., T], args: tuple) -> T:
    global _running
    with _lock:
        _running += 1
    try:
        return fn(*args)
    finally:
        with _lock:
            _running -= 1


class _Done:
    def __init__(self, value: object) -> None:
        self._value = value

    def get(self) -> object:
        return self._value


def submit(fn: Callable[..., T], *args: object, inline: bool = False):
    """Start `fn` in a pool thread; `.get()` on the result waits for it cooperatively.

    With `inline` (work too small to be worth a thread) or outside gevent, it runs now.
    """
    if inline or not monkey.is_module_patched("socket"):
        return _Done(_counted(fn, args))
    return gevent.get_hub().threadpool.spawn(_counted, fn, args)


def run_blocking(fn: Callable[..., T], *args: object) -> T:
    return submit(fn, *args).get()
