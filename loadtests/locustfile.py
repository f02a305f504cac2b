"""Locust scenarios for dtesn-stream: timeout prevention, throughput, concurrency, resume.

    python -m locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 -u 50 -r 10 -t 60s \
           --csv results/run [--tags timeout throughput concurrency resume | UserClass ...]

Locust's own timer stops at the response headers for a streamed response, so every scenario
reads its stream itself and fires its own measurements as request events (request_type
"SSE"): time to first event, the gap between consecutive events, MB/s of input, a resume's
time to its first new event. A gap above the stream's own heartbeat interval (from its
metadata) plus LOAD_GAP_TOLERANCE_S is a failure, as is a stream that ends without its
completion event or with other results than the engine computes.

Environment: LOAD_GAP_TOLERANCE_S (0.5), LOAD_FEED_SECONDS (how long a concurrency stream
feeds its input, 20), LOAD_THROUGHPUT_BYTES (8 MiB). Only 127.0.0.1 is accepted as host.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from locust import User, between, constant, events, tag, task
from locust.runners import STATE_SPAWNING

# `python -m locust` from the repository root puts it on sys.path (a bare `locust` puts only
# loadtests/ there): the scenarios share the tests' SSE reader and duplex client.
from dtesn.engine import ReservoirParams, session
from tests.support.duplex import DuplexResponse, pattern
from tests.support.sse import Event, parse

GAP_TOLERANCE_S = float(os.environ.get("LOAD_GAP_TOLERANCE_S", "0.5"))
FEED_SECONDS = float(os.environ.get("LOAD_FEED_SECONDS", "20"))
THROUGHPUT_BYTES = int(os.environ.get("LOAD_THROUGHPUT_BYTES", str(8 << 20)))

#: Chunks slower than a small heartbeat interval: 8192 one-byte frames through 4096 neurons.
HEAVY = "/deep_tree_echo/stream_chunks?chunk_size=8192&esn_size=4096&membrane_depth=6&frame_size=1"
#: A live feed: 256 bytes a second into small chunks; mostly heartbeats, long-lived.
FEED = "/deep_tree_echo/stream_chunks?chunk_size=256&esn_size=256&membrane_depth=3&frame_size=16"
LARGE = "/deep_tree_echo/stream_large_dataset?esn_size=256&membrane_depth=3&frame_size=1024&compression_level=1"
RESUME = "/deep_tree_echo/stream_chunks?chunk_size=1024&esn_size=512&membrane_depth=4&frame_size=16"
RESUME_INPUT = bytes(range(256)) * 256  # 64 KB: 64 chunks
RESUME_DIGEST = session(ReservoirParams(esn_size=512, membrane_depth=4, frame_size=16)).feed(RESUME_INPUT, final=True).digest


def fire(name: str, value: float, length: int = 0, error: Exception | None = None) -> None:
    events.request.fire(request_type="SSE", name=name, response_time=value, response_length=length,
                        exception=error, context={})


class StreamFailure(Exception):
    pass


def read_events(response: DuplexResponse) -> Iterator[Event]:
    buffered = b""
    for piece in response.iter_content():
        buffered += piece
        *blocks, buffered = buffered.split(b"\n\n")
        yield from parse([b + b"\n\n" for b in blocks])


class StreamUser(User):
    """A user whose client is a real streaming HTTP client (uploads while it reads)."""

    abstract = True

    def on_start(self) -> None:
        url = urlsplit(self.host or "")
        if url.hostname != "127.0.0.1" or url.port is None:
            raise ValueError("--host must be http://127.0.0.1:<port>: load is only ever aimed at loopback")
        self.port = url.port

    def stream(self, path: str, body: Iterable[bytes], size: int | None, name: str,
               headers: dict[str, str] | None = None) -> list[Event]:
        """Open a stream, time its first event and every gap, and return its events.

        A stream opened while Locust is still spawning users times its first event under a
        name of its own: Locust starts each second's users in the same instant (-r of them),
        so those requests arrive as one burst, not at the load's concurrency."""
        started = time.monotonic()
        runner = self.environment.runner
        spawning = runner is not None and runner.state == STATE_SPAWNING
        first_event = f"{name}: time to first event" + (" (while spawning)" if spawning else "")
        try:
            response = DuplexResponse(self.port, path, body, size, headers=headers)
        except OSError as exc:
            fire(first_event, (time.monotonic() - started) * 1000, error=exc)
            return []
        got: list[Event] = []
        try:
            if response.status != 200:
                raise StreamFailure(f"HTTP {response.status}")
            interval = None
            for ev in read_events(response):
                if not got:
                    fire(first_event, (ev.arrived - started) * 1000)
                    interval = ev.json.get("heartbeat_interval_s")
                else:
                    gap = ev.arrived - got[-1].arrived
                    late = interval is not None and gap > interval + GAP_TOLERANCE_S
                    fire(f"{name}: gap between events", gap * 1000, len(ev.data),
                         StreamFailure(f"{gap:.2f} s without an event (interval {interval} s)") if late else None)
                got.append(ev)
            if not got or "completion" not in got[-1].json["type"]:
                raise StreamFailure("the stream ended without its completion event")
        except (OSError, StreamFailure, ValueError) as exc:
            fire(f"{name}: stream", (time.monotonic() - started) * 1000, error=exc)
        finally:
            response.close()
        return got


