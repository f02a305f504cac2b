"""A runtime's counters as Prometheus metrics (GET /metrics), and the per-worker figures of
/deep_tree_echo/status read back from them.

The metrics live in the runtime's own registry (two apps in one process count apart). Under
gunicorn, config/gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before any worker starts:
prometheus_client then keeps each worker's values in files there, /metrics adds every
worker's up (and `livesum` counts only live workers for the gauge), and dead workers are
marked in gunicorn's child_exit. Each metric is documented in the README.
"""

from __future__ import annotations

import os
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ENDPOINTS = ("stream_process", "stream_chunks", "stream_large_dataset", "stream_optimized")
#: How a stream ended: its completion event, an error event, a drain's interruption (resume
#: elsewhere), the client leaving first; or refused with 503 before it began.
OUTCOMES = ("completed", "failed", "interrupted", "client_gone", "refused")
#: How a reconnect with Last-Event-ID went: from a checkpoint, recomputed from the start, the
#: stream was complete already (204), or the input or parameters differ (409).
RESUME_RESULTS = ("checkpoint", "recompute", "complete", "mismatch")
#: A first result takes a few milliseconds light, seconds for a large membrane.
FIRST_EVENT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The silence a heartbeat ends: its interval (20-25 s by default) when the loop keeps time.
GAP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 45.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = time.time()
        self._lock = threading.Lock()
        self._active = 0  # this worker's open streams, for the admission limit (max_streams)
        r = self.registry
        self.responses = Counter("dtesn_http_responses", "HTTP responses by status class", ["code_class"], registry=r)
        self.active = Gauge("dtesn_active_streams", "Streams open now", registry=r, multiprocess_mode="livesum")
        self.streams = Counter("dtesn_streams", "Streams ended, by endpoint and outcome", ["endpoint", "outcome"],
                               registry=r)
        self.resumes = Counter("dtesn_resumes", "Reconnects with Last-Event-ID, by result", ["result"], registry=r)
        self.input_bytes = Counter("dtesn_input_bytes", "Input bytes computed", registry=r)
        self.wire_bytes = Counter("dtesn_wire_bytes", "Stream bytes written to clients (after compression)",
                                  registry=r)
        self.first_event = Histogram("dtesn_time_to_first_event_seconds",
                                     "From a stream's start to its first result event", registry=r,
                                     buckets=FIRST_EVENT_BUCKETS)
        self.heartbeat_gap = Histogram("dtesn_heartbeat_gap_seconds",
                                       "Silence before each heartbeat (time since the stream's previous event)",
                                       registry=r, buckets=GAP_BUCKETS)
        self.engine_steps = Counter("dtesn_engine_steps", "Reservoir steps computed", registry=r)
        for endpoint in ENDPOINTS:  # every series from the start, so rates and sums see zeros
            for outcome in OUTCOMES:
                self.streams.labels(endpoint, outcome)
        for result in RESUME_RESULTS:
            self.resumes.labels(result)

    @property
    def active_streams(self) -> int:
        return self._active

    def request_finished(self, status: int, _sent: int) -> None:
        self.responses.labels(f"{status // 100}xx").inc()

    def admit_stream(self, endpoint: str, limit: int) -> bool:
        """Count a stream in, unless `limit` streams are open already (then it is refused)."""
        with self._lock:
            if self._active >= limit:
                self.streams.labels(endpoint, "refused").inc()
                return False
            self._active += 1
        self.active.inc()
        return True

    def stream_closed(self) -> None:
        with self._lock:
            self._active -= 1
        self.active.dec()

    def stream_ended(self, endpoint: str, outcome: str) -> None:
        self.streams.labels(endpoint, outcome).inc()

    def processed(self, input_bytes: int, steps: int) -> None:
        self.input_bytes.inc(input_bytes)
        self.engine_steps.inc(steps)

    def snapshot(self) -> dict:
        """This worker's figures (/metrics has every worker's)."""
        by_class = {s.labels["code_class"]: int(s.value) for s in self._samples("dtesn_http_responses_total")}
        ended = {(s.labels["endpoint"], s.labels["outcome"]): s.value for s in self._samples("dtesn_streams_total")}
        refused = sum(v for (_, outcome), v in ended.items() if outcome == "refused")
        return {
            "worker_pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            "requests": sum(by_class.values()),
            "responses_by_class": {k: v for k, v in by_class.items() if v},
            "active_streams": self._active,
            "streams_started": int(sum(ended.values()) - refused) + self._active,
            "streams_refused": int(refused),
            "bytes_processed": int(self.registry.get_sample_value("dtesn_input_bytes_total") or 0),
            "steps_processed": int(self.registry.get_sample_value("dtesn_engine_steps_total") or 0),
        }

    def _samples(self, name: str) -> list:
        return [s for family in self.registry.collect() for s in family.samples if s.name == name]
