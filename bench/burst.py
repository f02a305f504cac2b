"""300 streams opened at once on one worker: how long each waits for its first byte.

    python -m bench.burst

Starts the real server (one gevent worker, 127.0.0.1), then opens STREAMS connections in one
burst: every socket connects and sends its whole request (a small JSON body to
/stream_chunks) before the first answer is read, so the server sees them all at once. Each
stream's time to first byte is measured from the moment the burst began. Repeated ROUNDS
times; prints p50/p99/max and one JSON object.
"""

from __future__ import annotations

import json
import selectors
import socket
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.server import Server

STREAMS = 300
ROUNDS = 3
BODY = json.dumps({"input_data": "burst " * 40, "esn_size": 256, "membrane_depth": 3}).encode()


def burst(port: int) -> list[float]:
    request = (f"POST /deep_tree_echo/stream_chunks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n").encode() + BODY
    selector = selectors.DefaultSelector()
    started = time.monotonic()
    sockets = []
    for _ in range(STREAMS):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
        sockets.append(s)
    first: dict[socket.socket, float] = {}
    deadline = started + 30
    while len(first) < STREAMS and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            first[key.fileobj] = time.monotonic() - started
            selector.unregister(key.fileobj)
    for s in sockets:
        s.close()
    selector.close()
    if len(first) < STREAMS:
        raise RuntimeError(f"only {len(first)} of {STREAMS} streams answered within 30 s")
    return sorted(first.values())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), {"DTESN_MAX_STREAMS": str(STREAMS + 50), "DTESN_WORKER_CONNECTIONS": str(STREAMS + 100)})
        try:
            burst(server.port)  # warm: weights, rates, the worker's first requests
            rounds = []
            for _ in range(ROUNDS):
                time.sleep(1)  # the last burst's streams finish
                times = burst(server.port)
                rounds.append({"p50_ms": round(statistics.median(times) * 1000, 1),
                               "p99_ms": round(times[int(0.99 * len(times)) - 1] * 1000, 1),
                               "max_ms": round(times[-1] * 1000, 1)})
        finally:
            server.stop()
    for i, r in enumerate(rounds, 1):
        print(f"round {i}: first byte p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms")
    print(json.dumps({"streams": STREAMS, "rounds": rounds}))


if __name__ == "__main__":
    main()
