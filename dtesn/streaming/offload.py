"""Run CPU-bound engine work off the gevent hub.

NumPy releases the GIL inside its kernels, so a real OS thread from gevent's pool keeps the
event loop (heartbeats, other streams, gunicorn's liveness check) running while it computes.
Outside a gevent-patched process (tests with Flask's client, scripts) the call runs inline.
"""

from __future__ import annotations

from typing import Callable, TypeVar

T = TypeVar("T")


def gevent_active() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a runtime dependency
        return False
    return monkey.is_module_patched("socket")


def run_blocking(fn: Callable[..., T], *args: object) -> T:
    if not gevent_active():
        return fn(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(fn, args)
