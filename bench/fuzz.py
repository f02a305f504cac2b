"""Random bad requests against the real server: every answer must be a 2xx/4xx, never a 5xx,
a hang or a traceback in the log.

    python -m bench.fuzz [--cases 2000] [--seed 1]

Starts its own server (127.0.0.1, one worker, 2 s body timeout) and sends `cases` requests
built at random from bad and good pieces: endpoints, methods, query fields with odd values
(non-ASCII digits, huge numbers, floats, empty, repeated), JSON bodies (duplicate keys, deep
nesting, lone surrogates, wrong types, invalid UTF-8), raw bodies cut short of their
Content-Length, broken chunked encodings, compressed bodies, bogus Last-Event-IDs. Each
request is read to its end with a 20 s deadline. Prints a table of what was tried and seen.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.server import Server

ENDPOINTS = ["stream_process", "stream_chunks", "stream_large_dataset", "stream_optimized", "process", "datasets",
             "membrane_info", "status", "nope"]
FIELDS = ["esn_size", "membrane_depth", "frame_size", "seed", "chunk_size", "max_chunk_size", "compression_level",
          "bandwidth_hint", "enable_compression", "processing_mode", "dataset_id", "last_event_id", "input_data", "x"]
ODD = ["", "0", "-1", "256", "٢٥٦", "2_56", "1e3", "1.5", "99999999999999999999", "true", "nan", "%00", "a" * 300,
       "low", "auto", "brotli", "abc:1", "streaming"]


def case(rng: random.Random) -> tuple[str, bytes]:
    endpoint = rng.choice(ENDPOINTS)
    path = "/deep_tree_echo/" + endpoint
    query = "&".join(f"{rng.choice(FIELDS)}={rng.choice(ODD)}" for _ in range(rng.randint(0, 4)))
    method = rng.choice(["GET", "POST", "POST", "POST", "PUT", "DELETE"])
    kind = rng.choice(["json", "raw", "short", "chunked", "badchunk", "gzip", "none"])
    headers = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    body = b""
    if kind == "json":
        choice = rng.randint(0, 6)
        doc = [b'{"input_data": "hi", "esn_size": 32, "esn_size": 64}', b'{"input_data": "\\ud800"}',
               b"[" * 5000 + b"]" * 5000, b'{"input_data": 5}', b'\xff\xfe{"a"', b'{"input_data": "ok", "membrane_depth": 2}',
               json.dumps({rng.choice(FIELDS): rng.choice(ODD) for _ in range(3)}).encode()][choice]
        headers += ["Content-Type: application/json", f"Content-Length: {len(doc)}"]
        body = doc
    elif kind in ("raw", "short", "gzip"):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4000)))
        announced = len(data) + (rng.randint(1, 5000) if kind == "short" else 0)
        headers += ["Content-Type: application/octet-stream", f"Content-Length: {announced}"]
        if kind == "gzip":
            headers.append("Content-Encoding: gzip")
        body = data
    elif kind in ("chunked", "badchunk"):
        headers += ["Content-Type: application/octet-stream", "Transfer-Encoding: chunked"]
        body = b"4\r\nabcd\r\n" + (b"0\r\n\r\n" if kind == "chunked" else rng.choice([b"zz\r\n", b"5\r\nab", b"", b"3;\x01\r\nabc\r\n"]))
    if rng.random() < 0.2:
        headers.append(f"Last-Event-ID: {rng.choice(ODD)}")
    return kind, ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def send(port: int, request: bytes) -> tuple[str, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(20)
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while data := conn.recv(65536):
                reply += data
        except TimeoutError:
            return "hang", time.monotonic() - started
        except ConnectionResetError:
            pass
    status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/1.1 ") else "no answer"
    return status, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    seen: Counter = Counter()
    by_kind: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), {"DTESN_BODY_TIMEOUT": "2", "DTESN_DATASET_DIR": str(Path(tmp) / "datasets")})
        try:
            for _ in range(args.cases):
                kind, request = case(rng)
                status, _ = send(server.port, request)
                seen[status] += 1
                by_kind[(kind, status)] += 1
            tracebacks = server.log().count("Traceback")
        finally:
            server.stop()
    fivexx = sum(n for s, n in seen.items() if s.startswith("5") and s != "503")
    print(f"{args.cases} cases: statuses {dict(sorted(seen.items()))}")
    print(f"5xx other than 503: {fivexx}; hangs: {seen['hang']}; no answer: {seen['no answer']}; tracebacks in the log: {tracebacks}")
    print(json.dumps({"cases": args.cases, "statuses": dict(seen), "by_kind": {f"{k}/{s}": n for (k, s), n in by_kind.items()},
                      "fivexx": fivexx, "hangs": seen["hang"], "tracebacks": tracebacks}))


if __name__ == "__main__":
    main()
