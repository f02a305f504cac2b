"""Mass disconnects: how fast 200 streams that leave at once are gone from /status.

    python -m bench.drops

Starts the real server (one gevent worker, 127.0.0.1), opens STREAMS streams that each
compute for seconds, half of them left mid-upload (Content-Length announced, part sent),
half after the whole body was sent; once all are open (or uploading) every socket is
closed at the same moment, and /status is polled until `active_streams` is 0 and the worker's
CPU time stops growing. Prints the seconds to each, and one JSON object.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from pathlib import Path

import requests

from tests.support.server import Server

STREAMS = 200
BODY = bytes(range(256)) * 1024  # 256 KiB: seconds of compute at frame 1
MODE = __import__("sys").argv[1] if len(__import__("sys").argv) > 1 else "mixed"  # mixed, after, during
PATH = "/deep_tree_echo/stream_chunks?esn_size=256&membrane_depth=2&frame_size=1&chunk_size=8192"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), {"DTESN_MAX_STREAMS": str(STREAMS + 50), "DTESN_WORKER_CONNECTIONS": str(STREAMS + 100)})
        try:
            sockets = []
            for i in range(STREAMS):
                s = socket.create_connection(("127.0.0.1", server.port))
                head = (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                        f"Content-Length: {len(BODY)}\r\n\r\n").encode()
                s.sendall(head + (BODY if (i % 2 if MODE == "mixed" else MODE == "after") else BODY[: len(BODY) // 2]))
                sockets.append(s)
            time.sleep(2)
            status = requests.get(server.url + "/deep_tree_echo/status", timeout=5).json()
            opened = status["active_streams"]
            dropped = time.monotonic()
            for s in sockets:
                s.close()
            gone_s = None
            while time.monotonic() - dropped < 30:
                if requests.get(server.url + "/deep_tree_echo/status", timeout=5).json()["active_streams"] == 0:
                    gone_s = time.monotonic() - dropped
                    break
                time.sleep(0.02)
            cpu_before = server.worker_cpu_s()
            time.sleep(1.0)
            idle_cpu_share = server.worker_cpu_s() - cpu_before
        finally:
            server.stop()
    figures = {"streams": STREAMS, "open_when_dropped": opened, "gone_from_status_s": gone_s,
               "worker_cpu_share_in_the_second_after": round(idle_cpu_share, 3)}
    print(f"{opened} open streams dropped at once: all gone from /status after {gone_s} s; "
          f"worker CPU in the next second: {idle_cpu_share:.2f} s")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
