"""/stream_large_dataset: end-to-end throughput against the engine alone, and wire bytes per level.

    python -m bench.large_dataset

The real server (gunicorn + gevent, one worker, 127.0.0.1) and a client that uploads while it
reads. Throughput rounds alternate with runs of the engine alone on the same bytes, the same
chunking and the same batched engine calls (a result per chunk), so the shared machine's
noise hits both: MB/s is the best round of each, the ratio the median of the rounds' own
ratios. A third configuration, the goal's chunking with the smallest network, measures the
ceiling the server's own path sets (its engine alone runs at ~1 GB/s). In the goal
configuration's rounds, the same upload also goes to the floor: a do-nothing WSGI app on the
same gunicorn worker that reads the body and writes as many event bytes
(bench/floor_app.py); the goal's MB/s (0.9 of the engine alone) over the floor's is how much
of what gunicorn alone allows the goal asks for. CPU per MB is measured in the same rounds
(the worker's from /proc, the client's and the engine alone's from process_time): the
machine's cores over the worker's and client's sum bound the goal configuration's MB/s
whatever the overlap. Wire bytes are every byte of the event stream the client received.
The last line is one JSON object.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from bench import floor_app
from dtesn.client.duplex import DuplexResponse, pattern
from dtesn.engine import ReservoirParams, Session, build_weights
from dtesn.streaming.large_dataset_events import optimal_chunk_size
from dtesn.streaming.pump import batch_chunks
from tests.support.server import Server
from tests.support.sse import parse

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 7
THROUGHPUT_BYTES = 32 * 1024 * 1024
GOAL = {"esn_size": 256, "membrane_depth": 3, "frame_size": 1024, "max_chunk_size": 16384, "compression_level": 1}
DEFAULT = {"max_chunk_size": 16384, "compression_level": 1}  # esn 512, depth 4, frame 64
#: The goal's chunking and events with the smallest network (its engine alone ~1 GB/s): what
#: the server's own path (upload, spool, events, writes) delivers when the engine costs
#: almost nothing, i.e. a ceiling for the goal configuration's server MB/s.
CEILING = {**GOAL, "esn_size": 32, "membrane_depth": 1}


def english_text(size: int) -> bytes:
    """The project's own English prose (README and design notes), repeated to `size` bytes."""
    prose = (ROOT / "README.md").read_bytes() + (ROOT.parent / "shared" / "DESIGN.md").read_bytes()
    return (prose * (size // len(prose) + 1))[:size]


def query(config: dict) -> str:
    return "/deep_tree_echo/stream_large_dataset?" + "&".join(f"{k}={v}" for k, v in config.items())


def english_blocks(size: int, block: int = 1 << 20) -> Iterator[bytes]:
    """english_text(size), a block at a time (as `pattern` yields its input)."""
    text = english_text(size)
    return (text[i : i + block] for i in range(0, size, block))


def through_server(server: Server, config: dict, size: int, body: Callable[[int], Iterable[bytes]] = pattern) -> float:
    """Bytes/s of one stream of `body(size)`, checked to have completed."""
    r = DuplexResponse(server.port, query(config), body(size), size)
    tail = b""
    for piece in r.iter_content():  # count, don't parse: the client must not set the pace
        tail = (tail + piece)[-4096:]
    elapsed = time.monotonic() - r.started
    r.close()
    (done,) = [ev for ev in parse(iter([tail[tail.rfind(b"\nid: ") + 1 :]])) if ev.event == "completion"]
    assert done.json["total_bytes"] == size
    return size / elapsed


def with_cpu(server: Server, size: int, run: Callable[[], float]) -> tuple[float, float, float]:
    """`run()` (one stream of `size` bytes through `server`, returning bytes/s), with the
    worker's and this client's CPU ms per MB during it."""
    worker, client = server.worker_cpu_s(), time.process_time()
    rate = run()
    mb = size / 1e6
    return rate, (server.worker_cpu_s() - worker) * 1000 / mb, (time.process_time() - client) * 1000 / mb


def cpu_of_stream(server: Server, config: dict, size: int) -> tuple[float, float, float]:
    """(bytes/s, the worker's CPU ms per MB, this client's CPU ms per MB) of one stream."""
    return with_cpu(server, size, lambda: through_server(server, config, size))


def engine_alone(config: dict, size: int) -> tuple[float, float]:
    """(MB/s, CPU ms per MB) of the engine alone, fed as the server feeds it."""
    keys = ("esn_size", "membrane_depth", "frame_size")
    params = ReservoirParams(**{k: config[k] for k in keys if k in config})
    chunk = optimal_chunk_size(size, config["max_chunk_size"])
    session = Session(build_weights(params))
    data = b"".join(pattern(size))
    pieces = [data[i : i + chunk] for i in range(0, size, chunk)]
    rate = 0.0  # steps/s, the best of three calls: what the server sizes its batches by
    for _ in range(3):
        warm = time.perf_counter()
        session.feed_many(pieces[:64])
        rate = max(rate, sum(map(len, pieces[:64])) / params.frame_size / (time.perf_counter() - warm))
    session = Session(session.weights)
    per_call = batch_chunks(rate, chunk, params.frame_size)  # the server's batches: the same engine calls
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(pieces), per_call):
        session.feed_many(pieces[i : i + per_call], final=i + per_call >= len(pieces))
    return size / (time.perf_counter() - started), (time.process_time() - cpu) * 1000 / (size / 1e6)


def throughput(server: Server, config: dict, floor: Server | None = None) -> dict:
    """With `floor`, each round also streams the same upload through the floor app.

    CPU per MB (medians of rounds): the worker's, this client's (upload and reading) and the
    engine alone's. Their sum over the machine's cores bounds what any round could reach."""
    engine_alone(config, 1 << 20)
    through_server(server, config, 1 << 20)  # both warm their weights and rates first
    served, alone, floored = [], [], []
    for _ in range(ROUNDS):
        measured = cpu_of_stream(server, config, THROUGHPUT_BYTES)
        rate, cpu = engine_alone(config, THROUGHPUT_BYTES)
        alone.append(rate)
        served.append((*measured, cpu))
        if floor is not None:
            floored.append(cpu_of_stream(floor, config, THROUGHPUT_BYTES))
    rates = [s[0] for s in served]
    row = {**config, "server_mb_s": round(max(rates) / 1e6, 2), "engine_mb_s": round(max(alone) / 1e6, 2),
           "ratio": round(statistics.median(s / e for s, e in zip(rates, alone)), 3),
           **median_cpu(served, ("worker", "client", "engine_alone"))}
    if floored:
        row["floor_mb_s"] = round(max(f[0] for f in floored) / 1e6, 2)
        row["goal_of_floor"] = round(statistics.median(0.9 * e / f[0] for e, f in zip(alone, floored)), 3)
        row.update(median_cpu(floored, ("floor_worker", "floor_client")))
    return row


def median_cpu(rounds: list[tuple[float, ...]], names: tuple[str, ...]) -> dict:
    """{name}_cpu_ms_per_mb: the median over rounds of each CPU figure after a round's MB/s."""
    return {f"{name}_cpu_ms_per_mb": round(statistics.median(r[k + 1] for r in rounds), 3)
            for k, name in enumerate(names)}


def wire_bytes(server: Server, data: bytes, level: int, encoding: str) -> int:
    r = DuplexResponse(server.port, query({"compression_level": level, "encoding": encoding}), [data], len(data))
    total = sum(len(piece) for piece in r.iter_content())
    r.close()
    return total


def main() -> None:
    inputs = {"text": english_text(1 << 20), "random": np.random.default_rng(7).bytes(1 << 20)}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp))
        floor = Server(Path(tmp), command=floor_app.command("upload_app"), ready_path="/")
        try:
            rows = [throughput(server, GOAL, floor), throughput(server, DEFAULT), throughput(server, CEILING)]
            wire: dict = {}
            for name, data in inputs.items():
                for encoding in ("base64", "hex"):
                    sizes = [wire_bytes(server, data, level, encoding) for level in range(4)]
                    wire[f"{name}/{encoding}"] = {"level0_bytes": sizes[0],
                                                  **{f"level{lv}_ratio": round(sizes[lv] / sizes[0], 3) for lv in (1, 2, 3)},
                                                  "bytes": sizes}
        finally:
            server.stop()
            floor.stop()
    hex_vs_base64 = {name: round(wire[f"{name}/hex"]["bytes"][1] / wire[f"{name}/base64"]["bytes"][1], 3) for name in inputs}
    print(f"{'configuration':<62} {'server MB/s':>11} {'engine MB/s':>11} {'ratio':>6}")
    for row in rows:
        name = ", ".join(f"{k}={v}" for k, v in row.items() if k in GOAL)
        print(f"{name:<62} {row['server_mb_s']:>11} {row['engine_mb_s']:>11} {row['ratio']:>6}")
    goal_of_ceiling = round(rows[0]["server_mb_s"] / rows[2]["server_mb_s"], 3)
    print(f"goal configuration's server MB/s / the ceiling's (esn 32, depth 1, same chunking): {goal_of_ceiling}")
    print(f"do-nothing upload floor (bench/floor_app.py, same gunicorn worker): {rows[0]['floor_mb_s']} MB/s; "
          f"the goal configuration's 0.9 of the engine alone is {rows[0]['goal_of_floor']} of it (median of rounds)")
    goal, cores = rows[0], os.cpu_count() or 1
    bound = cores * 1000 / (goal["worker_cpu_ms_per_mb"] + goal["client_cpu_ms_per_mb"])
    print(f"CPU per MB at the goal configuration (medians): worker {goal['worker_cpu_ms_per_mb']} ms "
          f"(the engine alone {goal['engine_alone_cpu_ms_per_mb']}), client {goal['client_cpu_ms_per_mb']}; "
          f"floor worker {goal['floor_worker_cpu_ms_per_mb']}, client {goal['floor_client_cpu_ms_per_mb']}. "
          f"{cores} cores bound the goal configuration at {bound:.0f} MB/s; 0.9 of the engine alone is "
          f"{0.9 * goal['engine_mb_s']:.0f}")
    print("\nwire bytes as a ratio of level 0 (same encoding), default configuration, 1 MiB input")
    print(f"{'input/encoding':<16} {'level 0 bytes':>13} {'level 1':>8} {'level 2':>8} {'level 3':>8}")
    for key, row in wire.items():
        print(f"{key:<16} {row['level0_bytes']:>13} {row['level1_ratio']:>8} {row['level2_ratio']:>8} {row['level3_ratio']:>8}")
    print(f"hex / base64 wire bytes at level 1: {hex_vs_base64}")
    print(json.dumps({"throughput": rows, "goal_of_ceiling": goal_of_ceiling, "cpu_bound_mb_s": round(bound, 1), "wire": wire,
                      "hex_over_base64_level1": hex_vs_base64}))


if __name__ == "__main__":
    main()
