"""Scaling out: one instance against two sharing a Redis, and what a checkpoint in Redis costs.

    python -m bench.scale [--quick]

1. Aggregate input MB/s of CONCURRENCY concurrent stream_chunks streams (raw POST bodies),
   through a small round-robin TCP proxy this benchmark starts (bench/proxy.py, on
   127.0.0.1), to one instance, then to two (separate gunicorn masters, WEB_CONCURRENCY=2
   each, one redis-server). The figure is each instance's own dtesn_input_bytes_total
   (/metrics) over a window of steady load; rounds alternate one / two, and the ratio is
   taken per round. On a 2-core machine two instances have no more cores than one: the
   ratio shows what the second instance costs or buys here, not on a larger host.
2. The cost of checkpointing in Redis against in memory: `dtesn.events` over the same input
   with each runtime, alternating (memory, redis, redis, memory, ...: the end-to-end
   throughput ratio, per pair), and the microseconds a save
   costs the stream (the hub's share: serialising and queueing) and the background writer
   (the script round trip), per checkpoint and per chunk.

Needs redis-server (apt-get install redis-server). The last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.redis_server import RedisServer
from tests.support.server import ROOT, Server, free_port

STREAM_QUERY = "esn_size=512&membrane_depth=3&frame_size=64&chunk_size=8192"
STREAM_BYTES = 2 << 20
CONCURRENCY = 8
CHECKPOINT_PARAMS = {"esn_size": 256, "membrane_depth": 3, "frame_size": 64}
CHECKPOINT_CHUNK = 1024


class Proxy:
    def __init__(self, upstreams: list[Server]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ports = ",".join(str(s.port) for s in upstreams)
        self.process = subprocess.Popen([sys.executable, "-m", "bench.proxy", str(self.port), ports], cwd=ROOT)
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(self.url + "/health", timeout=1)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def input_bytes(server: Server) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "dtesn_input_bytes_total")


def load(proxy: Proxy, instances: list[Server], window_s: float) -> float:
    """Aggregate input MB/s while CONCURRENCY clients stream through the proxy for a while."""
    body = bytes(range(256)) * (STREAM_BYTES // 256)
    stop = threading.Event()
    failures: list[str] = []

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                r = session.post(f"{proxy.url}/deep_tree_echo/stream_chunks?{STREAM_QUERY}", data=body, stream=True,
                                 timeout=120, headers={"Content-Type": "application/octet-stream",
                                                       "Accept-Encoding": "identity", "Connection": "close"})
                tail = b""
                for piece in r.iter_content(1 << 16):
                    tail = (tail + piece)[-4096:]
                    if stop.is_set():
                        break
                r.close()
                if not stop.is_set() and b"completion" not in tail:
                    failures.append(tail[-300:].decode(errors="replace"))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    time.sleep(min(3.0, window_s / 2))  # every stream under way
    before, started = sum(map(input_bytes, instances)), time.monotonic()
    time.sleep(window_s)
    after, ended = sum(map(input_bytes, instances)), time.monotonic()
    stop.set()
    for t in threads:
        t.join(130)
    if failures:
        raise SystemExit(f"{len(failures)} streams did not complete: {failures[0]}")
    return (after - before) / (ended - started) / 1e6


def scaling(rounds: int, window_s: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        redis_server = RedisServer(directory)
        env = {"DTESN_REDIS_URL": redis_server.url, "DTESN_REDIS_PREFIX": f"bench{secrets.token_hex(3)}:",
               "WEB_CONCURRENCY": "2"}
        a, b = Server(directory, env), Server(directory, env)
        one, two = Proxy([a]), Proxy([a, b])
        try:
            load(one, [a], 2.0)  # warm both instances' weights and rate tables
            load(two, [a, b], 2.0)
            figures: dict[str, list[float]] = {"one_mb_s": [], "two_mb_s": [], "ratio": []}
            for _ in range(rounds):
                single, double = load(one, [a], window_s), load(two, [a, b], window_s)
                figures["one_mb_s"].append(round(single, 2))
                figures["two_mb_s"].append(round(double, 2))
                figures["ratio"].append(round(double / single, 3))
        finally:
            for process in (one, two, a, b, redis_server):
                process.stop()
    return {**figures, "ratio_median": statistics.median(figures["ratio"]), "concurrency": CONCURRENCY,
            "stream_bytes": STREAM_BYTES}


def checkpoint_cost(rounds: int, input_mb: int) -> dict:
    from dtesn import Runtime, Settings, events
    from dtesn.engine import warm_up

    warm_up()
    data = bytes(range(256)) * (input_mb * 4096)
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = RedisServer(Path(tmp))
        memory = Runtime.create(Settings.load(), datasets=False)
        shared = Runtime.create(Settings.load(redis_url=redis_server.url, redis_prefix="benchcp:"), datasets=False)
        runtimes = {"memory": memory, "redis": shared}
        saves: dict[str, list[float]] = {"memory": [], "redis": []}
        last: list = []
        for name, runtime in runtimes.items():
            store = runtime.checkpoints
            assert store is not None

            def timed(request_id, checkpoint, save=store.save, spent=saves[name]):
                started = time.perf_counter()
                save(request_id, checkpoint)
                spent.append(time.perf_counter() - started)
                last[:] = [checkpoint]

            store.save = timed  # type: ignore[method-assign]

        def run(runtime: Runtime) -> tuple[float, int]:
            started = time.perf_counter()
            chunks = sum(1 for e in events(data, chunk_size=CHECKPOINT_CHUNK, runtime=runtime, **CHECKPOINT_PARAMS)
                         if e["type"] == "chunk")
            return len(data) / (time.perf_counter() - started) / 1e6, chunks

        try:
            for runtime in runtimes.values():  # warm weights and rate tables
                run(runtime)
                saves_warm = {name: len(spent) for name, spent in saves.items()}
            rates: dict[str, list[float]] = {"memory": [], "redis": []}
            chunks = 0
            for k in range(2 * rounds):  # memory, redis, redis, memory, ...: the order's effect cancels
                for name in ("memory", "redis")[:: 1 if k % 2 == 0 else -1]:
                    rate, chunks = run(runtimes[name])
                    rates[name].append(rate)
            redis_store = shared.checkpoints
            writes = redis_store.writes  # type: ignore[union-attr]
            assert writes.flush(30) and writes.failed == 0 and writes.dropped == 0
            # The background writer's round trip (the save script), one checkpoint at a time.
            count, started = 200, time.perf_counter()
            for i in range(count):
                redis_store.save("bench-round-trip", replace(last[0], index=i))  # type: ignore[union-attr]
                writes.flush(5)
            round_trip_us = (time.perf_counter() - started) / count * 1e6
        finally:
            for runtime in runtimes.values():
                runtime.close()
            redis_server.stop()
    per_stream = (len(saves["memory"]) - saves_warm["memory"]) / (2 * rounds)
    ratio = [r / m for r, m in zip(rates["redis"], rates["memory"], strict=True)]
    stream_s = len(data) / 1e6 / statistics.median(rates["redis"])
    return {
        "input_mb": input_mb, "chunks": chunks, "checkpoints_per_stream": round(per_stream),
        "memory_mb_s": [round(r, 1) for r in rates["memory"]], "redis_mb_s": [round(r, 1) for r in rates["redis"]],
        "redis_over_memory": round(statistics.median(ratio), 3),
        "save_us_memory": round(statistics.median(saves["memory"]) * 1e6, 1),
        "save_us_redis": round(statistics.median(saves["redis"][: -count]) * 1e6, 1),
        "redis_write_round_trip_us": round(round_trip_us, 1),
        "redis_write_us_per_chunk": round(round_trip_us * per_stream / chunks, 2),
        "redis_write_share_of_stream": round(round_trip_us * 1e-6 * per_stream / stream_s, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds")
    args = parser.parse_args()
    rounds, window = (2, 4.0) if args.quick else (3, 8.0)
    scale = scaling(rounds, window)
    print(f"aggregate input MB/s, {CONCURRENCY} streams: one instance {scale['one_mb_s']}, two {scale['two_mb_s']}, "
          f"ratio {scale['ratio']} (median {scale['ratio_median']})")
    cost = checkpoint_cost(rounds, 4 if args.quick else 8)
    print(f"checkpoints in Redis vs memory: end to end {cost['redis_over_memory']}x "
          f"(memory {cost['memory_mb_s']} MB/s, redis {cost['redis_mb_s']} MB/s); a save costs the stream "
          f"{cost['save_us_redis']} us (memory {cost['save_us_memory']} us); the writer's round trip "
          f"{cost['redis_write_round_trip_us']} us per checkpoint, {cost['redis_write_us_per_chunk']} us per chunk, "
          f"{cost['redis_write_share_of_stream']:.3%} of the stream's time")
    print(json.dumps({"scaling": scale, "checkpoints": cost}))


if __name__ == "__main__":
    main()
