"""Streaming cost: time to first byte, and stream_chunks end to end against the engine alone.

    python -m bench.stream

Starts the real server (gunicorn + gevent, one worker, 127.0.0.1), streams raw bodies through
/deep_tree_echo/stream_chunks with a client that uploads while it reads, and runs the engine
alone on the same bytes and chunking in this process. Rounds alternate between the two so
that the shared machine's noise hits both; the best round of each is kept (`ratio`), and the
median of the rounds' own ratios is shown beside it (steadier on a noisy day: each round's
server and engine figures were taken next to each other). The last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from dtesn.client.duplex import DuplexResponse, pattern
from dtesn.engine import ReservoirParams, Session, build_weights
from tests.support.server import Server
from tests.support.sse import events

ROUNDS = 7
INPUT_BYTES = 16 * 1024 * 1024
CONFIGS = [
    {"esn_size": 512, "membrane_depth": 4, "frame_size": 64, "chunk_size": 8192},
    {"esn_size": 256, "membrane_depth": 3, "frame_size": 1024, "chunk_size": 8192},
]


def ttfb(server: Server, size: int) -> float:
    r = DuplexResponse(server.port, "/deep_tree_echo/stream_chunks?chunk_size=8192", pattern(size), size)
    try:
        next(events(r))
        return time.monotonic() - r.started
    finally:
        r.close()


def through_server(server: Server, config: dict, size: int = INPUT_BYTES,
                   body: Callable[[int], Iterable[bytes]] = pattern) -> float:
    query = "&".join(f"{k}={v}" for k, v in config.items())
    r = DuplexResponse(server.port, f"/deep_tree_echo/stream_chunks?{query}", body(size), size)
    last = None
    for last in events(r):
        pass
    elapsed = time.monotonic() - r.started
    r.close()
    assert last is not None and last.json["type"] == "completion", last
    assert last.json["bytes_processed"] == size
    return size / elapsed


def engine_alone(config: dict) -> float:
    params = ReservoirParams(**{k: v for k, v in config.items() if k != "chunk_size"})
    session = Session(build_weights(params))
    started = time.perf_counter()
    pieces = pattern(INPUT_BYTES, bytes(range(256)) * (config["chunk_size"] // 256))
    for piece in pieces:
        session.feed(piece)
    session.finish()
    return INPUT_BYTES / (time.perf_counter() - started)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            ttfb(server, 1024)  # warm the default weights
            small = [ttfb(server, 1024) for _ in range(5)]
            large = [ttfb(server, 50 * 1024 * 1024) for _ in range(5)]
            rows = []
            for config in CONFIGS:
                engine_alone(config)  # warm weights here; the server warms its own in round one
                pairs = [(through_server(server, config), engine_alone(config)) for _ in range(ROUNDS)]
                served, alone = max(p[0] for p in pairs), max(p[1] for p in pairs)
                rows.append({**config, "server_mb_s": round(served / 1e6, 2), "engine_mb_s": round(alone / 1e6, 2),
                             "ratio": round(served / alone, 3),
                             "ratio_median_of_rounds": round(statistics.median(s / e for s, e in pairs), 3)})
        finally:
            server.stop()
    figures = {
        "ttfb_ms_1kb_median": round(statistics.median(small) * 1000, 2),
        "ttfb_ms_50mb_median": round(statistics.median(large) * 1000, 2),
        "ttfb_ratio_50mb_to_1kb": round(statistics.median(large) / statistics.median(small), 2),
        "input_bytes": INPUT_BYTES,
        "throughput": rows,
    }
    print(f"time to first byte (median of 5): 1 KB body {figures['ttfb_ms_1kb_median']} ms, "
          f"50 MB body {figures['ttfb_ms_50mb_median']} ms")
    print(f"{'config':<52} {'server MB/s':>11} {'engine MB/s':>11} {'ratio':>6} {'median':>6}")
    for row in rows:
        name = f"esn {row['esn_size']} depth {row['membrane_depth']} frame {row['frame_size']} chunk {row['chunk_size']}"
        print(f"{name:<52} {row['server_mb_s']:>11} {row['engine_mb_s']:>11} {row['ratio']:>6} "
              f"{row['ratio_median_of_rounds']:>6}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
