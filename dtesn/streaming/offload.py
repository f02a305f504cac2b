"""Run CPU-bound engine work off the gevent hub.

The compiled kernel runs outside the GIL, so a real OS thread from gevent's pool keeps the
event loop (heartbeats, other streams, gunicorn's liveness check) running while it computes.
Outside a gevent-patched process (Flask's test client, scripts) the call runs inline.

With NumPy's step loop, which dropped and retook the GIL around every array call, engine
threads had to hand a starved loop its turn explicitly (a loop-turn timer and an idle
watcher). With the kernel that bought nothing measurable (bench/load.py, 1000 streams + 2
heavy: gap p99 1000 ms with it, 1100 ms without, one of Locust's rounding buckets; max 1155
and 1190 ms), so it is gone.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import gevent
from gevent import monkey
from gevent.threadpool import ThreadPool

T = TypeVar("T")

# Real locks even when threading is patched: pool threads use them.
_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_lock = _allocate_lock()
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


#: Threads for work that must not queue behind engine tasks (compressing a stream's large
#: events: a stream's writes, heartbeats included, wait for it). zlib and brotli release the GIL.
ASIDE_THREADS = 2
_aside: ThreadPool | None = None


def submit_aside(fn: Callable[..., T], *args: object):
    """Like `submit`, in a small pool of its own (created on first use, after the fork)."""
    global _aside
    if not monkey.is_module_patched("socket"):
        return _Done(fn(*args))
    if _aside is None:
        _aside = ThreadPool(ASIDE_THREADS)
    return _aside.spawn(fn, *args)


def limit_threads(count: int) -> None:
    """At most `count` engine tasks run at once; the others wait their turn in order.

    The kernel computes outside the GIL, but everything else an engine task does (encoding
    events, slicing input) holds it, as the event loop does: a thread per core is enough.
    """
    gevent.get_hub().threadpool.maxsize = count


def run_blocking(fn: Callable[..., T], *args: object) -> T:
    return submit(fn, *args).get()
