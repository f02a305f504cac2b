"""Engine threads: CPU-bound work runs off the gevent hub, in a pool each runtime owns.

The compiled kernel runs outside the GIL, so a real OS thread keeps the event loop
(heartbeats, other streams, gunicorn's liveness check, a host program's own greenlets)
running while it computes. The pool is the runtime's own, not the hub's shared one, so that
two apps in one process keep their own thread limits; it is created on first use, after a
gunicorn fork, on the hub of the thread that uses it.

With NumPy's step loop, which dropped and retook the GIL around every array call, engine
threads had to hand a starved loop its turn explicitly (a loop-turn timer and an idle
watcher). With the kernel that bought nothing measurable (bench/load.py, 1000 streams + 2
heavy: gap p99 1000 ms with it, 1100 ms without, one of Locust's rounding buckets; max 1155
and 1190 ms), so it is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from gevent import monkey
from gevent.threadpool import ThreadPool

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: Real locks even when threading is patched: pool threads use them.
allocate_lock = monkey.get_original("_thread", "allocate_lock")

#: Threads for work that must not queue behind engine tasks (compressing a stream's large
#: events: a stream's writes, heartbeats included, wait for it). zlib and brotli release the GIL.
ASIDE_THREADS = 2


class Pending(Protocol[T_co]):
    """A task's result: `.get()` waits for it cooperatively (a greenlet waits, the hub runs)."""

    def get(self) -> T_co: ...


class Done(Generic[T]):
    """A result computed already (work too small to be worth a thread)."""

    def __init__(self, value: T) -> None:
        self._value = value

    def get(self) -> T:
        return self._value


class EnginePool:
    """At most `threads` engine tasks run at once; the others wait their turn in order.

    The kernel computes outside the GIL, but everything else an engine task does (encoding
    events, slicing input) holds it, as the event loop does: a thread per core is enough
    (two threads ran two heavy sessions at 1.92-1.99x one thread's steps/s, bench/engine.py).
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._engine: ThreadPool | None = None
        self._aside: ThreadPool | None = None
        self._lock = allocate_lock()
        self._running = 0

    @property
    def running(self) -> int:
        """Engine tasks executing right now (a cancelled stream's drop to 0)."""
        return self._running

    def submit(self, fn: Callable[..., T], *args: object, inline: bool = False) -> Pending[T]:
        """Start `fn(*args)` on an engine thread; with `inline`, run it now on the caller."""
        if inline:
            return Done(self._counted(fn, args))
        if self._engine is None:
            self._engine = ThreadPool(self.threads)
        return self._engine.spawn(self._counted, fn, args)

    def submit_aside(self, fn: Callable[..., T], *args: object) -> Pending[T]:
        """Like `submit`, in a small pool of its own that engine tasks never hold up."""
        if self._aside is None:
            self._aside = ThreadPool(ASIDE_THREADS)
        return self._aside.spawn(fn, *args)

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on an engine thread, waited for cooperatively."""
        return self.submit(fn, *args).get()

    def close(self) -> None:
        """Stop the threads (their queued tasks are dropped); the pool starts anew on next use."""
        for pool in (self._engine, self._aside):
            if pool is not None:
                pool.kill()
        self._engine = self._aside = None

    def _counted(self, fn: Callable[..., T], args: tuple) -> T:
        with self._lock:
            self._running += 1
        try:
            return fn(*args)
        finally:
            with self._lock:
                self._running -= 1
