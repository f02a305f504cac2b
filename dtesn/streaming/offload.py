"""Run CPU-bound engine work off the gevent hub.

NumPy releases the GIL inside its kernels, so a real OS thread from gevent's pool keeps the
event loop (heartbeats, other streams, gunicorn's liveness check) running while it computes.
Outside a gevent-patched process (Flask's test client, scripts) the call runs inline.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import gevent
from gevent import monkey
from gevent.threadpool import ThreadPool

T = TypeVar("T")

# Real locks even when threading is patched: pool threads use them.
_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_get_ident = monkey.get_original("_thread", "get_ident")
_lock = _allocate_lock()
_running = 0

#: How often the event loop stamps that it is turning, and how stale a stamp may get before an
#: engine thread waits for the loop (see `let_loop_run`).
TURN_S = 0.005
STARVED_S = 0.02
MAX_WAIT_S = 1.0


class _LoopTurns:
    """When the event loop last turned, stamped by a repeating timer on the loop itself."""

    def __init__(self) -> None:
        self.hub = gevent.get_hub()
        self.thread = _get_ident()
        self.last = time.monotonic()
        self._timer = self.hub.loop.timer(TURN_S, TURN_S, ref=False)
        self._timer.start(self._stamp)

    def _stamp(self) -> None:
        self.last = time.monotonic()


_turns: _LoopTurns | None = None


def let_loop_run() -> None:
    """From an engine thread: when the event loop has not turned for STARVED_S, wait until
    it has run out of work.

    CPython hands the GIL to a waiting thread only when the holder keeps it a whole switch
    interval; NumPy drops and retakes it around every large operation, faster than the
    loop's thread wakes up, so a heavy computation can keep the loop from every socket call
    it makes for hundreds of milliseconds (measured: stalls of 120-470 ms, heartbeats that
    late). Waiting here, between slices of a computation, gives the loop a whole turn.
    """
    turns = _turns
    if turns is None or _get_ident() == turns.thread or time.monotonic() - turns.last < STARVED_S:
        return
    done = _allocate_lock()
    done.acquire()
    turns.hub.loop.run_callback_threadsafe(_release_when_idle, turns.hub, done)
    done.acquire(timeout=MAX_WAIT_S)  # bounded: a loop shutting down may never get there


def _release_when_idle(hub, done) -> None:
    """On the loop: release `done` once nothing else is pending (an idle watcher)."""
    idle = hub.loop.idle()

    def release() -> None:
        idle.stop()
        done.release()

    idle.start(release)


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
    global _turns
    if inline or not monkey.is_module_patched("socket"):
        return _Done(_counted(fn, args))
    if _turns is None:
        _turns = _LoopTurns()
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

    Engine threads and the event loop share one GIL: every engine thread more takes GIL time
    from the loop (heartbeats, first events, every other stream), while on a small machine it
    adds little compute, since workers are the unit of parallelism.
    """
    gevent.get_hub().threadpool.maxsize = count


def run_blocking(fn: Callable[..., T], *args: object) -> T:
    return submit(fn, *args).get()
