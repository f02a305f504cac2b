"""/stream_optimized per policy, progressive rendering, and transport against per-event compression.

    python -m bench.optimized

The real server (gunicorn + gevent, one worker, 127.0.0.1) and a client that uploads while it
reads. Every size is counted on the socket (after any Content-Encoding); every time is taken
by the client's clock from the request to the moment it can draw the first rows of features:
the first `partial` event parsed, or the first chunk event parsed and its payload decoded.
Times to first render are medians of ROUNDS, through a reader paced to LINK_BYTES_PER_SEC
with a small receive buffer (a constrained link), and through an unpaced one. The last line
is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.large_dataset import english_text
from dtesn.client.duplex import DuplexResponse
from dtesn.streaming.bandwidth import ORDER
from dtesn.streaming.payload import decode_features
from tests.support.server import Server
from tests.support.sse import parse

ROUNDS = 5
LINK_BYTES_PER_SEC = 256_000
ENGINE = "esn_size=256&membrane_depth=4&frame_size=8"  # 512 steps x 8 membranes per 4 KB of input
INPUT = english_text(256 * 1024)


def open_stream(server: Server, path: str, data: bytes, accept: str = "identity", paced: bool = False) -> DuplexResponse:
    return DuplexResponse(server.port, path, [data], len(data), content_type="text/plain",
                          rcvbuf=8192 if paced else None, headers={"Accept-Encoding": accept})


def wire_bytes(server: Server, path: str, accept: str = "identity") -> int:
    r = open_stream(server, path, INPUT, accept)
    total = sum(len(piece) for piece in r.iter_content())
    r.close()
    return total


def first_render(server: Server, path: str, paced: bool) -> float:
    r = open_stream(server, path, INPUT, paced=paced)
    buffered = b""
    try:
        for piece in r.iter_content():
            buffered += piece
            *blocks, buffered = buffered.split(b"\n\n")
            for ev in parse([b + b"\n\n" for b in blocks]):
                if ev.event == "partial" and ev.json["rows"]:  # parsed: renderable
                    return time.monotonic() - r.started
                if ev.event == "chunk":
                    c = ev.json
                    decode_features(c["data"], encoding=c["encoding"], method=c["compression_method"],
                                    transform=c["transform"], dtype=c["dtype"], shape=tuple(c["shape"]))
                    return time.monotonic() - r.started
            if paced:
                time.sleep(len(piece) / LINK_BYTES_PER_SEC)
    finally:
        r.close()
    raise RuntimeError("the stream ended without a chunk")


def optimized(hint: str, progressive: bool) -> str:
    return (f"/deep_tree_echo/stream_optimized?{ENGINE}&bandwidth_hint={hint}"
            f"&enable_progressive_rendering={str(progressive).lower()}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        try:
            wire_bytes(server, optimized("medium", False))  # weights and rates warm
            policies = {}
            for hint in ORDER:
                row = {"wire_bytes": wire_bytes(server, optimized(hint, False)),
                       "wire_bytes_progressive": wire_bytes(server, optimized(hint, True))}
                for paced in (True, False):
                    link = "paced" if paced else "unpaced"
                    mono = statistics.median(first_render(server, optimized(hint, False), paced) for _ in range(ROUNDS))
                    prog = statistics.median(first_render(server, optimized(hint, True), paced) for _ in range(ROUNDS))
                    row[f"ttfr_ms_{link}"] = round(mono * 1000, 1)
                    row[f"ttfr_ms_{link}_progressive"] = round(prog * 1000, 1)
                    row[f"ttfr_ratio_{link}"] = round(prog / mono, 3)
                policies[hint] = row
            for hint in ORDER:
                policies[hint]["wire_ratio_to_high"] = round(policies[hint]["wire_bytes"] / policies["high"]["wire_bytes"], 3)

            chunks = f"/deep_tree_echo/stream_chunks?{ENGINE}&chunk_size=4096"
            large = f"/deep_tree_echo/stream_large_dataset?{ENGINE}&max_chunk_size=4096"
            transport = {
                "stream_chunks (JSON events)": {
                    "none": wire_bytes(server, chunks),
                    "per_event_brotli": wire_bytes(server, chunks + "&enable_compression=true"),
                    "transport_br": wire_bytes(server, chunks, "br"),
                    "transport_gzip": wire_bytes(server, chunks, "gzip"),
                    "both_br": wire_bytes(server, chunks + "&enable_compression=true", "br"),
                },
                "stream_large_dataset (binary payloads)": {
                    "none": wire_bytes(server, large + "&compression_level=0"),
                    "per_event_level_2": wire_bytes(server, large + "&compression_level=2"),
                    "transport_br": wire_bytes(server, large + "&compression_level=0", "br"),
                    "transport_gzip": wire_bytes(server, large + "&compression_level=0", "gzip"),
                    "both_br": wire_bytes(server, large + "&compression_level=2", "br"),
                },
            }
        finally:
            server.stop()
    ratios = {name: {k: round(v / sizes["none"], 3) for k, v in sizes.items() if k != "none"}
              for name, sizes in transport.items()}

    print(f"/stream_optimized, {len(INPUT)} bytes of English text, {ENGINE}; link {LINK_BYTES_PER_SEC} B/s when paced")
    print(f"{'policy':<8} {'wire bytes':>10} {'vs high':>8} {'progressive':>11} "
          f"{'TTFR paced ms (mono/prog/ratio)':>32} {'TTFR unpaced ms (mono/prog/ratio)':>34}")
    for hint, row in policies.items():
        paced = f"{row['ttfr_ms_paced']}/{row['ttfr_ms_paced_progressive']}/{row['ttfr_ratio_paced']}"
        unpaced = f"{row['ttfr_ms_unpaced']}/{row['ttfr_ms_unpaced_progressive']}/{row['ttfr_ratio_unpaced']}"
        print(f"{hint:<8} {row['wire_bytes']:>10} {row['wire_ratio_to_high']:>8} {row['wire_bytes_progressive']:>11} "
              f"{paced:>32} {unpaced:>34}")
    print("\nwire bytes as a ratio of no compression")
    for name, row in ratios.items():
        print(f"{name:<40} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    print(json.dumps({"policies": policies, "compression_wire_bytes": transport, "compression_ratios": ratios}))


if __name__ == "__main__":
    main()
