"""Locust scenarios for dtesn-stream: timeout prevention, throughput, concurrency, resume.

    python -m locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 -u 50 -r 10 -t 60s \
           --csv results/run [--tags timeout throughput concurrency resume | UserClass ...]

Every scenario is a `dtesn.client.locust.SSEUser` (the package's Locust user for SSE), which
fires its own measurements as request events (request_type "SSE"): time to first byte and
to first event, the gap between consecutive events, completion; and here MB/s of input and a
resume's identical results. A gap above the stream's own heartbeat interval (from its
metadata) plus LOAD_GAP_TOLERANCE_S is a failure, as is a stream that ends without its
completion event or with other results than the engine computes.

Environment: LOAD_GAP_TOLERANCE_S (0.5), LOAD_FEED_SECONDS (how long a concurrency stream
feeds its input, 20), LOAD_THROUGHPUT_BYTES (8 MiB). Only 127.0.0.1 is accepted as host.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from locust import between, constant, tag, task

from dtesn.client.duplex import DuplexResponse, pattern
from dtesn.client.locust import SSEUser, StreamFailure
from dtesn.client.parser import EventParser
from dtesn.engine import ReservoirParams, session

GAP_TOLERANCE_S = float(os.environ.get("LOAD_GAP_TOLERANCE_S", "0.5"))
FEED_SECONDS = float(os.environ.get("LOAD_FEED_SECONDS", "20"))
THROUGHPUT_BYTES = int(os.environ.get("LOAD_THROUGHPUT_BYTES", str(8 << 20)))

#: The heaviest chunks the API allows: 8192 one-byte frames through 4096 neurons at depth 6,
#: 0.1 s a chunk alone on an AVX2 core (0.25 s on an AVX one), longer under load.
HEAVY = "/deep_tree_echo/stream_chunks?chunk_size=8192&esn_size=4096&membrane_depth=6&frame_size=1"
#: A live feed: 256 bytes a second into small chunks; mostly heartbeats, long-lived.
FEED = "/deep_tree_echo/stream_chunks?chunk_size=256&esn_size=256&membrane_depth=3&frame_size=16"
LARGE = "/deep_tree_echo/stream_large_dataset?esn_size=256&membrane_depth=3&frame_size=1024&compression_level=1"
RESUME = "/deep_tree_echo/stream_chunks?chunk_size=1024&esn_size=512&membrane_depth=4&frame_size=16"
RESUME_INPUT = bytes(range(256)) * 256  # 64 KB: 64 chunks
RESUME_DIGEST = session(ReservoirParams(esn_size=512, membrane_depth=4, frame_size=16)).feed(RESUME_INPUT, final=True).digest


class StreamUser(SSEUser):
    """dtesn.client.locust's SSE user, aimed at loopback only."""

    abstract = True
    gap_tolerance_s = GAP_TOLERANCE_S

    def on_start(self) -> None:
        url = urlsplit(self.host or "")
        if url.hostname != "127.0.0.1" or url.port is None:
            raise ValueError("--host must be http://127.0.0.1:<port>: load is only ever aimed at loopback")
        super().on_start()


class TimeoutPreventionUser(StreamUser):
    """Long streams of the heaviest chunks (HEAVY): the gaps between their events, heartbeats
    included, must stay within the interval plus the tolerance while they compute."""

    wait_time = constant(0)

    @tag("timeout")
    @task
    def long_computation(self) -> None:
        self.stream(HEAVY, pattern(8192 * 4), 8192 * 4, name="timeout prevention")


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
        got = self.stream(LARGE, pattern(THROUGHPUT_BYTES), THROUGHPUT_BYTES, name="throughput")
        if got:
            seconds = time.monotonic() - started
            # A value, not a time: Locust's tables show it in the response-time columns.
            self.fire("throughput: MB/s of input (value)", THROUGHPUT_BYTES / seconds / 1e6, THROUGHPUT_BYTES)


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

        self.stream(FEED, feed(), None, name="concurrency")


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
            first = DuplexResponse(self.sse_port, RESUME, [RESUME_INPUT], len(RESUME_INPUT))
            parser = EventParser()
            try:
                for ev in (ev for piece in first.iter_content() for ev in parser.feed(piece)):
                    last = ev.id or last
                    if ev.id.endswith(f":{cut}"):
                        break
            finally:
                first.close()
            if last is None:
                raise StreamFailure("no event id before the disconnect")
            resumed = self.stream(RESUME, [RESUME_INPUT], len(RESUME_INPUT), name="resume",
                                  headers={"Last-Event-ID": last})
            if not resumed:
                return
            indices = [int(ev.id.rsplit(":", 1)[1]) for ev in resumed if ev.id and ev.json["type"] == "chunk"]
            if indices != list(range(cut + 1, 64)):
                raise StreamFailure(f"resumed after chunk {cut} but got chunks {indices[:3]}...")
            if resumed[-1].json["final_digest"] != RESUME_DIGEST:
                raise StreamFailure("the resumed stream's final digest differs from the engine's")
            self.fire("resume: identical results", (time.monotonic() - started) * 1000, len(RESUME_INPUT))
        except (OSError, StreamFailure) as exc:
            self.fire("resume: identical results", (time.monotonic() - started) * 1000, error=exc)
