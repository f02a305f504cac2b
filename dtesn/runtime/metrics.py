"""Live counters of one worker process, for /deep_tree_echo/status."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.active_streams = 0
        self.streams_started = 0
        self.streams_refused = 0
        self.bytes_processed = 0
        self.steps_processed = 0

    def request_finished(self, status: int, _sent: int) -> None:
        with self._lock:
            self.requests += 1
            self.by_status[f"{status // 100}xx"] += 1

    def admit_stream(self, limit: int) -> bool:
        """Count a stream in, unless `limit` streams are open already."""
        with self._lock:
            if self.active_streams >= limit:
                self.streams_refused += 1
                return False
            self.active_streams += 1
            self.streams_started += 1
            return True

    def stream_closed(self) -> None:
        with self._lock:
            self.active_streams -= 1

    def processed(self, input_bytes: int, steps: int) -> None:
        with self._lock:
            self.bytes_processed += input_bytes
            self.steps_processed += steps

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "worker_pid": os.getpid(),
                "uptime_s": round(time.time() - self.started, 3),
                "requests": self.requests,
                "responses_by_class": dict(self.by_status),
                "active_streams": self.active_streams,
                "streams_started": self.streams_started,
                "streams_refused": self.streams_refused,
                "bytes_processed": self.bytes_processed,
                "steps_processed": self.steps_processed,
            }
