"""The gevent/thread runtime: engine threads, draining, idle connections, GC pauses, counters.

Beside `streaming` (which is handed a Runtime and uses it), never importing it or Flask.
"""

from __future__ import annotations

from .drain import Drain
from .metrics import Metrics
from .pool import EnginePool
from .runtime import Runtime

__all__ = ["Drain", "EnginePool", "Metrics", "Runtime"]