class TimeoutPreventionUser(StreamUser):
    """Long streams whose chunks each take longer than a small heartbeat interval."""

    wait_time = constant(0)

    @tag("timeout")
    @task
    def long_computation(self) -> None:
        self.stream(HEAVY, pattern(8192 * 4), 8192 * 4, "timeout prevention")


class HeavyUser(TimeoutPreventionUser):
    """Exactly two heavy computations, whatever the user count: run beside ConcurrencyUser to
    check that heavy streams do not starve light ones."""

    fixed_count = 2


class ThroughputUser(StreamUser):
    """Large-dataset streams: MB/s of input, measured by the client's clock."""

    wait_time = constant(0)

    @tag("throughput")
    @task
    def large_dataset(self) -> None:
        started = time.monotonic()
        got = self.stream(LARGE, pattern(THROUGHPUT_BYTES), THROUGHPUT_BYTES, "throughput")
        if got and got[-1].event == "completion":
            seconds = time.monotonic() - started
            # A value, not a time: Locust's tables show it in the response-time columns.
            fire("throughput: MB/s of input (value)", THROUGHPUT_BYTES / seconds / 1e6, THROUGHPUT_BYTES)


class ConcurrencyUser(StreamUser):
    """Many long-lived streams at once: a live feed of 256 bytes a second for FEED_SECONDS."""

    wait_time = between(0, 1)

    @tag("concurrency")
    @task
    def live_feed(self) -> None:
        def feed() -> Iterator[bytes]:
            for second in range(int(FEED_SECONDS)):
                yield bytes([second % 256]) * 256
                time.sleep(1)

        self.stream(FEED, feed(), None, "concurrency")


class ResumeUser(StreamUser):
    """Disconnect mid-stream, resume with Last-Event-ID, and check the final digest."""

    wait_time = between(0.5, 1.5)

    @tag("resume")
    @task
    def drop_and_resume(self) -> None:
        started = time.monotonic()
        cut = random.randrange(0, 60)
        last = None
        try:
            first = DuplexResponse(self.port, RESUME, [RESUME_INPUT], len(RESUME_INPUT))
            try:
                for ev in read_events(first):
                    last = ev.id or last
                    if ev.id and ev.id.endswith(f":{cut}"):
                        break
            finally:
                first.close()
            if last is None:
                raise StreamFailure("no event id before the disconnect")
            resumed = self.stream(RESUME, [RESUME_INPUT], len(RESUME_INPUT), "resume",
                                  headers={"Last-Event-ID": last})
            if not resumed:
                return
            indices = [int(ev.id.rsplit(":", 1)[1]) for ev in resumed if ev.id and ev.json["type"] == "chunk"]
            if indices != list(range(cut + 1, 64)):
                raise StreamFailure(f"resumed after chunk {cut} but got chunks {indices[:3]}...")
            if resumed[-1].json["final_digest"] != RESUME_DIGEST:
                raise StreamFailure("the resumed stream's final digest differs from the engine's")
            fire("resume: identical results", (time.monotonic() - started) * 1000, len(RESUME_INPUT))
        except (OSError, StreamFailure) as exc:
            fire("resume: identical results", (time.monotonic() - started) * 1000, error=exc)
